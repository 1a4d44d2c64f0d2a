"""Database errors as StoreErrors, the one place they are translated (docs/store.md, "Errors").

Errors are classified (the ArchiveError subclasses below), so the daemon
knows whether to retry (busy, unreachable, full), start a new archive
(corrupt) or reopen the file (gone).  This module imports neither
SQLAlchemy nor psycopg: searches read through the drivers' own
connections (saga.store.reader) and must not pay for either; an error of
a library that was never imported cannot be raised, so each is looked for
only once it is loaded.
"""
from __future__ import annotations

import errno
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from saga.errors import SagaError, StoreError, from_oserror


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


def os_error(exc: OSError, what: str) -> SagaError:
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


def _sqlalchemy_exc():
    """SQLAlchemy's exception module once SQLAlchemy is loaded, else None."""
    return sys.modules.get("sqlalchemy.exc")


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
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and state is None and isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        return ArchiveUnreachable   # could not connect, the server closed the connection
    sa = _sqlalchemy_exc()
    if sa is not None:
        if isinstance(exc, sa.OperationalError | sa.InterfaceError) and state is None:
            return ArchiveUnreachable
        if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
            return ArchiveUnreachable
    return StoreError


def _db_errors() -> tuple[type[Exception], ...]:
    """The database errors that can be raised now: sqlite3's, and those of the libraries loaded."""
    found: list[type[Exception]] = [sqlite3.Error]
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        found.append(psycopg.Error)
    sa = _sqlalchemy_exc()
    if sa is not None:
        found.append(sa.SQLAlchemyError)
    return tuple(found)


@contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn database errors met while doing `what` into one-line StoreErrors of the right kind."""
    try:
        yield
    except SagaError:
        raise
    except Exception as exc:
        if isinstance(exc, _db_errors()):
            raise classify(exc)(f"{what}: {_reason(exc)}") from exc
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                raise ArchiveFull(f"{what}: {exc.strerror}") from exc
            raise os_error(exc, what) from exc
        raise
