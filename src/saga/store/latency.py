"""Counting calls by a key: calls, failures, time, and a histogram of durations (reports).

The one tally of saga's reports: `saga report` over columns it reads
(saga.store.report), and the per-syscall tally each batch stores when it
is written (columns.CALLS, columns.LATENCY), which a report over whole
batches adds up instead of reading their events.  Durations go into
buckets of 8 per doubling, so p50 and p99 are exact to within 4.5%; calls
whose duration is unknown (no entry seen, or no return) count as calls but
not in the latency columns.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saga import _uapi

BUCKETS_PER_DOUBLING = 8
LOW = 7                     # the first bucket ends at 2^7 ns
NBUCKETS = (41 - LOW) * BUCKETS_PER_DOUBLING + 1   # the last bucket: 2^41 ns (36 min) and longer
UNTIMED = _uapi.SAGA_EVF_NO_ENTER | _uapi.SAGA_EVF_NORETURN
_LOW32 = np.uint64(0xFFFFFFFF)
_EXACT = 1 << 53            # float64 holds every integer below this


def buckets(dur: np.ndarray) -> np.ndarray:
    d = np.maximum(dur.astype(np.float64), 1.0)
    b = np.floor((np.log2(d) - LOW) * BUCKETS_PER_DOUBLING).astype(np.int64) + 1
    return np.clip(b, 0, NBUCKETS - 1)


def percentile(hist: np.ndarray, timed: int, q: float) -> int | None:
    """The duration (ns) q of the timed calls took at most, None when none was timed."""
    if not timed:
        return None
    rank = max(1, int(np.ceil(q * timed)))
    b = int(np.searchsorted(np.cumsum(hist), rank))
    if b == 0:
        return 1 << LOW >> 1
    lo = 2 ** (LOW + (b - 1) / BUCKETS_PER_DOUBLING)
    return int(lo * 2 ** (0.5 / BUCKETS_PER_DOUBLING))     # the bucket's geometric middle


def exact_sum(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per group, the sum of u64 values, exact (bincount adds in float64: the halves stay below 2^53)."""
    v = values.astype(np.uint64, copy=False)
    if not len(v) or int(v.max()) < _EXACT // len(v):      # no sum reaches 2^53: float64 adds them exactly
        return np.bincount(groups, weights=v.astype(np.float64), minlength=n).astype(np.uint64)
    lo = np.bincount(groups, weights=(v & _LOW32).astype(np.float64), minlength=n)
    hi = np.bincount(groups, weights=(v >> np.uint64(32)).astype(np.float64), minlength=n)
    return (hi.astype(np.uint64) << np.uint64(32)) + lo.astype(np.uint64)


@dataclass
class Tally:
    """Per key (sorted, unique): calls, failures, timed calls, their total ns and duration histogram."""

    keys: np.ndarray
    calls: np.ndarray
    failures: np.ndarray
    timed: np.ndarray
    total_ns: np.ndarray
    hist: np.ndarray            # (keys, NBUCKETS)


def tally(keys: np.ndarray, fail: np.ndarray, flags: np.ndarray, dur: np.ndarray) -> Tally:
    """Count the calls by key (one entry per call in each array)."""
    if keys.dtype.kind == "u" and keys.dtype.itemsize <= 2:      # syscall slots, errnos: no sort needed
        present = np.bincount(keys)
        uniq = np.flatnonzero(present).astype(keys.dtype)
        lut = np.zeros(len(present), np.int64)
        lut[uniq] = np.arange(len(uniq))
        inv = lut[keys]
    else:
        uniq, inv = np.unique(keys, return_inverse=True)
        inv = inv.ravel()
    g = len(uniq)
    timed = (flags & UNTIMED) == 0
    ti = inv[timed]
    tdur = dur[timed]
    hist = np.bincount(ti * NBUCKETS + buckets(tdur), minlength=g * NBUCKETS).reshape(g, NBUCKETS)
    return Tally(uniq, np.bincount(inv, minlength=g), np.bincount(inv[fail], minlength=g),
                 np.bincount(ti, minlength=g), exact_sum(ti, tdur, g), hist)
