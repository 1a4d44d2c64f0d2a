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

from saga import _uapi
from saga._uapi import Layout

# Column codes: stable (they are stored), one per field or derived array.  A row of
# event_columns holds one column of one batch: id = batch id * COLUMN_SLOTS + code.
COLUMN_SLOTS = 64
FIELD_CODES: Mapping[str, int] = {
    "ts_ns": 0, "nr": 1, "ret": 2, "pid": 3, "tid": 4, "ppid": 5, "uid": 6, "gid": 7, "duration_ns": 8,
    "flags": 9, "orig_nr": 10, "cpu": 11, "args": 12, "comm": 13, "rule_id": 14, "cgroup_id": 15,
}
PATH0, PATH1 = 16, 17          # ids in `strings` of each path argument (0: none)
AUX_INDEX = 18                 # (position, end offset in AUX_DATA) of each event with an aux blob
AUX_DATA = 19                  # the aux blobs back to back
FAILED = 20                    # positions of the events whose call failed, ascending
FAILED_ERRNO = 21              # the errno of each of them (an errno search reads these, not `ret`)
PATHSET = 32                   # the batch's distinct path ids, sorted (to skip batches)
EXES = 33                      # (pid, string id of its executable) pairs, sorted by pid
UNITS = 34                     # (pid, string id of its unit or container) pairs, sorted by pid
CODE_NAMES: Mapping[int, str] = {**{c: n for n, c in FIELD_CODES.items()}, PATH0: "path0", PATH1: "path1",
                                 AUX_INDEX: "aux_index", AUX_DATA: "aux_data", FAILED: "failed",
                                 FAILED_ERRNO: "failed_errno", PATHSET: "pathset", EXES: "exes", UNITS: "units"}
PAIR32 = np.dtype([("key", "<u4"), ("id", "<u4")])
# How each column is stored, whatever the record format it came from.
STORED: Mapping[int, np.dtype] = {
    **{FIELD_CODES[n]: np.dtype("<u4") for n in ("pid", "tid", "ppid", "uid", "gid", "cpu", "rule_id")},
    **{FIELD_CODES[n]: np.dtype("<u8") for n in ("ts_ns", "duration_ns", "cgroup_id")},
    **{FIELD_CODES[n]: np.dtype("<u2") for n in ("nr", "flags", "orig_nr")},
    FIELD_CODES["ret"]: np.dtype("<i8"), FIELD_CODES["args"]: np.dtype(("<u8", (6,))),
    FIELD_CODES["comm"]: np.dtype("V16"),
    PATH0: np.dtype("<u4"), PATH1: np.dtype("<u4"), PATHSET: np.dtype("<u4"), AUX_INDEX: PAIR32,
    AUX_DATA: np.dtype("u1"), FAILED: np.dtype("<u4"), FAILED_ERRNO: np.dtype("<u2"), EXES: PAIR32, UNITS: PAIR32,
}
# Not one value per event: stored when not empty (a per-event column is stored when not all zeros).
PER_BATCH = frozenset({PATHSET, EXES, UNITS, AUX_INDEX, AUX_DATA, FAILED, FAILED_ERRNO})


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


def element_type(code: int) -> np.dtype:
    """The type of one value of a column (args: u64, six per event)."""
    dt = STORED[code]
    return dt.base if dt.subdtype else dt


def decode(code: int, data: bytes, n: int) -> np.ndarray:
    """A stored column back as an array (n rows for per-event columns)."""
    arr = np.frombuffer(data, element_type(code))
    return arr.reshape(n, *STORED[code].shape) if STORED[code].subdtype else arr


def zeros(code: int, n: int) -> np.ndarray:
    """A column that was not stored: zeros for per-event columns, empty for the others."""
    return np.zeros((0 if code in PER_BATCH else n, *STORED[code].shape), element_type(code))


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


def extract(buf: bytes, sizes: np.ndarray, fmt: RecordFormat = CURRENT) -> Extracted:
    """The columns of the records back to back in `buf` (sizes: each record's size field)."""
    dt, names = fmt.dtype, fmt.names
    n, fixed = len(sizes), fmt.layout.size
    if n * fixed == len(buf):            # no record has paths or aux: the bytes are the array
        hdr = np.frombuffer(buf, dt)
        return Extracted(n, {code: hdr[name] for name, code in FIELD_CODES.items() if name in names},
                         _NONE, [], _NONE, [])
    # gather each fixed part, 8-byte words at a time (records are 8-aligned)
    starts = starts_of(sizes)
    words = np.frombuffer(buf, "<u8", count=len(buf) // 8)
    hdr = words[(starts >> 3)[:, None] + np.arange(fixed // 8)].view(dt).ravel()
    fields = {code: hdr[name] for name, code in FIELD_CODES.items() if name in names}
    lens = hdr["path_len"].astype(np.int64)
    if not fmt.nul_in_len:               # ABI 1: an empty path takes no bytes, not even its NUL
        lens = np.where(lens > 0, lens + 1, 0)
    rows = np.flatnonzero(lens.any(axis=1))
    tails = starts + fixed
    keys: list[bytes] = []
    append = keys.append
    for at, (l0, l1) in zip(tails[rows].tolist(), lens[rows].tolist(), strict=True):
        append(buf[at:at + l0 + l1] + l0.to_bytes(2, "little"))
    aux_rows, aux = _NONE, []
    if "aux_len" in names:
        aux_len = hdr["aux_len"]
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


def records(fields: Mapping[int, np.ndarray], n: int, paths: Sequence[tuple[bytes | None, bytes | None]] | None = None,
            aux: Mapping[int, bytes] | None = None, fmt: RecordFormat = CURRENT) -> bytes:
    """n records in `fmt` with these columns (missing ones zero), paths (None: none has any) and aux blobs
    (by position)."""
    hdr = np.zeros(n, fmt.dtype)
    names = fmt.names
    for name, code in FIELD_CODES.items():
        col = fields.get(code)
        if col is not None and name in names:
            hdr[name] = col
    fixed = fmt.layout.size
    hdr["size"] = fixed
    if not paths and not aux:
        return hdr.tobytes()
    paths = paths or [(None, None)] * n
    aux = aux or {}
    out = []
    nul = fmt.nul_in_len
    for i, (a, b) in enumerate(paths):
        if not nul:             # ABI 1 has no empty path: it is no path
            a, b = a or None, b or None
        tail = (b"" if a is None else a + b"\0") + (b"" if b is None else b + b"\0")
        blob = aux.get(i)
        if not tail and blob is None:
            out.append(hdr[i:i + 1].tobytes())
            continue
        rec = hdr[i:i + 1]
        rec["path_len"] = [(0 if p is None else len(p) + nul) for p in (a, b)]
        if blob is not None:
            rec["aux_len"] = len(blob)
            tail += blob
        size = (fixed + len(tail) + 7) & ~7
        rec["size"] = size
        out.append(rec.tobytes() + tail + b"\0" * (size - fixed - len(tail)))
    return b"".join(out)
