"""Symbolic names for argument and return values (x86_64 Linux), as strace prints them.

Three layers, all built once at import:
- decoders of one raw register value (`O_RDONLY|O_CLOEXEC`, `AT_FDCWD`,
  `SIGTERM`), made from the tables tools/gen_consts.py generates from the
  kernel's headers (saga._consts); unknown bits and values stay visible in hex;
- BY_ARG: which decoder prints which (syscall, argument);
- CALLS and RETURNS: calls whose arguments depend on each other (futex's
  operation decides which arguments it reads, fcntl's command how its third
  argument reads, setsockopt's level the option's name) and return values
  with a meaning (`fcntl(3, F_GETFL) = 0x8002 (flags O_RDWR|O_LARGEFILE)`).
"""
from __future__ import annotations

import errno as _errno
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from saga import _consts as C

Decoder = Callable[[int], str]
Table = tuple[tuple[str, int], ...]


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & 0x8000000000000000 else v


def hex0(v: int) -> str:
    return hex(v) if v else "0"


def _select(table: Table, only: str | Iterable[str] | None) -> list[tuple[str, int]]:
    if only is None:
        return list(table)
    if isinstance(only, str):
        return [(n, v) for n, v in table if re.fullmatch(only, n)]
    wanted = list(only)
    by_name = dict(table)
    return [(n, by_name[n]) for n in wanted]


def flags(table: Table, *, only: str | Iterable[str] | None = None, zero: str = "0", bits: int = 32) -> Decoder:
    """A decoder for OR-ed flags: names of masks wholly set (wider masks first), the rest in hex."""
    width = (1 << bits) - 1
    seen: set[int] = set()
    masks: list[tuple[int, str]] = []
    for name, value in _select(table, only):
        value &= width
        if value and value not in seen:   # the first name of a value wins
            seen.add(value)
            masks.append((value, name))
    masks.sort(key=lambda m: -bin(m[0]).count("1"))   # stable: header order within a width

    def decode(v: int) -> str:
        v &= width
        names = []
        for mask, name in masks:
            if v & mask == mask:
                names.append(name)
                v &= ~mask
                if not v:
                    break
        if v:
            names.append(hex(v))
        return "|".join(names) if names else zero
    return decode


def enum(table: Table, *, only: str | Iterable[str] | None = None, bits: int = 32, signed: bool = False,
         unknown: Decoder = hex0) -> Decoder:
    """A decoder for one value of a list; a value not in it printed by `unknown`."""
    names: dict[int, str] = {}
    for name, value in _select(table, only):
        names.setdefault(value, name)
    width = (1 << bits) - 1

    def decode(v: int) -> str:
        v &= width
        if signed and bits == 32:
            v = s32(v)
        name = names.get(v)
        return name if name is not None else unknown(v)
    return decode


def _dec(v: int) -> str:
    return str(v)


def _s32str(v: int) -> str:
    return str(s32(v))


# ---------------------------------------------------------------------------
# open(2), files

_O_ACC = {v: n for n, v in C.O_ACCMODE}
O_CREAT = dict(C.O_FLAGS)["O_CREAT"]
O_TMPFILE = dict(C.O_FLAGS)["O_TMPFILE"]
_o_bits = flags(C.O_FLAGS, zero="")


def open_flags(v: int) -> str:
    rest = _o_bits(v & ~3)
    return _O_ACC.get(v & 3, "O_ACCMODE") + ("|" + rest if rest else "")


def open_takes_mode(flags_: int) -> bool:
    """open's mode is read only with O_CREAT or O_TMPFILE (whose bits include O_DIRECTORY's)."""
    return bool(flags_ & O_CREAT) or flags_ & O_TMPFILE == O_TMPFILE


def dirfd(v: int) -> str:
    v = s32(v)
    return "AT_FDCWD" if v == -100 else str(v)


def octal(v: int) -> str:
    """A file mode as strace prints it (C's %#03o): 0644, 027, 000."""
    v &= 0xFFFFFFFF
    return f"0{v:o}".rjust(3, "0") if v else "000"


def octal_ret(v: int) -> str:
    """A mode returned by umask (C's %#o): 022, 0."""
    return f"0{v:o}" if v > 0 else str(v)


def ugid(v: int) -> str:
    """A uid or gid: unsigned, but -1 ("leave unchanged") as -1 like strace."""
    v &= 0xFFFFFFFF
    return "-1" if v == 0xFFFFFFFF else str(v)


