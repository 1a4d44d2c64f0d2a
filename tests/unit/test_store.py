"""The store on SQLite and on a real PostgreSQL server: schema, migrations, rules, archive, search, retention."""
from __future__ import annotations

import errno
import os
from fnmatch import fnmatchcase

import pytest
from sqlalchemy import create_engine, inspect, text

from saga import _uapi, events, fastrender, rules, syscalls
from saga.drivers.replay import split_records
from saga.errors import PermissionDenied, StoreError
from saga.events import COMM, NR, PID, PPID, RET, TID, TS, UID
from saga.filters import EventFilter
from saga.store import Store, archive, query, report, schema
from saga.store import rules as stored_rules
from saga.store.engine import normalize_url


def _host(store: Store, name: str = "h1") -> int:
    with store.session(write=True) as s, s.begin():
        return stored_rules.host_id(s, name)


def _archive(store: Store, buf: bytes, host: int, exe=None) -> None:
    w = archive.EventWriter(store.engine, host)
    try:
        w.write([(buf, events.parse(buf))], exe or {})
    finally:
        w.close()


def _search(store: Store, flt: EventFilter | None = None, limit=None):
    with store.session() as s:
        return query.search(s, flt or EventFilter(), limit)


def test_a_new_database_is_created_at_the_current_version(store_url):
    with Store.open(store_url) as st, st.engine.connect() as conn:
        assert schema.version(conn) == schema.SCHEMA_VERSION
        assert {"saga_meta", "hosts", "rules", "rule_keys", "strings", "event_batches", "event_columns"} == \
            set(inspect(conn).get_table_names())
    assert schema.ensure(Store.open(store_url).engine) == schema.SCHEMA_VERSION   # reopening changes nothing


def test_a_newer_schema_is_refused(store_url):
    with Store.open(store_url) as st, st.engine.begin() as conn:
        conn.execute(text("UPDATE saga_meta SET value = :v WHERE key = 'schema_version'"),
                     {"v": str(schema.SCHEMA_VERSION + 1)})
    with pytest.raises(StoreError, match="newer than this saga"):
        Store.open(store_url)


def test_migrations_run_in_order_and_all_or_nothing(store_url):
    st = Store.open(store_url)
    v = schema.SCHEMA_VERSION

    def add_note(conn):
        conn.execute(text("ALTER TABLE hosts ADD COLUMN note VARCHAR(20)"))

    def add_table(conn):
        conn.execute(text("CREATE TABLE saga_extra (x INTEGER)"))

    def broken(conn):
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError):
        schema.ensure(st.engine, v + 2, {v: add_note, v + 1: broken})
    with st.engine.connect() as conn:
        assert schema.version(conn) == v
        assert "note" not in {c["name"] for c in inspect(conn).get_columns("hosts")}   # step 1 rolled back too
    assert schema.ensure(st.engine, v + 2, {v: add_note, v + 1: add_table}) == v
    with st.engine.connect() as conn:
        assert schema.version(conn) == v + 2
        assert "note" in {c["name"] for c in inspect(conn).get_columns("hosts")}
        assert inspect(conn).has_table("saga_extra")
    with pytest.raises(StoreError, match="no migration"):
        schema.ensure(st.engine, v + 3, {})
    st.close()


def test_a_foreign_events_table_is_not_taken_over(tmp_path):
    path = tmp_path / "other.db"
    eng = create_engine(f"sqlite:///{path}")
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE events (x INTEGER)"))
    eng.dispose()
    with pytest.raises(StoreError, match="did not create"):
        Store.open(str(path))


def test_rules_are_kept_per_host_in_order(store_url):
    with Store.open(store_url) as st:
        a, b = _host(st, "a"), _host(st, "b")
        ra = [rules.parse("1: ignore open*"), rules.parse("5: count read,write comm=nginx errors key=io")]
        rb = [rules.parse("2: log %network uid=0")]
        with st.session() as s, s.begin():
            stored_rules.save(s, a, ra)
            stored_rules.save(s, b, rb)
        with st.session() as s:
            assert stored_rules.load(s, a) == ra
            assert stored_rules.load(s, b) == rb
            assert stored_rules.take_rule_ids(s, a, 2) == [1, 2]
            assert stored_rules.take_rule_ids(s, a, 1) == [3]
            s.commit()


