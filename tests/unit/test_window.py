from saga import events, render
from saga.daemon.window import EventWindow


def buf_of(batch) -> bytes:
    """The records of parsed events again (the window holds bytes, as the driver delivers them)."""
    return b"".join(events.pack(events.Event.from_raw(r)._asdict()) for r in batch)



def data(n, start=0, nr=110) -> bytes:
    return b"".join(events.pack(dict(nr=nr, pid=i, ts_ns=10**18 + i)) for i in range(start, start + n))


def raws(n, start=0, nr=110):
    return events.parse(data(n, start, nr))


def test_snapshot_is_every_retained_line_and_reads_at_any_offset():
    w = EventWindow(max_events=100, chunk_events=7)
    batch = raws(50)
    w.append(buf_of(batch))
    snap = w.snapshot()
    expected = "".join(render.line(r) + "\n" for r in batch).encode()
    assert snap.read_all() == expected
    for off in (snap.size() - 5, 0, 1, 99):
        assert bytes(snap.read(off, 123)) == expected[off:off + 123]
    assert snap.read(snap.size(), 10) == b""


def test_a_snapshot_renders_nothing_until_read_and_then_only_what_is_read():
    w = EventWindow(max_events=1000, chunk_events=10)
    batch = raws(100)
    w.append(buf_of(batch))
    snap = w.snapshot()
    assert all(c.rendered_events == 0 for c in w.chunks)
    expected = "".join(render.line(r) + "\n" for r in batch).encode()
    while not snap.covers(0, 50):
        snap.step()
    assert bytes(snap.read(0, 50)) == expected[:50]
    assert [c.rendered_events for c in w.chunks] == [10] + [0] * 9


def test_snapshot_stays_frozen_while_the_window_moves_on():
    w = EventWindow(max_events=20, chunk_events=5)
    w.append(buf_of(raws(7)))
    snap = w.snapshot()
    w.append(buf_of(raws(100, start=7)))                 # its chunks leave the window; the snapshot keeps them
    assert snap.read_all() == "".join(render.line(r) + "\n" for r in raws(7)).encode()
    assert snap.next_seq == 7


def test_the_window_keeps_bytes_and_parses_only_what_is_read():
    w = EventWindow(max_events=10_000, chunk_events=100, parsed_budget=250)
    batch = raws(1000)
    w.append(buf_of(batch))
    assert [c.n for c in w.chunks] == [100] * 10 and all(c._raws is None for c in w.chunks)
    assert w.raws_since(950, 10)[0] == batch[950:960]
    assert [c._raws is not None for c in w.chunks] == [False] * 9 + [True]
    assert w.snapshot().read_all() == "".join(render.line(r) + "\n" for r in batch).encode()
    assert w.parsed.used <= 250 + 100 and sum(c._raws is not None for c in w.chunks) <= 3


def test_rendered_texts_stay_within_their_budget():
    w = EventWindow(max_events=10_000, chunk_events=100, text_budget=30_000)
    batch = raws(2000)
    w.append(buf_of(batch))
    snap = w.snapshot()
    assert snap.read_all() == "".join(render.line(r) + "\n" for r in batch).encode()
    kept = sum(len(c.rendered_text()) for c in w.chunks)
    assert kept == w.texts.used <= 30_000 + max(len(c.rendered_text()) for c in w.chunks)
    assert w.chunks[0].rendered_events == 0          # the oldest text was given up; read again, rendered again
    assert w.snapshot().read_all()[:100] == snap.read_all()[:100]


def test_eviction_drops_whole_oldest_chunks_and_counts_them():
    w = EventWindow(max_events=20, chunk_events=5)
    w.append(buf_of(raws(33)))
    assert w.next_seq == 33
    assert len(w) <= 20 and len(w) >= 20 - 5
    assert w.dropped == 33 - len(w)
    pids = [r[events.PID] for c in w.chunks for r in c.raws]
    assert pids == list(range(33 - len(w), 33))


def test_raws_since_reports_losses_to_a_slow_reader():
    w = EventWindow(max_events=10, chunk_events=2)
    w.append(buf_of(raws(4)))
    got, nxt, lost = w.raws_since(0, 3)
    assert [r[events.PID] for r in got] == [0, 1, 2] and nxt == 3 and lost == 0
    w.append(buf_of(raws(30, start=4)))
    got, nxt, lost = w.raws_since(nxt, 1000)
    assert lost == w.first_seq - 3
    assert [r[events.PID] for r in got] == list(range(w.first_seq, 34))
    assert nxt == 34


def test_filtered_snapshot():
    w = EventWindow(max_events=100, chunk_events=4)
    w.append(buf_of(raws(10) + raws(3, start=10, nr=257)))
    snap = w.snapshot(lambda c, end: [i for i, r in enumerate(c.raws[:end]) if r[events.NR] == 257])
    assert snap.read_all().decode().count("openat(") == 3


def lines_of(batch):
    return [(render.line(r) + "\n").encode() for r in batch]


def test_line_ends_index_and_select_cut_lines_from_the_rendered_text():
    w = EventWindow(max_events=100, chunk_events=8)
    batch = raws(5) + raws(3, start=5, nr=257)
    w.append(buf_of(batch))
    chunk = w.chunks[0]
    assert chunk.rendered_events == 0 and chunk.line_ends().tolist() == []   # nothing rendered, nothing scanned
    chunk.render_events(3)
    lines = lines_of(batch)
    assert chunk.line_ends().tolist() == [sum(map(len, lines[:i + 1])) for i in range(3)]
    chunk.text()
    by_slot, by_pid = chunk.index()
    assert list(by_slot[257]) == [5, 6, 7] and list(by_pid[2]) == [2]
    assert chunk.select([0, 1, 6]) == lines[0] + lines[1] + lines[6]
    w.append(buf_of(raws(1, start=8, nr=257)))         # the next chunk; indexes extend as chunks grow
    assert list(w.chunks[1].index()[0][257]) == [0]


def test_text_since_shares_the_rendering_and_counts_losses():
    w = EventWindow(max_events=20, chunk_events=4)
    batch = raws(10)
    w.append(buf_of(batch))
    lines = lines_of(batch)
    text, nxt, lost = w.text_since(0, 10**6)
    assert (text, nxt, lost) == (b"".join(lines), 10, 0)
    text, nxt, lost = w.text_since(3, len(lines[3]) + len(lines[4]) + 5)     # whole lines that fit
    assert (text, nxt) == (lines[3] + lines[4], 5)
    text, nxt, _ = w.text_since(3, 1)                                        # at least one line
    assert (text, nxt) == (lines[3], 4)
    assert w.text_since(10, 100) == (b"", 10, 0)
    w.append(buf_of(raws(30, start=10)))
    text, nxt, lost = w.text_since(5, 10**6)
    assert lost == w.first_seq - 5 and nxt == 40
    assert text == b"".join(lines_of((raws(10) + raws(30, start=10))[w.first_seq:]))


