"""Searching the archive (saga query, saga report, saga log without a daemon).

A search resolves its filter once against the small tables (hosts, the
strings a glob matches, the rules a key names), then walks the batches
that can hold matches: the SQL on event_batches picks them by host and
time range, their summaries (syscalls, errnos, rules, path sets) skip more,
and numpy tests the columns of the rest, a batch at a time, reading only
the columns the filter names.  A search for failed calls reads only the
batch's failures (their rows, stored by errno: saga.store.columns), never
its columns.  Memory stays bounded by a batch whatever the result size;
events come out in archive order (the order calls completed, as the live
log shows them), each batch's matches built from its columns and parsed
by the code that parses the live stream.  Everything goes through the
database driver's own connection (saga.store.reader), no SQLAlchemy.
"""
from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import translate as glob_regex
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from saga import _uapi, fastrender, render
from saga.errors import StoreError
from saga.filters import EventFilter
from saga.store import columns
from saga.store.columns import COLUMN_SLOTS, FIELD_CODES, event_id
from saga.store.errors import translate
from saga.store.reader import Reader, placeholders

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_C = FIELD_CODES
PAGE = 256                  # batch rows read per statement
CHUNK = 4096                # events built per step when printing
AHEAD_BYTES = 16 << 20      # column bytes read ahead for the next batches at most
BLOCK_PARTS = 8             # parts of a block at most (each holds its batch's columns read so far)
BLOCK_WAIT = 0.1            # seconds a block of matches waits for more before it is printed
FEW_ROWS = 64               # rows of a batch read alone rather than with their whole columns
_WILD = re.compile(r"[*?\[]")
_EMPTY = np.zeros(0, np.int64)
# What a line's call text depends on (render.call_text): the same key, the same text.  aux: 0, or the
# position + 1 of an event with an aux blob (never shared).
_CALL_KEY = np.dtype([("nr", "<u2"), ("flags", "<u2"), ("ret", "<i8"), ("args", "<u8", (6,)), ("path0", "<u4"),
                      ("path1", "<u4"), ("aux", "<u8")])
_RECORD_CODES = frozenset(FIELD_CODES[n] for n in ("nr", "flags", "ret", "args"))
_CALLS_KEPT = 65536
# The columns a line is made of (saga.fastrender.ROW_FIELDS): a search reads no others to print.
_TEXT_CODES = tuple({**FIELD_CODES, "path0": columns.PATH0, "path1": columns.PATH1}[f] for f in fastrender.ROW_FIELDS)


class Archived(NamedTuple):
    """An archived event: the raw tuple saga.render prints, plus what only the archive knows."""

    id: int
    host: str
    exe: str | None
    raw: tuple


@dataclass(frozen=True)
class Plan:
    """A filter resolved against the database: None = no condition, an empty array = nothing can match."""

    hosts: dict[int, str]
    host_ids: list[int] | None
    path_ids: np.ndarray | None
    exe_ids: np.ndarray | None
    unit_ids: np.ndarray | None
    rule_ids: dict[int, np.ndarray] | None
    slots: np.ndarray | None          # a lookup table by slot
    no_errno: bool = False            # an errno no call can fail with

    @property
    def impossible(self) -> bool:
        return any(a is not None and not len(a) for a in (self.path_ids, self.exe_ids, self.unit_ids)) or \
            (self.host_ids is not None and not self.host_ids) or self.no_errno or \
            (self.rule_ids is not None and not any(len(v) for v in self.rule_ids.values()))


def _decode(value: bytes) -> str:
    return bytes(value).decode("utf-8", "surrogateescape")


def match_strings(db: Reader, pattern: str, *, base_name: bool = False) -> np.ndarray:
    """Sorted ids of the stored strings that `pattern` (a glob, or a plain string) matches exactly.

    base_name: a pattern without "/" is matched against the part after the last "/".
    """
    raw = pattern.encode("utf-8", "surrogateescape")
    if not _WILD.search(pattern) and not (base_name and "/" not in pattern):
        return np.array(sorted(i for (i,) in db.all("SELECT id FROM strings WHERE value = ?", (raw,))), np.int64)
    rx = re.compile(glob_regex(pattern), re.S)
    wild = _WILD.search(pattern)
    literal = raw[:len(pattern[:wild.start()].encode("utf-8", "surrogateescape"))] if wild else raw
    if literal and not base_name or literal.startswith(b"/"):    # the b-tree narrows it
        rows = db.all("SELECT id, value FROM strings WHERE value >= ? AND value < ?", (literal, literal + b"\xff"))
    else:
        rows = db.all("SELECT id, value FROM strings")
    found = []
    for i, value in rows:
        text = _decode(value)
        if base_name and "/" not in pattern:
            text = text.rsplit("/", 1)[-1]
        if rx.match(text):
            found.append(i)
    return np.array(sorted(found), np.int64)


