"""The window of recent events that /sagafs serves.

Events arrive in batches from the driver and are kept in chunks of up to
`chunk_events`; the oldest whole chunks are dropped once more than
`max_events` are retained.  Each event has a sequence number (its position
in everything ever appended), so a reader can say where it stopped and
learn how many events were dropped before it came back.

Text is rendered (saga.render) lazily and once per chunk: ingest stays
cheap, and the daemon renders sealed chunks when it is idle
(`render_some`).  A `Snapshot` freezes the window for one open file, so
`cat`, `tail`, `less` and `dd` see one coherent file: its size is known and
byte offsets are stable while it is open, like tracefs's `trace`.

Not thread-safe: the daemon's event loop owns it.
"""
from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable

from saga import render

Render = Callable[[tuple], str]


class Chunk:
    __slots__ = ("first_seq", "raws", "_text", "_text_events")

    def __init__(self, first_seq: int) -> None:
        self.first_seq = first_seq
        self.raws: list[tuple] = []
        self._text: list[bytes] = []    # rendered pieces, covering raws[:_text_events]
        self._text_events = 0

    def text(self, line: Render = render.line) -> bytes:
        """The rendered lines of every event in the chunk; renders only what is new."""
        if len(self.raws) > self._text_events:
            self._text.append("".join([line(r) + "\n" for r in self.raws[self._text_events:]]).encode(
                "utf-8", "surrogateescape"))
            self._text_events = len(self.raws)
        if len(self._text) > 1:
            self._text = [b"".join(self._text)]
        return self._text[0] if self._text else b""

    @property
    def rendered(self) -> bool:
        return self._text_events == len(self.raws)


class Snapshot:
    """A frozen, byte-addressable view of rendered events (one open file)."""

    def __init__(self, pieces: list[bytes], first_seq: int, next_seq: int) -> None:
        self.pieces = pieces
        self.starts = []
        pos = 0
        for p in pieces:
            self.starts.append(pos)
            pos += len(p)
        self.size = pos
        self.first_seq = first_seq
        self.next_seq = next_seq

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self.size or size <= 0:
            return b""
        i = bisect.bisect_right(self.starts, offset) - 1
        out = []
        want = size
        while want > 0 and i < len(self.pieces):
            piece = self.pieces[i]
            start = offset - self.starts[i]
            part = piece[start:start + want]
            out.append(part)
            want -= len(part)
            offset += len(part)
            i += 1
        return b"".join(out)


class EventWindow:
    def __init__(self, max_events: int = 1_000_000, chunk_events: int = 4096) -> None:
        if max_events < chunk_events:
            chunk_events = max(1, max_events)
        self.max_events = max_events
        self.chunk_events = chunk_events
        self.chunks: deque[Chunk] = deque([Chunk(0)])
        self.next_seq = 0        # sequence number the next event will get
        self.dropped = 0         # events that left the window

    # -- ingest ------------------------------------------------------------
    def append(self, raws: Iterable[tuple]) -> None:
        tail = self.chunks[-1]
        for raw in raws:
            if len(tail.raws) >= self.chunk_events:
                tail = Chunk(self.next_seq)
                self.chunks.append(tail)
            tail.raws.append(raw)
            self.next_seq += 1
        self._evict()

    def _evict(self) -> None:
        while len(self.chunks) > 1 and self.next_seq - self.chunks[0].first_seq > self.max_events:
            old = self.chunks.popleft()
            self.dropped += len(old.raws)

    @property
    def first_seq(self) -> int:
        return self.chunks[0].first_seq

    def __len__(self) -> int:
        return self.next_seq - self.first_seq

    # -- rendering ---------------------------------------------------------
    def render_some(self, max_chunks: int = 1) -> int:
        """Render up to max_chunks sealed chunks (idle work); returns how many were rendered."""
        done = 0
        for chunk in list(self.chunks)[:-1]:
            if done >= max_chunks:
                break
            if not chunk.rendered:
                chunk.text()
                done += 1
        return done

    # -- reading -----------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The whole window as one file."""
        pieces = [c.text() for c in self.chunks]
        return Snapshot([p for p in pieces if p], self.first_seq, self.next_seq)

    def filtered_snapshot(self, keep: Callable[[tuple], bool]) -> Snapshot:
        """Only the events `keep` accepts (per-syscall and per-process logs)."""
        text = "".join([render.line(r) + "\n" for c in self.chunks for r in c.raws if keep(r)])
        return Snapshot([text.encode("utf-8", "surrogateescape")] if text else [], self.first_seq, self.next_seq)

    def raws_since(self, seq: int, max_events: int) -> tuple[list[tuple], int, int]:
        """Events from sequence `seq` on: (events, next seq to ask for, events lost before seq)."""
        lost = 0
        if seq < self.first_seq:
            lost, seq = self.first_seq - seq, self.first_seq
        out: list[tuple] = []
        for chunk in self.chunks:
            end = chunk.first_seq + len(chunk.raws)
            if end <= seq:
                continue
            start = max(seq - chunk.first_seq, 0)
            out.extend(chunk.raws[start:start + max_events - len(out)])
            if len(out) >= max_events:
                break
        return out, seq + len(out), lost

    def last(self, n: int, keep: Callable[[tuple], bool] | None = None) -> list[tuple]:
        """The newest n events (that `keep` accepts), oldest first (`saga log -n`)."""
        out: list[tuple] = []
        if n <= 0:
            return out
        for chunk in reversed(self.chunks):
            part = chunk.raws if keep is None else [r for r in chunk.raws if keep(r)]
            out[:0] = part[-(n - len(out)):]
            if len(out) >= n:
                break
        return out

    def iter_raws(self) -> Iterable[tuple]:
        for chunk in self.chunks:
            yield from chunk.raws
