"""Read handlers of the /sagafs files and the values of the parameter directories (docs/sagafs.md).

A read handler returns a file's content when it is opened: the whole of
it (bytes), or for the log files a Snapshot of the window that renders
as it is read; the open file then reads that.  Formats are those of the rest of saga:
log lines (docs/log-format.md), the `saga stats` table, `saga rules list`,
and `key: value` lines like /proc/saga/status.
"""
from __future__ import annotations

import shlex
from collections import Counter

import trio

from saga import syscalls
from saga.cli.output import table
from saga.cli.rules import listing
from saga.cli.stats import Sort, render_table
from saga.daemon.window import Snapshot
from saga.events import COMM, NR, RET, UID, comm_str
from saga.rules import grammar


def _text(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


# -- the whole window and the capture state ------------------------------------------------------

async def log(fs, _key: int) -> Snapshot:
    return fs.views.snapshot()


async def stats(fs, _key: int) -> bytes:
    return _text(render_table(fs.state.driver.stats(), Sort.calls, None) + "\n")


def _flat(obj: dict, prefix: str = "") -> list[str]:
    lines = []
    for key, value in obj.items():
        if isinstance(value, dict):
            lines.extend(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, bool):
            lines.append(f"{prefix}{key}: {int(value)}")
        else:
            lines.append(f"{prefix}{key}: {'-' if value is None else value}")
    return lines


async def status(fs, _key: int) -> bytes:
    return _text("".join(line + "\n" for line in _flat(fs.state.status())))


async def rules(fs, _key: int) -> bytes:
    found, in_sync = await trio.to_thread.run_sync(listing, fs.state.rules)
    text = "".join(grammar.format(r, with_id=True) + "\n" for r in found)
    if in_sync is False:
        text += ("# the driver's rules differ from the stored ones (shown above: the driver's); "
                 "the daemon installs the stored rules at start\n")
    return _text(text)


async def error_log(fs, _key: int) -> bytes:
    return fs.errors.text()


# -- syscalls/{syscall}/ -------------------------------------------------------------------------

async def syscall_names(fs) -> list[tuple[str, int]]:
    """Every syscall saga knows, and any other slot that has been counted."""
    slots = set(syscalls.BY_SLOT) | set(fs.state.driver.stats().per_slot)
    return sorted((syscalls.name_of(s), s) for s in slots)


async def syscall_parse(fs, name: str) -> int | None:
    call = syscalls.lookup(name)
    if call is None or syscalls.name_of(call.slot) != name:   # one name per directory: no aliases
        return None
    return call.slot


async def syscall_count(fs, slot: int) -> bytes:
    return b"%d\n" % fs.state.driver.stats().per_slot.get(slot, (0, 0))[0]


async def syscall_errors(fs, slot: int) -> bytes:
    return b"%d\n" % fs.state.driver.stats().per_slot.get(slot, (0, 0))[1]


async def syscall_log(fs, slot: int) -> Snapshot:
    return fs.views.filtered("slot", slot)


# -- procs/{pid}/ --------------------------------------------------------------------------------

async def pid_names(fs) -> list[tuple[str, int]]:
    return [(str(p), p) for p in sorted(await fs.views.pids())]


async def pid_parse(fs, name: str) -> int | None:
    if not name.isdigit() or str(int(name)) != name:
        return None
    pid = int(name)
    return pid if pid in await fs.views.pids() else None


async def proc_log(fs, pid: int) -> Snapshot:
    return fs.views.filtered("pid", pid)


async def _proc_info(fs, pid: int):
    """What the enricher knows about pid: its cache, else a look at /proc (in a thread)."""
    return fs.state.enricher.cached(pid) or await trio.to_thread.run_sync(fs.state.enricher.lookup, pid)


def _command(info, comm: str) -> str:
    """The command line, or `[comm]` when there is none to show (like ps)."""
    if info is not None and info.cmdline:
        return shlex.join(info.cmdline)
    return f"[{comm}]"


def _context_lines(info) -> list[str]:
    """Where the process runs: its pids in its pid namespaces, its cgroup, unit and container."""
    ctx = info.context if info is not None else None
    container = "-"
    if ctx is not None and ctx.container is not None:
        container = f"{ctx.runtime} {ctx.container}" + (f" (pod {ctx.pod})" if ctx.pod else "")
    return [f"nspid: {' '.join(map(str, info.nspid)) if info is not None and info.nspid else '-'}",
            f"cgroup: {ctx.path if ctx is not None else '-'}",
            f"unit: {ctx.unit if ctx is not None and ctx.unit else '-'}",
            f"container: {container}"]


async def proc_cmdline(fs, pid: int) -> bytes:
    raws = await fs.views.events_of(pid)
    comm = comm_str(raws[-1][COMM]) if raws else "?"
    return _text(_command(await _proc_info(fs, pid), comm) + "\n")


async def proc_stats(fs, pid: int) -> bytes:
    raws = await fs.views.events_of(pid)
    info = await _proc_info(fs, pid)
    comm = comm_str(raws[-1][COMM]) if raws else "?"
    calls: Counter[int] = Counter(r[NR] for r in raws)
    errors: Counter[int] = Counter(r[NR] for r in raws if r[RET] < 0)
    user = info.user if info is not None and info.user else (f"uid {raws[-1][UID]}" if raws else "?")
    head = [f"pid: {pid}", f"comm: {comm}", f"user: {user}",
            f"exe: {info.exe if info is not None and info.exe else '-'}",
            f"cmdline: {_command(info, comm)}", *_context_lines(info),
            f"events: {len(raws)}", f"errors: {sum(errors.values())}"]
    by_count = sorted(calls.items(), key=lambda sn: (-sn[1], syscalls.name_of(sn[0])))
    rows = [[syscalls.name_of(s), n, errors[s]] for s, n in by_count]
    body = table(["SYSCALL", "CALLS", "ERRORS"], rows) if rows else ""
    return _text("\n".join(head) + "\n\n" + body + "\n" if body else "\n".join(head) + "\n")
