"""The archive: rules and events in SQLite (default) or PostgreSQL (docs/store.md).

`Store.open(url)` connects and brings the schema up to date; callers own
their sessions (`with store.session() as s, s.begin(): ...`, or
`store.session(write=True)` for read-then-write transactions).  The
modules below hold the operations: `rules` (stored rule lists), `archive`
(bulk insert, retention), `query` (search).
"""
from __future__ import annotations

import os

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from saga.errors import StoreError
from saga.store import archive, query, rules, schema
from saga.store import engine as _engine
from saga.store.engine import WRITE, translate

__all__ = ["Store", "archive", "query", "rules", "schema", "translate"]


class Store:
    def __init__(self, engine: Engine, url_text: str) -> None:
        self.engine = engine
        self.url = url_text          # for messages: password hidden
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(engine.execution_options(**WRITE), expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, create: bool = True, migrate: bool = True) -> Store:
        """Connect to `url` (a SQLAlchemy URL or a SQLite file path) with the schema current.

        create=False: a SQLite file that does not exist is an error rather than a new archive.
        """
        parsed = _engine.normalize_url(url)
        text = _engine.describe(parsed)
        if not create and parsed.get_backend_name() == "sqlite" and not os.path.exists(parsed.database or ""):
            raise StoreError(f"no archive at {parsed.database} yet (the daemon creates it; --db selects another)")
        with translate(f"cannot open the database {text}"):
            eng = _engine.create(parsed)
            try:
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
        return cls(eng, text)

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