def plan(db: Reader, flt: EventFilter) -> Plan:
    hosts = {int(i): n for i, n in db.all("SELECT id, name FROM hosts")}
    host_ids = None if flt.host is None else [i for i, n in hosts.items() if n == flt.host]
    rule_ids = None
    if flt.key is not None:
        rows = db.all("SELECT host_id, rule_id FROM rule_keys WHERE key = ?", (flt.key,))
        rule_ids = {h: np.array(sorted(r for hh, r in rows if hh == h), np.int64) for h in {h for h, _ in rows}}
    slots = None
    if flt.slots is not None:
        slots = np.zeros(_uapi.SAGA_NR_SLOTS, bool)
        slots[sorted(flt.slots)] = True
    return Plan(hosts, host_ids,
                None if flt.path is None else match_strings(db, flt.path),
                None if flt.exe is None else match_strings(db, flt.exe, base_name=True),
                None if flt.unit is None else match_strings(db, flt.unit),
                rule_ids, slots, flt.errno is not None and not 0 < flt.errno <= columns.MAX_ERRNO)


class BatchRow(NamedTuple):
    id: int
    host_id: int
    events: int
    min_ts: int
    max_ts: int
    syscalls: bytes
    errnos: bytes
    rule_ids: bytes


_BATCH_COLUMNS = ", ".join(BatchRow._fields)


class Batch:
    """One batch row and its columns, read when first asked for."""

    def __init__(self, db: Reader, row: BatchRow) -> None:
        self.db = db
        self.id = row.id
        self.host_id = row.host_id
        self.n = row.events
        self.row = row
        self._cols: dict[int, np.ndarray] = {}
        self.ahead: dict[int, bytes | None] = {}    # columns read ahead with other batches' (None: not stored)

    def col(self, code: int) -> np.ndarray:
        arr = self._cols.get(code)
        if arr is None:
            self.load([code])
            arr = self._cols[code]
        return arr

    def load(self, codes: list[int]) -> None:
        """Read several columns in one statement (a column not stored reads as zeros, or empty)."""
        want = [c for c in codes if c not in self._cols]
        if not want:
            return
        base = self.id * COLUMN_SLOTS
        got = {base + c: self.ahead.pop(c) for c in want if c in self.ahead}
        fetch = [base + c for c in want if base + c not in got]
        if fetch:
            among, params = self.db.among("id", fetch)
            got.update(self.db.all(f"SELECT id, data FROM event_columns WHERE {among}", params))
        for code in want:
            data = got.get(base + code)
            self._cols[code] = columns.zeros(code, self.n) if data is None else columns.decode(code, data, self.n)

    def pick(self, codes: Sequence[int], pos: np.ndarray) -> dict[int, np.ndarray]:
        """The values at positions `pos` of these per-event columns.  A few rows of columns not read yet are
        read alone (substr of each column's bytes: PostgreSQL fetches only the chunks that hold them, and a
        search that prints 7 events of a 65,536-event batch does not read its 10 MB); otherwise whole columns."""
        want = [c for c in codes if c not in self._cols]
        if len(pos) > FEW_ROWS or not want:
            self.load(want)
            return {c: self._cols[c][pos] for c in codes}
        out = {c: self._cols[c][pos] for c in codes if c in self._cols}
        base = self.id * COLUMN_SLOTS
        width = {c: columns.element_type(c).itemsize * int(np.prod(columns.STORED[c].shape)) for c in want}
        if self.db.reads_pieces:
            for c in want:
                data = self.db.pieces(base + c, [p * width[c] for p in pos.tolist()], width[c])
                out[c] = columns.zeros(c, len(pos)) if data is None else columns.decode(c, data, len(pos))
            return out
        rows = [(base + c, int(p) * width[c] + 1, width[c]) for c in want for p in pos.tolist()]
        values = ",".join(["(CAST(? AS BIGINT), CAST(? AS INTEGER), CAST(? AS INTEGER))"] * len(rows))
        got = {(int(i), int(at)): bytes(data) for i, at, data in self.db.all(
            "SELECT c.id, v.column2, substr(c.data, v.column2, v.column3) FROM event_columns c "
            f"JOIN (VALUES {values}) AS v ON c.id = v.column1", [x for row in rows for x in row])}
        for c in want:
            parts = [got.get((base + c, int(p) * width[c] + 1)) for p in pos.tolist()]
            if parts[0] is None:            # a column not stored: zeros
                out[c] = columns.zeros(c, len(pos))
            else:
                out[c] = columns.decode(c, b"".join(x or bytes(width[c]) for x in parts), len(pos))
        return out

    def failures(self, errno: int | None) -> np.ndarray:
        """The rows of the calls that failed (with this errno, when given), in archive order."""
        base = self.id * COLUMN_SLOTS + columns.FAILURES
        if errno is not None:
            if columns.FAILURES + errno in self.ahead:
                data = self.ahead.pop(columns.FAILURES + errno)
            else:
                found = self.db.all("SELECT data FROM event_columns WHERE id = ?", (base + errno,))
                data = found[0][0] if found else None
            return np.zeros(0, columns.FAILURE_ROW) if data is None else np.frombuffer(data, columns.FAILURE_ROW)
        parts = [np.frombuffer(data, columns.FAILURE_ROW) for (data,) in self.db.all(
            "SELECT data FROM event_columns WHERE id BETWEEN ? AND ?", (base + 1, base + columns.MAX_ERRNO))]
        if not parts:
            return np.zeros(0, columns.FAILURE_ROW)
        rows = np.concatenate(parts)
        return rows[np.argsort(rows["pos"], kind="stable")]

    def keys_for(self, code: int, ids: np.ndarray) -> np.ndarray:
        """The keys (pids) of a pair column whose string id is in `ids`."""
        pairs = self.col(code)
        return pairs["key"][np.isin(pairs["id"], ids)]


