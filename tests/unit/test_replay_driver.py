"""The replay driver holds the capture semantics of docs/capture.md: rules, counters, ring, drops."""
from __future__ import annotations

import errno
import select
import threading

import pytest

from saga import _uapi, events, rules, syscalls
from saga.drivers.replay import ReplayDriver
from saga.errors import DriverError, DriverUnavailable, RulesLocked
from saga.events import COMM, FLAGS, NR, PID, RET

OPENAT = syscalls.BY_NAME["openat"].slot
READ = syscalls.BY_NAME["read"].slot


def drain(drv: ReplayDriver) -> list[tuple]:
    out = []
    while buf := drv.read_raw(4096, timeout=0):
        out.extend(events.parse(buf))
    return out


def counts(raws) -> dict[int, tuple[int, int]]:
    """Per-slot (calls, errors) computed straight from the records."""
    out: dict[int, list[int]] = {}
    for r in raws:
        c = out.setdefault(r[NR], [0, 0])
        c[0] += 1
        c[1] += r[RET] < 0 and not r[FLAGS] & _uapi.SAGA_EVF_NORETURN
    return {k: tuple(v) for k, v in out.items()}


def test_without_rules_every_call_is_counted_and_delivered_in_order(replay, raws):
    got = drain(replay)
    assert got == raws
    st = replay.stats()
    assert st.per_slot == counts(raws)
    assert (st.calls, st.events, st.read, st.drops) == (len(raws), len(raws), len(raws), 0)
    assert st.errors == sum(e for _, e in counts(raws).values())
    assert st.no_enter == sum(1 for r in raws if r[FLAGS] & _uapi.SAGA_EVF_NO_ENTER)


def install(drv: ReplayDriver, *lines: str) -> None:
    drv.replace_rules([rules.parse(x).with_id(i) for i, x in enumerate(lines, 1)])


def without_rule_id(raws: list[tuple]) -> list[tuple]:
    return [r[:events.RULE_ID] + (0,) + r[events.RULE_ID + 1:] for r in raws]


def test_records_carry_the_rule_that_logged_them(replay, raws):
    install(replay, "log openat errors", "count openat", "ignore read comm=saga-fixture")
    got = drain(replay)
    logged = [r for r in got if r[NR] == OPENAT]
    assert without_rule_id(logged) == [r for r in raws if r[NR] == OPENAT and r[RET] < 0]
    assert {r[events.RULE_ID] for r in logged} == {1}                 # the rule that logged each one
    assert {r[events.RULE_ID] for r in got if r[NR] != OPENAT} == {0}  # the default action
    assert not [r for r in got if r[NR] == READ and r[COMM].startswith(b"saga-fixture\0")]
    st = replay.stats()
    assert st.per_slot[OPENAT][0] == sum(1 for r in raws if r[NR] == OPENAT)      # count still counts
    fixture_reads = sum(1 for r in raws if r[NR] == READ and r[COMM].startswith(b"saga-fixture\0"))
    assert st.per_slot.get(READ, (0, 0))[0] == sum(1 for r in raws if r[NR] == READ) - fixture_reads


def test_the_child_side_of_a_fork_is_neither_counted_nor_logged():
    clone = syscalls.BY_NAME["clone3"].slot
    with ReplayDriver() as drv:
        drv.feed(events.pack(dict(nr=clone, pid=10, ret=11)) + events.pack(dict(nr=clone, pid=11, ret=0)))
        got = drain(drv)
        assert [(r[PID], r[RET]) for r in got] == [(10, 11)]
        assert drv.stats().per_slot == {clone: (1, 0)}


def test_a_full_ring_drops_and_counts(recording, raws):
    drv = ReplayDriver(recording, ring_bytes=4096)
    assert drv.advance() == len(raws)               # the calls happen with nobody reading
    st = drv.stats()
    kept = drain(drv)
    assert sum(r[events.SIZE] for r in kept) <= 4096
    assert st.drops == len(raws) - len(kept) > 0
    assert st.events == len(kept) and st.calls == len(raws)


def test_reads_never_lose_events_even_with_a_small_ring(recording, raws):
    drv = ReplayDriver(recording, ring_bytes=2048)
    assert drain(drv) == raws and drv.stats().drops == 0
    drv.close()


def test_fileno_polls_readable_while_events_wait(recording):
    drv = ReplayDriver()
    assert select.select([drv.fileno()], [], [], 0)[0] == []
    drv.feed(recording)
    assert select.select([drv.fileno()], [], [], 0)[0] == [drv.fileno()]
    drain(drv)
    assert select.select([drv.fileno()], [], [], 0)[0] == []
    drv.close()


def test_read_waits_for_fed_events(recording, raws):
    drv = ReplayDriver()
    assert drv.read_raw(1 << 20, timeout=0.05) == b""
    threading.Timer(0.05, drv.feed, (recording,)).start()
    assert events.parse(drv.read_raw(1 << 20, timeout=5)) == raws
    drv.close()


def test_a_buffer_smaller_than_a_record_is_einval(replay):
    with pytest.raises(DriverError) as err:
        replay.read_raw(16)
    assert err.value.errno == errno.EINVAL


def test_disabled_capture_sees_nothing(replay):
    replay.set_enabled(False)
    assert drain(replay) == [] and replay.stats().calls == 0
    assert replay.info().enabled is False


def test_rules_are_listed_as_a_kernel_driver_lists_them_and_locked_for_good(replay):
    install(replay, "ignore open*", "count read key=io")
    assert [r.id for r in replay.list_rules()] == [1, 2]
    assert set(replay.list_rules()[0].syscalls) == {s.name for s in syscalls.glob("open*")}   # from the slot set
    replay.lock_rules()
    for change in (lambda: replay.replace_rules([]), lambda: replay.set_enabled(False)):
        with pytest.raises(RulesLocked):
            change()
    assert replay.info().locked


def test_reset_zeroes_counters(replay):
    drain(replay)
    before = replay.stats().reset_ns
    replay.reset_stats()
    st = replay.stats()
    assert (st.calls, st.events, st.per_slot) == (0, 0, {}) and st.reset_ns >= before


def test_open_reads_plain_and_gzip_recordings(tmp_path, recording):
    import gzip
    (tmp_path / "r").write_bytes(recording)
    (tmp_path / "r.gz").write_bytes(gzip.compress(recording))
    for name in ("r", "r.gz"):
        drv = ReplayDriver.open(str(tmp_path / name))
        assert drv.pending == len(events.parse(recording))
        drv.close()
    (tmp_path / "bad").write_bytes(b"\x01\x00" * 100)
    with pytest.raises(DriverUnavailable, match="not a run of saga records"):
        ReplayDriver.open(str(tmp_path / "bad"))
    with pytest.raises(DriverUnavailable, match="No such file"):
        ReplayDriver.open(str(tmp_path / "missing"))