_S_IFMT = 0o170000
_file_type = enum(C.FILE_TYPES)


def mknod_mode(v: int) -> str:
    """mknod's mode: the file type by name, then the permissions in octal (S_IFREG|0644)."""
    kind = v & _S_IFMT
    perm = v & ~_S_IFMT & 0xFFFFFFFF
    return (_file_type(kind) + "|" if kind else "") + octal(perm)


_ACCESS = (("R_OK", 4), ("W_OK", 2), ("X_OK", 1))   # unistd.h, not a kernel header
access_mode = flags(_ACCESS, zero="F_OK")

_AT_COMMON = ("AT_SYMLINK_NOFOLLOW", "AT_REMOVEDIR", "AT_SYMLINK_FOLLOW", "AT_NO_AUTOMOUNT", "AT_EMPTY_PATH",
              "AT_RECURSIVE")
at_flags = flags(C.AT_FLAGS, only=[n for n in _AT_COMMON if n != "AT_REMOVEDIR"])
unlinkat_flags = flags(C.AT_FLAGS, only=("AT_REMOVEDIR",))
faccessat_flags = flags(C.AT_FLAGS, only=("AT_SYMLINK_NOFOLLOW", "AT_EACCESS", "AT_EMPTY_PATH"))
_AT_SYNC_TYPE = dict(C.AT_FLAGS)["AT_STATX_SYNC_TYPE"]
_statx_sync = enum(C.AT_FLAGS, only=("AT_STATX_SYNC_AS_STAT", "AT_STATX_FORCE_SYNC", "AT_STATX_DONT_SYNC"))


def statx_flags(v: int) -> str:
    rest = at_flags(v & ~_AT_SYNC_TYPE & 0xFFFFFFFF)
    head = _statx_sync(v & _AT_SYNC_TYPE)
    return head if rest == "0" else f"{head}|{rest}"


statx_mask = flags(C.STATX_MASK)
rename_flags = flags(C.RENAME_FLAGS)
whence = enum(C.SEEK_WHENCE)
fd_flags = flags(C.FD_FLAGS)
flock_op = flags(C.FLOCK_OPS)
xattr_flags = flags(C.XATTR_FLAGS)
falloc_mode = flags(C.FALLOC_FLAGS)
rwf_flags = flags(C.RWF_FLAGS)
sync_file_range_flags = flags(C.SYNC_FILE_RANGE_FLAGS)
close_range_flags = flags(C.CLOSE_RANGE_FLAGS)
mount_flags = flags(C.MOUNT_FLAGS, bits=64)
umount_flags = flags(C.UMOUNT_FLAGS)
pipe_flags = flags(C.O_FLAGS, only=("O_NONBLOCK", "O_DIRECT", "O_CLOEXEC"))
dup3_flags = flags(C.O_FLAGS, only=("O_CLOEXEC",))

# ---------------------------------------------------------------------------
# memory

prot = flags(C.PROT_FLAGS, zero="PROT_NONE")
_MAP_TYPE = {v: n for n, v in C.MAP_TYPES}
_map_bits = flags(C.MAP_FLAGS, zero="")
_MAP_HUGE_SHIFT, _MAP_HUGE_MASK = 26, 0x3F


def map_flags(v: int) -> str:
    """mmap's flags: the mapping type, the flags, and MAP_HUGE_2MB-style page sizes."""
    v &= 0xFFFFFFFF
    parts = [_MAP_TYPE.get(v & 0xF, hex(v & 0xF))]
    huge = (v >> _MAP_HUGE_SHIFT) & _MAP_HUGE_MASK
    rest = _map_bits(v & ~0xF & ~(_MAP_HUGE_MASK << _MAP_HUGE_SHIFT))
    if rest:
        parts.append(rest)
    if huge:
        size = 1 << huge
        parts.append(f"MAP_HUGE_{size >> 30}GB" if size >= 1 << 30 else f"MAP_HUGE_{size >> 20}MB"
                     if size >= 1 << 20 else f"MAP_HUGE_{size >> 10}KB")
    return "|".join(parts)


