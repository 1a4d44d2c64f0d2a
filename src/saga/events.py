"""Event records: the binary format of docs/kernel-abi.md, parsed.

Both drivers deliver the same bytes (a run of `struct saga_event` records,
each followed by its paths and its aux blob).  The hot path keeps each
record as a plain tuple (see the index constants below), because building
an object per event costs more than parsing it; `Event` is the named view
for code that handles few events at a time.  The indexes and the names
come from the generated layout (saga._uapi), never typed by hand.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from saga import _uapi

_LAYOUT = _uapi.SAGA_EVENT
_HEADER = _uapi.SAGA_EVENT_STRUCT.format
FIXED = _LAYOUT.size
# The record as one struct, its tail (the bytes after the fixed part) the last field: one unpack
# makes the whole tuple.  Records without paths have an empty tail; the others, one struct per size.
_RECORD = struct.Struct(_HEADER + "0s")
_WITH_TAIL: dict[int, struct.Struct] = {FIXED: _RECORD}


_AT = _LAYOUT.positions()
# Indexes into a raw record tuple, as returned by parse().
SIZE, FLAGS, NR, ORIG_NR, CPU, AUX_LEN = (_AT[n] for n in ("size", "flags", "nr", "orig_nr", "cpu", "aux_len"))
PID, TID, PPID, UID, GID = (_AT[n] for n in ("pid", "tid", "ppid", "uid", "gid"))
TS, DURATION, RET, ARG0, COMM = (_AT[n] for n in ("ts_ns", "duration_ns", "ret", "args", "comm"))
PATH_LEN0 = _AT["path_len"]
PATH_LEN1 = PATH_LEN0 + 1
RULE_ID, CGROUP_ID = _AT["rule_id"], _AT["cgroup_id"]
# The tail: the paths (each with its NUL), the aux blob and padding (b"" without either).
PATHS = TAIL = _AT[""]
_AUX_SHIFT, _AUX_MASK = _uapi.SAGA_EVF_AUX_SHIFT, _uapi.SAGA_EVF_AUX_MASK


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
        len0, len1, aux = rec[PATH_LEN0], rec[PATH_LEN1], rec[AUX_LEN]
        if len0 + len1 + aux > size - FIXED:
            raise RecordError(f"record at byte {off}: its paths ({len0} and {len1} bytes) and aux ({aux} bytes) "
                              "run past its end")
        append(rec)
        off += size
    return out


def sizes(buf: bytes | memoryview) -> np.ndarray:
    """Each record's size (int64), checked to chain exactly to the end of buf: what the daemon needs of a
    read without parsing it (counts, cuts, the archive's columns).  RecordError when they do not chain."""
    end = len(buf)
    if end % FIXED == 0 and end:
        heads = np.frombuffer(buf, "<u2", count=end // 2)[::FIXED // 2]
        if (heads == FIXED).all():
            return np.full(len(heads), FIXED, np.int64)
    data = buf if type(buf) is bytes else bytes(buf)
    runs: list[int] = []          # run lengths of FIXED records, and the sizes of the others, in order
    other: list[int] = []
    off = 0
    window = _RUN_PROBE
    while off < end:
        lows = data[off:off + window:FIXED]
        run = len(lows) - len(lows.lstrip(_SIZE_LO))
        if run:
            highs = data[off + 1:off + run * FIXED:FIXED]
            run = min(len(highs) - len(highs.lstrip(_SIZE_HI)), (end - off) // FIXED)
        if run:
            runs.append(run)
            other.append(0)
            window = window * 4 if run * FIXED == window else _RUN_PROBE
            off += run * FIXED
            continue
        if end - off < FIXED:
            raise RecordError(f"truncated record at byte {off}: {end - off} bytes left, {FIXED} needed")
        size = data[off] | data[off + 1] << 8
        if size < FIXED or size & 7 or off + size > end:
            raise RecordError(f"bad record size {size} at byte {off}")
        runs.append(1)
        other.append(size)
        off += size
    counts = np.array(runs, np.int64)
    values = np.array(other, np.int64)
    values[values == 0] = FIXED
    return np.repeat(values, counts)


_PID_OFFSET = next(f.offset for f in _uapi.SAGA_EVENT.fields if f.name == "pid")


_CGROUP_OFFSET = next(f.offset for f in _uapi.SAGA_EVENT.fields if f.name == "cgroup_id")


def _starts(sizes_: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(sizes_), np.int64)
    np.cumsum(sizes_[:-1], out=starts[1:])
    return starts


def pids(buf: bytes, sizes_: np.ndarray) -> np.ndarray:
    """The pid of each record (u32), gathered from the bytes without parsing them."""
    words = np.frombuffer(buf, "<u4", count=len(buf) // 4)
    return words[(_starts(sizes_) + _PID_OFFSET) >> 2]


def cgroup_ids(buf: bytes, sizes_: np.ndarray) -> np.ndarray:
    """The cgroup id of each record (u64; records are 8-byte aligned), gathered without parsing."""
    words = np.frombuffer(buf, "<u8", count=len(buf) // 8)
    return words[(_starts(sizes_) + _CGROUP_OFFSET) >> 3]


def _with_tail(size: int) -> struct.Struct:
    """The struct for records of `size` bytes (at most 8,192 sizes: u16, multiples of 8)."""
    st = _WITH_TAIL[size] = struct.Struct(f"{_HEADER}{size - FIXED}s")
    return st


def path_bytes(raw: tuple) -> tuple[bytes | None, bytes | None]:
    """The first and second path argument's captured bytes, by position; None where there is no path
    (NULL pointer, no such argument, or not captured: PATH_FAULT, NO_ENTER).  b"" is the empty path."""
    len0, len1 = raw[PATH_LEN0], raw[PATH_LEN1]
    if not (len0 or len1):
        return None, None
    tail = raw[PATHS]
    return (tail[:len0 - 1] if len0 else None), (tail[len0:len0 + len1 - 1] if len1 else None)


def path_args(raw: tuple) -> tuple[str | None, str | None]:
    """path_bytes() decoded (bytes that are not UTF-8 kept as surrogates)."""
    first, second = path_bytes(raw)
    return (None if first is None else first.decode("utf-8", "surrogateescape"),
            None if second is None else second.decode("utf-8", "surrogateescape"))


def paths_of(raw: tuple) -> tuple[str, ...]:
    """The captured paths in argument order, decoded; "" is kept, absent ones are skipped."""
    return tuple(p for p in path_args(raw) if p is not None)


def aux_kind(raw: tuple) -> int:
    """What the aux blob holds: a SAGA_AUX_* (SAGA_AUX_NONE: no blob)."""
    return (raw[FLAGS] & _AUX_MASK) >> _AUX_SHIFT


def aux_bytes(raw: tuple) -> bytes:
    """The aux blob (b"" when the record has none)."""
    n = raw[AUX_LEN]
    if not n:
        return b""
    start = raw[PATH_LEN0] + raw[PATH_LEN1]
    return raw[PATHS][start:start + n]


def argv_of(raw: tuple) -> list[bytes] | None:
    """execve/execveat's argument strings (SAGA_AUX_ARGV), None for other records.

    The drivers keep whole strings only, so a cut argv (AUX_TRUNC) ends at a string boundary."""
    if aux_kind(raw) != _uapi.SAGA_AUX_ARGV:
        return None
    blob = aux_bytes(raw)
    return blob[:-1].split(b"\0") if blob else []


def pack(fields: dict) -> bytes:
    """Build one record (for tests, the replay driver and benchmarks).

    `paths`: up to two, by argument position, each a str (or bytes) or None for "no path there";
    `aux_kind` and `aux` (bytes) the aux blob; every other key names a member of struct saga_event."""
    paths = [None if p is None else (p.encode("utf-8", "surrogateescape") if isinstance(p, str) else p)
             for p in fields.get("paths", ())]
    aux = fields.get("aux", b"")
    tail = b"".join(p + b"\0" for p in paths if p is not None) + aux
    size = (FIXED + len(tail) + 7) & ~7
    comm = fields.get("comm", "")
    values = dict(fields)
    values.update(
        size=size, orig_nr=fields.get("orig_nr", fields["nr"]), tid=fields.get("tid", fields.get("pid", 0)),
        flags=(fields.get("flags", 0) & ~_AUX_MASK) | (fields.get("aux_kind", 0) << _AUX_SHIFT),
        comm=(comm.encode() if isinstance(comm, str) else comm)[:_uapi.SAGA_COMM_LEN - 1],
        path_len=[0 if p is None else len(p) + 1 for p in paths], aux_len=len(aux))
    return bytes(_LAYOUT.pack(**values)) + tail + b"\0" * (size - FIXED - len(tail))


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
    rule_id: int = 0
    cgroup_id: int = 0
    aux_kind: int = 0
    aux: bytes = b""

    @classmethod
    def from_raw(cls, r: tuple) -> Event:
        return cls(r[FLAGS], r[NR], r[ORIG_NR], r[CPU], r[PID], r[TID], r[PPID], r[UID], r[GID],
                   r[TS], r[DURATION], r[RET], r[ARG0:ARG0 + 6], comm_str(r[COMM]), paths_of(r),
                   r[RULE_ID], r[CGROUP_ID], aux_kind(r), aux_bytes(r))


_COMM_CACHE: dict[bytes, str] = {}


def comm_str(raw: bytes) -> str:
    """Decode a NUL-padded task name (cached: few distinct names recur)."""
    s = _COMM_CACHE.get(raw)
    if s is None:
        if len(_COMM_CACHE) > 4096:
            _COMM_CACHE.clear()
        s = _COMM_CACHE[raw] = raw.rstrip(b"\0").decode("utf-8", "replace")
    return s
