"""What the kernel record does not say about a process: its executable, command line and user.

Looked up with psutil and cached per pid together with the process's
start time, so a recycled pid is never given the previous owner's exe.
An entry is re-checked once it is older than `ttl` seconds (an exec
changes exe and name without changing pid or start time).  A process
that has exited keeps its last known description: its events are still
being archived.  psutil and OS errors stop at `_probe`, the one boundary.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter

import psutil

from saga.events import PID


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    start_ns: int              # process start, CLOCK_REALTIME ns
    name: str
    exe: str | None
    cmdline: tuple[str, ...]
    user: str | None


def _probe(pid: int) -> ProcInfo | None:
    """The process now running as `pid`, or None when there is none (or it cannot be read at all)."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            start_ns = int(proc.create_time() * 1e9)
            name = proc.name()
            exe = _optional(proc.exe)
            cmdline = tuple(_optional(proc.cmdline) or ())
            user = _optional(proc.username)
        return ProcInfo(pid, start_ns, name, exe or None, cmdline, user)
    except (psutil.Error, OSError, ValueError):
        return None


def _optional(getter):
    """A field that may be refused (kernel threads have no exe; another user's process) without losing the rest."""
    try:
        return getter()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None


class Enricher:
    """Thread-safe cache of ProcInfo by pid (the archiver thread fills it, /sagafs reads it)."""

    def __init__(self, ttl: float = 1.0, max_entries: int = 65536, clock=time.monotonic, probe=_probe) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._probe = probe
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[ProcInfo | None, float]] = {}
        self.lookups = 0           # probes of /proc, for status and tests

    def cached(self, pid: int) -> ProcInfo | None:
        """What is known about pid without touching /proc (safe on the event loop)."""
        entry = self._cache.get(pid)
        return entry[0] if entry else None

    def lookup(self, pid: int) -> ProcInfo | None:
        """Fresh enough information about pid; may read /proc (call from a worker thread)."""
        now = self._clock()
        entry = self._cache.get(pid)
        if entry is not None and now - entry[1] < self.ttl:
            return entry[0]
        self.lookups += 1
        found = self._probe(pid)
        if found is None and entry is not None:
            found = entry[0]   # exited: its last description still fits its past events
        with self._lock:
            if len(self._cache) >= self.max_entries and pid not in self._cache:
                self._evict(now)
            self._cache[pid] = (found, now)
        return found

    def _evict(self, now: float) -> None:
        stale = [p for p, (_, t) in self._cache.items() if now - t >= self.ttl]
        for p in stale or list(self._cache)[: len(self._cache) // 2]:
            del self._cache[p]

    def exes(self, raws: Iterable[tuple]) -> dict[int, str | None]:
        """pid -> executable for the pids of a batch of raw events."""
        out = {}
        for pid in set(map(itemgetter(PID), raws)):
            info = self.lookup(pid)
            out[pid] = info.exe if info else None
        return out

    def __len__(self) -> int:
        return len(self._cache)
