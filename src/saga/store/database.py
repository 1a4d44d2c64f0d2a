"""The database through SQLAlchemy: connecting, the schema brought up to date, sessions, faults.

`Store.open(url)` connects and brings the schema up to date; callers own
their sessions (`with store.session() as s, s.begin(): ...`, or
`store.session(write=True)` for read-then-write transactions).
"""
from __future__ import annotations

import os

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from saga.errors import StoreError
from saga.store import engine as _engine
from saga.store import schema
from saga.store.engine import WRITE
from saga.store.errors import translate
from saga.store.reader import BUSY_TIMEOUT, no_archive


class Store:
    def __init__(self, engine: Engine, url_text: str, url: URL | None = None, own: bool = False,
                 gid: int | None = None, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.url = url_text          # for messages: password hidden
        self._url = url
        self._own = own
        self._gid = gid
        self._busy_timeout = busy_timeout
        self.path = _engine.sqlite_path(url) if url is not None else None   # the SQLite file, None for a server
        self._use(engine)

    def _use(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(engine.execution_options(**WRITE), expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, create: bool = True, migrate: bool = True, own: bool = False,
             gid: int | None = None, busy_timeout: float = BUSY_TIMEOUT) -> Store:
        """Connect to `url` (a SQLAlchemy URL or a SQLite file path) with the schema current.

        create=False: a SQLite file that does not exist is an error rather than a new archive.
        own=True (the daemon): a SQLite archive is created, or narrowed to, mode 0600, or 0640 and group
        `gid` when one may read it.  busy_timeout: how long a SQLite writer waits for another's lock.
        """
        parsed = _engine.normalize_url(url)
        text = _engine.describe(parsed)
        if not create and parsed.get_backend_name() == "sqlite" and not os.path.exists(parsed.database or ""):
            raise no_archive(parsed.database or "")
        return cls(cls._connect(parsed, text, create=create, migrate=migrate, own=own, gid=gid,
                                busy_timeout=busy_timeout), text, parsed, own, gid, busy_timeout)

    @staticmethod
    def _connect(parsed: URL, text: str, *, create: bool = True, migrate: bool = True, own: bool = False,
                 gid: int | None = None, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
        with translate(f"cannot open the database {text}"):
            eng = _engine.create(parsed, busy_timeout)
            try:
                path = _engine.sqlite_path(parsed)
                if own and path is not None:
                    _engine.prepare_file(path, gid)
                if migrate:
                    schema.ensure(eng)
                else:
                    with eng.connect() as conn:
                        found = schema.version(conn)
                    if found != schema.SCHEMA_VERSION:
                        raise StoreError(f"the database schema is version {found}, "
                                                 f"this saga needs {schema.SCHEMA_VERSION}")
            except BaseException:
                eng.dispose()
                raise
        return eng

    # -- the daemon's archive: faults (saga.daemon.archiver) ------------------------------------
    def reopen(self) -> None:
        """Connect again, to a new archive if the file is gone (deleted, replaced, set aside)."""
        if self._url is None:
            raise StoreError("this store cannot be reopened")
        engine = self._connect(self._url, self.url, own=self._own, gid=self._gid, busy_timeout=self._busy_timeout)
        old = self.engine
        self._use(engine)
        old.dispose()

    def file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the SQLite archive file; None for a server database or a file that is gone."""
        return _engine.identity(self.path) if self.path is not None else None

    def check(self) -> str | None:
        """A SQLite archive's quick_check complaint, None when sound (or a server database)."""
        return _engine.quick_check(self.engine) if self.path is not None else None

    def set_aside(self) -> str:
        """Move a damaged SQLite archive out of the way (reopen() then starts a new one); its new name."""
        if self.path is None:
            raise StoreError("only a SQLite archive can be set aside")
        self.engine.dispose()
        return _engine.set_aside(self.path)

    def session(self, *, write: bool = False) -> Session:
        """A new session for the caller to own; write=True takes the write lock at BEGIN (SQLite)."""
        return (self._write_sessions if write else self._sessions)()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
