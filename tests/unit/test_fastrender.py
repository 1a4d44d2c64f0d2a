"""saga.fastrender (src/saga/_render.c) prints what saga.render.line prints, byte for byte: on the recorded
workload, the server mix of bench/render, random records, with and without context words; and the
window renders the same text with the library or without it."""
from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saga import _uapi, decode, events, fastrender, render, syscalls
from saga.daemon import window as windowmod
from saga.daemon.window import EventWindow
from saga.store import columns

ROOT = Path(__file__).resolve().parents[2]


def python_lines(buf: bytes) -> bytes:
    return b"".join(render.line(r).encode("utf-8", "surrogateescape") + b"\n" for r in events.parse(buf))


@pytest.fixture(scope="module")
def fast() -> fastrender.Renderer:
    assert fastrender.available(), f"{fastrender.why_not()}: run make build"
    return fastrender.Renderer()


@pytest.fixture
def context():
    """Context words for some pids, none for others, an empty word for one (as the daemon's enricher)."""
    def where(raw: tuple) -> tuple[str, dict] | None:
        pid = raw[events.PID]
        if pid % 3 == 0:
            return None
        return ("" if pid % 3 == 1 and pid % 2 else f"unit=u{pid % 7}.service cg={raw[events.CGROUP_ID] % 5}"), {}
    render.context_of = where
    yield where
    render.context_of = None


def test_the_recorded_workload(fast, recording):
    assert fast.lines(recording) == python_lines(recording)
    assert fast.lines(recording) == python_lines(recording)      # from the cache, the second time


def test_the_recorded_workload_with_context_words(fast, recording, context):
    assert fast.lines(recording) == python_lines(recording)


def test_any_bytes_like_buffer(fast, recording):
    assert fast.lines(memoryview(recording)) == fast.lines(bytearray(recording)) == python_lines(recording)


def test_a_part_of_a_run(fast, recording):
    sizes = events.sizes(recording)
    start, count = int(sizes[:17].sum()), 40
    expected = b"".join(python_lines(recording).splitlines(keepends=True)[17:17 + count])
    assert fast.lines(recording, start, count) == expected


