"""Rule lists to and from what the BPF program reads (bpf/saga_bpf.h).

A rule set is published as two values: the per-slot action table (struct
saga_bpf_actions, one byte per slot, read on every call) and the rule-set
value (struct saga_bpf_ruleset: the ordered rules as `struct saga_rule`
plus a per-slot table of u16).  Both resolve most calls in O(1): a slot
whose first covering rule uses no field but the syscall set gets that
rule's action (or the default when nothing covers it); only a slot whose
first covering rule has fields (pid, uid, comm, errors) is marked to walk
the list, from that rule.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

from saga import _uapi
from saga.drivers.ebpf import layout as L
from saga.errors import DriverError
from saga.rules.abi import match_bits, pack_rule, unpack_rule
from saga.rules.model import ACTIONS, Rule


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]    # every rule has an id
    default_action: int        # SAGA_ACT_*
    generation: int = 0
    next_id: int = 1

    def encode(self) -> bytes:
        n = len(self.rules)
        if n > _uapi.SAGA_MAX_RULES:
            raise DriverError(f"too many rules: at most {_uapi.SAGA_MAX_RULES}", errno=errno.ENOSPC)
        table, any_log = self._compile()
        out = bytearray(L.RULESET_SIZE)
        L.RS_HEAD.pack_into(out, 0, self.generation, n, self.default_action, int(any_log), self.next_id)
        L.RS_SLOTS.pack_into(out, L.RS_HEAD.size, *table)
        for i, rule in enumerate(self.rules):
            out[L.RS_RULES_OFF + i * L.RULE.size:L.RS_RULES_OFF + (i + 1) * L.RULE.size] = pack_rule(rule, i)
        return bytes(out)

    def actions(self) -> bytes:
        """The per-slot action table: SAGA_ACT_* or ACT_WALK per slot."""
        table, _ = self._compile()
        return bytes(L.ACT_WALK if v & L.SLOT_WALK else v for v in table)

    def _compile(self) -> tuple[list[int], bool]:
        """The per-slot table, and whether any call at all can end up logged."""
        log = ACTIONS["log"]
        table: list[int | None] = [None] * _uapi.SAGA_NR_SLOTS
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
                if rule.action == "log":
                    any_log = True
                if not fields:
                    decided[s] = True
        if self.default_action == log and not all(decided):
            any_log = True
        return [self.default_action if v is None else v for v in table], any_log

    def can_log(self) -> bool:
        """Whether some call may be logged under this set (then sys_enter must run)."""
        return self._compile()[1]

    @classmethod
    def decode(cls, buf) -> RuleSet:
        generation, n, default_action, _any_log, next_id = L.RS_HEAD.unpack_from(buf, 0)
        rules = tuple(unpack_rule(buf, L.RS_RULES_OFF + i * L.RULE.size) for i in range(n))
        return cls(rules, default_action, generation, next_id)

    # -- changes: each returns a new set (ids as the kernel module assigns them) --

    def _evolve(self, rules: list[Rule], next_id: int) -> RuleSet:
        return RuleSet(tuple(rules), self.default_action, self.generation + 1, next_id)

    def _take_ids(self, rules: list[Rule], next_id: int) -> tuple[list[Rule], int]:
        """Give every id-less rule a fresh id; explicit ids must be unique."""
        seen: set[int] = set()
        for r in rules:
            if r.id is not None:
                if r.id in seen:
                    raise DriverError(f"rule id {r.id} is already in use", errno=errno.EEXIST)
                seen.add(r.id)
                next_id = max(next_id, r.id + 1)
        out = []
        for r in rules:
            if r.id is None:
                while next_id in seen or next_id == 0:
                    next_id = (next_id + 1) & 0xFFFFFFFF
                seen.add(next_id)
                r = r.with_id(next_id)
                next_id = (next_id + 1) & 0xFFFFFFFF
            out.append(r)
        return out, next_id or 1

    def add(self, rule: Rule, position: int | None) -> tuple[RuleSet, int]:
        rules = list(self.rules)
        pos = len(rules) if position is None else position
        if not 0 <= pos <= len(rules):
            raise DriverError(f"position {position} is past the end of the {len(rules)} rules",
                              errno=errno.EINVAL)
        if rule.id is not None and any(r.id == rule.id for r in rules):
            raise DriverError(f"rule id {rule.id} is already in use", errno=errno.EEXIST)
        if len(rules) >= _uapi.SAGA_MAX_RULES:
            raise DriverError(f"too many rules: at most {_uapi.SAGA_MAX_RULES}", errno=errno.ENOSPC)
        rules.insert(pos, rule)
        rules, next_id = self._take_ids(rules, self.next_id)
        new_id = rules[pos].id
        assert new_id is not None      # _take_ids gave it one
        return self._evolve(rules, next_id), new_id

    def remove(self, rule_id: int) -> RuleSet:
        if not any(r.id == rule_id for r in self.rules):
            raise DriverError(f"no rule with id {rule_id}", errno=errno.ENOENT)
        return self._evolve([r for r in self.rules if r.id != rule_id], self.next_id)

    def remove_key(self, key: str) -> tuple[RuleSet, int]:
        kept = [r for r in self.rules if r.key != key]
        return self._evolve(kept, self.next_id), len(self.rules) - len(kept)

    def replace(self, rules: list[Rule]) -> RuleSet:
        if len(rules) > _uapi.SAGA_MAX_RULES:
            raise DriverError(f"too many rules: at most {_uapi.SAGA_MAX_RULES}", errno=errno.ENOSPC)
        rules, next_id = self._take_ids(list(rules), self.next_id)
        return self._evolve(rules, next_id)
