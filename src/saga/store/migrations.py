"""The steps between schema versions (schema.py runs them; docs/store.md describes each layout).

MIGRATIONS[v] upgrades a database from version v to v + 1, inside the
transaction schema.ensure opened: a step that fails leaves nothing behind.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from sqlalchemy import BigInteger, Column, Connection, Integer, LargeBinary, MetaData, Table, Text, select, text

from saga import events
from saga.errors import StoreError
from saga.store import archive
from saga.store.models import EventBatch, EventRow

Migration = Callable[[Connection], None]

# Version 1's events table, as far as the move to version 2 reads it (renamed first).
_V1_EVENTS = Table("events_v1", MetaData(), Column("id", BigInteger), Column("host_id", Integer),
                   Column("pid", BigInteger), Column("exe", Text), Column("record", LargeBinary))
_MOVE_ROWS = 65536


def _v1_to_v2(conn: Connection) -> None:
    """Records leave the event rows for their batches (one blob per batch); event rows keep the search columns.

    Version 1 kept each record, and columns nothing searches, in its event row.
    Every event is rewritten, host by host in archive order, into batches of
    at most _MOVE_ROWS events with version 2's ids.
    """
    if conn.dialect.name == "postgresql":    # index names are global there; the new table takes them
        for index in EventRow.__table__.indexes:
            conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    conn.execute(text("ALTER TABLE events RENAME TO events_v1"))
    # Version 1's batches only mapped times to its ids (and lacked AUTOINCREMENT): rebuilt below.
    conn.execute(text("DROP TABLE event_batches"))
    EventBatch.__table__.create(conn)
    EventRow.__table__.create(conn)
    old = _V1_EVENTS
    hosts = conn.execute(select(old.c.host_id).distinct().order_by(old.c.host_id)).scalars().all()
    for host in hosts:
        after = None
        while True:
            stmt = select(old.c.id, old.c.pid, old.c.exe, old.c.record).where(old.c.host_id == host)
            if after is not None:
                stmt = stmt.where(old.c.id > after)
            page = conn.execute(stmt.order_by(old.c.id).limit(_MOVE_ROWS)).all()
            if not page:
                break
            after = page[-1].id
            for rows in _one_exe_per_pid(page):
                _move(conn, host, rows)
    conn.execute(text("DROP TABLE events_v1"))


def _one_exe_per_pid(rows: Sequence) -> Iterator[list]:
    """The rows, cut where a pid's executable changes (an exec, or one not known yet): a batch
    has one executable per pid, and version 1 had one per event."""
    run: list = []
    exe_of: dict[int, str | None] = {}
    for r in rows:
        if exe_of.setdefault(r.pid, r.exe) != r.exe:
            yield run
            run, exe_of = [], {r.pid: r.exe}
        run.append(r)
    if run:
        yield run


def _move(conn: Connection, host: int, rows: list) -> None:
    buf = b"".join(r.record for r in rows)
    try:
        raws = events.parse(buf)
    except events.RecordError as exc:
        raise StoreError(f"migrating the archive to version 2: events {rows[0].id} to {rows[-1].id} of host "
                         f"{host} hold a malformed record ({exc})") from None
    archive.write_batch(conn, host, [(buf, raws)], {r.pid: r.exe for r in rows if r.exe is not None})


MIGRATIONS: Mapping[int, Migration] = {1: _v1_to_v2}
