"""The two kernel filesystems the eBPF driver needs, whether or not anyone mounted them.

- bpffs holds the driver's pins (every process opens the live state
  there).  When /sys/fs/bpf is not a BPF filesystem the loader mounts one
  there, as systemd does at boot, and notes that it did, so that the
  unload that empties it unmounts it again.
- tracefs is needed for one number only: the id of the
  `syscalls:sys_enter_rt_sigreturn` event, which perf_event_open() takes
  to attach saga_sigreturn (docs/ebpf.md says why that event).  It is read
  from a tracefs that is mounted already, else from a *detached* mount
  (fsopen/fsmount, Linux 5.2+): a mount that is in no directory, seen by
  nobody and gone when its descriptor is closed.  Nothing is left mounted
  and a read-only /sys does not matter.

securityfs is read the same way, for the lockdown mode.  Failures say
the real cause and the fix (DriverUnavailable, exit 69).
"""
from __future__ import annotations

import ctypes
import errno
import os

from saga.errors import DriverUnavailable
from saga.syscalls import BY_NAME

BPF_FS_MAGIC = 0xCAFE4A11
BPFFS = "/sys/fs/bpf"
# Where a tracefs may be mounted already (the second: debugfs's automount, older systems).
TRACEFS_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# The note that saga mounted BPFFS (tmpfs: it goes with the mount at reboot).
MOUNTED_NOTE = "/run/saga/bpffs-mounted-by-saga"
# What the kernel itself puts in every new bpffs (CONFIG_BPF_PRELOAD iterators).
_PRELOADED = {"progs.debug", "maps.debug"}

_FSOPEN_CLOEXEC = 0x1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 0x1
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
_MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


def on_bpffs(path: str) -> bool:
    buf = _Statfs()
    if _libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        return False
    return buf.f_type & 0xFFFFFFFF == BPF_FS_MAGIC


# -- bpffs ----------------------------------------------------------------------

def ensure_bpffs(directory: str) -> None:
    """Make sure the parent of the pin directory is a BPF filesystem (mounting /sys/fs/bpf if need be)."""
    parent = os.path.dirname(directory.rstrip("/")) or "/"
    if on_bpffs(parent):
        return
    if parent != BPFFS:
        raise DriverUnavailable(f"{parent} is not a BPF filesystem, so {directory} cannot hold pins: "
                                f"mount -t bpf bpf {parent} (or set SAGA_BPF_DIR under {BPFFS})")
    if not os.path.isdir(BPFFS):
        raise DriverUnavailable(f"{BPFFS} does not exist: this kernel has no BPF filesystem "
                                f"(CONFIG_BPF_SYSCALL=n) or /sys is not sysfs; use the kernel module")
    # What systemd does at boot (mode 0700, nosuid, nodev, noexec); minimal systems skip it.
    if _libc.mount(b"bpf", BPFFS.encode(), b"bpf", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, b"mode=0700") != 0:
        err = ctypes.get_errno()
        raise DriverUnavailable(f"{BPFFS} is not mounted and saga cannot mount it ({os.strerror(err)}"
                                f"{_mount_hint(err)}): mount -t bpf bpf {BPFFS}")
    try:
        # The mount's device number: the note names this mount only (not one made
        # later by someone else, nor one in another mount namespace).
        os.makedirs(os.path.dirname(MOUNTED_NOTE), mode=0o755, exist_ok=True)
        with open(MOUNTED_NOTE, "w") as f:
            f.write(f"{os.stat(BPFFS).st_dev}\n")
    except OSError:
        pass  # without the note the mount stays, as systemd's would


def release_bpffs(directory: str) -> None:
    """After an unload: unmount /sys/fs/bpf if saga mounted it and nothing else is pinned there."""
    parent = os.path.dirname(directory.rstrip("/")) or "/"
    if parent != BPFFS:
        return
    try:
        with open(MOUNTED_NOTE) as f:
            dev = int(f.read())
        if on_bpffs(BPFFS) and os.stat(BPFFS).st_dev == dev and not set(os.listdir(BPFFS)) - _PRELOADED:
            # Detached lazily: the daemon's claim on the pin directory may still be open.
            if _libc.umount2(BPFFS.encode(), _MNT_DETACH) != 0:
                return
            os.unlink(MOUNTED_NOTE)
            os.rmdir(os.path.dirname(MOUNTED_NOTE))  # if saga's run directory is empty now
    except (OSError, ValueError):
        pass


