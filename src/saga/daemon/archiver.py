"""The archiver: a worker thread that writes drained events into the store (docs/daemon.md).

The event loop hands it each read with `submit`, which never blocks.  A
read the spool holds (saga.daemon.spool) is safe on disk; the queue keeps
at most `max_queued` events in memory and forgets the bytes of spooled
reads beyond that (they are read back from the spool when their turn
comes).  A read that is neither spooled nor fits in memory is dropped and
counted.  The thread writes what is queued in one transaction (up to
65,536 events, with the spool cursor), enriches pids (psutil, cached),
and runs retention and the disk bounds.

Faults (saga.store.engine classifies them): a busy lock, an unreachable
server, a full disk are retried with exponential backoff (0.5 s to 30 s,
with jitter), the batch staying "in flight" meanwhile; a corrupted SQLite
archive is set aside and a new one started; a deleted or replaced archive
file is noticed before each write and reopened.  Nothing is dropped for a
database error; only a bug (an unexpected exception) drops a batch,
counted and logged with its traceback.

Accounting, under one lock, at every moment:
    submitted == archived + dropped (all causes) + queued + in_flight + left_in_spool
`left_in_spool` is what a stop that ran out of time leaves for the next start.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from saga import events
from saga.daemon.enrich import Enricher, last_of_each
from saga.daemon.spool import Location, Spool
from saga.errors import SagaError
from saga.store import Store, archive, cursor
from saga.store.engine import ArchiveCorrupt, ArchiveFull, ArchiveGone

if TYPE_CHECKING:
    from saga.daemon.bounds import DiskBounds

log = logging.getLogger("saga.daemon.archiver")

_MAX_ROWS_PER_WRITE = 65536
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
STILL_FAILING_EVERY_S = 60.0
# Causes of archive drops (status: archive.dropped_by).
QUEUE_FULL = "queue_full"          # the database was too slow or down and the spool could not take it
STOPPING = "stopping"              # drained after the stop began
BUG = "bug"                        # an unexpected error while writing (logged with its traceback)
AT_STOP = "at_stop"                # the database still failed when the stop timeout ran out (not spooled)
SUSPENDED = "suspended"            # archiving suspended by the disk bounds (saga.daemon.bounds)
CAUSES = (QUEUE_FULL, STOPPING, BUG, AT_STOP, SUSPENDED)

# A write costs about as much for a few hundred events as for ten thousand (a transaction, a batch's columns
# and summaries, and the merge of small batches later), so the daemon's archiver waits for LINGER_EVENTS or
# until its oldest queued read is LINGER_S old: at 50,000 events/s, writing as soon as anything was queued
# cost 8.6 us of daemon CPU per event against 1.5 at 200,000/s (bench/daemon).
LINGER_S = 0.5
LINGER_EVENTS = archive.SMALL_BATCH


def _name_thread(name: bytes) -> None:
    """The thread's name in /proc (top -H, bench/daemon's per-thread CPU): PR_SET_NAME, best effort."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass
class Retention:
    max_age_s: float = 0.0      # 0: keep forever
    max_rows: int = 0           # 0: no limit
    interval_s: float = 300.0

    @property
    def active(self) -> bool:
        return self.max_age_s > 0 or self.max_rows > 0


# A read's records' pids and cgroup ids (saga.events.pids, cgroup_ids): the enricher's keys.
Keys = tuple[np.ndarray, np.ndarray]


@dataclass(slots=True)
class Entry:
    """One read waiting for the archive: its records (and their sizes), in memory or only in the spool."""

    n: int
    buf: bytes | None
    sizes: np.ndarray | None
    where: Location | None          # where the spool holds it (None: memory only)
    at: float = 0.0                 # when it was queued (time.monotonic(); 0: replayed, written at once)
    keys: Keys | None = None        # its records' pids and cgroup ids, when the drain gathered them already

    @property
    def nbytes(self) -> int:
        return len(self.buf) if self.buf is not None else self.where.end - self.where.start if self.where else 0


