"""What `saga query` and `saga report` do once their options are known (docs/cli.md), without typer.

Both run from typer's commands (saga.cli.query, saga.cli.report) and from
the fast start of a plain command line (saga.cli.main); they return the
exit status: 0, or 1 when nothing matches (as ausearch does).  The options
are those of saga.cli.options.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from saga import render
from saga.cli.context import Env
from saga.cli.output import colour, failed_line, json_out, note, out, table
from saga.cli.progress import Progress
from saga.errors import UsageError
from saga.filters import EventFilter, failed

if TYPE_CHECKING:
    import numpy as np

    from saga.store.query import Archived, Rows, Search
    from saga.store.report import Group

NOTHING_MATCHED = 1


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
    import json  # here: only --json needs it (a command's start)
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


def print_found(search: Search, parts: Iterable[tuple[Rows, np.ndarray]], as_json: bool, with_host: bool,
                progress: Progress) -> int:
    """Print a search's matches, a block of parts at a time as they are found (saga.store.query.blocks; the
    progress display gone before the first): lines rendered from their fields (Search.text), written as
    bytes, one write per block; JSON from their records; returns how many."""
    from saga.store.query import blocks
    red = not as_json and colour(sys.stdout)
    n = 0
    for block in blocks(parts):
        progress.close()
        if as_json:
            for rows, idx in block:
                n += print_archived(search.events(rows, idx), True)
            continue
        data = search.text(block)
        if red or with_host:
            texts = data.decode("utf-8", "surrogateescape").split("\n")[:-1]
            if red:
                bad = [b for rows, idx in block for b in search.failed(rows, idx).tolist()]
                texts = [failed_line(t) if b else t for t, b in zip(texts, bad, strict=True)]
            if with_host:
                hosts = [search.host_of(rows) for rows, idx in block for _ in range(len(idx))]
                texts = [f"{h}: {t}" for h, t in zip(hosts, texts, strict=True)]
            data = "".join([t + "\n" for t in texts]).encode("utf-8", "surrogateescape")
        write_bytes(data)
        n += sum(len(idx) for _, idx in block)
    return n


def write_bytes(data: bytes) -> None:
    """Write to standard output as bytes (the text layer flushed first), then flush."""
    sys.stdout.flush()
    raw = getattr(sys.stdout, "buffer", None)
    if raw is None:         # a text stream without bytes under it (tests)
        sys.stdout.write(data.decode("utf-8", "surrogateescape"))
    else:
        raw.write(data)
        raw.flush()


def run_query(env: Env, *, limit: int = 1000, as_json: bool = False, with_host: bool = False, **select) -> int:
    """Search the archive, in archive order: the `limit` matches archived last, or all (0) as they are found."""
    flt = build_filter(**select)
    more = False
    with env.searching(flt) as (search, progress):
        if limit:
            picked = list(search.parts(limit + 1))
            if sum(len(idx) for _, idx in picked) > limit:
                more = True
                picked[0] = (picked[0][0], picked[0][1][1:])
            shown = print_found(search, picked, as_json, with_host, progress)
        else:
            shown = print_found(search, search.parts(idle=True), as_json, with_host, progress)
    if not shown:
        note("no matching events")
        return NOTHING_MATCHED
    if more:
        note(f"showing the {limit} matching events archived last; narrow the search or raise --limit (0: all)")
    return 0


# -- saga report ------------------------------------------------------------------------------

_SORT_KEY = {"calls": lambda g: g.calls, "failures": lambda g: g.failures, "time": lambda g: g.total_ns}
_HEADS = {"syscall": ["SYSCALL"], "process": ["COMM", "EXE"], "exe": ["EXE"], "comm": ["COMM"],
          "user": ["UID", "USER"], "file": ["PATH"], "errno": ["ERRNO"]}


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


def _numbers(g: Group) -> list[str]:
    pct = f"{100 * g.failures / g.calls:.1f}" if g.calls else "-"
    return [str(g.calls), str(g.failures), pct, human_ns(g.percentile(0.5)), human_ns(g.percentile(0.99)),
            human_ns(g.total_ns if g.timed else None)]


def run_report(env: Env, *, by: str = "syscall", top: int = 20, sort: str = "calls", as_json: bool = False,
               **select) -> int:
    """Summarise archived events: calls, failures, p50/p99/total latency per group."""
    from saga.store.report import By, labels, summarize
    try:
        what = By(by)
    except ValueError:
        raise UsageError(f"--by {by!r}: use one of {', '.join(b.value for b in By)}") from None
    flt = build_filter(**select)
    with env.searching(flt) as (search, progress):
        groups = summarize(search, what)
        progress.close()
        if not groups:
            note("no matching events")
            return NOTHING_MATCHED
        calls = sum(g.calls for g in groups)
        failures = sum(g.failures for g in groups)
        total_ns = sum(g.total_ns for g in groups)
        order = _SORT_KEY[str(getattr(sort, "value", sort))]
        groups.sort(key=lambda g: (-order(g), -g.calls))
        shown = groups[:top] if top else groups
        names = list(labels(search, what, shown))
    if as_json:
        json_out({"by": what.value, "calls": calls, "failures": failures, "total_ns": total_ns,
                  "groups_total": len(groups),
                  "groups": [{**n, "calls": g.calls, "failures": g.failures, "p50_ns": g.percentile(0.5),
                              "p99_ns": g.percentile(0.99), "total_ns": g.total_ns}
                             for n, g in zip(names, shown, strict=True)]})
        return 0
    heads = _HEADS[what.value]
    rows = [_label(what.value, n) + _numbers(g) for n, g in zip(names, shown, strict=True)]
    span = f"top {len(shown)} of {len(groups)}" if len(shown) < len(groups) else f"{len(groups)}"
    out(f"{calls} calls, {failures} failed, {human_ns(total_ns)} in calls; {span} by {what.value}")
    out(table(heads + ["CALLS", "FAILED", "FAIL%", "P50", "P99", "TOTAL"], rows,
              "l" * len(heads) + "r" * 6))
    return 0


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
