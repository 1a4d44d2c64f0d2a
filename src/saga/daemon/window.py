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

Readers that want part of the window (sagafs's `pipe`, per-syscall and
per-process logs) slice the rendered text instead of rendering again: a
chunk knows where each event's line ends (`line_ends`; a line never holds
a newline, docs/log-format.md) and which of its events belong to each
syscall slot and pid (`index`).  Both are built on first use and extended
as the chunk grows.

Once SLAB_CHUNKS neighbouring chunks are sealed and rendered, their texts
are copied once into one "slab" and the chunks keep views of it: a
snapshot then has a few large pieces, and most reads of it (1 MiB each
from `cat /sagafs/log`) are views of one piece rather than copies joined
from two.

Not thread-safe: the daemon's event loop owns it.
"""
from __future__ import annotations

import bisect
import re
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from saga import render
from saga.events import NR, PID

Render = Callable[[tuple], str]
Text = bytes | memoryview
SLAB_CHUNKS = 16
_NEWLINE = re.compile(b"\n")


class Chunk:
    __slots__ = ("first_seq", "raws", "_text", "_text_events", "_ends", "_by_slot", "_by_pid", "_indexed",
                 "slab")

    def __init__(self, first_seq: int) -> None:
        self.first_seq = first_seq
        self.raws: list[tuple] | tuple[tuple, ...] = []     # a tuple once the chunk is sealed
        self._text: list[Text] = []     # rendered pieces, covering raws[:_text_events]
        self._text_events = 0
        self.slab: tuple[bytes, int] | None = None  # (slab, offset of this chunk's text in it) once coalesced
        self._ends: array | None = None           # line_ends(), built on first use
        self._by_slot: dict[int, array] | None = None
        self._by_pid: dict[int, array] | None = None
        self._indexed = 0                         # events covered by _by_slot and _by_pid

    def render_events(self, max_events: int | None = None, line: Render = render.line) -> int:
        """Render up to max_events more events (None: all); returns how many were rendered."""
        start = self._text_events
        end = len(self.raws) if max_events is None else min(len(self.raws), start + max_events)
        if end > start:
            self._text.append("".join([line(r) + "\n" for r in self.raws[start:end]]).encode(
                "utf-8", "surrogateescape"))
            self._text_events = end
        return end - start

    def text(self, line: Render = render.line) -> Text:
        """The rendered lines of every event in the chunk; renders only what is new."""
        self.render_events(None, line)
        return self.rendered_text()

    def rendered_text(self) -> Text:
        """The lines of the first `rendered_events` events (renders nothing)."""
        if len(self._text) > 1:
            self._text = [b"".join(self._text)]
        return self._text[0] if self._text else b""

    @property
    def rendered_events(self) -> int:
        return self._text_events

    @property
    def rendered(self) -> bool:
        return self._text_events == len(self.raws)

    def line_ends(self) -> array:
        """ends[i] is the offset just past event i's line in rendered_text(), for the rendered events."""
        text = self.rendered_text()
        if self._ends is None:
            self._ends = array("I")
        ends = self._ends
        if len(ends) < self._text_events:   # text() only ever grows at its end: scan the new part
            ends.extend(m.end() for m in _NEWLINE.finditer(text, ends[-1] if ends else 0))
            if len(ends) != self._text_events:
                raise AssertionError("a rendered event spans more than one line")
        return ends

    def index(self) -> tuple[dict[int, array], dict[int, array]]:
        """Positions of the chunk's events by syscall slot and by pid, in order (extended as it grows)."""
        by_slot, by_pid = self._by_slot, self._by_pid
        if by_slot is None or by_pid is None:
            by_slot, by_pid = self._by_slot, self._by_pid = {}, {}
        raws = self.raws
        for i in range(self._indexed, len(raws)):
            raw = raws[i]
            slot, pid = raw[NR], raw[PID]
            (by_slot.get(slot) or by_slot.setdefault(slot, array("I"))).append(i)
            (by_pid.get(pid) or by_pid.setdefault(pid, array("I"))).append(i)
        self._indexed = len(raws)
        return by_slot, by_pid

    def select(self, positions: Sequence[int]) -> bytes:
        """The lines of the events at `positions` (ascending, all rendered), cut from the rendered text."""
        if not positions:
            return b""
        text = self.rendered_text()
        ends = self.line_ends()
        parts = []
        run_start = run_end = -1
        for i in positions:        # neighbouring events are copied as one run
            start = ends[i - 1] if i else 0
            if start != run_end:
                if run_end >= 0:
                    parts.append(text[run_start:run_end])
                run_start = start
            run_end = ends[i]
        parts.append(text[run_start:run_end])
        return b"".join(parts)


