"""Rules on the module beyond the conformance table (test_conformance.py): the default_action parameter,
the records of errors-only rules, replace, lock, /proc/saga/rules."""

import pytest
from kernelutil import NOBODY, SLOT, calls, drain, only, proc, rule, slot_calls

from saga import rules as grammar
from saga.rules.model import same_rule

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


def test_default_action_parameter(module):
    module.load(default_action="count")
    with module.driver() as drv:
        assert drv.info().default_action == "count"
        assert logged(drv, "getppid") == (0, pytest.approx(N, abs=5))


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


def test_replace_is_exact_and_keeps_ids(saga):
    only(saga, "log read")
    new = [rule("7: count getppid key=x"), rule("5: ignore openat comm=calls"), rule("3: log all errors")]
    saga.replace_rules(new)
    got = saga.list_rules()
    assert [r.id for r in got] == [7, 5, 3]
    assert [r.with_id(None) for r in got] == [r.with_id(None) for r in
                                               [rule("count getppid key=x"), rule("ignore openat comm=calls"),
                                                rule("log all errors")]]


def test_lock_lasts_until_unload(module):
    module.load()
    with module.driver() as drv:
        only(drv, "count getppid")
        drv.lock_rules()
        drv.reset_stats()  # counters are not rules
        assert len(drv.list_rules()) == 1 and drv.info().enabled
    module.unload()
    module.load()
    with module.driver() as drv:
        assert not drv.info().locked and drv.list_rules() == []
        only(drv, "log read")


def test_proc_rules_in_the_grammar(saga):
    lines = ["count read,write comm=nginx key=nginx-io", "log openat errors", "ignore getppid,openat pid=1",
             f"count getppid uid={NOBODY}", "log execve comm='my prog' key='a b'", "ignore all exe=/bin/sh tree"]
    only(saga, *lines)
    text = proc("rules").splitlines()
    assert len(text) == len(lines)
    got = [grammar.parse(line) for line in text]
    want = saga.list_rules()
    assert [r.id for r in got] == [r.id for r in want]
    for g, w, src in zip(got, want, lines, strict=True):
        assert g.slots == w.slots == rule(src).slots
        assert (g.action, g.pid, g.uid, g.comm, g.errors, g.key, g.exe, g.tree) == \
            (w.action, w.pid, w.uid, w.comm, w.errors, w.key, w.exe, w.tree)
    assert text[0].split(": ", 1)[1] == "count read,write comm=nginx key=nginx-io"
    assert text[2].split(": ", 1)[1] == "ignore getppid,openat pid=1"
    assert text[4].split(": ", 1)[1] == "log execve comm='my prog' key='a b'"
    assert same_rule(got[5], rule("6: ignore all exe=/bin/sh tree"))


def test_proc_rules_says_all_for_every_slot(saga):
    import ctypes

    from kernelutil import _uapi, ioctl_errno

    from saga.rules.abi import pack_rule

    raw = bytearray(pack_rule(rule("1: ignore read pid=1")))
    raw[_uapi.SAGA_RULE.offset("syscalls"):] = b"\xff" * 128  # every slot, named or not
    arg = _uapi.SAGA_RULE_LIST.pack(count=1, rules_ptr=ctypes.addressof(buf := ctypes.create_string_buffer(bytes(raw))))
    assert ioctl_errno(saga.fileno(), _uapi.SAGA_IOC_RULE_REPLACE, arg) == 0 and buf
    assert proc("rules").split(": ", 1)[1] == "ignore all pid=1\n"
