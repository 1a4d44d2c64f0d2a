#!/usr/bin/env python3
"""Record a small, real workload as saga records: tests/data/workload.saga.gz.

The replay driver (src/saga/drivers/replay.py) replays this file in the
unit tests of the CLI, the daemon and sagafs.  No tracer is involved: this
program makes every system call itself (libc's syscall(2) through ctypes)
and writes one record per call with what actually happened: the real
number, argument registers, return value (-errno on failure), paths,
entry time (CLOCK_REALTIME), duration, CPU, pid/tid/ppid, uid/gid and task
name (read back from /proc after the call, as a driver reads comm at exit).

The workload covers what the log format and the tests need: files opened,
read, written, renamed (two paths) and removed; failures (ENOENT, EEXIST,
EACCES as the nobody user, ECONNREFUSED, ESRCH, ENOTTY); a path longer than
SAGA_PATH_MAX (flag path-truncated), one that is not UTF-8, the empty path
(AT_EMPTY_PATH) and a NULL one (utimensat); memory maps; sockets with their
addresses (the aux blob: connect, bind of an inet and a unix socket, accept4
of a real connection, sendto and recvfrom); execve with its argv (failing:
ENOENT, and one argv longer than the bound, flag aux-truncated); a thread
(tid != pid); children made with a raw clone(2) and a raw clone3(2) (whose
clone_args are the aux blob), whose last record is exit_group (flag
noreturn).  As the drivers do, the child's own return from clone is not
recorded (a call counts once, in the parent).  Successful execve is not
included: its return happens in the new program, which this recorder is
not.  Each record carries the recorder's cgroup v2 id; rule_id is 0 (the
replay driver fills in the rule that logs it).

Run as root (setresuid for the nobody child):  .venv/bin/python tools/gen_fixture.py [--out FILE]
The live driver tests run it too (tests/common/recorded.py): every record it
writes must match what the driver captured of the same call.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import os
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from saga import _uapi, events, syscalls

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "workload.saga.gz")
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.sched_getcpu.restype = ctypes.c_int

AT_FDCWD = -100
O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_CLOEXEC = 0, 1, 0o100, 0o1000, 0o2000000
AT_REMOVEDIR, AT_EMPTY_PATH = 0x200, 0x1000
PROT_READ, PROT_WRITE = 1, 2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
SIGCHLD = 17
PR_SET_NAME = 15
TCGETS = 0x5401
NOBODY = 65534
PATH_KEEP = _uapi.SAGA_PATH_MAX - 1
U64 = (1 << 64) - 1


def cgroup_id() -> int:
    """This process's cgroup v2 id: the inode of its directory in the cgroup2 hierarchy.  With no
    cgroup2 mount nothing can have moved a task out of the root cgroup, whose id is 1."""
    with open("/proc/self/mounts") as f:
        mount = next((line.split()[1] for line in f if line.split()[2] == "cgroup2"), None)
    if mount is None:
        return 1
    with open("/proc/self/cgroup") as f:
        path = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
    return os.stat(mount + path).st_ino


def argv_blob(argv: list[bytes]) -> tuple[bytes, int]:
    """The ARGV aux blob a driver keeps for `argv`: whole strings within the bounds (and its flags)."""
    blob, flags = b"", 0
    for i, arg in enumerate(argv):
        if i >= _uapi.SAGA_AUX_ARGV_ARGS or len(blob) + len(arg) + 1 > _uapi.SAGA_AUX_ARGV_MAX:
            flags = _uapi.SAGA_EVF_AUX_TRUNC
            break
        blob += arg + b"\0"
    return blob, flags


def bounded(data: bytes, bound: int) -> tuple[bytes, int]:
    """A struct aux blob: at most `bound` bytes (and AUX_TRUNC when cut)."""
    return data[:bound], (_uapi.SAGA_EVF_AUX_TRUNC if len(data) > bound else 0)


class Recorder:
    """Makes system calls and keeps a record of each."""

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self._keep: list = []    # buffers that must outlive their call

    def _arg(self, value) -> int:
        if isinstance(value, (bytes, bytearray)):
            buf = ctypes.create_string_buffer(bytes(value))
            self._keep.append(buf)
            return ctypes.addressof(buf)
        if isinstance(value, ctypes.Array | ctypes.Structure | ctypes.c_int):
            self._keep.append(value)
            return ctypes.addressof(value)
        return int(value)

    def call(self, name: str, *args, flags: int = 0, aux: tuple[int, bytes, int] | None = None,
             aux_at_exit=None) -> int:
        """Make the call; record it with its paths and `aux` (kind, blob, flags), or the aux that
        `aux_at_exit(ret)` returns once the call is done (accept's peer address)."""
        sc = syscalls.BY_NAME[name]
        regs = [self._arg(a) for a in args]
        paths, path_flags = [], 0
        for i in sc.path_args:
            if args[i] in (0, None):
                paths.append(None)       # a NULL pointer: no path
                continue
            raw = bytes(args[i])
            if len(raw) > PATH_KEEP:
                raw, path_flags = raw[:PATH_KEEP], _uapi.SAGA_EVF_PATH_TRUNC
            paths.append(raw)
        cpu = libc.sched_getcpu()
        t0 = time.time_ns()
        ret = libc.syscall(sc.slot, *(ctypes.c_long(r) for r in regs))
        t1 = time.time_ns()
        if ret == -1:
            ret = -ctypes.get_errno()
        if aux_at_exit is not None:
            aux = aux_at_exit(ret)
        self.add(sc.slot, regs, ret, t0, t1 - t0, paths, flags | path_flags, cpu, aux)
        return ret

    def add(self, slot: int, regs, ret: int, ts: int, duration: int, paths=(), flags: int = 0,
            cpu: int | None = None, aux: tuple[int, bytes, int] | None = None) -> None:
        with open("/proc/thread-self/comm", "rb") as f:
            comm = f.read().rstrip(b"\n")
        kind, blob, aux_flags = aux or (0, b"", 0)
        self.records.append(events.pack(dict(
            nr=slot, flags=flags | aux_flags, cpu=libc.sched_getcpu() if cpu is None else cpu, pid=os.getpid(),
            tid=threading.get_native_id(), ppid=os.getppid(), uid=os.getuid(), gid=os.getgid(), ts_ns=ts,
            duration_ns=duration, ret=ret, args=[r & U64 for r in regs] + [0] * (6 - len(regs)),
            comm=comm, paths=paths, aux_kind=kind, aux=blob, cgroup_id=cgroup_id())))


def files(r: Recorder, tmp: bytes) -> None:
    for path in (b"/etc/hostname", b"/etc/passwd"):
        fd = r.call("openat", AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0)
        r.call("fstat", fd, ctypes.create_string_buffer(144))
        buf = ctypes.create_string_buffer(4096)
        while r.call("read", fd, buf, 4096) > 0:
            pass
        r.call("close", fd)
    r.call("openat", AT_FDCWD, b"/nonexistent/saga-fixture", O_RDONLY | O_CLOEXEC, 0)
    st = ctypes.create_string_buffer(144)
    r.call("newfstatat", AT_FDCWD, b"/etc", st, 0)
    r.call("newfstatat", AT_FDCWD, b"/etc/saga-no-such-file", st, 0)
    r.call("faccessat", AT_FDCWD, b"/etc/shadow", 4)
    d, f, g = tmp + b"/dir", tmp + b"/file", tmp + b"/renamed"
    r.call("mkdirat", AT_FDCWD, d, 0o755)
    r.call("mkdirat", AT_FDCWD, d, 0o755)                       # EEXIST
    fd = r.call("openat", AT_FDCWD, f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    r.call("write", fd, b"hello, saga\n", 12)
    r.call("close", fd)
    r.call("renameat2", AT_FDCWD, f, AT_FDCWD, g, 0)
    r.call("unlinkat", AT_FDCWD, g, 0)
    r.call("unlinkat", AT_FDCWD, d, AT_REMOVEDIR)
    r.call("openat", AT_FDCWD, b"/tmp/" + b"deep/" * 60 + b"file", O_RDONLY, 0)   # longer than SAGA_PATH_MAX
    r.call("openat", AT_FDCWD, b"/tmp/saga-\xff\xfe-not-utf8", O_RDONLY, 0)
    fd = r.call("openat", AT_FDCWD, b"/etc/hostname", O_RDONLY | O_CLOEXEC, 0)
    r.call("newfstatat", fd, b"", st, AT_EMPTY_PATH)              # the empty path (glibc's fstat)
    r.call("utimensat", fd, 0, 0, 0)                              # a NULL path: none, not a fault
    r.call("close", fd)
    r.call("lseek", 0, 0, 1)
    r.call("ioctl", r.call("openat", AT_FDCWD, b"/dev/null", O_RDONLY | O_CLOEXEC, 0), TCGETS,
           ctypes.create_string_buffer(64))                      # ENOTTY


def bulk_io(r: Recorder) -> None:
    zero = r.call("openat", AT_FDCWD, b"/dev/zero", O_RDONLY | O_CLOEXEC, 0)
    null = r.call("openat", AT_FDCWD, b"/dev/null", O_WRONLY | O_CLOEXEC, 0)
    buf = ctypes.create_string_buffer(65536)
    for _ in range(150):
        r.call("read", zero, buf, 65536)
        r.call("write", null, buf, 65536)
    r.call("close", zero)
    r.call("close", null)


def memory_and_misc(r: Recorder) -> None:
    addr = r.call("mmap", 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    r.call("mprotect", addr, 4096, PROT_READ)
    r.call("munmap", addr, 8192)
    r.call("getpid")
    r.call("uname", ctypes.create_string_buffer(390))
    ts = struct.pack("qq", 0, 1_000_000)
    r.call("clock_nanosleep", 1, 0, ts, 0)
    r.call("kill", os.getpid(), 0)
    r.call("kill", 999_999_999, 0)                               # ESRCH
    fds = (ctypes.c_int * 2)()
    r.call("pipe2", fds, O_CLOEXEC)
    r.call("write", fds[1], b"ping", 4)
    r.call("read", fds[0], ctypes.create_string_buffer(16), 16)
    r.call("close", fds[0])
    r.call("close", fds[1])


def sockaddr_in(port: int) -> bytes:
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", port, socket.inet_aton("127.0.0.1"))


def sockaddr_un(path: bytes) -> bytes:
    return struct.pack("=H", socket.AF_UNIX) + path + b"\0"


def addr_aux(addr: bytes, length: int) -> tuple[int, bytes, int]:
    """The SOCKADDR aux of an address given at entry with `length`."""
    blob, flags = bounded(addr[:length], _uapi.SAGA_AUX_SOCKADDR_MAX)
    return _uapi.SAGA_AUX_SOCKADDR, blob, flags


def returned_addr(buf, lenp):
    """The SOCKADDR aux of an address the kernel wrote at exit (accept4, recvfrom): what it wrote."""
    room = lenp.value

    def at_exit(ret: int):
        if ret < 0:
            return None
        n = lenp.value
        blob, flags = bounded(buf.raw[:min(n, room)], _uapi.SAGA_AUX_SOCKADDR_MAX)
        return _uapi.SAGA_AUX_SOCKADDR, blob, flags | (_uapi.SAGA_EVF_AUX_TRUNC if n > room else 0)
    return at_exit


def network(r: Recorder, tmp: bytes) -> None:
    s = r.call("socket", socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
    a = sockaddr_in(1)
    r.call("connect", s, a, 16, aux=addr_aux(a, 16))                      # ECONNREFUSED
    r.call("close", s)
    u = r.call("socket", socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
    a = sockaddr_un(tmp + b"/sock")
    r.call("bind", u, a, len(a), aux=addr_aux(a, len(a)))
    r.call("close", u)
    # A datagram to a bound port and back: sendto's address at entry, recvfrom's at exit.
    rx, tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx.bind(("127.0.0.1", 0))
    a = sockaddr_in(rx.getsockname()[1])
    r.call("sendto", tx.fileno(), b"ping", 4, 0, a, 16, aux=addr_aux(a, 16))
    buf, lenp = ctypes.create_string_buffer(128), ctypes.c_int(128)
    r.call("recvfrom", rx.fileno(), ctypes.create_string_buffer(16), 16, 0, buf, lenp,
           aux_at_exit=returned_addr(buf, lenp))
    rx.close()
    tx.close()


def in_thread(r: Recorder) -> None:
    def work():
        r.call("gettid")
        fd = r.call("openat", AT_FDCWD, b"/proc/self/stat", O_RDONLY | O_CLOEXEC, 0)
        r.call("read", fd, ctypes.create_string_buffer(1024), 1024)
        r.call("close", fd)
    t = threading.Thread(target=work)
    t.start()
    t.join()


CLONE_ARGS = struct.Struct("<11Q")   # struct clone_args (88 bytes: Linux 5.7+)


def child(r: Recorder, name: bytes, body, use_clone3: bool = False) -> None:
    """A child made with a raw clone(SIGCHLD) or clone3({exit_signal=SIGCHLD}); its records come back
    through a pipe.  The child's own return from the call is not recorded: drivers neither count nor
    log it."""
    rfd, wfd = os.pipe()
    if use_clone3:
        cargs = ctypes.create_string_buffer(CLONE_ARGS.pack(0, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0))
        regs, nr = [ctypes.addressof(cargs), CLONE_ARGS.size], syscalls.BY_NAME["clone3"].slot
        aux = (_uapi.SAGA_AUX_CLONE_ARGS, *bounded(cargs.raw[:CLONE_ARGS.size], _uapi.SAGA_AUX_CLONE_ARGS_MAX))
    else:
        regs, nr, aux = [SIGCHLD, 0, 0, 0, 0], syscalls.BY_NAME["clone"].slot, None
    cpu, t0 = libc.sched_getcpu(), time.time_ns()
    pid = libc.syscall(nr, *(ctypes.c_long(x) for x in regs))
    if pid == 0:
        os.close(rfd)
        c = Recorder()
        c.call("prctl", PR_SET_NAME, name + b"\0", 0, 0, 0)
        body(c)
        c.add(syscalls.BY_NAME["exit_group"].slot, [0], 0, time.time_ns(), 0, flags=_uapi.SAGA_EVF_NORETURN)
        os.write(wfd, b"".join(c.records))
        os._exit(0)
    r.add(nr, regs, pid, t0, time.time_ns() - t0, cpu=cpu, aux=aux)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    r.call("wait4", pid, ctypes.create_string_buffer(4), 0, 0)
    r.records.extend(rec for rec in _split(data))


def _split(data: bytes):
    off = 0
    while off < len(data):
        size = struct.unpack_from("<H", data, off)[0]
        yield data[off:off + size]
        off += size


def as_cat(c: Recorder) -> None:
    fd = c.call("openat", AT_FDCWD, b"/etc/hostname", O_RDONLY | O_CLOEXEC, 0)
    buf = ctypes.create_string_buffer(131072)
    n = c.call("read", fd, buf, 131072)
    c.call("write", c.call("openat", AT_FDCWD, b"/dev/null", O_WRONLY | O_CLOEXEC, 0), buf, max(n, 0))
    c.call("read", fd, buf, 131072)
    c.call("close", fd)


def execve(c: Recorder, path: bytes, argv: list[bytes]) -> None:
    arr = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
    envp = (ctypes.c_char_p * 2)(b"LANG=C", None)
    c.call("execve", path, arr, envp, aux=(_uapi.SAGA_AUX_ARGV, *argv_blob(argv)))


def as_nobody(c: Recorder) -> None:
    c.call("setresgid", NOBODY, NOBODY, NOBODY)
    c.call("setresuid", NOBODY, NOBODY, NOBODY)
    c.call("openat", AT_FDCWD, b"/etc/shadow", O_RDONLY | O_CLOEXEC, 0)   # EACCES
    execve(c, b"/nonexistent/bin/tool", [b"tool", b"--verbose", b"a file"])   # ENOENT
    execve(c, b"/nonexistent/bin/many", [b"many"] + [b"arg%d" % i for i in range(40)])  # argv cut: 32 strings
    c.call("mkdirat", AT_FDCWD, b"/root/saga-denied", 0o700)            # EACCES


def as_server(c: Recorder) -> None:
    s = c.call("socket", socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
    a = sockaddr_in(0)
    c.call("bind", s, a, 16, aux=addr_aux(a, 16))
    c.call("listen", s, 16)
    with socket.socket(fileno=os.dup(s)) as listening:
        client = socket.create_connection(listening.getsockname())
    buf, lenp = ctypes.create_string_buffer(128), ctypes.c_int(128)
    fd = c.call("accept4", s, buf, lenp, socket.SOCK_CLOEXEC, aux_at_exit=returned_addr(buf, lenp))
    client.close()
    c.call("close", fd)
    c.call("close", s)
    for _ in range(20):
        fd = c.call("openat", AT_FDCWD, b"/var/www/index.html", O_RDONLY | O_CLOEXEC, 0)   # ENOENT
        if fd >= 0:
            c.call("close", fd)


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=OUT, help="where to write the recording (gzip)")
    out = ap.parse_args().out
    if os.geteuid() != 0:
        sys.exit("gen_fixture: run as root (a child switches to the nobody user)")
    r = Recorder()
    r.call("prctl", PR_SET_NAME, b"saga-fixture\0", 0, 0, 0)
    with tempfile.TemporaryDirectory(prefix="saga-fixture-") as tmp:
        files(r, tmp.encode())
        network(r, tmp.encode())
    bulk_io(r)
    memory_and_misc(r)
    in_thread(r)
    child(r, b"cat", as_cat)
    child(r, b"sh", as_nobody)
    child(r, b"nginx", as_server, use_clone3=True)
    ts = _uapi.SAGA_EVENT.offset("ts_ns")
    data = b"".join(sorted(r.records, key=lambda rec: struct.unpack_from("<Q", rec, ts)[0]))
    events.parse(data)  # every record well formed
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "wb") as f:
        f.write(gzip.compress(data, mtime=0))
    print(f"{out}: {len(events.parse(data))} records, {len(data)} bytes")


if __name__ == "__main__":
    main()
