"""The archiver thread and the psutil enrichment it uses."""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from stores import host_in

from saga import events
from saga.daemon.archiver import Archiver, Retention
from saga.daemon.enrich import Enricher, ProcInfo
from saga.errors import StoreError
from saga.filters import EventFilter
from saga.store import Store, archive, query


@pytest.fixture
def store(sqlite_url):
    st = Store.open(sqlite_url)
    yield st
    st.close()


def batch(n: int, start: int = 0, pid: int = 1) -> tuple[bytes, list[tuple]]:
    buf = b"".join(events.pack(dict(nr=0, pid=pid, ts_ns=10**18 + start + i)) for i in range(n))
    return buf, events.sizes(buf)


def test_everything_submitted_is_written_by_stop(store):
    a = Archiver(store, host_in(store))
    a.start()
    for k in range(20):
        assert a.submit(*batch(500, k * 500))
    assert a.stop() == 0
    assert archive.count(store.engine) == 10_000 == a.archived
    assert a.dropped == 0 and a.queued == 0


def test_a_small_queue_lingers_for_more_then_is_written_in_one_go(store):
    """The daemon's archiver waits for LINGER_EVENTS (or LINGER_S): a write of a few events costs about what a
    write of many does.  An hour's linger here, so that only reaching LINGER_EVENTS or a stop writes."""
    from saga.daemon.archiver import LINGER_EVENTS
    a = Archiver(store, host_in(store), linger=3600)
    a.start()
    assert a.submit(*batch(100))                       # alone, it waits ...
    assert a.submit(*batch(LINGER_EVENTS, 100))        # ... until enough have come: one write of both
    deadline = time.monotonic() + 60
    while a.archived < LINGER_EVENTS + 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert archive.usage(store.engine).batches == 1
    assert a.submit(*batch(10, 10**6))                 # a stop writes what lingers
    assert a.stop() == 0 and a.archived == LINGER_EVENTS + 110
    assert archive.usage(store.engine).batches == 2


def test_a_full_queue_drops_and_counts_without_blocking(store):
    a = Archiver(store, host_in(store), max_queued=1000)   # not started: nothing drains the queue
    assert a.submit(*batch(800))
    assert not a.submit(*batch(300))
    assert a.submit(*batch(200))
    assert (a.queued, a.dropped) == (1000, 300)
    a.start()
    assert a.stop() == 0 and archive.count(store.engine) == 1000


def test_a_failing_database_is_retried_then_reported_at_stop(store, monkeypatch):
    a = Archiver(store, host_in(store))
    calls = []

    def broken(reads, exes, units=None, also=None):
        calls.append(len(reads))
        raise StoreError("archiving events: database is locked")

    monkeypatch.setattr(a._writer, "write", broken)
    a.start()
    a.submit(*batch(10))
    a.submit(*batch(5))
    assert a.stop(timeout=0.3) == 15
    assert a.errors >= 1 and a.last_error.endswith("database is locked") and calls


def test_recovery_after_database_errors(store, monkeypatch):
    a = Archiver(store, host_in(store))
    real = a._writer.write
    fails = threading.Semaphore(2)

    def flaky(reads, exes, units=None, also=None):
        if fails.acquire(blocking=False):
            raise StoreError("archiving events: database is locked")
        return real(reads, exes, units, also)

    monkeypatch.setattr(a._writer, "write", flaky)
    a.start()
    a.submit(*batch(10))
    assert a.stop(timeout=10) == 0
    assert a.archived == 10 and a.errors == 2 and a.last_error is None


def test_retention_runs_in_the_archiver(store):
    h = host_in(store)
    a = Archiver(store, h, retention=Retention(max_rows=100, interval_s=0.05))
    a._next_prune = 0
    a.start()
    deadline = time.monotonic() + 10
    for n in (100, 200, 300):      # three writes, three batches: retention removes whole batches
        a.submit(*batch(100))
        while a.archived < n and time.monotonic() < deadline:
            time.sleep(0.01)
    while archive.count(store.engine) > 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    a.stop()
    assert archive.count(store.engine) == 100 and a.pruned == 200


def test_exe_comes_from_the_enricher(store):
    h = host_in(store)
    a = Archiver(store, h, enricher=Enricher())
    a.start()
    a.submit(*batch(3, pid=os.getpid()))
    a.stop()
    with store.session() as s:
        found = query.search(s, EventFilter())
    assert len(found) == 3 and {e.exe for e in found} == {os.path.realpath(sys.executable)}


def test_enricher_describes_live_processes_and_caches():
    e = Enricher(ttl=60)
    me = e.lookup(os.getpid())
    assert me.exe == os.path.realpath(sys.executable) and me.cmdline and me.user
    assert e.lookup(os.getpid()) is me and e.lookups == 1
    assert e.cached(os.getpid()) is me
    assert e.lookup(2**22 + 12345) is None


def test_enricher_keeps_an_exited_process_and_notices_a_recycled_pid():
    now = [0.0]
    answers = {}
    e = Enricher(ttl=1, clock=lambda: now[0], probe=lambda pid: answers.get(pid))
    answers[7] = ProcInfo(7, 100, "nginx", "/usr/sbin/nginx", ("nginx",), "www-data")
    assert e.lookup(7).exe == "/usr/sbin/nginx"
    del answers[7]
    now[0] = 5
    assert e.lookup(7).exe == "/usr/sbin/nginx"           # exited: still describes its past events
    answers[7] = ProcInfo(7, 999, "cat", "/usr/bin/cat", ("cat",), "root")
    now[0] = 10
    assert e.lookup(7).exe == "/usr/bin/cat"              # a new process with the same pid
    assert e.exes([7]) == {7: "/usr/bin/cat"}


