"""The rule model: what a rule says, independent of how it is written or applied."""
from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from saga import _uapi, syscalls
from saga.errors import RuleError
from saga.render import printable
from saga.rules import exe as exe_id

ACTIONS = {"log": _uapi.SAGA_ACT_LOG, "count": _uapi.SAGA_ACT_COUNT, "ignore": _uapi.SAGA_ACT_IGNORE}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
COMM_MAX = _uapi.SAGA_COMM_LEN - 1
KEY_MAX = _uapi.SAGA_KEY_LEN - 1

# Legacy calls that glibc no longer makes, with what it calls instead.
LEGACY = {
    "open": ("openat", "open*"), "creat": ("openat", "open*"), "stat": ("newfstatat", "*stat*"),
    "lstat": ("newfstatat", "*stat*"), "access": ("faccessat", "*access*"),
    "unlink": ("unlinkat", "unlink*"), "rename": ("renameat2", "rename*"), "mkdir": ("mkdirat", "mkdir*"),
    "chmod": ("fchmodat", "*chmod*"), "chown": ("fchownat", "*chown*"), "readlink": ("readlinkat", "readlink*"),
    "fork": ("clone", "clone*,fork,vfork"), "dup2": ("dup3", "dup*"), "pipe": ("pipe2", "pipe*"),
    "select": ("pselect6", "*select*"), "poll": ("ppoll", "*poll"), "epoll_wait": ("epoll_pwait", "epoll_*wait*"),
}


# `all` is every slot, named or not, so calls newer than saga's table are covered too.
ALL_SLOTS = frozenset(range(_uapi.SAGA_NR_SLOTS))


def expand(token: str) -> frozenset[int]:
    """Slots named by one syscall token: a name, a glob, a %class or `all`."""
    if token == "all":
        return ALL_SLOTS
    if token.startswith("%"):
        names = syscalls.CLASSES.get(token[1:])
        if names is None:
            raise RuleError(f"unknown class {token!r}: one of " + ", ".join("%" + c for c in sorted(syscalls.CLASSES)))
        return frozenset(syscalls.BY_NAME[n].slot for n in names)
    if any(c in token for c in "*?["):
        found = syscalls.glob(token)
        if not found:
            raise RuleError(f"{token!r} matches no syscall")
        return frozenset(s.slot for s in found)
    call = syscalls.lookup(token)
    if call is None:
        hint = syscalls.suggest(token)
        raise RuleError(f"unknown syscall {token!r}" + (f"; did you mean {', '.join(hint)}?" if hint else ""))
    return frozenset((call.slot,))


