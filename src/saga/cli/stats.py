"""`saga stats`: per-syscall counters, straight from the driver (no daemon needed).

With --pid or --comm, the counts and times of one process come from the
archive instead (the driver counts per syscall only), in the layout of
`strace -c`.
"""
from __future__ import annotations

import enum
import shutil
import sys
import time
from typing import Any

from saga import syscalls
from saga.cli import options
from saga.cli.context import Env
from saga.cli.output import json_line, json_out, note, out, table, warn
from saga.cli.search import NOTHING_MATCHED, build_filter
from saga.drivers.base import Stats
from saga.errors import UsageError
from saga.render import iso_time


class Sort(str, enum.Enum):
    calls = "calls"
    errors = "errors"
    name = "name"


def rows(st: Stats, sort: Sort, top: int | None, prev: Stats | None = None, dt: float = 0.0) -> list[dict]:
    """One dict per syscall with counts (and rates against `prev` over dt seconds)."""
    out_rows = []
    for slot, (calls, errors) in st.per_slot.items():
        row: dict[str, Any] = {"name": syscalls.name_of(slot), "nr": slot, "calls": calls, "errors": errors}
        if prev is not None and dt > 0:
            pc, pe = prev.per_slot.get(slot, (0, 0))
            row["calls_per_s"] = round(max(calls - pc, 0) / dt, 1)
            row["errors_per_s"] = round(max(errors - pe, 0) / dt, 1)
        out_rows.append(row)
    if sort is Sort.name:
        out_rows.sort(key=lambda r: r["name"])
    else:
        key = sort.value
        if prev is not None and dt > 0:   # a live view ranks by what is happening now
            key += "_per_s"
        out_rows.sort(key=lambda r: (-r[key], r["name"]))
    return out_rows[:top] if top else out_rows


def as_object(st: Stats, sort: Sort, top: int | None, prev: Stats | None = None, dt: float = 0.0) -> dict:
    return {"since": iso_time(st.reset_ns) if st.reset_ns else None, "calls": st.calls, "errors": st.errors,
            "events": st.events, "drops": st.drops, "read": st.read, "no_enter": st.no_enter,
            "path_faults": st.path_faults, "syscalls": rows(st, sort, top, prev, dt)}


def render_table(st: Stats, sort: Sort, top: int | None, prev: Stats | None = None, dt: float = 0.0,
                 fit: int | None = None) -> str:
    """The counters as a table; fit: at most that many lines in all (a terminal's height), busiest rows kept."""
    live = prev is not None and dt > 0
    if fit is not None:        # the head line, the column header and the total row stay
        top = max(1, min(top or fit, fit - 3))
    body = rows(st, sort, top, prev, dt)
    headers = ["SYSCALL", "NR", "CALLS", "ERRORS", "ERR%"] + (["CALLS/s", "ERRORS/s"] if live else [])
    lines = []
    for r in body:
        pct = f"{100 * r['errors'] / r['calls']:.1f}" if r["calls"] else "-"
        line = [r["name"], r["nr"], r["calls"], r["errors"], pct]
        if live:
            line += [f"{r['calls_per_s']:.1f}", f"{r['errors_per_s']:.1f}"]
        lines.append(line)
    pct = f"{100 * st.errors / st.calls:.1f}" if st.calls else "-"
    total = ["total", "", st.calls, st.errors, pct]
    if live and prev is not None:
        total += [f"{max(st.calls - prev.calls, 0) / dt:.1f}", f"{max(st.errors - prev.errors, 0) / dt:.1f}"]
    shown = f"top {len(body)} of {len(st.per_slot)}" if top and len(st.per_slot) > len(body) else \
        f"{len(st.per_slot)} syscalls"
    since = f" since {iso_time(st.reset_ns)}" if st.reset_ns else ""
    head = f"{shown}{since}; events {st.events} logged, {st.drops} dropped"
    return head + "\n" + table(headers, lines + [total])


def _warn_drops(st: Stats) -> None:
    if st.drops:
        warn(f"{st.drops} events were dropped (buffers full): the reader is not keeping up; see docs/daemon.md")


def run_stats(env: Env, *, top: int | None = None, sort: str = "calls", as_json: bool = False,
              watch: float | None = None, count: int | None = None, reset: bool = False, pid: int | None = None,
              comm: str | None = None, since: str | None = None, until: str | None = None,
              host: str | None = None) -> int:
    """Per-syscall counters: calls and errors, with totals; --watch for a live view; --pid/--comm: one process's
    calls, errors and time from the archive (as strace -c)."""
    order = Sort(sort)
    if pid is not None or comm is not None:
        if watch is not None or reset:
            raise UsageError("--pid and --comm read the archive: no --watch or --reset with them")
        return _archived(env, build_filter(pid=pid, comm=comm, since=since or "boot", until=until, host=host),
                         as_json, top)
    if since is not None or until is not None or host is not None:
        raise UsageError("--since, --until and --host need --pid or --comm (the driver's counters have no time)")
    if watch is not None and reset:
        raise UsageError("--reset cannot be combined with --watch")
    if count is not None and watch is None:
        raise UsageError("--count needs --watch")
    drv = env.driver()
    if watch is None:
        st = drv.stats()
        if as_json:
            json_out(as_object(st, order, top))
        else:
            out(render_table(st, order, top))
        _warn_drops(st)
        if reset:
            drv.reset_stats()
        return 0
    _watch(drv, order, top, as_json, watch, count)
    return 0


stats = options.command(options.STATS, run_stats, "Per-syscall counters: calls and errors, with totals; --watch for "
                        "a live view; --pid/--comm: one process's calls, errors and time from the archive (as "
                        "strace -c).")


def _archived(env: Env, flt, as_json: bool, top: int | None) -> int:
    from saga.cli.search import latency_table
    from saga.store.report import By, summarize
    with env.searching(flt) as (search, progress):
        groups = summarize(search, By.syscall)
        progress.close()
    if not groups:
        note("no matching events in the archive")
        return NOTHING_MATCHED
    groups.sort(key=lambda g: (-g.total_ns, -g.calls))
    groups = groups[:top] if top else groups
    if as_json:
        json_out({"syscalls": [{"name": syscalls.name_of(int(g.key)), "nr": int(g.key), "calls": g.calls,
                                "errors": g.failures, "total_ns": g.total_ns, "p50_ns": g.percentile(0.5),
                                "p99_ns": g.percentile(0.99)} for g in groups]})
    else:
        out(latency_table(groups))
    return 0


def _watch(drv, sort: Sort, top: int | None, as_json: bool, every: float, count: int | None) -> None:
    prev, prev_t = drv.stats(), time.monotonic()
    tty = sys.stdout.isatty()
    shown = 0
    try:
        while count is None or shown < count:
            time.sleep(every)
            st, now = drv.stats(), time.monotonic()
            dt = now - prev_t
            if as_json:
                obj = as_object(st, sort, top, prev, dt)
                obj["interval_s"] = round(dt, 3)
                json_line(obj)
            else:
                fit = shutil.get_terminal_size().lines - 1 if tty else None   # the header stays on screen
                text = render_table(st, sort, top, prev, dt, fit)
                out(("\x1b[H\x1b[2J" if tty else "") + text + ("" if tty else "\n"))
            sys.stdout.flush()
            prev, prev_t = st, now
            shown += 1
    except KeyboardInterrupt:
        pass
