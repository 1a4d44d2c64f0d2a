"""Searching the archive (saga query, saga report, saga log without a daemon).

A search resolves its filter once against the small tables (hosts, the
strings a glob matches, the rules a key names), then walks the batches
that can hold matches: the SQL on event_batches picks them by host and
time range, their summaries (syscalls, errnos, rules, path sets) skip more,
and numpy tests the columns of the rest, a batch at a time, reading only
the columns the filter names.  Memory stays bounded by a batch whatever
the result size; events come out in archive order (the order calls
completed, as the live log shows them), each batch's matches built from
its columns and parsed by the code that parses the live stream.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import translate as glob_regex

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from saga import _uapi, events
from saga.errors import StoreError
from saga.filters import EventFilter
from saga.store import columns
from saga.store.archive import event_id
from saga.store.columns import COLUMN_SLOTS, FIELD_CODES
from saga.store.engine import translate
from saga.store.models import EventBatch, EventColumn, Host, RuleKey, StringRow

_C = FIELD_CODES
PAGE = 256                  # batch rows read per statement
CHUNK = 4096                # events built per step when printing
_WILD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Archived:
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

    @property
    def impossible(self) -> bool:
        return any(a is not None and not len(a) for a in (self.path_ids, self.exe_ids, self.unit_ids)) or \
            (self.host_ids is not None and not self.host_ids) or \
            (self.rule_ids is not None and not any(len(v) for v in self.rule_ids.values()))


def _decode(value: bytes) -> str:
    return bytes(value).decode("utf-8", "surrogateescape")


def match_strings(conn: Connection, pattern: str, *, base_name: bool = False) -> np.ndarray:
    """Sorted ids of the stored strings that `pattern` (a glob, or a plain string) matches exactly.

    base_name: a pattern without "/" is matched against the part after the last "/".
    """
    s = StringRow.__table__
    raw = pattern.encode("utf-8", "surrogateescape")
    if not _WILD.search(pattern) and not (base_name and "/" not in pattern):
        ids = conn.execute(select(s.c.id).where(s.c.value == raw)).scalars().all()
        return np.array(sorted(ids), np.int64)
    rx = re.compile(glob_regex(pattern), re.S)
    stmt = select(s.c.id, s.c.value)
    wild = _WILD.search(pattern)
    literal = raw[:len(pattern[:wild.start()].encode("utf-8", "surrogateescape"))] if wild else raw
    if literal and not base_name or literal.startswith(b"/"):
        stmt = stmt.where(s.c.value >= literal, s.c.value < literal + b"\xff")    # the b-tree narrows it
    found = []
    for i, value in conn.execute(stmt):
        text = _decode(value)
        if base_name and "/" not in pattern:
            text = text.rsplit("/", 1)[-1]
        if rx.match(text):
            found.append(i)
    return np.array(sorted(found), np.int64)


def plan(conn: Connection, flt: EventFilter) -> Plan:
    hosts = dict(conn.execute(select(Host.id, Host.name)).all())
    host_ids = None if flt.host is None else [i for i, n in hosts.items() if n == flt.host]
    rule_ids = None
    if flt.key is not None:
        rows = conn.execute(select(RuleKey.host_id, RuleKey.rule_id).where(RuleKey.key == flt.key)).all()
        rule_ids = {h: np.array(sorted(r for hh, r in rows if hh == h), np.int64) for h in {h for h, _ in rows}}
    slots = None
    if flt.slots is not None:
        slots = np.zeros(_uapi.SAGA_NR_SLOTS, bool)
        slots[sorted(flt.slots)] = True
    return Plan(hosts, host_ids,
                None if flt.path is None else match_strings(conn, flt.path),
                None if flt.exe is None else match_strings(conn, flt.exe, base_name=True),
                None if flt.unit is None else match_strings(conn, flt.unit),
                rule_ids, slots)


class Batch:
    """One batch row and its columns, read when first asked for."""

    def __init__(self, conn: Connection, row) -> None:
        self.conn = conn
        self.id = row.id
        self.host_id = row.host_id
        self.n = row.events
        self.row = row
        self._cols: dict[int, np.ndarray] = {}

    def col(self, code: int) -> np.ndarray:
        arr = self._cols.get(code)
        if arr is None:
            c = EventColumn.__table__
            data = self.conn.execute(select(c.c.data).where(c.c.id == self.id * COLUMN_SLOTS + code)).scalar()
            if data is None:            # not stored: all zeros (or no entries, for the per-batch arrays)
                arr = columns.zeros(code, self.n)
            else:
                arr = columns.decode(code, data, self.n)
            self._cols[code] = arr
        return arr

    def load(self, codes: list[int]) -> None:
        """Read several columns in one statement."""
        want = [c for c in codes if c not in self._cols]
        if not want:
            return
        c = EventColumn.__table__
        got = dict(self.conn.execute(select(c.c.id, c.c.data).where(
            c.c.id.in_([self.id * COLUMN_SLOTS + code for code in want]))).all())
        for code in want:
            data = got.get(self.id * COLUMN_SLOTS + code)
            if data is not None:
                self._cols[code] = columns.decode(code, data, self.n)
            else:
                self.col(code)

    def keys_for(self, code: int, ids: np.ndarray) -> np.ndarray:
        """The keys (pids, cgroup ids) of a pair column whose string id is in `ids`."""
        pairs = self.col(code)
        return pairs["key"][np.isin(pairs["id"], ids)]


def _summary_skips(row, flt: EventFilter, p: Plan) -> bool:
    """Whether the batch's summaries alone show that none of its events matches."""
    if p.slots is not None:
        present = np.unpackbits(np.frombuffer(row.syscalls, np.uint8), bitorder="little")[:len(p.slots)]
        if not (present.astype(bool) & p.slots).any():
            return True
    if flt.errno is not None or flt.errors:
        errnos = np.frombuffer(row.errnos, "<u2")
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
    """Which events carry an argv (execve) containing `needle`, the arguments joined by spaces."""
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
    flags = b.col(_C["flags"])
    return out & ((flags & _AUX_MASK) >> _AUX_SHIFT == _AUX_ARGV)


