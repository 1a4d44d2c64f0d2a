"""Events as text lines and as JSON objects (docs/log-format.md).

    2026-11-21T21:30:01.123456789Z cpu=1 pid=81 tid=81 uid=0 comm=cat openat(AT_FDCWD, "/etc/hosts", O_RDONLY) = 3 <9us>

This is the format of /sagafs/log, /sagafs/pipe and `saga log`.  Rendering
is on the ingest path, so each slot's argument formatters are built once
and cached, and the date part of the timestamp is reused within a second.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from saga import _uapi, aux_text, decode, events, syscalls
from saga.events import (
    ARG0,
    AUX_LEN,
    CGROUP_ID,
    COMM,
    CPU,
    DURATION,
    FLAGS,
    GID,
    NR,
    ORIG_NR,
    PATH_LEN0,
    PATH_LEN1,
    PATHS,
    PID,
    PPID,
    RET,
    RULE_ID,
    TID,
    TS,
    UID,
    comm_str,
    path_args,
)

if TYPE_CHECKING:
    import numpy as np

EVF_NAMES = ((_uapi.SAGA_EVF_COMPAT, "ia32"), (_uapi.SAGA_EVF_PATH_TRUNC, "path-truncated"),
             (_uapi.SAGA_EVF_PATH_FAULT, "path-fault"), (_uapi.SAGA_EVF_NO_ENTER, "no-enter"),
             (_uapi.SAGA_EVF_NORETURN, "noreturn"), (_uapi.SAGA_EVF_AUX_TRUNC, "aux-truncated"),
             (_uapi.SAGA_EVF_AUX_FAULT, "aux-fault"))
_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"}


@lru_cache(maxsize=8192)
def quote(s: str) -> str:
    """A C-style quoted string; control characters escaped, so one event is one line."""
    if s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return f'"{printable(s.translate(_ESCAPES))}"'


def printable(s: str) -> str:
    """`s` safe for a terminal and as one line: control characters (C0, DEL, C1) and bytes that are not
    UTF-8 (decoded with surrogateescape) as \\xNN, line separators and bidi overrides (which reorder what
    follows on screen) as \\uNNNN.  Text from outside that saga prints goes through it."""
    return s if s.isprintable() else "".join(map(_escape, s))


_SHOWN_AS_U = frozenset("\u2028\u2029\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(c: str) -> str:
    o = ord(c)
    if o < 32 or 127 <= o < 160:
        return f"\\x{o:02x}"
    if 0xDC80 <= o <= 0xDCFF:
        return f"\\x{o - 0xDC00:02x}"
    if c in _SHOWN_AS_U:
        return f"\\u{o:04x}"
    return c


def _comm_token(comm: str) -> str:
    return comm if comm and all(33 <= ord(c) < 127 and c not in '"\\' for c in comm) else quote(comm)


_COMM_TOKENS: dict[bytes, str] = {}


def comm_token(raw: bytes) -> str:
    tok = _COMM_TOKENS.get(raw)
    if tok is None:
        if len(_COMM_TOKENS) > 4096:
            _COMM_TOKENS.clear()
        tok = _COMM_TOKENS[raw] = _comm_token(comm_str(raw))
    return tok


def _hex(v: int) -> str:
    return "NULL" if v == 0 else hex(v)


def _flags32(v: int) -> str:
    v &= 0xFFFFFFFF
    return hex(v) if v else "0"


def _flags64(v: int) -> str:
    return hex(v) if v else "0"


def _uint32(v: int) -> str:
    return str(v & 0xFFFFFFFF)


def _s32(v: int) -> str:
    return str(decode.s32(v))


def _s64(v: int) -> str:
    return str(decode.s64(v))


# How each argument kind of the syscall table (tools/gen_syscalls.py) is printed.
_BY_KIND: dict[str, Callable[[int], str]] = {
    "ptr": _hex, "str": _hex, "addr": _hex, "path": _hex, "dirfd": decode.dirfd, "fd": _s32,
    "mode": decode.octal, "flags": _flags32, "flags64": _flags64, "int": _s32, "long": _s64,
    "uint": _uint32, "ulong": str, "id": decode.ugid,
}


def _arg_formatter(call: str, arg: syscalls.Arg) -> Callable[[int], str]:
    special = decode.BY_ARG.get((call, arg.name))
    if special:
        return lru_cache(maxsize=256)(special)  # flag words repeat: decode each once
    return _BY_KIND.get(arg.kind, _hex)


@cache
def _call_formatter(slot: int) -> tuple[str, tuple, int, decode.CallPrinter | None, tuple | None]:
    """(name, per-argument (kind, formatter) pairs, index of the mode arg printed only with O_CREAT or -1,
    the printer of the whole call or None, the formatters alone when no argument is a path or that mode)."""
    call = syscalls.BY_SLOT.get(slot)
    if call is None:
        fmts: tuple = tuple(("ulong", _hex) for _ in range(6))
        return syscalls.name_of(slot), fmts, -1, None, tuple(f for _, f in fmts)
    fmts = tuple((a.kind, _arg_formatter(call.name, a)) for a in call.args)
    creat_mode = decode.MODE_NEEDS_CREAT.get(call.name, -1)
    plain = None if creat_mode >= 0 or any(k == "path" for k, _ in fmts) else tuple(f for _, f in fmts)
    return call.name, fmts, creat_mode, decode.CALLS.get(call.name), plain


# Arguments as text by everything they depend on: a server repeats the same calls (the same futex
# word, fd and buffer) and most lines reuse their arguments' text (bench/render).
_ARGS_TEXT: dict[tuple, str] = {}
_ARGS_TEXT_MAX = 8192


_ON_CLEAR: list[Callable[[], None]] = []


def on_clear(forget: Callable[[], None]) -> None:
    """Call `forget` when the caches are cleared (saga.fastrender keeps argument texts too)."""
    _ON_CLEAR.append(forget)


def clear_caches() -> None:
    """Forget every formatter and argument text (after a change to saga.decode's tables: tests)."""
    _call_formatter.cache_clear()
    _ARGS_TEXT.clear()
    for forget in _ON_CLEAR:
        forget()


def format_args(raw: tuple) -> str:
    key = raw[ARG0:ARG0 + 6] + (raw[NR], raw[FLAGS], raw[PATH_LEN0], raw[PATH_LEN1], raw[AUX_LEN], raw[PATHS])
    text = _ARGS_TEXT.get(key)
    if text is None:
        if len(_ARGS_TEXT) >= _ARGS_TEXT_MAX:
            _ARGS_TEXT.clear()
        text = _ARGS_TEXT[key] = _format_args(raw)
    return text


def _format_args(raw: tuple) -> str:
    name, fmts, creat_mode, whole, plain = _call_formatter(raw[NR])
    if plain is not None:   # most calls: each argument by its own formatter
        out = [fmt(v) for fmt, v in zip(plain, raw[ARG0:ARG0 + len(plain)], strict=True)]
        if raw[FLAGS] & _uapi.SAGA_EVF_AUX_MASK:
            _put_aux(raw, out)
        return ", ".join(whole(raw[ARG0:ARG0 + 6], out) if whole is not None else out)
    paths = path_args(raw) if raw[PATHS] else (None, None)
    flags = raw[FLAGS]
    out = []
    path_i = 0
    for i, (kind, fmt) in enumerate(fmts):
        v = raw[ARG0 + i]
        if kind == "path":
            path = paths[path_i] if path_i < 2 else None
            if path is not None:
                text = quote(path)
                if flags & _uapi.SAGA_EVF_PATH_TRUNC \
                        and len(path.encode("utf-8", "surrogateescape")) >= _uapi.SAGA_PATH_MAX - 1:
                    text += "..."
                out.append(text)
            else:
                out.append(_hex(v))
            path_i += 1
        elif i == creat_mode and not decode.open_takes_mode(raw[ARG0 + i - 1]):
            continue
        else:
            out.append(fmt(v))
    if flags & _uapi.SAGA_EVF_AUX_MASK:
        _put_aux(raw, out)
    if whole is not None:
        out = whole(raw[ARG0:ARG0 + 6], out)
    return ", ".join(out)


def aux_arg(slot: int) -> int | None:
    """Which argument of a call the aux blob shows (docs/kernel-abi.md, "Aux blob"): the pointer it was read from."""
    spec = syscalls.AUX.get(slot)
    return spec[1] if spec is not None else None


def _put_aux(raw: tuple, out: list[str]) -> None:
    """Replace the pointer the aux blob was read from by what it holds: argv, a socket address, clone_args."""
    i = aux_arg(raw[NR])
    if i is None or i >= len(out):
        return
    kind, blob = events.aux_kind(raw), events.aux_bytes(raw)
    flags = raw[FLAGS]
    if flags & _uapi.SAGA_EVF_AUX_FAULT and not blob:
        return   # nothing could be read: the pointer says where it was
    cut = bool(flags & (_uapi.SAGA_EVF_AUX_TRUNC | _uapi.SAGA_EVF_AUX_FAULT))
    if kind == _uapi.SAGA_AUX_ARGV:
        out[i] = aux_text.argv(events.argv_of(raw) or [], quote, cut)
    elif kind == _uapi.SAGA_AUX_SOCKADDR:
        out[i] = aux_text.sockaddr(blob, quote, cut)
    elif kind == _uapi.SAGA_AUX_CLONE_ARGS:
        out[i] = aux_text.clone_args(blob, cut)


def format_ret(raw: tuple) -> str:
    if raw[FLAGS] & _uapi.SAGA_EVF_NORETURN:
        return "?"
    ret = raw[RET]
    if -4096 < ret < 0:
        return f"{ret} {decode.errno_name(-ret)}"
    name = _call_formatter(raw[NR])[0]
    if name in decode.RETURNS_ADDRESS:
        return hex(ret & 0xFFFFFFFFFFFFFFFF)
    meaning = decode.RETURNS.get(name)
    if meaning is not None:
        text = meaning(raw[ARG0:ARG0 + 6], ret)
        if text is not None:
            return text
    return str(ret)


def format_duration(raw: tuple) -> str:
    return duration_text(raw[DURATION], raw[FLAGS])


def duration_text(ns: int, flags: int) -> str:
    if flags & (_uapi.SAGA_EVF_NO_ENTER | _uapi.SAGA_EVF_NORETURN):
        return "?"
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000_000:
        return f"{ns // 1000}us"
    return f"{ns / 1e9:.3f}s"


class _Clock:
    """ISO-8601 UTC timestamps with ns; the date and time of day are reused within a second."""

    __slots__ = ("sec", "prefix")

    def __init__(self) -> None:
        self.sec = -1
        self.prefix = ""

    def __call__(self, ts_ns: int) -> str:
        sec, ns = divmod(ts_ns, 1_000_000_000)
        if sec != self.sec:
            self.sec = sec
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self.prefix}.{ns:09d}Z"


