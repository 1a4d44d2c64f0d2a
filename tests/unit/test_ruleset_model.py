"""The eBPF driver's rule tables (drivers/ebpf/ruleset.py) decide as the replay driver does.

`decide` reads the two tables ruleset.py builds the way bpf/saga.bpf.c reads them (the
action byte of the slot, or the walk from the first rule its list names), and hypothesis
checks it against the replay driver's first-match over random rule lists and calls."""
from __future__ import annotations

import os
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from saga import _uapi, events
from saga.drivers.ebpf import layout as L
from saga.drivers.ebpf.ruleset import RuleSet
from saga.drivers.replay import ReplayDriver
from saga.rules import exe as exe_id
from saga.rules.model import ACTIONS, Rule
from saga.syscalls import BY_NAME

NAMES = ("read", "write", "close", "getppid", "openat")
SLOTS = tuple(BY_NAME[n].slot for n in NAMES)
EXES = (os.path.realpath(sys.executable), os.path.realpath("/bin/sh"))
IDENTITY = {p: exe_id.identity(p) for p in EXES}


def decide(rs: RuleSet, call: tuple, exe: tuple[int, int], marks: frozenset[int]) -> tuple[int, int]:
    """(action, id of the rule that logs it) as the BPF program reads the tables."""
    acts, table = L.ACTIONS.unpack(rs.actions()), L.RULESET.unpack(rs.encode())
    slot, pid, uid, comm, ret = call
    byte = acts["slot"][slot]
    if not byte & L.ACT_WALK:
        return byte, acts["rule"][slot] if byte == _uapi.SAGA_ACT_LOG else 0
    v = table["slot"][slot]
    if not v & L.SLOT_WALK:
        return v, 0
    body = rs.encode()
    for i in range(v & L.SLOT_INDEX, table["nr_rules"]):
        r = L.RULE.unpack(body, L.RS_RULES_OFF + i * L.RULE.size)
        m = r["match"]
        if not r["syscalls"][slot >> 6] >> (slot & 63) & 1:
            continue
        fields = ((not m & _uapi.SAGA_MATCH_PID or r["pid"] == pid)
                  and (not m & _uapi.SAGA_MATCH_UID or r["uid"] == uid)
                  and (not m & _uapi.SAGA_MATCH_COMM or r["comm"] == comm)
                  and (not m & _uapi.SAGA_MATCH_EXE or (r["exe_dev"], r["exe_ino"]) == exe))
        if not fields and not (m & _uapi.SAGA_MATCH_TREE and r["id"] in marks):
            continue
        if m & _uapi.SAGA_MATCH_ERRORS and ret >= 0:
            continue
        return r["action"], r["id"]
    return table["default_action"], 0


@st.composite
def rule_lists(draw):
    out = []
    for i in range(1, draw(st.integers(0, 6)) + 1):
        kw = dict(pid=draw(st.sampled_from((None, 1, 2))), uid=draw(st.sampled_from((None, 0, 1))),
                  comm=draw(st.sampled_from((None, "a", "b"))), exe=draw(st.sampled_from((None,) + EXES)),
                  errors=draw(st.booleans()))
        kw["tree"] = draw(st.booleans()) and any(kw[k] is not None for k in ("pid", "uid", "comm", "exe"))
        names = draw(st.one_of(st.just(("all",)),
                               st.lists(st.sampled_from(NAMES),
                                        min_size=1, max_size=3, unique=True).map(tuple)))
        out.append(Rule(draw(st.sampled_from(tuple(ACTIONS))), names, id=i, **kw))
    return out


UNNAMED = BY_NAME["getpid"].slot        # a call no rule names
calls = st.tuples(st.sampled_from(SLOTS + (UNNAMED,)), st.sampled_from((1, 2, 3)), st.sampled_from((0, 1)),
                  st.sampled_from(("a", "b", "c")), st.sampled_from((0, -9)))


@settings(max_examples=300, deadline=None)
@given(rule_lists(), calls, st.sampled_from(EXES), st.frozensets(st.integers(1, 6), max_size=2),
       st.sampled_from(tuple(ACTIONS)))
def test_bpf_tables_decide_as_the_replay_driver(rules, call, exe, marks, default):
    rs = RuleSet((), ACTIONS[default]).replace(rules)
    slot, pid, uid, comm, ret = call
    comm_b = comm.encode().ljust(_uapi.SAGA_COMM_LEN, b"\0")
    (raw,) = events.parse(events.pack(dict(nr=slot, pid=pid, tid=pid, uid=uid, comm=comm, ret=ret)))
    with ReplayDriver(default_action=default) as drv:
        drv.replace_rules(rules)
        drv.set_exe(pid, exe)
        drv._marks[pid] = marks          # what the fork records would have made
        want = drv._action(raw)
    action, rule_id = decide(rs, (slot, pid, uid, comm_b, ret), IDENTITY[exe], marks)
    assert (action, rule_id if action == _uapi.SAGA_ACT_LOG else 0) == \
        (want[0], want[1] if want[0] == _uapi.SAGA_ACT_LOG else 0)
