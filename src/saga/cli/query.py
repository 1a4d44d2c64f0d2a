"""`saga query`: search the archive; exit 1 when nothing matches (as ausearch does)."""
from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from saga import render
from saga.cli.context import Env
from saga.cli.output import note
from saga.filters import EventFilter

if TYPE_CHECKING:
    from saga.store.query import Archived

NOTHING_MATCHED = 1

# Options shared with `saga log`.
Syscall = Annotated[str | None, typer.Option("--syscall", "-s", metavar="NAMES",
                                             help="Comma list of names, globs (open*) or %classes")]
Pid = Annotated[int | None, typer.Option("--pid", "-p", min=0, metavar="PID", help="Only this process (thread group)")]
Comm = Annotated[str | None, typer.Option("--comm", "-c", metavar="NAME", help="Only tasks of this name")]
Uid = Annotated[str | None, typer.Option("--uid", "-u", metavar="UID|USER", help="Only this real user")]
Errors = Annotated[bool, typer.Option("--errors", "-e", help="Only failed calls")]
Json = Annotated[bool, typer.Option("--json", help="One JSON object per line (docs/log-format.md)")]


def print_archived(found: list[Archived], as_json: bool, with_host: bool = False) -> None:
    write = sys.stdout.write
    for a in found:
        if as_json:
            obj = render.to_json(a.raw)
            obj["host"] = a.host
            obj["exe"] = a.exe
            write(render_json(obj))
        else:
            write((f"{a.host}: " if with_host else "") + render.line(a.raw) + "\n")
    sys.stdout.flush()


def render_json(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


def query(ctx: typer.Context,
          syscall: Syscall = None, pid: Pid = None, comm: Comm = None, uid: Uid = None, errors: Errors = False,
          since: Annotated[str | None, typer.Option("--since", "-S", metavar="WHEN",
                                                    help="From: 1h, 30m, 2d ago, 2026-11-21, 2026-11-21T21:30Z")]
          = None,
          until: Annotated[str | None, typer.Option("--until", "-U", metavar="WHEN", help="Up to (as --since)")]
          = None,
          host: Annotated[str | None, typer.Option("--host", "-H", metavar="HOST",
                                                   help="Only events archived by this host")] = None,
          limit: Annotated[int, typer.Option("--limit", "-n", min=0, metavar="N",
                                             help="At most N events, the last archived (0: all)")] = 1000,
          as_json: Json = False,
          with_host: Annotated[bool, typer.Option("--with-host", help="Prefix lines with the host name")] = False,
          ) -> None:
    """Search the archive. Exit status 1 when no event matches."""
    env: Env = ctx.obj
    flt = EventFilter.build(syscall=syscall, pid=pid, comm=comm, uid=uid, errors=errors, since=since, until=until,
                            host=host)
    found = env.search(flt, limit + 1 if limit else None)
    more = bool(limit) and len(found) > limit
    if more:
        found = found[1:]
    if not found:
        note("no matching events")
        raise typer.Exit(NOTHING_MATCHED)
    print_archived(found, as_json, with_host)
    if more:
        note(f"showing the {limit} matching events archived last; narrow the search or raise --limit")
