"""The user's command server: saga's modules loaded once, a forked worker per command (docs/cli.md "Start-up").

Started detached by the first command that finds none (saga.cli.client.spawn),
as that command's user, with its environment and interpreter flags.  It
imports what commands use (numpy with one BLAS thread, the search, the
database drivers, typer and the commands), freezes those objects out of the
garbage collector (so workers share their pages) and only then listens: a
command never waits for a server to start.  It never runs saga code itself.

Per connection: the peer must be this user (SO_PEERCRED); its installation,
interpreter and process context (credentials, capabilities, namespaces, root,
limits, priority) must be this server's, else the server retires (it stops
listening and lets the client start one like itself); at most MAX_WORKERS
commands at once.  The worker takes the client's fds 0-2 as its stdio (set up
as the client's Python set up its own), its working directory, umask,
environment, time zone, LC_CTYPE and arguments, and runs saga.cli.main.run, the
code a command runs in its own process.  The server tells the client the
worker's pid and, when it has ended, how; a client that hangs up has its
worker's process group sent SIGHUP.  The server leaves after SAGA_SERVER_IDLE
seconds without a command (600), on SIGTERM (running commands finish), or when
saga's files change under it (checked per command and every minute).
"""
from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import io
import os
import resource
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

import saga
from saga.cli import client

MAX_WORKERS = 16
# saga.cli.main first: importing it limits numpy's BLAS to one thread, as a command has it, before numpy loads.
PRELOAD = ("saga.cli.main", "numpy", "numpy.ma", "sqlite3", "psycopg", "saga.cli.options", "saga.cli.guard",
           "saga.cli.context", "saga.cli.search", "saga.store.query", "saga.store.reader", "saga.store.report",
           "saga.fastrender", "typer", "saga.cli.app", "saga.cli.status", "saga.cli.stats", "saga.cli.log",
           "saga.cli.rules", "saga.cli.query", "saga.cli.report")
# What a worker cannot take from the request, and so must be the same in client and server (/proc/PID/status).
SAME_STATUS = (b"Uid:", b"Gid:", b"Groups:", b"CapInh:", b"CapPrm:", b"CapEff:", b"CapBnd:", b"CapAmb:",
               b"NoNewPrivs:", b"Seccomp:")
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
LIMITS = tuple(getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_"))
CHECK_EVERY = 60.0
# What the server prepared depends on this variable of its environment (saga.fastrender reads it once): a
# client whose environment says otherwise is served by a server like itself.
PREPARED_FOR = "SAGA_PYTHON_RENDER"


def log(text: str) -> None:
    """A line in server.log (the server's stderr)."""
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} saga server {os.getpid()}: {text}\n")
    sys.stderr.flush()


def context(pid: int) -> tuple:
    """The process context of `pid` a worker inherits from the server rather than from the request."""
    with open(f"/proc/{pid}/status", "rb") as f:
        status = tuple(line for line in f if line.startswith(SAME_STATUS))
    spaces = tuple(os.readlink(f"/proc/{pid}/ns/{n}") for n in NAMESPACES if os.path.exists(f"/proc/self/ns/{n}"))
    root = os.stat(f"/proc/{pid}/root")
    limits = tuple(resource.prlimit(pid, r) for r in LIMITS)
    return status, spaces, (root.st_dev, root.st_ino), limits, os.getpriority(os.PRIO_PROCESS, pid)


def stamps() -> dict[str, tuple[int, int, int]]:
    """(mtime, size, inode) of every file of saga's this process has loaded."""
    top = os.path.dirname(saga.__file__ or "")
    got = {}
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        if path and path.startswith(top + os.sep):
            with contextlib.suppress(OSError):
                st = os.stat(path)
                got[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return got


@dataclass
class Request:
    argv: list[str]
    env: dict[bytes, bytes]
    umask: int
    ctype: str
    stdio: list[bytes]
    fds: list[int]


class ProtocolError(Exception):
    pass


def read_request(conn: socket.socket) -> tuple[bytes, Request]:
    """The client's request: (its identity, the rest); its fds are this process's until closed."""
    fds: list[int] = []
    data = b""
    size = None
    try:
        while size is None or len(data) < size:
            msg, anc, flags, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 8), socket.MSG_CMSG_CLOEXEC)
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += [int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload) - 3, 4)]
            if not msg or flags & socket.MSG_CTRUNC:
                raise ProtocolError("short request")
            data += msg
            if size is None and len(data) >= len(client.MAGIC) + 4:
                if not data.startswith(client.MAGIC):
                    raise ProtocolError("not a saga client")
                size = len(client.MAGIC) + 4 + int.from_bytes(data[len(client.MAGIC):len(client.MAGIC) + 4], "big")
        fields = data[len(client.MAGIC) + 4:].split(b"\0")
        n = len(client.REQUEST_FIELDS)
        if len(fds) != 4 or len(fields) < n:
            raise ProtocolError("malformed request")
        head = dict(zip(client.REQUEST_FIELDS, fields[:n], strict=True))
        argc = int(head["argc"])
        args, env = fields[n:n + argc], fields[n + argc:]
        req = Request([os.fsdecode(a) for a in args], dict(e.split(b"=", 1) for e in env if b"=" in e),
                      int(head["umask"]), os.fsdecode(head["ctype"]),
                      [head["stdin"], head["stdout"], head["stderr"]], fds)
        return head["identity"], req
    except (ProtocolError, OSError, ValueError):
        for fd in fds:
            os.close(fd)
        raise ProtocolError("malformed request") from None


