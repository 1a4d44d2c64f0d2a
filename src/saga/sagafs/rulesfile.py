"""Writing `/sagafs/rules`, and `/sagafs/error_log` (docs/sagafs.md).

The lines a write(2) completes (ops.py keeps a line cut across writes until its newline, or
close) are commands:

    RULE        add the rule at the end (the rule grammar, docs/rules.md)
    -ID         remove the rule with this id
    clear       remove every rule
    # ...       a comment (blank lines are ignored too)

All the lines of a write apply together, through the rules service (the
database and the driver in one step), or none does: a line that does not
parse fails the write with EINVAL before anything is applied, and a
command that cannot be applied (no such id: ENOENT; rules locked: EPERM)
rolls the whole write back.  The reason is kept in `error_log`, like
tracefs's, with the command that caused it; so are the rule grammar's
warnings about rules that probably do not do what was meant.
"""
from __future__ import annotations

import errno
import time
from collections import deque
from dataclasses import dataclass

import pyfuse3
import trio

from saga.errors import SagaError, UsageError
from saga.render import iso_time, printable
from saga.rules import grammar
from saga.rules.model import Rule

MAX_WRITE = 64 * 1024
ERROR_LOG_ENTRIES = 16


class CommandError(UsageError):
    """A command of a write that fails; `line` is the command, for error_log."""

    def __init__(self, message: str, line: str):
        super().__init__(message)
        self.line = line


class NoSuchRule(CommandError):
    errno = errno.ENOENT


class ErrorLog:
    """The last few failed (or warned about) commands, oldest first."""

    def __init__(self, size: int = ERROR_LOG_ENTRIES) -> None:
        self.entries: deque[str] = deque(maxlen=size)

    def add(self, level: str, message: str, command: str) -> None:
        command = command if len(command) <= 200 else command[:200] + "..."
        self.entries.append(f"[{iso_time(time.time_ns())}] rules: {level}: {printable(message)}\n"
                            f"  Command: {printable(command)}\n")

    def text(self) -> bytes:
        return "".join(self.entries).encode("utf-8", "surrogateescape")

    def clear(self) -> None:
        self.entries.clear()


@dataclass(frozen=True)
class Command:
    op: str                 # add | remove | clear
    line: str
    rule: Rule | None = None
    rule_id: int | None = None


def parse_commands(text: str) -> list[Command]:
    """The commands of one write; CommandError on the first bad one."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        try:
            words = grammar.words(line)      # comments as in rule files
            if words:
                out.append(_command(line, words))
        except UsageError as exc:
            raise CommandError(str(exc), line) from exc
    return out


def _command(line: str, words: list[str]) -> Command:
    if words == ["clear"]:
        return Command("clear", line)
    if line.startswith("-"):
        rid = " ".join(words)[1:].strip()
        if not rid.isdigit():
            raise UsageError(f"'-ID' removes the rule with that id: {rid!r} is not an id")
        return Command("remove", line, rule_id=int(rid))
    rule = grammar.parse(line)
    if rule.id is not None:
        raise UsageError("saga gives a new rule its id: write the rule without the 'N:' prefix")
    return Command("add", line, rule=rule)


def _apply(service, commands: list[Command]) -> None:
    def compute(old: list[Rule], with_id) -> list[Rule]:
        new = list(old)
        for c in commands:
            if c.op == "add":
                new.append(with_id(c.rule))
            elif c.op == "remove":
                if not any(r.id == c.rule_id for r in new):
                    raise NoSuchRule(f"no rule with id {c.rule_id}", c.line)
                new = [r for r in new if r.id != c.rule_id]
            else:
                new = []
        return new

    service.edit(compute)


def _fail(fs, exc: SagaError, command: str) -> pyfuse3.FUSEError:
    fs.errors.add("error", str(exc), exc.line if isinstance(exc, CommandError) else command)
    return pyfuse3.FUSEError(exc.errno)


async def write_rules(fs, _key: int, data: bytes) -> None:
    whole = data.decode("utf-8", "replace").strip()
    if len(data) > MAX_WRITE:
        raise _fail(fs, UsageError(f"write at most {MAX_WRITE} bytes of rules at a time"), whole)
    try:
        commands = parse_commands(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail(fs, UsageError("rules are UTF-8 text"), whole) from None
    except UsageError as exc:
        raise _fail(fs, exc, whole) from None
    if not commands:
        return
    try:
        await trio.to_thread.run_sync(_apply, fs.state.rules, commands)
    except SagaError as exc:
        raise _fail(fs, exc, whole) from None
    for c in commands:
        if c.rule is not None:
            for w in c.rule.warnings():
                fs.errors.add("warning", w, c.line)


async def clear_error_log(fs, _key: int, _data: bytes) -> None:
    fs.errors.clear()
