"""Lost events, counted per layer and reported where an administrator looks (docs/daemon.md).

Each layer counts what it was given, what it passed on, what it dropped
and what it holds now; `layers(status)` lays them side by side so that
`produced == read + dropped + in_flight` can be checked for each:

    ring     the driver's buffer: calls to log, records read (by any reader), dropped when full, waiting
             (the driver's `events` counts the records written, so produced = events + drops)
    window   the events kept for /sagafs and `saga log`: appended, left, held; readers that fell behind
    archive  the archiver: submitted, archived, dropped (by cause), waiting (queued, in flight, spooled)

`LossMonitor.look()`, once a second from the daemon's loop, compares the
counters with its last look and logs a warning for each cause that lost
events: the count, the likely cause and the fix, at most once per
`daemon.warn_interval` per cause (what is held back is summed into the
next one).  `status_line()` is the one-line summary for sd_notify STATUS=
and the stop report.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("saga.daemon.losses")

STARVED_CPU = 0.85        # the daemon used this much of a CPU: it, not the ring, is too slow


def layers(status: dict) -> dict:
    """Per layer: produced, read (passed on), dropped, in_flight, from a status() object.  The drain between
    the ring and the window holds nothing between two reads; what it cannot parse is drained.malformed."""
    cap, win, arc = status["capture"], status["window"], status["archive"]
    out = {
        "ring": {"produced": cap["events"] + cap["drops"], "read": cap["read"], "dropped": cap["drops"],
                 "in_flight": cap["events"] - cap["read"]},
        "window": {"produced": win["next_seq"], "read": win["dropped"], "dropped": 0,
                   "in_flight": win["events"], "readers_lost": win["readers_lost"]},
    }
    if arc.get("enabled"):
        out["archive"] = {"produced": arc["submitted"], "read": arc["archived"], "dropped": arc["dropped"],
                          "in_flight": arc["queued"] + arc["in_flight"] + arc["left_in_spool"]}
    return out


def lost_total(status: dict) -> int:
    """Events this daemon lost: ring drops since it started and archive drops (malformed reads, a driver bug,
    are counted as reads: drained.malformed)."""
    arc = status["archive"]
    return status["losses"]["ring"] + (arc["dropped"] if arc.get("enabled") else 0)


def status_line(status: dict) -> str:
    """One line for `systemctl status` (sd_notify STATUS=) and the logs."""
    arc = status["archive"]
    parts = [f"{status['drained']['events']:,} events drained"]
    if arc.get("enabled"):
        parts.append(f"{arc['archived']:,} archived")
        waiting = arc["queued"] + arc["in_flight"]
        if waiting:
            parts.append(f"{waiting:,} waiting")
    lost = lost_total(status)
    parts.append(f"{lost:,} lost" if lost else "none lost")
    line = ", ".join(parts)
    worries = []
    if status["losses"]["ring"]:
        worries.append(f"ring dropped {status['losses']['ring']:,}")
    if arc.get("enabled"):
        if arc["dropped"]:
            worries.append(f"archive dropped {arc['dropped']:,}")
        if arc.get("suspended"):
            worries.append(f"archiving suspended: {arc['suspended']}")
        elif arc.get("last_error"):
            worries.append(f"archive failing: {arc['last_error']}")
    crash = status.get("previous_run")
    if crash and not crash["clean_stop"] and (crash["lost"] or crash["lost_at_most"]):
        worries.append(f"the last run crashed and lost {crash['lost']:,}"
                       + (f" (+ up to {crash['lost_at_most']:,})" if crash["lost_at_most"] else ""))
    return line + ("; " + "; ".join(worries) if worries else "")


@dataclass
class _Cause:
    seen: int = 0                  # the counter at the last look
    pending: int = 0               # lost since the last warning
    since: float = 0.0             # monotonic time of the first pending loss
    last_warned: float = float("-inf")


@dataclass
class LossMonitor:
    """Rate-limited warnings about lost events (one per cause per `every` seconds)."""

    every: float = 60.0
    clock: Callable[[], float] = time.monotonic
    causes: dict[str, _Cause] = field(default_factory=dict)
    _cpu: tuple[float, float] | None = None

    def start(self, status: dict) -> None:
        """The counters at start: only losses after this are reported."""
        for name, value in self._counts(status).items():
            self.causes[name] = _Cause(seen=value)
        self._cpu = (self.clock(), _cpu_seconds())

    @staticmethod
    def _counts(status: dict) -> dict[str, int]:
        out = {"ring": status["capture"]["drops"], "malformed": status["drained"]["malformed"],
               "readers": status["window"]["readers_lost"]}
        arc = status["archive"]
        if arc.get("enabled"):
            out.update({f"archive.{cause}": n for cause, n in arc["dropped_by"].items()})
        return out

    def look(self, status: dict) -> list[str]:
        """Compare with the last look; log and return the warnings due now."""
        now = self.clock()
        cpu = self._cpu_share(now)
        messages = []
        for name, value in self._counts(status).items():
            c = self.causes.setdefault(name, _Cause(seen=value))
            if value > c.seen:
                if not c.pending:
                    c.since = now
                c.pending += value - c.seen
            c.seen = value
            if c.pending and now - c.last_warned >= self.every:
                msg = self._message(name, c.pending, now - c.since, status, cpu)
                log.warning("%s", msg)
                messages.append(msg)
                c.pending = 0
                c.last_warned = now
        return messages

    def _cpu_share(self, now: float) -> float | None:
        """The daemon's CPU use (share of one CPU) since the last look."""
        if self._cpu is None:
            self._cpu = (now, _cpu_seconds())
            return None
        t0, c0 = self._cpu
        c1 = _cpu_seconds()
        self._cpu = (now, c1)
        return (c1 - c0) / (now - t0) if now > t0 else None

    @staticmethod
    def _message(name: str, n: int, span: float, status: dict, cpu: float | None) -> str:
        arc = status["archive"]
        key = name.split(".", 1)[1] if name.startswith("archive.") else name
        if key == "ring":
            key = "ring_busy" if cpu is not None and cpu >= STARVED_CPU else "ring_burst"
        return _MESSAGES[key].format(
            lost=f"lost {n:,} {'reads' if key == 'malformed' else 'events'} "
                 f"{f'in the last {span:.0f} s' if span >= 1 else 'just now'}",
            n=n, ring=status["driver"]["ring_bytes"] >> 10, cpu="?" if cpu is None else f"{cpu:.0%}",
            why=arc.get("last_error") or "no error: it was too slow", suspended=arc.get("suspended"))


