"""Records as columns and back: how a batch of events is stored (docs/store.md, "Columns").

A batch keeps each field of its events as one array (all timestamps, all
syscall numbers, ...), so a search reads only the fields it filters on and
numpy compares a whole batch at once.  Fields are found in a record by
their names in the ABI layout (saga._uapi), so a field the ABI adds gets a
column by being named in FIELD_CODES, and a batch written before it
existed reads as zeros.  Paths are not stored in the events: each distinct
path is stored once (the `strings` table) and events hold its id.

`extract` turns the bytes a driver delivered into columns (the archive's
write path: numpy gathers, one Python step per record with paths only);
`records` turns columns back into records in the current ABI, which
saga.events.parse reads like the live stream.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from saga import _uapi
from saga._uapi import Layout

# Column codes: stable (they are stored), one per field or derived array.  A row of
# event_columns holds one column of one batch: id = batch id * COLUMN_SLOTS + code.
COLUMN_SLOTS = 64
FIELD_CODES: Mapping[str, int] = {
    "ts_ns": 0, "nr": 1, "ret": 2, "pid": 3, "tid": 4, "ppid": 5, "uid": 6, "gid": 7, "duration_ns": 8,
    "flags": 9, "orig_nr": 10, "cpu": 11, "args": 12, "comm": 13,
    # ABI 2 (docs/kernel-abi.md): zero in batches archived from records that had no such field.
    "rule_id": 14, "cgroup_id": 15,
}
PATH0, PATH1 = 16, 17          # ids in `strings` of each path slot (0: none)
PATHSET = 32                   # the batch's distinct path ids, sorted (to skip batches)
EXES = 33                      # (pid, string id of its executable) pairs, sorted by pid
UNITS = 34                     # (cgroup id, string id of its unit) pairs, sorted by cgroup id
CODE_NAMES: Mapping[int, str] = {**{c: n for n, c in FIELD_CODES.items()}, PATH0: "path0", PATH1: "path1",
                                 PATHSET: "pathset", EXES: "exes", UNITS: "units"}

PAIR32 = np.dtype([("key", "<u4"), ("id", "<u4")])
PAIR64 = np.dtype([("key", "<u8"), ("id", "<u8")])
_DERIVED = {PATH0: np.dtype("<u4"), PATH1: np.dtype("<u4"), PATHSET: np.dtype("<u4"), EXES: PAIR32,
            UNITS: PAIR64}


def record_dtype(layout: Layout) -> np.dtype:
    """The numpy view of a record's fixed part (`struct saga_event`), fields by name."""
    names, formats, offsets = [], [], []
    for f in layout.fields:
        base, count = f.code.lstrip("0123456789"), f[3]     # f.count is tuple.count to a type checker
        if base == "s":
            fmt: object = f"V{f.size}"
        else:
            fmt = f"<{base}" if count == 1 else (f"<{base}", (count,))
        names.append(f.name)
        formats.append(fmt)
        offsets.append(f.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": layout.size})


CURRENT = _uapi.SAGA_EVENT
_DTYPES: dict[Layout, np.dtype] = {}


def dtype_of(layout: Layout) -> np.dtype:
    dt = _DTYPES.get(layout)
    if dt is None:
        dt = _DTYPES[layout] = record_dtype(layout)
    return dt


def names_of(dt: np.dtype) -> tuple[str, ...]:
    return dt.names or ()


def column_dtype(code: int, layout: Layout = CURRENT) -> np.dtype:
    """How column `code` is stored: a field's own type (as in the ABI), or the derived array's."""
    if code in _DERIVED:
        return _DERIVED[code]
    name = CODE_NAMES[code]
    dt = dtype_of(layout)
    if name not in names_of(dt):     # a field this ABI does not have (yet): its type in the ABI that added it
        return np.dtype("<u4") if name == "rule_id" else np.dtype("<u8")
    return dt[name]


def decode(code: int, data: bytes, n: int) -> np.ndarray:
    """A stored column back as an array (n rows for per-event columns)."""
    dt = column_dtype(code)
    arr = np.frombuffer(data, dt.base if dt.subdtype else dt)
    return arr.reshape(n, *dt.shape) if dt.subdtype else arr


@dataclass
class Extracted:
    """One batch as columns: the per-event fields (by code), and where the events with paths have them."""

    n: int
    fields: dict[int, np.ndarray]
    path_rows: np.ndarray      # positions of the events that carry paths
    path_keys: list[bytes]     # their path sections: each path and its NUL; b"\0" first when slot 0 is empty


def starts_of(sizes: np.ndarray) -> np.ndarray:
    """Where each record starts, from the records' sizes."""
    starts = np.zeros(len(sizes), np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    return starts


def extract(buf: bytes, sizes: np.ndarray, layout: Layout = CURRENT) -> Extracted:
    """The columns of the records back to back in `buf` (sizes: each record's size field)."""
    dt = dtype_of(layout)
    n, fixed = len(sizes), layout.size
    if n * fixed == len(buf):            # no record has paths: the bytes are the array
        hdr = np.frombuffer(buf, dt)
        return Extracted(n, {code: hdr[name] for name, code in FIELD_CODES.items() if name in names_of(dt)},
                         np.zeros(0, np.int64), [])
    # gather each fixed part, 8-byte words at a time (records are 8-aligned)
    starts = starts_of(sizes)
    words = np.frombuffer(buf, "<u8", count=len(buf) // 8)
    hdr = words[(starts >> 3)[:, None] + np.arange(fixed // 8)].view(dt).ravel()
    fields = {code: hdr[name] for name, code in FIELD_CODES.items() if name in names_of(dt)}
    rows = np.flatnonzero(sizes > fixed)
    keys: list[bytes] = []
    append = keys.append
    for at, (l0, l1) in zip((starts[rows] + fixed).tolist(), hdr["path_len"][rows].tolist(), strict=True):
        # a path of length 0 takes no bytes, not even its NUL (docs/kernel-abi.md)
        end = at + (l0 + 1 if l0 else 0) + (l1 + 1 if l1 else 0)
        append(buf[at:end] if l0 else b"\0" + buf[at:end])
    return Extracted(n, fields, rows, keys)


def records(fields: Mapping[int, np.ndarray], paths: list[tuple[bytes, bytes]] | None, n: int,
            layout: Layout = CURRENT) -> bytes:
    """Records in `layout` with these columns (missing ones zero) and paths (None: none has any)."""
    dt = dtype_of(layout)
    hdr = np.zeros(n, dt)
    for name, code in FIELD_CODES.items():
        col = fields.get(code)
        if col is not None and name in names_of(dt):
            hdr[name] = col
    fixed = layout.size
    hdr["size"] = fixed
    if not paths or not any(a or b for a, b in paths):
        return hdr.tobytes()
    hdr["path_len"] = [(len(a), len(b)) for a, b in paths]
    out = []
    for i, (a, b) in enumerate(paths):
        tail = (a + b"\0" if a else b"") + (b + b"\0" if b else b"")
        if tail:
            size = (fixed + len(tail) + 7) & ~7
            hdr["size"][i] = size
            out.append(hdr[i:i + 1].tobytes() + tail + b"\0" * (size - fixed - len(tail)))
        else:
            out.append(hdr[i:i + 1].tobytes())
    return b"".join(out)
