"""Views of the daemon's event window for sagafs: what an open log file reads, and the processes in it.

Opening a log file takes a Snapshot of the window (saga.daemon.window):
the chunks there at the open, nothing rendered.  Reads render it a part
(a chunk, up to 4096 events) at a time, with a checkpoint between parts
(`fill`), so a reader gets its first bytes at once whatever the window's
size, and the drain loop and other readers keep running meanwhile.  The
per-syscall and per-process files select their events with each chunk's
index, built when a read first needs it.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence

import trio

from saga.daemon.window import Chunk, EventWindow, Snapshot, Text


class StaticText:
    """A small file's whole content, taken at open (stats, status, rules ...): the Snapshot interface."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.done = True

    def covers(self, offset: int, size: int) -> bool:
        return True

    def step(self) -> int:
        return 0

    def size(self) -> int:
        return len(self.content)

    def read(self, offset: int, size: int) -> Text:
        return memoryview(self.content)[offset:offset + size]


Content = Snapshot | StaticText


async def fill(content: Content, offset: int, size: int) -> Text:
    """Bytes [offset, offset + size) of an open file, rendering what they need a part at a time."""
    while not content.covers(offset, size):
        content.step()
        await trio.lowlevel.checkpoint()
    return content.read(offset, size)


def _selector(by: str, key: int):
    def select(chunk: Chunk, end: int) -> Sequence[int]:
        by_slot, by_pid = chunk.index()
        positions = (by_slot if by == "slot" else by_pid).get(key)
        if not positions:
            return ()
        return positions if positions[-1] < end else positions[:bisect.bisect_left(positions, end)]
    return select


class Views:
    def __init__(self, window: EventWindow) -> None:
        self.window = window
        self._pids: tuple[tuple[int, int], frozenset[int]] | None = None

    def snapshot(self) -> Snapshot:
        """The whole window (`log`), as it is now."""
        return self.window.snapshot()

    def filtered(self, by: str, key: int) -> Snapshot:
        """The events of one syscall slot (by="slot") or one pid (by="pid")."""
        return self.window.snapshot(_selector(by, key))

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
        """Every pid with events in the window (`procs/`); sealed chunks index once, then it is a union."""
        w = self.window
        version = (w.first_seq, w.next_seq)
        if self._pids is not None and self._pids[0] == version:
            return self._pids[1]
        found: set[int] = set()
        for chunk in list(w.chunks):
            found.update(chunk.index()[1])
            await trio.lowlevel.checkpoint()
        pids = frozenset(found)
        self._pids = (version, pids)
        return pids
