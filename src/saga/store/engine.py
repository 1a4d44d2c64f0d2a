"""Database URLs, engines and the archive file (errors: saga.store.errors).

SQLite (the default) runs in WAL mode so the CLI can read while the daemon
writes; transactions that read and then write (rule changes, migrations)
take the write lock up front (BEGIN IMMEDIATE) so two writers queue
instead of failing half-way.  PostgreSQL goes through psycopg 3.

The SQLite file is created 0600 (0640 and the group's with a group to read
it) before SQLite opens it: SQLite gives its -wal and -shm files the mode
and owner of the database file.  A file found with wider permissions is
narrowed.  New archives use incremental auto-vacuum, so space freed by
pruning can be given back to the filesystem (docs/store.md).
"""
from __future__ import annotations

import os
import stat
import time

import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from saga.errors import StoreError
from saga.store.errors import ArchiveBusy as ArchiveBusy  # the archive's error kinds, for the daemon
from saga.store.errors import ArchiveCorrupt as ArchiveCorrupt
from saga.store.errors import ArchiveFull as ArchiveFull
from saga.store.errors import ArchiveGone as ArchiveGone
from saga.store.errors import ArchiveUnreachable as ArchiveUnreachable
from saga.store.errors import classify as classify
from saga.store.errors import os_error
from saga.store.errors import translate as translate
from saga.store.reader import BUSY_TIMEOUT

WRITE = {"saga_write": True}
PAGE_SIZE = 65536     # of a new SQLite archive
FILE_MODE = 0o600
GROUP_FILE_MODE = 0o640
SIDE_FILES = ("-wal", "-shm", "-journal")


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


def create(url: URL, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout)
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)


def _sqlite_engine(url: URL, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    path = url.database
    if not path:                     # normalize_url refuses these; an Engine for one would be in memory
        raise StoreError("a SQLite database needs a file (sqlite:////path/saga.db)")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, mode=0o750, exist_ok=True)
        except OSError as exc:
            raise os_error(exc, f"cannot create {parent} for the database") from None
    engine = create_engine(url, connect_args={"timeout": busy_timeout}, pool_size=2, max_overflow=4)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None   # saga emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        # A checkpoint copies the WAL into the database and syncs both: every 64 MiB of WAL
        # rather than every 4 MiB (the default) costs the archiver a third less time (on a small
        # filesystem, 1% of it: wal_bytes).  journal_size_limit: the WAL is cut back to that after a
        # checkpoint, not kept at its peak.
        # auto_vacuum can only be chosen before the first table (a new, empty archive).
        # page_size too: 64 KiB pages write the archive's column blobs 2.4 times cheaper and read them
        # 1.8 times faster than 4 KiB ones (docs/store.md); an older archive keeps its own.
        if cur.execute("PRAGMA page_count").fetchone()[0] == 0:
            cur.execute(f"PRAGMA page_size={PAGE_SIZE}")
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
        wal = wal_bytes(parent)
        checkpoint = max(wal // cur.execute("PRAGMA page_size").fetchone()[0], 1)   # pages in `wal` bytes
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "temp_store=MEMORY",
                       "cache_size=-32768", f"wal_autocheckpoint={checkpoint}", f"journal_size_limit={wal}"):
            cur.execute("PRAGMA " + pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("saga_write") else "BEGIN")

    return engine


WAL_BYTES = 64 << 20


def wal_bytes(directory: str) -> int:
    """How much WAL to let grow before a checkpoint: 64 MiB, but at most 1% of a small filesystem (at least
    1 MiB), so that the WAL of a small disk cannot take the room the disk bounds keep (saga.daemon.bounds)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return WAL_BYTES
    return min(WAL_BYTES, max(st.f_blocks * st.f_frsize // 100, 1 << 20))


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
        raise os_error(exc, f"cannot create the archive {path}") from None
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
        raise os_error(exc, f"cannot set the permissions of {path}") from None


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
            raise os_error(exc, f"cannot move the damaged archive {path} aside") from None
    return target
