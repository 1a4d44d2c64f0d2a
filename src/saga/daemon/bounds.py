"""Disk bounds: a size cap for the archive and a free-space guard on its filesystem (docs/daemon.md).

Modelled on auditd.conf: `store.max_size` is max_log_file, `space_left`
and `admin_space_left` are auditd's, each with its action.  Every
`store.bounds_interval` seconds (and at once when a write fails for lack
of space) the archiver thread measures the archive (the data the cap counts: SQLite's
used pages, PostgreSQL's live rows; and the files' size) and the free space
of the filesystem it is on, then:

- above max_size: `prune` (default) removes the oldest batches whose bytes
  bring the archive back under 90% of the cap (less than one batch below); `suspend` stops archiving new
  events (dropped, counted); `warn` only says so;
- free space below space_left: `prune` (default) removes the oldest
  batches and gives the space back to the filesystem (checkpoint, then
  incremental vacuum) until space_left is free again or the archive is
  empty; `suspend`, `warn` as above;
- free space below admin_space_left, whatever was done: `suspend`
  (default) stops archiving and spooling until space_left is free again;
  `warn` only says so.

So by default the oldest events go first and the disk never fills.  Every
action is logged (pruning as information, suspension and warnings as
warnings, at most once per `daemon.warn_interval` while it lasts) and shown
in `saga status` (`bounds`).  PostgreSQL's filesystem is the server's: only
max_size (in bytes, not %) applies to it.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from saga.config import StoreConfig, parse_size
from saga.errors import SagaError
from saga.store import Store, archive
from saga.store.engine import translate

if TYPE_CHECKING:
    from saga.daemon.archiver import Archiver

log = logging.getLogger("saga.daemon.bounds")

CAP_TARGET = 0.9             # prune a capped archive back to this share of the cap
PRUNE_STEP_MAX = 256         # batches removed between two measurements
SPACE_MARGIN = 16 << 20      # free this much beyond space_left when pruning for space (1% of a small disk)
WRITE_SHARE = 32             # one write takes at most 1/32 of the cap and of the filesystem (raw bytes) ...
WRITE_MIN = 256 << 10        # ... but may always take this much


@dataclass
class Measure:
    size: int                # bytes the archive takes on disk (file + WAL)
    used: int                # bytes of the database's pages holding data (free pages are reused first)
    fs_size: int | None      # its filesystem's size and free space (None: a server database)
    free: int | None


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class DiskBounds:
    def __init__(self, store: Store, config: StoreConfig, *, warn_every: float = 60.0) -> None:
        self.store = store
        self.config = config
        self.warn_every = warn_every
        self.next_check = 0.0
        self.last: Measure | None = None     # the last measure (status shows it)
        self._grown = 0                      # column bytes stored since it
        self._per_record_byte = 1.0          # column bytes stored per record byte, in the last write
        self.pruned_for_size = 0          # events removed to keep the cap
        self.pruned_for_space = 0         # events removed to keep space_left free
        self.suspended: str | None = None
        self.last_action: str | None = None
        self._warned: dict[str, float] = {}

    # -- measuring --------------------------------------------------------------------------------
    def measure(self) -> Measure:
        path = self.store.path
        if path is None:
            # the files keep a deletion's room until VACUUM (then reuse it): the live rows are what the cap
            # holds, or each check would find the database as big as before and prune again, down to nothing
            with translate("measuring the archive"), self.store.engine.connect() as conn:
                size = int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())
                columns = int(conn.exec_driver_sql("SELECT pg_total_relation_size('event_columns')").scalar_one())
                live = archive.live_bytes_pg(conn)
            return Measure(size, min(size, size - columns + live), None, None)
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.stat(path + suffix).st_size
            except FileNotFoundError:
                pass
        with translate("measuring the archive"), self.store.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            free_pages = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        st = os.statvfs(os.path.dirname(path) or ".")
        return Measure(size, (pages - free_pages) * page, st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)

    def _limit(self, text: str, m: Measure) -> int | None:
        """A size setting in bytes for this filesystem; None when it does not apply (0, or % on a server)."""
        value, share = parse_size(text)
        if share:
            return int(value * m.fs_size) if m.fs_size is not None and value > 0 else None
        return int(value) if value > 0 else None

    # -- the check (archiver thread) -------------------------------------------------------------
    def check(self, archiver: Archiver) -> None:
        c = self.config
        self.next_check = time.monotonic() + c.bounds_interval
        try:
            m = self.measure()
            self._grown = 0
        except (SagaError, OSError) as exc:
            self._warn("measure", f"cannot measure the archive for its disk bounds: {exc}")
            return
        cap = self._limit(c.max_size, m)
        if cap is not None and m.used > cap:
            what = f"the archive takes {_human(m.used)}, above store.max_size ({_human(cap)})"
            if c.max_size_action == "prune":
                target = int(cap * CAP_TARGET)
                try:
                    n = self._prune(archive_host(archiver), lambda mm: mm.used - target, give_back=False)
                except SagaError as exc:          # a full disk: the free-space checks below still run
                    self.failed(exc)
                    n = 0
                self.pruned_for_size += n
                if n:
                    self._act(f"{what}: removed its oldest {n:,} events", level=logging.INFO)
                m = self.last or m
            elif c.max_size_action == "suspend":
                self._suspend(archiver, what)
            else:
                self._warn("max_size", what + " (store.max_size_action = warn)")
        space_left = self._limit(c.space_left, m)
        if archiver.spool is not None:
            archiver.spool.reserve = space_left or 0      # the spool leaves space_left to the archive
        if m.free is not None and space_left is not None and m.free < space_left:
            what = (f"{_human(m.free)} free on the archive's filesystem, below store.space_left "
                    f"({_human(space_left)})")
            if c.space_left_action == "prune":
                want = space_left + min(SPACE_MARGIN, (m.fs_size or 0) // 100)
                try:
                    n = self._prune(archive_host(archiver), lambda mm: 0 if mm.free is None else want - mm.free,
                                    give_back=True)
                except SagaError as exc:          # too full even to delete: the WAL's room is all there is
                    self.failed(exc)
                    self._checkpoint()
                    n = 0
                self.pruned_for_space += n
                if n:
                    self._act(f"{what}: removed the archive's oldest {n:,} events and gave the space back",
                              level=logging.INFO)
                else:
                    self._warn("space_left", f"{what}: the archive has nothing left to remove")
                m = self.last or m
            elif c.space_left_action == "suspend":
                self._suspend(archiver, what)
            else:
                self._warn("space_left", what + " (store.space_left_action = warn)")
        admin = self._limit(c.admin_space_left, m)
        if m.free is not None and admin is not None and m.free < admin:
            what = (f"{_human(m.free)} free on the archive's filesystem, below store.admin_space_left "
                    f"({_human(admin)})")
            if c.admin_space_left_action == "suspend":
                self._suspend(archiver, what)
            else:
                self._warn("admin_space_left", what + " (store.admin_space_left_action = warn)")
        elif self.suspended is not None and self._may_resume(m, cap, space_left):
            self._resume(archiver, m)
        self.last = m

    def _may_resume(self, m: Measure, cap: int | None, space_left: int | None) -> bool:
        c = self.config
        if c.max_size_action == "suspend" and cap is not None and m.used > cap:
            return False
        return m.free is None or space_left is None or m.free >= space_left

    def _prune(self, host_id: int | None, need, *, give_back: bool) -> int:
        """Remove the oldest batches until need(measure) (the bytes still to free) is <= 0 or the archive is
        empty; returns the events removed.  Each round removes the oldest batches whose stored columns
        make up the bytes needed, at the archive's bytes per stored byte (its fixed part included: an
        overestimate of what a deletion frees, so rounds end at most one batch below the target)."""
        removed = 0
        while True:
            m = self.measure()
            self.last = m
            missing = need(m)
            if missing <= 0:
                return removed
            held = archive.usage(self.store.engine, host_id)
            if not held.batches:
                return removed
            per_stored = max(m.used, 1) / max(held.stored_bytes, 1)
            gone = archive.prune_oldest(self.store.engine, host_id, stored_bytes=int(missing / per_stored),
                                        most=PRUNE_STEP_MAX)
            if not gone.batches:
                return removed
            removed += gone.events
            if give_back:
                self._give_back()

    def _give_back(self) -> None:
        """Return the pages pruning freed to the filesystem (SQLite: checkpoint, incremental vacuum)."""
        self._pragmas("wal_checkpoint(TRUNCATE)", "incremental_vacuum", "wal_checkpoint(TRUNCATE)")

    def _checkpoint(self) -> None:
        """Empty the WAL into the database (pages it already has: no room needed) and cut it to nothing."""
        try:
            self._pragmas("wal_checkpoint(TRUNCATE)")
        except SagaError as exc:
            self.failed(exc)

    def _pragmas(self, *pragmas: str) -> None:
        if self.store.path is None:
            return
        raw = self.store.engine.raw_connection()     # autocommit: the pragmas run outside any transaction
        try:
            with translate("giving space back"):
                cur = raw.cursor()
                for pragma in pragmas:
                    cur.execute("PRAGMA " + pragma).fetchall()
                cur.close()
        finally:
            raw.close()

    # -- suspending ---------------------------------------------------------------------------------
    def _suspend(self, archiver: Archiver, why: str) -> None:
        if self.suspended is None:
            log.warning("%s: archiving suspended until there is room again (new events are dropped, counted)",
                        why)
        self.suspended = why
        archiver.suspend(why)
        self.last_action = f"suspended: {why}"

    def _resume(self, archiver: Archiver, m: Measure) -> None:
        log.warning("archiving resumed (%s free on the archive's filesystem): it was suspended because %s",
                    _human(m.free) if m.free is not None else "?", self.suspended)
        self.suspended = None
        archiver.suspend(None)
        self.last_action = "resumed"

    def _act(self, text: str, level: int) -> None:
        log.log(level, "%s", text)
        self.last_action = text

    def _warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, float("-inf")) >= self.warn_every:
            self._warned[key] = now
            log.warning("%s", text)
        self.last_action = text

    def write_limit(self) -> int | None:
        """The most raw bytes one archive write may take (None: no limit), a small share of the cap and of
        the filesystem: a write's pages go to the WAL first, then to the file, so one write of a big burst
        could otherwise carry a small disk past every bound between two checks, down to no space even to
        delete.  Large disks never reach it (a write is at most 65,536 events, ~8 MiB)."""
        m = self.last
        if m is None:
            return None
        limits = [x // WRITE_SHARE for x in (self._limit(self.config.max_size, m), m.fs_size) if x]
        return max(min(limits), WRITE_MIN) if limits else None

    def before_write(self, archiver: Archiver, nbytes: int) -> None:
        """Before a write of nbytes of records: check now rather than at the next interval if it could take the
        archive past its cap or the filesystem below space_left (a burst must not fill a small disk between
        two checks).  One statvfs; the full check only when it is close."""
        m = self.last
        if m is None:                     # the first write: measure first
            self.check(archiver)
            return
        c = self.config
        cap = self._limit(c.max_size, m)
        space_left = self._limit(c.space_left, m)
        if cap is not None and c.max_size_action == "prune" and \
                m.used + self._grown + nbytes * self._per_record_byte > cap:
            self.check(archiver)
            return
        if self.store.path is None or space_left is None:
            return
        try:
            st = os.statvfs(os.path.dirname(self.store.path) or ".")
        except OSError:
            return
        if st.f_bavail * st.f_frsize - nbytes * self._per_record_byte < space_left:
            self.check(archiver)

    def wrote(self, nbytes: int, stored: int) -> None:
        """A write of nbytes of records went in, stored as `stored` bytes of columns: counted against the
        cap until the next measure.  Stored bytes, not the records': a failed call is stored twice (its
        errno's rows), so an archive of failing calls grows about twice its records' bytes."""
        self._grown += stored
        if nbytes:
            self._per_record_byte = stored / nbytes

    def failed(self, exc: SagaError) -> None:
        """A check that could not act (pruning on a disk already full ...): logged, rate-limited."""
        self._warn("failed", f"disk bounds: {exc}")

    def status(self) -> dict:
        c, m = self.config, self.last
        return {"max_size": c.max_size, "max_size_action": c.max_size_action, "space_left": c.space_left,
                "space_left_action": c.space_left_action, "admin_space_left": c.admin_space_left,
                "admin_space_left_action": c.admin_space_left_action,
                "size": m.size if m else None, "used": m.used if m else None,
                "fs_size": m.fs_size if m else None, "free": m.free if m else None,
                "pruned_for_size": self.pruned_for_size, "pruned_for_space": self.pruned_for_space,
                "suspended": self.suspended, "last_action": self.last_action}


def archive_host(archiver: Archiver) -> int | None:
    """Whose events go: any host's in a SQLite archive (one machine's file), this host's on a server."""
    return None if archiver.store.path is not None else archiver.host_id
