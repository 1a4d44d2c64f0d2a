"""`saga report`: the archive summarised by syscall, process, user, file or errno (docs/cli.md).

Calls, failures and latency (p50, p99, total time) per group, as a table
or JSON, over the events the filter options select (the options of `saga
query`).  `saga stats --pid/--comm` prints the by-syscall summary in the
layout of `strace -c` (latency_table).
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import typer

from saga.cli.context import Env
from saga.cli.output import json_out, note, out, table
from saga.cli.query import (
    NOTHING_MATCHED,
    Argv,
    Comm,
    Errno,
    Errors,
    Exe,
    Host,
    Key,
    Path,
    Pid,
    Ppid,
    Since,
    Syscall,
    Tid,
    Uid,
    Unit,
    Until,
    build_filter,
)

if TYPE_CHECKING:
    from saga.store.report import Group


class ReportSort(str, enum.Enum):
    calls = "calls"
    failures = "failures"
    time = "time"


_SORT_KEY = {ReportSort.calls: lambda g: g.calls, ReportSort.failures: lambda g: g.failures,
             ReportSort.time: lambda g: g.total_ns}


def human_ns(ns: int | None) -> str:
    """A duration for a table: 850ns, 12us, 3.4ms, 1.20s."""
    if ns is None:
        return "-"
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1000:.3g}us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.3g}ms"
    return f"{ns / 1e9:.2f}s"


def _label(by: str, fields: dict) -> list[str]:
    if by == "process":
        return [fields["comm"], fields["exe"] or "-"]
    if by == "user":
        return [str(fields["uid"]), fields["user"] or "-"]
    if by == "errno":
        return [fields["errno"]]
    return [str(next(iter(fields.values())) or "-")]


_HEADS = {"syscall": ["SYSCALL"], "process": ["COMM", "EXE"], "exe": ["EXE"], "comm": ["COMM"],
          "user": ["UID", "USER"], "file": ["PATH"], "errno": ["ERRNO"]}


def report(ctx: typer.Context,
           by: Annotated[str, typer.Option("--by", "-b", metavar="WHAT",
                                           help="syscall, process (comm and exe), exe, comm, user, file or errno")]
           = "syscall",
           syscall: Syscall = None, pid: Pid = None, ppid: Ppid = None, tid: Tid = None, comm: Comm = None,
           uid: Uid = None, errors: Errors = False, errno: Errno = None, path: Path = None, exe: Exe = None,
           key: Key = None, unit: Unit = None, argv: Argv = None, since: Since = None, until: Until = None,
           host: Host = None,
           top: Annotated[int, typer.Option("--top", "-t", min=0, metavar="N", help="Only the first N rows (0: all)")]
           = 20,
           sort: Annotated[ReportSort, typer.Option("--sort", help="Order by calls, failures or time")]
           = ReportSort.calls,
           as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
           ) -> None:
    """Summarise archived events: calls, failures, p50/p99/total latency per group. Exit 1 when none match."""
    from saga.errors import UsageError
    from saga.store.report import By, labels, summarize
    try:
        what = By(by)
    except ValueError:
        raise UsageError(f"--by {by!r}: use one of {', '.join(b.value for b in By)}") from None
    env: Env = ctx.obj
    flt = build_filter(syscall=syscall, pid=pid, ppid=ppid, tid=tid, comm=comm, uid=uid, errors=errors, errno=errno,
                       path=path, exe=exe, key=key, unit=unit, argv=argv, since=since, until=until, host=host)
    with env.searching(flt) as (search, progress):
        groups = summarize(search, what)
        progress.close()
        if not groups:
            note("no matching events")
            raise typer.Exit(NOTHING_MATCHED)
        calls = sum(g.calls for g in groups)
        failures = sum(g.failures for g in groups)
        total_ns = sum(g.total_ns for g in groups)
        groups.sort(key=lambda g: (-_SORT_KEY[sort](g), -g.calls))
        shown = groups[:top] if top else groups
        names = list(labels(search, what, shown))
    if as_json:
        json_out({"by": what.value, "calls": calls, "failures": failures, "total_ns": total_ns,
                  "groups_total": len(groups),
                  "groups": [{**n, "calls": g.calls, "failures": g.failures, "p50_ns": g.percentile(0.5),
                              "p99_ns": g.percentile(0.99), "total_ns": g.total_ns}
                             for n, g in zip(names, shown, strict=True)]})
        return
    heads = _HEADS[what.value]
    rows = [_label(what.value, n) + _numbers(g) for n, g in zip(names, shown, strict=True)]
    span = f"top {len(shown)} of {len(groups)}" if len(shown) < len(groups) else f"{len(groups)}"
    out(f"{calls} calls, {failures} failed, {human_ns(total_ns)} in calls; {span} by {what.value}")
    out(table(heads + ["CALLS", "FAILED", "FAIL%", "P50", "P99", "TOTAL"], rows,
              "l" * len(heads) + "r" * 6))


def _numbers(g: Group) -> list[str]:
    pct = f"{100 * g.failures / g.calls:.1f}" if g.calls else "-"
    return [str(g.calls), str(g.failures), pct, human_ns(g.percentile(0.5)), human_ns(g.percentile(0.99)),
            human_ns(g.total_ns if g.timed else None)]


def latency_table(groups: list[Group]) -> str:
    """A by-syscall summary in the layout of `strace -c` (time, seconds, usecs/call, calls, errors, syscall)."""
    from saga import syscalls
    total = sum(g.total_ns for g in groups) or 1
    groups = sorted(groups, key=lambda g: (-g.total_ns, -g.calls))
    rule = "------ ----------- ----------- --------- --------- ----------------"
    lines = ["% time     seconds  usecs/call     calls    errors syscall", rule]
    for g in groups:
        per = f"{g.total_ns / g.timed / 1000:11.0f}" if g.timed else f"{'-':>11}"
        errors = f"{g.failures:9d}" if g.failures else " " * 9
        lines.append(f"{100 * g.total_ns / total:6.2f} {g.total_ns / 1e9:11.6f} {per} {g.calls:9d} {errors} "
                     f"{syscalls.name_of(int(g.key))}")
    lines.append(rule)
    calls = sum(g.calls for g in groups)
    timed = sum(g.timed for g in groups)
    per = f"{sum(g.total_ns for g in groups) / timed / 1000:11.0f}" if timed else f"{'':11}"
    fails = sum(g.failures for g in groups)
    lines.append(f"{100.0:6.2f} {sum(g.total_ns for g in groups) / 1e9:11.6f} {per} {calls:9d} "
                 f"{fails if fails else '':>9} total")
    return "\n".join(line.rstrip() for line in lines)
