"""Which events a reader wants: one filter for `saga log`, `saga query`, the control socket and the archive.

`EventFilter.build` turns command-line values into a filter (syscall
tokens as in the rule grammar: names, globs, %classes); `predicate()`
gives a fast test for raw event tuples (live events, the window); the
store turns the same filter into SQL (saga.store.query).
"""
from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from saga import _uapi
from saga.errors import UsageError
from saga.events import COMM, NR, PID, RET, TS, UID
from saga.rules.grammar import parse_uid
from saga.rules.model import expand

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
            "%Y-%m-%d")


def parse_time(text: str, now_ns: int | None = None) -> int:
    """A point in time as ns since the epoch.

    `1h`, `30m`, `2d`, `90s`, `1w`: that long ago; `now`; `@1700000000` (epoch seconds);
    `2026-11-21`, `2026-11-21T21:30:00`, `2026-11-21 21:30`: local time, or UTC with a `Z` suffix.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    s = text.strip()
    if s == "now":
        return now_ns
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
            secs = calendar.timegm(dt.timetuple())
        else:
            secs = int(time.mktime(dt.timetuple()))
        return secs * 1_000_000_000 + dt.microsecond * 1000
    raise UsageError(f"bad time {text!r}: use a duration ago (30m, 1h, 2d), an ISO date/time "
                     "(2026-11-21, 2026-11-21T21:30:00, with Z for UTC) or @EPOCH")


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

    @classmethod
    def build(cls, *, syscall: str | None = None, pid: int | None = None, uid: str | int | None = None,
              comm: str | None = None, errors: bool = False, since: str | None = None, until: str | None = None,
              host: str | None = None, now_ns: int | None = None) -> EventFilter:
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
        return cls(slots, pid, uid, comm, errors, since_ns, until_ns, host)

    @property
    def comm_bytes(self) -> bytes | None:
        """comm as it appears in a record: at most 15 bytes, NUL padded (the kernel cuts task names so)."""
        if self.comm is None:
            return None
        return self.comm.encode()[:_uapi.SAGA_COMM_LEN - 1].ljust(_uapi.SAGA_COMM_LEN, b"\0")

    def predicate(self) -> Callable[[tuple], bool]:
        """A test for raw event tuples (saga.events.parse) using only the fields this filter sets."""
        tests: list[Callable[[tuple], bool]] = []
        if self.slots is not None:
            slots = self.slots
            tests.append(lambda r: r[NR] in slots)
        if self.pid is not None:
            pid = self.pid
            tests.append(lambda r: r[PID] == pid)
        if self.uid is not None:
            uid = self.uid
            tests.append(lambda r: r[UID] == uid)
        if self.comm is not None:
            comm = self.comm_bytes
            tests.append(lambda r: r[COMM] == comm)
        if self.errors:
            tests.append(lambda r: r[RET] < 0)
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
        known = {"slots", "pid", "uid", "comm", "errors", "since_ns", "until_ns", "host"}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown filter field(s): {', '.join(sorted(unknown))}")
        kw = dict(data)
        if kw.get("slots") is not None:
            kw["slots"] = frozenset(int(s) for s in kw["slots"])
        for name in ("pid", "uid", "since_ns", "until_ns"):
            if kw.get(name) is not None and not isinstance(kw[name], int):
                raise UsageError(f"filter field {name} must be an integer")
        return cls(**kw)