@dataclass(frozen=True)
class Rule:
    """ACTION SYSCALLS [pid=N] [uid=N] [comm=NAME] [exe=PATH] [errors] [tree] [key=K], with an id once stored."""

    action: str
    syscalls: tuple[str, ...]
    pid: int | None = None
    uid: int | None = None
    comm: str | None = None
    errors: bool = False
    key: str | None = None
    id: int | None = None
    exe: str | None = None   # an absolute path, or @MAJOR:MINOR:INODE as drivers list it (rules/exe.py)
    tree: bool = False       # the process fields also match descendants forked while the rule is in force

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise RuleError(f"unknown action {self.action!r}: one of log, count, ignore")
        if not self.syscalls:
            raise RuleError("a rule names at least one syscall (or `all`)")
        for name, value in (("pid", self.pid), ("uid", self.uid)):
            if value is not None and not 0 <= value <= 0xFFFFFFFE:
                raise RuleError(f"{name}={value} is out of range")
        if self.comm is not None and not 0 < len(self.comm.encode()) <= COMM_MAX:
            raise RuleError(f"comm must be 1 to {COMM_MAX} bytes (the kernel keeps {COMM_MAX} of a task name)")
        if self.key is not None and not 0 < len(self.key.encode()) <= KEY_MAX:
            raise RuleError(f"key must be 1 to {KEY_MAX} bytes")
        for name, text in (("comm", self.comm), ("key", self.key), ("exe", self.exe)):
            # A newline would forge a line in every listing, an ESC reach the terminal as it is.
            if text is not None and printable(text) != text:
                raise RuleError(f"{name}={printable(text)}: control characters (newline, tab, escape ...) "
                                "are not allowed")
        if self.exe is not None:
            exe_id.check(self.exe)
        if self.tree and self.pid is None and self.uid is None and self.comm is None and self.exe is None:
            raise RuleError("tree needs a process to start from: pid=, uid=, comm= or exe=")
        self.slots  # noqa: B018 - validates every syscall token now, not at apply time

    @cached_property
    def slots(self) -> frozenset[int]:
        out: frozenset[int] = frozenset()
        for token in self.syscalls:
            out |= expand(token)
        return out

    def with_id(self, rule_id: int | None) -> Rule:
        return replace(self, id=rule_id)

    def warnings(self) -> list[str]:
        """Advice about rules that probably do not do what was meant."""
        out = []
        for token in self.syscalls:
            if token in LEGACY:
                modern, glob = LEGACY[token]
                out.append(f"glibc calls {modern} rather than {token}; "
                           f"'{self.action} {glob}' would also cover it")
        return out

    def bitmap(self) -> tuple[int, ...]:
        """The syscall set as SAGA_SYSCALL_WORDS 64-bit words (bit n = slot n)."""
        words = [0] * _uapi.SAGA_SYSCALL_WORDS
        for slot in self.slots:
            words[slot >> 6] |= 1 << (slot & 63)
        return tuple(words)


def slots_from_bitmap(words) -> frozenset[int]:
    return frozenset(w * 64 + b for w, word in enumerate(words) for b in range(64) if word >> b & 1)


def tokens_for_slots(slots: frozenset[int]) -> tuple[str, ...]:
    """Names for a slot set read back from a driver: `all`, else the names in slot order."""
    if slots == ALL_SLOTS:
        return ("all",)
    return tuple(syscalls.name_of(s) for s in sorted(slots))


def check_list(rules: Sequence[Rule], *, installed: bool = False) -> None:
    """What a whole rule list must be to be installed: every driver holds SAGA_MAX_RULES, ids are unique.
    `installed`: the list a driver is given, where every rule has its id, nonzero (the store's).  The errno
    of each refusal is RULE_REPLACE's (docs/kernel-abi.md); the module checks the same, in this order."""
    if len(rules) > _uapi.SAGA_MAX_RULES:
        raise RuleError(f"{len(rules)} rules: a driver holds at most {_uapi.SAGA_MAX_RULES}", errno=errno.ENOSPC)
    seen: set[int] = set()
    for r in rules:
        if r.id is None and not installed:
            continue
        if r.id is None or not 0 < r.id <= 0xFFFFFFFF:
            raise RuleError(f"rule id {r.id} is not a nonzero 32-bit number (ids come from the store)",
                            errno=errno.EINVAL)
        if r.id in seen:
            raise RuleError(f"rule id {r.id} appears twice", errno=errno.EEXIST)
        seen.add(r.id)


def _same_exe(a: str | None, b: str | None) -> bool:
    if a == b or a is None or b is None:
        return a == b
    try:
        return exe_id.identity(a) == exe_id.identity(b)
    except RuleError:  # a program that is gone: not the rule a driver holds
        return False


def same_rule(a: Rule, b: Rule) -> bool:
    """The same rule with the same id, however its syscall set is written (`open*` or a name list)
    and its exe= (a path or the identity a driver lists)."""
    return (a.id == b.id and a.action == b.action and a.slots == b.slots and a.pid == b.pid and a.uid == b.uid
            and a.comm == b.comm and a.errors == b.errors and a.key == b.key and a.tree == b.tree
            and _same_exe(a.exe, b.exe))


def same_rules(a: list[Rule], b: list[Rule]) -> bool:
    return len(a) == len(b) and all(same_rule(x, y) for x, y in zip(a, b, strict=True))
