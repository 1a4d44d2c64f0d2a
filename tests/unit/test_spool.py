"""The spool and its crash state page: what a killed daemon leaves is replayed exactly once, or counted."""
from __future__ import annotations

import os

from stores import host_in

from saga import events
from saga.daemon.archiver import Archiver
from saga.daemon.spool import Spool, parse_cursor, whole_records
from saga.filters import EventFilter
from saga.store import archive, cursor, query


def read_of(n: int, start: int, paths: bool = False) -> tuple[bytes, list[tuple]]:
    """n records with distinct timestamps (markers); every third with a path when `paths`."""
    buf = b"".join(events.pack(dict(nr=2 if paths and i % 3 == 0 else 39, pid=7, ts_ns=10**18 + start + i,
                                    paths=(f"/etc/x{i}",) if paths and i % 3 == 0 else ()))
                   for i in range(n))
    return buf, events.parse(buf)


def crash(spool: Spool) -> None:
    """What SIGKILL leaves: the page as it is (not marked clean), the files as they are."""
    spool.close(clean=False)


def test_whole_records_stops_at_a_cut(tmp_path):
    buf, raws = read_of(10, 0, paths=True)
    assert whole_records(buf) == (len(buf), 10)
    cut = len(buf) - 5
    good, n = whole_records(buf[:cut])
    assert n == 9 and good == sum(r[events.SIZE] for r in raws[:9])


def test_a_crash_replays_what_was_spooled_and_a_clean_stop_reports_nothing(tmp_path):
    d = str(tmp_path / "spool")
    sp = Spool(d, 1 << 20)
    sp.recover(None)
    wheres = []
    for k in range(3):
        buf, raws = read_of(50, k * 50, paths=True)
        sp.in_hand(len(buf))
        wheres.append(sp.append(buf, len(raws)))
        sp.drained(len(raws))
    crash(sp)
    again = Spool(d, 1 << 20)
    prev = again.previous
    assert prev is not None and not prev.clean and prev.drained == 150
    replay = again.recover(None)
    assert replay.events == 150 and prev.recovered == 150 and prev.lost == prev.lost_at_most == 0
    # From a cursor after the second read: only the third.
    again.close()
    third = Spool(d, 1 << 20)
    assert third.previous.clean
    replay = third.recover(parse_cursor(third.cursor_text(wheres[1]), third.spool_id))
    assert replay.events == 50
    assert events.parse(b"".join(third.read(w) for w, _ in replay.pieces)) == read_of(50, 100, paths=True)[1]
    assert parse_cursor(f"{third.spool_id + 1}:1:0", third.spool_id) is None   # another spool's cursor
    third.close()


def test_a_write_cut_by_the_crash_keeps_its_whole_records_and_counts_the_rest(tmp_path):
    d = str(tmp_path / "spool")
    sp = Spool(d, 1 << 20)
    sp.recover(None)
    first, raws1 = read_of(20, 0)
    sp.in_hand(len(first))
    sp.append(first, len(raws1))
    second, raws2 = read_of(30, 100, paths=True)
    sp.in_hand(len(second), len(raws2))               # parsed, being written when the kill came:
    cut = sum(r[events.SIZE] for r in raws2[:12]) + 9  # 12 whole records and 9 bytes of the 13th
    os.write(sp._fd, second[:cut])
    crash(sp)
    again = Spool(d, 1 << 20)
    replay = again.recover(None)
    prev = again.previous
    assert replay.events == 20 + 12 and prev.lost == 30 - 12 and prev.truncated_bytes == 9
    again.close()


def test_a_read_not_yet_parsed_is_reported_as_at_most(tmp_path):
    d = str(tmp_path / "spool")
    sp = Spool(d, 1 << 20)
    sp.recover(None)
    sp.in_hand(events.FIXED * 40)
    crash(sp)
    again = Spool(d, 1 << 20)
    again.recover(None)
    assert (again.previous.lost, again.previous.lost_at_most) == (0, 40)
    again.close()


