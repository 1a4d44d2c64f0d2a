"""The archive: rules and events in SQLite (default) or PostgreSQL (docs/store.md).

`Store` (saga.store.database) connects through SQLAlchemy and brings the
schema up to date; the modules hold the operations: `rules` (stored rule
lists), `archive` (bulk insert, retention), `query` and `report`
(searches, through the driver's own connection: saga.store.reader).
Nothing is imported until it is used: a search must not pay for
SQLAlchemy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from saga.store.database import Store
    from saga.store.errors import translate

__all__ = ["Store", "translate"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from saga.store.database import Store
        return Store
    if name == "translate":
        from saga.store.errors import translate
        return translate
    raise AttributeError(name)
