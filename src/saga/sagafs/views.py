"""Views of the daemon's event window for sagafs, built without holding up the event loop.

Rendering a whole window (a million events) takes seconds; the daemon
renders sealed chunks when idle, and what is still missing is rendered
here one chunk at a time, with a checkpoint after each, so the drain loop
and other readers keep running meanwhile.  Results are cached by window
version (first and next sequence number, and slabs made: a snapshot taken
before a slab was made has more pieces to join): `stat` then `open`, or
many readers at once, share one snapshot.
"""
from __future__ import annotations

import bisect
from collections import OrderedDict

import trio

from saga.daemon.window import EventWindow, Snapshot

_CACHE_ENTRIES = 64
RENDER_STEP = 256           # events rendered between checkpoints


class Views:
    def __init__(self, window: EventWindow) -> None:
        self.window = window
        self._cache: OrderedDict[tuple, tuple[tuple[int, int, int], object]] = OrderedDict()

    def _version(self) -> tuple[int, int, int]:
        w = self.window
        return w.first_seq, w.next_seq, w.slabs_made

    def _cached(self, key: tuple):
        hit = self._cache.get(key)
        if hit is None or hit[0] != self._version():
            return None
        self._cache.move_to_end(key)
        return hit[1]

    def _keep(self, key: tuple, version: tuple[int, int, int], value) -> None:
        self._cache[key] = (version, value)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)

    async def _render_until(self, chunk, target: int) -> None:
        """Render `chunk` up to its event `target`, a few ms at a time."""
        while chunk.rendered_events < target:
            chunk.render_events(min(RENDER_STEP, target - chunk.rendered_events))
            await trio.lowlevel.checkpoint()

    async def snapshot(self) -> Snapshot:
        """The whole window (`log`): every event there at the call, and any rendered since."""
        snap = self._cached(("log",))
        if snap is None:
            version = self._version()
            end = version[1]
            for chunk in list(self.window.chunks):
                await self._render_until(chunk, min(len(chunk.raws), end - chunk.first_seq))
            # Events keep arriving while we render: the snapshot is what is rendered, not all there is
            # (rendering everything here could never end when events come faster than they render).
            # It is kept under the version it was asked for: one holding events that came since would
            # otherwise stand for them when they are not in it.
            snap = self.window.rendered_snapshot()
            self._keep(("log",), version, snap)
        return snap

    async def filtered(self, by: str, key: int) -> Snapshot:
        """The events of one syscall slot (by="slot") or one pid (by="pid")."""
        snap = self._cached((by, key))
        if snap is not None:
            return snap
        version = self._version()
        first, end, _ = version
        pieces = []
        for chunk in list(self.window.chunks):
            n = min(len(chunk.raws), end - chunk.first_seq)    # the tail may grow while we yield
            await self._render_until(chunk, n)
            by_slot, by_pid = chunk.index()
            positions = (by_slot if by == "slot" else by_pid).get(key)
            if positions:
                piece = chunk.select(positions[:bisect.bisect_left(positions, n)])
                if piece:
                    pieces.append(piece)
            await trio.lowlevel.checkpoint()
        snap = Snapshot(pieces, first, end)
        self._keep((by, key), version, snap)
        return snap

    async def events_of(self, pid: int) -> list[tuple]:
        """The raw events of one pid, oldest first."""
        out: list[tuple] = []
        end = self.window.next_seq
        for chunk in list(self.window.chunks):
            positions = chunk.index()[1].get(pid)
            if positions:
                raws = chunk.raws
                out.extend(raws[i] for i in positions if chunk.first_seq + i < end)
            await trio.lowlevel.checkpoint()
        return out

    async def pids(self) -> frozenset[int]:
        """Every pid with events in the window (`procs/`)."""
        pids = self._cached(("pids",))
        if pids is None:
            version = self._version()
            found: set[int] = set()
            for chunk in list(self.window.chunks):
                found.update(chunk.index()[1])
                await trio.lowlevel.checkpoint()
            pids = frozenset(found)
            self._keep(("pids",), version, pids)
        return pids
