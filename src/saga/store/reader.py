"""Reading the archive through the database driver's own connection, without SQLAlchemy.

`saga query`, `saga report` and `saga log` (archived events) only read,
a few plain SELECTs, and an administrator waits for each: importing
SQLAlchemy costs more than a search of the last hour (docs/store.md,
"Reading").  A Reader is the DB-API connection of sqlite3 or psycopg, in
one read-only transaction (a consistent snapshot however long the search
runs), and the database's schema version checked with one SELECT.  A
database at another version, or a URL form this module does not parse,
goes through Store.open once (SQLAlchemy: it migrates, or says why not).
"""
from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saga.errors import StoreError
from saga.store.errors import translate

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from saga.store import Store

SCHEMA_VERSION = 3
BUSY_TIMEOUT = 30.0                 # seconds a connection waits for another's lock
CACHE_KIB = 32768                   # SQLite's page cache per connection
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*(@)")


@dataclass(frozen=True)
class Location:
    """A database as the reader connects to it: a SQLite file, or a libpq URI."""

    dialect: str            # "sqlite" or "postgresql"
    target: str             # the SQLite file, or the URI psycopg connects to
    shown: str              # for messages: the password hidden


def locate(text: str) -> Location | None:
    """Where `text` (a --db value) points, for the forms read without SQLAlchemy: a plain path,
    sqlite:///PATH, postgresql://... (libpq parses the rest). None: any other form (Store.open
    parses it, or says what is wrong with it)."""
    if "://" not in text:
        path = os.path.abspath(text)
        return Location("sqlite", path, "sqlite:///" + path)
    scheme, rest = text.split("://", 1)
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else ""
        if not path or "?" in path or path == ":memory:":
            return None
        return Location("sqlite", path, "sqlite:///" + path)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        uri = "postgresql://" + rest
        from urllib.parse import urlsplit  # here: SQLite's searches start without it (and ipaddress)
        try:
            urlsplit(uri).port         # noqa: B018 - a malformed one ('[::1', a bad port) raises here
        except ValueError:
            return None
        return Location("postgresql", uri, _PASSWORD.sub(r"\1***\2", uri))
    return None


def no_archive(path: str) -> StoreError:
    return StoreError(f"no archive at {path} yet (the daemon creates it; --db selects another)")


class Reader:
    """A DB-API connection to run the searches' SELECTs on (written with ? placeholders)."""

    def __init__(self, conn: Any, dialect: str, *, own: bool, store: Store | None = None) -> None:
        self.conn = conn
        self.dialect = dialect
        self._own = own
        self._store = store
        self._pg = dialect == "postgresql"

    @classmethod
    def of(cls, session: Session) -> Reader:
        """The connection of a SQLAlchemy session, in its transaction (tests, the daemon's process)."""
        conn = session.connection()
        return cls(conn.connection.dbapi_connection, conn.dialect.name, own=False)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def all(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cur = self.conn.cursor()
        try:
            if self._pg:        # results in binary: bytea as its bytes, not as hex text to decode
                cur.execute(self._sql(sql), tuple(params), binary=True)
            else:
                cur.execute(sql, tuple(params))
            return cur.fetchall()
        finally:
            cur.close()

    @property
    def steps(self) -> bool:
        """Whether stream() gives the rows as the statement steps (SQLite), not once all are fetched."""
        return not self._pg

    def stream(self, sql: str, params: Sequence = ()) -> Generator[tuple, None, None]:
        """The rows of a SELECT one at a time; other statements may run between them (SQLite steps it as they
        are asked for: memory holds one row; psycopg fetches them all first)."""
        cur = self.conn.cursor()
        try:
            cur.execute(self._sql(sql), tuple(params))
            yield from cur
        finally:
            cur.close()

    @property
    def reads_pieces(self) -> bool:
        """Whether pieces() can read parts of a column without the rest (SQLite's incremental blob I/O)."""
        return not self._pg and hasattr(self.conn, "blobopen")

    def pieces(self, row_id: int, starts: Sequence[int], width: int) -> bytes | None:
        """The `width` bytes at each offset of `starts` in the data of event_columns row `row_id`, joined; None
        when there is no such row.  Only the pages that hold them are read: substr() would read the whole
        column (a batch's `args` is 3 MB), for the few rows a path search prints (reads_pieces: SQLite)."""
        try:
            blob = self.conn.blobopen("event_columns", "data", row_id, readonly=True)
        except sqlite3.OperationalError:        # no such row: a column of zeros, not stored
            return None
        with blob:
            out = []
            for at in starts:
                blob.seek(at)
                out.append(blob.read(width))
        return b"".join(out)

    def among(self, column: str, values: Sequence[int]) -> tuple[str, list]:
        """The condition `column` is one of `values` (not empty), and its parameters: one array on PostgreSQL
        (the statement's text stays the same whatever the count: psycopg parses it once and prepares it),
        a list of placeholders on SQLite."""
        if self._pg:
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({placeholders(len(values))})", list(values)

    def one(self, sql: str, params: Sequence = ()) -> tuple | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def close(self) -> None:
        if not self._own:
            return
        try:
            self.conn.rollback() if self._pg else self.conn.execute("ROLLBACK")
        except Exception:      # noqa: BLE001 - a broken connection is closed all the same
            pass
        self.conn.close()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def placeholders(n: int) -> str:
    return ",".join("?" * n)


def _connect(loc: Location) -> Any:
    if loc.dialect == "sqlite":
        conn = sqlite3.connect(loc.target, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        for pragma in (f"cache_size=-{CACHE_KIB}", "temp_store=MEMORY", "query_only=1"):
            conn.execute("PRAGMA " + pragma)
        conn.execute("BEGIN")       # one snapshot for the whole search (WAL: writers go on)
        return conn
    import psycopg
    pg = psycopg.connect(loc.target)
    pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ    # one snapshot for the whole search
    pg.read_only = True
    return pg


def _version(conn: Any, dialect: str) -> int | None:
    """The schema version, None when the database has no saga_meta table (or no valid version)."""
    cur = conn.cursor()
    try:
        cur.execute("SELECT value FROM saga_meta WHERE key = " + ("%s" if dialect == "postgresql" else "?"),
                    ("schema_version",))
        row = cur.fetchone()
    except Exception:      # noqa: BLE001 - no saga_meta: Store.open says what the database is
        return None
    finally:
        cur.close()
    return int(row[0]) if row and str(row[0]).isdigit() else None


def open_reader(url: str) -> Reader:
    """A Reader of the archive at `url` (which must exist), its schema current."""
    loc = locate(url)
    if loc is None:
        return _through_store(url)
    if loc.dialect == "sqlite" and not os.path.exists(loc.target):
        raise no_archive(loc.target)
    with translate(f"cannot open the database {loc.shown}"):
        conn = _connect(loc)
        try:
            found = _version(conn, loc.dialect)
        except BaseException:
            conn.close()
            raise
    if found == SCHEMA_VERSION:
        return Reader(conn, loc.dialect, own=True)
    conn.close()
    from saga.store import Store  # another version: migrate (or refuse) as every open does
    Store.open(url, create=False).close()
    with translate(f"cannot open the database {loc.shown}"):
        return Reader(_connect(loc), loc.dialect, own=True)


def _through_store(url: str) -> Reader:
    from saga.store import Store
    store = Store.open(url, create=False)
    with translate(f"cannot open the database {store.url}"):
        conn: Any = store.engine.raw_connection().dbapi_connection
        if store.dialect == "sqlite":
            conn.execute("BEGIN")
    return Reader(conn, store.dialect, own=True, store=store)
