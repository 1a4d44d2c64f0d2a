"""The window of recent events that /sagafs serves.

Events arrive in batches from the driver and are kept in chunks of up to
`chunk_events`; the oldest whole chunks are dropped once more than
`max_events` are retained.  Each event has a sequence number (its position
in everything ever appended), so a reader can say where it stopped and
learn how many events were dropped before it came back.

Nothing is rendered (saga.render) until someone reads it: ingest only
appends.  A chunk renders its lines when a reader needs them (in C from
its bytes, saga.fastrender, when the library is built; else in Python from
its parsed events: the same lines), and keeps
the text for the next reader (pipe readers and `cat`s share it); the texts
kept by all chunks are bounded by `text_budget` bytes, the least recently
rendered given up first (they are rendered again if read again).

A `Snapshot` is what one open log file reads: the chunks of the window at
the open, up to the event that was last then (all events, or those of one
syscall or process), rendered part by part as the reader gets to them.
Opening costs no rendering; a read renders only what it returns, so a
reader never waits for the whole window and the daemon's loop is never
held up for long.  It references the window's chunks (shared by every
snapshot and the window itself, nothing copied) and a few rendered parts.

Readers that want part of the window (sagafs's `pipe`, per-syscall and
per-process logs) slice the rendered text instead of rendering again: a
chunk knows where each event's line ends (`line_ends`; a line never holds
a newline, docs/log-format.md) and which of its events belong to each
syscall slot and pid (`index`).  Both are built on first use and extended
as the chunk grows.

Not thread-safe: the daemon's event loop owns it.
"""
from __future__ import annotations

import bisect
import functools
import re
import weakref
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

import numpy as np

from saga import events, fastrender, render
from saga.events import NR, PID

Render = Callable[[tuple], str]
Text = bytes | memoryview
Select = Callable[["Chunk", int], Sequence[int] | None]   # (chunk, events of it in view) -> positions, None: all
_NEWLINE = re.compile(b"\n")
TEXT_BUDGET = 128 << 20     # bytes: a default window of the recorded workload renders to ~110 MB
PARSED_BUDGET = 131_072     # events kept parsed (~70 MB of tuples); the window itself holds their bytes


class Budget:
    """What chunks keep that can be made again (rendered texts, parsed events): at most `limit` units in all;
    past it, the least recently charged chunks give theirs up (`forget`, returning the units freed).  It holds
    the chunks weakly: a chunk that left the window lives only as long as an open file reads it, and what it
    kept is given back with it."""

    def __init__(self, limit: int, forget: Callable[[Chunk], int]) -> None:
        self.limit = limit
        self.used = 0
        self._forget = forget
        self._chunks: OrderedDict[int, tuple[weakref.ref, list[int]]] = OrderedDict()   # id -> (chunk, [units])

    def charge(self, chunk: Chunk, units: int) -> None:
        self.used += units
        key = id(chunk)
        entry = self._chunks.get(key)
        if entry is None:
            entry = self._chunks[key] = (weakref.ref(chunk, functools.partial(self._gone, key)), [0])
        entry[1][0] += units
        self._chunks.move_to_end(key)
        while self.used > self.limit and len(self._chunks) > 1:
            _, (ref, _) = self._chunks.popitem(last=False)
            old = ref()
            if old is not None:
                self.used -= self._forget(old)

    def release(self, chunk: Chunk) -> None:
        """A chunk that left the window gives its share back (a snapshot still holding it makes it again)."""
        if self._chunks.pop(id(chunk), None) is not None:
            self.used -= self._forget(chunk)

    def _gone(self, key: int, _ref: weakref.ref) -> None:
        entry = self._chunks.pop(key, None)
        if entry is not None:
            self.used -= entry[1][0]


