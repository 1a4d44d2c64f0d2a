"""Records as columns and back: how a batch of events is stored (docs/store.md, "Columns").

A batch keeps each field of its events as one array (all timestamps, all
syscall numbers, ...), so a search reads only the fields it filters on and
numpy compares a whole batch at once.  Fields are found in a record by
their names in the ABI layout (saga._uapi); each column has one storage
type whatever the ABI (`cpu` is a u16 in ABI 2 and a u32 in ABI 1: stored
as u32), and a field a record format lacks reads as zeros.  Paths are not
stored in the events: each distinct path is stored once (the `strings`
table) and events hold its id; the aux blobs (execve's argv, socket
addresses) of a batch are stored back to back with an index.

`extract` turns the bytes a driver delivered into columns (the archive's
write path: numpy gathers, one Python step per record with paths or aux
only); `records` turns columns back into records of the current ABI,
which saga.events.parse reads like the live stream.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from saga import _uapi, events
from saga.structs import Layout

# Event ids: the batch's id shifted left by ID_SHIFT, plus the position in the batch.
ID_SHIFT = 20
MAX_BATCH_EVENTS = 1 << ID_SHIFT

# Column codes: stable (they are stored), one per field or derived array.  A row of
# event_columns holds one column of one batch: id = batch id * COLUMN_SLOTS + code.
COLUMN_SLOTS = 8192
FIELD_CODES: Mapping[str, int] = {
    "ts_ns": 0, "nr": 1, "ret": 2, "pid": 3, "tid": 4, "ppid": 5, "uid": 6, "gid": 7, "duration_ns": 8,
    "flags": 9, "orig_nr": 10, "cpu": 11, "args": 12, "comm": 13, "rule_id": 14, "cgroup_id": 15,
}
PATH0, PATH1 = 16, 17          # ids in `strings` of each path argument (0: none)
AUX_INDEX = 18                 # (position, end offset in AUX_DATA) of each event with an aux blob
AUX_DATA = 19                  # the aux blobs back to back
PATHSET = 32                   # the batch's distinct path ids, sorted (to skip batches)
EXES = 33                      # (pid, string id of its executable) pairs, sorted by pid
UNITS = 34                     # (pid, string id of its unit or container) pairs, sorted by pid
CALLS = 35                     # per syscall slot: calls, failures, timed calls, their total time (reports)
LATENCY = 36                   # per syscall slot: the histogram of its timed calls' durations (sparse)
FAILURES = 4096                # + errno: every field of each call that failed with that errno (see below)
# The columns with one value per event, in code order; an event's fields are these.
EVENT_CODES = (*FIELD_CODES.values(), PATH0, PATH1)
CODE_NAMES: Mapping[int, str] = {**{c: n for n, c in FIELD_CODES.items()}, PATH0: "path0", PATH1: "path1",
                                 AUX_INDEX: "aux_index", AUX_DATA: "aux_data", PATHSET: "pathset", EXES: "exes",
                                 UNITS: "units", CALLS: "calls", LATENCY: "latency"}
PAIR32 = np.dtype([("key", "<u4"), ("id", "<u4")])
CALLS_ROW = np.dtype([("slot", "<u2"), ("calls", "<u4"), ("failures", "<u4"), ("timed", "<u4"),
                      ("total_ns", "<u8")])
LATENCY_ROW = np.dtype([("slot", "<u2"), ("bucket", "<u2"), ("count", "<u4")])
# How each column is stored, whatever the record format it came from.
STORED: Mapping[int, np.dtype] = {
    **{FIELD_CODES[n]: np.dtype("<u4") for n in ("pid", "tid", "ppid", "uid", "gid", "cpu", "rule_id")},
    **{FIELD_CODES[n]: np.dtype("<u8") for n in ("ts_ns", "duration_ns", "cgroup_id")},
    **{FIELD_CODES[n]: np.dtype("<u2") for n in ("nr", "flags", "orig_nr")},
    FIELD_CODES["ret"]: np.dtype("<i8"), FIELD_CODES["args"]: np.dtype(("<u8", (6,))),
    FIELD_CODES["comm"]: np.dtype("V16"),
    PATH0: np.dtype("<u4"), PATH1: np.dtype("<u4"), PATHSET: np.dtype("<u4"), AUX_INDEX: PAIR32,
    AUX_DATA: np.dtype("u1"), EXES: PAIR32, UNITS: PAIR32, CALLS: CALLS_ROW, LATENCY: LATENCY_ROW,
}
# A failure row: the event's position in the batch, then each of its fields.  The calls of a batch
# that failed with one errno are stored together (code FAILURES + errno), in archive order, so an
# errno search reads a few percent of the batch and nothing else.
FAILURE_ROW = np.dtype([("pos", "<u4"), *((CODE_NAMES[c], STORED[c]) for c in EVENT_CODES)])
MAX_ERRNO = 4095
# Not one value per event: stored when not empty (a per-event column is stored when not all zeros).
PER_BATCH = frozenset({PATHSET, EXES, UNITS, AUX_INDEX, AUX_DATA, CALLS, LATENCY})


def failed(ret: np.ndarray, flags: np.ndarray | None) -> np.ndarray:
    """Which calls failed: -errno returns (-4095..-1) of calls that returned (as saga.render shows them)."""
    bad = (ret < 0) & (ret > -MAX_ERRNO - 1)
    if flags is not None:
        bad &= (flags & _uapi.SAGA_EVF_NORETURN) == 0
    return bad


def event_id(batch_id: int, position: int) -> int:
    return (batch_id << ID_SHIFT) | position


@dataclass(frozen=True)
class RecordFormat:
    """A record layout and how its paths are told: ABI 2 counts each path's NUL in path_len (0: none),
    ABI 1 did not (0: none or empty)."""

    layout: Layout
    nul_in_len: bool

    @property
    def dtype(self) -> np.dtype:
        return _dtype_of(self.layout)

    @property
    def names(self) -> tuple[str, ...]:
        return self.dtype.names or ()


_DTYPES: dict[Layout, np.dtype] = {}


def _dtype_of(layout: Layout) -> np.dtype:
    """The numpy view of a record's fixed part (`struct saga_event`), fields by name."""
    dt = _DTYPES.get(layout)
    if dt is None:
        names, formats, offsets = [], [], []
        for f in layout.fields:
            base = f.code.lstrip("0123456789")
            if base == "s":
                fmt: object = f"V{f.size}"
            else:
                fmt = f"<{base}" if f.elems == 1 else (f"<{base}", (f.elems,))
            names.append(f.name)
            formats.append(fmt)
            offsets.append(f.offset)
        dt = _DTYPES[layout] = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                                         "itemsize": layout.size})
    return dt


