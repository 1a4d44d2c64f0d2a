"""The eBPF driver on this kernel: counts, rules and records, exactly."""
from __future__ import annotations

import errno
import os

import pytest
from ebpf_helpers import drain, records

from saga import _uapi, events
from saga.errors import DriverError
from saga.rules import parse

GETPPID, CLOSE, OPENAT, RENAMEAT, EXIT_GROUP = 110, 3, 257, 264, 231
N = 5000


def calls(drv, slot: int) -> tuple[int, int]:
    return drv.stats().per_slot.get(slot, (0, 0))


def isolate(drv, action: str, syscall: str, pid: int, extra: str = "") -> None:
    """Rules so that only `pid` moves `syscall`'s counters: ACTION SYSCALL pid=P, then ignore it."""
    drv.replace_rules([parse(f"{action} {syscall} pid={pid} {extra}"), parse(f"ignore {syscall}")])


def test_counts_exact(drv, workload):
    w = workload("getppid", N)
    isolate(drv, "count", "getppid", w.pid)
    before = calls(drv, GETPPID)
    assert w.go(drv) == 0
    after = calls(drv, GETPPID)
    assert after[0] - before[0] == N
    assert after[1] == before[1]
    assert records(drv, pid=w.pid, slot=GETPPID) == []  # count: not logged


def test_errors_counted(drv, workload):
    w = workload("errors", N)
    isolate(drv, "count", "close", w.pid)
    before = calls(drv, CLOSE)
    w.go(drv)
    after = calls(drv, CLOSE)
    assert (after[0] - before[0], after[1] - before[1]) == (N, N)


def test_log_action_counts_and_logs(drv, workload):
    w = workload("getppid", 100)
    isolate(drv, "log", "getppid", w.pid)
    before = calls(drv, GETPPID)
    w.go(drv)
    assert calls(drv, GETPPID)[0] - before[0] == 100
    recs = records(drv, pid=w.pid, slot=GETPPID)
    assert len(recs) == 100


def test_ignore_action_neither_counts_nor_logs(drv, workload):
    w = workload("getppid", N)
    # Other processes stay counted and logged; only the workload is ignored.
    drv.replace_rules([parse(f"ignore getppid pid={w.pid}")])
    before = calls(drv, GETPPID)
    w.go(drv)
    assert calls(drv, GETPPID)[0] - before[0] < N
    recs = records(drv, pid=w.pid)
    assert [r for r in recs if r[events.NR] == GETPPID] == []
    assert [r[events.NR] for r in recs if r[events.NR] == EXIT_GROUP] == [EXIT_GROUP]  # the rest still logged


def test_default_action_logs_everything(drv, workload):
    w = workload("getppid", 50)
    w.go(drv)
    recs = records(drv, pid=w.pid)
    assert len([r for r in recs if r[events.NR] == GETPPID]) == 50
    # exit_group never returns: counted and logged at entry.
    ends = [r for r in recs if r[events.NR] == EXIT_GROUP]
    assert len(ends) == 1 and ends[0][events.FLAGS] & _uapi.SAGA_EVF_NORETURN


def test_field_uid(drv, workload):
    w = workload("getppid", 30, user=4321)
    drv.replace_rules([parse("log getppid uid=4321"), parse("ignore all")])
    w.go(drv)
    recs = records(drv, slot=GETPPID)
    assert len([r for r in recs if r[events.PID] == w.pid]) == 30
    assert all(r[events.UID] == 4321 for r in recs)


def test_field_comm(drv, workload):
    w = workload("getppid", 30)
    drv.replace_rules([parse("log getppid comm=saga-workload"), parse("ignore all")])
    w.go(drv)
    recs = records(drv, slot=GETPPID)
    assert len([r for r in recs if r[events.PID] == w.pid]) == 30
    assert {events.comm_str(r[events.COMM]) for r in recs} == {"saga-workload"}


def test_field_errors(drv, workload):
    # close(-1) fails; the exit_group and the other closes (none here) succeed.
    w = workload("errors", 40)
    drv.replace_rules([parse(f"log close pid={w.pid} errors"), parse("ignore all")])
    w.go(drv)
    recs = records(drv, pid=w.pid)
    assert len(recs) == 40
    assert all(r[events.RET] == -errno.EBADF for r in recs)


def test_errors_rule_lets_successes_fall_through(drv, workload):
    w = workload("getppid", 20)
    drv.replace_rules([parse(f"ignore getppid pid={w.pid} errors"), parse(f"log getppid pid={w.pid}"),
                       parse("ignore all")])
    w.go(drv)
    assert len(records(drv, pid=w.pid, slot=GETPPID)) == 20


