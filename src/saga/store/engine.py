"""Database URLs, engines and the one place database errors become StoreError.

SQLite (the default) runs in WAL mode so the CLI can read while the daemon
writes; transactions that read and then write (rule changes, migrations)
take the write lock up front (BEGIN IMMEDIATE) so two writers queue
instead of failing half-way.  PostgreSQL goes through psycopg 3.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from saga.errors import SagaError, StoreError, from_oserror

# Seconds a writer waits for another writer's lock before giving up.
BUSY_TIMEOUT = 30.0
WRITE = {"saga_write": True}


def normalize_url(text: str) -> URL:
    """A SQLAlchemy URL from what a user typed: a URL, or a plain path meaning a SQLite file."""
    if "://" not in text:
        return URL.create("sqlite", database=os.path.abspath(text))
    try:
        url = make_url(text)
    except sqlalchemy.exc.ArgumentError:
        raise StoreError(f"not a database URL: {text!r} (e.g. sqlite:////var/lib/saga/saga.db)") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise StoreError("an in-memory SQLite database cannot be shared: give a file (sqlite:////path/saga.db)")
        return url.set(drivername="sqlite")
    raise StoreError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://USER@HOST/DB")


def describe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def create(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)


def _sqlite_engine(url: URL) -> Engine:
    path = url.database
    if not path:                     # normalize_url refuses these; an Engine for one would be in memory
        raise StoreError("a SQLite database needs a file (sqlite:////path/saga.db)")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, mode=0o750, exist_ok=True)
        except OSError as exc:
            raise _os_error(exc, f"cannot create {parent} for the database") from None
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT}, pool_size=2, max_overflow=4)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None   # saga emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        # A checkpoint copies the WAL into the database and syncs both: every 64 MiB of WAL
        # rather than every 4 MiB (the default) costs the archiver a third less time.
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "temp_store=MEMORY",
                       "cache_size=-32768", "wal_autocheckpoint=16384"):
            cur.execute("PRAGMA " + pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("saga_write") else "BEGIN")

    return engine


def _os_error(exc: OSError, what: str) -> SagaError:
    return from_oserror(exc, what, StoreError, hint="run as root, or pass --db")


def _reason(exc: sqlalchemy.exc.SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn database errors met while doing `what` into one-line StoreErrors."""
    try:
        yield
    except SagaError:
        raise
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StoreError(f"{what}: {_reason(exc)}") from exc
    except OSError as exc:
        raise _os_error(exc, what) from exc