def _stream(fd: int, spec: bytes, name: str):
    """A stdio stream over `fd`, made as Python made the client's (spec: saga.cli.client._stdio); None for -."""
    if spec == b"-":
        return None
    encoding, errors, line, through = spec.decode().split(":")
    reading = fd == 0
    raw = io.FileIO(fd, "r" if reading else "w", closefd=False)
    raw.name = name             # as Python names them: <stdout>
    buf = io.BufferedReader(raw) if reading else io.BufferedWriter(raw)
    text = io.TextIOWrapper(buf, encoding, errors, newline="\n", line_buffering=line == "1",
                            write_through=through == "1")
    text.mode = "r" if reading else "w"     # type: ignore[misc]
    return text


def become(req: Request) -> None:
    """Turn this freshly forked worker into the client's command: its stdio, directory, umask, environment."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD, signal.SIGTSTP, signal.SIGWINCH):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    for i, fd in enumerate(req.fds[:3]):
        os.dup2(fd, i)
    os.fchdir(req.fds[3])
    for fd in req.fds:
        if fd > 2:
            os.close(fd)
    os.umask(req.umask)
    os.environ.clear()
    os.environb.update(req.env)
    time.tzset()
    import locale
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, req.ctype)
    streams = [_stream(i, spec, f"<{name}>") for i, (spec, name) in
               enumerate(zip(req.stdio, ("stdin", "stdout", "stderr"), strict=True))]
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]
    sys.argv = req.argv
    # The client's signals were held since the fork (serve): they act now, as on the command itself.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _exit_code(exc: SystemExit) -> int:
    """The exit status the interpreter makes of a SystemExit (a message is printed, status 1)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def work(req: Request) -> None:
    """The worker: the command, then what the interpreter does when a program ends; never returns."""
    code = 0
    try:
        become(req)
        from saga.cli import main
        main.run()
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:   # as Python ends on an uncaught Ctrl-C: the traceback, then killed by SIGINT
        import traceback
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:       # noqa: BLE001 - as Python ends on an uncaught exception: the traceback, 1
        import traceback
        traceback.print_exc()
        code = 1
    os._exit(_finish(code))


def _finish(code: int = 0) -> int:
    """Threads joined, atexit handlers run, stdout and stderr flushed (120 when stdout cannot be), as at exit."""
    import atexit
    import threading
    with contextlib.suppress(Exception):
        threading._shutdown()   # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except Exception as exc:   # noqa: BLE001
        with contextlib.suppress(Exception):
            sys.stderr.write(f"Exception ignored in: {sys.stdout!r}\n{type(exc).__name__}: {exc}\n")
        code = 120
    with contextlib.suppress(Exception):
        if sys.stderr is not None:
            sys.stderr.flush()
    return code


@dataclass
class Worker:
    pid: int
    conn: socket.socket


