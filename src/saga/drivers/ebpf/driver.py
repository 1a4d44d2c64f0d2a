"""EbpfDriver: saga's Driver interface over the pinned BPF maps.

Any number of processes can open the driver at once (the daemon, `saga
stats`, `saga rules ...`): they all see and change the same pinned state.
Rule changes are read-modify-write of the whole rule set, serialised
between processes by an flock on the pin directory, and published as
publish.py describes (the probes see the old set or the new one).  The
shared config page is read and written through `Words` (one load or store
per field, see shared.py).
"""
from __future__ import annotations

import errno
import fcntl
import functools
import mmap
import os
import time
from contextlib import contextmanager

from saga import _uapi
from saga.drivers.base import Driver, DriverInfo, Stats, refusal
from saga.drivers.ebpf import layout as L
from saga.drivers.ebpf import libbpf, loader, publish
from saga.drivers.ebpf.ring import WAKE_PERIOD_S, RingReader
from saga.drivers.ebpf.ruleset import RuleSet
from saga.drivers.ebpf.shared import Words
from saga.errors import DriverError, DriverUnavailable, SagaError, from_oserror
from saga.rules.model import ACTION_NAMES, ACTIONS, Rule

FEATURES = (_uapi.SAGA_FEAT_PATHS | _uapi.SAGA_FEAT_DURATION | _uapi.SAGA_FEAT_COMPAT | _uapi.SAGA_FEAT_POLL
            | _uapi.SAGA_FEAT_AUX | _uapi.SAGA_FEAT_CGROUP | _uapi.SAGA_FEAT_EXE | _uapi.SAGA_FEAT_TREE)
OFFSET_REFRESH_NS = 1_000_000_000


