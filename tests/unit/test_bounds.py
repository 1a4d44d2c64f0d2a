"""Disk bounds on real SQLite archives: the cap prunes the oldest events; low free space prunes, gives the
space back, suspends and resumes (the filesystem's free space is simulated here; tests/faults fills a real
tmpfs)."""
from __future__ import annotations

import os
import time

import pytest
from stores import host_in

from saga import events
from saga.config import StoreConfig, parse_size
from saga.daemon.archiver import Archiver
from saga.daemon.bounds import CAP_TARGET, DiskBounds, Measure
from saga.filters import EventFilter
from saga.store import Store, archive, query


def batch(n: int, start: int) -> tuple[bytes, list[tuple]]:
    buf = b"".join(events.pack(dict(nr=257, pid=start + i, ts_ns=10**18 + start + i, paths=(f"/p/{i % 50}",)))
                   for i in range(n))
    return buf, events.sizes(buf)


def _fill(store, writes: int, per: int = 2000, *, first: int = 0) -> Archiver:
    """An archiver that wrote `writes` batches of `per` events, numbered from `first`."""
    a = Archiver(store, host_in(store))
    a.start()
    for k in range(writes):
        done = k * per
        a.submit(*batch(per, first + done))
        deadline = time.monotonic() + 20
        while a.archived < done + per and time.monotonic() < deadline:   # one write per batch
            time.sleep(0.005)
    return a


def _oldest_ts(store) -> int:
    with store.session() as s:
        return min(e.raw[events.TS] for e in query.search(s, EventFilter()))


def test_sizes_read_like_auditd_settings():
    assert parse_size("512") == (512 << 20, False) and parse_size("2G") == (2 << 30, False)
    assert parse_size("10%") == (0.1, True) and parse_size("0") == (0, False)
    for bad in ("ten", "-1", "150%", "5X"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_the_cap_prunes_the_oldest_events(store, tmp_path):
    with Store.open(f"sqlite:///{tmp_path}/empty.db", own=True) as empty:    # tables and indexes, no events
        floor = DiskBounds(empty, StoreConfig()).measure().used
    a = _fill(store, 12)
    a.stop()
    b = DiskBounds(store, StoreConfig(max_size="0", space_left="0", admin_space_left="0"))
    before = b.measure()
    cap = (floor + before.used) // 2
    b.config = StoreConfig(max_size=str(cap // 1024) + "K", space_left="0", admin_space_left="0")
    total = archive.count(store.engine)
    b.check(a)
    after = b.measure()
    assert after.used <= cap and b.pruned_for_size > 0, (before, after, cap, b.pruned_for_size)
    assert archive.count(store.engine) == total - b.pruned_for_size
    assert _oldest_ts(store) == 10**18 + b.pruned_for_size        # the oldest went, in order
    assert "above store.max_size" in b.status()["last_action"]


def test_the_cap_prunes_down_to_its_target_not_far_below(store_url):
    """The oldest batches are often the biggest (merged ones): the cap removes the oldest that make up the
    bytes it needs, not a count of average batches (which removed 84% of these events for 33% of the
    bytes); on PostgreSQL it counts the live rows, not files that keep a deletion's room until VACUUM
    (which had it remove everything)."""
    with Store.open(store_url, own=True) as store:
        b = DiskBounds(store, StoreConfig(max_size="0", space_left="0", admin_space_left="0"))
        empty = b.measure().used
        _fill(store, 4, 20_000).stop()                        # 4 batches of 20,000 events ...
        big = (b.measure().used - empty) / 4
        a = _fill(store, 20, 1_000, first=80_000)             # ... then 20 of 1,000
        a.stop()
        before = b.measure()
        target = int(before.used - 1.5 * big)                 # 1.5 big batches too many
        cap = target / CAP_TARGET
        b.config = StoreConfig(max_size=f"{cap / 1024:.3f}K", space_left="0", admin_space_left="0")
        b.check(a)
        after = b.measure()
        # Two big batches go (one leaves the archive above the target), and nothing else: the archive ends
        # below the target by less than one of them.
        assert b.pruned_for_size == 40_000, (before, after, big, target, b.pruned_for_size)
        assert target - big <= after.used <= target, (before, after, big, target)
        assert archive.count(store.engine) == 60_000 and _oldest_ts(store) == 10**18 + 40_000
        b.check(a)                                            # measured again: nothing more goes
        assert b.pruned_for_size == 40_000


def test_low_free_space_prunes_gives_space_back_then_suspends_and_resumes(store, monkeypatch, caplog):
    a = _fill(store, 12)
    b = DiskBounds(store, StoreConfig(max_size="0", space_left="100M", admin_space_left="50M"))
    a.bounds = b
    real = b.measure
    taken = {"other": 0}                          # bytes something else took on the filesystem

    def measure() -> Measure:
        m = real()
        free = (200 << 20) - m.size - taken["other"]      # a 200 MiB filesystem holding the archive
        return Measure(m.size, m.used, 200 << 20, free)

    monkeypatch.setattr(b, "measure", measure)
    size_before = real().size
    taken["other"] = (200 << 20) - size_before - (90 << 20)   # 90 MiB free: below space_left
    b.check(a)
    assert b.pruned_for_space > 0 and real().size < size_before       # the file shrank (incremental vacuum)
    assert b.suspended is None
    taken["other"] = 200 << 20                                # the disk is full, whatever saga does
    b.check(a)
    assert b.suspended and "below store.admin_space_left" in b.suspended
    assert archive.count(store.engine) == 0                   # everything pruned, and still no room
    assert not a.submit(*batch(10, 10**6))
    assert a.counters()["dropped_by"]["suspended"] == 10
    taken["other"] = 0
    b.check(a)
    assert b.suspended is None and a.submit(*batch(10, 2 * 10**6))
    a.stop()
    assert "archiving resumed" in caplog.text and "archiving suspended" in caplog.text


def test_a_new_archive_gives_freed_space_back(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 2     # INCREMENTAL
    assert os.path.exists(store.path)


def test_one_write_takes_a_small_share_of_a_small_disk_and_nothing_of_a_big_one(store):
    from saga.daemon.bounds import WRITE_MIN
    b = DiskBounds(store, StoreConfig(url="x", max_size="25%"))
    assert b.write_limit() is None                                     # not measured yet: the first write measures
    b.last = Measure(size=0, used=0, fs_size=64 << 20, free=60 << 20)
    assert b.write_limit() == (16 << 20) // 32                          # 1/32 of the cap (25% of 64 MiB)
    b.last = Measure(size=0, used=0, fs_size=4 << 20, free=4 << 20)
    assert b.write_limit() == WRITE_MIN                                  # never less than this
    b.last = Measure(size=0, used=0, fs_size=2 << 40, free=1 << 40)
    assert b.write_limit() == (512 << 30) // 32                         # 16 GiB: a write (65,536 events) is far below
    b.last = Measure(size=0, used=0, fs_size=None, free=None)           # a server database: a share means nothing
    assert b.write_limit() is None
    b = DiskBounds(store, StoreConfig(url="x", max_size="512M"))
    b.last = Measure(size=0, used=0, fs_size=None, free=None)
    assert b.write_limit() == (512 << 20) // 32
