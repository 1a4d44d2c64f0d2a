"""The spool: drained events on disk until the archive has them, so a daemon crash loses none (docs/daemon.md).

Every read from the driver is appended, as read, to the current segment
file of `daemon.spool_dir` before it is handed to the archiver; the
archiver records how far the spool is archived (the cursor) in the same
transaction as the events, in the archive's saga_meta table, so after a
crash the daemon replays exactly what the archive lacks: nothing twice,
nothing missing.  Segments wholly archived are deleted at once; while the
database keeps up they live in the page cache for well under a second and
are never written to disk.  The spool is bounded (`daemon.spool_max_bytes`):
when it is full, new reads are not spooled (the archiver queues or drops
them, counted).

A one-page file, `state`, memory-mapped and updated with single stores,
says what a crash would leave behind: the segment and its length of whole
writes, the read in hand (bytes read from the driver and not yet spooled),
and this run's totals.  Stores to a shared mapping survive the process
(SIGKILL included); the next start reads them, replays the spool and
reports what the crash lost.  The one loss it cannot count exactly: a read
the driver has handed over and the daemon has not yet parsed (a few
microseconds per read); it is reported as "at most N events".
"""
from __future__ import annotations

import logging
import mmap
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

from saga import events
from saga.drivers.ebpf.shared import Words

log = logging.getLogger("saga.daemon.spool")

SEGMENT_BYTES = 16 << 20
ROLL_BYTES = 1 << 20        # a segment the archive has wholly taken is replaced (and deleted) once this big
_SUFFIX = ".spool"
_MAGIC = int.from_bytes(b"SAGASPL1", "little")
_PAGE = 4096
# State page: byte offsets of its u64 words.
_W_MAGIC, _W_PID, _W_STARTED, _W_CLEAN, _W_SPOOL_ID, _W_SEG, _W_END = 0, 8, 16, 24, 32, 40, 48
_W_HAND_BYTES, _W_HAND_EVENTS = 56, 64
_W_DRAINED, _W_SPOOLED, _W_ARCHIVED, _W_DROPPED, _W_UNSPOOLED, _W_UNSPOOLED_DONE = 72, 80, 88, 96, 104, 112
READ_CHUNK = 4 << 20        # replayed segments are handed to the archiver in pieces of at most this
CURSOR_EVERY_S = 1.0        # the spool's own copy of the cursor is written at most this often


@dataclass(frozen=True)
class Location:
    """Where a read was spooled: bytes [start, end) of segment `seg`."""

    seg: int
    start: int
    end: int


@dataclass
class PreviousRun:
    """What the state page says about the run before this one."""

    pid: int
    started_ns: int
    clean: bool                 # it stopped in order (else: killed or crashed)
    drained: int
    archived: int
    dropped: int
    unspooled: int = 0          # events it queued for the archive without spooling them
    unspooled_done: int = 0     # of those, archived or dropped (counted)
    lost: int = 0               # events read from the driver the crash lost (counted here, nowhere else)
    lost_at_most: int = 0       # the crash hit a read not yet parsed, or a write maybe committed: up to this many more
    recovered: int = 0          # spooled events not yet archived, replayed now
    truncated_bytes: int = 0    # a partial write cut off at the end of the last segment

    def as_dict(self) -> dict:
        return {"pid": self.pid, "started_ns": self.started_ns, "clean_stop": self.clean,
                "drained": self.drained, "archived": self.archived, "dropped": self.dropped,
                "lost": self.lost, "lost_at_most": self.lost_at_most, "recovered": self.recovered}


@dataclass
class Replay:
    """Spooled reads the archive does not have yet (from the cursor on)."""

    pieces: list[tuple[Location, int]] = field(default_factory=list)   # (where, events)

    @property
    def events(self) -> int:
        return sum(n for _, n in self.pieces)


def parse_cursor(text: str | None, spool_id: int) -> tuple[int, int] | None:
    """(segment, offset) from a cursor "SPOOLID:SEG:END", None if it is another spool's or malformed."""
    if not text:
        return None
    try:
        sid, seg, end = (int(x) for x in text.split(":"))
    except ValueError:
        return None
    return (seg, end) if sid == spool_id else None


