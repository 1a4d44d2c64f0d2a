from saga import events, render
from saga.daemon.window import EventWindow


def raws(n, start=0, nr=110):
    return events.parse(b"".join(events.pack(dict(nr=nr, pid=i, ts_ns=10**18 + i)) for i in range(start, start + n)))


def test_snapshot_is_every_retained_line_and_reads_at_any_offset():
    w = EventWindow(max_events=100, chunk_events=7)
    batch = raws(50)
    w.append(batch)
    snap = w.snapshot()
    expected = "".join(render.line(r) + "\n" for r in batch).encode()
    assert snap.size == len(expected)
    assert snap.read(0, snap.size + 10) == expected
    for off in (0, 1, 99, snap.size - 5):
        assert snap.read(off, 123) == expected[off:off + 123]
    assert snap.read(snap.size, 10) == b""


def test_snapshot_stays_frozen_while_the_window_moves_on():
    w = EventWindow(max_events=20, chunk_events=5)
    w.append(raws(10))
    snap = w.snapshot()
    before = snap.read(0, snap.size)
    w.append(raws(100, start=10))
    assert snap.read(0, snap.size) == before


def test_eviction_drops_whole_oldest_chunks_and_counts_them():
    w = EventWindow(max_events=20, chunk_events=5)
    w.append(raws(33))
    assert w.next_seq == 33
    assert len(w) <= 20 and len(w) >= 20 - 5
    assert w.dropped == 33 - len(w)
    pids = [r[events.PID] for r in w.iter_raws()]
    assert pids == list(range(33 - len(w), 33))


def test_raws_since_reports_losses_to_a_slow_reader():
    w = EventWindow(max_events=10, chunk_events=2)
    w.append(raws(4))
    got, nxt, lost = w.raws_since(0, 3)
    assert [r[events.PID] for r in got] == [0, 1, 2] and nxt == 3 and lost == 0
    w.append(raws(30, start=4))
    got, nxt, lost = w.raws_since(nxt, 1000)
    assert lost == w.first_seq - 3
    assert [r[events.PID] for r in got] == list(range(w.first_seq, 34))
    assert nxt == 34


def test_filtered_snapshot_and_idle_rendering():
    w = EventWindow(max_events=100, chunk_events=4)
    w.append(raws(10) + raws(3, start=10, nr=257))
    assert w.render_some(max_chunks=10) == 3  # sealed chunks only; the tail may still grow
    snap = w.filtered_snapshot(lambda r: r[events.NR] == 257)
    assert snap.read(0, snap.size).decode().count("openat(") == 3
