"""sagafs's views of the window (no mount): cooperative rendering, caching by window version."""
from __future__ import annotations

import trio

from saga import events, render
from saga.daemon.window import EventWindow
from saga.sagafs.views import RENDER_STEP, Views


def raws(n, start=0, nr=110):
    return events.parse(b"".join(events.pack({"nr": nr, "pid": 1000 + i % 3, "ts_ns": 10**18 + i})
                                 for i in range(start, start + n)))


def text(batch) -> bytes:
    return "".join(render.line(r) + "\n" for r in batch).encode()


def test_events_that_arrive_while_a_snapshot_renders_are_in_the_next_one():
    w = EventWindow(max_events=100_000, chunk_events=512)
    first = raws(3 * RENDER_STEP)
    w.append(first)
    views = Views(w)
    later = raws(5, start=len(first))

    async def main():
        async with trio.open_nursery() as nursery:
            async def arrive():
                await trio.lowlevel.checkpoint()      # while the snapshot yields between render steps
                w.append(later)
            nursery.start_soon(arrive)
            snap = await views.snapshot()
        assert snap.read(0, 10**7).startswith(text(first))
        again = await views.snapshot()
        assert again.read(0, 10**7) == text(first + later)
        assert await views.snapshot() is again           # nothing new: the same snapshot

    trio.run(main)


def test_filtered_views_and_pids_follow_the_window():
    w = EventWindow(max_events=100_000, chunk_events=7)
    batch = raws(40) + raws(10, start=40, nr=257)
    w.append(batch)
    views = Views(w)

    async def main():
        by_slot = await views.filtered("slot", 257)
        assert by_slot.read(0, 10**6) == text([r for r in batch if r[events.NR] == 257])
        by_pid = await views.filtered("pid", 1001)
        assert by_pid.read(0, 10**6) == text([r for r in batch if r[events.PID] == 1001])
        assert await views.pids() == {1000, 1001, 1002}
        assert await views.events_of(1002) == [r for r in batch if r[events.PID] == 1002]
        more = raws(3, start=50, nr=257)
        w.append(more)
        assert (await views.filtered("slot", 257)).read(0, 10**6) == text(
            [r for r in batch + more if r[events.NR] == 257])

    trio.run(main)
