"""Writing events into the archive, fast, and pruning them by age and count.

Ingest is the hot path (bench/ingest): parsed records become plain tuples
in column order and go to the database in one executemany (SQLite) or
COPY (PostgreSQL) per batch, on one long-lived connection.  No ORM
objects, no per-row dicts.
"""
from __future__ import annotations

from collections.abc import Mapping
from itertools import accumulate
from operator import itemgetter

from sqlalchemy import Connection, Engine, and_, delete, func, select

from saga.events import COMM, DURATION, NR, PATHS, PID, PPID, RET, SIZE, TID, TS, UID
from saga.store.engine import translate
from saga.store.models import EventRow

# host_id is not a parameter: a writer writes for one host, so it is a literal in the statement.
COLUMNS = ("ts_ns", "pid", "tid", "ppid", "uid", "syscall", "ret", "duration_ns", "comm", "exe", "path", "record")
_NO_EXE: Mapping[int, str | None] = {}


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


def rows(buf: bytes, raws: list[tuple], exe_of: Mapping[int, str | None] = _NO_EXE) -> list[tuple]:
    """The records in `buf`, parsed into `raws` (saga.events.parse(buf)), as rows in COLUMNS order."""
    # The hot loop of ingest: locals only, cached lookups, one slice per record.
    comms = _COMMS
    comm = comm_text
    exe = exe_of.get
    path = _path_text
    offsets = accumulate(map(itemgetter(SIZE), raws), initial=0)
    return [(r[TS], r[PID], r[TID], r[PPID], r[UID], r[NR], r[RET], r[DURATION],
             comms.get(r[COMM]) or comm(r[COMM]), exe(r[PID]), path(r[PATHS][0]) if r[PATHS] else None,
             buf[o:o + r[SIZE]])
            for r, o in zip(raws, offsets)]


class EventWriter:
    """Bulk insert on one connection of its own; not thread-safe (the archiver thread owns it)."""

    def __init__(self, engine: Engine, host_id: int) -> None:
        self.engine = engine
        self.host_id = int(host_id)
        self.dialect = engine.dialect.name
        self._conn: Connection | None = None
        cols = ", ".join(COLUMNS)
        if self.dialect == "postgresql":
            # COPY has no literals: the host column takes its default, set per session (see write()).
            self._sql = f"COPY events ({cols}, host_id) FROM STDIN"
        else:
            self._sql = f"INSERT INTO events ({cols}, host_id) VALUES ({'?, ' * len(COLUMNS)}{self.host_id})"

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    def write(self, batch: list[tuple]) -> None:
        """Insert rows (in COLUMNS order) in one transaction."""
        if not batch:
            return
        with translate("archiving events"):
            conn = self._connection()
            try:
                with conn.begin():
                    cursor = conn.connection.dbapi_connection.cursor()
                    try:
                        if self.dialect == "postgresql":
                            host = (self.host_id,)
                            with cursor.copy(self._sql) as copy:
                                for row in batch:
                                    copy.write_row(row + host)
                        else:
                            cursor.executemany(self._sql, batch)
                    finally:
                        cursor.close()
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

    Deletes in chunks of `chunk` rows, one short transaction each, so readers and
    the archiver are never held up for long.
    """
    table = EventRow.__table__
    deleted = 0
    with translate("pruning the archive"):
        if before_ns is not None:
            deleted += _delete_chunks(engine, and_(table.c.host_id == host_id, table.c.ts_ns < before_ns), chunk)
        if keep_rows is not None:
            with engine.connect() as conn:
                cut = conn.execute(select(table.c.id).where(table.c.host_id == host_id)
                                   .order_by(table.c.id.desc()).offset(keep_rows).limit(1)).scalar()
            if cut is not None:
                deleted += _delete_chunks(engine, and_(table.c.host_id == host_id, table.c.id <= cut), chunk)
    return deleted


def _delete_chunks(engine: Engine, where, chunk: int) -> int:
    table = EventRow.__table__
    total = 0
    while True:
        with engine.begin() as conn:
            ids = select(table.c.id).where(where).limit(chunk).scalar_subquery()
            n = conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount
        total += n
        if n < chunk:
            return total


def count(engine: Engine, host_id: int | None = None) -> int:
    table = EventRow.__table__
    stmt = select(func.count()).select_from(table)
    if host_id is not None:
        stmt = stmt.where(table.c.host_id == host_id)
    with translate("counting archived events"), engine.connect() as conn:
        return conn.execute(stmt).scalar_one()
