"""Stored rules: each host's ordered list (the source of truth the daemon installs at start).

Functions take the caller's Session and never commit: the rules service
decides when a change is complete (written and applied, or neither).
"""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from saga.errors import StoreError
from saga.rules.model import Rule
from saga.store.models import Host, RuleKey, RuleRow


def find_host_id(session: Session, name: str) -> int | None:
    """The id of host `name`, None when it has none yet."""
    return session.execute(select(Host.id).where(Host.name == name)).scalar_one_or_none()


def host_id(session: Session, name: str) -> int:
    """The id of host `name`, created on first use."""
    found = find_host_id(session, name)
    if found is not None:
        return found
    # Two first uses at once (PostgreSQL: two daemons, or the CLI and a daemon): one insert wins.
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(Host).values(name=name, next_rule_id=1).on_conflict_do_nothing(index_elements=["name"]))
    return session.execute(select(Host.id).where(Host.name == name)).scalar_one()


def _host(session: Session, hid: int) -> Host:
    host = session.get(Host, hid)
    if host is None:
        raise StoreError(f"host id {hid} is not in the database (removed while in use?)")
    return host


def take_rule_ids(session: Session, hid: int, n: int) -> list[int]:
    """n new rule ids for the host, never handed out before."""
    host = _host(session, hid)
    first = host.next_rule_id
    host.next_rule_id = first + n
    session.flush()
    return list(range(first, first + n))


def note_rule_ids(session: Session, hid: int, ids) -> None:
    """Ids chosen elsewhere (a rule file with ids) are taken too."""
    host = _host(session, hid)
    top = max(ids, default=0)
    if top >= host.next_rule_id:
        host.next_rule_id = top + 1
        session.flush()


def lock_host(session: Session, hid: int) -> None:
    """Hold this host's rules against concurrent changes until the transaction ends.

    SQLite writers already hold the database's write lock (BEGIN IMMEDIATE);
    PostgreSQL locks the host's row.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Host.id).where(Host.id == hid).with_for_update())


def _to_rule(row: RuleRow) -> Rule:
    return Rule(row.action, tuple(row.syscalls.split(",")), pid=row.pid, uid=row.uid, comm=row.comm,
                errors=row.errors, key=row.key, id=row.id, exe=row.exe, tree=bool(row.tree))


def load(session: Session, hid: int) -> list[Rule]:
    rows = session.execute(select(RuleRow).where(RuleRow.host_id == hid).order_by(RuleRow.position)).scalars()
    return [_to_rule(r) for r in rows]


def save(session: Session, hid: int, rules: list[Rule]) -> None:
    """Make `rules` (with ids) the host's list, in this order."""
    if any(r.id is None for r in rules):
        raise ValueError("stored rules need ids")
    session.execute(delete(RuleRow).where(RuleRow.host_id == hid))
    session.add_all(RuleRow(host_id=hid, id=r.id, position=i, action=r.action, syscalls=",".join(r.syscalls),
                            pid=r.pid, uid=r.uid, comm=r.comm, errors=r.errors, key=r.key, exe=r.exe, tree=r.tree)
                    for i, r in enumerate(rules))
    # Events name the rule that logged them: its key stays known after the rule goes (ids are never reused).
    keyed = {r.id: r.key for r in rules if r.key}
    if keyed:
        known = set(session.execute(select(RuleKey.rule_id).where(RuleKey.host_id == hid,
                                                                  RuleKey.rule_id.in_(keyed))).scalars())
        session.add_all(RuleKey(host_id=hid, rule_id=i, key=k) for i, k in keyed.items() if i not in known)
    session.flush()


def keys(session: Session, hid: int) -> dict[int, str]:
    """Rule id -> key of every keyed rule the host ever had."""
    return dict(session.execute(select(RuleKey.rule_id, RuleKey.key).where(RuleKey.host_id == hid)).all())