mremap_flags = flags(C.MREMAP_FLAGS)
msync_flags = flags(C.MSYNC_FLAGS)
madvise_advice = enum(C.MADV_ADVICE)
mlockall_flags = flags(C.MLOCKALL_FLAGS)
mlock2_flags = flags(C.MLOCK_FLAGS)
memfd_flags = flags(C.MFD_FLAGS)
fadvise_advice = enum(C.FADV_ADVICE)

# ---------------------------------------------------------------------------
# processes, signals, time


def _signal_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for n, v in C.SIGNALS:
        names.setdefault(v, n)
    rtmin = dict(C.SIGNALS)["SIGRTMIN"]
    for v in range(rtmin + 1, 65):   # the real-time signals past SIGRTMIN, as strace names them
        names[v] = f"SIGRT_{v - rtmin}"
    return names


SIGNALS = _signal_names()


def signal_name(v: int) -> str:
    v = s32(v)
    return SIGNALS.get(v, str(v))


_clone_bits = flags(C.CLONE_FLAGS, zero="", bits=64)


def clone_flags(v: int) -> str:
    """clone's flags: CLONE_* and, in the low byte, the signal sent to the parent at exit."""
    rest = _clone_bits(v & ~0xFF)
    sig = v & 0xFF
    parts = [p for p in (rest, SIGNALS.get(sig, str(sig)) if sig else "") if p]
    return "|".join(parts) if parts else "0"


clone3_flags = flags(C.CLONE_FLAGS, bits=64)
unshare_flags = flags(C.CLONE_FLAGS, only=r"CLONE_(NEW\w+|FILES|FS|SYSVSEM|THREAD|SIGHAND|VM)")
sigprocmask_how = enum(C.SIGPROCMASK_HOW)
wait_options = flags(C.WAIT_OPTIONS)
waitid_options = flags(C.WAIT_OPTIONS + (("WSTOPPED", 2),), only=("WNOHANG", "WEXITED", "WSTOPPED", "WCONTINUED",
                                                                 "WNOWAIT", "__WNOTHREAD", "__WALL", "__WCLONE"))
waitid_type = enum(C.WAITID_TYPES)
sched_policy = enum(C.SCHED_POLICIES, unknown=_dec)
arch_prctl_code = enum(C.ARCH_PRCTL_CODES)
rlimit_resource = enum(C.RLIMIT_RESOURCES, unknown=_dec)
rusage_who = enum(C.RUSAGE_WHO, signed=True, unknown=_s32str)
prio_which = enum(C.PRIO_WHICH, unknown=_dec)
clock_id = enum(C.CLOCK_IDS, signed=True, unknown=_s32str)
timer_flags = flags(C.TIMER_FLAGS)
itimer_which = enum(C.ITIMER_WHICH, unknown=_dec)
timerfd_create_flags = flags(C.TFD_FLAGS, only=("TFD_CLOEXEC", "TFD_NONBLOCK"))
timerfd_settime_flags = flags(C.TFD_FLAGS, only=("TFD_TIMER_ABSTIME", "TFD_TIMER_CANCEL_ON_SET"))
eventfd_flags = flags(C.EFD_FLAGS)
signalfd_flags = flags(C.SFD_FLAGS)
inotify_init_flags = flags(C.IN_INIT_FLAGS)
inotify_mask = flags(C.IN_EVENTS)
epoll_ctl_op = enum(C.EPOLL_CTL_OPS)
epoll_flags = flags(C.EPOLL_FLAGS)
getrandom_flags = flags(C.GRND_FLAGS)
pidfd_flags = flags(C.PIDFD_FLAGS)
ptrace_request = enum(C.PTRACE_REQUESTS)
seccomp_op = enum(C.SECCOMP_OPS)
seccomp_filter_flags = flags(C.SECCOMP_FILTER_FLAGS)
membarrier_cmd = enum(C.MEMBARRIER_CMDS)
capability = enum(C.CAPABILITIES, unknown=_dec)

# ---------------------------------------------------------------------------
# sockets

family = enum(C.ADDRESS_FAMILIES, unknown=_dec)
_SOCK_TYPE = {v: n for n, v in C.SOCK_TYPES}
_sock_bits = flags(C.SOCK_FLAGS, zero="")
sock_flags = flags(C.SOCK_FLAGS)


def sock_type(v: int) -> str:
    kind = _SOCK_TYPE.get(v & 0xF, hex(v & 0xF))
    rest = _sock_bits(v & ~0xF)
    return kind + ("|" + rest if rest else "")