def test_archived_events_come_back_exactly(store_url, recording, raws):
    with Store.open(store_url) as st:
        h = _host(st)
        pid = raws[0][PID]
        _archive(st, recording, h, {pid: "/usr/bin/saga-fixture"})
        found = _search(st)
        assert [a.raw for a in found] == raws      # in archive order, every field as parsed live
        assert {a.host for a in found} == {"h1"}
        assert {a.exe for a in found if a.raw[PID] == pid} == {"/usr/bin/saga-fixture"}
        assert {a.exe for a in found if a.raw[PID] != pid} == {None}
        assert archive.count(st.engine, h) == len(raws)


def test_lines_rendered_from_columns_are_the_lines_of_the_records(store_url, recording, raws, monkeypatch):
    """Search.lines (what saga query prints) equals render.line of each archived record: every event, the
    failures alone, a path search, the last few; calls seen before (cached) and calls with an aux blob."""
    from saga import render
    with_aux = [r for r in raws if r[events.AUX_LEN]]
    assert with_aux and any(r[events.PATH_LEN0] for r in raws)
    with Store.open(store_url) as st:
        h = _host(st)
        _archive(st, recording, h)
        _archive(st, recording, h)          # the same calls again: their texts come from the cache
        with st.session() as s:
            for flt, limit in ((EventFilter(), None), (EventFilter(errors=True), None),
                               (EventFilter.build(path="/etc/*"), None), (EventFilter(), 7)):
                search = query.Search(s, flt)
                want = [render.line(a.raw) for a in (search.stream() if limit is None else search.last(limit))]
                search = query.Search(s, flt)
                got = [line for rows, idx in search.parts(limit) for line in search.lines(rows, idx)]
                assert got == want and want, flt
                assert fastrender.shared() is not None, fastrender.why_not()
                for fast in (True, False):          # Search.text: the compiled renderer's, and without it
                    if not fast:
                        monkeypatch.setattr(fastrender, "shared", lambda: None)
                    search = query.Search(s, flt)
                    text = b"".join(search.text(block) for block in query.blocks(search.parts(limit)))
                    assert text.decode("utf-8", "surrogateescape") == "".join(t + "\n" for t in want), flt
                monkeypatch.undo()
                for rows, idx in search.parts(limit):
                    assert search.failed(rows, idx).tolist() == [failed(a.raw) for a in search.events(rows, idx)]
            monkeypatch.setattr(query, "_CALLS_KEPT", 3)      # a full cache starts over
            search = query.Search(s, EventFilter())
            assert [line for rows, idx in search.parts() for line in search.lines(rows, idx)] == \
                [render.line(r) for r in raws + raws]


def test_a_few_rows_are_read_alone_as_whole_columns_would_give_them(store_url, recording, raws):
    """Batch.pick reads a few rows' bytes (substr) instead of whole columns: the same values, zeros for a
    column of zeros (not stored), whatever the positions."""
    import numpy as np

    from saga.store import columns
    with Store.open(store_url) as st:
        _archive(st, recording, _host(st))
        with st.session() as s:
            search = query.Search(s, EventFilter())
            (batch,) = list(search.batches())
            whole = {c: batch.col(c) for c in columns.EVENT_CODES}
            assert not whole[columns.FIELD_CODES["rule_id"]].any()        # a column not stored
            rng = np.random.default_rng(5)
            for pos in (np.array([0]), np.array([len(raws) - 1, 3, 3]), rng.choice(len(raws), 64, replace=False)):
                fresh = query.Batch(search.db, batch.row)
                got = fresh.pick(columns.EVENT_CODES, pos)
                assert not fresh._cols          # nothing read whole
                for c in columns.EVENT_CODES:
                    assert np.array_equal(got[c], whole[c][pos]) and got[c].dtype == whole[c].dtype, c


