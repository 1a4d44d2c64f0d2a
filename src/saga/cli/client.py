"""The start of `saga`: hand the command to the user's command server (saga.cli.server), docs/cli.md "Start-up".

A command spends most of its CPU starting: the interpreter, numpy, saga's
modules, the database's driver (about 0.12 s of the 0.15 s of a search of the
last hour).  The user's command server has them loaded and forks a worker per
command.  This module is what a command loads before that: the standard
library's C modules it needs and nothing of saga's, so that handing a command
over costs a few milliseconds.  It sends the command line, the environment,
the umask and how Python set up this process's stdio, passes fds 0, 1, 2 and
the working directory, relays signals to the worker and ends as the worker
ended.

hand_over() returns None whenever the server cannot take the command (none
running: one is started for the next command; it runs another saga
installation or in another context: it retires and one is started; busy;
any error), before anything of the command has run: the caller runs it in
this process then, the same code, so a command's output and exit status do not
depend on the server.  SAGA_NO_SERVER=1 (any value but "" or "0") keeps every
command in its own process.

The protocol (one connection per command, on a unix stream socket):
client -> server: b"saga-cli 1\\0", the length of the rest (4 bytes, big
endian), then \\0-separated fields (REQUEST_FIELDS, then the arguments, then
the environment as NAME=VALUE), with fds 0, 1, 2 and the working directory
(SCM_RIGHTS) on the first byte.  server -> client: one line, b"pid N" (the
worker, leader of its process group) or b"refuse REASON" (REASON "retired":
the server left for one like this client); after "pid", one more line when the
worker has ended: b"exit N" or b"signal N", then the worker's user and system
CPU seconds and its peak RSS in KiB.
"""
from __future__ import annotations

import _signal  # type: ignore[import-not-found]   # signal itself loads enum: 2 ms
import _socket
import os
import stat
import sys

import saga

MAGIC = b"saga-cli 1\0"
SOCKET, LOCK, LOG, BROKEN = "server.sock", "server.lock", "server.log", "server.broken"
BROKEN_FOR = 600        # seconds a server that could not start is not started again by the same installation
# Commands that stay in their own process: `daemon` is a service (systemd watches its pid, it handles
# SIGHUP and SIGTERM itself) and `driver` loads and unloads kernel code; neither waits on its start.
NOT_SERVED = frozenset({"daemon", "driver"})
# Signals a terminal or a parent sends the command, passed on to the worker's process group.
RELAYED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGWINCH)
REQUEST_FIELDS = ("identity", "umask", "ctype", "stdin", "stdout", "stderr", "argc")


def disabled() -> bool:
    return os.environ.get("SAGA_NO_SERVER", "") not in ("", "0")


def identity() -> bytes:
    """What a server must share with a client to run its commands as the client would: the saga installation,
    the interpreter, its flags, its module path."""
    return os.fsencode("\n".join((saga.__version__, os.path.dirname(saga.__file__ or ""), sys.executable,
                                  sys.version, repr(sys.flags), sys.getfilesystemencoding(),
                                  sys.getfilesystemencodeerrors(), repr(sys.path))))


def _private(path: str, uid: int) -> bool:
    """Whether `path` itself (not a symlink) is a directory of `uid` that nobody else may enter."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & 0o077


def runtime_dir() -> str | None:
    """The private directory of this user's server, made if missing: $XDG_RUNTIME_DIR/saga when
    XDG_RUNTIME_DIR is this user's own private directory (not under sudo, which may keep another user's),
    else /tmp/saga-cli-UID; None when that is not safely this user's (someone else made it first)."""
    uid = os.geteuid()
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    path = (base.rstrip("/") or "/") + "/saga" if base.startswith("/") and _private(base, uid) \
        else f"/tmp/saga-cli-{uid}"
    if not _private(path, uid):
        try:
            os.mkdir(path, 0o700)       # never follows a symlink; in sticky /tmp nobody else can replace it
        except OSError:
            pass
        if not _private(path, uid):
            return None
    return path


def _stdio(stream) -> bytes:
    """How Python set up one of this process's stdio streams: encoding, errors, line buffering, write-through."""
    if stream is None:
        return b"-"
    return f"{stream.encoding}:{stream.errors}:{int(stream.line_buffering)}:{int(stream.write_through)}".encode()


def _request(argv: list[str]) -> bytes:
    mask = os.umask(0o022)
    os.umask(mask)
    import _locale
    fields = [identity(), b"%d" % mask, os.fsencode(_locale.setlocale(_locale.LC_CTYPE)), _stdio(sys.stdin),
              _stdio(sys.stdout), _stdio(sys.stderr), b"%d" % len(argv)]
    fields += [os.fsencode(a) for a in argv]
    fields += [k + b"=" + v for k, v in os.environb.items()]
    body = b"\0".join(fields)
    return MAGIC + len(body).to_bytes(4, "big") + body