iso_time = _Clock()


def flag_names(flags: int) -> list[str]:
    return [name for bit, name in EVF_NAMES if flags & bit]


# Where an event's process runs, from the daemon's process cache (saga.daemon.enrich.Enricher.where):
# (the line's words, such as `unit=nginx.service`, and the JSON fields), or None when not known.
# Set by the daemon while it captures live; None elsewhere (a replayed recording is another machine's).
context_of: Callable[[tuple], tuple[str, dict] | None] | None = None
_NO_CONTEXT = {"unit": None, "container": None, "runtime": None, "pod": None, "cgroup": None, "nspid": None}


def line(raw: tuple) -> str:
    """One event as one line (no trailing newline)."""
    flags = raw[FLAGS] & ~_uapi.SAGA_EVF_AUX_MASK  # the aux kind is not a flag
    text = (f"{iso_time(raw[TS])} cpu={raw[CPU]} pid={raw[PID]} tid={raw[TID]} uid={raw[UID]} "
            f"comm={comm_token(raw[COMM])}{context_words(raw)} {call_text(raw)} <{format_duration(raw)}>")
    if flags:
        text += " [" + ",".join(flag_names(flags)) + "]"
    return text


def context_words(raw: tuple) -> str:
    """` unit=... container=...` for the event's process, from context_of ("" without any)."""
    where = context_of(raw) if context_of is not None else None
    return f" {where[0]}" if where is not None and where[0] else ""


