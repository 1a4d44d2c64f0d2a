"""Writing events into the archive, fast, and pruning them by age and count.

Ingest is the hot path (bench/ingest).  A write is one transaction: one
narrow row per event with the columns searches filter on, as multi-row
INSERTs (SQLite) or COPY (PostgreSQL), then one event_batches row holding
their records as the driver delivered them (one blob, no per-event copy),
on one long-lived connection.  No ORM objects, no per-row dicts.
"""
from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Iterator, Mapping
from itertools import accumulate, chain, islice
from operator import itemgetter

from sqlalchemy import Connection, Engine, delete, func, select

from saga.errors import StoreError
from saga.events import COMM, NR, PID, RET, SIZE, TS, UID
from saga.store.engine import translate
from saga.store.models import MAX_BATCH_EVENTS, PG_ID_SHIFT, EventBatch, EventRow

# host_id is not a parameter: a writer writes for one host, so it is a literal in the statement.
COLUMNS = ("ts_ns", "syscall", "pid", "uid", "ret", "comm")
_NO_EXE: Mapping[int, str | None] = {}
# SQLite: rows per INSERT statement, largest first; what is left goes one row at a time.  One
# statement binding many rows costs far less per row than executemany's step per row (bench/ingest:
# 1024 rows measured best, 2048 worse); 1024 x 6 parameters stay well under SQLite's limit of 32766.
ROWS_PER_INSERT = (1024, 64)

_COMMS: dict[bytes, str] = {}


def comm_text(raw: bytes) -> str:
    """A record's task name as stored: up to the first NUL, invalid UTF-8 replaced (cached)."""
    s = _COMMS.get(raw)
    if s is None:
        if len(_COMMS) > 4096:
            _COMMS.clear()
        s = _COMMS[raw] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return s


def rows(raws: list[tuple]) -> Iterator[tuple]:
    """Parsed records (saga.events.parse) as event rows in COLUMNS order.

    A generator: the database takes each row as it is built (measured faster than a list).
    """
    # The hot loop of ingest: locals only, cached lookups.
    comms = _COMMS
    comm = comm_text
    return ((r[TS], r[NR], r[PID], r[UID], r[RET], comms.get(r[COMM]) or comm(r[COMM])) for r in raws)


Read = tuple[bytes, list]   # bytes read from a driver, and saga.events.parse of them


def _batches(reads: list[Read]) -> Iterator[list[Read]]:
    """The reads in groups of at most MAX_BATCH_EVENTS events (a read never exceeds it in practice)."""
    group: list[Read] = []
    n = 0
    for buf, raws in reads:
        while len(raws) > MAX_BATCH_EVENTS:      # split an oversized read at a record boundary
            cut = sum(map(itemgetter(SIZE), raws[:MAX_BATCH_EVENTS]))
            yield [(buf[:cut], raws[:MAX_BATCH_EVENTS])]
            buf, raws = buf[cut:], raws[MAX_BATCH_EVENTS:]
        if n + len(raws) > MAX_BATCH_EVENTS:
            yield group
            group, n = [], 0
        if raws:
            group.append((buf, raws))
            n += len(raws)
    if group:
        yield group


def _little_endian(a: array) -> array:
    """event_batches.offsets is little-endian u32, as the records are; the same call decodes it."""
    if sys.byteorder == "big":
        a.byteswap()
    return a


def offsets_of(blob: bytes) -> array:
    """Where each record of a batch starts in its `records` (event_batches.offsets decoded)."""
    return _little_endian(array("I", blob))


