"""The options of `saga` itself, `saga query` and `saga report`, declared once, without typer.

typer builds its commands from these (`command`: a command whose
parameters are the table's, for help, man pages, completion and every error message), and
`saga query` and `saga report` are parsed from them without typer when
their command line is plain (`parse`; saga.cli.main): typer and the
pydantic models it coerces each value with cost an administrator's
search more than the search itself (docs/cli.md, "Start-up").  `parse`
understands only `--name VALUE`, `--name=VALUE`, `-x VALUE` and flags,
with values it can check exactly as typer would; anything else (help, a
bad value, a cluster of short options) goes to typer, which says what is
wrong.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Opt:
    dest: str                       # the parameter's name
    flags: tuple[str, ...]
    help: str
    kind: type | tuple[str, ...] = str     # str, int, float, bool, or the values a choice takes
    metavar: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    envvar: str | None = None

    def convert(self, text: str) -> Any:
        """The value as typer would give it, or None where only typer can tell (a bad value: its message)."""
        if isinstance(self.kind, tuple):
            return text if text in self.kind else None
        if self.kind is int:
            if not text.isascii() or not text.isdigit():
                return None
            value = int(text)
            return value if (self.min is None or value >= self.min) and (self.max is None or value <= self.max) \
                else None
        return text if self.kind is str else None


# `saga` itself (before the command's name).
DB = Opt("db", ("--db",), "Database URL or SQLite path (default: store.url)", metavar="URL", envvar="SAGA_DB")
CONFIG = Opt("config", ("--config",), "Configuration file [default: /etc/saga/saga.toml]", metavar="PATH",
             envvar="SAGA_CONFIG")
DEBUG = Opt("debug", ("--debug",), "Log details; show tracebacks", bool, default=False)
ROOT = (DB, CONFIG, DEBUG)

# What selects events: shared by query, report, log and stats (one meaning per short option everywhere).
SYSCALL = Opt("syscall", ("--syscall", "-s"), "Comma list of names, globs (open*) or %classes", metavar="NAMES")
PID = Opt("pid", ("--pid", "-p"), "Only this process (thread group)", int, "PID", min=0)
PPID = Opt("ppid", ("--ppid",), "Only children of this process", int, "PID", min=0)
TID = Opt("tid", ("--tid",), "Only this thread", int, "TID", min=0)
COMM = Opt("comm", ("--comm", "-c"), "Only tasks of this name", metavar="NAME")
UID = Opt("uid", ("--uid", "-u"), "Only this real user", metavar="UID|USER")
ERRORS = Opt("errors", ("--errors", "-e"), "Only failed calls", bool, default=False)
ERRNO = Opt("errno", ("--errno",), "Only calls that failed with this errno (EACCES, 13)", metavar="NAME|N")
PATH = Opt("path", ("--path",), "Only calls with a path that matches (either path; * also matches /)",
           metavar="GLOB")
EXE = Opt("exe", ("--exe", "-x"), "Only processes running this executable (a name without / matches the file name)",
          metavar="PATH|GLOB")
KEY = Opt("key", ("--key", "-k"), "Only calls logged by a rule with this key", metavar="KEY")
UNIT = Opt("unit", ("--unit",), "Only tasks of this systemd unit or container", metavar="UNIT|GLOB")
ARGV = Opt("argv", ("--argv",), "Only execve calls whose arguments contain TEXT", metavar="TEXT")
SINCE = Opt("since", ("--since", "-S"), "From: 1h, 30m, today, yesterday, boot, recent, this-week, 2026-11-21, "
            "2026-11-21T21:30Z", metavar="WHEN")
UNTIL = Opt("until", ("--until", "-U"), "Up to (as --since)", metavar="WHEN")
HOST = Opt("host", ("--host", "-H"), "Only events archived by this host", metavar="HOST")
SELECT = (SYSCALL, PID, PPID, TID, COMM, UID, ERRORS, ERRNO, PATH, EXE, KEY, UNIT, ARGV, SINCE, UNTIL, HOST)

JSON_LINES = Opt("as_json", ("--json",), "One JSON object per line (docs/log-format.md)", bool, default=False)
LIMIT = Opt("limit", ("--limit", "-n"), "At most N events, the last archived (0: all, as they are found)", int, "N",
            default=1000, min=0)
WITH_HOST = Opt("with_host", ("--with-host",), "Prefix lines with the host name", bool, default=False)
QUERY = (*SELECT, LIMIT, JSON_LINES, WITH_HOST)

FOLLOW = Opt("follow", ("--follow", "-f"), "Keep printing new events", bool, default=False)
LINES = Opt("lines", ("--lines", "-n"), "Show the last N events first", int, "N", default=10, min=0)
COUNT = Opt("count", ("--count",), "Exit after printing N events", int, "N", min=1)
LOG = (FOLLOW, JSON_LINES, *(o for o in SELECT if o not in (SINCE, UNTIL, HOST)), LINES, COUNT)

BY = Opt("by", ("--by", "-b"), "syscall, process (comm and exe), exe, comm, user, file or errno", metavar="WHAT",
         default="syscall")
TOP = Opt("top", ("--top", "-t"), "Only the first N rows (0: all)", int, "N", default=20, min=0)
SORT = Opt("sort", ("--sort",), "Order by calls, failures or time", ("calls", "failures", "time"), default="calls")
JSON_ONE = Opt("as_json", ("--json",), "Print one JSON object", bool, default=False)
REPORT = (BY, *SELECT, TOP, SORT, JSON_ONE)

STATS = (Opt("top", ("--top", "-t"), "Only the N busiest syscalls", int, "N", min=1),
         Opt("sort", ("--sort",), "Order by calls, errors or name", ("calls", "errors", "name"), default="calls"),
         Opt("as_json", ("--json",), "Print JSON (with --watch: one object per line)", bool, default=False),
         Opt("watch", ("--watch", "-w"), "Refresh every SECS seconds, with rates", float, "SECS", min=0.1,
             max=86400.0),
         Opt("count", ("--count",), "With --watch: stop after N refreshes", int, "N", min=1),
         Opt("reset", ("--reset",), "Zero the counters after printing them", bool, default=False),
         PID, COMM, Opt("since", SINCE.flags, "With --pid/--comm: from (default: boot)", metavar="WHEN"), UNTIL, HOST)


def _choice(name: str, values: tuple[str, ...]) -> Any:
    import enum
    return enum.Enum(name, {v: v for v in values}, type=str)


def later(module: str, name: str) -> Callable[..., int]:
    """A command's run function, imported when the command runs: its --help starts without numpy."""
    def run(env: Any, **values: Any) -> int:
        import importlib
        return getattr(importlib.import_module(module), name)(env, **values)
    return run


