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
SAGA_PATH_MAX (flag path-truncated) and one that is not UTF-8; memory maps;
sockets; a thread (tid != pid); children made with a raw clone(2), whose
first record is the child's side of clone (flag no-enter: a driver sees its
exit without its entry) and whose last is exit_group (flag noreturn).
Successful execve is not included: its return happens in the new program,
which this recorder is not.

Run as root (setresuid for the nobody child):  .venv/bin/python tools/gen_fixture.py
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
AT_REMOVEDIR = 0x200
PROT_READ, PROT_WRITE = 1, 2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
SIGCHLD = 17
PR_SET_NAME = 15
TCGETS = 0x5401
NOBODY = 65534
PATH_KEEP = _uapi.SAGA_PATH_MAX - 1
U64 = (1 << 64) - 1


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
        if isinstance(value, ctypes.Array | ctypes.Structure):
            self._keep.append(value)
            return ctypes.addressof(value)
        return int(value)

    def call(self, name: str, *args, flags: int = 0) -> int:
        sc = syscalls.BY_NAME[name]
        regs = [self._arg(a) for a in args]
        paths, path_flags = [], 0
        for i in sc.path_args:
            raw = bytes(args[i])
            if len(raw) > PATH_KEEP:
                raw, path_flags = raw[:PATH_KEEP], _uapi.SAGA_EVF_PATH_TRUNC
            paths.append(raw.decode("utf-8", "surrogateescape"))
        cpu = libc.sched_getcpu()
        t0 = time.time_ns()
        ret = libc.syscall(sc.slot, *(ctypes.c_long(r) for r in regs))
        t1 = time.time_ns()
        if ret == -1:
            ret = -ctypes.get_errno()
        self.add(sc.slot, regs, ret, t0, t1 - t0, paths, flags | path_flags, cpu)
        return ret

    def add(self, slot: int, regs, ret: int, ts: int, duration: int, paths=(), flags: int = 0,
            cpu: int | None = None) -> None:
        with open("/proc/thread-self/comm", "rb") as f:
            comm = f.read().rstrip(b"\n")
        self.records.append(events.pack(dict(
            nr=slot, flags=flags, cpu=libc.sched_getcpu() if cpu is None else cpu, pid=os.getpid(),
            tid=threading.get_native_id(), ppid=os.getppid(), uid=os.getuid(), gid=os.getgid(), ts_ns=ts,
            duration_ns=duration, ret=ret, args=[r & U64 for r in regs] + [0] * (6 - len(regs)),
            comm=comm, paths=paths)))


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


def network(r: Recorder) -> None:
    s = r.call("socket", socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
    r.call("connect", s, sockaddr_in(1), 16)                               # ECONNREFUSED
    r.call("close", s)
    u = r.call("socket", socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
    r.call("close", u)


def in_thread(r: Recorder) -> None:
    def work():
        r.call("gettid")
        fd = r.call("openat", AT_FDCWD, b"/proc/self/stat", O_RDONLY | O_CLOEXEC, 0)
        r.call("read", fd, ctypes.create_string_buffer(1024), 1024)
        r.call("close", fd)
    t = threading.Thread(target=work)
    t.start()
    t.join()


def child(r: Recorder, name: bytes, body) -> None:
    """A child made with a raw clone(SIGCHLD); its records come back through a pipe."""
    rfd, wfd = os.pipe()
    regs = [SIGCHLD, 0, 0, 0, 0]
    cpu, t0 = libc.sched_getcpu(), time.time_ns()
    pid = libc.syscall(syscalls.BY_NAME["clone"].slot, *(ctypes.c_long(x) for x in regs))
    if pid == 0:
        os.close(rfd)
        c = Recorder()
        # The child's side of clone: a driver sees the return in the new task, never its entry.
        c.add(syscalls.BY_NAME["clone"].slot, [0] * 6, 0, time.time_ns(), 0, flags=_uapi.SAGA_EVF_NO_ENTER)
        c.call("prctl", PR_SET_NAME, name + b"\0", 0, 0, 0)
        body(c)
        c.add(syscalls.BY_NAME["exit_group"].slot, [0], 0, time.time_ns(), 0, flags=_uapi.SAGA_EVF_NORETURN)
        os.write(wfd, b"".join(c.records))
        os._exit(0)
    r.add(syscalls.BY_NAME["clone"].slot, regs, pid, t0, time.time_ns() - t0, cpu=cpu)
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


def as_nobody(c: Recorder) -> None:
    c.call("setresgid", NOBODY, NOBODY, NOBODY)
    c.call("setresuid", NOBODY, NOBODY, NOBODY)
    c.call("openat", AT_FDCWD, b"/etc/shadow", O_RDONLY | O_CLOEXEC, 0)   # EACCES
    c.call("execve", b"/nonexistent/bin/tool", 0, 0)                    # ENOENT
    c.call("mkdirat", AT_FDCWD, b"/root/saga-denied", 0o700)            # EACCES


def as_server(c: Recorder) -> None:
    s = c.call("socket", socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
    c.call("bind", s, sockaddr_in(0), 16)
    c.call("listen", s, 16)
    c.call("close", s)
    for _ in range(20):
        fd = c.call("openat", AT_FDCWD, b"/var/www/index.html", O_RDONLY | O_CLOEXEC, 0)   # ENOENT
        if fd >= 0:
            c.call("close", fd)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("gen_fixture: run as root (a child switches to the nobody user)")
    r = Recorder()
    r.call("prctl", PR_SET_NAME, b"saga-fixture\0", 0, 0, 0)
    with tempfile.TemporaryDirectory(prefix="saga-fixture-") as tmp:
        files(r, tmp.encode())
    bulk_io(r)
    memory_and_misc(r)
    network(r)
    in_thread(r)
    child(r, b"cat", as_cat)
    child(r, b"sh", as_nobody)
    child(r, b"nginx", as_server)
    data = b"".join(sorted(r.records, key=lambda rec: struct.unpack_from("<Q", rec, 32)[0]))
    events.parse(data)  # every record well formed
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(gzip.compress(data, mtime=0))
    print(f"{OUT}: {len(events.parse(data))} records, {len(data)} bytes")


if __name__ == "__main__":
    main()
