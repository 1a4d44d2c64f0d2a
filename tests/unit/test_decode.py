"""The symbolic decoding of arguments and return values (saga.decode), against strace's output."""
import fcntl
import mmap
import os
import signal
import socket

import pytest

from saga import _consts, decode, events, render, syscalls


def one(name, *args, ret=0, **fields):
    (raw,) = events.parse(events.pack(dict(nr=syscalls.BY_NAME[name].slot, args=args, ret=ret, **fields)))
    return raw


def call(name, *args, ret=0, **fields):
    raw = one(name, *args, ret=ret, **fields)
    return f"{name}({render.format_args(raw)}) = {render.format_ret(raw)}"


@pytest.mark.parametrize("line", [
    "futex(0x7f00, FUTEX_WAKE_PRIVATE, 1) = 0",
    "futex(0x7f00, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 0, NULL, FUTEX_BITSET_MATCH_ANY) = 0",
    "futex(0x7f00, FUTEX_WAIT, 2, 0x7ffc00) = 0",
    "futex(0x7f00, FUTEX_CMP_REQUEUE_PRIVATE, 1, 2147483647, 0x7f08, 0) = 0",
    "fcntl(3, F_GETFL) = 0x8002 (flags O_RDWR|O_LARGEFILE)",
    "fcntl(3, F_GETFD) = 0x1 (flags FD_CLOEXEC)",
    "fcntl(3, F_SETFD, FD_CLOEXEC) = 0",
    "fcntl(3, F_SETFL, O_RDONLY|O_NONBLOCK) = 0",
    "fcntl(3, F_DUPFD_CLOEXEC, 10) = 11",
    "fcntl(3, F_SETLK, 0x7ffc00) = 0",
    "ioctl(1, TCGETS, 0x7ffc00) = -25 ENOTTY",
    "ioctl(3, FIONBIO, 0x7ffc00) = 0",
    "arch_prctl(ARCH_SET_FS, 0x7f5a00) = 0",
    "prlimit64(0, RLIMIT_STACK, NULL, 0x7ffc00) = 0",
    "madvise(0x7f0000, 4096, MADV_DONTNEED) = 0",
    "fadvise64(3, 0, 0, POSIX_FADV_SEQUENTIAL) = 0",
    "pipe2(0x7ffc00, O_CLOEXEC) = 0",
    "dup3(3, 4, O_CLOEXEC) = 4",
    "epoll_create1(EPOLL_CLOEXEC) = 5",
    "epoll_ctl(5, EPOLL_CTL_ADD, 3, 0x7ffc00) = 0",
    "renameat2(AT_FDCWD, 0x10, AT_FDCWD, 0x20, RENAME_NOREPLACE) = 0",
    "statx(AT_FDCWD, 0x10, AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, 0x7ffc00) = 0",
    "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, 0x7ffc00, 4) = 0",
    "setsockopt(3, SOL_TCP, TCP_NODELAY, 0x7ffc00, 4) = 0",
    "getsockopt(3, SOL_SOCKET, SO_ERROR, 0x7ffc00, 0x7ffc10) = 0",
    "socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 3",
    "socket(AF_UNIX, SOCK_DGRAM|SOCK_NONBLOCK, 0) = 3",
    "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) = 3",
    "shutdown(3, SHUT_WR) = 0",
    "sendto(3, 0x7f00, 10, MSG_DONTWAIT|MSG_NOSIGNAL, NULL, 0) = 10",
    "accept4(3, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = 4",
    "clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, 0x7ffc00, NULL) = 0",
    "rt_sigaction(SIGRT_1, 0x7ffc00, NULL, 8) = 0",
    "rt_sigaction(SIGRTMIN, 0x7ffc00, NULL, 8) = 0",
    "rt_sigprocmask(SIG_BLOCK, 0x7ffc00, NULL, 8) = 0",
    "kill(-1, SIGKILL) = 0",
    "prctl(PR_GET_DUMPABLE) = 1",
    "prctl(PR_SET_NAME, 0x7ffc00) = 0",
    "prctl(PR_SET_PDEATHSIG, SIGTERM) = 0",
    "prctl(PR_CAPBSET_READ, CAP_MAC_OVERRIDE) = 1",
    "prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) = 0",
    "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f10) = 42",
    "wait4(-1, 0x7ffc00, WNOHANG|__WALL, NULL) = 0",
    "getrandom(0x7ffc00, 8, GRND_NONBLOCK) = 8",
    "flock(3, LOCK_EX|LOCK_NB) = 0",
    "mknod(0x10, S_IFIFO|0644, 0) = 0",
    "access(0x10, R_OK|X_OK) = 0",
    "timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC|TFD_NONBLOCK) = 3",
    "eventfd2(0, EFD_CLOEXEC|EFD_NONBLOCK) = 3",
    "memfd_create(0x10, MFD_CLOEXEC|MFD_ALLOW_SEALING) = 3",
    "unshare(CLONE_NEWNS|CLONE_NEWPID) = 0",
    "getrusage(RUSAGE_CHILDREN, 0x7ffc00) = 0",
    "getrusage(RUSAGE_THREAD, 0x7ffc00) = 0",
    "mmap(NULL, 2097152, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB, -1, 0) = 0x0",
    "rseq(0x7f00, 0x20, 0, 0x53053053) = 0",
])
def test_calls_print_like_strace(line):
    """Each line is parsed back into raw arguments, rendered, and must come out the same."""
    name, rest = line.split("(", 1)
    args_text, ret_text = rest.rsplit(") = ", 1)
    assert call(name, *_raw_args(name, args_text), ret=_raw_ret(ret_text)) == line


