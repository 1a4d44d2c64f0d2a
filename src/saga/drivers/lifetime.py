"""The capture driver's lifetime: who loads it, who unloads it, one daemon per driver.

The daemon owns the driver while it runs (`own`): it loads it at start,
replacing a driver of another saga version, and unloads it at stop
(`Owned.release`), so a stopped saga leaves no probe attached and no
per-syscall cost, unless `daemon.keep_capturing` asks to leave it running.
The claim is a lock tied to the driver itself, not to the daemon's
configuration: an flock on the daemon's descriptor of /dev/saga for the
module, on a directory inside the pin directory for eBPF.  A second daemon
on the same driver is therefore refused (DriverBusy, exit 75) whatever its
configuration, pidfile or database.  `saga driver load|unload|status` do
the same by hand (docs/daemon.md, "One daemon per driver").
"""
from __future__ import annotations

import fcntl
import logging
import os
import subprocess
from dataclasses import dataclass

import saga
from saga.drivers import Driver, open_driver
from saga.errors import DriverBusy, DriverUnavailable, PermissionDenied, UsageError

log = logging.getLogger("saga.driver")


@dataclass(frozen=True)
class Loaded:
    """A driver loaded on this machine, as `saga driver status` shows it."""

    kind: str                # kmod | ebpf
    where: str               # the device, or the pin directory
    version: str | None      # of the loaded driver; None: not this saga's layout
    owner: int | None        # pid of the daemon that owns it; None: nobody (or another pid namespace)


def lock_holder(fd: int) -> int | None:
    """The pid holding an flock on fd's inode, from /proc/locks (None if it cannot be told)."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if "FLOCK" in fields and inode in fields:
                    pid = int(fields[fields.index(inode) - 1])
                    if pid != os.getpid():
                        return pid
    except (OSError, ValueError, IndexError):
        pass
    return None


def claimed_by(path: str, flags: int) -> int | None:
    """The pid of the daemon whose claim (flock) is on path: -1 if its pid cannot be told, None if unclaimed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return lock_holder(fd) or -1
    finally:
        os.close(fd)
    return None


def _busy(kind: str, where: str, holder: int | None) -> DriverBusy:
    who = f"a saga daemon (pid {holder})" if holder and holder > 0 else "another saga daemon"
    return DriverBusy(f"{who} owns the {kind} driver ({where}): one daemon per driver; "
                      f"stop that one first (systemctl stop saga, or make down)")


# -- the module ---------------------------------------------------------------------