def _failed_with(b: Batch, errno: int | None) -> np.ndarray:
    """Which events failed (with this errno, when given), from the batch's index of failures."""
    b.load([columns.FAILED, columns.FAILED_ERRNO])
    pos = b.col(columns.FAILED)
    if errno is not None:
        pos = pos[b.col(columns.FAILED_ERRNO) == errno]
    out = np.zeros(b.n, bool)
    out[pos] = True
    return out


def _equals(b: Batch, code: int, want: int) -> Callable[[], np.ndarray]:
    return lambda: b.col(code) == want


def matches(b: Batch, flt: EventFilter, p: Plan) -> np.ndarray:
    """Positions in the batch of the events that match (sorted)."""
    mask = np.ones(b.n, bool)

    def narrow(test: Callable[[], np.ndarray]) -> bool:
        nonlocal mask
        mask &= test()
        return bool(mask.any())

    # cheapest and most selective first: per-batch sets, the index of failures, then whole columns
    steps: list[Callable[[], np.ndarray]] = []
    if p.path_ids is not None:
        ids = p.path_ids
        steps.append(lambda: np.full(b.n, np.isin(b.col(columns.PATHSET), ids).any()))
    if flt.errno is not None or flt.errors:
        steps.append(lambda: _failed_with(b, flt.errno))
    if p.path_ids is not None:
        steps.append(lambda: np.isin(b.col(columns.PATH0), ids) | np.isin(b.col(columns.PATH1), ids))
    if p.exe_ids is not None:
        ids_e = p.exe_ids
        steps.append(lambda: np.isin(b.col(_C["pid"]), b.keys_for(columns.EXES, ids_e)))
    if p.unit_ids is not None:
        ids_u = p.unit_ids
        steps.append(lambda: np.isin(b.col(_C["pid"]), b.keys_for(columns.UNITS, ids_u)))
    if p.rule_ids is not None:
        rids = p.rule_ids.get(b.host_id, np.zeros(0, np.int64))
        steps.append(lambda: np.isin(b.col(_C["rule_id"]), rids))
    for name in ("pid", "tid", "ppid", "uid"):
        want = getattr(flt, name)
        if want is not None:
            steps.append(_equals(b, _C[name], want))
    if p.slots is not None:
        lut = p.slots
        steps.append(lambda: lut[b.col(_C["nr"])])
    if flt.comm is not None:
        want_comm = np.frombuffer(flt.comm_bytes or b"", "V16")[0]
        steps.append(lambda: b.col(_C["comm"]) == want_comm)
    if flt.since_ns is not None and b.row.min_ts < flt.since_ns:
        since = flt.since_ns
        steps.append(lambda: b.col(_C["ts_ns"]) >= since)
    if flt.until_ns is not None and b.row.max_ts > flt.until_ns:
        until = flt.until_ns
        steps.append(lambda: b.col(_C["ts_ns"]) <= until)
    if flt.argv is not None:
        needle = flt.argv.encode("utf-8", "surrogateescape")
        steps.append(lambda: _argv_contains(b, needle))
    for step in steps:
        if not narrow(step):
            return np.zeros(0, np.int64)
    return np.flatnonzero(mask)