class Snapshot:
    """A frozen, byte-addressable view of rendered events (one open file)."""

    def __init__(self, pieces: Sequence[Text], first_seq: int, next_seq: int) -> None:
        self.pieces = pieces
        self.starts = []
        pos = 0
        for p in pieces:
            self.starts.append(pos)
            pos += len(p)
        self.size = pos
        self.first_seq = first_seq
        self.next_seq = next_seq

    def view(self, offset: int, size: int) -> Text:
        """Like read(), without copying when the range lies in one piece (the common case: a FUSE read)."""
        if 0 <= offset < self.size and size > 0:
            i = bisect.bisect_right(self.starts, offset) - 1
            start = offset - self.starts[i]
            piece = self.pieces[i]
            if start + size <= len(piece):
                return memoryview(piece)[start:start + size]
        return self.read(offset, size)

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
        self.readers_lost = 0    # events readers (pipe, log -f) missed because they left the window first
        self.slabs_made = 0      # slabs coalesced so far (a snapshot taken before one has more pieces)

    # -- ingest ------------------------------------------------------------
    def append(self, raws: Iterable[tuple]) -> None:
        tail = self.chunks[-1]
        pending = tail.raws
        assert isinstance(pending, list), "the newest chunk is never sealed"
        for raw in raws:
            if len(pending) >= self.chunk_events:
                # Sealed: a tuple of (untracked) tuples, which the garbage collector then leaves alone;
                # a million events in lists would cost every full collection ~100 ms of traversal.
                tail.raws = tuple(pending)
                tail = Chunk(self.next_seq)
                self.chunks.append(tail)
                pending = tail.raws = []
            pending.append(raw)
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

    def render_step(self, max_events: int = 256, sealed_only: bool = True) -> int:
        """Render up to max_events of the oldest chunk that needs it (all chunks, or only sealed ones), or
        else coalesce one slab; returns how many events that was (0: nothing to do).  Small steps keep the
        event loop responsive while a window is rendered."""
        chunks = self.chunks
        last = len(chunks) - 1 if sealed_only else len(chunks)
        for i in range(last):
            if not chunks[i].rendered:
                return chunks[i].render_events(max_events)
        return self._coalesce_one()

    def _coalesce_one(self) -> int:
        """Copy the texts of the oldest complete group of SLAB_CHUNKS chunks not yet coalesced into one slab."""
        span = self.chunk_events * SLAB_CHUNKS
        group: list[Chunk] = []
        for chunk in self.chunks:
            if chunk.slab is not None:
                continue
            if group and chunk.first_seq // span != group[0].first_seq // span:
                group = []
            if len(chunk.raws) < self.chunk_events or not chunk.rendered:
                return 0                                   # the tail, or not rendered yet: later
            group.append(chunk)
            if (chunk.first_seq + self.chunk_events) % span == 0:   # the group's last chunk
                break
        else:
            return 0
        texts = [c.rendered_text() for c in group]
        slab = b"".join(texts)
        view = memoryview(slab)
        offset = 0
        for chunk, text in zip(group, texts, strict=True):
            chunk._text = [view[offset:offset + len(text)]]
            chunk.slab = (slab, offset)
            offset += len(text)
        self.slabs_made += 1
        return sum(len(c.raws) for c in group)

    def _pieces(self, chunks: Iterable[Chunk]) -> list[Text]:
        """The chunks' rendered texts, neighbours within one slab joined into one view of it."""
        pieces: list[Text] = []
        run: list = []                       # [slab, start, end] of the slab run being built
        for chunk in chunks:
            text = chunk.rendered_text()
            if chunk.slab is not None:
                slab, start = chunk.slab
                if run and run[0] is slab and run[2] == start:
                    run[2] = start + len(text)
                    continue
                if run:
                    pieces.append(memoryview(run[0])[run[1]:run[2]])
                run = [slab, start, start + len(text)]
                continue
            if run:
                pieces.append(memoryview(run[0])[run[1]:run[2]])
                run = []
            if text:
                pieces.append(text)
        if run:
            pieces.append(memoryview(run[0])[run[1]:run[2]])
        return pieces

    # -- reading -----------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The whole window as one file."""
        for c in self.chunks:
            c.text()
        return Snapshot(self._pieces(self.chunks), self.first_seq, self.next_seq)

    def rendered_snapshot(self) -> Snapshot:
        """The window's rendered beginning as one file, rendering nothing: every chunk up to the first
        one not wholly rendered, and that one's rendered part (what readers get while events arrive
        faster than they can be rendered)."""
        upto = []
        next_seq = self.first_seq
        for c in self.chunks:
            upto.append(c)
            next_seq = c.first_seq + c.rendered_events
            if not c.rendered:
                break
        return Snapshot(self._pieces(upto), self.first_seq, next_seq)

    def filtered_snapshot(self, keep: Callable[[tuple], bool]) -> Snapshot:
        """Only the events `keep` accepts; their lines are cut from the rendered chunks."""
        pieces = [c.text() and c.select([i for i, r in enumerate(c.raws) if keep(r)]) for c in self.chunks]
        return Snapshot([p for p in pieces if p], self.first_seq, self.next_seq)

    def text_since(self, seq: int, max_bytes: int) -> tuple[bytes, int, int]:
        """Rendered lines from sequence `seq` on, at most max_bytes of them (but at least one line):
        (text, next seq to ask for, events lost before seq).  Followers (/sagafs/pipe) share the
        window's rendering instead of rendering each event again."""
        lost = 0
        if seq < self.first_seq:
            lost, seq = self.first_seq - seq, self.first_seq
            self.readers_lost += lost
        out: list[Text] = []
        room = max_bytes
        chunks = self.chunks
        i = len(chunks) - 1
        while i > 0 and chunks[i].first_seq > seq:   # readers are near the end: look from there
            i -= 1
        while i < len(chunks) and room > 0:
            chunk = chunks[i]
            first = seq - chunk.first_seq
            if first < len(chunk.raws):
                chunk.render_events(max(first + 1 + room // 64 - chunk.rendered_events, 0))   # what may fit, no more
                ends = chunk.line_ends()
                start = ends[first - 1] if first else 0
                last = bisect.bisect_right(ends, start + room, lo=first)   # rendered lines that fit whole
                if last == first and not out:
                    last = first + 1                                       # one line at least
                if last == first:
                    break
                out.append(chunk.rendered_text()[start:ends[last - 1]])
                room -= ends[last - 1] - start
                seq = chunk.first_seq + last
                if last < len(chunk.raws):
                    break
            i += 1
        return b"".join(out), seq, lost

    def raws_since(self, seq: int, max_events: int) -> tuple[list[tuple], int, int]:
        """Events from sequence `seq` on: (events, next seq to ask for, events lost before seq)."""
        lost = 0
        if seq < self.first_seq:
            lost, seq = self.first_seq - seq, self.first_seq
            self.readers_lost += lost
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
