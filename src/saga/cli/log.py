"""`saga log`: recent events and a live follow.

Where the events come from: the daemon (its window of recent events,
through the control socket) when it runs; without it, `-f` reads the
driver directly and a plain `saga log` shows the newest archived events.
"""
from __future__ import annotations

import json
import sys
from collections import deque

from saga import events, render
from saga.cli import options
from saga.cli.context import Env
from saga.cli.output import colour, failed_line, note
from saga.cli.search import NOTHING_MATCHED, build_filter, print_archived
from saga.daemon.client import DaemonClient, NotRunning
from saga.errors import UsageError
from saga.filters import EventFilter, failed


class _Printer:
    """Writes events as lines or JSON; stops the command after `limit` events (--count)."""

    def __init__(self, as_json: bool, limit: int | None) -> None:
        self.as_json = as_json
        self.left = limit

    def raws(self, raws) -> None:
        if self.as_json:
            self.lines(json.dumps(render.to_json(r), separators=(",", ":")) for r in raws)
        elif colour(sys.stdout):
            self.lines(failed_line(render.line(r)) if failed(r) else render.line(r) for r in raws)
        else:
            self.lines(map(render.line, raws))

    def lines(self, lines) -> None:
        write = sys.stdout.write
        for text in lines:
            write(text + "\n")
            if self.left is not None:
                self.left -= 1
                if self.left <= 0:
                    sys.stdout.flush()
                    raise _Done
        sys.stdout.flush()


class _Done(Exception):
    pass


def _from_daemon(client: DaemonClient, flt: EventFilter, n: int, follow: bool, printer: _Printer) -> None:
    req = {"op": "log", "n": n, "follow": follow, "format": "json" if printer.as_json else "line",
           "filter": flt.to_json()}
    for msg in client.request(req):
        if "line" in msg:
            printer.lines((msg["line"],))
        elif "event" in msg:
            printer.lines((json.dumps(msg["event"], separators=(",", ":")),))
        elif "lost" in msg:
            note(f"{msg['lost']} events lost: this reader fell behind the daemon's window")
        elif msg.get("end"):
            return


def _follow_driver(env: Env, flt: EventFilter, n: int, printer: _Printer) -> None:
    """No daemon: what the driver has buffered (the last n of it), then new events as they come."""
    drv = env.driver()
    keep = flt.predicate()
    backlog: deque[tuple] = deque(maxlen=n or None)
    while n:
        buf = drv.read_raw(1 << 20, timeout=0)
        if not buf:
            break
        backlog.extend(r for r in events.parse(buf) if keep(r))
    if n:
        printer.raws(backlog)
    while True:
        buf = drv.read_raw(1 << 20, timeout=0.5)
        if buf:
            printer.raws([r for r in events.parse(buf) if keep(r)])


def run_log(env: Env, *, follow: bool = False, as_json: bool = False, lines: int = 10, count: int | None = None,
            **select) -> int:
    """Recent events; -f follows new ones (from the daemon, else the driver)."""
    flt = build_filter(**select)
    printer = _Printer(as_json, count)
    if flt.needs_context:       # what a record alone does not say: only the archive answers
        names = ", ".join("--" + n for n in flt.needs_context)
        if follow:
            raise UsageError(f"{names}: saga log -f filters on what a record carries; search the archive with "
                             "saga query")
        found = env.search(flt, lines)
        if not print_archived(found[-count:] if count else found, as_json):
            note("no matching events")
            return NOTHING_MATCHED
        return 0
    client = env.daemon()
    if follow:
        client.timeout = None   # waiting for events is not a failure
    try:
        try:
            _from_daemon(client, flt, lines, follow, printer)
            return 0
        except NotRunning:
            pass
        if follow:
            _follow_driver(env, flt, lines, printer)
            return 0
        note("the daemon is not running: showing the newest archived events")
        found = env.search(flt, lines)
        print_archived(found[-count:] if count else found, as_json)
    except _Done:
        pass
    except KeyboardInterrupt:
        pass
    return 0


log = options.command(options.LOG, run_log, "Recent events; -f follows new ones (from the daemon, else the driver).")
