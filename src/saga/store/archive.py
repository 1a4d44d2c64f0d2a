"""Writing events into the archive, fast, and removing them by age, count or size.

Ingest is the hot path (bench/ingest, bench/daemon).  A write is one
transaction: per batch one event_batches row (its time range and the sets
of syscalls, errnos and rules it holds, for searches to skip it) and one
event_columns row per field (saga.store.columns: numpy gathers the fields
of every record at once).  Python touches each record with paths once, to
find its paths' ids; everything else costs per batch, not per event.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from saga import _uapi, events
from saga.errors import StoreError
from saga.events import SIZE
from saga.store import columns, latency
from saga.store.columns import COLUMN_SLOTS, FIELD_CODES, MAX_BATCH_EVENTS, Extracted, event_id, failed
from saga.store.errors import translate
from saga.store.models import EventBatch, EventColumn, StringRow

log = logging.getLogger("saga.store.archive")
_NONE: Mapping = {}
_NR, _RET, _FLAGS, _PID = FIELD_CODES["nr"], FIELD_CODES["ret"], FIELD_CODES["flags"], FIELD_CODES["pid"]
_RULE, _TS, _DURATION = FIELD_CODES["rule_id"], FIELD_CODES["ts_ns"], FIELD_CODES["duration_ns"]
_MERGED_CODES = columns.CALLS        # the columns a merge reads; those from CALLS on are derived again
# The strings a writer remembers (paths, executables, units); past this many it starts afresh.
CACHE_ENTRIES = 65536

# bytes read from a driver, and saga.events.parse of them, or their records' sizes (saga.events.sizes), or None
Read = tuple[bytes, Sequence | np.ndarray | None]


def sizes_of(buf: bytes, raws: Sequence | np.ndarray | None) -> np.ndarray:
    """Each record's size: given (the daemon's reads carry saga.events.sizes), from the parse when there is
    one, else read from the bytes."""
    if isinstance(raws, np.ndarray):
        return raws
    if raws is not None:
        return np.fromiter(map(itemgetter(SIZE), raws), np.int64, count=len(raws))
    return events.sizes(buf)


class Strings:
    """Ids of the strings (paths, executables, units) one writer uses: cached, new ones stored on first use.

    Ids handed out inside a transaction that then fails may not exist: the
    writer calls forget() after a failure.
    """

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self.ids: dict[bytes, int] = {}
        self.pairs: dict[bytes, int] = {}    # a record's path section -> both ids (first << 32 | second)

    def forget(self) -> None:
        self.ids.clear()
        self.pairs.clear()

    def lookup(self, conn: Connection, values: Iterable[bytes]) -> dict[bytes, int]:
        """The id of each value, storing the new ones (one statement for all, in the caller's transaction)."""
        ids = self.ids
        missing = sorted({v for v in values if v not in ids})
        if missing:
            if len(ids) + len(missing) > self.entries:
                self.forget()
            ids.update(_store_strings(conn, missing))
        return ids


def _store_strings(conn: Connection, values: list[bytes]) -> dict[bytes, int]:
    table = StringRow.__table__
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    add = dialect.insert(table).on_conflict_do_nothing(index_elements=["value"])
    found: dict[bytes, int] = {}
    for i in range(0, len(values), 500):
        part = values[i:i + 500]
        conn.execute(add, [{"value": v} for v in part])
        found.update((bytes(v), k) for k, v in conn.execute(select(table.c.id, table.c.value)
                                                             .where(table.c.value.in_(part))))
    return found


def _path_ids(conn: Connection, ext: Extracted, strings: Strings) -> tuple[np.ndarray, np.ndarray]:
    """Each event's path ids (0: no path in that slot)."""
    p0 = np.zeros(ext.n, np.uint32)
    p1 = np.zeros(ext.n, np.uint32)
    if not ext.path_keys:
        return p0, p1
    pairs = strings.pairs
    try:
        both = np.fromiter(map(pairs.__getitem__, ext.path_keys), np.uint64, count=len(ext.path_keys))
    except KeyError:
        new = {k for k in ext.path_keys if k not in pairs}
        split = {k: columns.split_key(k) for k in new}
        ids = strings.lookup(conn, (p for ab in split.values() for p in ab if p is not None))
        if len(pairs) + len(new) > strings.entries:
            pairs.clear()
        for k, (a, b) in split.items():
            pairs[k] = (0 if a is None else ids[a]) << 32 | (0 if b is None else ids[b])
        both = np.fromiter(map(pairs.__getitem__, ext.path_keys), np.uint64, count=len(ext.path_keys))
    p0[ext.path_rows] = both >> np.uint64(32)
    p1[ext.path_rows] = both & np.uint64(0xFFFFFFFF)
    return p0, p1


def _pairs(conn: Connection, strings: Strings, present: np.ndarray, names: Mapping[int, str | None],
           dtype: np.dtype) -> np.ndarray | None:
    """(key, string id) for the keys present in the batch that `names` names, sorted by key."""
    named = {}
    for k in np.unique(present).tolist():
        name = names.get(k)
        if name:
            named[k] = name.encode("utf-8", "surrogateescape")
    if not named:
        return None
    ids = strings.lookup(conn, named.values())
    out = np.empty(len(named), dtype)
    out["key"] = list(named)
    out["id"] = [ids[v] for v in named.values()]
    return out


@dataclass
class Written:
    batch_id: int
    events: int
    stored_bytes: int


def write_batch(conn: Connection, host_id: int, buf: bytes, sizes: np.ndarray, strings: Strings,
                exe_of: Mapping[int, str | None] = _NONE, unit_of: Mapping[int, str | None] = _NONE,
                fmt: columns.RecordFormat = columns.CURRENT) -> Written:
    """Archive the records in `buf` (at most MAX_BATCH_EVENTS) as one batch, in the caller's transaction."""
    ext = columns.extract(buf, sizes, fmt)
    f = ext.fields
    cols: dict[int, np.ndarray] = dict(f)
    if ext.aux:
        index = np.empty(len(ext.aux), columns.PAIR32)
        index["key"] = ext.aux_rows
        index["id"] = np.cumsum([len(a) for a in ext.aux])
        cols[columns.AUX_INDEX] = index
        cols[columns.AUX_DATA] = np.frombuffer(b"".join(ext.aux), np.uint8)
    cols[columns.PATH0], cols[columns.PATH1] = _path_ids(conn, ext, strings)
    if ext.path_keys:
        used = np.unique(np.concatenate((cols[columns.PATH0][ext.path_rows], cols[columns.PATH1][ext.path_rows])))
        cols[columns.PATHSET] = used[used != 0]
    exes = _pairs(conn, strings, f[_PID], exe_of, columns.PAIR32) if exe_of else None
    if exes is not None:
        cols[columns.EXES] = exes
    units = _pairs(conn, strings, f[_PID], unit_of, columns.PAIR32) if unit_of else None
    if units is not None:
        cols[columns.UNITS] = units
    return _insert(conn, host_id, ext.n, cols)


def _small_keys(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (a count per value when they are small: no sort)."""
    if not len(values):
        return values[:0]
    if int(values.max()) < 1 << 16:
        return np.flatnonzero(np.bincount(values))
    return np.unique(values)


def _derive(cols: dict[int, np.ndarray], n: int) -> dict[str, object]:
    """Add what searches and reports read instead of the events (the calls that failed by errno, the
    per-syscall tally) to a batch's columns; returns its event_batches summaries."""
    for code in columns.EVENT_CODES:
        if code not in cols:
            cols[code] = columns.zeros(code, n)
    ts, nr, ret, flags = cols[_TS], cols[_NR], cols[_RET], cols[_FLAGS]
    bad = failed(ret, flags)
    where = np.flatnonzero(bad)
    errs = (-ret[where]).astype(np.uint16)
    order = np.argsort(errs, kind="stable")         # by errno, each errno's calls in archive order
    where, errs = where[order], errs[order]
    rows = np.empty(len(where), columns.FAILURE_ROW)
    rows["pos"] = where
    for code in columns.EVENT_CODES:
        rows[columns.CODE_NAMES[code]] = cols[code][where]
    starts = np.flatnonzero(np.diff(errs.astype(np.int32), prepend=-1))     # where each errno's rows begin
    for lo, hi in zip(starts.tolist(), [*starts[1:].tolist(), len(rows)][:len(starts)], strict=True):
        cols[columns.FAILURES + int(errs[lo])] = rows[lo:hi]
    t = latency.tally(nr, bad, flags, cols[_DURATION])
    calls = np.empty(len(t.keys), columns.CALLS_ROW)
    calls["slot"], calls["calls"], calls["failures"] = t.keys, t.calls, t.failures
    calls["timed"], calls["total_ns"] = t.timed, t.total_ns
    cols[columns.CALLS] = calls
    at, bucket = np.nonzero(t.hist)
    hist = np.empty(len(at), columns.LATENCY_ROW)
    hist["slot"], hist["bucket"], hist["count"] = t.keys[at], bucket, t.hist[at, bucket]
    cols[columns.LATENCY] = hist
    slots = np.zeros(_uapi.SAGA_NR_SLOTS, bool)
    slots[t.keys[t.keys < _uapi.SAGA_NR_SLOTS]] = True
    return {"min_ts": int(ts.min()), "max_ts": int(ts.max()),
            "syscalls": np.packbits(slots, bitorder="little").tobytes(),
            "errnos": errs[starts].astype("<u2").tobytes(),
            "rule_ids": _small_keys(cols[_RULE]).astype("<u4").tobytes()}


# Built once: a statement built per batch cost more than its execution (SQLAlchemy's cache key of its values).
_ADD_BATCH = EventBatch.__table__.insert().returning(EventBatch.__table__.c.id)


def _insert(conn: Connection, host_id: int, n: int, cols: dict[int, np.ndarray]) -> Written:
    """Store a batch: its row and its columns (the derived ones computed here)."""
    summary = _derive(cols, n)
    blobs: list[tuple[int, memoryview]] = []
    for code, arr in cols.items():
        # a column of zeros is not stored: it reads back as zeros (an empty one for per-batch arrays)
        if not len(arr) if code in columns.PER_BATCH or code >= columns.FAILURES \
                else arr.dtype.kind != "V" and not arr.any():
            continue
        flat = np.ascontiguousarray(arr.astype(columns.element_type(code), copy=False))
        blobs.append((code, flat.reshape(-1).view(np.uint8).data))     # the array's bytes, not a copy
    stored = sum(b.nbytes for _, b in blobs)
    batch_id = conn.execute(_ADD_BATCH, {"host_id": host_id, "events": n, "stored_bytes": stored, **summary}
                            ).scalar_one()
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:
        raise StoreError("the database connection was closed")
    cursor = dbapi.cursor()
    try:
        sql = "INSERT INTO event_columns (id, data) VALUES (%s, %b)" if conn.dialect.name == "postgresql" \
            else "INSERT INTO event_columns (id, data) VALUES (?, ?)"
        cursor.executemany(sql, [(batch_id * COLUMN_SLOTS + code, data) for code, data in blobs])
    finally:
        cursor.close()
    return Written(batch_id, n, stored)


def _batches(reads: Sequence[Read]) -> Iterator[tuple[bytes, np.ndarray]]:
    """The reads as (bytes, record sizes) of at most MAX_BATCH_EVENTS records each."""
    bufs: list[bytes] = []
    sizes: list[np.ndarray] = []
    n = 0
    for buf, raws in reads:
        s = sizes_of(buf, raws)
        while len(s):
            room = MAX_BATCH_EVENTS - n
            if room <= 0:
                yield b"".join(bufs), np.concatenate(sizes)
                bufs, sizes, n = [], [], 0
                continue
            take, cut = s[:room], int(s[:room].sum())
            bufs.append(buf[:cut] if len(take) < len(s) else buf)
            sizes.append(take)
            n += len(take)
            buf, s = buf[cut:], s[room:]
    if n:
        yield b"".join(bufs), np.concatenate(sizes)


# -- merging small batches -------------------------------------------------------------------------
# A quiet host writes a few events at a time; searches pay per batch, so the writer merges its
# small batches into one once they hold MERGE_EVENTS events (or MERGE_BATCHES batches).
SMALL_BATCH = 16384
MERGE_EVENTS = 65536
MERGE_BATCHES = 256


def _conflicts(pairs: list[np.ndarray]) -> int:
    """How many of these batches' (key, id) maps agree (a pid that exec'd between two maps: they do not)."""
    seen: dict[int, int] = {}
    for i, p in enumerate(pairs):
        for k, v in zip(p["key"].tolist(), p["id"].tolist(), strict=True):
            if seen.setdefault(k, v) != v:
                return i
    return len(pairs)


def merge_batches(conn: Connection, batch_ids: list[int]) -> list[int]:
    """Rewrite consecutive batches of one host as one batch (in the caller's transaction); returns the ids
    merged (a prefix of batch_ids: it stops before a batch whose executables or units disagree)."""
    b, c = EventBatch.__table__, EventColumn.__table__
    rows = conn.execute(select(b.c.id, b.c.host_id, b.c.events).where(b.c.id.in_(batch_ids)).order_by(b.c.id)).all()
    lo, hi = rows[0].id * COLUMN_SLOTS, rows[-1].id * COLUMN_SLOTS + _MERGED_CODES
    stored: dict[int, dict[int, bytes]] = {r.id: {} for r in rows}
    for cid, data in conn.execute(select(c.c.id, c.c.data).where(c.c.id.between(lo, hi))):
        bid, code = divmod(cid, COLUMN_SLOTS)
        if bid in stored and code < _MERGED_CODES:
            stored[bid][code] = bytes(data)

    def parts(code: int, batches=rows) -> list[np.ndarray]:
        return [columns.decode(code, stored[r.id][code], r.events) if code in stored[r.id]
                else columns.zeros(code, r.events) for r in batches]

    keep = min(_conflicts(parts(columns.EXES)), _conflicts(parts(columns.UNITS)))
    rows = rows[:keep]
    if len(rows) < 2:
        return []
    sizes = [r.events for r in rows]
    bases = np.concatenate(([0], np.cumsum(sizes)[:-1])).tolist()
    cols: dict[int, np.ndarray] = {code: np.concatenate(parts(code, rows)) for code in columns.EVENT_CODES}
    for code in (columns.PATHSET, columns.EXES, columns.UNITS):
        cols[code] = np.unique(np.concatenate(parts(code, rows)))
    index, data = [a.copy() for a in parts(columns.AUX_INDEX, rows)], parts(columns.AUX_DATA, rows)
    ends = np.cumsum([0] + [len(d) for d in data]).tolist()
    for a, base, start in zip(index, bases, ends, strict=False):
        a["key"] += base
        a["id"] += start
    cols[columns.AUX_INDEX], cols[columns.AUX_DATA] = np.concatenate(index), np.concatenate(data)
    new = _insert(conn, rows[0].host_id, sum(sizes), cols)
    merged_ids = [r.id for r in rows]
    for bid in merged_ids:
        conn.execute(c.delete().where(c.c.id.between(bid * COLUMN_SLOTS, bid * COLUMN_SLOTS + COLUMN_SLOTS - 1)))
    conn.execute(b.delete().where(b.c.id.in_(merged_ids)))
    log.debug("merged batches %s into %d", merged_ids, new.batch_id)
    return merged_ids


class EventWriter:
    """Bulk insert on one connection of its own; not thread-safe (the archiver thread owns it)."""

    def __init__(self, engine: Engine, host_id: int) -> None:
        self.engine = engine
        self.host_id = int(host_id)
        self.strings = Strings()
        self._conn: Connection | None = None
        self._small: list[Written] = []     # this writer's last batches, all small, in order
        self.merge_events = MERGE_EVENTS    # merge small batches once they hold this many (a small disk: fewer)
        self.stored_bytes = 0               # the column bytes this writer's writes stored (a size cap's estimate)

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    def write(self, reads: Sequence[Read], exe_of: Mapping[int, str | None] = _NONE,
              unit_of: Mapping[int, str | None] = _NONE, also: Callable[[Connection], None] | None = None) -> int:
        """Archive whole reads in one transaction (a batch per MAX_BATCH_EVENTS events); returns how many.

        exe_of: pid -> executable, unit_of: pid -> systemd unit or container, as the daemon knew them.
        also(conn) runs in the same transaction (the daemon's spool cursor: saga.store.cursor).
        """
        if not any(buf for buf, _ in reads) and also is None:
            return 0
        with translate("archiving events"):
            conn = self._connection()
            try:
                with conn.begin():
                    written = [write_batch(conn, self.host_id, buf, sizes, self.strings, exe_of, unit_of)
                               for buf, sizes in _batches(reads)]
                    if also is not None:
                        also(conn)
            except BaseException:
                self.strings.forget()   # ids taken in the failed transaction do not exist
                self.close()            # a connection in an unknown state is not reused
                raise
            self.stored_bytes += sum(w.stored_bytes for w in written)
            for w in written:
                self._small = self._small + [w] if w.events < SMALL_BATCH else []
            if sum(w.events for w in self._small) >= self.merge_events or len(self._small) >= MERGE_BATCHES:
                self._merge()
            return sum(w.events for w in written)

    def _merge(self) -> None:
        """Merge the small batches this writer wrote last (events already archived: a failure loses nothing)."""
        ids = [w.batch_id for w in self._small]
        self._small = []
        try:
            conn = self._connection()
            with conn.begin():
                while len(ids) > 1:
                    done = merge_batches(conn, ids)
                    ids = ids[max(len(done), 1):]
        except Exception as exc:     # the events are archived: searches are only slower without the merge
            log.warning("merging small batches of the archive failed (%s); they stay as they are", exc)
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


# -- removing events ------------------------------------------------------------------------------

def _delete_batches(engine: Engine, batch_ids: list[int]) -> None:
    """Delete batches and their columns, a few per short transaction (readers and the archiver go on)."""
    b, c = EventBatch.__table__, EventColumn.__table__
    for i in range(0, len(batch_ids), 16):
        with engine.begin() as conn:
            for bid in batch_ids[i:i + 16]:
                first = bid * COLUMN_SLOTS
                conn.execute(c.delete().where(c.c.id.between(first, first + COLUMN_SLOTS - 1)))
                conn.execute(b.delete().where(b.c.id == bid))


def prune(engine: Engine, host_id: int, *, before_ns: int | None = None, keep_rows: int | None = None) -> int:
    """Delete the host's batches whose newest event is older than before_ns, then the oldest batches beyond
    the newest keep_rows events (whole batches: a batch goes when none of its events is among them);
    returns how many events went."""
    b = EventBatch.__table__
    deleted = 0
    with translate("pruning the archive"):
        if before_ns is not None:
            with engine.connect() as conn:
                old = conn.execute(select(b.c.id, b.c.events).where(b.c.host_id == host_id, b.c.max_ts < before_ns)
                                   .order_by(b.c.id)).all()
            _delete_batches(engine, [r.id for r in old])
            deleted += sum(r.events for r in old)
        if keep_rows is not None:
            doomed, kept = [], 0
            with engine.connect() as conn:
                for r in conn.execute(select(b.c.id, b.c.events).where(b.c.host_id == host_id).order_by(b.c.id.desc())):
                    if kept >= keep_rows:
                        doomed.append(r)
                    kept += r.events
            _delete_batches(engine, sorted(r.id for r in doomed))
            deleted += sum(r.events for r in doomed)
    return deleted


@dataclass(frozen=True)
class Usage:
    batches: int
    events: int
    stored_bytes: int


def usage(engine: Engine, host_id: int | None = None) -> Usage:
    """How many batches and events the archive holds (one host's, or all), and the bytes their columns take."""
    b = EventBatch.__table__
    stmt = select(func.count(), func.coalesce(func.sum(b.c.events), 0), func.coalesce(func.sum(b.c.stored_bytes), 0))
    if host_id is not None:
        stmt = stmt.where(b.c.host_id == host_id)
    with translate("measuring the archive"), engine.connect() as conn:
        n, ev, size = conn.execute(stmt).one()
    return Usage(int(n), int(ev), int(size))


def prune_oldest(engine: Engine, host_id: int | None = None, *, stored_bytes: int, most: int = 256) -> Usage:
    """Delete the oldest batches (one host's, or of any host) until those deleted stored at least
    `stored_bytes` of columns, at least one and at most `most` of them; returns what went (for a size cap:
    the oldest batches are often merged ones, far bigger than the average, so a count would overshoot)."""
    b = EventBatch.__table__
    stmt = select(b.c.id, b.c.events, b.c.stored_bytes).order_by(b.c.id).limit(most)
    if host_id is not None:
        stmt = stmt.where(b.c.host_id == host_id)
    with translate("pruning the archive"):
        with engine.connect() as conn:
            rows, total = [], 0
            for r in conn.execute(stmt):
                rows.append(r)
                total += r.stored_bytes
                if total >= stored_bytes:
                    break
        _delete_batches(engine, [r.id for r in rows])
    return Usage(len(rows), sum(r.events for r in rows), total)


PG_ROW_BYTES = 64     # a column row's tuple header, line pointer, key, toast pointer and index entry, roughly


def live_bytes_pg(conn: Connection) -> int:
    """PostgreSQL: the bytes the event columns' values take (compressed, as stored), a heap row and an
    index entry for each; unlike the relation's size, it drops as soon as a deletion commits (the dead
    rows' room stays in the files until VACUUM, then is reused)."""
    c = EventColumn.__table__
    stmt = select(func.coalesce(func.sum(func.pg_column_size(c.c.data) + PG_ROW_BYTES), 0))
    return int(conn.execute(stmt).scalar_one())


def count(engine: Engine, host_id: int | None = None) -> int:
    return usage(engine, host_id).events


__all__ = ["EventWriter", "Strings", "Usage", "count", "event_id", "failed", "live_bytes_pg", "prune", "prune_oldest",
           "usage", "write_batch"]