class Chunk:
    """Up to chunk_events events as the driver delivered them (the bytes of its reads, cut at record
    boundaries), parsed and rendered only when a reader needs them."""

    __slots__ = ("first_seq", "n", "bufs", "sizes", "texts", "parsed", "_raws", "_parsed_bufs", "_text",
                 "_text_events", "_text_bytes", "_ends", "_by_slot", "_by_pid", "_indexed", "__weakref__")

    def __init__(self, first_seq: int, texts: Budget | None = None, parsed: Budget | None = None) -> None:
        self.first_seq = first_seq
        self.n = 0                                 # events in the chunk
        self.bufs: list[bytes] = []                # the records, as read (one piece per read)
        self.sizes: list[np.ndarray] = []          # each piece's record sizes
        self.texts = texts
        self.parsed = parsed
        self._raws: list[tuple] | tuple[tuple, ...] | None = None   # parsed, on first use
        self._parsed_bufs = 0                      # pieces of bufs that _raws covers
        self._text: list[Text] = []     # rendered pieces, covering raws[:_text_events]
        self._text_events = 0
        self._text_bytes = 0
        self._ends: array | None = None           # line_ends(), built on first use
        self._by_slot: dict[int, array] | None = None
        self._by_pid: dict[int, array] | None = None
        self._indexed = 0                         # events covered by _by_slot and _by_pid

    def __len__(self) -> int:
        return self.n

    def add(self, buf: bytes, sizes: np.ndarray) -> None:
        self.bufs.append(buf)
        self.sizes.append(sizes)
        self.n += len(sizes)

    def seal(self) -> None:
        """The chunk is full: its parse, if any, becomes a tuple the garbage collector skips (a million events
        in lists would cost every full collection ~100 ms of traversal).  Its pieces of bytes stay as read:
        joining them copied every event once more (bench/daemon: 12% of the drain's CPU at 50,000/s)."""
        if isinstance(self._raws, list):
            self._raws = tuple(self._raws)

    @property
    def raws(self) -> Sequence[tuple]:
        """The chunk's events parsed (saga.events.parse), parsing what is new since the last time."""
        raws = self._raws
        if raws is None:
            raws = self._raws = []
            self._parsed_bufs = 0
        if self._parsed_bufs < len(self.bufs):
            new: list[tuple] = []
            for buf in self.bufs[self._parsed_bufs:]:
                new.extend(events.parse(buf))
            self._parsed_bufs = len(self.bufs)
            if isinstance(raws, tuple):
                raws = self._raws = list(raws)
            raws.extend(new)
            if self.parsed is not None:
                self.parsed.charge(self, len(new))
        return raws

    def forget_raws(self) -> int:
        """Give the parsed events up (parsed again if needed); returns how many they were."""
        freed = len(self._raws) if self._raws is not None else 0
        self._raws, self._parsed_bufs = None, 0
        return freed

    def render_events(self, max_events: int | None = None, line: Render = render.line) -> int:
        """Render up to max_events more events (None: all); returns how many were rendered."""
        start = self._text_events
        end = self.n if max_events is None else min(self.n, start + max_events)
        if end > start:
            fast = fastrender.shared() if line is render.line else None
            text = self._lines_in_c(fast, start, end) if fast is not None else render_lines(self.raws[start:end], line)
            self._text.append(text)
            self._text_events = end
            self._text_bytes += len(text)
            if self.texts is not None:
                self.texts.charge(self, len(text))
        return end - start

    def _lines_in_c(self, fast: fastrender.Renderer, start: int, end: int) -> bytes:
        """The lines of events [start, end) rendered from the bytes (saga.fastrender): nothing is parsed."""
        out = []
        seen = 0
        for buf, sizes in zip(self.bufs, self.sizes, strict=True):
            n = len(sizes)
            if start < seen + n:
                take = min(end, seen + n) - start
                out.append(fast.lines(buf, int(sizes[:start - seen].sum()), take))
                start += take
                if start >= end:
                    break
            seen += n
        return out[0] if len(out) == 1 else b"".join(out)

    def forget_text(self) -> int:
        """Give the rendered text up (it is rendered again if needed); returns its bytes."""
        freed = self._text_bytes
        self._text, self._text_events, self._text_bytes, self._ends = [], 0, 0, None
        return freed

    def text(self, line: Render = render.line) -> Text:
        """The rendered lines of every event in the chunk; renders only what is new."""
        self.render_events(None, line)
        return self.rendered_text()

    def rendered_text(self) -> Text:
        """The lines of the first `rendered_events` events (renders nothing)."""
        if len(self._text) > 1:
            self._text = [b"".join(self._text)]
        return self._text[0] if self._text else b""

    def text_upto(self, end: int) -> Text:
        """The lines of events [0, end), rendering what is missing (and no more)."""
        if end <= 0:
            return b""
        if self._text_events < end:
            self.render_events(end - self._text_events)
        if end == self._text_events:
            return self.rendered_text()
        return memoryview(self.rendered_text())[:self.line_ends()[end - 1]]

    def lines_at(self, positions: Sequence[int]) -> bytes:
        """The lines of the events at `positions` (ascending): cut from the text when it is rendered that far,
        else rendered alone (a few events of a big chunk are not worth rendering the chunk for)."""
        if not positions:
            return b""
        if self._text_events > positions[-1]:
            return self.select(positions)
        raws = self.raws
        return render_lines([raws[i] for i in positions])

    @property
    def rendered_events(self) -> int:
        return self._text_events

    @property
    def rendered(self) -> bool:
        return self._text_events == self.n

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
        if self._by_slot is None or self._by_pid is None:
            self._by_slot, self._by_pid = {}, {}
        by_slot, by_pid = self._by_slot, self._by_pid
        if self._indexed == self.n:
            return by_slot, by_pid
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


def render_lines(raws: Sequence[tuple], line: Render = render.line) -> bytes:
    return "".join([line(r) + "\n" for r in raws]).encode("utf-8", "surrogateescape")


