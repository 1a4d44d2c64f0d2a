"""Rules in their kernel form: `struct saga_rule` (linux/saga.h), as the
kernel module's ioctls and the eBPF driver's rule maps both hold them."""
from __future__ import annotations

from saga import _uapi
from saga.rules.model import ACTION_NAMES, ACTIONS, Rule, slots_from_bitmap, tokens_for_slots

RULE = _uapi.SAGA_RULE_STRUCT


def match_bits(rule: Rule) -> int:
    return ((_uapi.SAGA_MATCH_PID if rule.pid is not None else 0)
            | (_uapi.SAGA_MATCH_UID if rule.uid is not None else 0)
            | (_uapi.SAGA_MATCH_COMM if rule.comm is not None else 0)
            | (_uapi.SAGA_MATCH_ERRORS if rule.errors else 0))


def pack_rule(rule: Rule, position: int = _uapi.SAGA_POS_END) -> bytes:
    """struct saga_rule for `rule` (id 0 when it has none: the kernel side picks one)."""
    return RULE.pack(rule.id or 0, ACTIONS[rule.action], match_bits(rule), rule.pid or 0,
                     rule.uid or 0, position, 0, (rule.comm or "").encode(), (rule.key or "").encode(),
                     *rule.bitmap())


def unpack_rule(buf, offset: int = 0) -> Rule:
    """The Rule a struct saga_rule describes, id included."""
    (rid, action, match, pid, uid, _pos, _pad, comm, key, *words) = RULE.unpack_from(buf, offset)
    return Rule(
        action=ACTION_NAMES[action],
        syscalls=tokens_for_slots(slots_from_bitmap(words)),
        pid=pid if match & _uapi.SAGA_MATCH_PID else None,
        uid=uid if match & _uapi.SAGA_MATCH_UID else None,
        comm=comm.rstrip(b"\0").decode() if match & _uapi.SAGA_MATCH_COMM else None,
        errors=bool(match & _uapi.SAGA_MATCH_ERRORS),
        key=key.rstrip(b"\0").decode() or None,
        id=rid,
    )
