"""The kmod driver: saga.ko through /dev/saga (docs/kernel-abi.md).

ioctls go through fcntl.ioctl with the structs generated from the uapi
header (saga._uapi); records come from read(2).  Every OSError is
translated here, once, into saga.errors.
"""
from __future__ import annotations

import ctypes
import fcntl
import glob
import os
import select
import subprocess
import time

from saga import _uapi
from saga.drivers.base import Driver, DriverInfo, Stats, refusal
from saga.errors import DriverUnavailable, PermissionDenied, SagaError, from_oserror
from saga.rules.abi import pack_rule, unpack_rule
from saga.rules.model import ACTION_NAMES, Rule

DEVICE = "/dev/" + _uapi.SAGA_DEVICE_NAME

_RULE = _uapi.SAGA_RULE_STRUCT
_STATS = _uapi.SAGA_STATS
_INFO = _uapi.SAGA_INFO
_COUNTER = _uapi.SAGA_COUNTER_STRUCT
_CALLS, _ERRORS = (_uapi.SAGA_COUNTER.positions()[n] for n in ("calls", "errors"))
_U32 = ctypes.c_uint32

# Changes: their errnos are translated as every driver translates them (base.refusal).
_CHANGES = {_uapi.SAGA_IOC_RULE_REPLACE, _uapi.SAGA_IOC_RULE_LOCK, _uapi.SAGA_IOC_SET_ENABLED,
            _uapi.SAGA_IOC_STATS_RESET}



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
            if request in _CHANGES and exc.errno is not None:
                raise refusal(exc.errno, what) from None
            raise from_oserror(exc, what) from None

    # -- state ---------------------------------------------------------------
    def info(self) -> DriverInfo:
        buf = _INFO.pack()
        self._ioctl(_uapi.SAGA_IOC_GET_INFO, buf, "reading module info")
        f = _INFO.unpack(buf)
        return DriverInfo(driver=self.name, version=_cstr(f["version"]), abi_version=f["abi_version"],
                          features=f["features"], ring_bytes=f["ring_bytes"], nr_cpus=f["nr_cpus"],
                          enabled=bool(f["enabled"]), locked=bool(f["locked"]), nr_rules=f["nr_rules"],
                          default_action=ACTION_NAMES.get(f["default_action"], str(f["default_action"])))

    def stats(self) -> Stats:
        n = _uapi.SAGA_NR_SLOTS
        counters = ctypes.create_string_buffer(n * _COUNTER.size)
        buf = _STATS.pack(nr_slots=n, counters_ptr=ctypes.addressof(counters))
        self._ioctl(_uapi.SAGA_IOC_STATS_GET, buf, "reading counters")
        f = _STATS.unpack(buf)
        per_slot = {slot: (c[_CALLS], c[_ERRORS]) for slot, c in enumerate(_COUNTER.iter_unpack(counters.raw))
                    if c[_CALLS] or c[_ERRORS]}
        return Stats(per_slot=per_slot, calls=f["calls"], errors=f["errors"], events=f["events"],
                     drops=f["drops"], read=f["read"], no_enter=f["no_enter"], path_faults=f["path_faults"],
                     aux_faults=f["aux_faults"], tree_drops=f["tree_drops"], reset_ns=f["reset_ns"])

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
            buf = _uapi.SAGA_RULE_LIST.pack(capacity=capacity, rules_ptr=ctypes.addressof(rules))
            self._ioctl(_uapi.SAGA_IOC_RULE_LIST, buf, "listing rules")
            count = _uapi.SAGA_RULE_LIST.unpack(buf)["count"]
            if count <= capacity:
                raw = rules.raw
                return [unpack_rule(raw, i * _RULE.size) for i in range(count)]
            capacity = count + 16  # rules were added meanwhile: try again

    def replace_rules(self, rules: list[Rule]) -> None:
        arr = ctypes.create_string_buffer(b"".join(pack_rule(r) for r in rules) or b"\0")
        buf = _uapi.SAGA_RULE_LIST.pack(count=len(rules), rules_ptr=ctypes.addressof(arr))
        self._ioctl(_uapi.SAGA_IOC_RULE_REPLACE, buf, "replacing the rules")

    def lock_rules(self) -> None:
        self._ioctl(_uapi.SAGA_IOC_RULE_LOCK, 0, "locking the rules")

    # -- events --------------------------------------------------------------
    def fileno(self) -> int:
        return self._fd

    def read_raw(self, max_bytes: int = 1 << 20, timeout: float | None = 0.0) -> bytes:
        size = max(max_bytes, _uapi.SAGA_EVENT_MAX)
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