def test_search_filters_select_what_they_say(store_url, recording, raws):
    openat, newfstatat = syscalls.BY_NAME["openat"].slot, syscalls.BY_NAME["newfstatat"].slot
    nginx = b"nginx".ljust(16, b"\0")
    child = next(r for r in raws if r[PPID] == raws[0][PID])
    thread = next(r for r in raws if r[TID] != r[PID])
    some_path = next(p for r in raws for p in events.paths_of(r) if p.startswith("/"))
    with Store.open(store_url) as st:
        _archive(st, recording, _host(st), {raws[0][PID]: "/usr/bin/saga-fixture"})
        cases = [
            (EventFilter.build(syscall="openat"), lambda r: r[NR] == openat),
            (EventFilter.build(syscall="openat,newfstatat", errors=True),
             lambda r: r[NR] in (openat, newfstatat) and failed(r)),
            (EventFilter.build(comm="nginx"), lambda r: r[COMM] == nginx),
            (EventFilter.build(uid="65534"), lambda r: r[UID] == 65534),
            (EventFilter.build(pid=raws[-1][PID]), lambda r: r[PID] == raws[-1][PID]),
            (EventFilter.build(syscall="%file", errors=True, uid="0"),
             lambda r: syscalls.name_of(r[NR]) in syscalls.CLASSES["file"] and failed(r) and r[UID] == 0),
            (EventFilter.build(errno="ENOENT"), lambda r: r[RET] == -errno.ENOENT),
            (EventFilter.build(errno="13"), lambda r: r[RET] == -errno.EACCES),
            (EventFilter.build(ppid=child[PPID]), lambda r: r[PPID] == child[PPID]),
            (EventFilter.build(tid=thread[TID]), lambda r: r[TID] == thread[TID]),
            (EventFilter.build(path=some_path), lambda r: some_path in events.paths_of(r)),
            (EventFilter.build(path="/tmp/*"), lambda r: any(fnmatchcase(p, "/tmp/*") for p in events.paths_of(r))),
            (EventFilter.build(path="*[!/]"), lambda r: any(fnmatchcase(p, "*[!/]") for p in events.paths_of(r))),
            (EventFilter.build(exe="/usr/bin/saga-*"), lambda r: r[PID] == raws[0][PID]),
            (EventFilter.build(exe="saga-fixture", syscall="openat"), lambda r: r[PID] == raws[0][PID] and
             r[NR] == openat),
        ]
        for flt, expect in cases:
            want = [r for r in raws if expect(r)]
            assert want, flt
            assert [a.raw for a in _search(st, flt)] == want, flt
            assert flt.needs_context or [r for r in raws if flt.predicate()(r)] == want, flt   # the live test agrees
        for nothing in (EventFilter.build(path="/no/such/*"), EventFilter.build(exe="nope"),
                        EventFilter.build(errno="EXDEV"), EventFilter.build(key="nokey"),
                        EventFilter(host="nope")):
            assert _search(st, nothing) == []
        mid = sorted(r[TS] for r in raws)[len(raws) // 2]
        later = _search(st, EventFilter(since_ns=mid))
        assert later and all(a.raw[TS] >= mid for a in later)
        assert len(later) == sum(1 for r in raws if r[TS] >= mid)


def failed(r: tuple) -> bool:
    return -4096 < r[RET] < 0 and not r[events.FLAGS] & _uapi.SAGA_EVF_NORETURN


def test_limit_takes_the_last_archived_in_archive_order(store_url, recording, raws):
    with Store.open(store_url) as st:
        h = _host(st)
        _archive(st, recording, h)
        _archive(st, recording, h)
        assert [a.raw for a in _search(st, limit=5)] == raws[-5:]
        assert [a.raw for a in _search(st, limit=len(raws) + 3)] == raws[-3:] + raws
        assert [a.raw for a in _search(st, EventFilter.build(errno="ENOENT"), limit=2)] == \
            [r for r in raws if r[RET] == -errno.ENOENT][-2:]


def test_names_and_paths_that_are_not_utf8_survive(store_url):
    buf = events.pack(dict(nr=257, pid=1, ts_ns=5, comm=b"\xffx", paths=("/tmp/\udcff\udcfe",), ret=-2))
    with Store.open(store_url) as st:
        _archive(st, buf, _host(st))
        (a,) = _search(st)
        # the record keeps the bytes
        assert events.paths_of(a.raw) == ("/tmp/\udcff\udcfe",) and a.raw[COMM].rstrip(b"\0") == b"\xffx"
        with st.engine.connect() as conn:      # the path is stored once, as its bytes
            assert conn.execute(text("SELECT value FROM strings")).scalar() == b"/tmp/\xff\xfe"


def test_retention_by_age_and_by_rows_touches_only_its_host(store_url):
    def batch(n, start):
        return b"".join(events.pack(dict(nr=0, pid=1, ts_ns=start + i)) for i in range(n))

    with Store.open(store_url) as st:
        a, b = _host(st, "a"), _host(st, "b")
        for start in range(1000, 1100, 10):          # ten writes: age goes by whole batches
            _archive(st, batch(10, start), a)
            _archive(st, batch(10, start), b)
        assert archive.prune(st.engine, a, before_ns=1055) == 50   # the batch 1050..1059 stays
        assert _search(st, EventFilter(host="a", until_ns=1059))[0].raw[TS] == 1050
        assert archive.prune(st.engine, a, keep_rows=20) == 30
        assert archive.prune(st.engine, a, keep_rows=15) == 0      # whole batches: 15 of the 20 need both
        assert archive.count(st.engine, a) == 20 and archive.count(st.engine, b) == 100
        left = _search(st, EventFilter(host="a"))
        assert [r.raw[TS] for r in left] == list(range(1080, 1100))
        assert archive.prune(st.engine, a, before_ns=0, keep_rows=1000) == 0


def test_database_errors_are_one_line_store_errors(tmp_path):
    with pytest.raises(StoreError, match="not a database URL|unsupported"):
        Store.open("mysql://x/y")
    with pytest.raises(StoreError, match="in-memory"):
        Store.open("sqlite://")
    with pytest.raises(StoreError, match="no archive at"):
        Store.open(str(tmp_path / "missing.db"), create=False)
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create|cannot open"):
        Store.open(str(tmp_path / "file" / "saga.db"))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        Store.open(str(garbage))
    with pytest.raises(StoreError, match="cannot open the database postgresql"):
        Store.open("postgresql://nobody@/saga?host=/nonexistent-dir&connect_timeout=2")


def test_an_unwritable_place_is_a_permission_error(tmp_path, monkeypatch):
    def refuse(path, mode=0o777, exist_ok=False):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "makedirs", refuse)
    with pytest.raises(PermissionDenied, match="run as root, or pass --db"):
        Store.open(str(tmp_path / "sub" / "saga.db"))