class Rows:
    """The events of a batch a search examines: all of them (its columns, read as needed), or only the
    calls that failed (their failure rows, every field at hand)."""

    def __init__(self, batch: Batch, failures: np.ndarray | None = None) -> None:
        self.batch = batch
        self.failures = failures
        self.n = batch.n if failures is None else len(failures)

    def col(self, code: int) -> np.ndarray:
        if self.failures is None:
            return self.batch.col(code)
        return self.failures[columns.CODE_NAMES[code]]

    def fields(self, idx: np.ndarray) -> dict[int, np.ndarray]:
        """Every per-event column (columns.EVENT_CODES) of the rows at these indexes."""
        if self.failures is None:
            return self.batch.pick(columns.EVENT_CODES, idx)
        return {code: self.col(code)[idx] for code in columns.EVENT_CODES}

    def positions(self, idx: np.ndarray) -> np.ndarray:
        """The positions in the batch of these rows."""
        return idx if self.failures is None else self.failures["pos"][idx].astype(np.int64)

    def table(self, idx: np.ndarray, codes: Sequence[int] = columns.EVENT_CODES) -> np.ndarray:
        """The rows at these indexes as failure rows (columns.FAILURE_ROW): the failures as they were read, or
        these columns of the events put together (the others zero)."""
        if self.failures is not None:
            return self.failures if len(idx) == self.n else self.failures[idx]
        out = np.zeros(len(idx), columns.FAILURE_ROW)
        out["pos"] = idx
        for code, col in self.batch.pick(codes, idx).items():
            out[columns.CODE_NAMES[code]] = col
        return out


def _summary_skips(row: BatchRow, flt: EventFilter, p: Plan) -> bool:
    """Whether the batch's summaries alone show that none of its events matches."""
    if p.slots is not None:
        present = np.unpackbits(np.frombuffer(row.syscalls, np.uint8), bitorder="little")[:len(p.slots)]
        if not (present.astype(bool) & p.slots).any():
            return True
    if flt.errno is not None or flt.errors:
        errnos = memoryview(row.errnos).cast("B").cast("H")    # u16 little-endian (saga runs little-endian)
        if not len(errnos) or (flt.errno is not None and flt.errno not in errnos):
            return True
    if p.rule_ids is not None:
        mine = p.rule_ids.get(row.host_id)
        if mine is None or not np.isin(np.frombuffer(row.rule_ids, "<u4"), mine).any():
            return True
    return False


# ABI 2 keeps the aux kind in flags bits 8-10 (docs/kernel-abi.md); ABI 1 records have none.
_AUX_SHIFT = getattr(_uapi, "SAGA_EVF_AUX_SHIFT", 8)
_AUX_MASK = getattr(_uapi, "SAGA_EVF_AUX_MASK", 0x700)
_AUX_ARGV = getattr(_uapi, "SAGA_AUX_ARGV", 1)


def _argv_contains(b: Batch, needle: bytes) -> np.ndarray:
    """Which events of the batch carry an aux blob containing `needle`, the arguments joined by spaces."""
    out = np.zeros(b.n, bool)
    index = b.col(columns.AUX_INDEX)
    if not len(index):
        return out
    ends = index["id"].astype(np.int64)
    starts = np.concatenate(([0], ends[:-1]))
    data = b.col(columns.AUX_DATA).tobytes().replace(b"\0", b" ")
    at = data.find(needle)
    while at >= 0:
        k = int(np.searchsorted(ends, at, side="right"))
        if at + len(needle) <= ends[k]:          # inside one event's blob
            out[index["key"][k]] = True
            at = data.find(needle, int(ends[k]))  # next event's blob
        else:
            at = data.find(needle, int(starts[k + 1]) if k + 1 < len(ends) else len(data))
    return out