_AF = dict(C.ADDRESS_FAMILIES)
_ip_protocol = enum(C.IP_PROTOCOLS, unknown=_dec)
_netlink_protocol = enum(C.NETLINK_PROTOCOLS, unknown=_dec)
PROTOCOLS_BY_FAMILY: dict[int, Decoder] = {_AF["AF_INET"]: _ip_protocol, _AF["AF_INET6"]: _ip_protocol,
                                           _AF["AF_NETLINK"]: _netlink_protocol}
msg_flags = flags(C.MSG_FLAGS)
shutdown_how = enum(C.SHUTDOWN_HOW, unknown=_dec)
socket_level = enum(C.SOCKET_LEVELS, unknown=_dec)
_SOL = dict(C.SOCKET_LEVELS)
OPTIONS_BY_LEVEL: dict[int, Decoder] = {
    _SOL["SOL_SOCKET"]: enum(C.SO_OPTIONS, unknown=_dec),
    _SOL["SOL_TCP"]: enum(C.TCP_OPTIONS, unknown=_dec),
    _SOL["SOL_IP"]: enum(C.IP_OPTIONS, unknown=_dec),
    _SOL["SOL_IPV6"]: enum(C.IPV6_OPTIONS, unknown=_dec),
}

# ---------------------------------------------------------------------------
# ioctl requests: by name, else decoded as strace does (_IOC(dir, type, nr, size))

_IOCTL_NAMES: dict[int, str] = {}
for _n, _v in C.IOCTLS:
    _IOCTL_NAMES.setdefault(_v & 0xFFFFFFFF, _n)
_IOC_DIRS = ((2, "_IOC_READ"), (1, "_IOC_WRITE"))


def ioctl_request(v: int) -> str:
    v &= 0xFFFFFFFF
    name = _IOCTL_NAMES.get(v)
    if name is not None:
        return name
    d, size, typ, nr = v >> 30, (v >> 16) & 0x3FFF, (v >> 8) & 0xFF, v & 0xFF
    if not d and not size:
        return hex(v)
    dirs = "|".join(n for bit, n in _IOC_DIRS if d & bit) or "_IOC_NONE"
    return f"_IOC({dirs}, {typ:#x}, {nr:#x}, {size:#x})"


# ---------------------------------------------------------------------------
# Decoders for (syscall, argument) pairs; the rest print by the argument's kind.

BY_ARG: dict[tuple[str, str], Decoder] = {}


def _on(decoder: Decoder, *pairs: str) -> None:
    for pair in pairs:
        call, arg = pair.split(".")
        BY_ARG[(call, arg)] = decoder


_on(open_flags, "open.flags", "openat.flags", "mq_open.oflag", "open_by_handle_at.flags")
_on(at_flags, "newfstatat.flag", "fchownat.flag", "utimensat.flags", "linkat.flags", "execveat.flags",
    "name_to_handle_at.flag", "fchmodat2.flags", "mount_setattr.flags",
    "setxattrat.at_flags", "getxattrat.at_flags", "listxattrat.at_flags", "removexattrat.at_flags",
    "file_getattr.at_flags", "file_setattr.at_flags")
_on(statx_flags, "statx.flags")
_on(statx_mask, "statx.mask")
_on(unlinkat_flags, "unlinkat.flag")
_on(faccessat_flags, "faccessat2.flags")
_on(access_mode, "access.mode", "faccessat.mode", "faccessat2.mode")
_on(mknod_mode, "mknod.mode", "mknodat.mode")
_on(rename_flags, "renameat2.flags")
_on(whence, "lseek.whence")
_on(flock_op, "flock.cmd")
_on(xattr_flags, "setxattr.flags", "lsetxattr.flags", "fsetxattr.flags")
_on(falloc_mode, "fallocate.mode")
_on(rwf_flags, "preadv2.flags", "pwritev2.flags")
_on(sync_file_range_flags, "sync_file_range.flags")
_on(close_range_flags, "close_range.flags")
_on(mount_flags, "mount.flags")
_on(umount_flags, "umount2.flags")
_on(pipe_flags, "pipe2.flags")
_on(dup3_flags, "dup3.flags")
_on(prot, "mmap.prot", "mprotect.prot", "pkey_mprotect.prot")
_on(map_flags, "mmap.flags")
_on(mremap_flags, "mremap.flags")
_on(msync_flags, "msync.flags")
_on(madvise_advice, "madvise.behavior", "process_madvise.behavior")
_on(mlockall_flags, "mlockall.flags")
_on(mlock2_flags, "mlock2.flags")
_on(memfd_flags, "memfd_create.flags")
_on(fadvise_advice, "fadvise64.advice")
_on(signal_name, "kill.sig", "tkill.sig", "tgkill.sig", "rt_sigaction.sig", "pidfd_send_signal.sig",
    "rt_sigqueueinfo.sig", "rt_tgsigqueueinfo.sig")
