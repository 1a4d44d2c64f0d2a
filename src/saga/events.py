"""Event records: the binary format of docs/kernel-abi.md, parsed.

Both drivers deliver the same bytes (a run of `struct saga_event` records,
each followed by its paths).  The hot path keeps each record as a plain
tuple (see the index constants below), because building an object per
event costs more than parsing it; `Event` is the named view for code that
handles few events at a time.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from saga import _uapi

_HEADER = _uapi.SAGA_EVENT_STRUCT.format
FIXED = _uapi.SAGA_EVENT.size
# The record as one struct, its tail (the bytes after the fixed part) the last field: one unpack
# makes the whole tuple.  Records without paths have an empty tail; the others, one struct per size.
_RECORD = struct.Struct(_HEADER + "0s")
_WITH_TAIL: dict[int, struct.Struct] = {FIXED: _RECORD}

# Indexes into a raw record tuple, as returned by parse().
SIZE, FLAGS, NR, ORIG_NR, CPU, PID, TID, PPID, UID, GID, TS, DURATION, RET = range(13)
ARG0 = 13  # ARG0 .. ARG0 + 5
COMM, PATH_LEN0, PATH_LEN1 = 19, 20, 21
PATHS = 23  # the tail: the paths, each NUL-terminated, and padding (b"" without paths); paths_of() decodes


class RecordError(ValueError):
    """The bytes are not a run of whole, well-formed records."""


# Runs of records without paths are found 32 at a time, more while they go on (bench/ingest):
# a window too short costs the long runs of busy servers, one too long costs the mixes.
_RUN_PROBE = 32 * FIXED
_SIZE_LO, _SIZE_HI = bytes([FIXED & 0xFF]), bytes([FIXED >> 8])


def parse(buf: bytes | bytearray | memoryview) -> list[tuple]:
    """Parse a run of whole records into raw tuples (see the indexes above)."""
    data = buf if type(buf) is bytes else bytes(buf)
    view = memoryview(data)
    out: list[tuple] = []
    append, extend = out.append, out.extend
    unpack_all = _RECORD.iter_unpack
    by_size = _WITH_TAIL
    off, end = 0, len(data)
    window = _RUN_PROBE
    while off < end:
        # How many records from here are FIXED bytes long: the low and the high byte of
        # their size fields, every FIXED bytes, compared in C; the run is one C loop too.
        lows = data[off:off + window:FIXED]
        run = len(lows) - len(lows.lstrip(_SIZE_LO))
        if run:
            highs = data[off + 1:off + run * FIXED:FIXED]
            run = min(len(highs) - len(highs.lstrip(_SIZE_HI)), (end - off) // FIXED)
        if run:
            extend(unpack_all(view[off:off + run * FIXED]))
            window = window * 4 if run * FIXED == window else _RUN_PROBE
            off += run * FIXED
            continue
        if end - off < FIXED:
            raise RecordError(f"truncated record at byte {off}: {end - off} bytes left, {FIXED} needed")
        size = data[off] | data[off + 1] << 8
        if size < FIXED or size & 7 or off + size > end:
            raise RecordError(f"bad record size {size} at byte {off}")
        rec = (by_size.get(size) or _with_tail(size)).unpack_from(data, off)
        len0, len1 = rec[PATH_LEN0], rec[PATH_LEN1]
        if (len0 and len0 + 1) + (len1 and len1 + 1) > size - FIXED:
            raise RecordError(f"record at byte {off}: its paths ({len0} and {len1} bytes) run past its end")
        append(rec)
        off += size
    return out


def _with_tail(size: int) -> struct.Struct:
    """The struct for records of `size` bytes (at most 8,192 sizes: u16, multiples of 8)."""
    st = _WITH_TAIL[size] = struct.Struct(f"{_HEADER}{size - FIXED}s")
    return st


def paths_of(raw: tuple) -> tuple[str, ...]:
    """The paths a record carries, decoded (bytes that are not UTF-8 kept as surrogates)."""
    tail = raw[PATHS]
    if not tail:
        return ()
    out = []
    start = 0
    for n in (raw[PATH_LEN0], raw[PATH_LEN1]):   # a path of length 0 takes no bytes, not even its NUL
        if n:
            out.append(tail[start:start + n].decode("utf-8", "surrogateescape"))
            start += n + 1
    return tuple(out)


def path_args(raw: tuple) -> tuple[str | None, str | None]:
    """The captured path of the call's first and second path argument, by position (None: not captured).

    A path of length 0 is an empty path, a NULL pointer or one that could not be read: the record
    does not tell them apart, so it is None rather than "".
    """
    tail = raw[PATHS]
    if not tail:
        return None, None
    len0, len1 = raw[PATH_LEN0], raw[PATH_LEN1]
    first = tail[:len0].decode("utf-8", "surrogateescape") if len0 else None
    start = len0 + 1 if len0 else 0
    second = tail[start:start + len1].decode("utf-8", "surrogateescape") if len1 else None
    return first, second


def pack(fields: dict) -> bytes:
    """Build one record (for tests, the replay driver and benchmarks)."""
    paths = [p.encode("utf-8", "surrogateescape") for p in fields.get("paths", ())]
    tail = b"".join(p + b"\0" for p in paths if p)  # an empty path takes no bytes, not even its NUL
    size = (FIXED + len(tail) + 7) & ~7
    lens = [len(p) for p in paths] + [0] * (2 - len(paths))
    args = list(fields.get("args", ())) + [0] * (6 - len(fields.get("args", ())))
    comm = fields.get("comm", "")
    comm_b = comm.encode() if isinstance(comm, str) else comm
    head = _RECORD.pack(size, fields.get("flags", 0), fields["nr"], fields.get("orig_nr", fields["nr"]),
                        fields.get("cpu", 0), fields.get("pid", 0), fields.get("tid", fields.get("pid", 0)),
                        fields.get("ppid", 0), fields.get("uid", 0), fields.get("gid", 0),
                        fields.get("ts_ns", 0), fields.get("duration_ns", 0), fields.get("ret", 0),
                        *args, comm_b[:15], lens[0], lens[1], 0, b"")
    return head + tail + b"\0" * (size - FIXED - len(tail))


class Event(NamedTuple):
    """A record with names, for code that is not on the hot path."""

    flags: int
    nr: int
    orig_nr: int
    cpu: int
    pid: int
    tid: int
    ppid: int
    uid: int
    gid: int
    ts_ns: int
    duration_ns: int
    ret: int
    args: tuple[int, ...]
    comm: str
    paths: tuple[str, ...]

    @classmethod
    def from_raw(cls, r: tuple) -> Event:
        return cls(r[FLAGS], r[NR], r[ORIG_NR], r[CPU], r[PID], r[TID], r[PPID], r[UID], r[GID],
                   r[TS], r[DURATION], r[RET], r[ARG0:ARG0 + 6], comm_str(r[COMM]), paths_of(r))


_COMM_CACHE: dict[bytes, str] = {}


def comm_str(raw: bytes) -> str:
    """Decode a NUL-padded task name (cached: few distinct names recur)."""
    s = _COMM_CACHE.get(raw)
    if s is None:
        if len(_COMM_CACHE) > 4096:
            _COMM_CACHE.clear()
        s = _COMM_CACHE[raw] = raw.rstrip(b"\0").decode("utf-8", "replace")
    return s
