"""Rules: every action and field, first match wins, keys, clear, replace, lock, /proc/saga/rules."""
import os

import pytest
from kernelutil import NOBODY, SLOT, calls, drain, only, proc, rule, slot_calls

from saga import rules as grammar
from saga.errors import RuleError, RulesLocked

N = 200


def logged(drv, name, **where):
    """(records of `name` from the workload, counter delta) for one run of `calls getppid|fail N`."""
    drain(drv)
    c0, _ = slot_calls(drv, name)
    if name == "getppid":
        calls("getppid", N, **where)
    else:
        calls("fail", N, **where)
    recs = [e for e in drain(drv) if e.comm == "calls" and e.nr == SLOT[name]]
    return len(recs), slot_calls(drv, name)[0] - c0


@pytest.mark.parametrize("action,want_logged,want_counted", [
    ("log", True, True), ("count", False, True), ("ignore", False, False)])
def test_each_action(saga, action, want_logged, want_counted):
    only(saga, f"{action} getppid")
    n_logged, n_counted = logged(saga, "getppid")
    assert n_logged == (N if want_logged else 0)
    assert (n_counted >= N) if want_counted else (n_counted == 0)


def test_default_action_parameter(module):
    module.load(default_action="count")
    with module.driver() as drv:
        assert drv.info().default_action == "count"
        assert logged(drv, "getppid") == (0, pytest.approx(N, abs=5))


def test_first_match_wins(saga):
    only(saga, "count getppid", "log getppid")
    assert logged(saga, "getppid")[0] == 0
    only(saga, "log getppid", "count getppid")
    assert logged(saga, "getppid")[0] == N


def test_insert_position_changes_the_decision(saga):
    saga.add_rule(rule("log getppid"))
    assert logged(saga, "getppid")[0] == N
    saga.add_rule(rule("ignore getppid"), position=0)
    assert logged(saga, "getppid") == (0, 0)


def test_comm_field(saga):
    only(saga, "ignore getppid comm=calls")
    assert logged(saga, "getppid") == (0, 0)
    only(saga, "ignore getppid comm=other")
    assert logged(saga, "getppid")[0] == N


def test_uid_field(saga):
    only(saga, f"ignore getppid uid={NOBODY}")
    assert logged(saga, "getppid", user=NOBODY) == (0, 0)
    assert logged(saga, "getppid")[0] == N


def test_pid_field(saga):
    # Our own pid: our getppid calls are ignored, the workload's are not.
    only(saga, f"ignore getppid pid={os.getpid()}")
    c0, _ = slot_calls(saga, "getppid")
    for _ in range(100):
        os.getppid()
    assert slot_calls(saga, "getppid")[0] - c0 < 100
    assert logged(saga, "getppid")[0] == N


def test_errors_field(saga):
    only(saga, "log openat comm=calls errors", "ignore openat")
    drain(saga)
    calls("fail", 50)
    calls("open", "/etc/hostname")
    recs = [e for e in drain(saga) if e.comm == "calls" and e.nr == SLOT["openat"]]
    assert recs and all(e.ret < 0 for e in recs)
    assert len([e for e in recs if e.paths == ("/nonexistent/saga-test",)]) == 50
    # success of openat by `calls` falls through to `ignore`: not counted either
    c0, e0 = slot_calls(saga, "openat")
    calls("open", "/etc/hostname")
    c1, e1 = slot_calls(saga, "openat")
    assert c1 - c0 == e1 - e0  # only the failures (the loader's probes) are counted


def test_count_errors_only(saga):
    only(saga, "count openat errors", "ignore openat")
    c0, e0 = slot_calls(saga, "openat")
    calls("fail", 100)
    c1, e1 = slot_calls(saga, "openat")
    assert c1 - c0 == e1 - e0 >= 100


def test_syscall_set_with_many_names(saga):
    only(saga, "ignore read,write,openat,getppid,close")
    assert logged(saga, "getppid") == (0, 0)
    only(saga, "ignore all")
    assert logged(saga, "openat") == (0, 0)