CURRENT = RecordFormat(_uapi.SAGA_EVENT, _uapi.SAGA_ABI_VERSION >= 2)


def stored_type(code: int) -> np.dtype:
    return FAILURE_ROW if code >= FAILURES else STORED[code]


def element_type(code: int) -> np.dtype:
    """The type of one value of a column (args: u64, six per event)."""
    dt = stored_type(code)
    return dt.base if dt.subdtype else dt


def decode(code: int, data: bytes, n: int) -> np.ndarray:
    """A stored column back as an array (n rows for per-event columns)."""
    arr = np.frombuffer(data, element_type(code))
    return arr.reshape(-1, *STORED[code].shape) if code < FAILURES and STORED[code].subdtype else arr


def zeros(code: int, n: int) -> np.ndarray:
    """A column that was not stored: zeros for per-event columns, empty for the others."""
    dt = stored_type(code)
    return np.zeros((0 if code in PER_BATCH or code >= FAILURES else n, *dt.shape), element_type(code))


@dataclass
class Extracted:
    """One batch as columns: the per-event fields (by code), and where its paths and aux blobs are."""

    n: int
    fields: dict[int, np.ndarray]
    path_rows: np.ndarray      # positions of the events that carry paths
    path_keys: list[bytes]     # their paths, each with its NUL, then the first's length with NUL (2 bytes)
    aux_rows: np.ndarray       # positions of the events with an aux blob
    aux: list[bytes]           # their blobs


