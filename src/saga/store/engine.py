"""Database URLs, engines, the archive file, and the one place database errors become StoreError.

SQLite (the default) runs in WAL mode so the CLI can read while the daemon
writes; transactions that read and then write (rule changes, migrations)
take the write lock up front (BEGIN IMMEDIATE) so two writers queue
instead of failing half-way.  PostgreSQL goes through psycopg 3.

The SQLite file is created 0600 (0640 and the group's with a group to read
it) before SQLite opens it: SQLite gives its -wal and -shm files the mode
and owner of the database file.  A file found with wider permissions is
narrowed.  New archives use incremental auto-vacuum, so space freed by
pruning can be given back to the filesystem (docs/store.md).

Errors are classified (the ArchiveError subclasses below), so the daemon
knows whether to retry (busy, unreachable, full), start a new archive
(corrupt) or reopen the file (gone).
"""
from __future__ import annotations

import errno
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from saga.errors import SagaError, StoreError, from_oserror

# Seconds a writer waits for another writer's lock before giving up.
BUSY_TIMEOUT = 30.0
WRITE = {"saga_write": True}
PAGE_SIZE = 65536     # of a new SQLite archive
FILE_MODE = 0o600
GROUP_FILE_MODE = 0o640
SIDE_FILES = ("-wal", "-shm", "-journal")


class ArchiveBusy(StoreError):
    """Another process held the database lock past the busy timeout: retry."""


class ArchiveUnreachable(StoreError):
    """The database server cannot be reached, or the connection broke: retry."""


class ArchiveFull(StoreError):
    """The archive's filesystem (or the server's disk) is full."""


class ArchiveCorrupt(StoreError):
    """The archive file is damaged or is not a database."""


class ArchiveGone(StoreError):
    """The archive file was deleted, moved or replaced while it was open."""


def normalize_url(text: str) -> URL:
    """A SQLAlchemy URL from what a user typed: a URL, or a plain path meaning a SQLite file."""
    if "://" not in text:
        return URL.create("sqlite", database=os.path.abspath(text))
    try:
        url = make_url(text)
        url.port                     # noqa: B018 - parsed lazily; a bad one ('[::1') raises ValueError here
    except (sqlalchemy.exc.ArgumentError, ValueError):
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
        # journal_size_limit: the WAL is cut back to 64 MiB after a checkpoint, not kept at its peak.
        # auto_vacuum can only be chosen before the first table (a new, empty archive).
        # page_size too: 64 KiB pages write the archive's column blobs 2.4 times cheaper and read them
        # 1.8 times faster than 4 KiB ones (docs/store.md); an older archive keeps its own.
        if cur.execute("PRAGMA page_count").fetchone()[0] == 0:
            cur.execute(f"PRAGMA page_size={PAGE_SIZE}")
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
        checkpoint = (64 << 20) // cur.execute("PRAGMA page_size").fetchone()[0]    # pages in 64 MiB of WAL
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "temp_store=MEMORY",
                       "cache_size=-32768", f"wal_autocheckpoint={checkpoint}", f"journal_size_limit={64 << 20}"):
            cur.execute("PRAGMA " + pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("saga_write") else "BEGIN")

    return engine


def _os_error(exc: OSError, what: str) -> SagaError:
    return from_oserror(exc, what, StoreError, hint="run as root, or pass --db")


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# SQLite primary result codes (sqlite3.h) and what they mean for the archive.
_SQLITE_KINDS: dict[int, type[StoreError]] = {
    5: ArchiveBusy,            # SQLITE_BUSY
    6: ArchiveBusy,            # SQLITE_LOCKED
    11: ArchiveCorrupt,        # SQLITE_CORRUPT
    26: ArchiveCorrupt,        # SQLITE_NOTADB
    13: ArchiveFull,           # SQLITE_FULL
}
_SQLITE_READONLY_DBMOVED = 1032   # the database file was unlinked or renamed while open
_PG_UNREACHABLE_CLASSES = ("08", "57P")   # connection exceptions; admin shutdown, cannot connect now
_PG_DISK_FULL = "53100"


def classify(exc: BaseException) -> type[StoreError]:
    """The StoreError subclass that says what a database error means for the archive."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code == _SQLITE_READONLY_DBMOVED:
            return ArchiveGone
        if code is not None:
            return _SQLITE_KINDS.get(code & 0xFF, StoreError)
        text = str(orig)
        if "locked" in text:
            return ArchiveBusy
        if "malformed" in text or "not a database" in text:
            return ArchiveCorrupt
        return StoreError
    state = getattr(orig, "sqlstate", None)
    if state == _PG_DISK_FULL:
        return ArchiveFull
    if state is not None and state.startswith(_PG_UNREACHABLE_CLASSES):
        return ArchiveUnreachable
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError) and state is None \
            and not isinstance(orig, sqlite3.Error):
        return ArchiveUnreachable   # psycopg: could not connect, server closed the connection
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return ArchiveUnreachable
    return StoreError


def _dbapi_errors() -> tuple[type[Exception], ...]:
    """Errors of the drivers' own cursors (saga's bulk writes use them directly, below SQLAlchemy)."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


_DBAPI_ERRORS: tuple[type[Exception], ...] = _dbapi_errors()
_DB_ERRORS: tuple[type[Exception], ...] = (sqlalchemy.exc.SQLAlchemyError, *_DBAPI_ERRORS)


@contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn database errors met while doing `what` into one-line StoreErrors of the right kind."""
    try:
        yield
    except SagaError:
        raise
    except _DB_ERRORS as exc:
        raise classify(exc)(f"{what}: {_reason(exc)}") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ArchiveFull(f"{what}: {exc.strerror}") from exc
        raise _os_error(exc, what) from exc


# -- the SQLite file ----------------------------------------------------------------------------

def sqlite_path(url: URL) -> str | None:
    """The file of a SQLite URL, None for a server database."""
    return url.database if url.get_backend_name() == "sqlite" else None


def prepare_file(path: str, gid: int | None = None) -> None:
    """Create the archive file private (0600, or 0640 and group gid) before SQLite opens it, or narrow
    the permissions of one that exists (and of its -wal and -shm, which SQLite made like it)."""
    mode = FILE_MODE if gid is None else GROUP_FILE_MODE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise _os_error(exc, f"cannot create the archive {path}") from None
    try:
        for p, f in ((path, fd), *((path + s, None) for s in SIDE_FILES)):
            _narrow(p, f, mode, gid)
    finally:
        os.close(fd)


def _narrow(path: str, fd: int | None, mode: int, gid: int | None) -> None:
    try:
        st = os.fstat(fd) if fd is not None else os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        return
    try:
        if gid is not None and st.st_gid != gid:
            os.chown(fd if fd is not None else path, -1, gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(fd if fd is not None else path, mode)
    except OSError as exc:
        raise _os_error(exc, f"cannot set the permissions of {path}") from None


def identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at path, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def quick_check(engine: Engine) -> str | None:
    """None when SQLite's quick_check finds the archive sound, else its first complaint."""
    with translate("checking the archive"), engine.connect() as conn:
        rows = conn.exec_driver_sql("PRAGMA quick_check").fetchall()
    first = rows[0][0] if rows else "no answer"
    return None if first == "ok" else str(first)


def set_aside(path: str, why: str = "corrupt") -> str:
    """Move a damaged archive and its side files out of the way; returns the new name of the archive."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = f"{path}.{why}-{stamp}"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.{why}-{stamp}.{n}"
    for suffix in ("", *SIDE_FILES):
        try:
            os.rename(path + suffix, target + suffix)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_error(exc, f"cannot move the damaged archive {path} aside") from None
    return target