def test_a_bug_in_one_batch_does_not_stop_the_archiver(store, monkeypatch):
    a = Archiver(store, host_in(store))
    real = a._writer.write
    first = threading.Event()

    def buggy(reads, exes, units=None, also=None):
        if not first.is_set():
            first.set()
            raise ValueError("a bug")
        return real(reads, exes, units, also)

    monkeypatch.setattr(a._writer, "write", buggy)
    a.submit(*batch(7))
    a.start()
    assert first.wait(10)
    a.submit(*batch(5, 100))
    assert a.stop() == 0
    assert (a.archived, a.dropped, a.errors) == (5, 7, 1) and archive.count(store.engine) == 5


# -- faults of the archive itself (real SQLite files) ------------------------------------------------

def _rows(url: str) -> int:
    with Store.open(url) as st:
        return archive.count(st.engine)


def test_counters_add_up_at_every_moment(store):
    """submitted == archived + dropped + queued + in flight + left in the spool, sampled while it runs."""
    a = Archiver(store, host_in(store), max_queued=2000)
    a.start()
    bad = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            c = a.counters()
            if c["submitted"] != c["archived"] + c["dropped"] + c["queued"] + c["in_flight"] + c["left_in_spool"]:
                bad.append(c)

    t = threading.Thread(target=sample)
    t.start()
    for k in range(300):
        a.submit(*batch(100, k * 100))
    a.stop()
    done.set()
    t.join()
    c = a.counters()
    assert not bad and c["submitted"] == 30_000 == c["archived"] + c["dropped"]
    assert c["dropped"] == c["dropped_by"]["queue_full"] and archive.count(store.engine) == c["archived"]


def test_a_lock_held_past_the_busy_timeout_is_retried_not_dropped(tmp_path, caplog):
    import sqlite3

    url = f"sqlite:///{tmp_path}/saga.db"
    st = Store.open(url, own=True, busy_timeout=0.1)
    a = Archiver(st, host_in(st))
    holder = sqlite3.connect(str(tmp_path / "saga.db"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                     # another writer, holding the lock for a while
    a.start()
    a.submit(*batch(50))
    wait = time.monotonic() + 10
    while a.retries < 2 and time.monotonic() < wait:
        time.sleep(0.05)
    assert a.retries >= 2 and "locked" in a.counters()["last_error"] and a.counters()["in_flight"] == 50
    holder.execute("ROLLBACK")
    holder.close()
    assert a.stop() == 0
    assert (a.archived, a.dropped) == (50, 0) and a.last_error is None
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a busy database"
    st.close()


def test_a_deleted_archive_is_noticed_and_a_new_one_started(tmp_path):
    url = f"sqlite:///{tmp_path}/saga.db"
    st = Store.open(url, own=True)
    made = []

    def new_archive():
        made.append(1)
        return host_in(st)

    a = Archiver(st, host_in(st), new_archive=new_archive)
    a.start()
    a.submit(*batch(10))
    wait = time.monotonic() + 10
    while a.archived < 10 and time.monotonic() < wait:
        time.sleep(0.02)
    for suffix in ("", "-wal", "-shm"):
        os.unlink(f"{tmp_path}/saga.db{suffix}")
    a.submit(*batch(7, 100))
    assert a.stop() == 0
    assert made and a.reopened == 1 and a.archived == 17 and a.dropped == 0
    assert _rows(url) == 7                                # the new archive has what came after
    assert os.stat(f"{tmp_path}/saga.db").st_mode & 0o777 == 0o600
    st.close()


def _corrupt(path: str) -> None:
    """Overwrite the second half of the file: event pages (the schema and saga_meta, made first, stay
    readable, so the archive opens and only a check or a write meets the damage)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(os.urandom(size - size // 2 // 4096 * 4096))


def test_a_corrupt_archive_is_set_aside_and_a_new_one_started(tmp_path):
    url = f"sqlite:///{tmp_path}/saga.db"
    st = Store.open(url, own=True)
    a = Archiver(st, host_in(st))
    a.start()
    for k in range(20):
        a.submit(*batch(500, k * 500))
    a.stop()
    st.close()
    _corrupt(f"{tmp_path}/saga.db")
    st = Store.open(url, own=True)
    b = Archiver(st, host_in(st), new_archive=lambda: host_in(st))
    b.start()                                             # quick_check at start finds the damage
    b.submit(*batch(30, 10**6))
    assert b.stop() == 0
    aside = b.counters()["set_aside"]
    assert len(aside) == 1 and os.path.exists(aside[0]) and aside[0].startswith(f"{tmp_path}/saga.db.corrupt-")
    assert _rows(url) == 30 and b.reopened == 1
    st.close()


def test_the_archive_and_its_side_files_are_private(tmp_path):
    url = f"sqlite:///{tmp_path}/saga.db"
    open(f"{tmp_path}/saga.db", "w").close()
    os.chmod(f"{tmp_path}/saga.db", 0o644)                 # an archive made by an older saga
    st = Store.open(url, own=True)
    a = Archiver(st, host_in(st))
    a.start()
    a.submit(*batch(10))
    a.stop()
    modes = {s: os.stat(f"{tmp_path}/saga.db{s}").st_mode & 0o777 for s in ("", "-wal", "-shm")}
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    st.close()
    gid = 65534 if os.geteuid() == 0 else os.getgid()     # root may give any group; others their own
    st = Store.open(url, own=True, gid=gid)
    st.close()
    s = os.stat(f"{tmp_path}/saga.db")
    assert (s.st_mode & 0o777, s.st_gid) == (0o640, gid)