def starts_of(sizes: np.ndarray) -> np.ndarray:
    """Where each record starts, from the records' sizes."""
    starts = np.zeros(len(sizes), np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    return starts


_NONE = np.zeros(0, np.int64)


# Records are cut into columns this many at a time: each pass over the fields then reads records
# still in the CPU's cache (a pass per field over a whole batch reads all of it from memory each time).
EXTRACT_CHUNK = 2048


def extract(buf: bytes, sizes: np.ndarray, fmt: RecordFormat = CURRENT) -> Extracted:
    """The columns of the records back to back in `buf` (sizes: each record's size field), each a
    contiguous array."""
    dt, names = fmt.dtype, fmt.names
    n, fixed = len(sizes), fmt.layout.size
    plain = n * fixed == len(buf)            # no record has paths or aux: the bytes are the array
    wanted = [name for name in (*FIELD_CODES, "path_len", "aux_len") if name in names]
    out = {name: np.empty(n, dt[name]) for name in wanted}
    starts = None if plain else starts_of(sizes)
    # the fixed part of a record at every 8-byte boundary (records are 8-aligned): one gather takes them
    at8 = None if plain else np.ndarray(((len(buf) - fixed) // 8 + 1,), f"V{fixed}", buf, strides=(8,))
    for i in range(0, n, EXTRACT_CHUNK):
        j = min(n, i + EXTRACT_CHUNK)
        if starts is None or at8 is None:
            hdr = np.frombuffer(buf, dt, count=j - i, offset=i * fixed)
        else:
            hdr = at8[starts[i:j] >> 3].view(dt)
        for name, col in out.items():
            col[i:j] = hdr[name]
    fields = {code: out[name] for name, code in FIELD_CODES.items() if name in out}
    if plain:
        return Extracted(n, fields, _NONE, [], _NONE, [])
    assert starts is not None
    lens = out["path_len"].astype(np.int64)
    if not fmt.nul_in_len:               # ABI 1: an empty path takes no bytes, not even its NUL
        lens = np.where(lens > 0, lens + 1, 0)
    rows = np.flatnonzero(lens.any(axis=1))
    tails = starts + fixed
    keys: list[bytes] = []
    append = keys.append
    for at, (l0, l1) in zip(tails[rows].tolist(), lens[rows].tolist(), strict=True):
        append(buf[at:at + l0 + l1] + l0.to_bytes(2, "little"))
    aux_rows, aux = _NONE, []
    if "aux_len" in out:
        aux_len = out["aux_len"]
        aux_rows = np.flatnonzero(aux_len)
        if len(aux_rows):
            at = tails[aux_rows] + lens[aux_rows].sum(axis=1)
            aux = [buf[a:a + k] for a, k in zip(at.tolist(), aux_len[aux_rows].tolist(), strict=True)]
    return Extracted(n, fields, rows, keys, aux_rows, aux)


def split_key(key: bytes) -> tuple[bytes | None, bytes | None]:
    """A path key (Extracted.path_keys) as its two paths, None where the call had none."""
    first = key[-2] | key[-1] << 8
    section = key[:-2]
    return (section[:first - 1] if first else None,
            section[first:-1] if len(section) > first else None)


def _assemble(fields: Mapping[int, np.ndarray], n: int, paths: Sequence[tuple[bytes | None, bytes | None]] | None,
              aux: Mapping[int, bytes] | None, fmt: RecordFormat) -> tuple[np.ndarray, dict[int, bytes]]:
    """The fixed parts of n records (sizes, path lengths and aux lengths set) and the tail of each record
    that has one (its paths, each with its NUL, its aux blob, zeros up to the record's 8-byte size)."""
    hdr = np.zeros(n, fmt.dtype)
    names = fmt.names
    for name, code in FIELD_CODES.items():
        col = fields.get(code)
        if col is not None and name in names:
            hdr[name] = col
    fixed = fmt.layout.size
    hdr["size"] = fixed
    tails: dict[int, bytes] = {}
    if not paths and not aux:
        return hdr, tails
    paths = paths or [(None, None)] * n
    aux = aux or {}
    nul = fmt.nul_in_len
    rows, lens, aux_lens = [], [], []
    for i, (a, b) in enumerate(paths):
        if not nul:             # ABI 1 has no empty path: it is no path
            a, b = a or None, b or None
        if a is None and b is None and i not in aux:
            continue
        if b is None:
            tail = b"" if a is None else a + b"\0"
        else:
            tail = (b"" if a is None else a + b"\0") + b + b"\0"
        rows.append(i)
        lens.append((0 if a is None else len(a) + nul, 0 if b is None else len(b) + nul))
        if aux:
            blob = aux.get(i)
            if blob is not None:
                aux_lens.append((i, len(blob)))
                tail += blob
        pad = -len(tail) % 8
        tails[i] = tail + bytes(pad) if pad else tail
    if rows:
        hdr["path_len"][rows] = lens
        hdr["size"][rows] = [fixed + len(tails[i]) for i in rows]
    if aux_lens:
        at, size = zip(*aux_lens, strict=True)
        hdr["aux_len"][list(at)] = size
    return hdr, tails


def records(fields: Mapping[int, np.ndarray], n: int, paths: Sequence[tuple[bytes | None, bytes | None]] | None = None,
            aux: Mapping[int, bytes] | None = None, fmt: RecordFormat = CURRENT) -> bytes:
    """n records in `fmt` with these columns (missing ones zero), paths (None: none has any) and aux blobs
    (by position)."""
    hdr, tails = _assemble(fields, n, paths, aux, fmt)
    if not tails:
        return hdr.tobytes()
    fixed = fmt.layout.size
    raw = hdr.tobytes()
    return b"".join(raw[i * fixed:(i + 1) * fixed] + tails[i] if i in tails else raw[i * fixed:(i + 1) * fixed]
                    for i in range(n))


def raws(fields: Mapping[int, np.ndarray], n: int, paths: Sequence[tuple[bytes | None, bytes | None]] | None = None,
         aux: Mapping[int, bytes] | None = None) -> list[tuple]:
    """The records of records() (current format) as saga.events.parse returns them: the fixed parts are
    parsed together, each tail then put in its record's tuple (its last item) with the record's size."""
    hdr, tails = _assemble(fields, n, paths, aux, CURRENT)
    if not tails:
        return events.parse(hdr.tobytes())
    sizes = hdr["size"].tolist()
    hdr["size"] = CURRENT.layout.size
    out = events.parse(hdr.tobytes())
    for i, tail in tails.items():
        t = out[i]
        out[i] = (sizes[i], *t[1:-1], tail)
    return out
