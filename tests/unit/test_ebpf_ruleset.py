"""The eBPF driver's rule-set encoding (no kernel needed)."""
from __future__ import annotations

import errno

import pytest

from saga import _uapi
from saga.drivers.ebpf import layout as L
from saga.drivers.ebpf.ruleset import RuleSet
from saga.errors import RuleError
from saga.rules import parse
from saga.syscalls import BY_NAME

LOG, COUNT, IGNORE = _uapi.SAGA_ACT_LOG, _uapi.SAGA_ACT_COUNT, _uapi.SAGA_ACT_IGNORE
READ, WRITE, OPENAT = (BY_NAME[n].slot for n in ("read", "write", "openat"))


def table(rs: RuleSet) -> tuple[int, ...]:
    return L.RULESET.unpack(rs.encode())["slot"]


def built(*lines: str, default=LOG) -> RuleSet:
    return RuleSet((), default).replace([parse(x).with_id(i) for i, x in enumerate(lines, 1)])


def test_value_size_matches_the_c_layout():
    assert len(RuleSet((), LOG).encode()) == L.RULESET_SIZE
    assert len(RuleSet((), LOG).actions()) == L.ACTIONS_SIZE


def test_fieldless_rules_resolve_per_slot():
    t = table(built("ignore read", "count read,write", "log all"))
    assert (t[READ], t[WRITE], t[OPENAT]) == (IGNORE, COUNT, LOG)


def test_slots_nothing_covers_take_the_default():
    t = table(built("ignore read", default=COUNT))
    assert t[READ] == IGNORE and t[WRITE] == COUNT


def test_a_rule_with_fields_makes_its_slots_walk_from_it():
    t = table(built("count write", "ignore read,write pid=7", "log read"))
    assert t[WRITE] == COUNT  # the field-less rule comes first
    assert t[READ] == L.SLOT_WALK | 1


def test_can_log():
    assert built().can_log()  # default log
    assert not built(default=COUNT).can_log()
    assert not built("count all", default=COUNT).can_log()
    assert not built("count all").can_log()  # 'all' is every slot: nothing is left to the default
    assert built("log read pid=1", default=COUNT).can_log()
    assert not built("ignore read", "log read", default=IGNORE).can_log()  # shadowed
    assert built("ignore read uid=3", "log read", default=IGNORE).can_log()


def test_round_trip_keeps_order_ids_and_fields():
    rs = built("log %file uid=0 comm=bash errors key=k", "count all pid=7 tree", "ignore read exe=/bin/sh")
    back = RuleSet.decode(rs.encode())
    # tokens come back as names (or `all`): the slot sets are what must match
    assert [r.with_id(None).slots for r in back.rules] == [r.slots for r in rs.rules]
    assert [(r.action, r.pid, r.uid, r.comm, r.errors, r.key, r.exe, r.tree) for r in back.rules] == \
        [(r.action, r.pid, r.uid, r.comm, r.errors, r.key, r.exe, r.tree) for r in rs.rules]
    assert back.rules[1].syscalls == ("all",) and back.default_action == LOG
    assert back.rules[2].exe.startswith("@") and [r.id for r in back.rules] == [1, 2, 3]
    assert L.RULESET.unpack(rs.encode())["nr_tree"] == 1


@pytest.mark.parametrize("ids, code", [([4, 4], errno.EEXIST), ([0], errno.EINVAL), ([None], errno.EINVAL),
                                       ([5, 1 << 32], errno.EINVAL)])
def test_ids_are_the_callers_nonzero_and_unique(ids, code):
    with pytest.raises(RuleError) as e:
        RuleSet((), LOG).replace([parse("count read").with_id(i) for i in ids])
    assert e.value.errno == code


def test_the_deciding_rule_id_of_each_plain_slot():
    rs = built("count write", "ignore read,write pid=7", "log read")
    rule = L.ACTIONS.unpack(rs.actions())["rule"]
    assert rule[WRITE] == 1 and rule[READ] == 0 and rule[OPENAT] == 0   # walked, or the default action


def test_action_table_matches_the_rule_set_table():
    rs = built("count write", "ignore read,write pid=7", "log read", "ignore all errors", default=COUNT)
    acts = L.ACTIONS.unpack(rs.actions())["slot"]
    assert len(acts) == _uapi.SAGA_NR_SLOTS
    assert acts[WRITE] == COUNT                      # a field-less rule decides it
    assert acts[READ] == L.ACT_WALK                  # a rule with fields comes first
    assert acts[OPENAT] == L.ACT_WALK                # 'ignore all errors' covers every slot
    assert L.ACTIONS.unpack(built(default=IGNORE).actions())["slot"] == (IGNORE,) * _uapi.SAGA_NR_SLOTS
    # Plain entries are the rule set's own table; walking ones defer to it.
    for a, t in zip(acts, table(rs), strict=True):
        assert a == (L.ACT_WALK if t & L.SLOT_WALK else t)
