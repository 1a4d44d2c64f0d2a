"""Calls handled at entry (exit_group, rt_sigreturn) and exits whose syscall number reads -1.

rt_sigreturn returns into the restored context, whose syscall number is -1
at sys_exit: like the module, the driver counts and logs it at entry and
ignores exits numbered -1, so nothing lands in slot `unknown` (1023).
"""
from __future__ import annotations

import os

from ebpf_helpers import records
from ruleids import numbered

from saga import _uapi, events
from saga.rules import parse

RT_SIGRETURN, EXIT_GROUP, UNKNOWN = 15, 231, _uapi.SAGA_NR_UNKNOWN
N = 37


def counts(drv, *slots: int) -> list[tuple[int, int]]:
    per_slot = drv.stats().per_slot
    return [per_slot.get(s, (0, 0)) for s in slots]


def delta(after, before) -> list[tuple[int, int]]:
    return [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]


def test_rt_sigreturn_counted_and_logged_at_entry(drv, workload):
    w = workload("signal", N)
    # Every call of the workload is counted, so one landing in `unknown` would show.
    drv.replace_rules(numbered([parse(f"log rt_sigreturn,exit_group pid={w.pid}"), parse(f"count all pid={w.pid}"),
                       parse("ignore all")]))
    before = counts(drv, RT_SIGRETURN, UNKNOWN)
    assert w.go(drv) == 0  # the workload checks its handler ran N times
    assert delta(counts(drv, RT_SIGRETURN, UNKNOWN), before) == [(N, 0), (0, 0)]
    recs = records(drv, pid=w.pid)
    assert [r[events.NR] for r in recs] == [RT_SIGRETURN] * N + [EXIT_GROUP]
    for r in recs[:N]:
        assert r[events.ORIG_NR] == RT_SIGRETURN and r[events.TID] == w.pid
        assert r[events.FLAGS] == _uapi.SAGA_EVF_NORETURN
        assert r[events.RET] == 0 and r[events.DURATION] == 0
        assert events.comm_str(r[events.COMM]) == "saga-workload"


def test_rt_sigreturn_counted_without_sys_enter(drv, workload):
    """Counting only (sys_enter detached): rt_sigreturn is still counted once per call."""
    w = workload("signal", N)
    drv.replace_rules(numbered([parse(f"count all pid={w.pid}"), parse("ignore all")]))
    assert not os.path.exists(os.path.join(drv.directory, "link_sys_enter"))
    before = counts(drv, RT_SIGRETURN, UNKNOWN, EXIT_GROUP)
    assert w.go(drv) == 0
    assert delta(counts(drv, RT_SIGRETURN, UNKNOWN, EXIT_GROUP), before) == [(N, 0), (0, 0), (1, 0)]
    assert records(drv, pid=w.pid) == []


def test_default_rules_log_signals_without_unknown(drv, workload):
    w = workload("signal", N)
    assert w.go(drv) == 0
    recs = records(drv, pid=w.pid)
    assert [r for r in recs if r[events.NR] == UNKNOWN] == []
    sigret = [r for r in recs if r[events.NR] == RT_SIGRETURN]
    assert len(sigret) == N and all(r[events.FLAGS] == _uapi.SAGA_EVF_NORETURN for r in sigret)
    # Each handler's rt_sigreturn follows the tgkill that delivered its signal.
    nrs = [r[events.NR] for r in recs if r[events.NR] in (RT_SIGRETURN, 234)]  # 234: tgkill
    assert nrs == [234, RT_SIGRETURN] * N


def test_syscall_minus_one_is_not_counted(drv, workload):
    """An exit numbered -1 is ignored (the module does the same); other bad numbers count as unknown."""
    w = workload("nosys", N)
    drv.replace_rules(numbered([f"log unknown pid={w.pid}", f"count all pid={w.pid}", "ignore all"]))
    before = counts(drv, UNKNOWN)
    assert w.go(drv) == 0
    assert delta(counts(drv, UNKNOWN), before) == [(N, N)]  # the N calls of number 600, each -ENOSYS
    recs = records(drv, pid=w.pid)
    assert len(recs) == N
    assert all(r[events.ORIG_NR] == 600 and r[events.RET] == -38 for r in recs)


def test_exit_group_logged_with_its_status(drv, workload):
    w = workload("exit", 7)
    drv.replace_rules(numbered([parse(f"log all pid={w.pid}"), parse("ignore all")]))
    before = counts(drv, EXIT_GROUP)
    assert w.go(drv) == 7
    assert delta(counts(drv, EXIT_GROUP), before) == [(1, 0)]
    recs = records(drv, pid=w.pid)
    assert recs[-1][events.NR] == EXIT_GROUP
    ends = [r for r in recs if r[events.NR] == EXIT_GROUP]
    assert len(ends) == 1
    r = ends[0]
    assert r[events.FLAGS] == _uapi.SAGA_EVF_NORETURN and r[events.ARG0] == 7
    assert r[events.RET] == 0 and r[events.DURATION] == 0 and r[events.ORIG_NR] == EXIT_GROUP
