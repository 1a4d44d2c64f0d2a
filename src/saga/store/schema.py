"""Schema versions and migrations (docs/store.md).

The database records its schema version in saga_meta.  Opening a store
brings the schema to SCHEMA_VERSION in one transaction: a new database is
created at the current version; an older one runs MIGRATIONS[v] for each
version v it is behind (v -> v + 1); a newer one is refused, so an old
saga never writes into a layout it does not know.  To change the schema:
edit models.py, bump SCHEMA_VERSION, and add the step from the previous
version to migrations.py (through the connection; both SQLite and
PostgreSQL run DDL transactionally, so a failing step leaves nothing
behind).
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, Engine, inspect, select, text

from saga.errors import StoreError
from saga.store.engine import WRITE
from saga.store.migrations import MIGRATIONS, Migration
from saga.store.models import Base, Meta

SCHEMA_VERSION = 3


def _lock(conn: Connection) -> None:
    """Serialize concurrent first opens (SQLite: BEGIN IMMEDIATE already holds the write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7336157)"))  # any fixed key: saga's schema lock


def version(conn: Connection) -> int | None:
    """The schema version of the database, None when it has no saga tables."""
    if not inspect(conn).has_table(Meta.__tablename__):
        return None
    value = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar_one_or_none()
    if value is None or not value.isdigit():
        raise StoreError(f"the database has a saga_meta table without a valid schema_version ({value!r})")
    return int(value)


def ensure(engine: Engine, target: int = SCHEMA_VERSION, migrations: Mapping[int, Migration] = MIGRATIONS,
           metadata=Base.metadata) -> int:
    """Bring the database to `target`; returns the version it had (0 for a new database)."""
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        _lock(conn)
        found = version(conn)
        if found is None:
            if inspect(conn).has_table("events"):
                raise StoreError("the database has an 'events' table that saga did not create; use another database")
            metadata.create_all(conn)
            _set_version(conn, target, insert=True)
            return 0
        if found > target:
            raise StoreError(f"the database schema is version {found}, newer than this saga understands "
                             f"({target}): upgrade saga")
        for v in range(found, target):
            step = migrations.get(v)
            if step is None:
                raise StoreError(f"no migration from schema version {v} to {v + 1}")
            step(conn)
        if found != target:
            _set_version(conn, target)
        return found


def _set_version(conn: Connection, v: int, insert: bool = False) -> None:
    table = Meta.__table__
    if insert:
        conn.execute(table.insert().values(key="schema_version", value=str(v)))
    else:
        conn.execute(table.update().where(table.c.key == "schema_version").values(value=str(v)))
