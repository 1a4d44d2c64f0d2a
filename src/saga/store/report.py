"""Summaries of archived events: calls, failures and latency per syscall, process, user, file or errno.

`summarize` walks a search's matches (saga.store.query.Search.scan) a
batch at a time and keeps, per group, the calls, the failures, the total
time and a histogram of durations (8 buckets per doubling, so p50 and p99
are exact to within 4.5%): memory grows with the number of groups, never
with the number of events.  Calls whose duration is unknown (no entry
seen, or no return) count as calls but not in the latency columns.
"""
from __future__ import annotations

import enum
import pwd
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from saga import _uapi, decode, syscalls
from saga.store import columns
from saga.store.archive import failed
from saga.store.columns import FIELD_CODES
from saga.store.query import Batch, Search

_C = FIELD_CODES
BUCKETS_PER_DOUBLING = 8
_LOW = 7                    # the first bucket ends at 2^7 ns
NBUCKETS = (41 - _LOW) * BUCKETS_PER_DOUBLING + 1   # the last bucket: 2^41 ns (36 min) and longer
_UNTIMED = _uapi.SAGA_EVF_NO_ENTER | _uapi.SAGA_EVF_NORETURN


class By(str, enum.Enum):
    syscall = "syscall"
    process = "process"     # comm and executable
    exe = "exe"
    comm = "comm"
    user = "user"
    file = "file"
    errno = "errno"


@dataclass
class Group:
    key: Any
    calls: int = 0
    failures: int = 0
    timed: int = 0
    total_ns: int = 0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(NBUCKETS, np.int64))

    def percentile(self, q: float) -> int | None:
        """The duration (ns) q of the timed calls took at most, None when none was timed."""
        if not self.timed:
            return None
        rank = max(1, int(np.ceil(q * self.timed)))
        b = int(np.searchsorted(np.cumsum(self.hist), rank))
        if b == 0:
            return 1 << _LOW >> 1
        lo = 2 ** (_LOW + (b - 1) / BUCKETS_PER_DOUBLING)
        return int(lo * 2 ** (0.5 / BUCKETS_PER_DOUBLING))     # the bucket's geometric middle


def _buckets(dur: np.ndarray) -> np.ndarray:
    d = np.maximum(dur.astype(np.float64), 1.0)
    b = np.floor((np.log2(d) - _LOW) * BUCKETS_PER_DOUBLING).astype(np.int64) + 1
    return np.clip(b, 0, NBUCKETS - 1)


def _keys(by: By, b: Batch, pos: np.ndarray, ret: np.ndarray, fail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(key per counted event, index into pos of that event): an event counts once per key it has."""
    every = np.arange(len(pos))
    if by is By.syscall:
        return b.col(_C["nr"])[pos], every
    if by is By.user:
        return b.col(_C["uid"])[pos], every
    if by is By.errno:
        return -ret[fail], every[fail]
    if by is By.file:
        p0, p1 = b.col(columns.PATH0)[pos], b.col(columns.PATH1)[pos]
        keys = np.concatenate((p0, p1))
        idx = np.concatenate((every, every))
        keep = (keys != 0) & ~np.concatenate((np.zeros(len(pos), bool), p1 == p0))   # a path twice counts once
        return keys[keep], idx[keep]
    comm = b.col(_C["comm"])[pos]
    if by is By.comm:
        return comm, every
    exe = exe_ids(b, b.col(_C["pid"])[pos])
    if by is By.exe:
        return exe, every
    both = np.empty(len(pos), [("comm", "V16"), ("exe", "<u8")])
    both["comm"], both["exe"] = comm, exe
    return both, every


def exe_ids(b: Batch, pids: np.ndarray) -> np.ndarray:
    """The string id of each pid's executable in the batch (0: not known)."""
    exes = b.col(columns.EXES)
    if not len(exes):
        return np.zeros(len(pids), np.uint64)
    at = np.searchsorted(exes["key"], pids).clip(max=len(exes) - 1)
    return np.where(exes["key"][at] == pids, exes["id"][at], 0).astype(np.uint64)


def summarize(search: Search, by: By) -> list[Group]:
    """The groups of the search's matches, in no particular order."""
    groups: dict[object, Group] = {}
    for b, pos in search.scan():
        b.load([_C["nr"], _C["ret"], _C["flags"], _C["duration_ns"]])
        ret, flags, dur = b.col(_C["ret"])[pos], b.col(_C["flags"])[pos], b.col(_C["duration_ns"])[pos]
        fail = failed(ret, flags)
        keys, idx = _keys(by, b, pos, ret, fail)
        if not len(keys):
            continue
        uniq, inv = np.unique(keys, return_inverse=True)
        inv = inv.ravel()
        g = len(uniq)
        calls = np.bincount(inv, minlength=g)
        fails = np.bincount(inv[fail[idx]], minlength=g)
        timed = (flags[idx] & _UNTIMED) == 0
        ti = inv[timed]
        tdur = dur[idx][timed]
        ntimed = np.bincount(ti, minlength=g)
        total = np.bincount(ti, weights=tdur.astype(np.float64), minlength=g)
        hist = np.bincount(ti * NBUCKETS + _buckets(tdur), minlength=g * NBUCKETS).reshape(g, NBUCKETS)
        for i, key in enumerate(uniq.tolist()):
            grp = groups.get(key)
            if grp is None:
                grp = groups[key] = Group(key)
            grp.calls += int(calls[i])
            grp.failures += int(fails[i])
            grp.timed += int(ntimed[i])
            grp.total_ns += int(total[i])
            grp.hist += hist[i]
    return list(groups.values())


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def labels(search: Search, by: By, groups: list[Group]) -> Iterator[dict]:
    """Each group's key as JSON-ready fields (names resolved)."""
    keys: list[Any] = [g.key for g in groups]
    ids: list[int] = []
    if by in (By.file, By.exe):
        ids = [int(k) for k in keys]
    elif by is By.process:
        ids = [int(k[1]) for k in keys]
    known = search.strings(ids)

    def text(i: int) -> str | None:
        return known[i].decode("utf-8", "surrogateescape") if i else None

    for k in keys:
        if by is By.syscall:
            yield {"syscall": syscalls.name_of(int(k)), "nr": int(k)}
        elif by is By.errno:
            yield {"errno": decode.errno_name(int(k)), "code": int(k)}
        elif by is By.user:
            yield {"uid": int(k), "user": user_name(int(k))}
        elif by is By.file:
            yield {"path": text(int(k))}
        elif by is By.exe:
            yield {"exe": text(int(k))}
        elif by is By.comm:
            yield {"comm": _comm(bytes(k))}
        else:
            yield {"comm": _comm(bytes(k[0])), "exe": text(int(k[1]))}