class _Kmod:
    kind = "kmod"
    sysfs = "/sys/module/saga"

    @property
    def where(self) -> str:
        from saga.drivers.kmod import DEVICE
        return DEVICE

    def loaded(self) -> Loaded | None:
        if not os.path.isdir(self.sysfs):
            return None
        try:
            with open(os.path.join(self.sysfs, "version")) as f:
                version: str | None = f.read().strip()
        except OSError:
            version = None
        return Loaded(self.kind, self.where, version, self._holder())

    def _holder(self) -> int | None:
        return claimed_by(self.where, os.O_NONBLOCK)

    def own(self) -> tuple[Driver, int | None]:
        from saga.drivers.kmod import KmodDriver
        found = self.loaded()
        if found is not None and found.version != saga.__version__:
            if found.owner:
                raise _busy(self.kind, self.where, found.owner)
            log.warning("replacing the saga module %s with %s", found.version, saga.__version__)
            self.unload()
        drv = KmodDriver.open(load=True)
        try:
            fcntl.flock(drv.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(drv.fileno())
            drv.close()
            raise _busy(self.kind, self.where, holder) from None
        return drv, None   # the lock lives on the driver's own descriptor

    def load(self) -> None:
        from saga.drivers.kmod import KmodDriver
        KmodDriver.open(load=True).close()

    def unload(self) -> bool:
        if not os.path.isdir(self.sysfs):
            return False
        try:
            proc = subprocess.run(["rmmod", "saga"], capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise DriverUnavailable("cannot unload the saga module: rmmod is not installed (apt install kmod)") \
                from None
        if proc.returncode:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise DriverBusy(f"cannot unload the saga module: {lines[-1] if lines else proc.returncode}")
        return True


# -- the eBPF program --------------------------------------------------------------------

class _Ebpf:
    kind = "ebpf"

    @property
    def where(self) -> str:
        from saga.drivers.ebpf import loader
        return loader.pin_dir()

    def loaded(self) -> Loaded | None:
        from saga.drivers.ebpf import loader
        directory = self.where
        if not os.path.isdir(directory) or not any(os.path.exists(os.path.join(directory, p))
                                                   for p in loader.ALL_PINS):
            return None
        return Loaded(self.kind, directory, loader.loaded_version(directory), self._holder())

    def _holder(self) -> int | None:
        from saga.drivers.ebpf import loader
        return claimed_by(os.path.join(self.where, loader.OWNER), os.O_DIRECTORY)

    def _claim(self) -> int:
        from saga.drivers.ebpf import kernelfs, loader
        loader.check_host(loader.OBJECT)
        kernelfs.ensure_bpffs(self.where)
        try:
            return loader.claim(self.where)
        except BlockingIOError:
            raise _busy(self.kind, self.where, self._holder()) from None

    def own(self) -> tuple[Driver, int | None]:
        from saga.drivers.ebpf import EbpfDriver, loader
        fd = self._claim()
        try:
            found = self.loaded()
            if found is not None and found.version != saga.__version__:
                log.warning("replacing the eBPF driver %s with %s", found.version or "of another layout",
                            saga.__version__)
                loader.unload(self.where)
                os.close(fd)
                fd = self._claim()
            return EbpfDriver.open(load=True), fd
        except BaseException:
            os.close(fd)
            raise

    def load(self) -> None:
        drv, fd = self.own()
        drv.close()
        if fd is not None:
            os.close(fd)

    def unload(self) -> bool:
        from saga.drivers.ebpf import loader
        return loader.unload(self.where)


BACKENDS: dict[str, _Kmod | _Ebpf] = {"kmod": _Kmod(), "ebpf": _Ebpf()}


def _kinds(kind: str) -> list[str]:
    if kind == "auto":
        return ["kmod", "ebpf"]
    if kind not in BACKENDS:
        raise UsageError(f"unknown driver {kind!r}: one of auto, kmod, ebpf")
    return [kind]


def _need_root() -> None:
    if os.geteuid() != 0:
        raise PermissionDenied("the capture driver is root's to see, load and unload: run as root (sudo)")


# -- what the daemon and `saga driver` use ------------------------------------------------

class Owned:
    """A driver this process owns: loaded (or found loaded, same version) and locked."""

    def __init__(self, driver: Driver, backend: _Kmod | _Ebpf | None, lock_fd: int | None) -> None:
        self.driver = driver
        self.backend = backend
        self._lock_fd = lock_fd

    def release(self, *, keep: bool = False) -> None:
        """Close the driver; unload it unless keep (daemon.keep_capturing); then let go of the claim."""
        self.driver.close()
        try:
            if self.backend is not None and not keep:
                self.backend.unload()
                log.info("unloaded the %s driver", self.backend.kind)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def own(kind: str = "auto", *, replay_path: str | None = None) -> Owned:
    """Load (or take over) the driver for a daemon and claim it; `auto` tries the module, then eBPF.

    DriverBusy (exit 75) when another daemon owns it; DriverUnavailable (69) with every reason
    when no driver can run."""
    if kind == "replay":   # a recording in this process: nothing to load or share
        return Owned(open_driver("replay", replay_path=replay_path), None, None)
    kinds = _kinds(kind)
    _need_root()
    reasons = []
    for name in kinds:
        backend = BACKENDS[name]
        try:
            drv, fd = backend.own()
        except DriverUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            continue
        return Owned(drv, backend, fd)
    if len(kinds) == 1:
        raise DriverUnavailable(f"the {kinds[0]} driver cannot run: {reasons[0].split(': ', 1)[1]}")
    raise DriverUnavailable("no capture driver can run here: " + "; ".join(reasons))


def loaded() -> list[Loaded]:
    """The saga drivers loaded on this machine (module, eBPF program at this pin directory)."""
    _need_root()      # the pins (bpffs, 0700) and /dev/saga are root's: anyone else would see none
    return [found for found in (b.loaded() for b in BACKENDS.values()) if found is not None]


def load(kind: str = "auto") -> Loaded:
    """`saga driver load`: load a driver without a daemon (it captures; nobody reads the events)."""
    for found in loaded():
        if kind in ("auto", found.kind) and found.version == saga.__version__:
            return found
    reasons = []
    for name in _kinds(kind):
        try:
            BACKENDS[name].load()
        except DriverUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            continue
        result = BACKENDS[name].loaded()
        if result is None:
            raise DriverUnavailable(f"the {name} driver did not stay loaded")
        return result
    raise DriverUnavailable("no capture driver can run here: " + "; ".join(reasons))


def unload(kind: str = "auto") -> list[str]:
    """`saga driver unload`: unload what is loaded (both kinds for auto); refused while a daemon owns it."""
    done = []
    for found in loaded():
        if kind not in ("auto", found.kind):
            continue
        if found.owner:
            raise _busy(found.kind, found.where, found.owner)
        if BACKENDS[found.kind].unload():
            done.append(found.kind)
    return done