def _raw_args(name, text):
    """The register values behind an expected line (names looked up in the generated tables)."""
    values = []
    for tok in [t.strip() for t in text.split(", ")] if text else []:
        tok = tok.split("=", 1)[1] if "=" in tok else tok
        values.append(_value(tok))
    if name == "clone":   # named, in strace's order: child_stack, flags, child_tidptr
        return (values[1], values[0], 0, values[2], 0)
    if name == "futex" and len(values) == 5:   # uaddr, op, val, timeout, val3 (uaddr2 skipped)
        return (*values[:4], 0, values[4])
    if name == "prctl" and len(values) == 1:
        return (values[0], 0, 0, 0, 0)
    if name == "fcntl" and len(values) == 2:
        return (*values, 0)
    return tuple(values)


def _value(tok):
    total = 0
    for part in tok.split("|"):
        if part in _NAMED:
            total |= _NAMED[part]
        elif part[0] == "0" and part[1:].isdigit():
            total |= int(part, 8)
        elif part[0] in "-0123456789":
            total |= int(part, 0) & (2**64 - 1)
        else:
            total |= _lookup(part)
    return total


def _lookup(name):
    if name.startswith("SIGRT_"):
        return 32 + int(name[6:])
    if name.startswith("MAP_HUGE_"):
        return 21 << 26
    for table in vars(_consts).values():
        if isinstance(table, tuple):
            for n, v in table:
                if n == name:
                    return v & (2**64 - 1)
    raise KeyError(name)


_NAMED = {"NULL": 0, "AT_FDCWD": 2**32 - 100, "R_OK": 4, "X_OK": 1, "O_RDONLY": 0, "O_RDWR": 2,
          "AT_STATX_SYNC_AS_STAT": 0, "S_IFIFO": 0o10000 | 0o0, "MAP_PRIVATE": 2}


def _raw_ret(text):
    first = text.split(" ")[0]
    return int(first, 0)


def test_the_tables_agree_with_the_c_library():
    """Values generated from the kernel's headers hold the numbers glibc (Python's modules) has for them."""
    tables = {n: v for t in vars(_consts).values() if isinstance(t, tuple) for n, v in t}
    checked = 0
    for module in (os, signal, socket, mmap, fcntl):
        for name in dir(module):
            value = getattr(module, name)
            # glibc's O_LARGEFILE is 0 on 64-bit; strace, like the kernel, prints the bit 64-bit calls carry
            if name in tables and isinstance(value, int) and name not in ("SIGRTMIN", "SIGRTMAX", "O_LARGEFILE"):
                assert tables[name] & 0xFFFFFFFF == value & 0xFFFFFFFF, name
                checked += 1
    assert checked > 250


def test_ioctl_requests_without_a_name_are_decoded_like_strace():
    rw = 3 << 30 | 0x20 << 16 | 0xAB << 8 | 0x12
    assert call("ioctl", 3, rw, 0) == "ioctl(3, _IOC(_IOC_READ|_IOC_WRITE, 0xab, 0x12, 0x20), NULL) = 0"
    assert decode.ioctl_request(1 << 30 | 4 << 16 | 0x54 << 8 | 0x99) == "_IOC(_IOC_WRITE, 0x54, 0x99, 0x4)"


def test_unknown_bits_and_values_stay_visible():
    assert decode.open_flags(0o2000000 | 0x40000000) == "O_RDONLY|O_CLOEXEC|0x40000000"
    assert decode.fcntl_cmd(9999) == "0x270f"
    assert decode.signal_name(77) == "77"
    assert decode.ioctl_request(0x1234) == "0x1234"
    assert decode.futex_op(0x7F) == "0x7f"


def test_every_decoder_names_an_argument_the_table_has():
    for (call_name, arg), _ in decode.BY_ARG.items():
        spec = syscalls.BY_NAME.get(call_name)
        assert spec is not None, call_name
        assert arg in [a.name for a in spec.args], (call_name, arg)
    assert set(decode.CALLS) <= set(syscalls.BY_NAME)