def test_a_full_spool_takes_nothing_more_and_archived_segments_go(tmp_path):
    d = str(tmp_path / "spool")
    buf, raws = read_of(100, 0)
    sp = Spool(d, max_bytes=3 * len(buf), segment_bytes=len(buf))
    sp.recover(None)
    wheres = [sp.append(buf, 100) for _ in range(3)]
    assert all(wheres) and sp.append(buf, 100) is None and sp.full_since is not None
    assert len([f for f in os.listdir(d) if f.endswith(".spool")]) == 3
    sp.archived_up_to(wheres[1])
    assert len([f for f in os.listdir(d) if f.endswith(".spool")]) == 1 and sp.size == len(buf)
    assert sp.append(buf, 100) is not None and sp.full_since is None
    sp.close()


def _spool_and_submit(a: Archiver, sp: Spool, read: tuple[bytes, list[tuple]]) -> None:
    buf, raws = read
    sp.in_hand(len(buf))
    where = sp.append(buf, len(raws))
    a.submit(buf, events.sizes(buf), where)
    sp.drained(len(raws))


def test_after_a_crash_the_archive_gets_each_event_exactly_once(store, tmp_path):
    """The cursor commits with the events: replay starts exactly where the archive stops."""
    h = host_in(store)
    d = str(tmp_path / "spool")
    sp = Spool(d, 1 << 30, segment_bytes=1 << 14)
    sp.recover(None)
    a = Archiver(store, h, spool=sp)
    a.start()
    reads = [read_of(40, k * 40, paths=True) for k in range(30)]
    for r in reads[:20]:
        _spool_and_submit(a, sp, r)
    assert a.stop() == 0 and a.archived == 800
    for r in reads[20:]:                                  # spooled, then the daemon is killed
        buf, raws = r
        sp.append(buf, len(raws))
    crash(sp)
    sp2 = Spool(d, 1 << 30)
    replay = sp2.recover(parse_cursor(cursor.read(store.engine, h), sp2.spool_id))
    assert replay.events == 400 and sp2.previous.recovered == 400
    b = Archiver(store, h, spool=sp2)
    for where, n in replay.pieces:
        b.submit_spooled(where, n)
    b.start()
    assert b.stop() == 0 and (b.archived, b.recovered) == (400, 400)
    with store.session() as s:
        ts = [e.raw[events.TS] for e in query.search(s, EventFilter())]
    assert sorted(ts) == sorted(r[events.TS] for _, raws in reads for r in raws)     # all, none twice
    sp2.close()
    assert not [f for f in os.listdir(d) if f.endswith(".spool") and os.path.getsize(os.path.join(d, f))]


def test_reads_beyond_the_memory_bound_wait_in_the_spool_only(store, tmp_path):
    h = host_in(store)
    sp = Spool(str(tmp_path / "spool"), 1 << 30)
    sp.recover(None)
    a = Archiver(store, h, spool=sp, max_queued=100)        # not started: everything waits
    for k in range(10):
        _spool_and_submit(a, sp, read_of(60, k * 60))
    c = a.counters()
    assert (c["queued"], c["queued_in_memory"], c["dropped"]) == (600, 60, 0)
    a.start()
    assert a.stop() == 0 and archive.count(store.engine) == 600
    sp.close()


def test_a_wholly_archived_segment_is_replaced_and_its_space_given_back(tmp_path):
    d = str(tmp_path / "spool")
    buf, raws = read_of(8192, 0)                          # 1 MiB
    sp = Spool(d, 1 << 30)
    sp.recover(None)
    where = sp.append(buf, len(raws))
    sp.archived_up_to(where)
    assert len([f for f in os.listdir(d) if f.endswith(".spool")]) == 1   # the drain is still writing it
    nxt = sp.append(buf, len(raws))
    assert nxt.seg == where.seg + 1 and sp.size == len(buf)
    assert [f for f in os.listdir(d) if f.endswith(".spool")] == [f"{nxt.seg:012d}.spool"]
    sp.close()