class Snapshot:
    """One open log file: the events of `parts` (chunk, events of it) that `select` keeps (None: all), as a
    file rendered part by part while it is read.  Byte offsets are stable: part i starts where the parts
    before it end, and the lengths of the parts rendered so far are kept (their texts, only the last few)."""

    KEEP_PARTS = 4

    def __init__(self, parts: list[tuple[Chunk, int]], first_seq: int, next_seq: int,
                 select: Select | None = None) -> None:
        self.parts = parts
        self.first_seq = first_seq
        self.next_seq = next_seq
        self.select = select
        self.starts = [0]          # starts[i]: where part i begins; starts[-1]: the end of the rendered parts
        self._texts: OrderedDict[int, Text] = OrderedDict()

    @property
    def done(self) -> bool:
        return len(self.starts) > len(self.parts)

    @property
    def rendered_bytes(self) -> int:
        return self.starts[-1]

    def size(self) -> int:
        """The whole file's size (renders what is missing)."""
        while not self.done:
            self.step()
        return self.starts[-1]

    def step(self) -> int:
        """Render the next part; returns its length."""
        i = len(self.starts) - 1
        text = self._render(i)
        self.starts.append(self.starts[-1] + len(text))
        return len(text)

    def covers(self, offset: int, size: int) -> bool:
        """Can read(offset, size) answer without rendering more parts?"""
        return self.done or self.starts[-1] >= offset + size

    def _render(self, i: int) -> Text:
        text = self._texts.get(i)
        if text is None:
            chunk, end = self.parts[i]
            positions = self.select(chunk, end) if self.select is not None else None
            text = chunk.text_upto(end) if positions is None else chunk.lines_at(positions)
            self._texts[i] = text
            while len(self._texts) > self.KEEP_PARTS:
                self._texts.popitem(last=False)
        else:
            self._texts.move_to_end(i)
        return text

    def read(self, offset: int, size: int) -> Text:
        """Bytes [offset, offset + size) of what is rendered (call step() until covers() first); a view when
        they lie in one part."""
        end = min(offset + size, self.starts[-1])
        if offset >= end:
            return b""
        i = bisect.bisect_right(self.starts, offset) - 1
        out: list[Text] = []
        while offset < end:
            text = self._render(i)
            start = offset - self.starts[i]
            piece = memoryview(text)[start:start + end - offset]
            out.append(piece)
            offset += len(piece)
            i += 1
        return out[0] if len(out) == 1 else b"".join(out)

    def read_all(self) -> bytes:
        """The whole file (tests, small views)."""
        return bytes(self.read(0, self.size()))


class EventWindow:
    def __init__(self, max_events: int = 1_000_000, chunk_events: int = 4096,
                 text_budget: int = TEXT_BUDGET, parsed_budget: int = PARSED_BUDGET) -> None:
        if max_events < chunk_events:
            chunk_events = max(1, max_events)
        self.max_events = max_events
        self.chunk_events = chunk_events
        self.texts = Budget(text_budget, Chunk.forget_text)
        self.parsed = Budget(parsed_budget, Chunk.forget_raws)
        self.chunks: deque[Chunk] = deque([self._chunk(0)])
        self.next_seq = 0        # sequence number the next event will get
        self.dropped = 0         # events that left the window
        self.readers_lost = 0    # events readers (pipe, log -f) missed because they left the window first

    def _chunk(self, first_seq: int) -> Chunk:
        return Chunk(first_seq, self.texts, self.parsed)

    # -- ingest ------------------------------------------------------------
    def append(self, buf: bytes, sizes: np.ndarray | None = None) -> None:
        """A read's records (sizes: saga.events.sizes of them, computed when not given).  Nothing is
        parsed: a chunk parses its bytes when a reader first needs its events."""
        if sizes is None:
            sizes = events.sizes(buf)
        tail = self.chunks[-1]
        at = 0                   # where the rest of buf starts (each piece is copied once, the rest never)
        while len(sizes):
            room = self.chunk_events - tail.n
            if room <= 0:
                tail.seal()
                tail = self._chunk(self.next_seq)
                self.chunks.append(tail)
                room = self.chunk_events
            if len(sizes) <= room:
                tail.add(buf[at:] if at else buf, sizes)
                self.next_seq += len(sizes)
                break
            cut = at + int(sizes[:room].sum())
            tail.add(buf[at:cut], sizes[:room])
            self.next_seq += room
            at, sizes = cut, sizes[room:]
        self._evict()

    def _evict(self) -> None:
        while len(self.chunks) > 1 and self.next_seq - self.chunks[0].first_seq > self.max_events:
            old = self.chunks.popleft()
            self.dropped += old.n
            self.texts.release(old)
            self.parsed.release(old)

    @property
    def first_seq(self) -> int:
        return self.chunks[0].first_seq

    def __len__(self) -> int:
        return self.next_seq - self.first_seq

    # -- reading -----------------------------------------------------------
    def snapshot(self, select: Select | None = None) -> Snapshot:
        """The window as it is now, as one file (of the events `select` keeps); renders nothing."""
        parts = [(c, c.n) for c in self.chunks if c.n]
        return Snapshot(parts, self.first_seq, self.next_seq, select)

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
            if first < chunk.n:
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
                if last < chunk.n:
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
            end = chunk.first_seq + chunk.n
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
            if not chunk.n:
                continue
            part = chunk.raws if keep is None else [r for r in chunk.raws if keep(r)]
            out[:0] = part[-(n - len(out)):]
            if len(out) >= n:
                break
        return out
