"""Searching the archive (saga query, saga log without a daemon).

The event rows find the matching ids in SQL; the batch whose id range holds
an id has its record, at position id - first_id of the batch's `records`
(docs/store.md), parsed by the code that parses the live stream.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from saga import _uapi, events
from saga.errors import StoreError
from saga.filters import EventFilter
from saga.store.archive import offsets_of
from saga.store.engine import translate
from saga.store.models import EventBatch, EventRow, Host

_COMM_LEN = _uapi.SAGA_COMM_LEN


@dataclass(frozen=True)
class Archived:
    """An archived event: the raw tuple saga.render prints, plus what only the archive knows."""

    id: int
    host: str
    exe: str | None
    raw: tuple


class _Batches:
    """The records of archived events, one batch held at a time (searches return ids in id order)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.first = self.last = -1

    def get(self, event_id: int) -> tuple[tuple, str | None]:
        """(raw tuple, exe) of an archived event."""
        if not self.first <= event_id <= self.last:
            b = EventBatch.__table__
            batch = self.session.execute(
                select(b.c.first_id, b.c.last_id, b.c.records, b.c.offsets, b.c.exes)
                .where(b.c.first_id <= event_id).order_by(b.c.first_id.desc()).limit(1)).one_or_none()
            if batch is None or batch.last_id < event_id:
                raise StoreError(f"the archive is damaged: event {event_id} has no batch holding its record")
            self.first, self.last, records, offsets, exes = batch
            self.view, self.starts = memoryview(records), offsets_of(offsets)
            self.exes = json.loads(exes) if exes else {}
        start = self.starts[event_id - self.first]
        size = int.from_bytes(self.view[start:start + 2], "little")
        (raw,) = events.parse(self.view[start:start + size])
        return raw, self.exes.get(str(raw[events.PID]))


def _id_range(session: Session, flt: EventFilter) -> tuple[int, int] | None:
    """The ids that can hold events of the filter's time range (event_batches), None when none can."""
    b = EventBatch.__table__
    stmt = select(func.min(b.c.first_id), func.max(b.c.last_id))
    if flt.since_ns is not None:
        stmt = stmt.where(b.c.max_ts >= flt.since_ns)
    if flt.until_ns is not None:
        stmt = stmt.where(b.c.min_ts <= flt.until_ns)
    if flt.host is not None:
        stmt = stmt.where(b.c.host_id == select(Host.id).where(Host.name == flt.host).scalar_subquery())
    lo, hi = session.execute(stmt).one()
    return None if lo is None else (lo, hi)


def search(session: Session, flt: EventFilter, limit: int | None = None, *, newest: bool = True) -> list[Archived]:
    """Events matching `flt`, in time order: the `limit` archived last (newest=True) or first."""
    e = EventRow.__table__
    stmt = select(e.c.id, Host.name.label("host")).join(Host, Host.id == e.c.host_id)
    with translate("searching the archive"):
        if flt.since_ns is not None or flt.until_ns is not None:
            ids = _id_range(session, flt)
            if ids is None:
                return []
            stmt = stmt.where(e.c.id.between(*ids))
        if flt.host is not None:
            stmt = stmt.where(Host.name == flt.host)
        if flt.slots is not None:
            stmt = stmt.where(e.c.syscall.in_(sorted(flt.slots)))
        if flt.pid is not None:
            stmt = stmt.where(e.c.pid == flt.pid)
        if flt.uid is not None:
            stmt = stmt.where(e.c.uid == flt.uid)
        if flt.comm is not None:
            stmt = stmt.where(e.c.comm == flt.comm.encode()[:_COMM_LEN - 1].decode("utf-8", "replace"))
        if flt.errors:
            stmt = stmt.where(e.c.ret < 0)
        if flt.since_ns is not None:
            stmt = stmt.where(e.c.ts_ns >= flt.since_ns)
        if flt.until_ns is not None:
            stmt = stmt.where(e.c.ts_ns <= flt.until_ns)
        # Archive order (id) is the order calls completed; print in the order they began.
        stmt = stmt.order_by(e.c.id.desc() if newest else e.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        batches = _Batches(session)
        found = []
        for hit in session.execute(stmt).all():
            raw, exe = batches.get(hit.id)
            found.append(Archived(hit.id, hit.host, exe, raw))
    found.sort(key=lambda a: (a.raw[events.TS], a.id))
    return found


def hosts(session: Session) -> list[str]:
    with translate("listing hosts"):
        return list(session.execute(select(Host.name).order_by(Host.name)).scalars())
