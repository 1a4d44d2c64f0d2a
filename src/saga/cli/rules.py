"""`saga rules`: add, list, remove, clear, lock, and rule files (check, load, save).

Changes go through the rules service: stored in the database and applied
to the driver together, or not at all.  `--offline` changes only the
database (the daemon installs it at its next start).
"""
from __future__ import annotations

import enum
import os
import sys
import time
from dataclasses import fields
from typing import TYPE_CHECKING, Annotated

import typer

from saga import rules as grammar
from saga.cli.context import Env
from saga.cli.output import json_out, note, out, warn
from saga.errors import RuleError, UsageError, WriteFailed, from_oserror
from saga.render import iso_time
from saga.rules.grammar import parse_uid
from saga.rules.model import Rule, same_rule, same_rules

if TYPE_CHECKING:
    from saga.rules.service import RulesService

app = typer.Typer(no_args_is_help=True, help="Rules: what is counted and logged (ordered, first match wins).")

Offline = Annotated[bool, typer.Option("--offline", help="Change only the stored rules (no driver needed)")]


class Action(enum.Enum):
    log = "log"
    count = "count"
    ignore = "ignore"


def _service(ctx: typer.Context, offline: bool = False) -> RulesService:
    env: Env = ctx.obj
    return env.rules(offline=offline)


def _warn_about(rule: Rule) -> None:
    for w in rule.warnings():
        warn(w)


_NOT_CONDITIONS = {"action", "syscalls", "key", "id"}


def shadows(earlier: Rule, new: Rule) -> bool:
    """Whether `earlier` matches every call `new` matches (first match wins: `new` would never apply).

    Each condition `earlier` sets must be one `new` sets too, with the same value (`errors`:
    new must also be errors-only); its syscalls must include all of new's.
    """
    if not earlier.slots >= new.slots:
        return False
    for f in fields(Rule):
        if f.name in _NOT_CONDITIONS:
            continue
        mine, theirs = getattr(earlier, f.name), getattr(new, f.name)
        if f.name == "errors":
            if mine and not theirs:
                return False
        elif mine is not None and mine is not False and mine != theirs:   # uid=0 is a condition
            return False
    return True


def listing(svc: RulesService) -> tuple[list[Rule], bool | None]:
    """The rules in force, written as stored when the driver agrees; (rules, in sync?) (None: no driver)."""
    stored = svc.stored()
    if svc.driver is None:
        return stored, None
    live = svc.driver.list_rules()
    if same_rules(live, stored):
        return stored, True
    # Show the driver's truth, in the stored spelling where a rule matches one.
    by_id = {r.id: r for r in stored}
    return [by_id[r.id] if r.id in by_id and same_rule(r, by_id[r.id]) else r for r in live], False


def _rule_json(rule: Rule) -> dict:
    return {"id": rule.id, "action": rule.action, "syscalls": list(rule.syscalls), "pid": rule.pid,
            "uid": rule.uid, "comm": rule.comm, "exe": rule.exe, "errors": rule.errors, "tree": rule.tree,
            "key": rule.key, "text": grammar.format(rule)}


def _read_rules_file(path: str) -> list[Rule]:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise from_oserror(exc, f"reading {path}", UsageError) from None
    except UnicodeDecodeError:
        raise RuleError(f"{path}: not a text file") from None
    return grammar.parse_lines(text, "<stdin>" if path == "-" else path)


@app.command("add")
def add(ctx: typer.Context,
        action: Annotated[Action, typer.Argument(help="log (count and log), count (count only), ignore (neither)")],
        syscalls: Annotated[str, typer.Argument(metavar="SYSCALLS",
                                                help="Comma list of names, globs (open*), %classes or all")],
        pid: Annotated[int | None, typer.Option("--pid", min=0, metavar="PID", help="Only calls of this process")]
        = None,
        uid: Annotated[str | None, typer.Option("--uid", metavar="UID|USER", help="Only calls of this user")]
        = None,
        comm: Annotated[str | None, typer.Option("--comm", metavar="NAME", help="Only tasks of this name")] = None,
        exe: Annotated[str | None, typer.Option("--exe", metavar="PATH", help="Only processes running this program")]
        = None,
        errors: Annotated[bool, typer.Option("--errors", help="Only calls that failed")] = False,
        tree: Annotated[bool, typer.Option("--tree", help="Also the processes they start, and theirs")] = False,
        key: Annotated[str | None, typer.Option("--key", "-k", metavar="K", help="A tag to list and remove by")]
        = None,
        first: Annotated[bool, typer.Option("--first", help="Put the rule first (default: last)")] = False,
        offline: Offline = False) -> None:
    """Add a rule: ACTION SYSCALLS with optional conditions."""
    tokens = tuple(t.strip() for t in syscalls.split(",") if t.strip())
    rule = Rule(action.value, tokens, pid=pid, uid=parse_uid(uid) if uid is not None else None, comm=comm,
                exe=os.path.abspath(exe) if exe is not None else None, errors=errors, tree=tree, key=key)
    _warn_about(rule)
    svc = _service(ctx, offline)
    if not first:
        hiding = next((r for r in svc.stored() if shadows(r, rule)), None)
        if hiding is not None:
            warn(f"rule {grammar.format(hiding, with_id=True)} comes first and matches every call this one does: "
                 "this rule would never apply (--first puts it before)")
    added = svc.add(rule, first=first)
    out(f"added {grammar.format(added, with_id=True)}")


