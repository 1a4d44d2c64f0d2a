"""The daemon's spool cursor, kept in saga_meta and written in the same transaction as the events it covers.

One key per host (`spool_cursor.<host id>`): how far the host's spool
(saga.daemon.spool) is archived.  Because the cursor and the events commit
together, a daemon that restarts after a crash replays exactly the spooled
reads the archive does not have.
"""
from __future__ import annotations

from sqlalchemy import Connection, Engine, bindparam, select

from saga.store.errors import translate
from saga.store.models import Meta


def _key(host_id: int) -> str:
    return f"spool_cursor.{int(host_id)}"


def read(engine: Engine, host_id: int) -> str | None:
    with translate("reading the spool cursor"), engine.connect() as conn:
        return conn.execute(select(Meta.value).where(Meta.key == _key(host_id))).scalar_one_or_none()


# Built once (the archiver writes the cursor with every batch).
_TABLE = Meta.__table__
_SET = _TABLE.update().where(_TABLE.c.key == bindparam("b_key")).values(value=bindparam("b_value"))
_ADD = _TABLE.insert()


def write(conn: Connection, host_id: int, value: str) -> None:
    """Set the cursor in the caller's transaction (a writer's own connection: one writer per host)."""
    key = _key(host_id)
    if not conn.execute(_SET, {"b_key": key, "b_value": value}).rowcount:
        conn.execute(_ADD, {"key": key, "value": value})
