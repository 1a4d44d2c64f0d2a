"""Which events a reader wants: one filter for `saga log`, `saga query`, the control socket and the archive.

`EventFilter.build` turns command-line values into a filter (syscall
tokens as in the rule grammar: names, globs, %classes); `predicate()`
gives a fast test for raw event tuples (live events, the window); the
store applies the same filter to its columns (saga.store.query).
"""
from __future__ import annotations

import errno as _errno
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from saga import _uapi, decode
from saga.errors import UsageError
from saga.events import COMM, FLAGS, NR, PID, PPID, RET, TID, TS, UID, paths_of
from saga.rules.grammar import parse_uid
from saga.rules.model import expand

MAX_NS = (1 << 63) - 1      # a time in ns as the archive stores it (a signed 64-bit column)
MAX_ID = (1 << 32) - 1      # pids and uids are u32 in a record
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
            "%Y-%m-%d")


RECENT_S = 600      # `recent`: ten minutes ago, as ausearch
TIME_WORDS = ("now", "recent", "today", "yesterday", "this-week", "week-ago", "this-month", "this-year", "boot")


def boot_time_ns() -> int:
    """When this machine booted (CLOCK_REALTIME ns), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return int(line.split()[1]) * 1_000_000_000
    except OSError as exc:
        raise UsageError(f"cannot tell when this machine booted: {exc.strerror}") from None
    raise UsageError("cannot tell when this machine booted: /proc/stat has no btime")


def _word_time(word: str, now_ns: int) -> int | None:
    """The time words of ausearch: local midnights, the boot, ten minutes ago."""
    if word == "now":
        return now_ns
    if word == "recent":
        return now_ns - RECENT_S * 1_000_000_000
    if word == "boot":
        return boot_time_ns()
    today = datetime.fromtimestamp(now_ns / 1e9).replace(hour=0, minute=0, second=0, microsecond=0)
    start = {"today": today, "yesterday": today - timedelta(days=1),
             "this-week": today - timedelta(days=today.weekday()),     # Monday (ISO 8601 weeks)
             "week-ago": today - timedelta(days=7),
             "this-month": today.replace(day=1), "this-year": today.replace(month=1, day=1)}.get(word)
    return None if start is None else int(time.mktime(start.timetuple())) * 1_000_000_000


def parse_time(text: str, now_ns: int | None = None) -> int:
    """A point in time as ns since the epoch.

    `1h`, `30m`, `2d`, `90s`, `1w`: that long ago; `now`; `recent` (10 minutes ago); `today`,
    `yesterday`, `this-week` (Monday), `week-ago`, `this-month`, `this-year`: local midnight;
    `boot`: when the machine booted; `@1700000000` (epoch seconds); `2026-11-21`,
    `2026-11-21T21:30:00`, `2026-11-21 21:30`: local time, or UTC with a `Z` suffix.
    """
    try:
        ns = _parse_time(text, time.time_ns() if now_ns is None else now_ns)
    except OverflowError:        # @inf, 1e400 days, a year mktime cannot place
        ns = MAX_NS + 1
    if not 0 <= ns <= MAX_NS:
        raise UsageError(f"time {text!r} is out of range (1970 to 2262, as the archive keeps times)")
    return ns


def _parse_time(text: str, now_ns: int) -> int:
    s = text.strip()
    word = _word_time(s, now_ns)
    if word is not None:
        return word
    m = _DURATION.match(s)
    if m:
        return now_ns - int(float(m.group(1)) * _UNITS[m.group(2)] * 1_000_000_000)
    if s.startswith("@"):
        try:
            return int(float(s[1:]) * 1_000_000_000)
        except ValueError:
            pass
    utc = s.endswith("Z")
    body = s[:-1] if utc else s
    for fmt in _FORMATS:
        try:
            dt = datetime.strptime(body, fmt)
        except ValueError:
            continue
        if utc:
            import calendar  # here: only a UTC time needs it
            secs = calendar.timegm(dt.timetuple())
        else:
            secs = int(time.mktime(dt.timetuple()))
        return secs * 1_000_000_000 + dt.microsecond * 1000
    raise UsageError(f"bad time {text!r}: use a duration ago (30m, 1h, 2d), a word ({', '.join(TIME_WORDS)}), "
                     "an ISO date/time (2026-11-21, 2026-11-21T21:30:00, with Z for UTC) or @EPOCH")


def parse_errno(text: str | int) -> int:
    """An errno from its name (EACCES, eacces) or number (13)."""
    if isinstance(text, int) or text.strip().isdigit():
        n = int(text)
        if not 0 < n < 4096:
            raise UsageError(f"bad errno {text!r}: errnos are 1 to 4095")
        return n
    name = text.strip().upper()
    found = getattr(_errno, name, None)
    if not isinstance(found, int):
        found = next((k for k, v in decode.ERRNO_NAMES.items() if v == name), None)
    if found is None:
        raise UsageError(f"unknown errno {text!r}: give a name such as EACCES or ENOENT, or a number")
    return found


def failed(raw: tuple) -> bool:
    """Whether a call failed: it returned -errno (-4095..-1), as saga.render shows it."""
    return -4096 < raw[RET] < 0 and not raw[FLAGS] & _uapi.SAGA_EVF_NORETURN


def _equals(index: int, value: object) -> Callable[[tuple], bool]:
    return lambda r: r[index] == value


@dataclass(frozen=True)
class EventFilter:
    slots: frozenset[int] | None = None   # syscall slots, None = any
    pid: int | None = None
    uid: int | None = None
    comm: str | None = None
    errors: bool = False
    since_ns: int | None = None
    until_ns: int | None = None
    host: str | None = None
    path: str | None = None     # a glob matched against either path of a call
    errno: int | None = None    # failed with this errno
    exe: str | None = None      # the process's executable: a path or glob (a bare name: the file name)
    key: str | None = None      # the key of the rule that logged the call
    ppid: int | None = None
    tid: int | None = None
    unit: str | None = None     # the systemd unit or container (a name or glob)
    argv: str | None = None     # a substring of execve's arguments

    # Fields that need what only the archive (or the daemon) knows besides the record.
    CONTEXT = ("exe", "key", "unit", "argv")

    def __post_init__(self) -> None:
        """Values no record can hold are refused here, before a database is asked (exit 64, never 70)."""
        for name in ("pid", "uid"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= MAX_ID:
                raise UsageError(f"{name} {value} is out of range (0 to {MAX_ID})")
        for name in ("since_ns", "until_ns"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= MAX_NS:
                raise UsageError(f"{name} {value} is out of range (0 to {MAX_NS})")

    @classmethod
    def build(cls, *, syscall: str | None = None, pid: int | None = None, uid: str | int | None = None,
              comm: str | None = None, errors: bool = False, since: str | None = None, until: str | None = None,
              host: str | None = None, now_ns: int | None = None, path: str | None = None,
              errno: str | int | None = None, exe: str | None = None, key: str | None = None,
              ppid: int | None = None, tid: int | None = None, unit: str | None = None,
              argv: str | None = None) -> EventFilter:
        """From command-line values; bad values raise UsageError/RuleError (exit 64)."""
        slots: frozenset[int] | None = None
        if syscall:
            slots = frozenset()
            for token in (t.strip() for t in syscall.split(",")):
                if token:
                    slots |= expand(token)
            if not slots:
                raise UsageError("--syscall names no syscall")
        if uid is not None and not isinstance(uid, int):
            uid = parse_uid(uid)
        if comm is not None and not comm:
            raise UsageError("--comm needs a name")
        since_ns = parse_time(since, now_ns) if since else None
        until_ns = parse_time(until, now_ns) if until else None
        if since_ns is not None and until_ns is not None and since_ns > until_ns:
            raise UsageError("--since is later than --until")
        for name, value in (("--path", path), ("--exe", exe), ("--key", key), ("--unit", unit), ("--argv", argv)):
            if value is not None and not value:
                raise UsageError(f"{name} needs a value")
        return cls(slots, pid, uid, comm, errors, since_ns, until_ns, host, path,
                   parse_errno(errno) if errno is not None else None, exe, key, ppid, tid, unit, argv)

    @property
    def comm_bytes(self) -> bytes | None:
        """comm as it appears in a record: at most 15 bytes, NUL padded (the kernel cuts task names so)."""
        if self.comm is None:
            return None
        return self.comm.encode()[:_uapi.SAGA_COMM_LEN - 1].ljust(_uapi.SAGA_COMM_LEN, b"\0")

    @property
    def needs_context(self) -> list[str]:
        """The fields set that a record alone cannot answer (executable, rule key, unit, argv)."""
        return [name for name in self.CONTEXT if getattr(self, name) is not None]

    def predicate(self) -> Callable[[tuple], bool]:
        """A test for raw event tuples (saga.events.parse) using only the fields this filter sets.

        The fields of needs_context are not tested here: the caller refuses or resolves them.
        """
        tests: list[Callable[[tuple], bool]] = []
        if self.slots is not None:
            slots = self.slots
            tests.append(lambda r: r[NR] in slots)
        for index, value in ((PID, self.pid), (UID, self.uid), (PPID, self.ppid), (TID, self.tid),
                             (COMM, self.comm_bytes)):
            if value is not None:
                tests.append(_equals(index, value))
        if self.errors:
            tests.append(failed)
        if self.errno is not None:
            neg = -self.errno
            tests.append(lambda r: r[RET] == neg and not r[FLAGS] & _uapi.SAGA_EVF_NORETURN)
        if self.path is not None:
            glob = self.path
            tests.append(lambda r: any(fnmatchcase(p, glob) for p in paths_of(r)))
        if self.since_ns is not None:
            since = self.since_ns
            tests.append(lambda r: r[TS] >= since)
        if self.until_ns is not None:
            until = self.until_ns
            tests.append(lambda r: r[TS] <= until)
        if not tests:
            return lambda r: True
        if len(tests) == 1:
            return tests[0]
        return lambda r: all(t(r) for t in tests)

    @property
    def empty(self) -> bool:
        return self == EventFilter()

    def to_json(self) -> dict:
        d = asdict(self)
        d["slots"] = sorted(self.slots) if self.slots is not None else None
        return {k: v for k, v in d.items() if v not in (None, False)}

    @classmethod
    def from_json(cls, data: dict) -> EventFilter:
        if not isinstance(data, dict):
            raise UsageError("filter must be an object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown filter field(s): {', '.join(sorted(unknown))}")
        kw = dict(data)
        if kw.get("slots") is not None:
            kw["slots"] = frozenset(int(s) for s in kw["slots"])
        for name in ("pid", "uid", "since_ns", "until_ns", "errno", "ppid", "tid"):
            if kw.get(name) is not None and not isinstance(kw[name], int):
                raise UsageError(f"filter field {name} must be an integer")
        return cls(**kw)
