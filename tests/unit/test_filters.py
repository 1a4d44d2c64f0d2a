"""Event filters and the times they take."""
from __future__ import annotations

import time

import pytest

from saga import syscalls
from saga.errors import RuleError, UsageError
from saga.events import COMM, NR, PID, RET, TS, UID
from saga.filters import EventFilter, parse_time

NOW = 1_800_000_000 * 10**9


@pytest.mark.parametrize("text, expect", [
    ("now", NOW), ("30m", NOW - 1800 * 10**9), ("1h", NOW - 3600 * 10**9), ("2d", NOW - 2 * 86400 * 10**9),
    ("1.5h", NOW - 5400 * 10**9), ("90s", NOW - 90 * 10**9), ("1w", NOW - 7 * 86400 * 10**9),
    ("@1700000000", 1_700_000_000 * 10**9), ("2026-11-21T21:30:00Z", 1795296600 * 10**9),
    ("2026-11-21T21:30:00.5Z", 1795296600 * 10**9 + 500_000_000),
])
def test_times(text, expect):
    assert parse_time(text, NOW) == expect


def test_local_times_use_the_local_zone():
    assert parse_time("2026-11-21 21:30") == int(time.mktime((2026, 11, 21, 21, 30, 0, 0, 0, -1))) * 10**9


@pytest.mark.parametrize("text", ["yesterday-ish", "1y", "", "2026-13-40"])
def test_bad_times_say_what_works(text):
    with pytest.raises(UsageError, match="use a duration ago"):
        parse_time(text, NOW)


def test_predicate_matches_the_fields_it_names(raws):
    openat = syscalls.BY_NAME["openat"].slot
    flt = EventFilter.build(syscall="open*", errors=True, comm="nginx", uid="0")
    got = [r for r in raws if flt.predicate()(r)]
    want = [r for r in raws if r[NR] == openat and r[RET] < 0 and r[COMM].rstrip(b"\0") == b"nginx" and r[UID] == 0]
    assert got == want and got
    assert all(EventFilter().predicate()(r) for r in raws)
    pid = raws[0][PID]
    assert [r for r in raws if EventFilter(pid=pid).predicate()(r)] == [r for r in raws if r[PID] == pid]
    mid = raws[len(raws) // 2][TS]
    window = EventFilter(since_ns=mid, until_ns=mid).predicate()
    assert [r for r in raws if window(r)] == [r for r in raws if r[TS] == mid]


def test_comm_matches_as_the_kernel_cuts_it():
    f = EventFilter(comm="a-very-long-task-name")
    assert f.comm_bytes == b"a-very-long-tas\0"


def test_bad_values_are_usage_errors():
    with pytest.raises(RuleError, match="did you mean"):
        EventFilter.build(syscall="opnat")
    with pytest.raises(RuleError, match="no such user"):
        EventFilter.build(uid="no-such-user-here")
    with pytest.raises(UsageError, match="later than"):
        EventFilter.build(since="1h", until="2h")


def test_json_round_trip():
    f = EventFilter.build(syscall="read,write", pid=3, errors=True, since="1h", now_ns=NOW)
    assert EventFilter.from_json(f.to_json()) == f
    with pytest.raises(UsageError, match="unknown filter"):
        EventFilter.from_json({"bogus": 1})