def _mount_hint(err: int) -> str:
    if err == errno.EPERM:
        return ": needs CAP_SYS_ADMIN, or a seccomp filter or read-only container refuses mounts"
    if err == errno.ENODEV:
        return ": this kernel has no such filesystem"
    return ""


# -- tracefs --------------------------------------------------------------------

def event_id(system: str, event: str) -> int:
    """The id of the trace event system:event (what perf_event_open's PERF_TYPE_TRACEPOINT takes)."""
    try:
        text = read_file("tracefs", TRACEFS_MOUNTS, f"events/{system}/{event}/id")
    except FileNotFoundError:
        raise DriverUnavailable(f"this kernel has no trace event {system}:{event} (built without "
                                f"CONFIG_FTRACE_SYSCALLS): use the kernel module") from None
    except OSError as exc:
        raise DriverUnavailable(f"cannot read the id of trace event {system}:{event}: {exc.strerror}") from None
    return int(text)


def lockdown() -> str:
    """The kernel lockdown mode in force (none, integrity, confidentiality); "" if it cannot be told."""
    try:
        text = read_file("securityfs", ("/sys/kernel/security",), "lockdown")
    except (OSError, DriverUnavailable):
        return ""
    return text[text.index("[") + 1:text.index("]")] if "[" in text else ""


def read_file(fstype: str, mounts: tuple[str, ...], rel: str) -> str:
    """A file of a kernel filesystem: from where it is mounted, else from a detached mount of it."""
    for base in mounts:
        if os.path.ismount(base):
            with open(os.path.join(base, rel)) as f:
                return f.read()
    mnt = _detached(fstype)
    try:
        fd = os.open(rel, os.O_RDONLY | os.O_CLOEXEC, dir_fd=mnt)
        with open(fd) as f:
            return f.read()
    finally:
        os.close(mnt)


def _sys(name: str, *args) -> int:
    ret = _libc.syscall(ctypes.c_long(BY_NAME[name].slot), *(a if a is None or isinstance(a, bytes)
                                                               else ctypes.c_long(a) for a in args))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return ret


def probe(name: str, *args) -> int:
    """Make a system call; the errno it fails with, or 0."""
    try:
        fd = _sys(name, *args)
    except OSError as exc:
        return exc.errno or 0
    os.close(fd)
    return 0


def _detached(fstype: str) -> int:
    """A mount of fstype attached to no directory (fsopen, fsconfig, fsmount): its descriptor."""
    call = "fsopen"
    try:
        fs = _sys("fsopen", fstype.encode(), _FSOPEN_CLOEXEC)
        try:
            call = "fsmount"
            _sys("fsconfig", fs, _FSCONFIG_CMD_CREATE, None, None, 0)
            return _sys("fsmount", fs, _FSMOUNT_CLOEXEC, 0)
        finally:
            os.close(fs)
    except OSError as exc:
        raise DriverUnavailable(_refused(fstype, call, exc.errno or 0)) from None


def _refused(fstype: str, call: str, err: int) -> str:
    if err == errno.ENODEV:
        why = f"this kernel has no {fstype}"
    elif err == errno.ENOSYS:
        why = f"{call}() is not available (a kernel older than 5.2, or a seccomp filter)"
    elif err == errno.EPERM:
        why = f"{call}() was refused: needs CAP_SYS_ADMIN, or a seccomp filter refuses it"
    else:
        why = f"{call}(): {os.strerror(err)}"
    where = TRACEFS_MOUNTS[0] if fstype == "tracefs" else "/sys/kernel/security"
    return (f"{fstype} is not mounted and saga cannot reach it ({why}): "
            f"mount -t {fstype} {fstype} {where} (systemd does at boot)")