class Archiver:
    def __init__(self, store: Store, host_id: int, *, enricher: Enricher | None = None,
                 max_queued: int = 262_144, retention: Retention | None = None, spool: Spool | None = None,
                 new_archive: Callable[[], int] | None = None, linger: float = 0.0) -> None:
        self.store = store
        self.linger = linger             # seconds a small queue waits for more (LINGER_S in the daemon)
        self.host_id = host_id
        self.enricher = enricher
        self.max_queued = max_queued
        self.retention = retention or Retention()
        self.spool = spool
        self.new_archive = new_archive   # after a reopen onto a new archive: register the host, returns its id
        self.bounds: DiskBounds | None = None   # the disk bounds, checked in this thread (set by the daemon)
        self._queue: deque[Entry] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._writer = archive.EventWriter(store.engine, host_id)
        self._next_prune = time.monotonic() + 5.0   # first pass soon after start
        self._identity = store.file_identity()
        self.suspended: str | None = None          # why archiving is suspended (disk bounds), None: it is not
        # counters: changed under _cond, read together by counters()
        self.submitted = 0
        self.recovered = 0          # of submitted: replayed from the spool at start
        self.archived = 0
        self.dropped_by = dict.fromkeys(CAUSES, 0)
        self.queued = 0
        self.in_memory = 0          # of queued: events whose bytes are in memory
        self.in_flight = 0
        self.left_in_spool = 0
        self.errors = 0
        self.retries = 0
        self.reopened = 0
        self.set_aside: list[str] = []
        self.pruned = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by.values())

    # -- event loop side -------------------------------------------------------
    def submit(self, buf: bytes, sizes: np.ndarray, where: Location | None = None, keys: Keys | None = None) -> bool:
        """Queue one read (its bytes, its records' sizes, where the spool has it, its pids and cgroup ids if
        known); False when it was dropped (counted).  Never blocks."""
        n = len(sizes)
        with self._cond:
            self.submitted += n
            if self._stopping or self.suspended:
                self.dropped_by[STOPPING if self._stopping else SUSPENDED] += n
                return False
            if self.in_memory and self.in_memory + n > self.max_queued:
                if where is None:          # nowhere to keep it
                    self.dropped_by[QUEUE_FULL] += n
                    return False
                entry = Entry(n, None, None, where, time.monotonic())    # the spool keeps it; memory does not
            else:
                entry = Entry(n, buf, sizes, where, time.monotonic(), keys)
                self.in_memory += n
            self._queue.append(entry)
            self.queued += n
            if len(self._queue) == 1 or self.queued - n < LINGER_EVENTS <= self.queued:
                self._cond.notify()     # the archiver waits for a first read, or lingers for enough of them
        return True

    def submit_spooled(self, where: Location, n: int) -> None:
        """Queue a spooled read of an earlier run (replayed at start)."""
        with self._cond:
            self.submitted += n
            self.recovered += n
            self._queue.append(Entry(n, None, None, where))
            self.queued += n
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="saga-archiver", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> int:
        """Write everything queued, then stop; returns the events lost (dropped because the database still
        failed at the deadline and the spool did not have them).  Spooled ones stay for the next start."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        self._writer.close()
        return self.dropped_by[AT_STOP]

    # -- worker thread -----------------------------------------------------------
    def _take(self) -> list[Entry] | None:
        """Everything queued (up to a bound), waiting for work or the next periodic task; None once stopped
        and empty.  The events taken move from queued to in flight."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                wait = self._next_prune - time.monotonic() if self.retention.active else None
                if self.bounds is not None:
                    due = self.bounds.next_check - time.monotonic()
                    wait = due if wait is None else min(wait, due)
                if wait is not None and wait <= 0:
                    return []
                self._cond.wait(wait)
            while self.linger > 0 and not self._stopping and self.queued < LINGER_EVENTS:
                left = self._queue[0].at + self.linger - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[Entry] = []
            n = nbytes = 0
            limit = self.bounds.write_limit() if self.bounds is not None else None
            if limit is not None:     # merging small batches is a write too: no bigger than one
                self._writer.merge_events = min(archive.MERGE_EVENTS, max(limit // events.FIXED, 1))
            while self._queue and n < _MAX_ROWS_PER_WRITE and (limit is None or nbytes < limit or not batch):
                e = self._queue.popleft()
                n += e.n
                nbytes += e.nbytes
                self.queued -= e.n
                if e.buf is not None:
                    self.in_memory -= e.n
                batch.append(e)
            self.in_flight = n
            return batch

    def _run(self) -> None:
        _name_thread(b"saga-archiver")
        self._check_at_start()
        while True:
            batch = self._take()
            if batch is None:
                return
            if batch:
                try:
                    self._write(batch)
                except Exception:   # a bug: say so loudly, count the batch as lost, keep archiving
                    n = sum(e.n for e in batch)
                    log.exception("archiving %d events failed; they are dropped", n)
                    with self._cond:
                        self.errors += 1
                        self.in_flight = 0
                        self.dropped_by[BUG] += n
                    if self.spool is not None:
                        self.spool.archived(n, unspooled=sum(e.n for e in batch if e.where is None))
            now = time.monotonic()
            if self.bounds is not None and now >= self.bounds.next_check and not self._stopping:
                self._check_bounds()
            if self.retention.active and now >= self._next_prune and not self._stopping:
                self._prune()

    def _check_at_start(self) -> None:
        """A damaged SQLite archive is found now rather than at the first write (PRAGMA quick_check)."""
        try:
            problem = self.store.check()
        except ArchiveCorrupt as exc:
            problem = str(exc)
        except SagaError as exc:
            log.warning("could not check the archive: %s", exc)
            return
        if problem is not None:
            self._replace_archive(ArchiveCorrupt(f"the archive is damaged: {problem}"))

    def _reads(self, batch: list[Entry]) -> list[tuple[bytes, np.ndarray]]:
        """The batch's reads (bytes, record sizes), the ones only the spool keeps read back from it."""
        out = []
        for e in batch:
            if e.buf is not None and e.sizes is not None:
                out.append((e.buf, e.sizes))
                continue
            if self.spool is None or e.where is None:
                raise RuntimeError("a queued read is neither in memory nor in the spool")
            buf = self.spool.read(e.where)
            sizes = events.sizes(buf)
            if len(sizes) != e.n:
                raise RuntimeError(f"spool segment {e.where.seg} changed: {len(sizes)} events, {e.n} expected")
            out.append((buf, sizes))
        return out

    def _write(self, batch: list[Entry]) -> None:
        n = sum(e.n for e in batch)
        reads = self._reads(batch)
        exes: dict[int, str | None] = {}
        units: dict[int, str | None] = {}
        if self.enricher is not None:
            keys = [e.keys if e.keys is not None else (events.pids(buf, sizes), events.cgroup_ids(buf, sizes))
                    for e, (buf, sizes) in zip(batch, reads, strict=True)]
            cgroup_of = last_of_each(np.concatenate([k[0] for k in keys]), np.concatenate([k[1] for k in keys]))
            exes = self.enricher.exes(cgroup_of)         # (its pids)
            units = self.enricher.units_of(cgroup_of)    # saga query --unit
        last = next((e.where for e in reversed(batch) if e.where is not None), None)
        nbytes = sum(len(buf) for buf, _ in reads)     # the records' bytes (the bounds scale them to stored ones)
        if self.bounds is not None:
            try:
                self.bounds.before_write(self, nbytes)
            except SagaError as exc:
                self.bounds.failed(exc)
        backoff = BACKOFF_MIN_S
        attempts = 0
        while True:
            attempts += 1
            try:
                self._check_file()
                also = None
                if last is not None and self.spool is not None:
                    also = functools.partial(cursor.write, host_id=self.host_id, value=self.spool.cursor_text(last))
                stored_before = self._writer.stored_bytes       # (a replaced archive has a new writer)
                self._writer.write(reads, exes, units, also=also)
            except (ArchiveCorrupt, ArchiveGone) as exc:
                self._count_error(exc)
                self._replace_archive(exc)
                continue                     # a new archive: write the batch there at once
            except SagaError as exc:
                self._count_error(exc)
                if isinstance(exc, ArchiveFull) and self.bounds is not None:
                    self._check_bounds()          # make room now rather than at the next interval
                if self._stopping and time.monotonic() >= (self._deadline or 0):
                    self._give_up(batch)
                    return
                self._back_off(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            break
        with self._cond:
            self.archived += n
            self.in_flight = 0
        if self.bounds is not None:
            self.bounds.wrote(nbytes, self._writer.stored_bytes - stored_before)
        if self.spool is not None:
            self.spool.archived(n, unspooled=sum(e.n for e in batch if e.where is None))
            if last is not None:
                try:
                    self.spool.archived_up_to(last)
                except OSError as exc:
                    log.error("spool: cannot delete archived segments: %s", exc.strerror or exc)
        if self.last_error is not None:
            log.warning("archiving works again after %d attempts over %.0f s: %s", attempts,
                        time.monotonic() - (self.failing_since or time.monotonic()), self.last_error)
            self.last_error = None
            self.failing_since = None

    def _back_off(self, seconds: float) -> None:
        """Wait before the next attempt: the whole time (new reads are notified, they must not cut it
        short), unless the stop begins."""
        until = time.monotonic() + seconds
        with self._cond:
            self.retries += 1
            while not self._stopping and (left := until - time.monotonic()) > 0:
                self._cond.wait(left)

    def _count_error(self, exc: SagaError) -> None:
        now = time.monotonic()
        with self._cond:
            self.errors += 1
            waiting = self.queued + self.in_flight
        text = str(exc)
        if self.failing_since is None:
            self.failing_since = now
            self._last_report = now
            log.error("%s (retrying with backoff; %d events wait%s)", text, waiting,
                      ", kept in the spool" if self.spool is not None else "")
        elif text != self.last_error or now - self._last_report >= STILL_FAILING_EVERY_S:
            self._last_report = now
            log.error("%s (failing for %.0f s, %d attempts; %d events wait)", text, now - self.failing_since,
                      self.errors, waiting)
        self.last_error = text

    def _give_up(self, batch: list[Entry]) -> None:
        """The stop's deadline passed with the database failing: what the spool has waits for the next
        start; the rest is lost (counted)."""
        with self._cond:
            rest = list(self._queue)
            self._queue.clear()
            self.queued = 0
            self.in_memory = 0
            self.in_flight = 0
            spooled = sum(e.n for e in chain(batch, rest) if e.where is not None)
            lost = sum(e.n for e in chain(batch, rest) if e.where is None)
            self.left_in_spool += spooled
            self.dropped_by[AT_STOP] += lost
        if self.spool is not None:
            self.spool.archived(lost, unspooled=lost)
        if spooled:
            log.warning("stopping with the database unavailable: %d drained events stay in the spool for the "
                        "next start", spooled)
        if lost:
            log.error("stopping with the database unavailable: %d drained events were not archived (lost)", lost)

    # -- disk bounds (saga.daemon.bounds) -------------------------------------------
    def _check_bounds(self) -> None:
        if self.bounds is None:
            return
        try:
            self.bounds.check(self)
        except SagaError as exc:      # e.g. pruning on a disk already full: said once a warn interval
            self.bounds.failed(exc)

    def suspend(self, why: str | None) -> None:
        """Stop archiving (and spooling) new events, counted as dropped (why), or resume (None)."""
        with self._cond:
            self.suspended = why
        if self.spool is not None:
            self.spool.paused = why is not None

    # -- the archive file --------------------------------------------------------
    def _check_file(self) -> None:
        """A SQLite archive deleted, moved or replaced since it was opened: reopen (ArchiveGone)."""
        if self._identity is None:
            return
        now = self.store.file_identity()
        if now != self._identity:
            what = "deleted or moved" if now is None else "replaced by another file"
            raise ArchiveGone(f"the archive {self.store.path} was {what} while the daemon was writing it")

    def _replace_archive(self, exc: SagaError) -> None:
        """Corrupt: set the file aside; gone: let it go.  Then open the archive at its path again (a new
        one if there is none) and carry on there."""
        self._writer.close()
        if isinstance(exc, ArchiveCorrupt) and self.store.path is not None:
            aside = self.store.set_aside()
            self.set_aside.append(aside)
            log.error("%s: moved it to %s and started a new archive (`sqlite3 %s .recover` may save what it "
                      "held)", exc, aside, aside)
        else:
            log.error("%s: opening the archive at %s again", exc, self.store.path)
        backoff = BACKOFF_MIN_S
        while True:
            try:
                self.store.reopen()
                if self.new_archive is not None:
                    self.host_id = self.new_archive()
                break
            except SagaError as err:
                log.error("cannot open the archive again: %s (retrying)", err)
                if self._stopping and time.monotonic() >= (self._deadline or 0):
                    break
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        self._identity = self.store.file_identity()
        self._writer = archive.EventWriter(self.store.engine, self.host_id)
        self.reopened += 1

    # -- retention ----------------------------------------------------------------
    def _prune(self) -> None:
        r = self.retention
        self._next_prune = time.monotonic() + r.interval_s
        before = time.time_ns() - int(r.max_age_s * 1e9) if r.max_age_s > 0 else None
        try:
            n = archive.prune(self.store.engine, self.host_id, before_ns=before,
                              keep_rows=r.max_rows if r.max_rows > 0 else None)
        except SagaError as exc:
            self.errors += 1
            log.error("retention: %s", exc)
            return
        if n:
            self.pruned += n
            log.info("retention: removed %d archived events", n)

    def counters(self) -> dict:
        with self._cond:
            return {"submitted": self.submitted, "recovered": self.recovered, "archived": self.archived,
                    "dropped": self.dropped, "dropped_by": dict(self.dropped_by), "queued": self.queued,
                    "queued_in_memory": self.in_memory, "in_flight": self.in_flight,
                    "left_in_spool": self.left_in_spool, "errors": self.errors, "retries": self.retries,
                    "reopened": self.reopened, "set_aside": list(self.set_aside), "pruned": self.pruned,
                    "suspended": self.suspended, "last_error": self.last_error}