def call_head(raw: tuple) -> str:
    """`name(args)`."""
    return f"{_call_formatter(raw[NR])[0]}({format_args(raw)})"


def call_text(raw: tuple) -> str:
    """`name(args) = ret`: the part of a line that depends on the call alone, not on who made it or when."""
    return f"{call_head(raw)} = {format_ret(raw)}"


def lines_of(ts: np.ndarray, cpu: Sequence[int], pid: Sequence[int], tid: Sequence[int], uid: Sequence[int],
             comm: np.ndarray, calls: Sequence[str], duration: Sequence[int], flags: Sequence[int]) -> list[str]:
    """The lines line() makes, from many events' fields as columns (ts_ns: uint64, comm: 16-byte void) and
    each one's call_text(): an archive search renders each distinct call once (saga.store.query), the
    times and names here in bulk, and nothing builds a record.  The words of context_of are not known
    here (the archive keeps none).  tests/unit/test_render keeps the two equal."""
    import numpy as np
    if len(ts) and int(ts.max()) < 1 << 63:     # numpy's datetime64 holds ns since 1970 up to 2262
        stamps = np.datetime_as_string(ts.view(np.int64).astype("datetime64[ns]"), unit="ns").tolist()
        zone = "Z"
    else:
        stamps, zone = [iso_time(t) for t in ts.tolist()], ""
    names, at = np.unique(comm, return_inverse=True)
    tokens = np.array([comm_token(c) for c in names.tolist()], object)[at.reshape(-1)].tolist()
    took, flag_words = duration_text, flag_names
    out = []
    for t, c, p, i, u, name, call, ns, f in zip(stamps, cpu, pid, tid, uid, tokens, calls, duration, flags,
                                                 strict=True):
        text = f"{t}{zone} cpu={c} pid={p} tid={i} uid={u} comm={name} {call} <{took(ns, f)}>"
        f &= ~_uapi.SAGA_EVF_AUX_MASK
        out.append(text + " [" + ",".join(flag_words(f)) + "]" if f else text)
    return out