def matches(rows: Rows, flt: EventFilter, p: Plan) -> np.ndarray:
    """Indexes in `rows` of the events that match (sorted)."""
    b = rows.batch
    mask = np.ones(rows.n, bool)

    def narrow(test: Callable[[], np.ndarray]) -> bool:
        nonlocal mask
        mask &= test()
        return bool(mask.any())

    # cheapest and most selective first: per-batch sets, then whole columns
    steps: list[Callable[[], np.ndarray]] = []
    if p.path_ids is not None:
        ids = p.path_ids
        steps.append(lambda: np.full(rows.n, np.isin(b.col(columns.PATHSET), ids).any()))
        steps.append(lambda: _holds_path(rows, ids))
    if p.exe_ids is not None:
        ids_e = p.exe_ids
        steps.append(lambda: np.isin(rows.col(_C["pid"]), b.keys_for(columns.EXES, ids_e)))
    if p.unit_ids is not None:
        ids_u = p.unit_ids
        steps.append(lambda: np.isin(rows.col(_C["pid"]), b.keys_for(columns.UNITS, ids_u)))
    if p.rule_ids is not None:
        rids = p.rule_ids.get(b.host_id, _EMPTY)
        steps.append(lambda: np.isin(rows.col(_C["rule_id"]), rids))
    for name in ("pid", "tid", "ppid", "uid"):
        want = getattr(flt, name)
        if want is not None:
            steps.append(_equals(rows, _C[name], want))
    if p.slots is not None:
        lut = p.slots
        steps.append(lambda: lut[rows.col(_C["nr"])])
    if flt.comm is not None:
        want_comm = np.frombuffer(flt.comm_bytes or b"", "V16")[0]
        steps.append(lambda: rows.col(_C["comm"]) == want_comm)
    if flt.since_ns is not None and b.row.min_ts < flt.since_ns:
        since = flt.since_ns
        steps.append(lambda: rows.col(_C["ts_ns"]) >= since)
    if flt.until_ns is not None and b.row.max_ts > flt.until_ns:
        until = flt.until_ns
        steps.append(lambda: rows.col(_C["ts_ns"]) <= until)
    if flt.argv is not None:
        needle = flt.argv.encode("utf-8", "surrogateescape")
        steps.append(lambda: _argv_contains(b, needle)[rows.positions(np.arange(rows.n))] &
                     ((rows.col(_C["flags"]) & _AUX_MASK) >> _AUX_SHIFT == _AUX_ARGV))
    if not steps:       # every row (a search of one errno in a batch inside its time range)
        return np.arange(rows.n)
    for step in steps:
        if not narrow(step):
            return _EMPTY
    return np.flatnonzero(mask)


def _holds_path(rows: Rows, ids: np.ndarray) -> np.ndarray:
    """Which events have a path among these ids."""
    if rows.failures is None:
        rows.batch.load([columns.PATH0, columns.PATH1])       # in one statement
    return np.isin(rows.col(columns.PATH0), ids) | np.isin(rows.col(columns.PATH1), ids)


def _equals(rows: Rows, code: int, want: int) -> Callable[[], np.ndarray]:
    return lambda: rows.col(code) == want