def whole_records(data: bytes | memoryview) -> tuple[int, int]:
    """(bytes, records) of the whole, well-formed records at the start of data."""
    off = n = 0
    end = len(data)
    while end - off >= events.FIXED:
        size = data[off] | data[off + 1] << 8
        if size < events.FIXED or size & 7 or off + size > end:
            break
        off += size
        n += 1
    return off, n


class Spool:
    """The spool directory of one running daemon.  The drain loop appends; the archiver reads and commits."""

    def __init__(self, directory: str, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = directory
        self.max_bytes = max_bytes      # 0: nothing is spooled; the state page still counts for crash reports
        self.segment_bytes = segment_bytes
        self.previous: PreviousRun | None = None
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}          # segment -> bytes in it (whole writes)
        self._fd = -1
        self._seg = 0
        self._end = 0
        self.full_since: float | None = None      # monotonic time the spool became full (None: it is not)
        self.paused = False                       # the disk bounds stopped spooling (the disk is nearly full)
        self.reserve = 0                          # bytes to keep free on its filesystem (the bounds: space_left)
        self.write_errors = 0
        self.last_error: str | None = None
        self._cursor_written = float("-inf")
        self._archived_through: tuple[int, int] = (-1, 0)   # (segment, end) the archive has up to
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        self._map, self._page = self._map_state()
        self._taken = False
        self.spool_id = self._read_previous()

    # -- the state page ------------------------------------------------------------------------
    def _map_state(self) -> tuple[mmap.mmap, Words]:
        path = os.path.join(self.dir, "state")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < _PAGE:
                os.ftruncate(fd, _PAGE)
            m = mmap.mmap(fd, _PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        return m, Words(m)

    def _read_previous(self) -> int:
        """Read what the previous run left in the state page; returns the spool's id (a new one for a new page)."""
        p = self._page
        if p.u64(_W_MAGIC) == _MAGIC:
            spool_id = p.u64(_W_SPOOL_ID)
            self.previous = PreviousRun(pid=p.u64(_W_PID), started_ns=p.u64(_W_STARTED), clean=bool(p.u64(_W_CLEAN)),
                                        drained=p.u64(_W_DRAINED), archived=p.u64(_W_ARCHIVED),
                                        dropped=p.u64(_W_DROPPED), unspooled=p.u64(_W_UNSPOOLED),
                                        unspooled_done=p.u64(_W_UNSPOOLED_DONE))
            self._prev_seg, self._prev_end = p.u64(_W_SEG), p.u64(_W_END)
            self._prev_hand = (p.u64(_W_HAND_BYTES), p.u64(_W_HAND_EVENTS))
        else:
            spool_id = secrets.randbits(63) or 1
            self._prev_seg = self._prev_end = 0
            self._prev_hand = (0, 0)
        return spool_id

    def _take_over(self) -> None:
        """Make the state page this run's (once what the previous run left has been dealt with)."""
        p = self._page
        p.set_u64(_W_MAGIC, 0)
        for off in range(8, _PAGE, 8):
            p.set_u64(off, 0)
        p.set_u64(_W_SPOOL_ID, self.spool_id)
        p.set_u64(_W_PID, os.getpid())
        p.set_u64(_W_STARTED, time.time_ns())
        p.set_u64(_W_SEG, self._seg)
        p.set_u64(_W_MAGIC, _MAGIC)
        self._taken = True

    # This run's totals in the state page (the report after a crash).  Each word has one writer thread.
    def _add(self, word: int, n: int) -> None:
        if n:
            self._page.set_u64(word, self._page.u64(word) + n)

    def drained(self, n: int, dropped: int = 0, unspooled: int = 0) -> None:
        """Drain loop: n events handed on; of them, `dropped` by the archive queue and `unspooled` queued
        for the archive in memory only."""
        self._add(_W_DRAINED, n)
        self._add(_W_DROPPED, dropped)
        self._add(_W_UNSPOOLED, unspooled)

    def archived(self, n: int, unspooled: int = 0) -> None:
        """Archiver: n events archived, or given up (counted); `unspooled` of them were queued in memory only."""
        self._add(_W_ARCHIVED, n)
        self._add(_W_UNSPOOLED_DONE, unspooled)

    # -- start: what the archive lacks -----------------------------------------------------------
    def _segments(self) -> list[int]:
        found = []
        for name in os.listdir(self.dir):
            if name.endswith(_SUFFIX) and name[:-len(_SUFFIX)].isdigit():
                found.append(int(name[:-len(_SUFFIX)]))
        return sorted(found)

    def _path(self, seg: int) -> str:
        return os.path.join(self.dir, f"{seg:012d}{_SUFFIX}")

    def recover(self, cursor: tuple[int, int] | None) -> Replay:
        """Find the spooled reads after `cursor` (the archive's, or this spool's own record of it); cut
        off a partial write; count what the previous run lost.  Called once, before the first append."""
        cursor = max(filter(None, (cursor, self._file_cursor())), default=None)
        replay = Replay()
        segs = self._segments()
        prev = self.previous
        hand_bytes, hand_events = self._prev_hand
        salvaged = 0
        for seg in segs:
            path = self._path(seg)
            size = valid = os.path.getsize(path)
            if prev is not None and seg == self._prev_seg and size > self._prev_end:
                # The crash hit a write: keep its whole records (they were in hand), cut the rest.
                with open(path, "rb") as f:
                    f.seek(self._prev_end)
                    tail = f.read()
                good, salvaged = whole_records(tail)
                valid = self._prev_end + good
                if valid < size:
                    os.truncate(path, valid)
                    prev.truncated_bytes = size - valid
            if cursor is not None and (seg < cursor[0] or (seg == cursor[0] and valid <= cursor[1])):
                os.unlink(path)        # archived already
                continue
            start = cursor[1] if cursor is not None and seg == cursor[0] else 0
            replay.pieces.extend(self._pieces(seg, start, valid))
            self._sizes[seg] = valid
        if prev is not None and not prev.clean:
            if hand_events:
                prev.lost = max(hand_events - salvaged, 0)
            elif hand_bytes:
                prev.lost_at_most = hand_bytes // events.FIXED
            # Queued in memory only: lost, except any of the last batch that committed just before the
            # crash (the page is updated after the commit).
            prev.lost_at_most += max(prev.unspooled - prev.unspooled_done, 0)
            prev.recovered = replay.events
        self._seg = (segs[-1] + 1) if segs else max(self._prev_seg + 1, 1)
        self._take_over()
        return replay

    def _pieces(self, seg: int, start: int, end: int) -> list[tuple[Location, int]]:
        """[start, end) of a segment as pieces of whole records of at most READ_CHUNK bytes."""
        out = []
        with open(self._path(seg), "rb") as f:
            while start < end:
                f.seek(start)
                data = f.read(min(READ_CHUNK, end - start))
                good, n = whole_records(data)
                if not n:          # cannot happen for a segment cut at whole records; never loop forever
                    log.error("spool segment %s: bytes %d..%d are not whole records: skipped", seg, start, end)
                    break
                out.append((Location(seg, start, start + good), n))
                start += good
        return out

    def _file_cursor(self) -> tuple[int, int] | None:
        try:
            with open(os.path.join(self.dir, "cursor")) as f:
                return parse_cursor(f.read().strip(), self.spool_id)
        except OSError:
            return None

    # -- the drain loop ---------------------------------------------------------------------------
    def in_hand(self, nbytes: int, nevents: int = 0) -> None:
        """A read is in hand (nbytes from the driver; nevents once parsed); 0, 0 once it is spooled or dropped."""
        p = self._page
        p.set_u64(_W_HAND_BYTES, nbytes)
        p.set_u64(_W_HAND_EVENTS, nevents)

    @property
    def size(self) -> int:
        """Bytes in the spool now."""
        with self._lock:
            return sum(self._sizes.values())

    def append(self, buf: bytes, nevents: int) -> Location | None:
        """Write one read (whole records) to the spool, and it is no longer in hand.  None when the spool is
        full or the write failed: the read stays in hand until the caller has counted what became of it
        (then in_hand(0, 0))."""
        p = self._page
        p.set_u64(_W_HAND_EVENTS, nevents)
        with self._lock:
            total = sum(self._sizes.values())
        if total + len(buf) > self.max_bytes or self.paused or not self._room_for(len(buf)):
            if self.full_since is None and self.max_bytes and not self.paused:
                self.full_since = time.monotonic()
            return None
        self.full_since = None
        try:
            if self._fd < 0 or self._end + len(buf) > self.segment_bytes and self._end:
                self._next_segment()
            elif self._end >= ROLL_BYTES and self._archived_through == (self._seg, self._end):
                self._next_segment(drop_previous=True)   # all of it archived: give its space back now
            start = self._end
            written = os.write(self._fd, buf)
            if written != len(buf):            # a short write: the filesystem is full
                os.ftruncate(self._fd, start)
                raise OSError(28, "short write (no space left on device?)")
        except OSError as exc:
            self.write_errors += 1
            self.last_error = exc.strerror or str(exc)
            return None
        self._end = start + len(buf)
        p.set_u64(_W_END, self._end)
        with self._lock:
            self._sizes[self._seg] = self._end
        p.set_u64(_W_SPOOLED, p.u64(_W_SPOOLED) + nevents)
        self.in_hand(0, 0)
        return Location(self._seg, start, self._end)

    def _room_for(self, n: int) -> bool:
        """Would the filesystem keep `reserve` bytes free after n more?  (One statvfs per read: the spool
        must not take the space the archive needs to write, and prune, its way out of a full disk.)"""
        if not self.reserve:
            return True
        try:
            st = os.fstatvfs(self._fd) if self._fd >= 0 else os.statvfs(self.dir)
        except OSError:
            return True
        return st.f_bavail * st.f_frsize - n >= self.reserve

    def _next_segment(self, drop_previous: bool = False) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if drop_previous:
                with self._lock:
                    self._sizes.pop(self._seg, None)
                try:
                    os.unlink(self._path(self._seg))
                except FileNotFoundError:
                    pass
            self._seg += 1
        fd = os.open(self._path(self._seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._fd = fd
        self._end = 0
        with self._lock:
            self._sizes[self._seg] = 0
        p = self._page
        p.set_u64(_W_END, 0)
        p.set_u64(_W_SEG, self._seg)

    # -- the archiver -----------------------------------------------------------------------------
    def read(self, where: Location) -> bytes:
        """The bytes of a spooled read (to archive it after its memory was given back)."""
        fd = os.open(self._path(where.seg), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, where.end - where.start, where.start)
        finally:
            os.close(fd)

    def cursor_text(self, where: Location) -> str:
        """The cursor the archive records with the events up to and including `where`."""
        return f"{self.spool_id}:{where.seg}:{where.end}"

    def archived_up_to(self, where: Location) -> None:
        """Everything spooled up to `where` is in the archive: delete the segments before it, note the cursor
        (the drain replaces the current segment once the archive has all of it)."""
        self._archived_through = (where.seg, where.end)
        with self._lock:
            done = [s for s in self._sizes if s < where.seg]
            for s in done:
                del self._sizes[s]
            if where.seg != self._seg and self._sizes.get(where.seg) == where.end:
                del self._sizes[where.seg]   # a closed segment, wholly archived
                done.append(where.seg)
        for s in done:
            try:
                os.unlink(self._path(s))
            except FileNotFoundError:
                pass
        now = time.monotonic()
        if now - self._cursor_written < CURSOR_EVERY_S and not done:
            return                      # the archive holds the exact cursor: this copy may lag a little
        self._cursor_written = now
        try:
            tmp = os.path.join(self.dir, "cursor.tmp")
            with open(tmp, "w") as f:
                f.write(self.cursor_text(where))
            os.replace(tmp, os.path.join(self.dir, "cursor"))
        except OSError as exc:
            log.warning("spool: cannot record the cursor: %s", exc.strerror)

    def close(self, clean: bool = True) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if clean and self._taken:
            self._page.set_u64(_W_CLEAN, 1)
        self._page.release()
        self._map.close()