def _translated(what: str):
    """Turn OSError into the SagaError the interface promises, once, here."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except OSError as exc:
                if exc.errno == errno.ENOENT and not loader.is_loaded(self.directory):
                    raise DriverUnavailable(loader.NOT_LOADED) from None
                raise from_oserror(exc, what) from None
        return inner
    return wrap


class EbpfDriver(Driver):
    name = "ebpf"

    @classmethod
    def open(cls, load: bool = False, *, ring_bytes: int | None = None,
             default_action: str = "log") -> EbpfDriver:
        """Attach to the pinned driver; with load=True, load and pin it first when it is not loaded."""
        directory = loader.pin_dir()
        if default_action not in ACTIONS:
            raise SagaError(f"unknown default action {default_action!r}: one of log, count, ignore", exit_code=64)
        if load:
            loader.check_host(loader.OBJECT)
            if not loader.is_loaded(directory):
                loader.load(directory, ring_bytes=ring_bytes or loader.DEFAULT_RING_BYTES,
                            default_action=ACTIONS[default_action])
        elif os.geteuid() != 0:
            raise DriverUnavailable("the eBPF driver needs root: run saga as root (e.g. with sudo)")
        if not loader.is_loaded(directory):
            raise DriverUnavailable(loader.NOT_LOADED)
        try:
            return cls(directory)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise DriverUnavailable(loader.NOT_LOADED) from None
            raise from_oserror(exc, "opening the eBPF driver") from None

    @classmethod
    def unload(cls) -> bool:
        """Detach the programs and remove every pin (`make down`); True if it was loaded."""
        return loader.unload(loader.pin_dir())

    def __init__(self, directory: str):
        self.directory = directory
        self._fds: list[int] = []
        self._ring: RingReader | None = None
        self._consumer_pid = 0
        self._offset_ns = 0
        try:
            self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._fds.append(self._dir_fd)
            self._counters = self._pin(L.MAP_COUNTERS)
            self._events = self._pin(L.MAP_EVENTS)
            config = self._pin(L.PIN_CONFIG)
            self._check_layout(config)
            self._cfg_map = mmap.mmap(config, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._cfg = Words(self._cfg_map)
            self._maps = publish.RuleMaps(directory, self._pin(L.MAP_RULES), self._pin(L.MAP_ACTIONS), self._cfg)
            self._ncpus = libbpf.possible_cpus()
            self._progs = self._exit_side_progs()
        except BaseException:
            self._close_fds()
            raise

    def _pin(self, name: str) -> int:
        fd = libbpf.obj_get(os.path.join(self.directory, name))
        self._fds.append(fd)
        return fd

    def _exit_side_progs(self) -> list[int]:
        """The always-attached programs, whose skipped runs lose calls (a skipped sys_enter only loses the
        entry state: the record says NO_ENTER)."""
        fds = []
        for _prog, link in L.PROGS:
            link_fd = libbpf.obj_get(os.path.join(self.directory, link))
            try:
                fds.append(libbpf.link_prog_fd(link_fd))
                self._fds.append(fds[-1])
            finally:
                os.close(link_fd)
        return fds

    def _missed(self) -> int:
        """Calls the kernel ran no saga program for: on Linux 7.x the syscall tracepoints run BPF
        preemptible, and a program preempted on a CPU makes the kernel skip it for every other task that
        calls there meanwhile (its recursion guard).  The kernel counts those skips; saga reports them."""
        return sum(libbpf.prog_misses(fd) for fd in self._progs)

    def _check_layout(self, config_fd: int) -> None:
        for fd, size in ((config_fd, L.CONFIG.size), (self._counters, L.PCPU_SIZE)):
            if libbpf.map_info(fd).value_size != size:
                raise DriverUnavailable("the loaded eBPF driver comes from another saga version: "
                                        "`make down` and `make up` (or restart the daemon) to reload it")

    # -- shared config ---------------------------------------------------------
    def _cfg_u32(self, off: int) -> int:
        return self._cfg.u32(off)

    def _cfg_u64(self, off: int) -> int:
        return self._cfg.u64(off)

    @contextmanager
    def _locked(self):
        """Serialise read-modify-write of shared state between processes."""
        fcntl.flock(self._dir_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._dir_fd, fcntl.LOCK_UN)

    # -- state -------------------------------------------------------------------
    @_translated("reading the eBPF driver's state")
    def info(self) -> DriverInfo:
        version = self._cfg_map[L.CFG_VERSION:L.CFG_VERSION + L.VERSION_LEN].split(b"\0", 1)[0].decode()
        return DriverInfo(
            driver="ebpf", version=version, abi_version=_uapi.SAGA_ABI_VERSION, features=FEATURES,
            ring_bytes=self._cfg_u32(L.CFG_RING_BYTES), nr_cpus=self._ncpus,
            enabled=bool(self._cfg_u32(L.CFG_ENABLED)), locked=bool(self._cfg_u32(L.CFG_LOCKED)),
            nr_rules=len(self._ruleset().rules),
            default_action=ACTION_NAMES[self._cfg_u32(L.CFG_DEFAULT_ACTION)])

    @_translated("reading the eBPF counters")
    def stats(self) -> Stats:
        # The read count first: records are counted as produced before they can be read, so read <= events
        # holds in the answer (the daemon's accounting: events - read - drops are still in the ring).
        read = self._cfg_u64(L.CFG_READ)
        buf = libbpf.map_lookup(self._counters, 0, L.PCPU_SIZE * self._ncpus)
        words = memoryview(buf).cast("Q")
        stride = L.PCPU_SIZE // 8
        nslots = _uapi.SAGA_NR_SLOTS
        calls = list(words[0:2 * nslots:2])
        errors = list(words[1:2 * nslots:2])
        totals = list(words[2 * nslots:stride])
        for cpu in range(1, self._ncpus):
            base = cpu * stride
            calls = [a + b for a, b in zip(calls, words[base:base + 2 * nslots:2], strict=True)]
            errors = [a + b for a, b in zip(errors, words[base + 1:base + 2 * nslots:2], strict=True)]
            totals = [a + b for a, b in zip(totals, words[base + 2 * nslots:base + stride], strict=True)]
        per_slot = {s: (c, e) for s, (c, e) in enumerate(zip(calls, errors, strict=True)) if c or e}
        named = dict(zip(L.PCPU_TOTALS, totals, strict=True))
        missed = self._missed() - self._cfg_u64(L.CFG_MISSED_AT_RESET)
        return Stats(per_slot=per_slot, calls=sum(calls), errors=sum(errors), read=read,
                     reset_ns=self._cfg_u64(L.CFG_RESET_NS), missed=missed, **named)

    @_translated("resetting the eBPF counters")
    def reset_stats(self) -> None:
        libbpf.map_update(self._counters, 0, bytes(L.PCPU_SIZE * self._ncpus))
        self._cfg.set_u64(L.CFG_READ, 0)
        self._cfg.set_u64(L.CFG_MISSED_AT_RESET, self._missed())
        self._cfg.set_u64(L.CFG_RESET_NS, time.clock_gettime_ns(time.CLOCK_REALTIME))

    @_translated("switching capture")
    def set_enabled(self, enabled: bool) -> None:
        if self._cfg_u32(L.CFG_LOCKED):
            raise refusal(errno.EBUSY, "resuming capture" if enabled else "pausing capture")
        self._cfg.set_u32(L.CFG_ENABLED, int(bool(enabled)))

    # -- rules ---------------------------------------------------------------------
    def _ruleset(self) -> RuleSet:
        return publish.current(self._maps)

    def _publish(self, rs: RuleSet, what: str) -> None:
        if self._cfg_u32(L.CFG_LOCKED):
            raise refusal(errno.EBUSY, what)
        try:
            publish.publish(self._maps, rs)
        except OSError as exc:
            if exc.errno == errno.EPERM:  # the maps are frozen
                raise refusal(errno.EBUSY, what) from None
            raise

    @_translated("reading the rules")
    def list_rules(self) -> list[Rule]:
        return list(self._ruleset().rules)

    @_translated("replacing the rules")
    def replace_rules(self, rules: list[Rule]) -> None:
        """Read-modify-write under the lock: the new set is built from the one in force (its generation)."""
        with self._locked():
            if self._cfg_u32(L.CFG_LOCKED):
                raise refusal(errno.EBUSY, "replacing the rules")
            self._publish(self._ruleset().replace(rules), "replacing the rules")

    @_translated("locking the rules")
    def lock_rules(self) -> None:
        with self._locked():
            if self._cfg_u32(L.CFG_LOCKED):
                return
            # Frozen maps refuse every update from user space until they are freed (unload).
            publish.freeze(self._maps)
            self._cfg.set_u32(L.CFG_LOCKED, 1)

    # -- events -----------------------------------------------------------------------
    def _reader(self) -> RingReader:
        if self._ring is None:
            size = libbpf.map_info(self._events).max_entries
            self._ring = RingReader(self._events, size)
        if self._consumer_pid != os.getpid():
            self._register_consumer()
        return self._ring

    def _register_consumer(self) -> None:
        """Exclude this process from logging (its calls are still counted)."""
        pid = os.getpid()
        with self._locked():
            slots = [self._cfg_u32(L.CFG_CONSUMERS + 4 * i) for i in range(L.MAX_CONSUMERS)]
            if pid not in slots:
                free = [i for i, p in enumerate(slots) if p == 0 or not _alive(p)]
                if not free:
                    raise DriverError(f"too many readers: at most {L.MAX_CONSUMERS} processes read events at once",
                                      errno=errno.EBUSY)
                self._cfg.set_u32(L.CFG_CONSUMERS + 4 * free[0], pid)
        self._consumer_pid = pid

    def _unregister_consumer(self) -> None:
        if self._consumer_pid != os.getpid():
            return
        with self._locked():
            for i in range(L.MAX_CONSUMERS):
                if self._cfg_u32(L.CFG_CONSUMERS + 4 * i) == self._consumer_pid:
                    self._cfg.set_u32(L.CFG_CONSUMERS + 4 * i, 0)
        self._consumer_pid = 0

    def _refresh_clock(self) -> None:
        """Keep the realtime offset the probes add to their monotonic stamps current (NTP, clock steps)."""
        now = time.monotonic_ns()
        if now - self._offset_ns >= OFFSET_REFRESH_NS:
            self._cfg.set_s64(L.CFG_REALTIME_OFFSET, loader.realtime_offset())
            self._offset_ns = now

    @_translated("polling the eBPF ring buffer")
    def fileno(self) -> int:
        return self._reader().fileno()

    @_translated("reading events")
    def read_raw(self, max_bytes: int = 1 << 20, timeout: float | None = 0.0) -> bytes:
        ring = self._reader()
        self._refresh_clock()
        # The periodic tick is consumed before reading, so fileno() polls readable again only at the next
        # tick or wakeup: left unread, it kept a caller polling fileno() awake however empty the ring was.
        ring.drain_timer()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            data, n = ring.read(max_bytes)
            if n:
                self._add_read(n)
                return data
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
            else:
                left = None
            ring.wait(left)

    @_translated("setting the ring's periodic check")
    def set_wake_period(self, seconds: float | None) -> None:
        self._reader().set_period(WAKE_PERIOD_S if seconds is None else seconds)

    def _add_read(self, n: int) -> None:
        self._cfg.set_u64(L.CFG_READ, self._cfg_u64(L.CFG_READ) + n)

    def close(self) -> None:
        if not self._fds:
            return
        try:
            self._unregister_consumer()
        except OSError:
            pass
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if getattr(self, "_cfg_map", None) is not None:
            self._cfg.release()
            self._cfg_map.close()      # once: close() returns early when the fds are gone
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