def write_batch(conn: Connection, host_id: int, reads: list[Read], exe_of: Mapping[int, str | None],
                sql: dict[str | int, str] | None = None) -> int:
    """Archive one batch (at most MAX_BATCH_EVENTS events) in the caller's transaction; returns how many."""
    raws_all = [raws for _, raws in reads if raws]
    n = sum(map(len, raws_all))
    if not n:
        return 0
    sql = sql or statements(conn.dialect.name, host_id)
    batch = chain.from_iterable(map(rows, raws_all))
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:
        raise StoreError("the database connection was closed")
    cursor = dbapi.cursor()
    try:
        if conn.dialect.name == "postgresql":
            # Hosts COPY at the same time: a batch's ids come from its own id, not a shared sequence.
            batch_id = cursor.execute("SELECT nextval(pg_get_serial_sequence('event_batches', 'id'))").fetchone()[0]
            first = batch_id << PG_ID_SHIFT
            with cursor.copy(sql["copy"]) as copy:
                for i, row in enumerate(batch, first):
                    copy.write_row((i, *row, host_id))
        else:
            # One writer's transaction: the rows take consecutive ids.
            batch_id = None
            flat = chain.from_iterable
            left = n
            for size in ROWS_PER_INSERT:
                for _ in range(left // size):
                    cursor.execute(sql[size], tuple(flat(islice(batch, size))))
                left %= size
            cursor.executemany(sql[1], list(batch))
            first = cursor.execute("SELECT last_insert_rowid()").fetchone()[0] - n + 1
    finally:
        cursor.close()
    offsets = array("I", accumulate(map(itemgetter(SIZE), chain.from_iterable(raws_all)), initial=0))
    offsets.pop()
    exes = {str(pid): exe for pid, exe in exe_of.items() if exe is not None}
    values = {} if batch_id is None else {"id": batch_id}
    conn.execute(EventBatch.__table__.insert().values(
        **values, host_id=host_id, first_id=first, last_id=first + n - 1, events=n,
        min_ts=min(min(map(itemgetter(TS), raws)) for raws in raws_all),
        max_ts=max(max(map(itemgetter(TS), raws)) for raws in raws_all),
        records=b"".join(buf for buf, raws in reads if raws), offsets=_little_endian(offsets).tobytes(),
        exes=json.dumps(exes, separators=(",", ":")) if exes else None))
    return n


def statements(dialect: str, host_id: int) -> dict[str | int, str]:
    """The event-row statements of a writer for one host: COPY, or an INSERT per number of rows."""
    cols = ", ".join(COLUMNS)
    if dialect == "postgresql":
        return {"copy": f"COPY events (id, {cols}, host_id) FROM STDIN"}
    values = f"({'?, ' * len(COLUMNS)}{int(host_id)})"
    return {size: f"INSERT INTO events ({cols}, host_id) VALUES {', '.join([values] * size)}"
            for size in (*ROWS_PER_INSERT, 1)}


class EventWriter:
    """Bulk insert on one connection of its own; not thread-safe (the archiver thread owns it)."""

    def __init__(self, engine: Engine, host_id: int) -> None:
        self.engine = engine
        self.host_id = int(host_id)
        self._sql = statements(engine.dialect.name, self.host_id)
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    def write(self, reads: list[Read], exe_of: Mapping[int, str | None] = _NO_EXE) -> int:
        """Archive whole reads in one transaction (one batch per MAX_BATCH_EVENTS); returns how many events."""
        if not any(raws for _, raws in reads):
            return 0
        with translate("archiving events"):
            conn = self._connection()
            try:
                with conn.begin():
                    return sum(write_batch(conn, self.host_id, group, exe_of, self._sql)
                               for group in _batches(reads))
            except BaseException:
                self.close()   # a connection in an unknown state is not reused
                raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def prune(engine: Engine, host_id: int, *, before_ns: int | None = None, keep_rows: int | None = None,
          chunk: int = 50_000) -> int:
    """Delete the host's events older than before_ns, then all but its newest keep_rows; returns how many.

    By age, whole batches go once their newest event is older than before_ns.
    Deletes run in id ranges of at most `chunk` ids, one short transaction each,
    so readers and the archiver are never held up for long.
    """
    e, b = EventRow.__table__, EventBatch.__table__
    deleted = 0
    with translate("pruning the archive"):
        if before_ns is not None:
            with engine.connect() as conn:
                old = conn.execute(select(b.c.id, b.c.first_id, b.c.last_id)
                                   .where(b.c.host_id == host_id, b.c.max_ts < before_ns).order_by(b.c.id)).all()
            for batch_id, first, last in old:
                deleted += _delete_ids(engine, host_id, first, last, chunk)
                with engine.begin() as conn:
                    conn.execute(delete(b).where(b.c.id == batch_id))
        if keep_rows is not None:
            with engine.connect() as conn:
                cut = conn.execute(select(e.c.id).where(e.c.host_id == host_id)
                                   .order_by(e.c.id.desc()).offset(keep_rows).limit(1)).scalar()
                # Event ids are dense within a batch only: delete batch by batch.
                older = [] if cut is None else conn.execute(
                    select(b.c.id, b.c.first_id, b.c.last_id)
                    .where(b.c.host_id == host_id, b.c.first_id <= cut).order_by(b.c.id)).all()
            for batch_id, first, last in older:
                deleted += _delete_ids(engine, host_id, first, min(last, cut), chunk)
                if last <= cut:     # else its newer events stay, and its records with them
                    with engine.begin() as conn:
                        conn.execute(delete(b).where(b.c.id == batch_id))
    return deleted


def _delete_ids(engine: Engine, host_id: int, first: int, last: int, chunk: int) -> int:
    """Delete the host's events with first <= id <= last, chunk ids at a time."""
    e = EventRow.__table__
    total = 0
    for lo in range(first, last + 1, chunk):
        with engine.begin() as conn:
            total += conn.execute(delete(e).where(e.c.host_id == host_id,
                                                  e.c.id.between(lo, min(lo + chunk - 1, last)))).rowcount
    return total


def count(engine: Engine, host_id: int | None = None) -> int:
    table = EventRow.__table__
    stmt = select(func.count()).select_from(table)
    if host_id is not None:
        stmt = stmt.where(table.c.host_id == host_id)
    with translate("counting archived events"), engine.connect() as conn:
        return conn.execute(stmt).scalar_one()