def to_json(raw: tuple) -> dict:
    """One event as a JSON-ready object (the `--json` output of `saga log` and `saga query`)."""
    ret = raw[RET]
    obj = {
        "time": iso_time(raw[TS]), "ts_ns": raw[TS], "cpu": raw[CPU], "pid": raw[PID], "tid": raw[TID],
        "ppid": raw[PPID], "uid": raw[UID], "gid": raw[GID], "comm": comm_str(raw[COMM]),
        "syscall": _call_formatter(raw[NR])[0], "nr": raw[NR], "orig_nr": raw[ORIG_NR],
        "args": list(raw[ARG0:ARG0 + 6]), "args_text": format_args(raw), "paths": json_paths(raw),
        "ret": ret, "errno": decode.errno_name(-ret) if -4096 < ret < 0 else None,
        "duration_ns": raw[DURATION], "flags": flag_names(raw[FLAGS]), **json_aux(raw),
        "rule_id": raw[RULE_ID], "cgroup_id": raw[CGROUP_ID], **_NO_CONTEXT,
    }
    where = context_of(raw) if context_of is not None else None
    if where is not None:
        obj.update(where[1])
    return obj


def json_bytes(s: str) -> str | dict[str, str]:
    """A string from a record as JSON: itself when it is UTF-8, else {"hex": its bytes in hex} (lossless)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, held as surrogates (surrogateescape)
        return {"hex": s.encode("utf-8", "surrogateescape").hex()}
    return s


def json_aux(raw: tuple) -> dict:
    """`argv`, `sockaddr` and `clone_args` from the aux blob, each None when the record has not got it."""
    out: dict = {"argv": None, "sockaddr": None, "clone_args": None}
    kind = events.aux_kind(raw)
    if kind == _uapi.SAGA_AUX_ARGV:
        out["argv"] = [json_bytes(s.decode("utf-8", "surrogateescape")) for s in events.argv_of(raw) or []]
    elif kind == _uapi.SAGA_AUX_SOCKADDR:
        fields = aux_text.sockaddr_fields(events.aux_bytes(raw))
        out["sockaddr"] = {k: json_bytes(v.decode("utf-8", "surrogateescape")) if isinstance(v, bytes) else v
                           for k, v in fields.items()}
    elif kind == _uapi.SAGA_AUX_CLONE_ARGS:
        blob = events.aux_bytes(raw)
        out["clone_args"] = {"kind": aux_text.clone_kind(blob), **aux_text.clone_args_fields(blob)}
    return out


def json_paths(raw: tuple) -> list:
    """One entry per path argument of the call, in order: the path (json_bytes) or None when not captured."""
    call = syscalls.BY_SLOT.get(raw[NR])
    n = len(call.path_args) if call else 0
    if not n:
        return []
    got = path_args(raw) if raw[PATHS] else (None, None)
    return [None if p is None else json_bytes(p) for p in got[:n]]


def lines(raws: list[tuple]) -> str:
    """Many events, newline-terminated, ready to append to a log."""
    return "".join([line(r) + "\n" for r in raws])


__all__ = ["line", "lines", "to_json", "format_args", "format_ret", "format_duration", "iso_time", "quote", "events"]