_on(clone_flags, "clone.clone_flags")
_on(unshare_flags, "unshare.unshare_flags", "setns.nstype")
_on(sigprocmask_how, "rt_sigprocmask.how")
_on(wait_options, "wait4.options")
_on(waitid_options, "waitid.options")
_on(waitid_type, "waitid.which")
_on(sched_policy, "sched_setscheduler.policy")
_on(arch_prctl_code, "arch_prctl.option")
_on(rlimit_resource, "prlimit64.resource", "getrlimit.resource", "setrlimit.resource")
_on(rusage_who, "getrusage.who")
_on(prio_which, "getpriority.which", "setpriority.which")
_on(clock_id, "clock_gettime.which_clock", "clock_settime.which_clock", "clock_getres.which_clock",
    "clock_nanosleep.which_clock", "clock_adjtime.which_clock", "timer_create.which_clock",
    "timerfd_create.clockid")
_on(timer_flags, "clock_nanosleep.flags", "timer_settime.flags")
_on(itimer_which, "getitimer.which", "setitimer.which")
_on(timerfd_create_flags, "timerfd_create.flags")
_on(timerfd_settime_flags, "timerfd_settime.flags")
_on(eventfd_flags, "eventfd2.flags")
_on(signalfd_flags, "signalfd4.flags")
_on(inotify_init_flags, "inotify_init1.flags")
_on(inotify_mask, "inotify_add_watch.mask")
_on(epoll_ctl_op, "epoll_ctl.op")
_on(epoll_flags, "epoll_create1.flags")
_on(getrandom_flags, "getrandom.flags")
_on(pidfd_flags, "pidfd_open.flags")
_on(ptrace_request, "ptrace.request")
_on(seccomp_op, "seccomp.op")
_on(membarrier_cmd, "membarrier.cmd")
_on(family, "socket.family", "socketpair.family")
_on(sock_type, "socket.type", "socketpair.type")
_on(sock_flags, "accept4.flags")
_on(msg_flags, "sendto.flags", "recvfrom.flags", "sendmsg.flags", "recvmsg.flags", "sendmmsg.flags",
    "recvmmsg.flags")
_on(shutdown_how, "shutdown.how")
_on(socket_level, "setsockopt.level", "getsockopt.level")
_on(ioctl_request, "ioctl.cmd")
_on(hex0, "mmap.off", "rseq.rseq_len", "rseq.sig")   # strace prints these numbers in hex

# Calls whose mode argument only matters with O_CREAT/O_TMPFILE (strace prints it only then).
MODE_NEEDS_CREAT = {"open": 2, "openat": 3}

# ---------------------------------------------------------------------------
# Calls printed as a whole: (raw args, the arguments as printed one by one) -> the arguments.

CallPrinter = Callable[[tuple, list[str]], list[str]]
CALLS: dict[str, CallPrinter] = {}


def _call(name: str) -> Callable[[CallPrinter], CallPrinter]:
    def register(fn: CallPrinter) -> CallPrinter:
        CALLS[name] = fn
        return fn
    return register


_FUTEX_OPS = {v: n for n, v in reversed(C.FUTEX_OPS)}   # the _PRIVATE name where both exist
_FUTEX_FLAGS = dict(C.FUTEX_OP_FLAGS)
_FUTEX_PRIVATE, _FUTEX_CLOCK_RT = _FUTEX_FLAGS["FUTEX_PRIVATE_FLAG"], _FUTEX_FLAGS["FUTEX_CLOCK_REALTIME"]
_FUTEX = {n: v for n, v in C.FUTEX_OPS}
_futex_bitset = enum(C.FUTEX_BITSETS)


