"""The kmod driver: saga.ko through /dev/saga (docs/kernel-abi.md).

ioctls go through fcntl.ioctl with the structs generated from the uapi
header (saga._uapi); records come from read(2).  Every OSError is
translated here, once, into saga.errors.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import os
import select
import subprocess
import time

from saga import _uapi
from saga.drivers.base import Driver, DriverInfo, Stats
from saga.errors import (
    DriverError,
    DriverUnavailable,
    PermissionDenied,
    RuleError,
    RulesLocked,
    SagaError,
    from_oserror,
)
from saga.rules.abi import pack_rule, unpack_rule
from saga.rules.model import ACTION_NAMES, Rule

DEVICE = "/dev/" + _uapi.SAGA_DEVICE_NAME
# The largest record: the fixed part and two paths with their NULs.
EVENT_MAX = (_uapi.SAGA_EVENT.size + _uapi.SAGA_NR_PATHS * _uapi.SAGA_PATH_MAX + 7) & ~7

_RULE = _uapi.SAGA_RULE_STRUCT
_LIST = _uapi.SAGA_RULE_LIST_STRUCT
_DEL = _uapi.SAGA_RULE_DEL_STRUCT
_STATS = _uapi.SAGA_STATS_STRUCT
_INFO = _uapi.SAGA_INFO_STRUCT
_COUNTER = _uapi.SAGA_COUNTER_STRUCT
_U32 = ctypes.c_uint32

# Operations refused with EPERM once rules are locked (SET_ENABLED too).
_LOCKABLE = {_uapi.SAGA_IOC_RULE_ADD, _uapi.SAGA_IOC_RULE_DEL, _uapi.SAGA_IOC_RULE_REPLACE,
             _uapi.SAGA_IOC_RULE_CLEAR, _uapi.SAGA_IOC_SET_ENABLED}


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _no_modules() -> str | None:
    """Why this kernel can load no module at all, or None."""
    if not os.path.exists("/proc/modules"):
        return "this kernel cannot load modules (built without CONFIG_MODULES): use the eBPF driver"
    try:
        with open("/proc/sys/kernel/modules_disabled") as f:
            if f.read().strip() == "1":
                return "module loading is disabled on this machine (kernel.modules_disabled=1): use the eBPF driver"
    except OSError:
        pass
    return None


def why_unavailable() -> str:
    """Why /dev/saga is missing, with the fix."""
    reason = _no_modules()
    if reason:
        return reason
    if os.path.isdir("/sys/module/saga"):
        return f"the saga module is loaded but {DEVICE} is missing (is udev running?)"
    return "the saga module is not loaded: start the daemon (systemctl start saga) or run `saga driver load`"


def _not_found_fix() -> str:
    """What to do when modprobe finds no saga.ko for this kernel: never "install saga-dkms" when it is."""
    release = os.uname().release
    if glob.glob("/usr/src/saga-*/dkms.conf"):
        return (f"saga-dkms is installed but built no module for Linux {release}: install "
                f"linux-headers-{release} (DKMS then builds it), or see `dkms status saga`")
    return "install saga-dkms, or build it: make -C kmod"


def _modprobe() -> None:
    reason = _no_modules()
    if reason:
        raise DriverUnavailable(reason)
    try:
        proc = subprocess.run(["modprobe", "saga"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise DriverUnavailable("cannot load the saga module: modprobe is not installed (apt install kmod)") from None
    except subprocess.TimeoutExpired:
        raise DriverUnavailable("cannot load the saga module: modprobe did not finish within 60 s") from None
    if proc.returncode:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"modprobe exited {proc.returncode}"
        if "not found" in reason:
            reason += f" ({_not_found_fix()})"
        raise DriverUnavailable(f"cannot load the saga module: {reason}")
    for _ in range(50):  # udev creates the node
        if os.path.exists(DEVICE):
            return
        time.sleep(0.05)
    raise DriverUnavailable(f"the saga module loaded but {DEVICE} did not appear (is udev running?)")


class KmodDriver(Driver):
    name = "kmod"

    def __init__(self, fd: int):
        self._fd = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    @classmethod
    def open(cls, load: bool = False, device: str = DEVICE) -> KmodDriver:
        if not os.path.exists(device):
            if not load:
                raise DriverUnavailable(why_unavailable())
            _modprobe()
        try:
            fd = os.open(device, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        except PermissionError:
            raise PermissionDenied(f"cannot open {device}: permission denied (run as root)") from None
        except FileNotFoundError:
            raise DriverUnavailable(why_unavailable()) from None
        except OSError as exc:
            raise from_oserror(exc, f"cannot open {device}", DriverUnavailable) from None
        drv = cls(fd)
        try:
            info = drv.info()
        except SagaError:
            drv.close()
            raise
        if info.abi_version != _uapi.SAGA_ABI_VERSION:
            drv.close()
            raise DriverUnavailable(f"the loaded saga module speaks ABI {info.abi_version}, this saga "
                                    f"ABI {_uapi.SAGA_ABI_VERSION}: install matching saga and saga-dkms packages")
        return drv

    # -- the one place OSError becomes SagaError -----------------------------
    def _ioctl(self, request: int, arg, what: str):
        try:
            return fcntl.ioctl(self._fd, request, arg, True) if isinstance(arg, bytearray) \
                else fcntl.ioctl(self._fd, request, arg)
        except OSError as exc:
            raise self._translate(exc, request, what) from None

    def _translate(self, exc: OSError, request: int, what: str) -> SagaError:
        code = exc.errno
        if code == errno.EPERM:
            if request in _LOCKABLE and self._locked():
                return RulesLocked(f"{what}: rules are locked until the saga module is unloaded")
            return PermissionDenied(f"{what}: needs CAP_SYS_ADMIN (run as root)")
        if code == errno.EEXIST:
            return RuleError(f"{what}: a rule with that id already exists")
        if code == errno.ENOENT:
            return RuleError(f"{what}: no such rule")
        if code == errno.ENOSPC:
            return RuleError(f"{what}: too many rules (the module holds at most {_uapi.SAGA_MAX_RULES})")
        if code == errno.EINVAL:
            return DriverError(f"{what}: the module refused the request (invalid argument)", errno=code)
        return from_oserror(exc, what)

    def _locked(self) -> bool:
        try:
            return self.info().locked
        except SagaError:
            return False

    # -- state ---------------------------------------------------------------
    def info(self) -> DriverInfo:
        buf = bytearray(_INFO.size)
        self._ioctl(_uapi.SAGA_IOC_GET_INFO, buf, "reading module info")
        (abi, feat, ring, cpus, _slots, _maxr, _esz, _pmax, enabled, locked, nrules, default,
         version) = _INFO.unpack(buf)
        return DriverInfo(driver=self.name, version=_cstr(version), abi_version=abi, features=feat,
                          ring_bytes=ring, nr_cpus=cpus, enabled=bool(enabled), locked=bool(locked),
                          nr_rules=nrules, default_action=ACTION_NAMES.get(default, str(default)))

    def stats(self) -> Stats:
        n = _uapi.SAGA_NR_SLOTS
        counters = ctypes.create_string_buffer(n * _COUNTER.size)
        buf = bytearray(_STATS.pack(n, 0, ctypes.addressof(counters), *([0] * 8)))
        self._ioctl(_uapi.SAGA_IOC_STATS_GET, buf, "reading counters")
        f = _STATS.unpack(buf)
        per_slot = {}
        raw = counters.raw
        for slot in range(n):
            calls, errs = _COUNTER.unpack_from(raw, slot * _COUNTER.size)
            if calls or errs:
                per_slot[slot] = (calls, errs)
        return Stats(per_slot=per_slot, calls=f[3], errors=f[4], events=f[5], drops=f[6], read=f[7],
                     no_enter=f[8], path_faults=f[9], reset_ns=f[10])

    def reset_stats(self) -> None:
        self._ioctl(_uapi.SAGA_IOC_STATS_RESET, 0, "resetting counters")

    def set_enabled(self, enabled: bool) -> None:
        self._ioctl(_uapi.SAGA_IOC_SET_ENABLED, bytearray(_U32(1 if enabled else 0)),
                    "resuming capture" if enabled else "pausing capture")

    # -- rules ---------------------------------------------------------------
    def list_rules(self) -> list[Rule]:
        capacity = 64
        while True:
            rules = ctypes.create_string_buffer(capacity * _RULE.size)
            buf = bytearray(_LIST.pack(capacity, 0, ctypes.addressof(rules), 0))
            self._ioctl(_uapi.SAGA_IOC_RULE_LIST, buf, "listing rules")
            count = _LIST.unpack(buf)[1]
            if count <= capacity:
                raw = rules.raw
                return [unpack_rule(raw, i * _RULE.size) for i in range(count)]
            capacity = count + 16  # rules were added meanwhile: try again

    def add_rule(self, rule: Rule, position: int | None = None) -> int:
        buf = bytearray(pack_rule(rule, _uapi.SAGA_POS_END if position is None else position))
        self._ioctl(_uapi.SAGA_IOC_RULE_ADD, buf, "adding a rule")
        return _RULE.unpack(buf)[0]

    def remove_rule(self, rule_id: int) -> None:
        buf = bytearray(_DEL.pack(rule_id, 0, b"", 0, 0))
        self._ioctl(_uapi.SAGA_IOC_RULE_DEL, buf, f"removing rule {rule_id}")

    def remove_key(self, key: str) -> int:
        buf = bytearray(_DEL.pack(0, _uapi.SAGA_DEL_BY_KEY, key.encode(), 0, 0))
        self._ioctl(_uapi.SAGA_IOC_RULE_DEL, buf, f"removing rules with key {key!r}")
        return _DEL.unpack(buf)[3]

    def replace_rules(self, rules: list[Rule]) -> None:
        arr = ctypes.create_string_buffer(b"".join(pack_rule(r) for r in rules) or b"\0")
        buf = bytearray(_LIST.pack(0, len(rules), ctypes.addressof(arr), 0))
        self._ioctl(_uapi.SAGA_IOC_RULE_REPLACE, buf, "replacing the rules")

    def clear_rules(self) -> None:
        self._ioctl(_uapi.SAGA_IOC_RULE_CLEAR, 0, "clearing the rules")

    def lock_rules(self) -> None:
        self._ioctl(_uapi.SAGA_IOC_RULE_LOCK, 0, "locking the rules")

    # -- events --------------------------------------------------------------
    def fileno(self) -> int:
        return self._fd

    def read_raw(self, max_bytes: int = 1 << 20, timeout: float | None = 0.0) -> bytes:
        size = max(max_bytes, EVENT_MAX)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return os.read(self._fd, size)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise from_oserror(exc, f"reading {DEVICE}") from None
            if deadline is None:
                wait_ms = None
            else:
                wait_ms = int((deadline - time.monotonic()) * 1000)
                if wait_ms <= 0:
                    return b""
            self._poll.poll(wait_ms)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