def test_keys_and_removal(saga):
    a = saga.add_rule(rule("count getppid key=k1"))
    b = saga.add_rule(rule("count openat key=k1"))
    c = saga.add_rule(rule("ignore read key=k2"))
    assert [r.id for r in saga.list_rules()] == [a, b, c]
    assert saga.remove_key("k1") == 2
    assert [r.id for r in saga.list_rules()] == [c]
    assert saga.remove_key("nothing") == 0
    saga.remove_rule(c)
    assert saga.list_rules() == []
    with pytest.raises(RuleError):
        saga.remove_rule(c)


def test_clear(saga):
    only(saga, "ignore getppid", "count all")
    saga.clear_rules()
    assert saga.list_rules() == [] and saga.info().nr_rules == 0
    assert logged(saga, "getppid")[0] == N


def test_replace_is_exact_and_keeps_ids(saga):
    saga.add_rule(rule("log read"))
    new = [rule("7: count getppid key=x"), rule("ignore openat comm=calls"), rule("3: log all errors")]
    saga.replace_rules(new)
    got = saga.list_rules()
    assert [r.id for r in got][0] == 7 and got[2].id == 3 and got[1].id not in (3, 7)
    assert [r.with_id(None) for r in got] == [r.with_id(None) for r in
                                               [rule("count getppid key=x"), rule("ignore openat comm=calls"),
                                                rule("log all errors")]]


def test_duplicate_id_is_refused(saga):
    saga.add_rule(rule("5: log read"))
    with pytest.raises(RuleError):
        saga.add_rule(rule("5: log write"))
    assert saga.add_rule(rule("log write")) not in (0, 5)


def test_at_least_256_rules_and_the_limit(saga):
    for i in range(1024):
        saga.add_rule(rule(f"count getppid pid={100000 + i}"))
    assert saga.info().nr_rules == 1024
    with pytest.raises(RuleError, match="too many"):
        saga.add_rule(rule("log read"))
    # a walk through 1024 rules with fields still decides correctly
    assert logged(saga, "getppid")[0] == N


def test_lock_makes_rules_immutable_until_unload(module):
    module.load()
    with module.driver() as drv:
        drv.add_rule(rule("count getppid"))
        drv.lock_rules()
        assert drv.info().locked
        for change in (lambda: drv.add_rule(rule("log read")), lambda: drv.remove_rule(1),
                       lambda: drv.remove_key("x"), drv.clear_rules, lambda: drv.replace_rules([]),
                       lambda: drv.set_enabled(False)):
            with pytest.raises(RulesLocked):
                change()
        drv.lock_rules()  # locking again changes nothing and is allowed
        drv.reset_stats()  # counters are not rules
        assert len(drv.list_rules()) == 1 and drv.info().enabled
    module.unload()
    module.load()
    with module.driver() as drv:
        assert not drv.info().locked and drv.list_rules() == []
        drv.add_rule(rule("log read"))


def test_proc_rules_in_the_grammar(saga):
    lines = ["count read,write comm=nginx key=nginx-io", "log openat errors", "ignore getppid,openat pid=1",
             f"count getppid uid={NOBODY}", "log execve comm='my prog' key='a b'"]
    only(saga, *lines)
    text = proc("rules").splitlines()
    assert len(text) == len(lines)
    got = [grammar.parse(line) for line in text]
    want = saga.list_rules()
    assert [r.id for r in got] == [r.id for r in want]
    for g, w, src in zip(got, want, lines, strict=True):
        assert g.slots == w.slots == rule(src).slots
        assert (g.action, g.pid, g.uid, g.comm, g.errors, g.key) == (w.action, w.pid, w.uid, w.comm, w.errors, w.key)
    assert text[0].split(": ", 1)[1] == "count read,write comm=nginx key=nginx-io"
    assert text[2].split(": ", 1)[1] == "ignore getppid,openat pid=1"
    assert text[4].split(": ", 1)[1] == "log execve comm='my prog' key='a b'"


def test_proc_rules_says_all_for_every_slot(saga):
    from kernelutil import _uapi, ioctl_errno

    from saga.rules.abi import pack_rule

    raw = bytearray(pack_rule(rule("ignore read pid=1")))
    raw[_uapi.SAGA_RULE.fields[-1].offset:] = b"\xff" * 128  # every slot, named or not
    assert ioctl_errno(saga.fileno(), _uapi.SAGA_IOC_RULE_ADD, raw) == 0
    assert proc("rules").split(": ", 1)[1] == "ignore all pid=1\n"
