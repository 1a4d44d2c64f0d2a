"""Summaries of archived events: calls, failures and latency per syscall, process, user, file or errno.

`summarize` walks a search's batches and keeps, per group, the calls, the
failures, the total time and a histogram of durations (saga.store.latency):
memory grows with the number of groups, never with the number of events.
A report by syscall adds up the tally each batch stored when it was
written for the batches the filter takes whole (time and syscalls only),
and counts the events of the others; a report by errno reads only the
failures.
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
from saga.store import columns, latency
from saga.store.columns import FIELD_CODES, failed
from saga.store.errors import translate
from saga.store.query import Rows, Search, matches

_C = FIELD_CODES


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
    hist: np.ndarray = field(default_factory=lambda: np.zeros(latency.NBUCKETS, np.int64))

    def percentile(self, q: float) -> int | None:
        """The duration (ns) q of the timed calls took at most, None when none was timed."""
        return latency.percentile(self.hist, self.timed, q)


def _keys(by: By, rows: Rows, idx: np.ndarray, ret: np.ndarray, fail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(key per counted event, index into idx of that event): an event counts once per key it has."""
    every = np.arange(len(idx))
    if by is By.syscall:
        return rows.col(_C["nr"])[idx], every
    if by is By.user:
        return rows.col(_C["uid"])[idx], every
    if by is By.errno:
        return (-ret[fail]).astype(np.uint16), every[fail]
    if by is By.file:
        p0, p1 = rows.col(columns.PATH0)[idx], rows.col(columns.PATH1)[idx]
        keys = np.concatenate((p0, p1))
        pos = np.concatenate((every, every))
        keep = (keys != 0) & ~np.concatenate((np.zeros(len(idx), bool), p1 == p0))   # a path twice counts once
        return keys[keep], pos[keep]
    comm = rows.col(_C["comm"])[idx]
    if by is By.comm:
        return comm, every
    exe = exe_ids(rows, idx)
    if by is By.exe:
        return exe, every
    both = np.empty(len(idx), [("comm", "V16"), ("exe", "<u8")])
    both["comm"], both["exe"] = comm, exe
    return both, every


def exe_ids(rows: Rows, idx: np.ndarray) -> np.ndarray:
    """The string id of the executable of the events' processes in the batch (0: not known)."""
    exes = rows.batch.col(columns.EXES)
    pids = rows.col(_C["pid"])[idx]
    if not len(exes):
        return np.zeros(len(pids), np.uint64)
    at = np.searchsorted(exes["key"], pids).clip(max=len(exes) - 1)
    return np.where(exes["key"][at] == pids, exes["id"][at], 0).astype(np.uint64)


class _Groups(dict):
    """Groups by key, added to a batch at a time."""

    def group(self, key: Any) -> Group:
        grp = self.get(key)
        if grp is None:
            grp = self[key] = Group(key)
        return grp

    def add(self, t: latency.Tally) -> None:
        for i, key in enumerate(t.keys.tolist()):
            grp = self.group(key)
            grp.calls += int(t.calls[i])
            grp.failures += int(t.failures[i])
            grp.timed += int(t.timed[i])
            grp.total_ns += int(t.total_ns[i])
            grp.hist += t.hist[i]



class _Stored:
    """The stored per-syscall tallies of batches (columns.CALLS, columns.LATENCY), added up by slot in arrays
    (a Python step per slot and bucket of each batch was most of a report of the day)."""

    def __init__(self) -> None:
        n = _uapi.SAGA_NR_SLOTS
        self.counts = np.zeros((n, 3), np.int64)        # calls, failures, timed
        self.total_ns = np.zeros(n, np.uint64)          # exact up to 2^64 ns (584 years) a slot
        self.hist = np.zeros((n, latency.NBUCKETS), np.int64)

    def add(self, calls: np.ndarray, hist: np.ndarray, slots: np.ndarray | None) -> None:
        """A batch's stored tally, for the slots wanted."""
        if slots is not None:
            calls, hist = calls[slots[calls["slot"]]], hist[slots[hist["slot"]]]
        at = calls["slot"].astype(np.intp)      # one row per slot in a batch: no slot twice
        self.counts[at] += np.stack((calls["calls"], calls["failures"], calls["timed"]), axis=1)
        self.total_ns[at] += calls["total_ns"]
        np.add.at(self.hist, (hist["slot"].astype(np.intp), hist["bucket"].astype(np.intp)), hist["count"])

    def into(self, groups: _Groups) -> None:
        for slot in np.flatnonzero(self.counts[:, 0]).tolist():
            grp = groups.group(slot)
            calls, failures, timed = self.counts[slot].tolist()
            grp.calls += calls
            grp.failures += failures
            grp.timed += timed
            grp.total_ns += int(self.total_ns[slot])
            grp.hist += self.hist[slot]


def summarize(search: Search, by: By) -> list[Group]:
    """The groups of the search's matches, in no particular order."""
    groups = _Groups()
    stored = _Stored()
    if by is By.syscall:
        search.first = [columns.CALLS, columns.LATENCY]     # read ahead for many batches at once
    for b in search.batches():
        with translate("summarizing the archive"):
            if by is By.syscall and search.whole(b):
                b.load([columns.CALLS, columns.LATENCY])
                stored.add(b.col(columns.CALLS), b.col(columns.LATENCY), search.plan.slots)
                continue
            rows = search.rows_of(b, failures=by is By.errno)
            idx = matches(rows, search.flt, search.plan)
            if not len(idx):
                continue
            if rows.failures is None:
                b.load([_C["nr"], _C["ret"], _C["flags"], _C["duration_ns"]])
            ret, flags, dur = rows.col(_C["ret"])[idx], rows.col(_C["flags"])[idx], rows.col(_C["duration_ns"])[idx]
            fail = failed(ret, flags)
            keys, at = _keys(by, rows, idx, ret, fail)
            if len(keys):
                groups.add(latency.tally(keys, fail[at], flags[at], dur[at]))
    stored.into(groups)
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