def test_urls_and_paths():
    assert normalize_url("/var/lib/saga/saga.db").render_as_string() == "sqlite:////var/lib/saga/saga.db"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"


def test_time_ranges_find_calls_archived_long_after_they_began(store_url):
    """A call that blocked for long is archived with later calls but keeps its entry time."""
    def rec(ts, pid=1):
        return events.pack(dict(nr=0, pid=pid, ts_ns=ts))

    with Store.open(store_url) as st:
        h = _host(st)
        _archive(st, b"".join(rec(t) for t in range(100, 110)), h)
        _archive(st, b"".join(rec(t) for t in range(200, 205)) + rec(50, pid=9) + rec(205), h)
        got = _search(st, EventFilter(since_ns=40, until_ns=60))
        assert [(a.raw[TS], a.raw[PID]) for a in got] == [(50, 9)]
        assert [a.raw[TS] for a in _search(st, EventFilter(since_ns=204))] == [204, 205]
        assert [a.raw[TS] for a in _search(st, EventFilter(until_ns=101))] == [100, 101, 50]   # archive order
        assert _search(st, EventFilter(since_ns=300)) == []
        assert archive.prune(st.engine, h, before_ns=150) == 10   # the second batch holds ts 50: it stays
        assert [a.raw[TS] for a in _search(st, EventFilter(until_ns=60))] == [50]


