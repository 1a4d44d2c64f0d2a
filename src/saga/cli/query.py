"""`saga query`: search the archive; exit 1 when nothing matches (as ausearch does).

The options that select events are shared with `saga log`, `saga report`
and `saga stats --pid/--comm` (one meaning per short option everywhere:
docs/cli.md).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import typer

from saga import render
from saga.cli.context import Env
from saga.cli.output import colour, failed_line, note
from saga.cli.progress import Progress
from saga.filters import EventFilter, failed

if TYPE_CHECKING:
    from saga.store.query import Archived

NOTHING_MATCHED = 1

# Options that select events.
Syscall = Annotated[str | None, typer.Option("--syscall", "-s", metavar="NAMES",
                                             help="Comma list of names, globs (open*) or %classes")]
Pid = Annotated[int | None, typer.Option("--pid", "-p", min=0, metavar="PID", help="Only this process (thread group)")]
Ppid = Annotated[int | None, typer.Option("--ppid", min=0, metavar="PID", help="Only children of this process")]
Tid = Annotated[int | None, typer.Option("--tid", min=0, metavar="TID", help="Only this thread")]
Comm = Annotated[str | None, typer.Option("--comm", "-c", metavar="NAME", help="Only tasks of this name")]
Uid = Annotated[str | None, typer.Option("--uid", "-u", metavar="UID|USER", help="Only this real user")]
Errors = Annotated[bool, typer.Option("--errors", "-e", help="Only failed calls")]
Errno = Annotated[str | None, typer.Option("--errno", metavar="NAME|N", help="Only calls that failed with this errno "
                                           "(EACCES, 13)")]
Path = Annotated[str | None, typer.Option("--path", metavar="GLOB", help="Only calls with a path that matches "
                                          "(either path; * also matches /)")]
Exe = Annotated[str | None, typer.Option("--exe", "-x", metavar="PATH|GLOB", help="Only processes running this "
                                         "executable (a name without / matches the file name)")]
Key = Annotated[str | None, typer.Option("--key", "-k", metavar="KEY", help="Only calls logged by a rule with this "
                                         "key")]
Unit = Annotated[str | None, typer.Option("--unit", metavar="UNIT|GLOB", help="Only tasks of this systemd unit or "
                                          "container")]
Argv = Annotated[str | None, typer.Option("--argv", metavar="TEXT", help="Only execve calls whose arguments contain "
                                          "TEXT")]
Since = Annotated[str | None, typer.Option("--since", "-S", metavar="WHEN", help="From: 1h, 30m, today, yesterday, "
                                           "boot, recent, this-week, 2026-11-21, 2026-11-21T21:30Z")]
Until = Annotated[str | None, typer.Option("--until", "-U", metavar="WHEN", help="Up to (as --since)")]
Host = Annotated[str | None, typer.Option("--host", "-H", metavar="HOST", help="Only events archived by this host")]
Json = Annotated[bool, typer.Option("--json", help="One JSON object per line (docs/log-format.md)")]


def build_filter(*, syscall: str | None = None, pid: int | None = None, ppid: int | None = None,
                 tid: int | None = None, comm: str | None = None, uid: str | None = None, errors: bool = False,
                 errno: str | None = None, path: str | None = None, exe: str | None = None, key: str | None = None,
                 unit: str | None = None, argv: str | None = None, since: str | None = None,
                 until: str | None = None, host: str | None = None) -> EventFilter:
    return EventFilter.build(syscall=syscall, pid=pid, ppid=ppid, tid=tid, comm=comm, uid=uid, errors=errors,
                             errno=errno, path=path, exe=exe, key=key, unit=unit, argv=argv, since=since,
                             until=until, host=host)


def print_archived(found: Iterable[Archived], as_json: bool, with_host: bool = False) -> int:
    """Print events as they come (flushed per batch); returns how many."""
    write = sys.stdout.write
    red = not as_json and colour(sys.stdout)
    n = 0
    for a in found:
        if as_json:
            obj = render.to_json(a.raw)
            obj["host"] = a.host
            obj["exe"] = a.exe
            write(json.dumps(obj, separators=(",", ":")) + "\n")
        else:
            text = render.line(a.raw)
            if red and failed(a.raw):
                text = failed_line(text)
            write((f"{a.host}: " if with_host else "") + text + "\n")
        n += 1
        if n % 4096 == 0:
            sys.stdout.flush()
    sys.stdout.flush()
    return n


def query(ctx: typer.Context,
          syscall: Syscall = None, pid: Pid = None, ppid: Ppid = None, tid: Tid = None, comm: Comm = None,
          uid: Uid = None, errors: Errors = False, errno: Errno = None, path: Path = None, exe: Exe = None,
          key: Key = None, unit: Unit = None, argv: Argv = None, since: Since = None, until: Until = None,
          host: Host = None,
          limit: Annotated[int, typer.Option("--limit", "-n", min=0, metavar="N",
                                             help="At most N events, the last archived (0: all, as they are found)")]
          = 1000,
          as_json: Json = False,
          with_host: Annotated[bool, typer.Option("--with-host", help="Prefix lines with the host name")] = False,
          ) -> None:
    """Search the archive, in archive order. Exit status 1 when no event matches."""
    env: Env = ctx.obj
    flt = build_filter(syscall=syscall, pid=pid, ppid=ppid, tid=tid, comm=comm, uid=uid, errors=errors, errno=errno,
                       path=path, exe=exe, key=key, unit=unit, argv=argv, since=since, until=until, host=host)
    with env.searching(flt) as (search, progress):
        if limit:
            found = search.last(limit + 1)
            more = len(found) > limit
            progress.close()
            shown = print_archived(found[1:] if more else found, as_json, with_host)
        else:
            more = False
            shown = print_archived(_after_first(search.stream(), progress), as_json, with_host)
    if not shown:
        note("no matching events")
        raise typer.Exit(NOTHING_MATCHED)
    if more:
        note(f"showing the {limit} matching events archived last; narrow the search or raise --limit (0: all)")


def _after_first(found: Iterable[Archived], progress: Progress) -> Iterable[Archived]:
    """The events, the progress display gone before the first is printed."""
    for a in found:
        progress.close()
        yield a
