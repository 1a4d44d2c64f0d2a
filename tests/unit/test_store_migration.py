"""Older archives upgraded to schema version 3, on SQLite and PostgreSQL: every event survives, prints as
before, and keeps its executable.

tests/data/archive-v2.db.gz is a real version 2 archive, written by saga's version 2 code (commit 9cf6820:
EventWriter.write of the recorded workload, archive.prune, rules.save): host a has the recording in three
writes (the first two with executables), host b its first 200 events of which retention by rows kept the
newest 150 (their batch keeps all 200 records).  PostgreSQL gets the same rows in version 2's tables.
"""
from __future__ import annotations

import gzip

import abi1
import sqlalchemy as sa
from conftest import DATA
from sqlalchemy import create_engine, inspect, select, text
from typer.testing import CliRunner

from saga import render
from saga.cli.main import app
from saga.events import PID, TS
from saga.filters import EventFilter
from saga.store import Store, archive, migrations, query, schema
from saga.store import rules as stored_rules
from saga.store.models import Host, RuleRow

# Version 1's event tables, as saga 1 created them.
V1 = sa.MetaData()
V1_EVENTS = sa.Table(
    "events", V1,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("host_id", sa.Integer),
    *(sa.Column(name, sa.BigInteger) for name in ("ts_ns", "pid", "tid", "ppid", "uid")),
    sa.Column("syscall", sa.SmallInteger), sa.Column("ret", sa.BigInteger), sa.Column("duration_ns", sa.BigInteger),
    sa.Column("comm", sa.String(64)), sa.Column("exe", sa.Text), sa.Column("path", sa.Text),
    sa.Column("record", sa.LargeBinary),
    sa.Index("ix_events_ts", "ts_ns").ddl_if(dialect="postgresql"),
    sa.Index("ix_events_syscall_ts", "syscall", "ts_ns").ddl_if(dialect="postgresql"),
    sa.Index("ix_events_pid_ts", "pid", "ts_ns").ddl_if(dialect="postgresql"),
    sa.Index("ix_events_host_ts", "host_id", "ts_ns").ddl_if(dialect="postgresql"),
)
V1_BATCHES = sa.Table(
    "event_batches", V1,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("host_id", sa.Integer), sa.Column("first_id", sa.BigInteger), sa.Column("last_id", sa.BigInteger),
    sa.Column("min_ts", sa.BigInteger), sa.Column("max_ts", sa.BigInteger), sa.Column("events", sa.Integer),
    sa.Index("ix_event_batches_max_ts", "max_ts"),
)
_V3_ONLY = ("event_columns", "event_batches", "strings", "rule_keys")


def _drop_v3_event_tables(conn) -> None:
    for name in _V3_ONLY:
        conn.execute(text(f"DROP TABLE {name}"))


