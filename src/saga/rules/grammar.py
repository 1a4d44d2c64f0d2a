"""The one rule grammar: `ACTION SYSCALLS [field=value ...]`.

Used by the CLI, rule files, /sagafs/rules, /proc/saga/rules and the
daemon.  See docs/rules.md.  format() and parse() are inverses:
parse(format(rule)) == rule.
"""
from __future__ import annotations

import pwd
import re

from saga.errors import RuleError
from saga.rules.model import Rule, check_list

_ID_PREFIX = re.compile(r"^\s*(\d+):\s*")
_SAFE = re.compile(r"^[A-Za-z0-9_.:@+/%-]+$")


def _quote(value: str) -> str:
    if _SAFE.match(value):
        return value
    import shlex  # here: a search does not quote or split rules, and it costs a command's start
    return shlex.quote(value)


def format(rule: Rule, *, with_id: bool = False) -> str:  # noqa: A001 - the grammar's verb
    parts = [rule.action, ",".join(rule.syscalls)]
    if rule.pid is not None:
        parts.append(f"pid={rule.pid}")
    if rule.uid is not None:
        parts.append(f"uid={rule.uid}")
    if rule.comm is not None:
        parts.append(f"comm={_quote(rule.comm)}")
    if rule.exe is not None:
        parts.append(f"exe={_quote(rule.exe)}")
    if rule.errors:
        parts.append("errors")
    if rule.tree:
        parts.append("tree")
    if rule.key is not None:
        parts.append(f"key={_quote(rule.key)}")
    text = " ".join(parts)
    return f"{rule.id}: {text}" if with_id and rule.id is not None else text


def _int_field(name: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise RuleError(f"{name}= needs a number, not {value!r}") from None


def parse_uid(value: str) -> int:
    """A uid from a number or a user name (resolved now, as the kernel matches numbers)."""
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise RuleError(f"uid={value}: no such user") from None


def words(text: str) -> list[str]:
    """The words of a line as a POSIX shell splits them; `#` outside quotes starts a comment."""
    import shlex
    try:
        return shlex.split(text, comments=True)
    except ValueError as exc:
        raise RuleError(f"cannot split rule: {exc}") from None


def parse(text: str) -> Rule:
    """One rule; an optional `ID:` prefix (as /proc/saga/rules prints) sets its id."""
    rule_id = None
    m = _ID_PREFIX.match(text)
    if m:
        rule_id, text = int(m.group(1)), text[m.end():]
    parts = words(text)
    if len(parts) < 2:
        raise RuleError("a rule is ACTION SYSCALLS [pid=N] [uid=N] [comm=NAME] [exe=PATH] [errors] [tree] [key=K]")
    action, calls, fields = parts[0], parts[1], parts[2:]
    tokens = tuple(t for t in calls.split(",") if t)
    kw: dict = {}
    for field in fields:
        name, eq, value = field.partition("=")
        if name in kw:
            raise RuleError(f"{name} given twice")
        if name in ("errors", "tree") and not eq:
            kw[name] = True
        elif name == "pid" and eq:
            kw["pid"] = _int_field("pid", value)
        elif name == "uid" and eq:
            kw["uid"] = parse_uid(value)
        elif name in ("comm", "key", "exe") and eq:
            kw[name] = value
        else:
            raise RuleError(f"unknown field {field!r}: use pid=N, uid=N, comm=NAME, exe=PATH, errors, tree or key=K")
    return Rule(action, tokens, id=rule_id, **kw)


def parse_lines(text: str, source: str = "<rules>") -> list[Rule]:
    """A rule file: one rule a line, `#` comments, blank lines ignored; a list that can be installed."""
    rules = []
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            if words(line):
                rules.append(parse(line))
        except RuleError as exc:
            raise RuleError(f"{source}:{lineno}: {exc}") from None
    check_list(rules)
    return rules