@dataclass
class Server:
    where: str
    me: bytes
    lock: int
    idle: float = 600.0
    workers: dict[int, Worker] = field(default_factory=dict)
    stopping: bool = False
    served: int = 0

    def __post_init__(self) -> None:
        self.path = f"{self.where}/{client.SOCKET}"
        self.context = context(os.getpid())
        self.files = stamps()
        self.poll = select.poll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.poll.register(self.wake_r, select.POLLIN)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)        # a stale socket (a live server would hold the lock)
        self.listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.inode = os.stat(self.path).st_ino
        self.poll.register(self.listener, select.POLLIN)

    def changed(self) -> bool:
        """Whether a file of saga's this server loaded is not the one it loaded (an upgrade, an edit)."""
        for path, was in self.files.items():
            try:
                st = os.stat(path)
            except OSError:
                return True
            if (st.st_mtime_ns, st.st_size, st.st_ino) != was:
                return True
        return False

    def retire(self, why: str) -> None:
        """Stop taking commands (the socket and the lock go, so a new server can start); running ones finish."""
        if self.listener is None:
            return
        log(f"leaving: {why}")
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        self.poll.unregister(self.listener)
        self.listener.close()
        self.listener = None
        os.close(self.lock)
        self.lock = -1

    def accept(self) -> None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        conn.settimeout(5.0)            # a client sends its request at once
        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid, uid = (int.from_bytes(cred[i:i + 4], sys.byteorder) for i in (0, 4))
        if uid != os.geteuid():
            log(f"refused a connection from uid {uid}")
            conn.close()
            return
        try:
            ident, req = read_request(conn)
        except ProtocolError as exc:
            log(f"pid {pid}: {exc}")
            conn.close()
            return
        try:
            self.serve(conn, pid, ident, req)
        finally:
            for fd in req.fds:
                os.close(fd)

    def serve(self, conn: socket.socket, pid: int, ident: bytes, req: Request) -> None:
        try:
            same = ident == self.me and context(pid) == self.context and not self.changed() and \
                bool(req.env.get(os.fsencode(PREPARED_FOR))) == bool(os.environ.get(PREPARED_FOR))
        except OSError:                 # the client is gone
            conn.close()
            return
        if not same:
            self.retire(f"a client (pid {pid}) of another installation, interpreter or context, or saga changed")
            self.reply(conn, b"refuse retired")
            return
        if len(self.workers) >= MAX_WORKERS:
            self.reply(conn, b"refuse busy")
            return
        # The client may relay a signal as soon as it has the worker's pid, maybe before the worker has put
        # the command's handlers in place (the server's would swallow it): held until then (become).
        held = signal.pthread_sigmask(signal.SIG_BLOCK, client.RELAYED)
        worker = os.fork()
        if worker == 0:
            self.forget()
            work(req)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        with contextlib.suppress(OSError):     # here too, so that the client can signal the group at once
            os.setpgid(worker, worker)
        self.workers[worker] = Worker(worker, conn)
        self.served += 1
        self.poll.register(conn, select.POLLIN)
        self.reply(conn, b"pid %d" % worker, close=False)

    def reply(self, conn: socket.socket, line: bytes, close: bool = True) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(line + b"\n")
        if close:
            conn.close()

    def forget(self) -> None:
        """In a new worker: none of the server's files stay open; it dies with the server (whose client would
        not learn how the command ended); it leads its own process group (the client signals the group)."""
        if self.listener is not None:
            self.listener.close()
        for fd in (self.lock, self.wake_r, self.wake_w):
            if fd >= 0:
                os.close(fd)
        for w in self.workers.values():
            w.conn.close()
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGHUP)      # PR_SET_PDEATHSIG
        os.setpgid(0, 0)

    def reap(self) -> None:
        """Tell the clients of ended workers how they ended."""
        while self.workers:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            w = self.workers.pop(pid, None)
            if w is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.poll.unregister(w.conn)
            end = b"signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status) else \
                b"exit %d" % os.WEXITSTATUS(status)
            self.reply(w.conn, end + b" %.6f %.6f %d" % (usage.ru_utime, usage.ru_stime, usage.ru_maxrss))

    def hung_up(self, fd: int) -> None:
        """A client went away (it sends nothing after its request): its command is hung up, as by a terminal."""
        for w in self.workers.values():
            if w.conn.fileno() == fd:
                self.poll.unregister(fd)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.pid, signal.SIGHUP)

    def run(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        last = checked = time.monotonic()
        while True:
            now = time.monotonic()
            if self.workers:
                last = now
            if self.stopping:
                self.retire("SIGTERM")
            elif now - last >= self.idle:
                self.retire(f"idle for {self.idle:g} s")
            elif now - checked >= CHECK_EVERY:
                checked = now
                if self.changed():
                    self.retire("saga's files changed")
            if self.listener is None and not self.workers:
                return
            wait = CHECK_EVERY if self.workers else min(CHECK_EVERY, self.idle - (now - last))
            for fd, _ev in self.poll.poll(max(0.0, wait) * 1000):
                if self.listener is not None and fd == self.listener.fileno():
                    self.accept()
                    last = time.monotonic()
                elif fd == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 256)
                else:
                    self.hung_up(fd)
            self.reap()


def preload() -> None:
    """Import what commands use, as they would import it (one BLAS thread: saga.cli.main sets it)."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
        except Exception as exc:   # noqa: BLE001 - a module that fails here fails in the command, which says so
            log(f"preloading {name}: {type(exc).__name__}: {exc}")
    from saga import fastrender
    if not os.environ.get(PREPARED_FOR):
        # The compiled renderer's tables, made once here rather than by each worker's first line (about 10 ms
        # of a fresh worker); served only to clients that would use it (PREPARED_FOR is compared).
        with contextlib.suppress(Exception):
            fastrender.shared()


def main() -> None:
    """`python -c 'from saga.cli.server import main; main()' DIR PATH...` (saga.cli.client.spawn)."""
    where, sys.path[:] = sys.argv[1], sys.argv[2:]
    os.umask(0o077)
    if client.runtime_dir() != where:
        log(f"{where} is not this user's private directory: not serving")
        return
    lock = os.open(f"{where}/{client.LOCK}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return                                  # another server runs or is starting
    os.ftruncate(lock, 0)
    os.write(lock, b"%d\n" % os.getpid())     # for whoever must stop it (tests)
    me = client.identity()
    try:
        preload()
        server = Server(where, me, lock, float(os.environ.get("SAGA_SERVER_IDLE", "600")))
    except Exception:
        # Said in the log, and no command of this installation starts another for a while (each would fail
        # the same way, at the cost of a start): the commands run in their own processes meanwhile.
        import traceback
        log(f"cannot serve:\n{traceback.format_exc()}")
        with open(f"{where}/{client.BROKEN}", "wb") as f:
            f.write(me)
        raise SystemExit(1) from None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{where}/{client.BROKEN}")
    gc.freeze()
    log(f"serving on {server.path}")
    server.run()
    log(f"stopped after {server.served} commands")