@pytest.mark.parametrize("n", [1, 7, 8, 404, 1000, 5000])
def test_every_write_size_archives_every_event_in_order(store_url, recording, raws, n):
    """Batches of each size, with and without paths: all events arrive, in order, with their batch's ids."""
    records = [rec for rec, _ in split_records(recording)]
    for only_fixed in (True, False):      # records without paths are read as one array; the others gathered
        pool = [r for r in records if len(r) == events.FIXED] if only_fixed else records
        buf = b"".join(pool[i % len(pool)] for i in range(n))
        mine = events.parse(buf)
        with Store.open(store_url) as st:
            h = _host(st)
            before = archive.usage(st.engine)
            _archive(st, buf, h)
            _archive(st, buf, h)     # a second batch
            found = _search(st)[before.events:]
            assert [a.raw for a in found] == mine * 2
            ids = [a.id for a in found]
            assert ids == sorted(ids) and len(set(ids)) == 2 * n
            assert archive.usage(st.engine).batches == before.batches + 2


def test_a_write_larger_than_a_batch_takes_several(store_url, recording, raws, monkeypatch):
    monkeypatch.setattr(archive, "MAX_BATCH_EVENTS", 7)
    with Store.open(store_url) as st:
        h = _host(st)
        _archive(st, recording, h)
        assert [a.raw for a in _search(st)] == raws
        with st.engine.connect() as c:
            sizes = c.execute(text("SELECT events FROM event_batches ORDER BY id")).scalars().all()
        assert sum(sizes) == len(raws) and max(sizes) == 7
        assert [a.raw for a in _search(st, limit=10)] == raws[-10:]


def test_ids_are_never_reused_after_retention_empties_the_archive(store_url):
    rec = events.pack(dict(nr=0, pid=1, ts_ns=10))
    with Store.open(store_url) as st:
        h = _host(st)
        _archive(st, rec, h)
        (first,) = _search(st)
        assert archive.prune(st.engine, h, before_ns=100) == 1 and archive.count(st.engine) == 0
        _archive(st, rec, h)
        (second,) = _search(st)
        assert second.id > first.id and second.raw == first.raw


def test_a_missing_path_string_is_a_store_error(store_url):
    with Store.open(store_url) as st:
        _archive(st, events.pack(dict(nr=257, pid=1, ts_ns=10, paths=("/etc/hosts",))), _host(st))
        with st.engine.begin() as conn:
            conn.execute(text("DELETE FROM strings"))
        with pytest.raises(StoreError, match="damaged: string .* is missing"):
            _search(st)


def test_small_batches_are_merged_and_search_the_same(store_url, recording, raws, monkeypatch):
    """A quiet host writes a few events at a time: the writer merges them; every event stays, in order."""
    monkeypatch.setattr(archive, "MERGE_BATCHES", 4)
    records = [rec for rec, _ in split_records(recording)]
    pid = raws[0][PID]
    with Store.open(store_url) as st:
        h = _host(st)
        w = archive.EventWriter(st.engine, h)
        for i in range(0, len(records), 50):            # 9 writes: two merges of 4, one left alone
            buf = b"".join(records[i:i + 50])
            w.write([(buf, events.parse(buf))], {pid: "/usr/bin/a" if i < 100 else "/usr/bin/b"})
        w.close()
        found = _search(st)
        assert [a.raw for a in found] == raws
        assert [a.exe for a in found if a.raw[PID] == pid] == \
            ["/usr/bin/a" if i < 100 else "/usr/bin/b" for i, r in enumerate(raws) if r[PID] == pid]
        with st.engine.connect() as c:
            sizes = c.execute(text("SELECT events FROM event_batches ORDER BY id")).scalars().all()
        # writes 1-4 merge in two (the pid's executable changed after the second), 5-8 in one, 9 waits
        assert sizes == [100, 100, 200, len(records) - 400]
        for flt in (EventFilter.build(errno="ENOENT"), EventFilter.build(errors=True), EventFilter.build(path="/*")):
            assert [a.raw for a in _search(st, flt)] == [r for r in raws if flt.predicate()(r)]
        assert archive.usage(st.engine).events == len(raws)


