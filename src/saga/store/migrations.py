"""The steps between schema versions (schema.py runs them; docs/store.md describes each layout).

MIGRATIONS[v] upgrades a database from version v to v + 1, inside the
transaction schema.ensure opened: a step that fails leaves nothing behind.
Each step knows the tables it reads and writes as they were in its
versions (frozen here), and the records of ABI 1 (the layout every
archive before version 3 holds), so a later change to models.py or to the
ABI never changes what an old step does.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
)

from saga.errors import StoreError
from saga.store import archive, columns
from saga.store.models import EventBatch, EventColumn, RuleKey, RuleRow, StringRow
from saga.structs import Field, Layout

Migration = Callable[[Connection], None]

# struct saga_event of ABI 1: the records of every archive of versions 1 and 2.
ABI1_EVENT = Layout("saga_event", 128, "<HHHHIIIIIIQQq6Q16s2HI", (
    Field("size", 0, 2, 1, "H"), Field("flags", 2, 2, 1, "H"), Field("nr", 4, 2, 1, "H"),
    Field("orig_nr", 6, 2, 1, "H"), Field("cpu", 8, 4, 1, "I"), Field("pid", 12, 4, 1, "I"),
    Field("tid", 16, 4, 1, "I"), Field("ppid", 20, 4, 1, "I"), Field("uid", 24, 4, 1, "I"),
    Field("gid", 28, 4, 1, "I"), Field("ts_ns", 32, 8, 1, "Q"), Field("duration_ns", 40, 8, 1, "Q"),
    Field("ret", 48, 8, 1, "q"), Field("args", 56, 48, 6, "6Q"), Field("comm", 104, 16, 16, "16s"),
    Field("path_len", 120, 4, 2, "2H"), Field("__pad", 124, 4, 1, "I"),
))
ABI1 = columns.RecordFormat(ABI1_EVENT, nul_in_len=False)
_BIGID = BigInteger().with_variant(Integer(), "sqlite")

# Version 1's events table, as far as the move to version 2 reads it (renamed first).
_V1_EVENTS = Table("events_v1", MetaData(), Column("id", BigInteger), Column("host_id", Integer),
                   Column("pid", BigInteger), Column("exe", Text), Column("record", LargeBinary))
# Version 2's event tables.
V2 = MetaData()
V2_EVENTS = Table(
    "events", V2,
    Column("id", _BIGID, primary_key=True), Column("host_id", Integer), Column("ts_ns", BigInteger),
    Column("syscall", SmallInteger), Column("pid", BigInteger), Column("uid", BigInteger), Column("ret", BigInteger),
    Column("comm", String(64)),
    Index("ix_events_ts", "ts_ns").ddl_if(dialect="postgresql"),
    Index("ix_events_syscall_ts", "syscall", "ts_ns").ddl_if(dialect="postgresql"),
    Index("ix_events_pid_ts", "pid", "ts_ns").ddl_if(dialect="postgresql"),
    Index("ix_events_host_ts", "host_id", "ts_ns").ddl_if(dialect="postgresql"),
    sqlite_autoincrement=True,
)
V2_BATCHES = Table(
    "event_batches", V2,
    Column("id", _BIGID, primary_key=True), Column("host_id", Integer), Column("first_id", BigInteger),
    Column("last_id", BigInteger), Column("min_ts", BigInteger), Column("max_ts", BigInteger),
    Column("events", Integer), Column("records", LargeBinary), Column("offsets", LargeBinary),
    Column("exes", Text),
    Index("ix_event_batches_max_ts", "max_ts"), Index("ix_event_batches_first_id", "first_id"),
    sqlite_autoincrement=True,
)
V2_INDEXES = ("ix_event_batches_max_ts", "ix_event_batches_first_id")
_MOVE_ROWS = 65536


# -- 1 -> 2 ---------------------------------------------------------------------------------------

def _v1_to_v2(conn: Connection) -> None:
    """Records leave the event rows for their batches (one blob per batch); event rows keep the search columns.

    Version 1 kept each record, and columns nothing searches, in its event row.
    Every event is rewritten, host by host in archive order, into batches of
    at most _MOVE_ROWS events with version 2's ids.
    """
    if conn.dialect.name == "postgresql":    # index names are global there; the new table takes them
        for index in V2_EVENTS.indexes:
            conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    conn.execute(text("ALTER TABLE events RENAME TO events_v1"))
    # Version 1's batches only mapped times to its ids (and lacked AUTOINCREMENT): rebuilt below.
    conn.execute(text("DROP TABLE event_batches"))
    V2.create_all(conn)
    old = _V1_EVENTS
    hosts = conn.execute(select(old.c.host_id).distinct().order_by(old.c.host_id)).scalars().all()
    for host in hosts:
        after = None
        while True:
            stmt = select(old.c.id, old.c.pid, old.c.exe, old.c.record).where(old.c.host_id == host)
            if after is not None:
                stmt = stmt.where(old.c.id > after)
            page = conn.execute(stmt.order_by(old.c.id).limit(_MOVE_ROWS)).all()
            if not page:
                break
            after = page[-1].id
            for rows in _one_exe_per_pid(page):
                _move_to_v2(conn, host, rows)
    conn.execute(text("DROP TABLE events_v1"))


def _one_exe_per_pid(rows: Sequence) -> Iterator[list]:
    """The rows, cut where a pid's executable changes (an exec, or one not known yet): a batch
    has one executable per pid, and version 1 had one per event."""
    run: list = []
    exe_of: dict[int, str | None] = {}
    for r in rows:
        if exe_of.setdefault(r.pid, r.exe) != r.exe:
            yield run
            run, exe_of = [], {r.pid: r.exe}
        run.append(r)
    if run:
        yield run


def _move_to_v2(conn: Connection, host: int, rows: Sequence) -> None:
    """One version 2 batch: its event rows (consecutive ids), then the batch row with the records."""
    buf = b"".join(r.record for r in rows)
    sizes = np.array([len(r.record) for r in rows], np.int64)
    try:
        if any(int.from_bytes(r.record[:2], "little") != len(r.record) for r in rows):
            raise ValueError("a record's size field does not match its length")
        f = columns.extract(buf, sizes, ABI1).fields
    except ValueError as exc:
        raise StoreError(f"migrating the archive to version 2: events {rows[0].id} to {rows[-1].id} of host "
                         f"{host} hold a malformed record ({exc})") from None
    code = columns.FIELD_CODES
    comm = [bytes(c).split(b"\0", 1)[0].decode("utf-8", "replace") for c in f[code["comm"]].tolist()]
    values = zip(f[code["ts_ns"]].tolist(), f[code["nr"]].tolist(), f[code["pid"]].tolist(),
                 f[code["uid"]].tolist(), f[code["ret"]].tolist(), comm, strict=True)
    ids = [conn.execute(V2_EVENTS.insert().values(host_id=host, ts_ns=ts, syscall=nr, pid=pid, uid=uid, ret=ret,
                                                  comm=cm).returning(V2_EVENTS.c.id)).scalar_one()
           for ts, nr, pid, uid, ret, cm in values]
    offsets = columns.starts_of(sizes).astype("<u4")
    exes = {str(r.pid): r.exe for r in rows if r.exe is not None}
    ts = f[code["ts_ns"]]
    conn.execute(V2_BATCHES.insert().values(
        host_id=host, first_id=ids[0], last_id=ids[-1], events=len(rows), min_ts=int(ts.min()), max_ts=int(ts.max()),
        records=buf, offsets=offsets.tobytes(), exes=json.dumps(exes, separators=(",", ":")) if exes else None))


# -- 2 -> 3 ---------------------------------------------------------------------------------------

_V2_OLD_BATCHES = Table("event_batches_v2", MetaData(), *(Column(c.name, c.type) for c in V2_BATCHES.columns))


def _v2_to_v3(conn: Connection) -> None:
    """Events become columns (one row per field per batch), paths and executables strings stored once.

    Every version 2 batch is rewritten, in archive order, as one version 3
    batch of the events it still holds (retention by rows could delete a
    batch's first events and keep its records), from its ABI 1 records.
    Rule keys are kept from the rules of the day (rule_keys); rules gain exe= and tree (ABI 2).
    """
    have = {c["name"] for c in inspect(conn).get_columns("rules")}
    for column, ddl in (("exe", "TEXT"), ("tree", "BOOLEAN NOT NULL DEFAULT FALSE")):
        if column not in have:
            conn.execute(text(f"ALTER TABLE rules ADD COLUMN {column} {ddl}"))
    for name in V2_INDEXES:       # index names are per database: the new table takes them
        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    conn.execute(text("ALTER TABLE event_batches RENAME TO event_batches_v2"))
    for model in (StringRow, RuleKey, EventBatch, EventColumn):
        model.__table__.create(conn, checkfirst=True)
    keyed = select(RuleRow.host_id, RuleRow.id, RuleRow.key).where(RuleRow.key.is_not(None))
    conn.execute(RuleKey.__table__.insert().from_select(["host_id", "rule_id", "key"], keyed))
    old, ev = _V2_OLD_BATCHES, V2_EVENTS
    strings = archive.Strings()
    after = -1
    while True:
        row = conn.execute(select(old).where(old.c.id > after).order_by(old.c.id).limit(1)).one_or_none()
        if row is None:
            break
        after = row.id
        records, offsets = row.records, np.frombuffer(row.offsets, "<u4").astype(np.int64)
        sizes = np.diff(offsets, append=len(records))
        live = conn.execute(select(func.count()).select_from(ev).where(
            ev.c.id.between(row.first_id, row.last_id))).scalar_one()
        if live == 0:
            continue
        if live < len(offsets):    # only the events retention left
            kept = np.array(conn.execute(select(ev.c.id).where(ev.c.id.between(row.first_id, row.last_id))
                                         .order_by(ev.c.id)).scalars().all(), np.int64) - row.first_id
            records = b"".join(records[o:o + s] for o, s in zip(offsets[kept].tolist(), sizes[kept].tolist(),
                                                                 strict=True))
            sizes = sizes[kept]
        exes = {int(pid): exe for pid, exe in json.loads(row.exes).items()} if row.exes else {}
        try:
            archive.write_batch(conn, row.host_id, records, sizes, strings, exes, fmt=ABI1)
        except ValueError as exc:
            raise StoreError(f"migrating the archive to version 3: batch {row.id} of host {row.host_id} "
                             f"holds malformed records ({exc})") from None
    conn.execute(text("DROP TABLE event_batches_v2"))
    conn.execute(text("DROP TABLE events"))


MIGRATIONS: Mapping[int, Migration] = {1: _v1_to_v2, 2: _v2_to_v3}