@lru_cache(maxsize=64)
def futex_op(v: int) -> str:
    v &= 0xFFFFFFFF
    name = _FUTEX_OPS.get(v & ~_FUTEX_CLOCK_RT)
    if name is None:
        return hex(v)
    return name + ("|FUTEX_CLOCK_REALTIME" if v & _FUTEX_CLOCK_RT else "")


# futex's arguments after the operation, by command (as strace's futex decoder prints them): which of
# val, timeout or val2 (the same register), uaddr2 and val3 the command reads.
_FUTEX_ARGS: dict[str, tuple[str, ...]] = {
    "FUTEX_WAIT": ("val", "timeout"), "FUTEX_WAKE": ("val",), "FUTEX_FD": ("val",), "FUTEX_LOCK_PI": ("timeout",),
    "FUTEX_LOCK_PI2": ("timeout",), "FUTEX_UNLOCK_PI": (), "FUTEX_TRYLOCK_PI": (),
    "FUTEX_WAIT_BITSET": ("val", "timeout", "bitset"), "FUTEX_WAKE_BITSET": ("val", "bitset"),
    "FUTEX_REQUEUE": ("val", "val2", "uaddr2"), "FUTEX_CMP_REQUEUE": ("val", "val2", "uaddr2", "val3"),
    "FUTEX_CMP_REQUEUE_PI": ("val", "val2", "uaddr2", "val3"),
    "FUTEX_WAKE_OP": ("val", "val2", "uaddr2", "wake_op"), "FUTEX_WAIT_REQUEUE_PI": ("val", "timeout", "uaddr2"),
}
_FUTEX_ARGS_BY_CMD = {_FUTEX[n]: a for n, a in _FUTEX_ARGS.items()}
_FUTEX_OTHER = ("val", "timeout", "uaddr2", "val3")
_wake_op = enum(C.FUTEX_WAKE_OPS, unknown=_dec)
_wake_cmp = enum(C.FUTEX_WAKE_CMPS, unknown=_dec)


def _futex_wake_op(v: int) -> str:
    op, cmp_ = (v >> 28) & 7, (v >> 24) & 0xF
    shift = "FUTEX_OP_OPARG_SHIFT<<28|" if (v >> 28) & 8 else ""
    return (f"{shift}{_wake_op(op)}<<28|{(v >> 12) & 0xFFF:#x}<<12|{_wake_cmp(cmp_)}<<24|{v & 0xFFF:#x}")


_FUTEX_PRINT: dict[str, Callable[[tuple, list[str]], str]] = {
    "val": lambda a, out: str(a[2] & 0xFFFFFFFF), "timeout": lambda a, out: out[3],
    "val2": lambda a, out: str(a[3] & 0xFFFFFFFF), "uaddr2": lambda a, out: out[4],
    "val3": lambda a, out: hex0(a[5] & 0xFFFFFFFF), "bitset": lambda a, out: _futex_bitset(a[5]),
    "wake_op": lambda a, out: _futex_wake_op(a[5] & 0xFFFFFFFF),
}


@_call("futex")
def _futex(a: tuple, out: list[str]) -> list[str]:
    op = a[1] & 0xFFFFFFFF
    return [out[0], futex_op(op),
            *(_FUTEX_PRINT[w](a, out) for w in _FUTEX_ARGS_BY_CMD.get(op & 0x7F, _FUTEX_OTHER))]


_F = dict(C.FCNTL_CMDS)
fcntl_cmd = enum(C.FCNTL_CMDS)
_f_seals = flags(C.F_SEALS)
_dn_flags = flags(C.DN_FLAGS, bits=64)
_lock_type = enum(C.FCNTL_LOCKS)
_FCNTL_ARG: dict[int, Decoder | None] = {   # None: the command reads no third argument
    _F["F_SETFD"]: fd_flags, _F["F_SETFL"]: open_flags, _F["F_DUPFD"]: _s32str, _F["F_DUPFD_CLOEXEC"]: _s32str,
    _F["F_SETOWN"]: _s32str, _F["F_SETPIPE_SZ"]: _s32str, _F["F_DUPFD_QUERY"]: _s32str,
    _F["F_SETSIG"]: signal_name, _F["F_NOTIFY"]: _dn_flags, _F["F_SETLEASE"]: _lock_type,
    _F["F_ADD_SEALS"]: _f_seals,
    **{_F[n]: None for n in ("F_GETFD", "F_GETFL", "F_GETOWN", "F_GETSIG", "F_GETLEASE", "F_GETPIPE_SZ",
                             "F_GET_SEALS", "F_CREATED_QUERY")},
}
_POINTER_CMDS = {_F[n] for n in ("F_GETLK", "F_SETLK", "F_SETLKW", "F_OFD_GETLK", "F_OFD_SETLK", "F_OFD_SETLKW",
                                 "F_SETOWN_EX", "F_GETOWN_EX", "F_GETOWNER_UIDS", "F_GET_RW_HINT",
                                 "F_SET_RW_HINT", "F_GET_FILE_RW_HINT", "F_SET_FILE_RW_HINT")}