def test_reports_add_up_the_stored_tallies_as_counting_would(store_url, recording, raws, monkeypatch):
    """A report over whole batches adds up each batch's stored per-syscall tally; counting the events of
    the same batches gives the same calls, failures, time and histograms (merged batches too)."""
    monkeypatch.setattr(archive, "MERGE_BATCHES", 3)
    records = [rec for rec, _ in split_records(recording)]
    with Store.open(store_url) as st:
        w = archive.EventWriter(st.engine, _host(st))
        for i in range(0, len(records), 70):
            buf = b"".join(records[i:i + 70])
            w.write([(buf, events.parse(buf))])
        w.close()

        def groups(flt: EventFilter) -> dict:
            with st.session() as s:
                found = report.summarize(query.Search(s, flt), report.By.syscall)
            return {g.key: (g.calls, g.failures, g.timed, g.total_ns, g.hist.tolist()) for g in found}

        for flt in (EventFilter(), EventFilter.build(syscall="openat,close,%file")):
            stored = groups(flt)
            with monkeypatch.context() as m:
                m.setattr(query.Search, "whole", lambda self, batch: False)
                counted = groups(flt)
            assert stored == counted and sum(c for c, *_ in stored.values()) == \
                sum(1 for r in raws if flt.predicate()(r)), flt


def test_units_and_the_same_transaction_hook(store_url, recording, raws):
    pid = raws[0][PID]
    seen = []
    with Store.open(store_url) as st:
        w = archive.EventWriter(st.engine, _host(st))
        w.write([(recording, raws)], {}, {pid: "backup.service"}, also=lambda conn: seen.append(conn.in_transaction()))
        w.close()
        mine = [r for r in raws if r[PID] == pid]
        for unit in ("backup.service", "*.service", "backup.*"):
            assert [a.raw for a in _search(st, EventFilter.build(unit=unit))] == mine
        assert _search(st, EventFilter.build(unit="nginx.service")) == []
    assert seen == [True]