class _Lines:
    """Lines from the server, read as they come (a signal may arrive while waiting: its handler runs)."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def next(self) -> bytes | None:
        while b"\n" not in self.buf:
            try:
                got = self.sock.recv(256)
            except OSError:
                got = b""
            if not got:
                return None
            self.buf += got
        line, _, self.buf = self.buf.partition(b"\n")
        return line


class _Relay:
    """Signals to this process go to the worker's process group (a terminal's Ctrl-C reaches only the
    client's), Ctrl-Z stops the worker with the client, and SIGCONT resumes it."""

    def __init__(self) -> None:
        self.pgid = 0
        self.pending: list[int] = []
        self.was = {sig: _signal.getsignal(sig) for sig in (*RELAYED, _signal.SIGTSTP, _signal.SIGCONT)}
        for sig, was in self.was.items():       # one this process ignores (nohup, `&`), the command ignores
            if was != _signal.SIG_IGN:
                _signal.signal(sig, self.stop if sig == _signal.SIGTSTP else
                               self.cont if sig == _signal.SIGCONT else self.relay)

    def send(self, sig: int) -> None:
        if self.pgid:
            try:
                os.killpg(self.pgid, sig)
            except OSError:
                pass
        else:
            self.pending.append(sig)

    def started(self, pgid: int) -> None:
        self.pgid = pgid
        for sig in self.pending:
            self.send(sig)

    def relay(self, sig: int, _frame) -> None:
        self.send(sig)

    def stop(self, _sig: int, _frame) -> None:
        self.send(_signal.SIGSTOP)
        _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGTSTP)           # stops here until `fg` or `bg`
        _signal.signal(_signal.SIGTSTP, self.stop)

    def cont(self, _sig: int, _frame) -> None:
        self.send(_signal.SIGCONT)

    def done(self) -> None:
        """Python's own handlers back; a signal that came before any worker started is this process's again."""
        for sig, was in self.was.items():
            _signal.signal(sig, was)
        if not self.pgid:
            for sig in self.pending:
                os.kill(os.getpid(), sig)
        self.pgid = 0


def _ended(line: bytes | None) -> int:
    """The exit status of a worker that ended as `line` says; one killed by a signal kills this process with
    the same signal (as the command would have died in its own process), or it is 128 + N if that signal
    does not end this one.  No line: the server went away, and its workers with it (SIGHUP): 129."""
    if line is not None and (target := os.environ.get("SAGA_SERVER_RUSAGE")):
        with open(target, "ab") as f:       # the worker's CPU and peak RSS, for bench/query
            f.write(b" ".join(line.split()[2:]) + b"\n")
    if line is not None and line.startswith(b"exit "):
        return int(line.split()[1])
    if line is None or not line.startswith(b"signal "):
        sys.stderr.write("saga: the command server went away before the command ended\n")
        sys.stderr.flush()
        return 128 + _signal.SIGHUP
    sig = int(line.split()[1])
    _signal.signal(sig, _signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    return 128 + sig


def hand_over(argv: list[str]) -> int | None:
    """Run `argv` (sys.argv) in a worker of the user's server: its exit status, or None when this process must
    run it (nothing of it has run then)."""
    if disabled() or NOT_SERVED.intersection(argv[1:]):
        return None
    where = runtime_dir()
    if where is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(f"{where}/{SOCKET}")
        except (FileNotFoundError, ConnectionRefusedError):
            spawn(where)
            return None
        peer = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        if int.from_bytes(peer[4:8], sys.byteorder) != os.geteuid():
            return None
        relay = _Relay()
        try:
            return _served(sock, argv, where, relay)
        finally:
            relay.done()
    except OSError:     # a closed stdio fd cannot be passed, a server that hung up: run it here
        return None
    finally:
        sock.close()


def _served(sock: _socket.socket, argv: list[str], where: str, relay: _Relay) -> int | None:
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))
        msg = _request(argv)
        sent = sock.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    finally:
        os.close(cwd)
    if sent < len(msg):
        sock.sendall(msg[sent:])
    lines = _Lines(sock)
    first = lines.next()
    if first is None or not first.startswith(b"pid "):
        if first == b"refuse retired":
            spawn(where)
        return None
    relay.started(int(first[4:]))
    return _ended(lines.next())


def spawn(where: str) -> None:
    """Start a server for the next commands, detached (its own session, stdio on /dev/null, its errors
    appended to server.log in its directory), unless this installation's could not start lately (it left
    server.broken); this process does not wait for it."""
    import time
    try:
        with open(f"{where}/{BROKEN}", "rb") as f:
            if f.read() == identity() and time.time() - os.fstat(f.fileno()).st_mtime < BROKEN_FOR:
                return          # this installation's server could not start (server.log says why)
    except OSError:
        pass
    import subprocess  # here: only a start needs it (the interpreter's flags, to give the server the same)
    flags = subprocess._args_from_interpreter_flags()   # type: ignore[attr-defined]
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork() == 0:
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDWR)
            log = os.open(f"{where}/{LOG}", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            for fd in (0, 1):
                os.dup2(null, fd)
            os.dup2(log, 2)
            os.execv(sys.executable, [sys.executable, *flags, "-c", "from saga.cli.server import main; main()",
                                      where, *sys.path])
    except BaseException:       # noqa: BLE001 - a child of the command never returns into it
        pass
    os._exit(0)
