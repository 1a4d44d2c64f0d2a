"""What the kernel record does not say about a process: its executable, command line, user,
its pids in nested pid namespaces, and the service or container it runs in.

Looked up with psutil and cached per pid together with the process's
start time, so a recycled pid is never given the previous owner's exe.
An entry is re-checked once it is older than `ttl` seconds (an exec
changes exe and name without changing pid or start time).  A process
that has exited keeps its last known description: its events are still
being archived.  psutil and OS errors stop at `_probe`, the one boundary.

Pids as the process sees them (`NSpid:` in /proc/PID/status) are not in
the record (docs/kernel-abi.md): they are read here, once per process.
cgroup ids (a record's `cgroup_id`, or the process's own cgroup) resolve
to a systemd unit or a container through saga.cgroups, cached by id.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import psutil

from saga import cgroups
from saga.events import CGROUP_ID, PID


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    start_ns: int              # process start, CLOCK_REALTIME ns
    name: str
    exe: str | None
    cmdline: tuple[str, ...]
    user: str | None
    nspid: tuple[int, ...] = ()            # its pid in each nested pid namespace, outermost first (NSpid)
    cgroup_id: int | None = None           # its cgroup v2 id when it was looked up
    context: cgroups.Context | None = None  # the unit or container that cgroup is

    @property
    def own_pid(self) -> int | None:
        """The pid the process sees for itself, when it differs from the initial namespace's."""
        return self.nspid[-1] if len(self.nspid) > 1 else None


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
        return ProcInfo(pid, start_ns, name, exe or None, cmdline, user, nspid(pid))
    except (psutil.Error, OSError, ValueError):
        return None


def last_of_each(keys: Sequence[int] | np.ndarray, values: Sequence[int] | np.ndarray) -> dict[int, int]:
    """key -> the value beside its last occurrence (numpy: a read has thousands of events)."""
    k, v = np.asarray(keys)[::-1], np.asarray(values)[::-1]
    uniq, first = np.unique(k, return_index=True)
    return dict(zip(uniq.tolist(), v[first].tolist(), strict=True))


def nspid(pid: int, proc: str = "/proc") -> tuple[int, ...]:
    """The `NSpid:` line of /proc/PID/status: the pid in each pid namespace, outermost first."""
    try:
        with open(f"{proc}/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return tuple(int(p) for p in line.split()[1:])
    except (OSError, ValueError):
        return ()
    return ()


def _optional(getter):
    """A field that may be refused (kernel threads have no exe; another user's process) without losing the rest."""
    try:
        return getter()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None


class Enricher:
    """Thread-safe cache of ProcInfo by pid (the archiver thread fills it, /sagafs reads it)."""

    def __init__(self, ttl: float = 1.0, max_entries: int = 65536, clock=time.monotonic, probe=_probe,
                 resolver: cgroups.CgroupResolver | None = None) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._probe = probe
        self.cgroups = resolver if resolver is not None else cgroups.CgroupResolver()
        self._pending: set[int] = set()      # pids seen in events and never looked up
        self._pending_cgroups: dict[int, int] = {}   # cgroup ids seen and not resolved -> a pid in each
        self._where: dict[tuple, tuple[str, dict]] = {}
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
        if found is not None:
            where = self.cgroups.of_pid(pid)
            if where is not None:
                found = replace(found, cgroup_id=where[0], context=where[1])
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

    def exes(self, pids: Iterable[int]) -> dict[int, str | None]:
        """pid -> executable for the pids of a batch."""
        out = {}
        for pid in set(pids):
            info = self.lookup(pid)
            out[pid] = info.exe if info else None
        return out

    def note(self, pids: Sequence[int] | np.ndarray, cgroup_ids: Sequence[int] | np.ndarray) -> bool:
        """Remember the pids and cgroup ids (of each event of a read: saga.events.pids, cgroup_ids) not looked
        up yet (cheap: the event loop calls it); True when some are waiting for a lookup."""
        self._pending.update(set(np.unique(np.asarray(pids)).tolist()).difference(self._cache))
        known = self.cgroups.cached
        for cgid, pid in last_of_each(cgroup_ids, pids).items():
            if known(cgid) is None:
                self._pending_cgroups[cgid] = pid
        return bool(self._pending or self._pending_cgroups)

    def take_pending(self) -> tuple[set[int], dict[int, int]]:
        pids, self._pending = self._pending, set()
        cgroup_ids, self._pending_cgroups = self._pending_cgroups, {}
        return pids, cgroup_ids

    def lookup_all(self, pending: tuple[set[int], dict[int, int]]) -> None:
        """Look up what note() found (a worker thread: this reads /proc and may walk the cgroup tree)."""
        pids, cgroup_ids = pending
        for cgid, pid in cgroup_ids.items():
            self.cgroups.resolve(cgid, pid)
        for pid in pids:
            self.lookup(pid)

    def where(self, raw: tuple) -> tuple[str, dict] | None:
        """The log line's words and the JSON fields saying where an event's process ran (render.context_of):
        the unit or container of the record's cgroup, and the process's pid in its own pid namespace.

        Never reads /proc or the cgroup tree: None until the cgroup or the process has been looked up."""
        cgid = raw[CGROUP_ID]
        entry = self._cache.get(raw[PID])
        proc = entry[0] if entry is not None else None
        key = (raw[PID], proc.start_ns if proc is not None else None, cgid)
        hit = self._where.get(key)
        if hit is None:
            ctx = self.cgroups.cached(cgid) if cgid else None
            if ctx is None and proc is not None:
                ctx = proc.context   # a record without a cgroup id (ABI 1 recordings): the process's own
            if ctx is None and proc is None:
                return None
            hit = (ctx.token if ctx is not None else "",
                   {**(ctx.to_json() if ctx is not None else {}), "nspid": proc.own_pid if proc else None})
            if proc is None:
                return hit   # the namespace pid may come later: do not keep this one
            if len(self._where) >= self.max_entries:
                self._where.clear()
            self._where[key] = hit
        return hit

    def context(self, raw: tuple) -> cgroups.Context | None:
        """The unit or container an event came from, as far as it is known; never reads /proc."""
        ctx = self.cgroups.cached(raw[CGROUP_ID]) if raw[CGROUP_ID] else None
        if ctx is None:
            info = self.cached(raw[PID])
            ctx = info.context if info is not None else None
        return ctx

    def units(self, pids: Sequence[int] | np.ndarray, cgroup_ids: Sequence[int] | np.ndarray) -> dict[int, str | None]:
        """pid -> the unit or container name (Context.name) of the pids of a batch (each event's pid and cgroup
        id; saga query --unit): that of the cgroup of each pid's last call in the batch, else its process's;
        may read /proc and the cgroup tree."""
        return self.units_of(last_of_each(pids, cgroup_ids))

    def units_of(self, last: Mapping[int, int]) -> dict[int, str | None]:
        """units() of a batch given as pid -> the cgroup id of its last call (last_of_each)."""
        out: dict[int, str | None] = {}
        for pid, cgid in last.items():
            ctx = self.cgroups.resolve(cgid, pid) if cgid else None
            if ctx is None:
                info = self.lookup(pid)
                ctx = info.context if info is not None else None
            out[pid] = ctx.name if ctx is not None else None
        return out

    def __len__(self) -> int:
        return len(self._cache)