class Search:
    """One search: the filter resolved, the batches walked, the matches built into events."""

    def __init__(self, db: Reader | Session, flt: EventFilter, progress: Callable[[], None] | None = None) -> None:
        self.db = db if isinstance(db, Reader) else Reader.of(db)
        self.flt = flt
        with translate("searching the archive"):
            self.plan = plan(self.db, flt)
        self._strings: dict[int, bytes] = {}
        self._names: dict[int, str] = {}      # executables' names by string id
        self._call_texts: dict[bytes, str] = {}   # render.call_text by _CALL_KEY
        self._taught = np.zeros(0, bool)      # by string id: the paths taught to the compiled renderer
        self._scope = fastrender.new_scope()  # what they are ids of, for it
        self.progress = progress      # called for each batch examined
        self.first: list[int] = []    # per-batch columns the caller reads of every batch (read ahead)

    def _where(self) -> tuple[list[str], list]:
        flt, p = self.flt, self.plan
        conds: list[str] = []
        params: list = []
        if p.host_ids is not None:
            conds.append(f"host_id IN ({placeholders(len(p.host_ids))})")
            params += p.host_ids
        if flt.since_ns is not None:
            conds.append("max_ts >= ?")
            params.append(flt.since_ns)
        if flt.until_ns is not None:
            conds.append("min_ts <= ?")
            params.append(flt.until_ns)
        return conds, params

    def total_batches(self) -> int:
        conds, params = self._where()
        with translate("searching the archive"):
            found = self.db.one("SELECT count(*) FROM event_batches" + "".join(
                (" WHERE " if i == 0 else " AND ") + c for i, c in enumerate(conds)), params)
        return int(found[0]) if found else 0

    def batches(self, *, newest: bool = False) -> Iterator[Batch]:
        """The batches that can hold matches, in archive order (newest=True: from the newest back)."""
        if self.plan.impossible:
            return
        after: int | None = None
        while True:
            conds, params = self._where()
            if after is not None:
                conds.append("id < ?" if newest else "id > ?")
                params.append(after)
            sql = f"SELECT {_BATCH_COLUMNS} FROM event_batches" + "".join(
                (" WHERE " if i == 0 else " AND ") + c for i, c in enumerate(conds))
            sql += f" ORDER BY id {'DESC' if newest else 'ASC'} LIMIT {PAGE}"
            with translate("searching the archive"):
                page = [BatchRow._make(r) for r in self.db.all(sql, params)]
            kept = deque(None if _summary_skips(row, self.flt, self.plan) else Batch(self.db, row) for row in page)
            for batch in self._read_ahead(kept, newest):
                if self.progress is not None:
                    self.progress()
                if batch is not None:
                    yield batch
            if len(page) < PAGE:
                return
            after = page[-1].id

    # The read-ahead steps take the batches from the front of a deque as they give them on: a batch the search
    # is done with is held by none of them (its columns go with it).

    def _read_ahead(self, page: deque[Batch | None], newest: bool) -> Iterator[Batch | None]:
        """The batches of a page (None: skipped by its summaries), what the search reads of each first (the
        failure rows of its errno, the path sets, executables, units a filter names) read ahead for many
        batches in one statement (a statement per batch and column was most of a search on PostgreSQL: a
        round trip each): on SQLite as the statement steps, a row at a time; on PostgreSQL AHEAD_BYTES at a
        time at most (their sizes read first).  Then, for a path search, the path columns of the batches
        whose path set holds a match, as many at once."""
        flt, p = self.flt, self.plan
        first = [columns.FAILURES + flt.errno] if flt.errno is not None else []
        first += self.first
        first += [code for code, ids in ((columns.PATHSET, p.path_ids), (columns.EXES, p.exe_ids),
                                         (columns.UNITS, p.unit_ids)) if ids is not None]
        if not first or sum(b is not None for b in page) < 2:
            while page:
                yield page.popleft()
            return
        batches = self._stepped(page, first, newest) if self.db.steps else self._grouped(page, first)
        if p.path_ids is not None and flt.errno is None and not flt.errors:
            batches = self._with_paths(batches)
        yield from batches

    def _stepped(self, page: deque[Batch | None], codes: list[int], newest: bool) -> Iterator[Batch | None]:
        """The page, these columns of its batches read by one statement a row at a time (SQLite: the rows come
        as it steps, in id order, so a batch's are read when it is reached and memory holds no more)."""
        among, params = self.db.among("id", [b.id * COLUMN_SLOTS + c for b in page if b is not None for c in codes])
        with translate("searching the archive"):
            rows = self.db.stream(f"SELECT id, data FROM event_columns WHERE {among} ORDER BY id "
                                  f"{'DESC' if newest else 'ASC'}", params)
            try:
                row = next(rows, None)
                while page:
                    batch = page.popleft()
                    if batch is not None:
                        base = batch.id * COLUMN_SLOTS
                        batch.ahead.update(dict.fromkeys(codes))
                        while row is not None and base <= row[0] < base + COLUMN_SLOTS:
                            batch.ahead[row[0] - base] = row[1]
                            row = next(rows, None)
                    yield batch
            finally:
                rows.close()

    def _grouped(self, page: deque[Batch | None], codes: list[int]) -> Iterator[Batch | None]:
        """The page, these columns of its batches read AHEAD_BYTES at a time (their sizes read first)."""
        with translate("searching the archive"):
            among, params = self.db.among("id", [b.id * COLUMN_SLOTS + c for b in page if b is not None
                                                 for c in codes])
            sizes = dict(self.db.all(f"SELECT id, length(data) FROM event_columns WHERE {among}", params))
        yield from self._in_groups(page, codes, lambda b: sum(sizes.get(b.id * COLUMN_SLOTS + c, 0) for c in codes))

    def _with_paths(self, batches: Iterator[Batch | None]) -> Iterator[Batch | None]:
        """The batches, both path columns of those whose path set holds a matching path read ahead, AHEAD_BYTES
        at a time (the batches in between wait with their path sets only)."""
        ids = self.plan.path_ids if self.plan.path_ids is not None else _EMPTY
        held: deque[Batch | None] = deque()
        found: set[int] = set()
        total = 0
        for batch in batches:
            held.append(batch)
            if batch is not None and np.isin(batch.col(columns.PATHSET), ids).any():
                found.add(batch.id)
                total += 8 * batch.n
            if total >= AHEAD_BYTES:
                yield from self._in_groups(held, [columns.PATH0, columns.PATH1], lambda b: 8 * b.n, found)
                found, total = set(), 0
        yield from self._in_groups(held, [columns.PATH0, columns.PATH1], lambda b: 8 * b.n, found)

    def _in_groups(self, page: deque[Batch | None], codes: list[int], size: Callable[[Batch], int],
                   only: set[int] | None = None) -> Iterator[Batch | None]:
        """The page, these columns of its batches (those in `only`) read in one statement for as many as
        their sizes add up to AHEAD_BYTES."""
        while page:
            group: deque[Batch | None] = deque()
            total = 0
            while page and total < AHEAD_BYTES:
                batch = page.popleft()
                group.append(batch)
                if batch is not None and (only is None or batch.id in only):
                    total += size(batch)
            self._fetch([b for b in group if b is not None and (only is None or b.id in only)], codes)
            while group:
                yield group.popleft()

    def _fetch(self, batches: list[Batch], codes: list[int]) -> None:
        """Read these columns of these batches in one statement, into each batch's `ahead`."""
        if not batches:
            return
        with translate("searching the archive"):
            among, params = self.db.among("id", [b.id * COLUMN_SLOTS + c for b in batches for c in codes])
            got = dict(self.db.all(f"SELECT id, data FROM event_columns WHERE {among}", params))
        for b in batches:
            for c in codes:
                b.ahead[c] = got.get(b.id * COLUMN_SLOTS + c)

    def rows_of(self, batch: Batch, *, failures: bool = False) -> Rows:
        """What of the batch the search examines: only the failures when the filter asks for failed calls
        (or the caller only counts them)."""
        flt = self.flt
        if flt.errno is not None or flt.errors or failures:
            return Rows(batch, batch.failures(flt.errno))
        return Rows(batch)

    def whole(self, batch: Batch) -> bool:
        """Whether every event of the batch the filter's syscalls select matches (no other condition
        applies to it): a report can then add up the batch's stored tally."""
        f = self.flt
        others = (f.pid, f.uid, f.comm, f.path, f.errno, f.exe, f.key, f.ppid, f.tid, f.unit, f.argv)
        return all(v is None for v in others) and not f.errors and \
            (f.since_ns is None or batch.row.min_ts >= f.since_ns) and \
            (f.until_ns is None or batch.row.max_ts <= f.until_ns)

    def scan(self, *, newest: bool = False, idle: bool = False) -> Iterator[tuple[Rows, np.ndarray]]:
        """(rows, indexes of its matches) for each batch with matches (idle: of every batch examined)."""
        for batch in self.batches(newest=newest):
            with translate("searching the archive"):
                rows = self.rows_of(batch)
                idx = matches(rows, self.flt, self.plan)
            if len(idx) or idle:
                yield rows, idx

    def strings(self, ids) -> dict[int, bytes]:
        """Stored strings by id (cached for the search)."""
        want = sorted({int(i) for i in ids if i and int(i) not in self._strings})
        for i in range(0, len(want), 500):
            among, params = self.db.among("id", want[i:i + 500])
            self._strings.update((int(k), bytes(v)) for k, v in self.db.all(
                f"SELECT id, value FROM strings WHERE {among}", params))
        missing = [i for i in want if i not in self._strings]
        if missing:
            raise StoreError(f"the archive is damaged: string {missing[0]} is missing")
        return self._strings

    def events(self, rows: Rows, idx: np.ndarray) -> list[Archived]:
        """The events at these indexes of `rows`, as the live stream would have parsed them."""
        batch = rows.batch
        with translate("reading archived events"):
            batch.load([columns.EXES, columns.AUX_INDEX])
            fields = rows.fields(idx)
            pos = rows.positions(idx)
            p0, p1 = fields[columns.PATH0], fields[columns.PATH1]
            paths = None
            if p0.any() or p1.any():
                known = self.strings(np.concatenate((p0, p1)).tolist())
                paths = [(known[a] if a else None, known[b] if b else None)
                         for a, b in zip(p0.tolist(), p1.tolist(), strict=True)]
            raws = columns.raws(fields, len(idx), paths, self._aux(batch, pos))
            exes = self._exes(batch, fields[_C["pid"]])
        host = self.host_of(rows)
        ids = (pos + event_id(batch.id, 0)).tolist()
        return [Archived(i, host, e, r) for i, e, r in zip(ids, exes, raws, strict=True)]

    def _exes(self, batch: Batch, pids: np.ndarray) -> list[str | None]:
        """The executable of each pid, as the batch recorded it."""
        table = batch.col(columns.EXES)
        if not len(table):
            return [None] * len(pids)
        at = np.searchsorted(table["key"], pids).clip(max=len(table) - 1)
        ids = np.where(table["key"][at] == pids, table["id"][at], 0).tolist()
        names = self._names
        new = [i for i in set(ids) if i and i not in names]
        if new:
            known = self.strings(new)
            names.update((i, _decode(known[i])) for i in new)
        return [names.get(i) for i in ids]

    @staticmethod
    def _aux(batch: Batch, pos: np.ndarray) -> dict[int, bytes] | None:
        """The aux blobs of the events at pos, by index into pos."""
        index = batch.col(columns.AUX_INDEX)
        if not len(index):
            return None
        at = np.searchsorted(index["key"], pos).clip(max=len(index) - 1)
        hits = np.flatnonzero(index["key"][at] == pos).tolist()
        if not hits:
            return None
        data = batch.col(columns.AUX_DATA).tobytes()
        starts = np.concatenate(([0], index["id"][:-1]))
        out = {}
        for i in hits:
            k = int(at[i])
            out[i] = data[int(starts[k]):int(index["id"][k])]
        return out

    def lines(self, rows: Rows, idx: np.ndarray) -> list[str]:
        """The events at these indexes of `rows` as saga.render.line prints them, rendered from their
        columns: each distinct call (syscall, arguments, paths, return value, flags) is rendered once per
        search from its record, and every line is put together from columns (render.lines_of)."""
        batch = rows.batch
        with translate("reading archived events"):
            f = rows.fields(idx)
            pos = rows.positions(idx)
            calls = self._calls(batch, f, pos)
        return render.lines_of(f[_C["ts_ns"]], f[_C["cpu"]].tolist(), f[_C["pid"]].tolist(),
                               f[_C["tid"]].tolist(), f[_C["uid"]].tolist(), f[_C["comm"]], calls,
                               f[_C["duration_ns"]].tolist(), f[_C["flags"]].tolist())

    def text(self, block: Sequence[tuple[Rows, np.ndarray]]) -> bytes:
        """The lines of lines() of a block of parts, each ending in a newline, as bytes: rendered by the
        compiled renderer from the rows' fields (saga.fastrender.Renderer.rows) when it is there, else by
        lines()."""
        fast = fastrender.shared()
        if fast is None:
            return "".join([t + "\n" for rows, idx in block for t in self.lines(rows, idx)]).encode(
                "utf-8", "surrogateescape")
        with translate("reading archived events"):
            tables = [rows.table(idx, _TEXT_CODES) for rows, idx in block]
            starts = np.cumsum([0] + [len(t) for t in tables])
            # as bytes: np.concatenate of structured arrays compares their fields, 20 µs a part
            table = tables[0] if len(tables) == 1 else \
                np.frombuffer(b"".join([t.tobytes() for t in tables]), columns.FAILURE_ROW)
            self._teach_paths(fast, table)
            return fast.rows(table, self._scope,
                             lambda idx, marked: self._records([b.batch for b, _ in block], starts, table, idx, marked),
                             lambda i: self.strings([i])[i])

    def _teach_paths(self, fast: fastrender.Renderer, table: np.ndarray) -> None:
        """Teach the renderer the quoted paths of these rows it has not been taught in this search, at once."""
        ids = np.concatenate((table["path0"], table["path1"]))
        if not len(ids):
            return
        top = int(ids.max())
        if top >= len(self._taught):
            grown = np.zeros(max(top + 1, 2 * len(self._taught)), bool)
            grown[:len(self._taught)] = self._taught
            self._taught = grown
        new = np.unique(ids[~self._taught[ids]])
        new = new[new != 0].tolist()
        if new:
            known = self.strings(new)
            fast.learn_paths(self._scope, new, [known[i] for i in new])
            self._taught[new] = True

    def _records(self, batches: list[Batch], starts: np.ndarray, table: np.ndarray, idx: np.ndarray,
                 marked: bool) -> list[tuple]:
        """The records of the rows of `table` at `idx` (sorted; the rows from starts[k] on are of batches[k]),
        with fastrender.MARKS in place of their paths when marked."""
        out: list[tuple] = []
        for k, batch in enumerate(batches):
            at = idx[(idx >= starts[k]) & (idx < starts[k + 1])]
            if not len(at):
                continue
            rows = table[at]
            a, b = rows["path0"].tolist(), rows["path1"].tolist()
            if marked:
                first, second = fastrender.MARKS
                paths = [(first if x else None, second if y else None) for x, y in zip(a, b, strict=True)]
            else:
                known = self.strings(a + b)
                paths = [(known[x] if x else None, known[y] if y else None) for x, y in zip(a, b, strict=True)]
            fields = {code: rows[columns.CODE_NAMES[code]] for code in columns.EVENT_CODES}
            out += columns.raws(fields, len(at), paths, self._aux(batch, rows["pos"].astype(np.int64)))
        return out

    def _calls(self, batch: Batch, f: dict[int, np.ndarray], pos: np.ndarray) -> list[str]:
        """render.call_text of each event, each distinct call rendered once (by its _CALL_KEY)."""
        n = len(pos)
        key = np.zeros(n, _CALL_KEY)
        for name in ("nr", "flags", "ret", "args"):
            key[name] = f[_C[name]]
        key["path0"], key["path1"] = f[columns.PATH0], f[columns.PATH1]
        aux = self._aux(batch, pos) or {}
        if aux:         # a call with an aux blob is its own (argv, an address): never shared
            key["aux"][list(aux)] = pos[list(aux)] + 1
        keys: list[bytes] = key.view(f"V{_CALL_KEY.itemsize}").tolist()
        seen = self._call_texts
        texts: list[str | None] = [seen.get(k) for k in keys]
        if None not in texts:
            return texts        # type: ignore[return-value]
        firsts: dict[bytes, int] = {}
        for i, (k, t) in enumerate(zip(keys, texts, strict=True)):
            if t is None and k not in firsts:
                firsts[k] = i
        at = np.array(list(firsts.values()), np.int64)
        paths = None
        p0, p1 = f[columns.PATH0][at], f[columns.PATH1][at]
        if p0.any() or p1.any():
            known = self.strings(np.concatenate((p0, p1)).tolist())
            paths = [(known[a] if a else None, known[b] if b else None)
                     for a, b in zip(p0.tolist(), p1.tolist(), strict=True)]
        where = {i: j for j, i in enumerate(firsts.values())}
        blobs = {where[i]: blob for i, blob in aux.items() if i in where}
        raws = columns.raws({code: col[at] for code, col in f.items() if code in _RECORD_CODES}, len(at),
                            paths, blobs or None)
        if len(seen) + len(firsts) > _CALLS_KEPT:
            seen.clear()
        new = {}
        for (k, i), raw in zip(firsts.items(), raws, strict=True):
            text = new[k] = render.call_text(raw)
            if i not in aux:
                seen[k] = text
        return [new[k] if t is None else t for k, t in zip(keys, texts, strict=True)]

    def host_of(self, rows: Rows) -> str:
        return self.plan.hosts.get(rows.batch.host_id, "?")

    def failed(self, rows: Rows, idx: np.ndarray) -> np.ndarray:
        """Which of these events are failed calls (as saga.filters.failed)."""
        ret, flags = rows.col(_C["ret"])[idx], rows.col(_C["flags"])[idx]
        return (ret > -4096) & (ret < 0) & (flags & _uapi.SAGA_EVF_NORETURN == 0)   # saga.filters.failed

    def parts(self, limit: int | None = None, *, idle: bool = False) -> Iterator[tuple[Rows, np.ndarray]]:
        """The matches in archive order, at most CHUNK at a time: every one as found (limit None; idle: an
        empty part for each batch examined without any), or the `limit` archived last."""
        if limit is None:
            for rows, idx in self.scan(idle=idle):
                if not len(idx):
                    yield rows, idx
                for i in range(0, len(idx), CHUNK):
                    yield rows, idx[i:i + CHUNK]
            return
        picked: list[tuple[Rows, np.ndarray]] = []
        left = limit
        for rows, idx in self.scan(newest=True):
            take = idx[-left:]
            picked.append((rows, take))
            left -= len(take)
            if left <= 0:
                break
        for rows, idx in reversed(picked):
            for i in range(0, len(idx), CHUNK):
                yield rows, idx[i:i + CHUNK]

    def stream(self) -> Iterator[Archived]:
        """Every match, oldest archived first, a chunk of a batch at a time."""
        for rows, idx in self.parts():
            yield from self.events(rows, idx)

    def last(self, limit: int) -> list[Archived]:
        """The `limit` matches archived last, oldest first."""
        return [a for rows, idx in self.parts(limit) for a in self.events(rows, idx)]


