"""The archiver: a worker thread that writes drained events into the store.

The event loop hands it batches with `submit`, which never blocks: the
queue holds at most `max_queued` events and a batch that does not fit is
dropped and counted (`dropped`), so a slow database can never stall
draining (the kernel's buffers would overflow instead, silently for the
database).  The thread coalesces whatever is queued into one transaction,
enriches pids (psutil, cached), retries a failing database with backoff,
and runs retention every `prune_interval` seconds.  `stop()` writes
everything queued before it returns (bounded by a timeout when the
database is down; what could not be written is reported).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import chain

from saga.daemon.enrich import Enricher
from saga.errors import SagaError
from saga.store import Store, archive

log = logging.getLogger("saga.daemon.archiver")

_MAX_ROWS_PER_WRITE = 65536


@dataclass
class Retention:
    max_age_s: float = 0.0      # 0: keep forever
    max_rows: int = 0           # 0: no limit
    interval_s: float = 300.0

    @property
    def active(self) -> bool:
        return self.max_age_s > 0 or self.max_rows > 0


class Archiver:
    def __init__(self, store: Store, host_id: int, *, enricher: Enricher | None = None,
                 max_queued: int = 262_144, retention: Retention | None = None) -> None:
        self.store = store
        self.host_id = host_id
        self.enricher = enricher
        self.max_queued = max_queued
        self.retention = retention or Retention()
        self._queue: deque[tuple[bytes, list[tuple]]] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._writer = archive.EventWriter(store.engine, host_id)
        self._next_prune = time.monotonic() + 5.0   # first pass soon after start
        # counters (read by status; written by one thread each)
        self.submitted = 0
        self.archived = 0
        self.dropped = 0
        self.errors = 0
        self.pruned = 0
        self.lost_at_stop = 0
        self.last_error: str | None = None

    # -- event loop side -------------------------------------------------------
    def submit(self, buf: bytes, raws: list[tuple]) -> bool:
        """Queue a batch (the bytes read and their parse); False, counted as dropped, when full. Never blocks."""
        n = len(raws)
        with self._cond:
            if self._stopping:
                self.dropped += n
                return False
            if self._queued and self._queued + n > self.max_queued:   # one batch always fits an empty queue
                self.dropped += n
                return False
            self._queue.append((buf, raws))
            self._queued += n
            self.submitted += n
            self._cond.notify()
        return True

    @property
    def queued(self) -> int:
        return self._queued

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="saga-archiver", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> int:
        """Write everything queued, then stop; returns events that could not be written in time."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        self._writer.close()
        return self.lost_at_stop

    # -- worker thread -----------------------------------------------------------
    def _take(self) -> list[tuple[bytes, list[tuple]]] | None:
        """Everything queued (up to a bound), waiting for work or the next prune; None once stopped and empty."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                wait = self._next_prune - time.monotonic() if self.retention.active else None
                if wait is not None and wait <= 0:
                    return []
                self._cond.wait(wait)
            batch = []
            n = 0
            while self._queue and n < _MAX_ROWS_PER_WRITE:
                part = self._queue.popleft()
                self._queued -= len(part[1])
                n += len(part[1])
                batch.append(part)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if batch:
                try:
                    self._write(batch)
                except Exception:   # a bug: say so loudly, count the batch as lost, keep archiving
                    n = sum(len(raws) for _, raws in batch)
                    self.errors += 1
                    self.dropped += n
                    log.exception("archiving %d events failed; they are dropped", n)
            if self.retention.active and time.monotonic() >= self._next_prune and not self._stopping:
                self._prune()

    def _write(self, batch: list[tuple[bytes, list[tuple]]]) -> None:
        backoff = 0.5
        n = sum(len(raws) for _, raws in batch)
        raws = chain.from_iterable(raws for _, raws in batch)
        exes = self.enricher.exes(raws) if self.enricher is not None else {}
        while True:
            try:
                self._writer.write(batch, exes)
                self.archived += n
                if self.last_error is not None:
                    log.info("archiving works again")
                    self.last_error = None
                return
            except SagaError as exc:
                self.errors += 1
                if str(exc) != self.last_error:
                    log.error("%s (retrying)", exc)
                self.last_error = str(exc)
            if self._stopping and time.monotonic() >= (self._deadline or 0):
                self._give_up(n)
                return
            with self._cond:
                self._cond.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _give_up(self, n: int) -> None:
        with self._cond:
            rest = self._queued
            self._queue.clear()
            self._queued = 0
        self.lost_at_stop += n + rest
        log.error("stopping with the database unavailable: %d drained events were not archived", n + rest)

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
        return {"submitted": self.submitted, "archived": self.archived, "dropped": self.dropped,
                "queued": self._queued, "errors": self.errors, "pruned": self.pruned,
                "last_error": self.last_error}