def exe_of(i: int, raw: tuple, exe_pid: int) -> str | None:
    """Version 1's exe of the i-th event: exe_pid's changes (not yet known, then /bin/x, an exec, /bin/y)."""
    if raw[PID] != exe_pid:
        return None
    return (None, "/bin/x", "/bin/y")[min(i // 100, 2)]


def _v1_database(url: str, recording: bytes, raws: list[tuple], exe_pid: int) -> tuple[int, int]:
    """A version 1 archive: the (ABI 1) recording for host a, its first ten events again for host b."""
    with Store.open(url) as st:
        with st.session() as s, s.begin():
            a, b = stored_rules.host_id(s, "a"), stored_rules.host_id(s, "b")
        with st.engine.begin() as conn:
            _drop_v3_event_tables(conn)
            V1.create_all(conn)
            off, rows = 0, []
            for r, size in zip(raws, abi1.sizes(recording), strict=True):
                rows.append(dict(host_id=a, ts_ns=r[TS], pid=r[PID], tid=0, ppid=0, uid=0, syscall=0, ret=0,
                                 duration_ns=0, comm="", exe=exe_of(len(rows), r, exe_pid), path=None,
                                 record=recording[off:off + size]))
                off += size
            conn.execute(V1_EVENTS.insert(), rows + [dict(row, host_id=b) for row in rows[:10]])
            conn.execute(V1_BATCHES.insert(), [dict(host_id=a, first_id=1, last_id=len(rows), min_ts=0,
                                                    max_ts=2**62, events=len(rows))])
            conn.execute(text("UPDATE saga_meta SET value = '1' WHERE key = 'schema_version'"))
    return a, b


def test_version_1_is_migrated_without_losing_an_event(store_url, recording, raws):
    old = abi1.recording()         # archives of version 1 hold ABI 1 records; they come back as ABI 2 says them
    new_recording, new_raws = recording, raws
    recording, raws = old, abi1.as_abi2(old)
    exe_pid = raws[0][PID]
    a, b = _v1_database(store_url, recording, raws, exe_pid)
    with Store.open(store_url) as st:
        with st.engine.connect() as conn:
            assert schema.version(conn) == 3
            assert not {"events", "events_v1", "event_batches_v2"} & set(inspect(conn).get_table_names())
        with st.session() as s:
            found = query.search(s, EventFilter(host="a"))
            # every event, in archive order, with its own executable, as version 1 had it
            assert [(x.raw, x.exe) for x in found] == [(r, exe_of(i, r, exe_pid)) for i, r in enumerate(raws)]
            assert [x.raw for x in query.search(s, EventFilter(host="b"))] == raws[:10]
            mid = sorted(r[TS] for r in raws)[len(raws) // 2]    # the rebuilt batches know their time ranges
            assert len(query.search(s, EventFilter(host="a", since_ns=mid))) == sum(r[TS] >= mid for r in raws)
        assert archive.count(st.engine, a) == len(raws) and archive.count(st.engine, b) == 10
        archive.EventWriter(st.engine, a).write([(new_recording, new_raws)])    # and the archive goes on
        assert archive.count(st.engine, a) == len(raws) + len(new_raws)


def _v2_fixture(tmp_path) -> str:
    path = tmp_path / "v2.db"
    path.write_bytes(gzip.decompress((DATA / "archive-v2.db.gz").read_bytes()))
    return f"sqlite:///{path}"


def _v2_on_postgresql(pg_url: str, sqlite_url: str) -> None:
    """The fixture's rows in version 2's tables on PostgreSQL."""
    src = create_engine(sqlite_url)
    with Store.open(pg_url) as st, st.engine.begin() as conn, src.connect() as s:
        _drop_v3_event_tables(conn)
        migrations.V2.create_all(conn)
        conn.execute(Host.__table__.insert(), [dict(r._mapping) for r in s.execute(select(Host.__table__))])
        # version 2's rules (no exe, tree: version 3's columns)
        conn.execute(RuleRow.__table__.insert(), [dict(r._mapping) for r in s.execute(text("SELECT * FROM rules"))])
        for table in (migrations.V2_EVENTS, migrations.V2_BATCHES):
            conn.execute(table.insert(), [dict(r._mapping) for r in s.execute(select(table))])
        conn.execute(text("SELECT setval(pg_get_serial_sequence('event_batches', 'id'), 4)"))
        conn.execute(text("UPDATE saga_meta SET value = '2' WHERE key = 'schema_version'"))
    src.dispose()


def test_a_real_version_2_archive_is_migrated_without_losing_an_event(store_url, tmp_path, recording, raws):
    new_recording, new_raws = recording, raws
    raws = abi1.as_abi2(abi1.recording())      # the archive was written from the ABI 1 recording
    url = _v2_fixture(tmp_path)
    if store_url.startswith("postgresql"):
        _v2_on_postgresql(store_url, url)
        url = store_url
    pid = raws[0][PID]
    with Store.open(url) as st:
        with st.engine.connect() as conn:
            assert schema.version(conn) == 3
            assert set(inspect(conn).get_table_names()) == {"saga_meta", "hosts", "rules", *_V3_ONLY}
        with st.session() as s:
            a = stored_rules.find_host_id(s, "a")
            found = query.search(s, EventFilter(host="a"))
            assert [x.raw for x in found] == raws + raws       # every event, every field, in archive order
            # each write's executables stay with its events
            exes = [x.exe for x in found if x.raw[PID] == pid]
            n_first = sum(r[PID] == pid for r in raws[:200])
            n_all = sum(r[PID] == pid for r in raws)
            assert exes == ["/usr/bin/saga-fixture"] * n_first + ["/usr/bin/saga-fixture2"] * (n_all - n_first) + \
                [None] * n_all
            # host b: the 150 events retention kept, not the 50 its batch still had records of
            assert [x.raw for x in query.search(s, EventFilter(host="b"))] == raws[50:200]
            assert stored_rules.keys(s, a) == {1: "io", 2: "quiet"}          # rule keys kept for --key
            mid = sorted(r[TS] for r in raws)[len(raws) // 2]
            assert len(query.search(s, EventFilter(host="a", since_ns=mid))) == 2 * sum(r[TS] >= mid for r in raws)
            assert len(query.search(s, EventFilter.build(host="a", path="/tmp/*"))) > 0
        assert archive.count(st.engine) == 2 * len(raws) + 150
        archive.EventWriter(st.engine, a).write([(new_recording, new_raws)])    # and the archive goes on
        assert archive.count(st.engine, a) == 2 * len(raws) + len(new_raws)


def test_saga_query_upgrades_a_version_2_archive_before_it_searches(store_url, tmp_path):
    """Searches read without SQLAlchemy; an archive of an older version is migrated first, as every open does."""
    url = _v2_fixture(tmp_path)
    if store_url.startswith("postgresql"):
        _v2_on_postgresql(store_url, url)
        url = store_url
    r = CliRunner().invoke(app, ["--db", url, "query", "-n", "0", "--host", "b"])
    assert r.exit_code == 0, r.stderr
    raws = abi1.as_abi2(abi1.recording())      # the archive was written from the ABI 1 recording
    assert r.stdout.splitlines() == [render.line(x) for x in raws[50:200]]
    with Store.open(url) as st, st.engine.connect() as conn:
        assert schema.version(conn) == 3
