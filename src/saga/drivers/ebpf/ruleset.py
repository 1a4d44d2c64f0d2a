"""Rule lists to and from what the BPF program reads (bpf/saga_bpf.h).

A rule set is published as two values: the per-slot action table (struct
saga_bpf_actions: one byte per slot, read on every call, and the id of
the rule that decided it, read when the call is logged) and the rule-set
value (struct saga_bpf_ruleset: the ordered rules as `struct saga_rule`
plus a per-slot table of u16).  Both resolve most calls in O(1): a slot
whose first covering rule uses no field but the syscall set gets that
rule's action (or the default when nothing covers it); only a slot whose
first covering rule has fields (pid, uid, comm, exe, errors) is marked to
walk the list, from that rule.  Ids are the caller's (saga.rules.abi
checks them as the module does); nothing here allocates one.
"""
from __future__ import annotations

from dataclasses import dataclass

from saga import _uapi
from saga.drivers.ebpf import layout as L
from saga.rules.abi import match_bits, pack_rule, unpack_rule
from saga.rules.model import ACTIONS, Rule, check_list


@dataclass(frozen=True)
class _Compiled:
    slot: list[int]       # per slot: SAGA_ACT_*, or SLOT_WALK | index of the first rule to walk
    rule: list[int]       # per slot: id of the field-less rule that decided it (0: the default action)
    any_log: bool         # some call can end up logged (then sys_enter must run)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]    # as the driver lists them (read back from struct saga_rule)
    default_action: int        # SAGA_ACT_*
    generation: int = 0

    def encode(self) -> bytes:
        c = self._compile()
        body = b"".join(pack_rule(r) for r in self.rules)
        return bytes(L.RULESET.pack(generation=self.generation, nr_rules=len(self.rules),
                                    default_action=self.default_action, any_log=int(c.any_log),
                                    nr_tree=sum(r.tree for r in self.rules), slot=c.slot, rules=body))

    def actions(self) -> bytes:
        """The per-slot action table: SAGA_ACT_* or ACT_WALK per slot, and the deciding rule ids."""
        c = self._compile()
        return bytes(L.ACTIONS.pack(slot=[L.ACT_WALK if v & L.SLOT_WALK else v for v in c.slot], rule=c.rule))

    def _compile(self) -> _Compiled:
        log = ACTIONS["log"]
        table: list[int | None] = [None] * _uapi.SAGA_NR_SLOTS
        ids = [0] * _uapi.SAGA_NR_SLOTS
        decided = [False] * _uapi.SAGA_NR_SLOTS  # a field-less rule already covers the slot
        any_log = False
        for index, rule in enumerate(self.rules):
            fields = match_bits(rule)
            value = (L.SLOT_WALK | index) if fields else ACTIONS[rule.action]
            for s in rule.slots:
                if decided[s]:
                    continue
                if table[s] is None:
                    table[s] = value
                    if not fields:
                        ids[s] = rule.id or 0
                if rule.action == "log":
                    any_log = True
                if not fields:
                    decided[s] = True
        if self.default_action == log and not all(decided):
            any_log = True
        return _Compiled([self.default_action if v is None else v for v in table], ids, any_log)

    def can_log(self) -> bool:
        """Whether some call may be logged under this set (then sys_enter must run)."""
        return self._compile().any_log

    @classmethod
    def decode(cls, buf) -> RuleSet:
        head = L.RULESET.unpack(buf)
        size = L.RULE.size
        rules = tuple(unpack_rule(buf, L.RS_RULES_OFF + i * size) for i in range(head["nr_rules"]))
        return cls(rules, head["default_action"], head["generation"])

    def replace(self, rules: list[Rule]) -> RuleSet:
        """The set holding exactly `rules` (RuleError as RULE_REPLACE refuses; exe= resolved now)."""
        check_list(rules, installed=True)
        return RuleSet(tuple(unpack_rule(pack_rule(r)) for r in rules), self.default_action, self.generation + 1)
