import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saga import _uapi, events


def test_pack_parse_round_trip_with_paths():
    raw = events.pack(dict(nr=316, pid=7, tid=8, ppid=1, uid=1000, comm="mv", ret=-2, ts_ns=123,
                           duration_ns=9, args=(1, 2, 3, 4, 5, 6), paths=("/a", "/b/ü")))
    assert len(raw) % 8 == 0
    (rec,) = events.parse(raw)
    ev = events.Event.from_raw(rec)
    assert (ev.nr, ev.pid, ev.tid, ev.ppid, ev.uid, ev.ret, ev.comm) == (316, 7, 8, 1, 1000, -2, "mv")
    assert ev.args == (1, 2, 3, 4, 5, 6)
    assert ev.paths == ("/a", "/b/ü")


def test_parse_steps_by_size_over_mixed_records():
    raw = b"".join(events.pack(dict(nr=n, pid=n, paths=("/x" * n,) if n % 2 else ())) for n in range(1, 50))
    recs = events.parse(raw)
    assert [r[events.NR] for r in recs] == list(range(1, 50))
    assert events.paths_of(recs[2]) == ("/x" * 3,)
    assert recs[1][events.PATHS] == b"" and events.paths_of(recs[1]) == ()


@pytest.mark.parametrize("cut", [1, 8, 100, 127])
def test_truncated_input_is_an_error(cut):
    raw = events.pack(dict(nr=1)) * 2
    with pytest.raises(events.RecordError):
        events.parse(raw[:-cut])


def test_bad_size_is_an_error():
    raw = bytearray(events.pack(dict(nr=1)))
    raw[0] = 12  # size 12 < fixed part
    with pytest.raises(events.RecordError, match="bad record size"):
        events.parse(bytes(raw))


def test_a_path_longer_than_its_record_is_refused_on_the_one_path_fast_path():
    raw = bytearray(events.pack(dict(nr=257, pid=1, paths=("/etc/passwd",))))
    struct.pack_into("<H", raw, _uapi.SAGA_EVENT.offset("path_len"), 200)  # path_len[0] past the record's end
    with pytest.raises(events.RecordError, match="run past its end"):
        events.parse(bytes(raw))
    assert events.paths_of(events.parse(memoryview(events.pack(dict(nr=257, paths=("/x/ÿ",)))))[0]) == ("/x/ÿ",)


@pytest.mark.parametrize("run", [1, 31, 32, 33, 127, 128, 129, 2000])
def test_runs_of_records_without_paths_parse_like_single_records(run):
    """Runs are parsed in windows that grow while they last: every length, where a window ends or not."""
    plain = [events.pack(dict(nr=0, pid=i, ts_ns=i)) for i in range(run)]
    with_path = events.pack(dict(nr=257, pid=-1 & 0xFFFFFFFF, paths=("/p",)))
    records = plain + [with_path] + plain[: run // 2] + [with_path] + plain
    got = events.parse(b"".join(records))
    assert got == [events.parse(r)[0] for r in records]
    assert [r[events.PID] for r in got[:run]] == list(range(run)) and events.paths_of(got[run]) == ("/p",)


@given(st.lists(st.sampled_from(["plain", "path", "two"]), max_size=300))
def test_any_mix_of_records_parses_like_each_record_alone(kinds):
    fields = {"plain": {}, "path": {"paths": ("/etc/x",)}, "two": {"paths": ("/a", "/bb")}}
    records = [events.pack(dict(nr=i % 400, ts_ns=i, **fields[k])) for i, k in enumerate(kinds)]
    buf = b"".join(records)
    assert events.parse(buf) == [events.parse(r)[0] for r in records]
    if buf:
        with pytest.raises(events.RecordError):
            events.parse(buf[:-8])