@_call("fcntl")
def _fcntl(a: tuple, out: list[str]) -> list[str]:
    cmd = a[1] & 0xFFFFFFFF
    head = [out[0], fcntl_cmd(cmd)]
    if cmd in _POINTER_CMDS:
        return [*head, hex(a[2]) if a[2] else "NULL"]
    dec = _FCNTL_ARG.get(cmd, hex0)
    return head if dec is None else [*head, dec(a[2])]


def _ioctl_arg(v: int) -> str:
    return hex(v) if v else "NULL"


@_call("ioctl")
def _ioctl(a: tuple, out: list[str]) -> list[str]:
    return [out[0], out[1], _ioctl_arg(a[2])]


_PR = dict(C.PRCTL_OPTIONS)
prctl_option = enum(C.PRCTL_OPTIONS)
_PRCTL_NO_ARGS = {v for n, v in C.PRCTL_OPTIONS if n.startswith("PR_GET_") and n not in (
    "PR_GET_PDEATHSIG", "PR_GET_TID_ADDRESS", "PR_GET_NAME", "PR_GET_UNALIGN", "PR_GET_FPEMU", "PR_GET_FPEXC",
    "PR_GET_ENDIAN", "PR_GET_TSC", "PR_GET_FP_MODE", "PR_GET_SPECULATION_CTRL", "PR_GET_AUXV", "PR_GET_MDWE")}
_PRCTL_NO_ARGS |= {_PR["PR_TASK_PERF_EVENTS_DISABLE"], _PR["PR_TASK_PERF_EVENTS_ENABLE"]}
_PRCTL_ONE_ARG: dict[int, Decoder] = {
    _PR["PR_SET_PDEATHSIG"]: signal_name, _PR["PR_CAPBSET_READ"]: capability, _PR["PR_CAPBSET_DROP"]: capability,
    _PR["PR_SET_DUMPABLE"]: _dec, _PR["PR_SET_KEEPCAPS"]: _dec, _PR["PR_SET_CHILD_SUBREAPER"]: _dec,
    _PR["PR_SET_TIMERSLACK"]: _dec, _PR["PR_SET_NAME"]: _ioctl_arg, _PR["PR_GET_NAME"]: _ioctl_arg,
    _PR["PR_GET_PDEATHSIG"]: _ioctl_arg, _PR["PR_GET_TID_ADDRESS"]: _ioctl_arg,
    _PR["PR_SET_THP_DISABLE"]: _dec, _PR["PR_SET_SECCOMP"]: enum(C.SECCOMP_MODES, unknown=_dec),
}
_prctl_set_mm = enum(C.PRCTL_SET_MM, unknown=_dec)
_prctl_cap_ambient = enum(C.PRCTL_CAP_AMBIENT, unknown=_dec)
_prctl_set_vma = enum(C.PRCTL_SET_VMA, unknown=_dec)


@_call("prctl")
def _prctl(a: tuple, out: list[str]) -> list[str]:
    opt = a[0] & 0xFFFFFFFF
    name = prctl_option(opt)
    if opt in _PRCTL_NO_ARGS:
        return [name]
    one = _PRCTL_ONE_ARG.get(opt)
    if one is not None:
        return [name, one(a[1])]
    rest = [hex0(v) for v in a[1:5]]
    if opt == _PR["PR_SET_MM"]:
        rest[0] = _prctl_set_mm(a[1])
    elif opt == _PR["PR_CAP_AMBIENT"]:
        rest[0] = _prctl_cap_ambient(a[1])
        if a[1] != dict(C.PRCTL_CAP_AMBIENT)["PR_CAP_AMBIENT_CLEAR_ALL"]:
            rest[1] = capability(a[2])
    elif opt == _PR["PR_SET_VMA"]:
        rest[0] = _prctl_set_vma(a[1])
    elif opt == _PR["PR_SET_NO_NEW_PRIVS"]:
        rest = [str(v) for v in a[1:5]]
    return [name, *rest]


