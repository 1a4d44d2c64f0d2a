"""Rules in their kernel form: `struct saga_rule` (linux/saga.h), as the
kernel module's ioctls and the eBPF driver's rule maps both hold them,
(saga.rules.model.check_list(installed=True) is what every driver checks
a list for before installing it; the module checks the same in C)."""
from __future__ import annotations

from saga import _uapi
from saga.rules import exe as exe_id
from saga.rules.model import ACTION_NAMES, ACTIONS, Rule, slots_from_bitmap, tokens_for_slots

RULE = _uapi.SAGA_RULE


def match_bits(rule: Rule) -> int:
    return ((_uapi.SAGA_MATCH_PID if rule.pid is not None else 0)
            | (_uapi.SAGA_MATCH_UID if rule.uid is not None else 0)
            | (_uapi.SAGA_MATCH_COMM if rule.comm is not None else 0)
            | (_uapi.SAGA_MATCH_ERRORS if rule.errors else 0)
            | (_uapi.SAGA_MATCH_EXE if rule.exe is not None else 0)
            | (_uapi.SAGA_MATCH_TREE if rule.tree else 0))


def pack_rule(rule: Rule) -> bytes:
    """struct saga_rule for `rule`; exe= is resolved to the file's identity now (RuleError if it is gone)."""
    dev, ino = exe_id.identity(rule.exe) if rule.exe is not None else (0, 0)
    return bytes(RULE.pack(id=rule.id or 0, action=ACTIONS[rule.action], match=match_bits(rule), pid=rule.pid or 0,
                           uid=rule.uid or 0, exe_dev=dev, exe_ino=ino, comm=(rule.comm or "").encode(),
                           key=(rule.key or "").encode(), syscalls=rule.bitmap()))


def unpack_rule(buf, offset: int = 0) -> Rule:
    """The Rule a struct saga_rule describes, id included (exe= as the identity it holds)."""
    r = RULE.unpack(buf, offset)
    match = r["match"]
    return Rule(
        action=ACTION_NAMES[r["action"]],
        syscalls=tokens_for_slots(slots_from_bitmap(r["syscalls"])),
        pid=r["pid"] if match & _uapi.SAGA_MATCH_PID else None,
        uid=r["uid"] if match & _uapi.SAGA_MATCH_UID else None,
        comm=r["comm"].rstrip(b"\0").decode() if match & _uapi.SAGA_MATCH_COMM else None,
        errors=bool(match & _uapi.SAGA_MATCH_ERRORS),
        key=r["key"].rstrip(b"\0").decode() or None,
        id=r["id"],
        exe=exe_id.format_identity(r["exe_dev"], r["exe_ino"]) if match & _uapi.SAGA_MATCH_EXE else None,
        tree=bool(match & _uapi.SAGA_MATCH_TREE),
    )
