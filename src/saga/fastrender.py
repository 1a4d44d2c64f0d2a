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

The library is `_render.so` next to this file, built by `make build` and loaded with ctypes (it links
only libc: one binary for every Python version).  Without it, or with SAGA_PYTHON_RENDER set in the
environment (bench/sagafs measures both), `available()` is False and callers render in Python
(saga.daemon.window); tests/unit/test_fastrender keeps the two equal.
"""
from __future__ import annotations

import ctypes
import os
import threading
import weakref
from pathlib import Path

from saga import decode, events, render, syscalls

LIBRARY = Path(__file__).with_name("_render.so")
_DONE, _MISS_CALL, _MISS_COMM, _MISS_WHERE, _FULL, _BAD = range(6)
_CALL, _COMM, _WHERE = range(3)
_RET_DEC, _RET_HEX, _RET_TEXT = range(3)
_FLAGS = render.EVF_NAMES


class _Lib:
    def __init__(self, path: Path) -> None:
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
        elif not LIBRARY.exists():
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
        for err in range(1, 4096):
            self._lib.saga_render_errno(self._ctx, err, decode.errno_name(err).encode())
        for bit, name in _FLAGS:
            self._lib.saga_render_flag(self._ctx, bit, name.encode())
        self._out = ctypes.create_string_buffer(1 << 20)
        self._state = (ctypes.c_uint64 * 3)()
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
                text = render.call_text(raw) if _ret_mode(raw[events.NR]) == _RET_TEXT else render.call_head(raw)
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


_shared: Renderer | None = None


def shared() -> Renderer | None:
    """The process's renderer, made on first use; None without the library (render in Python then)."""
    global _shared
    if _shared is None and available():
        _shared = Renderer()
        render.on_clear(_shared.forget)
    return _shared
