"""The CLI's side of the control socket (protocol: saga.daemon.control, docs/daemon.md).

Plain blocking sockets: the CLI does not run an event loop.
"""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator

from saga.errors import EX_TEMPFAIL, OSFailure, SagaError, from_oserror

CONNECT_TIMEOUT = 5.0


class NotRunning(Exception):
    """No daemon answers on the socket."""


class DaemonClient:
    def __init__(self, path: str, timeout: float | None = CONNECT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            sock.close()
            raise NotRunning(self.path) from None
        except OSError as exc:
            sock.close()
            raise from_oserror(exc, f"cannot talk to the daemon at {self.path}", OSFailure) from None
        sock.settimeout(self.timeout)
        return sock

    def request(self, req: dict) -> Iterator[dict]:
        """Send one request; yield the daemon's answers until it closes the stream."""
        sock = self._connect()
        try:
            sock.sendall(json.dumps(req).encode() + b"\n")
            with sock.makefile("rb") as f:
                for line in f:
                    msg = json.loads(line)
                    if "error" in msg:
                        raise SagaError(f"daemon: {msg['error']}", exit_code=msg.get("exit_code", 70))
                    yield msg
        except TimeoutError:
            raise SagaError(f"the daemon at {self.path} did not answer in time", exit_code=EX_TEMPFAIL) from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise from_oserror(exc, f"the daemon at {self.path} closed the connection", OSFailure) from None
        finally:
            sock.close()

    def status(self) -> dict:
        for msg in self.request({"op": "status"}):
            return msg["status"]
        raise SagaError("the daemon sent no status")


def running(path: str) -> bool:
    """Whether a daemon answers at `path` (False when the socket is missing or stale)."""
    try:
        DaemonClient(path).status()
        return True
    except NotRunning:
        return False