def test_columns_read_ahead_for_many_batches_find_what_a_batch_at_a_time_finds(store_url, recording, raws,
                                                                                monkeypatch):
    """A search reads what it needs first of many batches at once (failure rows, path sets, then the path
    columns where a path set holds a match), as the statement steps on SQLite, AHEAD_BYTES at a time on
    PostgreSQL: a batch a group or all in one, it finds the events a search reading each batch alone finds,
    and prints them the same."""
    from saga.filters import failed as failed_call
    from saga.render import line
    enoent = [r for r in raws if r[RET] == -errno.ENOENT and failed_call(r)]
    assert enoent and any(r[events.PATH_LEN0] for r in enoent)
    ends = [0, *(int(e) for e in events.sizes(recording).cumsum())]
    fetch, stepped = query.Search._fetch, query.Search._stepped
    cut = len(raws) // 4
    with Store.open(store_url) as st:
        h = _host(st)
        for i in range(0, len(raws), cut):          # a batch each
            _archive(st, recording[ends[i]:ends[min(i + cut, len(raws))]], h, {raws[0][PID]: "/usr/bin/x"})
        with st.session() as s:
            assert len(list(query.Search(s, EventFilter()).batches())) == len(range(0, len(raws), cut)) > 2
            flts = (EventFilter.build(errno="ENOENT"), EventFilter.build(path="/etc/*"),
                    EventFilter.build(path="/etc/*", errno="ENOENT"), EventFilter.build(exe="/usr/bin/x"))
            def found(flt: EventFilter) -> tuple[list, bytes]:
                search = query.Search(s, flt)
                text = b"".join(search.text(b) for b in query.blocks(search.parts()))
                return [a.raw for a in query.Search(s, flt).stream()], text
            fetched: list[int] = []
            for flt in flts:
                with monkeypatch.context() as m:
                    m.setattr(query.Search, "_read_ahead", lambda self, page, newest: iter(page))
                    alone, text = found(flt)
                for ahead in (1, 1 << 30):
                    fetched.clear()
                    monkeypatch.setattr(query, "AHEAD_BYTES", ahead)
                    monkeypatch.setattr(query.Search, "_fetch", lambda self, b, codes: fetched.append(len(b)) or
                                        fetch(self, b, codes))
                    monkeypatch.setattr(query.Search, "_stepped", lambda self, page, codes, newest: fetched.append(
                        sum(b is not None for b in page)) or stepped(self, page, codes, newest))
                    assert found(flt) == (alone, text), (flt, ahead)
                    assert [a.raw for a in query.Search(s, flt).last(3)] == alone[-3:]      # from the newest back
                    assert fetched and (max(fetched) > 1 or ahead == 1), (flt, fetched)
                assert text.decode("utf-8", "surrogateescape") == "".join(line(r) + "\n" for r in alone)
            assert [a.raw for a in query.Search(s, flts[0]).stream()] == enoent



def test_blocks_gather_parts_until_full_or_until_they_have_waited(monkeypatch):
    """query.blocks: parts go out together up to CHUNK events or BLOCK_PARTS parts, and a block goes as soon
    as it has waited BLOCK_WAIT while the search examined batches without matches (idle parts)."""
    import numpy as np
    now = [0.0]
    monkeypatch.setattr(query.time, "monotonic", lambda: now[0])

    def parts():
        yield "a", np.arange(3)
        yield "idle", np.arange(0)
        now[0] += query.BLOCK_WAIT
        yield "idle", np.arange(0)             # a has waited: it goes
        yield "b", np.arange(query.CHUNK - 1)
        yield "c", np.arange(2)                # too many for b's block
        for i in range(query.BLOCK_PARTS + 1):
            yield f"d{i}", np.arange(1)
    got = [[name for name, _ in block] for block in query.blocks(parts())]
    assert got == [["a"], ["b"], ["c", *(f"d{i}" for i in range(query.BLOCK_PARTS - 1))],
                   [f"d{i}" for i in range(query.BLOCK_PARTS - 1, query.BLOCK_PARTS + 1)]]


def test_a_batch_the_search_is_done_with_is_let_go(store_url, recording, raws, monkeypatch):
    """Memory holds the batch being examined (and what is read ahead), not the batches before it: reading
    ahead keeps no page of batches (each with the columns it read) alive."""
    import gc
    import weakref
    ends = [0, *(int(e) for e in events.sizes(recording).cumsum())]
    cut = len(raws) // 4
    alive: weakref.WeakSet = weakref.WeakSet()
    init = query.Batch.__init__

    def counted(self, db, row):
        init(self, db, row)
        alive.add(self)
    monkeypatch.setattr(query.Batch, "__init__", counted)
    with Store.open(store_url) as st:
        h = _host(st)
        for i in range(0, len(raws), cut):
            _archive(st, recording[ends[i]:ends[min(i + cut, len(raws))]], h)
        with st.session() as s:
            for flt in (EventFilter.build(errno="ENOENT"), EventFilter()):
                search = query.Search(s, flt)
                done: list[int] = []          # the batches examined before the current one
                held = []
                for rows, _idx in search.parts(idle=True):
                    current = rows.batch.id
                    del rows
                    gc.collect()
                    held.append([b.id for b in alive if b.id in done])
                    done.append(current)
                assert len(done) > 2 and not any(held), (flt, held)
