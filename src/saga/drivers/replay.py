"""The replay driver: capture semantics in memory, fed from a recording of real records.

A recording is a file of records in the /dev/saga format (docs/kernel-abi.md),
optionally gzip-compressed; tests/data/ holds one.  Each record stands for
one system call that has not happened yet.  Calls "happen" in order when
a reader asks for events (`read_raw`) or a test calls `advance()`: the
driver then does what docs/capture.md says a kernel driver does: the
first matching rule (or the default action) decides, `count` and `log`
count the call per slot, `log` puts the record in a ring of `ring_bytes`,
and a record that does not fit is dropped and counted.  `read_raw` only
makes calls while the ring has room, so a reader never loses events;
`advance()` makes them regardless, which is how tests produce drops.

Thread-safe: the daemon drains it from its event loop while tests feed
it more calls and the CLI changes rules from other threads.
"""
from __future__ import annotations

import errno
import gzip
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import saga
from saga import _uapi, events
from saga.drivers.base import Driver, DriverInfo, Stats
from saga.errors import DriverError, DriverUnavailable, RulesLocked, from_oserror
from saga.rules.model import ACTION_NAMES, ACTIONS, Rule, tokens_for_slots

_ALL_FEATURES = _uapi.SAGA_FEAT_PATHS | _uapi.SAGA_FEAT_DURATION | _uapi.SAGA_FEAT_COMPAT | _uapi.SAGA_FEAT_POLL


@dataclass(frozen=True)
class _Compiled:
    """A rule in the form the matcher tests."""

    slots: frozenset[int]
    pid: int | None
    uid: int | None
    comm: bytes | None
    errors: bool
    action: int

    @classmethod
    def of(cls, rule: Rule) -> _Compiled:
        comm = None
        if rule.comm is not None:
            comm = rule.comm.encode()[:_uapi.SAGA_COMM_LEN - 1].ljust(_uapi.SAGA_COMM_LEN, b"\0")
        return cls(rule.slots, rule.pid, rule.uid, comm, rule.errors, ACTIONS[rule.action])

    def matches(self, raw: tuple) -> bool:
        return (raw[events.NR] in self.slots
                and (self.pid is None or raw[events.PID] == self.pid)
                and (self.uid is None or raw[events.UID] == self.uid)
                and (self.comm is None or raw[events.COMM] == self.comm)
                and (not self.errors or raw[events.RET] < 0))


def split_records(buf: bytes) -> list[tuple[bytes, tuple]]:
    """Each record's bytes with its parsed tuple (RecordError on malformed input)."""
    out = []
    off = 0
    for raw in events.parse(buf):
        size = raw[events.SIZE]
        out.append((bytes(buf[off:off + size]), raw))
        off += size
    return out