class Search:
    """One search: the filter resolved, the batches walked, the matches built into events."""

    def __init__(self, session: Session, flt: EventFilter, progress: Callable[[], None] | None = None) -> None:
        self.conn = session.connection()
        self.flt = flt
        with translate("searching the archive"):
            self.plan = plan(self.conn, flt)
        self._strings: dict[int, bytes] = {}
        self.progress = progress      # called for each batch examined

    def _where(self, stmt):
        b, flt, p = EventBatch.__table__, self.flt, self.plan
        if p.host_ids is not None:
            stmt = stmt.where(b.c.host_id.in_(p.host_ids))
        if flt.since_ns is not None:
            stmt = stmt.where(b.c.max_ts >= flt.since_ns)
        if flt.until_ns is not None:
            stmt = stmt.where(b.c.min_ts <= flt.until_ns)
        return stmt

    def total_batches(self) -> int:
        with translate("searching the archive"):
            return self.conn.execute(self._where(select(func.count()).select_from(EventBatch.__table__))).scalar_one()

    def batches(self, *, newest: bool = False) -> Iterator[Batch]:
        """The batches that can hold matches, in archive order (newest=True: from the newest back)."""
        b = EventBatch.__table__
        if self.plan.impossible:
            return
        cols = select(b.c.id, b.c.host_id, b.c.events, b.c.min_ts, b.c.max_ts, b.c.syscalls, b.c.errnos, b.c.rule_ids)
        after: int | None = None
        while True:
            stmt = self._where(cols)
            if after is not None:
                stmt = stmt.where(b.c.id < after if newest else b.c.id > after)
            with translate("searching the archive"):
                page = self.conn.execute(stmt.order_by(b.c.id.desc() if newest else b.c.id).limit(PAGE)).all()
            for row in page:
                if self.progress is not None:
                    self.progress()
                if not _summary_skips(row, self.flt, self.plan):
                    yield Batch(self.conn, row)
            if len(page) < PAGE:
                return
            after = page[-1].id

    def scan(self, *, newest: bool = False) -> Iterator[tuple[Batch, np.ndarray]]:
        """(batch, positions of its matches) for each batch with matches."""
        for batch in self.batches(newest=newest):
            with translate("searching the archive"):
                pos = matches(batch, self.flt, self.plan)
            if len(pos):
                yield batch, pos

    def strings(self, ids) -> dict[int, bytes]:
        """Stored strings by id (cached for the search)."""
        want = sorted({int(i) for i in ids if i and int(i) not in self._strings})
        s = StringRow.__table__
        for i in range(0, len(want), 500):
            part = want[i:i + 500]
            self._strings.update((k, bytes(v)) for k, v in self.conn.execute(
                select(s.c.id, s.c.value).where(s.c.id.in_(part))))
        missing = [i for i in want if i not in self._strings]
        if missing:
            raise StoreError(f"the archive is damaged: string {missing[0]} is missing")
        return self._strings

    def events(self, batch: Batch, pos: np.ndarray) -> list[Archived]:
        """The batch's events at these positions, as the live stream would have parsed them."""
        with translate("reading archived events"):
            batch.load([*FIELD_CODES.values(), columns.PATH0, columns.PATH1, columns.EXES, columns.AUX_INDEX])
            fields = {code: batch.col(code)[pos] for code in FIELD_CODES.values()}
            p0, p1 = batch.col(columns.PATH0)[pos], batch.col(columns.PATH1)[pos]
            paths = None
            if p0.any() or p1.any():
                known = self.strings(np.concatenate((p0, p1)).tolist())
                paths = [(known[a] if a else None, known[b] if b else None)
                         for a, b in zip(p0.tolist(), p1.tolist(), strict=True)]
            raws = events.parse(columns.records(fields, len(pos), paths, self._aux(batch, pos)))
            exes = batch.col(columns.EXES)
            exe_names: dict[int, str] = {}
            if len(exes):
                known = self.strings(exes["id"].tolist())
                exe_names = {int(k): _decode(known[int(v)]) for k, v in zip(exes["key"], exes["id"], strict=True)}
        host = self.plan.hosts.get(batch.host_id, "?")
        return [Archived(event_id(batch.id, i), host, exe_names.get(r[events.PID]), r)
                for i, r in zip(pos.tolist(), raws, strict=True)]

    @staticmethod
    def _aux(batch: Batch, pos: np.ndarray) -> dict[int, bytes] | None:
        """The aux blobs of the events at pos, by index into pos."""
        index = batch.col(columns.AUX_INDEX)
        if not len(index):
            return None
        data = batch.col(columns.AUX_DATA).tobytes()
        starts = np.concatenate(([0], index["id"][:-1]))
        at = np.searchsorted(index["key"], pos).clip(max=len(index) - 1)
        out = {}
        for i in np.flatnonzero(index["key"][at] == pos).tolist():
            k = int(at[i])
            out[i] = data[int(starts[k]):int(index["id"][k])]
        return out

    def stream(self) -> Iterator[Archived]:
        """Every match, oldest archived first, a chunk of a batch at a time."""
        for batch, pos in self.scan():
            for i in range(0, len(pos), CHUNK):
                yield from self.events(batch, pos[i:i + CHUNK])

    def last(self, limit: int) -> list[Archived]:
        """The `limit` matches archived last, oldest first."""
        picked: list[tuple[Batch, np.ndarray]] = []
        left = limit
        for batch, pos in self.scan(newest=True):
            take = pos[-left:]
            picked.append((batch, take))
            left -= len(take)
            if left <= 0:
                break
        return [a for batch, pos in reversed(picked) for a in self.events(batch, pos)]


def search(session: Session, flt: EventFilter, limit: int | None = None) -> list[Archived]:
    """Events matching `flt` in archive order: the `limit` archived last, or all (limit None)."""
    s = Search(session, flt)
    return list(s.stream()) if limit is None else s.last(limit)


def hosts(session: Session) -> list[str]:
    with translate("listing hosts"):
        return list(session.execute(select(Host.name).order_by(Host.name)).scalars())