def blocks(parts: Iterable[tuple[Rows, np.ndarray]]) -> Iterator[list[tuple[Rows, np.ndarray]]]:
    """Parts gathered into blocks of up to CHUNK events (Search.text renders a block at a time: one string
    lookup and one pass of the renderer for the matches of many small batches); a block is given as soon as
    it is full, or once it has waited BLOCK_WAIT while the search went on (Search.parts(idle=True) gives
    an empty part for each batch examined), so the first lines never wait for later matches."""
    block: list[tuple[Rows, np.ndarray]] = []
    n, started = 0, 0.0
    for rows, idx in parts:
        if len(idx):
            if block and (n + len(idx) > CHUNK or len(block) >= BLOCK_PARTS):
                yield block
                block, n = [], 0
            if not block:
                started = time.monotonic()
            block.append((rows, idx))
            n += len(idx)
        if block and (n >= CHUNK or time.monotonic() - started >= BLOCK_WAIT):
            yield block
            block, n = [], 0
    if block:
        yield block


def search(db: Reader | Session, flt: EventFilter, limit: int | None = None) -> list[Archived]:
    """Events matching `flt` in archive order: the `limit` archived last, or all (limit None)."""
    s = Search(db, flt)
    return list(s.stream()) if limit is None else s.last(limit)


def hosts(db: Reader) -> list[str]:
    with translate("listing hosts"):
        return sorted(n for (n,) in db.all("SELECT name FROM hosts"))