def command(table: Sequence[Opt], run: Callable[..., int], doc: str) -> Callable[..., None]:
    """A typer command whose options are `table`'s: it runs `run(env, **values)` and exits with what that
    returns.  Its signature is made from the table, so every option is declared once."""
    import inspect
    from typing import Annotated

    import typer
    named = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    choices: set[str] = set()
    for o in table:
        default = o.default
        py: Any = o.kind
        if isinstance(o.kind, tuple):         # a choice: an Enum, so that help lists the values
            py = _choice(o.dest.title(), o.kind)
            default = py(o.default)
            choices.add(o.dest)
        elif o.kind is not bool and o.default is None:
            py = o.kind | None
        info = typer.Option(*o.flags, help=o.help, metavar=o.metavar, min=o.min, max=o.max, envvar=o.envvar)
        params.append(inspect.Parameter(o.dest, named, default=default, annotation=Annotated[py, info]))

    def cmd(ctx: typer.Context, **values: Any) -> None:
        for name in choices:
            values[name] = values[name].value
        code = run(ctx.obj, **values)
        if code:
            raise typer.Exit(code)

    cmd.__signature__ = inspect.Signature(params)       # type: ignore[attr-defined]
    cmd.__annotations__ = {"ctx": typer.Context, "return": None}
    cmd.__doc__ = doc
    return cmd


def parse(args: Sequence[str], table: Sequence[Opt]) -> dict[str, Any] | None:
    """The values of `table`'s options in `args` (defaults for the others); None when typer must parse them."""
    by_flag = {flag: o for o in table for flag in o.flags}
    values: dict[str, Any] = {o.dest: o.default for o in table}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        o = by_flag.get(name)
        if o is None:
            return None
        if o.kind is bool:
            if eq:
                return None
            values[o.dest] = True
            i += 1
            continue
        if eq:
            text = inline
            i += 1
        elif i + 1 < len(args):
            text = args[i + 1]
            i += 2
        else:
            return None
        value = o.convert(text)
        if value is None:
            return None
        values[o.dest] = value
    for o in table:             # as click: a value in the environment when the command line gives none
        if o.envvar and values[o.dest] is None and os.environ.get(o.envvar):
            values[o.dest] = os.environ[o.envvar]
    return values
