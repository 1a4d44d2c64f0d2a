"""The daemon's state: what the drain loop fills and /sagafs and the control socket read.

One DaemonState lives in the daemon's trio thread.  Handlers (sagafs,
control socket) read `window`, `counters`, `status()`, wait for events
with `wait_for_events`, and change rules through `rules` (a RulesService:
database and driver together) from a worker thread
(`trio.to_thread.run_sync(state.rules.add, rule)`): rule changes and
store access block.  docs/daemon.md documents every field.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

import saga
from saga import events
from saga.config import Config
from saga.daemon.archiver import Archiver
from saga.daemon.enrich import Enricher
from saga.daemon.spool import Spool
from saga.daemon.window import EventWindow
from saga.drivers.base import Driver
from saga.render import iso_time
from saga.rules.service import RulesService
from saga.store import Store


@dataclass
class Counters:
    drained_events: int = 0     # records read from the driver and parsed
    drained_bytes: int = 0
    reads: int = 0              # read_raw calls that returned records
    read_errors: int = 0        # driver read failures (retried)
    malformed_reads: int = 0    # reads whose records did not parse (a driver bug): their events are lost
    malformed_bytes: int = 0
    reloads: int = 0            # SIGHUP / control "reload" handled
    followers: int = 0          # `saga log -f` streams open now


@dataclass
class DaemonState:
    config: Config
    driver: Driver
    store: Store
    rules: RulesService
    window: EventWindow
    enricher: Enricher
    archiver: Archiver | None           # None when archiving is off (daemon.archive = false)
    host: str
    spool: Spool | None = None          # the spool and crash state page (None: no spool_dir)
    mountpoint: str | None = None       # where /sagafs is mounted, once it is
    sagafs: Any = None                  # the mounted filesystem (saga.sagafs.ops.SagaFS), while it is
    context: bool = False               # look up where the events' processes run (live drivers only)
    counters: Counters = field(default_factory=Counters)
    started_ns: int = field(default_factory=time.time_ns)
    ring_drops_at_start: int = 0        # the driver's drop counter when this daemon started
    _new_events: trio.Event = field(default_factory=trio.Event)
    # The drain is lazy while nobody follows the live stream (service.py, _drain): it reads the ring less
    # often.  A reader about to look wakes it (wake_drain, catch_up).
    drain_lazy: bool = False
    drain_wait: trio.CancelScope | None = None      # the drain's wait for its descriptor, while it waits
    _drained: trio.Event = field(default_factory=trio.Event)   # set after each pass of the drain
    lookups_wanted: trio.Event = field(default_factory=trio.Event)   # the enricher noted pids or cgroups

    # -- ingest (drain loop only) ------------------------------------------------
    def ingest(self, buf: bytes, sizes: np.ndarray) -> None:
        """A read from the driver (its records' sizes, saga.events.sizes: nothing is parsed here): spooled,
        into the window, to the archiver; wake readers.  The spool's state page says what a crash at any
        point here would lose."""
        n = len(sizes)
        c = self.counters
        c.drained_events += n
        c.drained_bytes += len(buf)
        c.reads += 1
        spool = self.spool
        where = spool.append(buf, n) if spool is not None and self.archiver is not None else None
        self.window.append(buf, sizes)
        keys = None
        if self.context:
            keys = (events.pids(buf, sizes), events.cgroup_ids(buf, sizes))
            if self.enricher.note(*keys):
                self.lookups_wanted.set()
        if self.archiver is not None:
            queued = self.archiver.submit(buf, sizes, where, keys)   # the archiver's enricher needs them too
            if spool is not None:
                spool.drained(n, dropped=0 if queued else n, unspooled=n if queued and where is None else 0)
        elif spool is not None:
            spool.drained(n)
        if spool is not None and where is None:
            spool.in_hand(0, 0)
        self._new_events.set()
        self._new_events = trio.Event()

    def followed(self) -> bool:
        """Does someone follow the live stream (`saga log -f`, a /sagafs/pipe reader)?"""
        return bool(self.counters.followers or (self.sagafs is not None and self.sagafs.pipe_readers))

    def wake_drain(self) -> None:
        """A reader arrived: a lazy drain reads the ring now (and sees whether it is still lazy)."""
        if self.drain_lazy and self.drain_wait is not None:
            self.drain_wait.cancel()

    def drained_pass(self) -> None:
        """The drain finished a pass (whoever waits in catch_up goes on)."""
        self._drained.set()
        self._drained = trio.Event()

    async def catch_up(self, timeout: float = 0.1) -> None:
        """Before a reader looks at the window (a /sagafs file opened, `saga log`): a lazy drain waiting for
        its descriptor reads what the ring holds first, so the reader sees events as fresh as when the drain
        is not lazy.  A drain at work (a storm) is not waited for: the open must answer at once."""
        if not self.drain_lazy or self.drain_wait is None:
            return
        done = self._drained
        self.wake_drain()
        with trio.move_on_after(timeout):
            await done.wait()

    async def wait_for_events(self, after_seq: int) -> None:
        """Return once the window holds an event with sequence number >= after_seq."""
        while self.window.next_seq <= after_seq:
            await self._new_events.wait()

    # -- reporting -----------------------------------------------------------------
    def status(self) -> dict:
        """The daemon's view for `saga status`, /sagafs/status and the control socket (docs/daemon.md)."""
        info = self.driver.info()
        st = self.driver.stats()
        w = self.window
        c = self.counters
        prev = self.spool.previous if self.spool is not None else None
        return {
            "daemon": {"pid": os.getpid(), "version": saga.__version__, "started": iso_time(self.started_ns),
                       "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3), "host": self.host,
                       "reloads": self.counters.reloads, "followers": self.counters.followers},
            "driver": {"name": info.driver, "version": info.version, "abi_version": info.abi_version,
                       "enabled": info.enabled, "locked": info.locked, "rules": info.nr_rules,
                       "default_action": info.default_action, "ring_bytes": info.ring_bytes,
                       "nr_cpus": info.nr_cpus},
            "capture": {"calls": st.calls, "errors": st.errors, "events": st.events, "drops": st.drops,
                        "read": st.read, "no_enter": st.no_enter, "path_faults": st.path_faults,
                        "missed": st.missed},
            "drained": {"events": c.drained_events, "bytes": c.drained_bytes, "reads": c.reads,
                        "read_errors": c.read_errors, "malformed": c.malformed_reads,
                        "malformed_bytes": c.malformed_bytes},
            "window": {"events": len(w), "max_events": w.max_events, "first_seq": w.first_seq,
                       "next_seq": w.next_seq, "dropped": w.dropped, "readers_lost": w.readers_lost},
            "archive": ({"enabled": True, "url": self.store.url, **self.archiver.counters()}
                        if self.archiver is not None else {"enabled": False, "url": self.store.url}),
            "spool": self._spool_status(),
            "bounds": (self.archiver.bounds.status()
                       if self.archiver is not None and self.archiver.bounds is not None else None),
            "losses": {"ring": st.drops - self.ring_drops_at_start},
            "previous_run": prev.as_dict() if prev is not None else None,
            "mount": self.mountpoint,
            "readers": self.sagafs.readers() if self.sagafs is not None else None,
        }

    def _spool_status(self) -> dict:
        sp = self.spool
        if sp is None:
            return {"enabled": False}
        return {"enabled": sp.max_bytes > 0, "dir": sp.dir, "bytes": sp.size, "max_bytes": sp.max_bytes,
                "full": sp.full_since is not None, "write_errors": sp.write_errors, "last_error": sp.last_error}
