"""Writing events into the archive, fast, and pruning them by age and count.

Ingest is the hot path (bench/ingest): parsed records become plain tuples
in column order and go to the database as multi-row INSERTs (SQLite) or
COPY (PostgreSQL), one transaction per batch, on one long-lived
connection.  No ORM objects, no per-row dicts.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import accumulate, chain, islice
from operator import itemgetter

from sqlalchemy import Connection, Engine, delete, func, select

from saga.events import COMM, DURATION, NR, PATHS, PID, PPID, RET, SIZE, TID, TS, UID
from saga.store.engine import translate
from saga.store.models import EventBatch, EventRow

# host_id is not a parameter: a writer writes for one host, so it is a literal in the statement.
COLUMNS = ("ts_ns", "pid", "tid", "ppid", "uid", "syscall", "ret", "duration_ns", "comm", "exe", "path", "record")
_NO_EXE: Mapping[int, str | None] = {}
# SQLite: rows per INSERT statement.  One statement binding 64 rows costs far less per row than
# executemany's one statement step per row (bench/ingest: about 1.5x the archive rate); 64 x 13
# parameters stay well under SQLite's limit of 32766.
ROWS_PER_INSERT = 64


def _clean_text(s: str) -> str:
    """Paths are bytes decoded with surrogateescape; databases take only valid UTF-8 (and no NUL)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return s.replace("\0", "\\x00")


def _path_text(p: str) -> str:
    return p if p.isascii() and "\0" not in p else _clean_text(p)


_COMMS: dict[bytes, str] = {}


def comm_text(raw: bytes) -> str:
    """A record's task name as stored: up to the first NUL, invalid UTF-8 replaced (cached)."""
    s = _COMMS.get(raw)
    if s is None:
        if len(_COMMS) > 4096:
            _COMMS.clear()
        s = _COMMS[raw] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return s


def rows(buf: bytes, raws: list[tuple], exe_of: Mapping[int, str | None] = _NO_EXE) -> Iterator[tuple]:
    """The records in `buf`, parsed into `raws` (saga.events.parse(buf)), as rows in COLUMNS order.

    A generator: the database takes each row as it is built (measured faster than a list).
    """
    # The hot loop of ingest: locals only, cached lookups, one slice per record.
    comms = _COMMS
    comm = comm_text
    exe = exe_of.get
    path = _path_text
    offsets = accumulate(map(itemgetter(SIZE), raws), initial=0)
    return ((r[TS], r[PID], r[TID], r[PPID], r[UID], r[NR], r[RET], r[DURATION],
             comms.get(r[COMM]) or comm(r[COMM]), exe(r[PID]), path(r[PATHS][0]) if r[PATHS] else None,
             buf[o:o + r[SIZE]])
            for r, o in zip(raws, offsets, strict=False))


Read = tuple[bytes, list]   # bytes read from a driver, and saga.events.parse of them


class EventWriter:
    """Bulk insert on one connection of its own; not thread-safe (the archiver thread owns it).

    Each write is one transaction: the rows, and one event_batches row with
    the id range they took and the time range they cover (models.EventBatch).
    """

    def __init__(self, engine: Engine, host_id: int) -> None:
        self.engine = engine
        self.host_id = int(host_id)
        self.dialect = engine.dialect.name
        self._conn: Connection | None = None
        cols = ", ".join(COLUMNS)
        if self.dialect == "postgresql":
            self._sql = f"COPY events ({cols}, host_id) FROM STDIN"
        else:
            values = f"({'?, ' * len(COLUMNS)}{self.host_id})"
            self._sql = f"INSERT INTO events ({cols}, host_id) VALUES {values}"
            self._sql_many = f"INSERT INTO events ({cols}, host_id) VALUES {', '.join([values] * ROWS_PER_INSERT)}"

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    def write(self, reads: list[Read], exe_of: Mapping[int, str | None] = _NO_EXE) -> int:
        """Archive whole reads in one transaction; returns how many events."""
        n = sum(len(raws) for _, raws in reads)
        if not n:
            return 0
        times = [min(map(itemgetter(TS), raws)) for _, raws in reads if raws]
        times += [max(map(itemgetter(TS), raws)) for _, raws in reads if raws]
        batch = chain.from_iterable(rows(buf, raws, exe_of) for buf, raws in reads)
        with translate("archiving events"):
            conn = self._connection()
            try:
                with conn.begin():
                    cursor = conn.connection.dbapi_connection.cursor()
                    try:
                        first, last = self._insert(cursor, batch, n)
                    finally:
                        cursor.close()
                    conn.execute(EventBatch.__table__.insert().values(
                        host_id=self.host_id, first_id=first, last_id=last, min_ts=min(times), max_ts=max(times),
                        events=n))
            except BaseException:
                self.close()   # a connection in an unknown state is not reused
                raise
        return n

    def _insert(self, cursor, batch: Iterable[tuple], n: int) -> tuple[int, int]:
        """Insert the n rows; (lowest, highest) id they can have taken."""
        if self.dialect == "postgresql":
            # Other hosts may COPY at the same time: our ids lie between a value taken
            # just before and the last one we took (the range may hold others' ids too).
            cursor.execute("SELECT nextval(pg_get_serial_sequence('events', 'id'))")
            before = cursor.fetchone()[0]
            host = (self.host_id,)
            with cursor.copy(self._sql) as copy:
                for row in batch:
                    copy.write_row(row + host)
            cursor.execute("SELECT currval(pg_get_serial_sequence('events', 'id'))")
            return before + 1, cursor.fetchone()[0]
        rows_left = iter(batch)
        flat = chain.from_iterable
        for _ in range(n // ROWS_PER_INSERT):
            cursor.execute(self._sql_many, tuple(flat(islice(rows_left, ROWS_PER_INSERT))))
        cursor.executemany(self._sql, rows_left)      # the last n % ROWS_PER_INSERT
        # One writer holds the database: the rows took consecutive rowids.
        last = cursor.execute("SELECT last_insert_rowid()").fetchone()[0]
        return last - n + 1, last

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
                low = conn.execute(select(func.min(e.c.id)).where(e.c.host_id == host_id)).scalar()
            if cut is not None:
                deleted += _delete_ids(engine, host_id, low, cut, chunk)
                with engine.begin() as conn:
                    conn.execute(delete(b).where(b.c.host_id == host_id, b.c.last_id <= cut))
                    conn.execute(b.update().where(b.c.host_id == host_id, b.c.first_id <= cut)
                                 .values(first_id=cut + 1))
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