# What each cause of loss means and what to do about it ({lost} = "lost N events in the last S s").
_MESSAGES = {
    "ring_busy": "{lost}: the driver's ring ({ring} KiB) overflowed because the daemon could not keep up (it used "
                 "{cpu} of a CPU); log fewer calls (count-only rules for busy calls, e.g. the default rule file) "
                 "or give the daemon more CPU",
    "ring_burst": "{lost}: the driver's ring ({ring} KiB) overflowed during a burst (the daemon used {cpu} of a "
                  "CPU); load the driver with a bigger ring (module parameter ring_size, or the eBPF ring size) "
                  "or log fewer calls",
    "malformed": "{lost}: the driver returned malformed records (a driver bug: the log above has the details; "
                 "please report it)",
    "readers": "readers of /sagafs/pipe or `saga log -f` missed {n:,} events: they read more slowly than events "
               "arrived and fell out of the window (daemon.window_events); they were told how many in their "
               "stream. The archive has every event",
    "queue_full": "{lost}: the archive could not keep up ({why}) and the queue (daemon.archive_queue) and the "
                  "spool (daemon.spool_max_bytes) were full; fix the database, or raise daemon.spool_max_bytes, "
                  "or log fewer calls",
    "suspended": "{lost}: archiving is suspended ({suspended}); free disk space or lower store.max_size",
    "bug": "{lost}: an unexpected error while archiving (traceback above; please report it)",
    "at_stop": "{lost}: the database still failed when the stop timed out ({why})",
    "stopping": "{lost}: drained while the daemon was stopping",
}


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system