def test_the_server_mix_of_bench_render(fast):
    spec = importlib.util.spec_from_file_location("render_bench", ROOT / "bench/render/render_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    buf = bench.server_mix_bytes(500)
    assert fast.lines(buf) == python_lines(buf)


def test_lines_longer_than_the_buffer_and_runs_that_overflow_it(fast, recording):
    small = fastrender.Renderer()
    small._out = ctypes.create_string_buffer(64)        # not one line fits: it grows, then fills many times
    assert small.lines(recording * 3) == python_lines(recording) * 3


def test_a_malformed_record_is_an_error(fast, recording):
    bad = bytearray(recording[:events.FIXED])
    bad[0] = 9      # a size that is not a multiple of 8
    with pytest.raises(events.RecordError):
        fast.lines(bytes(bad))


def test_every_errno_prints_as_decode_names_it(fast):
    """The library names the errnos saga.decode names and prints the others as decode.errno_name does."""
    buf = b"".join(events.pack(dict(nr=syscalls.BY_NAME["openat"].slot, ret=-err)) for err in range(1, 4096))
    assert fast.lines(buf) == python_lines(buf)
    assert b" = -4095 E4095 " in fast.lines(buf)


def test_changed_decode_tables_are_seen_after_clear_caches(fast, monkeypatch):
    shared = fastrender.shared()
    assert shared is not None
    buf = events.pack(dict(nr=syscalls.BY_NAME["futex"].slot, pid=5, args=(0x7F00, 0x81, 1), ts_ns=7))
    before = shared.lines(buf)
    monkeypatch.setitem(decode.CALLS, "futex", lambda a, out: [out[0], "OP", out[2]])
    render.clear_caches()
    try:
        assert b"(0x7f00, OP, 1)" in shared.lines(buf) and shared.lines(buf) == python_lines(buf)
    finally:
        monkeypatch.undo()
        render.clear_caches()
    assert shared.lines(buf) == before


_SLOTS = sorted(syscalls.BY_SLOT) + [syscalls.BY_NAME[n].slot for n in ("fcntl", "umask", "mmap", "exit_group")] \
    + [1000, 65535]
_U64 = st.integers(0, 2**64 - 1)


@st.composite
def records(draw) -> bytes:
    slot = draw(st.sampled_from(_SLOTS))
    call = syscalls.BY_SLOT.get(slot)
    n_paths = len(call.path_args) if call is not None else 0
    paths = draw(st.lists(st.one_of(st.none(), st.binary(max_size=40), st.sampled_from([b"/etc/passwd", b"\xff\n"]),
                                    st.binary(min_size=254, max_size=255)), max_size=n_paths))
    aux_kind = draw(st.sampled_from([0, 0, _uapi.SAGA_AUX_ARGV, _uapi.SAGA_AUX_SOCKADDR]))
    aux = draw(st.sampled_from([b"", b"ls\0-l\0", b"\x02\x00\x00\x50\x7f\x00\x00\x01" + bytes(8),
                                b"\x01\x00/run/x\0"])) if aux_kind else b""
    ret = draw(st.one_of(st.integers(-4096, 10), st.integers(-2**63, 2**63 - 1),
                         st.sampled_from([-4096, -4095, -1, 0x8002, 0o22])))
    return events.pack(dict(
        nr=slot, flags=draw(st.integers(0, 0xFFFF)) & ~_uapi.SAGA_EVF_AUX_MASK, aux_kind=aux_kind, aux=aux,
        cpu=draw(st.integers(0, 0xFFFF)), pid=draw(st.integers(0, 2**32 - 1)), tid=draw(st.integers(0, 9)),
        uid=draw(st.sampled_from([0, 1000, 2**32 - 1])), ts_ns=draw(_U64), duration_ns=draw(_U64), ret=ret,
        args=tuple(draw(st.lists(st.one_of(_U64, st.integers(0, 70)), min_size=6, max_size=6))),
        comm=draw(st.one_of(st.sampled_from([b"", b"sshd", b"a b", b'q"', b"a\\b", b"x\0y", b"\xc3\xa9t\xe9"]),
                            st.binary(max_size=15))),
        paths=paths, cgroup_id=draw(_U64)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records(), min_size=1, max_size=8))
def test_random_records(fast, context, recs):
    buf = b"".join(recs)
    assert fast.lines(buf) == python_lines(buf)


class Rows:
    """Records as an archive search gives them to Renderer.rows: failure rows (paths as ids), and what it
    asks for on a miss (each record, its paths marked or not; a path by id)."""

    def __init__(self, buf: bytes) -> None:
        ex = columns.extract(buf, events.sizes(buf))
        self.table = np.zeros(ex.n, columns.FAILURE_ROW)
        self.table["pos"] = np.arange(ex.n)
        for code, col in ex.fields.items():
            self.table[columns.CODE_NAMES[code]] = col
        self.strings: dict[int, bytes] = {}
        ids: dict[bytes, int] = {}
        for i, key in zip(ex.path_rows.tolist(), ex.path_keys, strict=True):
            for j, path in enumerate(columns.split_key(key)):
                if path is not None:
                    self.table[f"path{j}"][i] = ids.setdefault(path, len(ids) + 1)
                    self.strings[ids[path]] = path
        self.aux = dict(zip(ex.aux_rows.tolist(), ex.aux, strict=True))

    def record_of(self, i: int, marked: bool) -> tuple:
        row = self.table[i:i + 1]
        ids = (int(row["path0"][0]), int(row["path1"][0]))
        paths = [tuple((fastrender.MARKS[j] if marked else self.strings[k]) if k else None
                       for j, k in enumerate(ids))]
        return columns.raws({c: row[columns.CODE_NAMES[c]] for c in columns.EVENT_CODES}, 1, paths,
                            {0: self.aux[i]} if i in self.aux else None)[0]

    def lines(self, fast: fastrender.Renderer, taught: int = 0) -> bytes:
        """taught: how many of the paths are taught before (the others are asked for)."""
        scope = fastrender.new_scope()      # the ids are this table's (1, 2, ... in each)
        some = sorted(self.strings)[:taught]
        fast.learn_paths(scope, some, [self.strings[k] for k in some])
        return fast.rows(self.table, scope, lambda idx, marked: [self.record_of(int(i), marked) for i in idx],
                         self.strings.__getitem__)


def test_archive_rows_print_as_their_records(fast, recording):
    """Renderer.rows: the recorded workload as an archive search's rows, paths asked for one at a time or
    taught before, calls taught as templates or whole, calls with an aux blob alone; then from the cache."""
    rows = Rows(recording)
    assert rows.aux and rows.strings and any(fastrender.path_registers(int(nr)) for nr in rows.table["nr"])
    fresh = fastrender.Renderer()
    assert rows.lines(fresh) == python_lines(recording)
    assert rows.lines(fresh) == python_lines(recording)
    assert rows.lines(fastrender.Renderer(), taught=len(rows.strings)) == python_lines(recording)
    small = fastrender.Renderer()
    small._out = ctypes.create_string_buffer(64)
    assert rows.lines(small, taught=5) == python_lines(recording)


def test_path_ids_of_one_search_are_not_taken_for_another_s(fast):
    """String ids are an archive's: the same ids in another scope (another search) are other paths."""
    openat = syscalls.BY_NAME["openat"].slot
    execve = syscalls.BY_NAME["execve"].slot        # no template: its text is kept by its path ids
    for paths in ([b"/etc/passwd"], [b"/etc/shadow"], [b"/etc/passwd"]):
        buf = b"".join(events.pack(dict(nr=nr, args=(2**32 - 100, 0x1234, 0), paths=paths)) for nr in (openat, execve))
        rows = Rows(buf)
        assert set(rows.strings) == {1}
        assert rows.lines(fast) == python_lines(buf)


@given(st.one_of(st.binary(max_size=40), st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.sampled_from([b"/etc/passwd", b'a"b', b"a\\b", b"\x7f", b" ", b"\x1b[0m", b"\xc3\xa9"])))
def test_a_path_is_quoted_as_render_quotes_it(path):
    assert fastrender.quoted_path(path) == \
        render.quote(path.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def test_a_template_holds_each_path_where_the_call_prints_it():
    openat = syscalls.BY_NAME["openat"].slot
    assert fastrender.path_registers(openat) == (1,)
    assert fastrender.path_registers(syscalls.BY_NAME["renameat2"].slot) == (1, 3)
    assert fastrender.path_registers(syscalls.BY_NAME["read"].slot) == ()
    assert fastrender.path_registers(syscalls.BY_NAME["execve"].slot) == ()       # its aux blob (argv)
    (raw,) = events.parse(events.pack(dict(nr=openat, args=(2**32 - 100, 0x1234, 0o100, 0o644),
                                           paths=[fastrender.MARKS[0]])))
    assert fastrender.template(raw) == "openat(AT_FDCWD, \0\0, O_RDONLY|O_CREAT, 0644)"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records(), min_size=1, max_size=8), st.integers(0, 3))
def test_random_records_as_archive_rows(fast, recs, taught):
    buf = b"".join(recs)
    assert Rows(buf).lines(fast, taught) == python_lines(buf)


def test_the_window_renders_the_same_text_with_the_library_and_without(recording, monkeypatch):
    def text(w: EventWindow) -> bytes:
        return w.snapshot().read_all()

    def fill() -> EventWindow:
        w = EventWindow(max_events=2000, chunk_events=300)     # chunks of several reads each
        off = 0
        sizes = events.sizes(recording)
        for k in range(0, len(sizes), 97):
            n = int(sizes[k:k + 97].sum())
            w.append(recording[off:off + n])
            off += n
        return w
    with_c = text(fill())
    monkeypatch.setattr(windowmod.fastrender, "shared", lambda: None)
    assert with_c == text(fill()) == python_lines(recording)
