"""The eBPF driver on this kernel: counts and records, exactly (rule semantics: test_conformance.py)."""
from __future__ import annotations

import os

from ebpf_helpers import drain, records
from ruleids import numbered

from saga import _uapi, events
from saga.rules import parse
from saga.rules.model import same_rules
from saga.syscalls import BY_NAME

GETPPID, CLOSE, OPENAT, RENAMEAT, EXIT_GROUP = (BY_NAME[n].slot for n in
                                                ("getppid", "close", "openat", "renameat", "exit_group"))
N = 5000


def calls(drv, slot: int) -> tuple[int, int]:
    return drv.stats().per_slot.get(slot, (0, 0))


def isolate(drv, action: str, syscall: str, pid: int, extra: str = "") -> None:
    """Rules so that only `pid` moves `syscall`'s counters: ACTION SYSCALL pid=P, then ignore it."""
    drv.replace_rules(numbered([parse(f"{action} {syscall} pid={pid} {extra}"), parse(f"ignore {syscall}")]))


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
    # Other processes' getppid is ignored too (by the second rule), so the counter must not move
    # at all, whatever else the host runs; the workload's other calls fall through to the default.
    isolate(drv, "ignore", "getppid", w.pid)
    before = calls(drv, GETPPID)
    w.go(drv)
    assert calls(drv, GETPPID) == before
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


def test_rules_round_trip(drv):
    rules = numbered([parse("log %file uid=0 comm=bash errors key=k"), parse("count all pid=7 tree"),
                      parse("ignore read,write exe=/bin/sh")], first=7)
    drv.replace_rules(rules)
    got = drv.list_rules()
    assert [(r.id, r.action, r.pid, r.uid, r.comm, r.errors, r.key, r.slots, r.tree) for r in got] == \
        [(r.id, r.action, r.pid, r.uid, r.comm, r.errors, r.key, r.slots, r.tree) for r in rules]
    assert got[1].syscalls == ("all",) and same_rules(got, rules)


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