def test_first_match_wins(drv, workload):
    w = workload("getppid", 20)
    drv.replace_rules([parse(f"ignore getppid pid={w.pid}"), parse(f"log getppid pid={w.pid}")])
    w.go(drv)
    assert records(drv, pid=w.pid, slot=GETPPID) == []

    w = workload("getppid", 20)
    drv.replace_rules([parse(f"log getppid pid={w.pid}"), parse(f"ignore getppid pid={w.pid}")])
    w.go(drv)
    assert len(records(drv, pid=w.pid, slot=GETPPID)) == 20


def test_insert_position_changes_order(drv, workload):
    w = workload("getppid", 10)
    drv.replace_rules([parse(f"log getppid pid={w.pid}")])
    rid = drv.add_rule(parse(f"ignore getppid pid={w.pid} key=first"), position=0)
    assert [r.id for r in drv.list_rules()][0] == rid
    w.go(drv)
    assert records(drv, pid=w.pid, slot=GETPPID) == []


def test_syscall_only_rule_is_fast_path(drv, workload):
    # A field-less rule decides without walking: ignore everything but exit_group.
    w = workload("getppid", 10)
    drv.replace_rules([parse("ignore getppid"), parse(f"log all pid={w.pid}")])
    w.go(drv)
    recs = records(drv, pid=w.pid)
    assert recs and all(r[events.NR] != GETPPID for r in recs)


def test_rule_ids_keys_and_errors(drv):
    a = drv.add_rule(parse("count read key=k1"))
    b = drv.add_rule(parse("count write key=k1"))
    c = drv.add_rule(parse("ignore openat").with_id(500))
    assert c == 500 and len({a, b, c}) == 3
    with pytest.raises(DriverError) as e:
        drv.add_rule(parse("ignore close").with_id(500))
    assert e.value.errno == errno.EEXIST
    with pytest.raises(DriverError) as e:
        drv.remove_rule(99999)
    assert e.value.errno == errno.ENOENT
    with pytest.raises(DriverError) as e:
        drv.add_rule(parse("ignore close"), position=10)
    assert e.value.errno == errno.EINVAL
    assert drv.remove_key("k1") == 2
    assert [r.id for r in drv.list_rules()] == [500]
    assert drv.add_rule(parse("ignore close")) == 501
    drv.remove_rule(500)
    listed = drv.list_rules()
    assert [(r.action, r.syscalls) for r in listed] == [("ignore", ("close",))]


def test_rules_round_trip(drv):
    rules = [parse("log %file uid=0 comm=bash errors key=k"), parse("count all pid=7"), parse("ignore read,write")]
    drv.replace_rules(rules)
    got = drv.list_rules()
    assert [(r.action, r.pid, r.uid, r.comm, r.errors, r.key, r.slots) for r in got] == \
        [(r.action, r.pid, r.uid, r.comm, r.errors, r.key, r.slots) for r in rules]
    assert got[1].syscalls == ("all",)


def test_clear(drv, workload):
    drv.replace_rules([parse("ignore all")])
    drv.clear_rules()
    assert drv.list_rules() == [] and drv.info().nr_rules == 0
    w = workload("getppid", 10)
    w.go(drv)
    assert len(records(drv, pid=w.pid, slot=GETPPID)) == 10  # back to the default: log


def test_too_many_rules(drv):
    drv.replace_rules([parse(f"count getppid pid={i + 1}") for i in range(_uapi.SAGA_MAX_RULES)])
    with pytest.raises(DriverError) as e:
        drv.add_rule(parse("count read"))
    assert e.value.errno == errno.ENOSPC
    assert drv.info().nr_rules == _uapi.SAGA_MAX_RULES


def test_disable_and_reset(drv, workload):
    drv.set_enabled(False)
    assert not drv.info().enabled
    w = workload("getppid", 100)
    isolate(drv, "log", "getppid", w.pid)
    before = calls(drv, GETPPID)
    w.go(drv)
    assert calls(drv, GETPPID) == before and records(drv, pid=w.pid) == []
    drv.set_enabled(True)
    drv.reset_stats()
    st = drv.stats()
    assert st.reset_ns > 0 and st.read == 0
    assert st.calls < 100000  # only what ran since the reset


def test_consumer_excluded_but_counted(drv):
    drain(drv)  # registers this process as a reader
    pid = os.getpid()
    isolate(drv, "log", "getppid", pid)
    before = calls(drv, GETPPID)
    for _ in range(1000):
        os.getppid()
    assert calls(drv, GETPPID)[0] - before[0] == 1000
    assert records(drv, pid=pid) == []