class ReplayDriver(Driver):
    name = "replay"

    def __init__(self, recording: bytes = b"", *, ring_bytes: int = 8 << 20, nr_cpus: int | None = None,
                 default_action: str = "log", enabled: bool = True) -> None:
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)
        self._queue: deque[tuple[bytes, tuple]] = deque()
        self._ring: deque[bytes] = deque()
        self._ring_used = 0
        self.ring_bytes = ring_bytes
        self.nr_cpus = nr_cpus or os.cpu_count() or 1
        self.default_action = ACTIONS[default_action]
        self._enabled = enabled
        self._locked = False
        self._rules: list[Rule] = []
        self._compiled: list[_Compiled] = []
        self._next_id = 1
        self._counters: dict[int, list[int]] = {}
        self._totals = dict(events=0, drops=0, read=0, no_enter=0, path_faults=0)
        self._reset_ns = time.time_ns()
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._signalled = False
        self._closed = False
        if recording:
            self.feed(recording)

    @classmethod
    def open(cls, path: str, load: bool = False, **kw) -> ReplayDriver:
        """A driver replaying the recording at `path` (load is accepted for symmetry: nothing to load)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise from_oserror(exc, f"reading the replay recording {path}", DriverUnavailable) from None
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise DriverUnavailable(f"replay recording {path}: {exc}") from None
        try:
            return cls(data, **kw)
        except events.RecordError as exc:
            raise DriverUnavailable(f"replay recording {path} is not a run of saga records: {exc}") from None

    # -- feeding -----------------------------------------------------------
    def feed(self, buf: bytes) -> int:
        """Queue the calls of a run of records; returns how many."""
        calls = split_records(buf)
        with self._lock:
            self._queue.extend(calls)
            self._update_readable()
            self._arrived.notify_all()
        return len(calls)

    @property
    def pending(self) -> int:
        """Calls queued that have not happened yet."""
        with self._lock:
            return len(self._queue)

    def advance(self, n: int | None = None) -> int:
        """Make up to n queued calls happen now (all when None), dropping records the ring cannot hold."""
        with self._lock:
            done = 0
            while self._queue and (n is None or done < n):
                self._call(*self._queue.popleft())
                done += 1
            self._update_readable()
            return done

    def _action(self, raw: tuple) -> int:
        for rule in self._compiled:
            if rule.matches(raw):
                return rule.action
        return self.default_action

    def _call(self, record: bytes, raw: tuple) -> None:
        if not self._enabled:
            return
        action = self._action(raw)
        if action == _uapi.SAGA_ACT_IGNORE:
            return
        c = self._counters.get(raw[events.NR])
        if c is None:
            c = self._counters[raw[events.NR]] = [0, 0]
        c[0] += 1
        if raw[events.RET] < 0 and not raw[events.FLAGS] & _uapi.SAGA_EVF_NORETURN:
            c[1] += 1
        if action != _uapi.SAGA_ACT_LOG:
            return
        if self._ring_used + len(record) > self.ring_bytes:
            self._totals["drops"] += 1
            return
        self._ring.append(record)
        self._ring_used += len(record)
        self._totals["events"] += 1
        if raw[events.FLAGS] & _uapi.SAGA_EVF_NO_ENTER:
            self._totals["no_enter"] += 1
        if raw[events.FLAGS] & _uapi.SAGA_EVF_PATH_FAULT:
            self._totals["path_faults"] += 1

    def _fill(self, want: int) -> None:
        """Make calls until the ring holds `want` bytes, the queue is empty, or the next record would not fit."""
        while self._queue and self._ring_used < want:
            record, raw = self._queue[0]
            if self._ring_used + len(record) > self.ring_bytes:
                break
            self._queue.popleft()
            self._call(record, raw)

    def _update_readable(self) -> None:
        want = bool(self._ring or self._queue) and not self._closed
        if want and not self._signalled:
            os.write(self._wfd, b"x")
            self._signalled = True
        elif not want and self._signalled:
            try:
                os.read(self._rfd, 64)
            except BlockingIOError:
                pass
            self._signalled = False

    # -- events --------------------------------------------------------------
    def fileno(self) -> int:
        return self._rfd

    def read_raw(self, max_bytes: int = 1 << 20, timeout: float | None = 0.0) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                self._check_open()
                self._fill(max_bytes)
                if self._ring:
                    if len(self._ring[0]) > max_bytes:
                        raise DriverError(f"read buffer of {max_bytes} bytes is smaller than the next record",
                                          errno=errno.EINVAL)
                    out = []
                    used = 0
                    while self._ring and used + len(self._ring[0]) <= max_bytes:
                        rec = self._ring.popleft()
                        out.append(rec)
                        used += len(rec)
                    self._ring_used -= used
                    self._totals["read"] += len(out)
                    self._update_readable()
                    return b"".join(out)
                self._update_readable()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return b""
                self._arrived.wait(remaining)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._arrived.notify_all()
        os.close(self._rfd)
        os.close(self._wfd)

    def _check_open(self) -> None:
        if self._closed:
            raise DriverError("the replay driver is closed", errno=errno.EBADF)

    # -- state ---------------------------------------------------------------
    def info(self) -> DriverInfo:
        with self._lock:
            return DriverInfo(driver=self.name, version=saga.__version__, abi_version=_uapi.SAGA_ABI_VERSION,
                              features=_ALL_FEATURES, ring_bytes=self.ring_bytes, nr_cpus=self.nr_cpus,
                              enabled=self._enabled, locked=self._locked, nr_rules=len(self._rules),
                              default_action=ACTION_NAMES[self.default_action])

    def stats(self) -> Stats:
        with self._lock:
            per_slot = {slot: (c[0], c[1]) for slot, c in self._counters.items() if c[0]}
            return Stats(per_slot=per_slot, calls=sum(c for c, _ in per_slot.values()),
                         errors=sum(e for _, e in per_slot.values()), reset_ns=self._reset_ns, **self._totals)

    def reset_stats(self) -> None:
        with self._lock:
            self._counters.clear()
            for k in self._totals:
                self._totals[k] = 0
            self._reset_ns = time.time_ns()

    def set_enabled(self, enabled: bool) -> None:
        with self._lock:
            self._enabled = bool(enabled)

    # -- rules ---------------------------------------------------------------
    def _check_unlocked(self) -> None:
        if self._locked:
            raise RulesLocked("rules are locked until the driver is unloaded")

    def _install(self, rules: list[Rule]) -> None:
        self._rules = rules
        self._compiled = [_Compiled.of(r) for r in rules]
        self._next_id = max([self._next_id] + [r.id + 1 for r in rules if r.id is not None])

    def _assign_id(self, rule: Rule, taken: set[int]) -> Rule:
        """The rule with its own id checked, or a fresh one not in `taken`; the id joins `taken`."""
        if rule.id is not None:
            if rule.id in taken:
                raise DriverError(f"rule id {rule.id} is already in use", errno=errno.EEXIST)
            if not 0 < rule.id <= 0xFFFFFFFF:
                raise DriverError(f"rule id {rule.id} is out of range", errno=errno.EINVAL)
        else:
            while self._next_id in taken:
                self._next_id += 1
            rule = rule.with_id(self._next_id)
            taken.add(self._next_id)
            return rule
        taken.add(rule.id)
        return rule

    def list_rules(self) -> list[Rule]:
        with self._lock:
            # As a kernel driver reports them: the syscall set rebuilt from the slot bitmap.
            return [Rule(r.action, tokens_for_slots(r.slots), pid=r.pid, uid=r.uid, comm=r.comm, errors=r.errors,
                         key=r.key, id=r.id) for r in self._rules]

    def add_rule(self, rule: Rule, position: int | None = None) -> int:
        with self._lock:
            self._check_unlocked()
            if len(self._rules) >= _uapi.SAGA_MAX_RULES:
                raise DriverError(f"no room for more than {_uapi.SAGA_MAX_RULES} rules", errno=errno.ENOSPC)
            rule = self._assign_id(rule, {r.id for r in self._rules if r.id is not None})
            rules = list(self._rules)
            rules.insert(len(rules) if position is None else min(position, len(rules)), rule)
            self._install(rules)
            assert rule.id is not None
            return rule.id

    def remove_rule(self, rule_id: int) -> None:
        with self._lock:
            self._check_unlocked()
            rules = [r for r in self._rules if r.id != rule_id]
            if len(rules) == len(self._rules):
                raise DriverError(f"no rule with id {rule_id}", errno=errno.ENOENT)
            self._install(rules)

    def remove_key(self, key: str) -> int:
        with self._lock:
            self._check_unlocked()
            rules = [r for r in self._rules if r.key != key]
            removed = len(self._rules) - len(rules)
            self._install(rules)
            return removed

    def replace_rules(self, rules: list[Rule]) -> None:
        with self._lock:
            self._check_unlocked()
            if len(rules) > _uapi.SAGA_MAX_RULES:
                raise DriverError(f"no room for more than {_uapi.SAGA_MAX_RULES} rules", errno=errno.ENOSPC)
            given = [r.id for r in rules if r.id is not None]
            if len(given) != len(set(given)):
                raise DriverError("a rule id appears twice", errno=errno.EINVAL)
            taken = set(given)
            installed = [r if r.id is not None else self._assign_id(r, taken) for r in rules]
            for r in installed:
                if r.id is None or not 0 < r.id <= 0xFFFFFFFF:
                    raise DriverError(f"rule id {r.id} is out of range", errno=errno.EINVAL)
            self._install(installed)

    def clear_rules(self) -> None:
        with self._lock:
            self._check_unlocked()
            self._install([])

    def lock_rules(self) -> None:
        with self._lock:
            self._locked = True
