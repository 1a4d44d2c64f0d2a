"""Schema version 1 (records in the event rows) upgraded to version 2 (records in their batches), on SQLite and
PostgreSQL: every event survives, prints as before, and keeps its executable."""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    inspect,
    text,
)

from saga import events
from saga.events import PID, TS
from saga.filters import EventFilter
from saga.store import Store, archive, query, schema
from saga.store import rules as stored_rules

# Version 1's event tables, as saga 1 created them.
V1 = MetaData()
V1_EVENTS = Table(
    "events", V1,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("host_id", Integer), Column("ts_ns", BigInteger), Column("pid", BigInteger), Column("tid", BigInteger),
    Column("ppid", BigInteger), Column("uid", BigInteger), Column("syscall", SmallInteger), Column("ret", BigInteger),
    Column("duration_ns", BigInteger), Column("comm", String(64)), Column("exe", Text), Column("path", Text),
    Column("record", LargeBinary),
    Index("ix_events_ts", "ts_ns").ddl_if(dialect="postgresql"),
    Index("ix_events_syscall_ts", "syscall", "ts_ns").ddl_if(dialect="postgresql"),
    Index("ix_events_pid_ts", "pid", "ts_ns").ddl_if(dialect="postgresql"),
    Index("ix_events_host_ts", "host_id", "ts_ns").ddl_if(dialect="postgresql"),
)
V1_BATCHES = Table(
    "event_batches", V1,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("host_id", Integer), Column("first_id", BigInteger), Column("last_id", BigInteger),
    Column("min_ts", BigInteger), Column("max_ts", BigInteger), Column("events", Integer),
    Index("ix_event_batches_max_ts", "max_ts"),
)


def exe_of(i: int, raw: tuple, exe_pid: int) -> str | None:
    """Version 1's exe of the i-th event: exe_pid's changes (not yet known, then /bin/x, an exec, /bin/y)."""
    if raw[PID] != exe_pid:
        return None
    return (None, "/bin/x", "/bin/y")[min(i // 100, 2)]


def _v1_database(url: str, recording: bytes, raws: list[tuple], exe_pid: int) -> tuple[int, int]:
    """A version 1 archive: the recording for host a, its first ten events again for host b."""
    with Store.open(url) as st:
        with st.session() as s, s.begin():
            a, b = stored_rules.host_id(s, "a"), stored_rules.host_id(s, "b")
        with st.engine.begin() as conn:
            conn.execute(text("DROP TABLE events"))
            conn.execute(text("DROP TABLE event_batches"))
            V1.create_all(conn)
            off, rows = 0, []
            for r in raws:
                rows.append(dict(host_id=a, ts_ns=r[TS], pid=r[PID], tid=0, ppid=0, uid=0, syscall=0, ret=0,
                                 duration_ns=0, comm="", exe=exe_of(len(rows), r, exe_pid), path=None,
                                 record=recording[off:off + r[events.SIZE]]))
                off += r[events.SIZE]
            conn.execute(V1_EVENTS.insert(), rows + [dict(row, host_id=b) for row in rows[:10]])
            conn.execute(V1_BATCHES.insert(), [dict(host_id=a, first_id=1, last_id=len(rows), min_ts=0,
                                                    max_ts=2**62, events=len(rows))])
            conn.execute(text("UPDATE saga_meta SET value = '1' WHERE key = 'schema_version'"))
    return a, b


def test_version_1_is_migrated_without_losing_an_event(store_url, recording, raws):
    exe_pid = raws[0][PID]
    a, b = _v1_database(store_url, recording, raws, exe_pid)
    with Store.open(store_url) as st:
        with st.engine.connect() as conn:
            assert schema.version(conn) == 2 and not inspect(conn).has_table("events_v1")
        with st.session() as s:
            found = query.search(s, EventFilter(host="a"), newest=False)
            # every event with its own executable, as version 1 had it
            assert sorted((x.raw, x.exe or "") for x in found) == \
                sorted((r, exe_of(i, r, exe_pid) or "") for i, r in enumerate(raws))
            assert {x.exe for x in found if x.raw[PID] == exe_pid} == {None, "/bin/x", "/bin/y"}
            assert [x.raw for x in query.search(s, EventFilter(host="b"), newest=False)] == \
                sorted(raws[:10], key=lambda r: r[TS])
            mid = sorted(r[TS] for r in raws)[len(raws) // 2]    # the rebuilt batches know their time ranges
            assert len(query.search(s, EventFilter(host="a", since_ns=mid))) == sum(r[TS] >= mid for r in raws)
        assert archive.count(st.engine, a) == len(raws) and archive.count(st.engine, b) == 10
        archive.EventWriter(st.engine, a).write([(recording, raws)])    # and the archive goes on
        assert archive.count(st.engine, a) == 2 * len(raws)
