"""Log lines of many records at once, in C: the lines saga.render.line makes, byte for byte.

A fresh window of a million events is read in under 2 s only if a line costs well under 2 µs, and
Python's cheapest line (an f-string of the fields) costs 2.5 µs (docs/benchmarks.md, "Rendering").
So the fixed fields of a run of records (time, cpu, pids, uid, comm, return value, duration, flags)
are formatted by src/saga/_render.c, straight from the records' bytes (nothing is parsed), and the
texts that need saga's decoding come from saga.render, the reference: a call's `name(args)` (with its
`= ret` for calls whose return value has a printer of its own), a comm that must be quoted, a
process's context words.  The library caches them by everything they depend on; on a record whose
text it has not got, it stops there, this module renders that text with saga.render, teaches it and
resumes.  A server repeats its calls, so misses are few (bench/render).

An archive search prints its matches the same way from rows of fields (Renderer.rows: the layout of
saga.store.columns.FAILURE_ROW, paths as string ids): a call with paths is taught as a template, its
text with a mark where each path goes, and each path's quoted text by its id, so the calls of a
thousand files cost one text and a thousand quoted paths (saga.render.call_head of a record whose paths
are MARKS shows where they go).  The slots whose text prints each path argument by itself get templates;
the others are taught whole, by their path ids.

The library is `_render.so` next to this file, built by `make build` and loaded with ctypes (it links
only libc: one binary for every Python version).  Without it, or with SAGA_PYTHON_RENDER set in the
environment (bench/sagafs measures both), `available()` is False and callers render in Python
(saga.daemon.window); tests/unit/test_fastrender keeps the two equal.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from saga import _uapi, decode, events, render, syscalls

if TYPE_CHECKING:
    import numpy as np

LIBRARY = os.path.join(os.path.dirname(__file__), "_render.so")     # os.path: pathlib imports urllib (a search's start)
_DONE, _MISS_CALL, _MISS_COMM, _MISS_WHERE, _FULL, _BAD, _MISS_TEMPLATE, _MISS_PATH = range(8)
_CALL, _COMM, _WHERE, _ROW, _PATH, _ONCE = range(6)
_RET_DEC, _RET_HEX, _RET_TEXT = range(3)
_FLAGS = render.EVF_NAMES
# The fields of a row Renderer.rows reads, in the order of _render.c's enum row_field.
ROW_FIELDS = ("ts_ns", "nr", "ret", "pid", "tid", "uid", "duration_ns", "flags", "cpu", "args", "comm", "path0",
              "path1")
# The paths of the record a template is rendered from (where each path goes in the text).
MARKS = (b"@saga:path0@", b"@saga:path1@")
_NO_REG = 255


class _Lib:
    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(str(path))
        p, u32, i32, buf = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_char_p
        lib.saga_render_new.restype = p
        lib.saga_render_new.argtypes = []
        lib.saga_render_free.argtypes = [p]
        lib.saga_render_ret_mode.argtypes = [p, u32, u32]
        lib.saga_render_errno.argtypes = [p, u32, buf]
        lib.saga_render_flag.argtypes = [p, u32, buf]
        lib.saga_render_begin.argtypes = [p]
        lib.saga_render_forget.argtypes = [p]
        lib.saga_render_learn.restype = i32
        lib.saga_render_learn.argtypes = [p, i32, buf, buf, u32]
        lib.saga_render.restype = i32
        lib.saga_render.argtypes = [p, buf, ctypes.c_size_t, u32, i32, p, ctypes.c_size_t,
                                    ctypes.POINTER(ctypes.c_uint64)]
        lib.saga_render_row_layout.restype = i32
        lib.saga_render_row_layout.argtypes = [p, ctypes.POINTER(ctypes.c_uint32), u32, u32]
        lib.saga_render_path_regs.argtypes = [p, u32, u32, u32]
        lib.saga_render_learn_row.restype = i32
        u64 = ctypes.c_uint64
        lib.saga_render_learn_row.argtypes = [p, i32, p, u64, buf, u32]
        lib.saga_render_learn_paths.restype = i32
        lib.saga_render_learn_paths.argtypes = [p, u64, u32, p, buf, p]
        lib.saga_render_aux.argtypes = [p, u32, p, p, buf]
        lib.saga_render_rows.restype = i32
        lib.saga_render_rows.argtypes = [p, p, u32, u64, p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64)]
        self.lib = lib


_lib: _Lib | None = None
_why = ""
_tried = False


def _load() -> _Lib | None:
    global _lib, _why, _tried
    if not _tried:
        _tried = True
        if os.environ.get("SAGA_PYTHON_RENDER"):
            _why = "SAGA_PYTHON_RENDER is set"
        elif not os.path.exists(LIBRARY):
            _why = f"{LIBRARY} is missing (make build compiles it)"
        else:
            try:
                _lib = _Lib(LIBRARY)
            except (OSError, AttributeError) as exc:
                _why = f"{LIBRARY} cannot be loaded: {exc}"
    return _lib


def available() -> bool:
    return _load() is not None


def why_not() -> str:
    """Why the compiled renderer cannot be used ("" when it can)."""
    _load()
    return _why


def _ret_mode(slot: int) -> int:
    name = syscalls.name_of(slot)
    if name in decode.RETURNS:
        return _RET_TEXT
    return _RET_HEX if name in decode.RETURNS_ADDRESS else _RET_DEC


def path_registers(slot: int) -> tuple[int, ...]:
    """The registers of the slot's first two path arguments when its calls can be taught as templates: their
    text shows each path argument as its quoted path (saga.render._format_args) and nothing else of it;
    () for the others (no path argument, a printer of the whole call or of its return value, an aux blob)."""
    call = syscalls.BY_SLOT.get(slot)
    if call is None or call.name in decode.CALLS or call.name in decode.RETURNS or render.aux_arg(slot) is not None:
        return ()
    return tuple(i for i, a in enumerate(call.args) if a.kind == "path")[:2]


def _piece(raw: tuple) -> str:
    """What the library keeps of a call: its whole text when its slot prints the return value by a printer
    of its own, else `name(args)` (the library prints ` = ret`)."""
    return render.call_text(raw) if _ret_mode(raw[events.NR]) == _RET_TEXT else render.call_head(raw)


def template(raw: tuple) -> str:
    """The template of a call whose present paths are MARKS: its text with a mark (NUL, then the path's
    index) where each path it prints goes."""
    text = render.call_head(raw)
    if "\0" in text:
        raise RuntimeError(f"saga.fastrender: no template for {text!r}")
    for j in range(len(path_registers(raw[events.NR]))):
        quoted = render.quote(MARKS[j].decode())
        if text.count(quoted) > 1:
            raise RuntimeError(f"saga.fastrender: no template for {text!r}")
        text = text.replace(quoted, f"\0{chr(j)}")
    return text


class Renderer:
    """One C context: its caches, and an output buffer that grows to the largest run asked for."""

    def __init__(self) -> None:
        lib = _load()
        if lib is None:
            raise RuntimeError(f"the compiled renderer cannot be used: {_why}")
        self._lib = lib.lib
        self._ctx = self._lib.saga_render_new()
        if not self._ctx:
            raise MemoryError("saga_render_new")
        # Its memory goes with it; not at exit, when the process gives everything back anyway.
        weakref.finalize(self, self._lib.saga_render_free, self._ctx).atexit = False
        for slot in syscalls.BY_SLOT:
            mode = _ret_mode(slot)
            if mode != _RET_DEC:
                self._lib.saga_render_ret_mode(self._ctx, slot, mode)
        for err, name in decode.ERRNO_NAMES.items():    # the others print as the library has them: E<n>
            if 0 < err < 4096:
                self._lib.saga_render_errno(self._ctx, err, name.encode())
        for bit, name in _FLAGS:
            self._lib.saga_render_flag(self._ctx, bit, name.encode())
        for slot in syscalls.BY_SLOT:
            regs = path_registers(slot)
            if regs:
                self._lib.saga_render_path_regs(self._ctx, slot, regs[0], regs[1] if len(regs) > 1 else _NO_REG)
        self._out = ctypes.create_string_buffer(1 << 20)
        self._state = (ctypes.c_uint64 * 4)()
        self._layout: object = None
        self._lock = threading.Lock()     # the C calls let go of the GIL; one pass at a time uses the context

    def forget(self) -> None:
        """Drop every cached text (after saga.render's tables changed: tests)."""
        self._lib.saga_render_forget(self._ctx)

    def lines(self, buf: bytes | bytearray | memoryview, start: int = 0, count: int | None = None) -> bytes:
        """The lines (each ending in a newline) of `count` records (None: all) of buf from byte offset
        `start`, as saga.render.line prints them with saga.render.context_of as it is now."""
        with self._lock:
            return self._lines(buf if type(buf) is bytes else bytes(buf), start, count)

    def _lines(self, buf: bytes, start: int, count: int | None) -> bytes:
        lib, ctx, st = self._lib, self._ctx, self._state
        context_of = render.context_of
        with_where = context_of is not None
        want = len(buf) if count is None else count     # records: never more than bytes
        st[0], st[1], st[2] = start, 0, 0
        lib.saga_render_begin(ctx)
        out = self._out
        pieces: list[bytes] = []
        while True:
            status = lib.saga_render(ctx, buf, len(buf), want - st[1], with_where, out, len(out), st)
            if status == _DONE:
                break
            if status == _FULL:
                if st[2] == 0:      # not even one line fits: a bigger buffer
                    out = self._out = ctypes.create_string_buffer(len(out) * 2)
                    continue
                pieces.append(ctypes.string_at(out, st[2]))
                st[2] = 0
                continue
            off = st[0]
            rec = buf[off:off + int.from_bytes(buf[off:off + 2], "little")]
            if status == _BAD:      # saga.events says what is wrong with it
                events.parse(buf[off:])
                raise events.RecordError(f"bad record at byte {off}")
            (raw,) = events.parse(rec)
            if status == _MISS_CALL:
                text = _piece(raw)
            elif status == _MISS_COMM:
                text = render.comm_token(raw[events.COMM])
            else:
                text = render.context_words(raw)
            data = text.encode("utf-8", "surrogateescape")
            if lib.saga_render_learn(ctx, (_CALL, _COMM, _WHERE)[status - 1], rec, data, len(data)) != 0:
                # too big for the cache: this line in Python
                pieces.append(ctypes.string_at(out, st[2]))
                pieces.append(render.line(raw).encode("utf-8", "surrogateescape") + b"\n")
                st[0], st[1], st[2] = off + len(rec), st[1] + 1, 0
        pieces.append(ctypes.string_at(out, st[2]))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


    def learn_paths(self, scope: int, ids: Sequence[int], paths: Sequence[bytes]) -> None:
        """Teach these paths (by string id, of `scope`) in one call: Renderer.rows asks for any it has not
        got, one at a time."""
        with self._lock:
            self._learn_paths(scope, ids, paths)

    def rows(self, table: np.ndarray, scope: int, records_of: Callable[[np.ndarray, bool], list[tuple]],
             path_of: Callable[[int], bytes]) -> bytes:
        """The lines of the rows of `table` (a structured array with the fields of ROW_FIELDS: paths as string
        ids), as saga.render.line prints the records they are.  scope: what the string ids are ids of (new_scope:
        one per search; an id means another path in another archive); records_of(indexes, marked): the records
        of these rows (marked: MARKS in place of their paths); path_of(id): a path by its id.  The calls with
        an aux blob (argv, an address: each its own text) are rendered first, all at once."""
        import numpy as np
        table = np.ascontiguousarray(table)
        with self._lock:
            lib, ctx, st = self._lib, self._ctx, self._state
            if self._layout != table.dtype:
                fields = table.dtype.fields
                if fields is None:
                    raise TypeError("saga.fastrender: rows are a structured array")
                offsets = (ctypes.c_uint32 * len(ROW_FIELDS))(*(fields[f][1] for f in ROW_FIELDS))
                if lib.saga_render_row_layout(ctx, offsets, len(ROW_FIELDS), table.dtype.itemsize):
                    raise RuntimeError("saga.fastrender: the library has other row fields")
                self._layout = table.dtype
            base = table.ctypes.data
            st[0], st[1], st[2], st[3] = 0, 0, 0, 0
            aux = np.flatnonzero(table["flags"] & _uapi.SAGA_EVF_AUX_MASK).astype(np.uint32)
            texts = [_piece(r).encode("utf-8", "surrogateescape") for r in records_of(aux, False)] if len(aux) else []
            aux_ends = np.cumsum([len(t) for t in texts], dtype=np.uint32)
            aux_text = b"".join(texts)
            lib.saga_render_aux(ctx, len(aux), aux.ctypes.data, aux_ends.ctypes.data, aux_text)
            out = self._out
            pieces: list[bytes] = []
            while True:
                status = lib.saga_render_rows(ctx, base, len(table), scope, out, len(out), st)
                if status == _DONE:
                    break
                if status == _FULL:
                    if st[2] == 0:
                        out = self._out = ctypes.create_string_buffer(len(out) * 2)
                        continue
                    pieces.append(ctypes.string_at(out, st[2]))
                    st[2] = 0
                    continue
                i = int(st[0])
                row = base + i * table.dtype.itemsize
                if status == _MISS_PATH:
                    self._learn_paths(scope, [int(st[3])], [path_of(int(st[3]))])
                    continue
                one = np.array([i])
                if status == _MISS_COMM:
                    kind, text = _COMM, render.comm_token(table["comm"][i].tobytes())
                elif status == _MISS_TEMPLATE:
                    kind, text = _ROW, template(records_of(one, True)[0])
                else:
                    kind, text = int(st[3]), _piece(records_of(one, False)[0])
                data = text.encode("utf-8", "surrogateescape")
                if lib.saga_render_learn_row(ctx, kind, row, scope, data, len(data)) != 0:
                    # too big for the cache: this row's call alone
                    data = _piece(records_of(one, False)[0]).encode("utf-8", "surrogateescape")
                    if kind == _COMM or lib.saga_render_learn_row(ctx, _ONCE, row, scope, data, len(data)) != 0:
                        raise MemoryError("saga_render_learn_row")
            pieces.append(ctypes.string_at(out, st[2]))
            lib.saga_render_aux(ctx, 0, None, None, None)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _learn_paths(self, scope: int, ids: Sequence[int], paths: Sequence[bytes]) -> None:
        import numpy as np
        data = [quoted_path(p) for p in paths]
        ends = np.cumsum([len(d) for d in data], dtype=np.uint32)
        keys = np.asarray(ids, np.uint32)
        self._lib.saga_render_learn_paths(self._ctx, scope, len(keys), keys.ctypes.data, b"".join(data),
                                          ends.ctypes.data)


_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


def quoted_path(path: bytes) -> bytes:
    """saga.render.quote of a path, as bytes: a path of printable ASCII without a quote or a backslash is
    itself in quotes, without decoding it (most paths); the others go through quote()."""
    if not path.translate(None, _PLAIN):
        return b'"' + path + b'"'
    return render.quote(path.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


_scopes = itertools.count(1)


def new_scope() -> int:
    """A scope of string ids for Renderer.rows, never given before in this process (nor in its parent)."""
    return next(_scopes)


_shared: Renderer | None = None


def shared() -> Renderer | None:
    """The process's renderer, made on first use; None without the library (render in Python then)."""
    global _shared
    if _shared is None and available():
        _shared = Renderer()
        render.on_clear(_shared.forget)
    return _shared
