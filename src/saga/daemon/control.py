"""The control socket: the daemon's local, root-only door (docs/daemon.md).

A unix stream socket (daemon.run_dir/saga.sock, mode 0600).  A client
sends one JSON request on one line; the daemon answers with JSON lines:

    {"op": "status"}                      -> {"status": {...}}
    {"op": "log", "n": 10, "follow": false, "format": "line", "filter": {...}}
                                          -> {"line": "..."} or {"event": {...}} per event,
                                             {"lost": N} when a follower fell behind,
                                             {"end": true} after the last (not when following)
    {"op": "reload"}                      -> {"reloaded": true}   (same as SIGHUP)

Any failure is answered with {"error": "one line", "exit_code": N} and the
connection is closed.  A follower that reads slowly never holds the
daemon up: it is told how many events it lost (EventWindow.raws_since).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable

import trio

from saga import render
from saga.daemon.state import DaemonState
from saga.errors import ConfigError, SagaError, UsageError, from_oserror
from saga.filters import EventFilter

log = logging.getLogger("saga.daemon.control")

MAX_REQUEST = 64 * 1024
REQUEST_TIMEOUT = 10.0
FOLLOW_BATCH = 4096


async def _read_request(stream: trio.SocketStream) -> dict:
    buf = b""
    with trio.fail_after(REQUEST_TIMEOUT):
        while b"\n" not in buf:
            data = await stream.receive_some(4096)
            if not data:
                break
            buf += data
            if len(buf) > MAX_REQUEST:
                raise UsageError("request too long")
    line = buf.split(b"\n", 1)[0]
    try:
        req = json.loads(line)
    except ValueError:
        raise UsageError("the request is not a JSON object on one line") from None
    if not isinstance(req, dict):
        raise UsageError("the request is not a JSON object")
    return req


async def _send(stream: trio.SocketStream, *objs: dict) -> None:
    await stream.send_all(b"".join(json.dumps(o, separators=(",", ":")).encode() + b"\n" for o in objs))


def _encoder(fmt: str) -> Callable[[tuple], dict]:
    if fmt == "json":
        return lambda raw: {"event": render.to_json(raw)}
    if fmt == "line":
        return lambda raw: {"line": render.line(raw)}
    raise UsageError(f"unknown format {fmt!r}: line or json")


class ControlServer:
    def __init__(self, state: DaemonState, path: str, reload: Callable[[], Awaitable[None]]) -> None:
        self.state = state
        self.path = path
        self.reload = reload

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _remove_stale(self.path)
        old_umask = os.umask(0o177)       # the socket is born 0600: root only
        try:
            await sock.bind(self.path)
        except OSError as exc:
            sock.close()
            raise from_oserror(exc, f"cannot create the control socket {self.path} (daemon.run_dir)",
                               ConfigError) from None
        finally:
            os.umask(old_umask)
        sock.listen(64)
        listener = trio.SocketListener(sock)
        try:
            task_status.started()
            await trio.serve_listeners(self._handle, [listener])
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                try:
                    req = await _read_request(stream)
                    await self._dispatch(stream, req)
                except SagaError as exc:
                    await _send(stream, {"error": str(exc), "exit_code": exc.exit_code})
                except trio.TooSlowError:
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass   # the client went away
        except Exception:   # one bad request must not take the daemon down
            log.exception("control request failed")

    async def _dispatch(self, stream: trio.SocketStream, req: dict) -> None:
        op = req.get("op")
        if op == "status":
            await _send(stream, {"status": self.state.status()})
        elif op == "log":
            await self._log(stream, req)
        elif op == "reload":
            await self.reload()
            await _send(stream, {"reloaded": True})
        else:
            raise UsageError(f"unknown op {op!r}: status, log or reload")

    async def _log(self, stream: trio.SocketStream, req: dict) -> None:
        n = req.get("n", 10)
        if not isinstance(n, int) or n < 0:
            raise UsageError("n must be a number >= 0")
        encode = _encoder(req.get("format", "line"))
        keep = EventFilter.from_json(req.get("filter") or {}).predicate()
        await self.state.catch_up()       # the events the ring holds now are in the answer
        window = self.state.window
        seq = window.next_seq
        recent = window.last(n, keep)
        for i in range(0, len(recent), FOLLOW_BATCH):
            await _send(stream, *(encode(r) for r in recent[i:i + FOLLOW_BATCH]))
        if not req.get("follow"):
            await _send(stream, {"end": True})
            return
        self.state.counters.followers += 1
        self.state.wake_drain()           # a lazy drain reads often again while someone follows
        try:
            await self._follow(stream, seq, keep, encode)
        finally:
            self.state.counters.followers -= 1

    async def _follow(self, stream: trio.SocketStream, seq: int, keep, encode) -> None:
        window = self.state.window
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_eof, stream, nursery.cancel_scope)
            while True:
                await self.state.wait_for_events(seq)
                raws, seq, lost = window.raws_since(seq, FOLLOW_BATCH)
                out = [encode(r) for r in raws if keep(r)]
                if lost:
                    out.insert(0, {"lost": lost})
                if out:
                    try:
                        await _send(stream, *out)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        nursery.cancel_scope.cancel()
                        return


async def _cancel_on_eof(stream: trio.SocketStream, scope: trio.CancelScope) -> None:
    """A follower closing its end ends its stream even while no events come."""
    try:
        while await stream.receive_some(4096):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


def _remove_stale(path: str) -> None:
    """A socket file left by a daemon that died; a live daemon's socket is never removed (checked before)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SagaError(f"{path} exists and is not a socket; remove it", exit_code=78)
    os.unlink(path)