@app.command("list")
def list_(ctx: typer.Context,
          as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
          offline: Annotated[bool, typer.Option("--stored", help="The stored rules, without asking the driver")]
          = False) -> None:
    """The rules in order, with their ids."""
    rules, in_sync = listing(_service(ctx, offline))
    if as_json:
        json_out([_rule_json(r) for r in rules])
    elif not rules:
        note("no rules: every call gets the default action")
    else:
        for r in rules:
            out(grammar.format(r, with_id=True))
    if in_sync is False:
        warn("the driver's rules differ from the stored ones; the daemon installs the stored rules at start "
             "(saga rules list --stored shows them)")


@app.command("rm")
def rm(ctx: typer.Context,
       rule_id: Annotated[int | None, typer.Argument(metavar="[ID]", min=1, help="The rule's id")] = None,
       key: Annotated[str | None, typer.Option("--key", "-k", metavar="K",
                                               help="Remove every rule with this key")] = None,
       offline: Offline = False) -> None:
    """Remove a rule by id, or every rule with a key."""
    if rule_id is not None and key is None:
        removed = [_service(ctx, offline).remove(rule_id)]
    elif key is not None and rule_id is None:
        removed = _service(ctx, offline).remove_key(key)
    else:
        raise UsageError("give a rule ID or --key K (saga rules list shows both)")
    for r in removed:
        out(f"removed {grammar.format(r, with_id=True)}")


@app.command("clear")
def clear(ctx: typer.Context, offline: Offline = False) -> None:
    """Remove every rule."""
    removed = _service(ctx, offline).clear()
    out(f"removed {len(removed)} rule{'s' if len(removed) != 1 else ''}")


@app.command("lock")
def lock(ctx: typer.Context) -> None:
    """Make the rules immutable until the driver is unloaded (not stored; see rules.lock in the config)."""
    _service(ctx).lock()
    out("rules locked until the driver is unloaded")


@app.command("check")
def check(path: Annotated[str, typer.Argument(metavar="FILE", help="A rule file ('-' for stdin)")]) -> None:
    """Validate a rule file without applying it."""
    rules = _read_rules_file(path)
    for r in rules:
        _warn_about(r)
    out(f"{path}: {len(rules)} rule{'s' if len(rules) != 1 else ''}, ok")


@app.command("load")
def load(ctx: typer.Context,
         path: Annotated[str, typer.Argument(metavar="FILE", help="A rule file ('-' for stdin)")],
         offline: Offline = False) -> None:
    """Replace all rules with those of a file (all or nothing)."""
    rules = _read_rules_file(path)
    for r in rules:
        _warn_about(r)
    installed = _service(ctx, offline).replace(rules)
    out(f"loaded {len(installed)} rule{'s' if len(installed) != 1 else ''} from {path}")


@app.command("save")
def save(ctx: typer.Context,
         path: Annotated[str, typer.Argument(metavar="FILE", help="Where to write ('-' for stdout)")],
         offline: Annotated[bool, typer.Option("--stored", help="Save the stored rules, without the driver")]
         = False) -> None:
    """Write the rules to a file in the rule grammar (loadable with rules load)."""
    env: Env = ctx.obj
    rules, _ = listing(_service(ctx, offline))
    text = f"# saga rules of {env.host}, saved {iso_time(time.time_ns())}\n"
    text += "".join(grammar.format(r) + "\n" for r in rules)
    if path == "-":
        sys.stdout.write(text)
        return
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise from_oserror(exc, f"writing {path}", WriteFailed, hint="run as root, or save elsewhere") from None
    out(f"saved {len(rules)} rule{'s' if len(rules) != 1 else ''} to {path}")