@_call("arch_prctl")
def _arch_prctl(a: tuple, out: list[str]) -> list[str]:
    return [out[0], hex0(a[1])]


@_call("socket")
def _socket(a: tuple, out: list[str]) -> list[str]:
    proto = PROTOCOLS_BY_FAMILY.get(a[0] & 0xFFFFFFFF)
    return [out[0], out[1], proto(a[2]) if proto else str(s32(a[2]))]


CALLS["socketpair"] = lambda a, out: [*_socket(a, out), *out[3:]]


def _sockopt(a: tuple, out: list[str]) -> list[str]:
    names = OPTIONS_BY_LEVEL.get(a[1] & 0xFFFFFFFF)
    return [out[0], out[1], names(a[2]) if names else str(s32(a[2])), *out[3:]]


CALLS["setsockopt"] = CALLS["getsockopt"] = _sockopt


_CLONE = dict(C.CLONE_FLAGS)


@_call("clone")
def _clone(a: tuple, out: list[str]) -> list[str]:
    """clone as strace prints it on x86_64: named arguments, each only when the flags make it read."""
    fl = a[0]
    parts = [f"child_stack={hex(a[1]) if a[1] else 'NULL'}", f"flags={clone_flags(fl)}"]
    if fl & (_CLONE["CLONE_PARENT_SETTID"] | _CLONE["CLONE_PIDFD"]):
        parts.append(f"parent_tid={hex(a[2]) if a[2] else 'NULL'}")
    if fl & _CLONE["CLONE_SETTLS"]:
        parts.append(f"tls={hex(a[4]) if a[4] else 'NULL'}")
    if fl & (_CLONE["CLONE_CHILD_SETTID"] | _CLONE["CLONE_CHILD_CLEARTID"]):
        parts.append(f"child_tidptr={hex(a[3]) if a[3] else 'NULL'}")
    return parts


@_call("seccomp")
def _seccomp(a: tuple, out: list[str]) -> list[str]:
    op = a[0] & 0xFFFFFFFF
    if op == dict(C.SECCOMP_OPS)["SECCOMP_SET_MODE_FILTER"]:
        return [out[0], seccomp_filter_flags(a[1]), out[2]]
    return out


# ---------------------------------------------------------------------------
# Return values with a meaning: (raw args, return value) -> text after the number, or None.

RetPrinter = Callable[[tuple, int], str | None]
RETURNS: dict[str, RetPrinter] = {}


def _fcntl_ret(a: tuple, ret: int) -> str | None:
    cmd = a[1] & 0xFFFFFFFF
    if cmd == _F["F_GETFL"]:
        return f"{hex(ret)} (flags {open_flags(ret)})"
    if cmd == _F["F_GETFD"] and ret:
        return f"{hex(ret)} (flags {fd_flags(ret)})"
    if cmd == _F["F_GET_SEALS"] and ret:
        return f"{hex(ret)} (seals {_f_seals(ret)})"
    if cmd == _F["F_GETLEASE"]:
        return f"{hex(ret)} ({_lock_type(ret)})"
    if cmd == _F["F_GETSIG"] and ret:
        return f"{ret} ({signal_name(ret)})"
    return None


RETURNS["fcntl"] = _fcntl_ret
RETURNS["umask"] = lambda a, ret: octal_ret(ret)
RETURNS["sched_getscheduler"] = lambda a, ret: f"{ret} ({sched_policy(ret)})"

# Kernel-internal restart codes that sys_exit can see before the kernel restarts the call.
_KERNEL_ERRNO = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
                 516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 519: "ENOPARAM"}
ERRNO_NAMES: dict[int, str] = {**_errno.errorcode, **_KERNEL_ERRNO}
ERRNO_NAMES[11] = "EAGAIN"  # also EWOULDBLOCK; the name glibc's strerror uses
ERRNO_NAMES[35] = "EDEADLK"
ERRNO_NAMES[95] = "EOPNOTSUPP"


def errno_name(err: int) -> str:
    return ERRNO_NAMES.get(err, f"E{err}")


# Calls that return an address (printed in hex).
RETURNS_ADDRESS = frozenset(("mmap", "mremap", "brk", "shmat"))
