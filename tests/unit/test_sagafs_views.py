"""sagafs's views of the window (no mount): snapshots taken at open, rendered a part at a time as read."""
from __future__ import annotations

import trio

from saga import events, render
from saga.daemon.window import EventWindow
from saga.sagafs.views import Views, fill


def buf_of(batch) -> bytes:
    """The records of parsed events again (the window holds bytes, as the driver delivers them)."""
    return b"".join(events.pack(events.Event.from_raw(r)._asdict()) for r in batch)



def raws(n, start=0, nr=110):
    return events.parse(b"".join(events.pack({"nr": nr, "pid": 1000 + i % 3, "ts_ns": 10**18 + i})
                                 for i in range(start, start + n)))


def text(batch) -> bytes:
    return "".join(render.line(r) + "\n" for r in batch).encode()


def test_a_read_renders_a_part_at_a_time_and_lets_the_loop_run():
    w = EventWindow(max_events=100_000, chunk_events=512)
    first = raws(3000)
    w.append(buf_of(first))
    views = Views(w)
    later = raws(5, start=len(first))
    arrived = []

    async def main():
        snap = views.snapshot()
        async with trio.open_nursery() as nursery:
            async def arrive():
                await trio.lowlevel.checkpoint()      # runs while the read yields between parts
                w.append(buf_of(later))
                arrived.append(w.chunks[-1].rendered_events)
            nursery.start_soon(arrive)
            got = bytes(await fill(snap, 0, 10**7))
        assert arrived and got == text(first)          # the snapshot is the window at its open
        assert bytes(await fill(views.snapshot(), 0, 10**7)) == text(first + later)

    trio.run(main)


def test_filtered_views_and_pids_follow_the_window():
    w = EventWindow(max_events=100_000, chunk_events=7)
    batch = raws(40) + raws(10, start=40, nr=257)
    w.append(buf_of(batch))
    views = Views(w)

    async def main():
        assert views.filtered("slot", 257).read_all() == text([r for r in batch if r[events.NR] == 257])
        assert views.filtered("pid", 1001).read_all() == text([r for r in batch if r[events.PID] == 1001])
        assert await views.pids() == {1000, 1001, 1002}
        assert await views.events_of(1002) == [r for r in batch if r[events.PID] == 1002]
        held = views.filtered("slot", 257)
        more = raws(3, start=50, nr=257)
        w.append(buf_of(more))
        assert views.filtered("slot", 257).read_all() == text([r for r in batch + more if r[events.NR] == 257])
        assert held.read_all() == text([r for r in batch if r[events.NR] == 257])   # taken before

    trio.run(main)
