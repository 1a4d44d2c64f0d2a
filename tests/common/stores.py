"""Small helpers for tests that archive into a store."""
from __future__ import annotations

from saga.store import Store
from saga.store import rules as stored_rules


def host_in(store: Store, name: str = "h") -> int:
    """The id of host `name` in the store's archive (made on first use)."""
    with store.session() as s, s.begin():
        return stored_rules.host_id(s, name)
