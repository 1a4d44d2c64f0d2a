"""Symbolic names for argument and return values (x86_64 Linux numbering).

Each decoder turns one raw register value into the text a reader expects
(strace-like): `O_RDONLY|O_CLOEXEC`, `AT_FDCWD`, `PROT_READ|PROT_WRITE`,
`SIGTERM`.  Unknown bits are kept in hex so nothing is hidden.
"""
from __future__ import annotations

import errno as _errno
import signal as _signal
from collections.abc import Callable

Decoder = Callable[[int], str]


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & 0x8000000000000000 else v


def bits(table: tuple[tuple[int, str], ...], zero: str = "0") -> Decoder:
    """A decoder for OR-ed flags; `table` lists (mask, name), multi-bit masks first."""
    def decode(v: int) -> str:
        v &= 0xFFFFFFFF
        names = []
        for mask, name in table:
            if mask and v & mask == mask:
                names.append(name)
                v &= ~mask
        if v:
            names.append(hex(v))
        return "|".join(names) if names else zero
    return decode


def enum(table: dict[int, str], signed: bool = True) -> Decoder:
    def decode(v: int) -> str:
        v = s32(v) if signed else v
        return table.get(v, str(v))
    return decode


# open(2) flags: the access mode is a 2-bit field, the rest are bits.
_O_ACC = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}
_O_BITS = bits((
    (0o20200000, "O_TMPFILE"), (0o4010000, "O_SYNC"), (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
), zero="")
O_CREAT, O_TMPFILE = 0o100, 0o20200000


def open_flags(v: int) -> str:
    rest = _O_BITS(v & ~3)
    return _O_ACC[v & 3] + ("|" + rest if rest else "")


def dirfd(v: int) -> str:
    v = s32(v)
    return "AT_FDCWD" if v == -100 else str(v)


def open_takes_mode(flags: int) -> bool:
    """open's mode is read only with O_CREAT or O_TMPFILE (whose bits include O_DIRECTORY's)."""
    return bool(flags & O_CREAT) or flags & O_TMPFILE == O_TMPFILE


def octal(v: int) -> str:
    """A file mode as strace prints it (C's %#03o): 0644, 027, 000."""
    v &= 0xFFFFFFFF
    return f"0{v:o}".rjust(3, "0") if v else "000"


def octal_ret(v: int) -> str:
    """A mode returned by umask (C's %#o): 022, 0."""
    return f"0{v:o}" if v > 0 else str(v)


def ugid(v: int) -> str:
    """A uid or gid: unsigned, but -1 (\"leave unchanged\") as -1 like strace."""
    v &= 0xFFFFFFFF
    return "-1" if v == 0xFFFFFFFF else str(v)


at_flags = bits(((0x100, "AT_SYMLINK_NOFOLLOW"), (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"),
                 (0x1000, "AT_EMPTY_PATH"), (0x2000, "AT_STATX_FORCE_SYNC"), (0x4000, "AT_STATX_DONT_SYNC"),
                 (0x8000, "AT_RECURSIVE")))
unlinkat_flags = bits(((0x200, "AT_REMOVEDIR"),))
faccessat_flags = bits(((0x200, "AT_EACCESS"), (0x100, "AT_SYMLINK_NOFOLLOW"), (0x1000, "AT_EMPTY_PATH")))
access_mode = bits(((4, "R_OK"), (2, "W_OK"), (1, "X_OK")), zero="F_OK")
prot = bits(((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (0x01000000, "PROT_GROWSDOWN"),
             (0x02000000, "PROT_GROWSUP")), zero="PROT_NONE")
_MAP_TYPE = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
_MAP_BITS = bits(((0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"),
                  (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"),
                  (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"),
                  (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
                  (0x100000, "MAP_FIXED_NOREPLACE")), zero="")


def map_flags(v: int) -> str:
    kind = _MAP_TYPE.get(v & 3, hex(v & 3))
    rest = _MAP_BITS(v & ~3)
    return kind + ("|" + rest if rest else "")


_SOCK_TYPE = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET", 10: "SOCK_PACKET"}
_SOCK_BITS = bits(((0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")), zero="")


def sock_type(v: int) -> str:
    kind = _SOCK_TYPE.get(v & 0xF, str(v & 0xF))
    rest = _SOCK_BITS(v & ~0xF)
    return kind + ("|" + rest if rest else "")


sock_flags = bits(((0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")))
family = enum({0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
               38: "AF_ALG", 40: "AF_VSOCK", 44: "AF_XDP"})
_CLONE_BITS = bits(((0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
                    (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"),
                    (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"),
                    (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"),
                    (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"), (0x800000, "CLONE_UNTRACED"),
                    (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"), (0x4000000, "CLONE_NEWUTS"),
                    (0x8000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"),
                    (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO")), zero="")

SIGNALS = {int(s): s.name for s in _signal.Signals if s.name.startswith("SIG") and not s.name.startswith("SIG_")}


def signal_name(v: int) -> str:
    v = s32(v)
    return SIGNALS.get(v, str(v))


def clone_flags(v: int) -> str:
    rest = _CLONE_BITS(v & ~0xFF)
    sig = v & 0xFF
    parts = [p for p in (rest, SIGNALS.get(sig, str(sig)) if sig else "") if p]
    return "|".join(parts) if parts else "0"


whence = enum({0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"})
fcntl_cmd = enum({0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK",
                  6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 1030: "F_DUPFD_CLOEXEC",
                  1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS"})
sigprocmask_how = enum({0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"})
wait_options = bits(((1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"), (0x01000000, "WNOWAIT"),
                     (0x20000000, "__WNOTHREAD"), (0x40000000, "__WALL"), (0x80000000, "__WCLONE")))

# Decoders for (syscall, argument) pairs; the rest fall back to the argument's kind.
BY_ARG: dict[tuple[str, str], Decoder] = {}
for _call in ("open", "openat", "mq_open"):
    BY_ARG[(_call, "flags")] = open_flags
for _call, _arg in (("newfstatat", "flag"), ("statx", "flags"), ("fchownat", "flag"), ("utimensat", "flags"),
                    ("linkat", "flags"), ("execveat", "flags"), ("name_to_handle_at", "flag"),
                    ("open_tree", "flags"), ("fchmodat2", "flags")):
    BY_ARG[(_call, _arg)] = at_flags
BY_ARG[("unlinkat", "flag")] = unlinkat_flags
BY_ARG[("faccessat2", "flags")] = faccessat_flags
for _call in ("access", "faccessat", "faccessat2"):
    BY_ARG[(_call, "mode")] = access_mode
for _call in ("mmap", "mprotect", "pkey_mprotect"):
    BY_ARG[(_call, "prot")] = prot
BY_ARG[("mmap", "flags")] = map_flags
for _call in ("socket", "socketpair"):
    BY_ARG[(_call, "family")] = family
    BY_ARG[(_call, "type")] = sock_type
BY_ARG[("accept4", "flags")] = sock_flags
BY_ARG[("clone", "clone_flags")] = clone_flags
for _call, _arg in (("kill", "sig"), ("tkill", "sig"), ("tgkill", "sig"), ("rt_sigaction", "sig"),
                    ("pidfd_send_signal", "sig"), ("rt_sigqueueinfo", "sig"), ("rt_tgsigqueueinfo", "sig")):
    BY_ARG[(_call, _arg)] = signal_name
BY_ARG[("lseek", "whence")] = whence
BY_ARG[("fcntl", "cmd")] = fcntl_cmd
BY_ARG[("rt_sigprocmask", "how")] = sigprocmask_how
for _call in ("wait4", "waitid"):
    BY_ARG[(_call, "options")] = wait_options

# Calls whose mode argument only matters with O_CREAT/O_TMPFILE (strace prints it only then).
MODE_NEEDS_CREAT = {"open": 2, "openat": 3}

# Kernel-internal restart codes that sys_exit can see before the kernel restarts the call.
_KERNEL_ERRNO = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
                 516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 519: "ENOPARAM"}
ERRNO_NAMES: dict[int, str] = {**_errno.errorcode, **_KERNEL_ERRNO}
ERRNO_NAMES[11] = "EAGAIN"  # also EWOULDBLOCK; the name glibc's strerror uses
ERRNO_NAMES[35] = "EDEADLK"
ERRNO_NAMES[95] = "EOPNOTSUPP"


def errno_name(err: int) -> str:
    return ERRNO_NAMES.get(err, f"E{err}")


# Calls that return an address (printed in hex) and a file mode (octal).
RETURNS_ADDRESS = frozenset(("mmap", "mremap", "brk", "shmat"))
RETURNS_MODE = frozenset(("umask",))
