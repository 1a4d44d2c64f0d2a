"""`saga status`: is saga capturing, with what, and is the daemon running."""
from __future__ import annotations

from typing import Annotated

import typer

from saga.cli.context import Env
from saga.cli.output import duration, error, json_out, out, warn
from saga.daemon.client import NotRunning
from saga.errors import DriverUnavailable, SagaError


def _driver_view(env: Env) -> tuple[dict | None, str | None]:
    """(driver and capture fields, None) or (None, why there is no driver)."""
    try:
        drv = env.driver()
        info, st = drv.info(), drv.stats()
    except DriverUnavailable as exc:
        return None, str(exc)
    return {"driver": {"name": info.driver, "version": info.version, "abi_version": info.abi_version,
                       "enabled": info.enabled, "locked": info.locked, "rules": info.nr_rules,
                       "default_action": info.default_action, "ring_bytes": info.ring_bytes,
                       "nr_cpus": info.nr_cpus},
            "capture": {"calls": st.calls, "errors": st.errors, "events": st.events, "drops": st.drops,
                        "read": st.read, "no_enter": st.no_enter, "path_faults": st.path_faults}}, None


def gather(env: Env) -> tuple[dict, str | None]:
    """The status object (docs/cli.md) and, when no driver can be reached, the reason."""
    report: dict = {"daemon": {"running": False}, "driver": None, "capture": None, "archive": None, "mount": None}
    try:
        daemon = env.daemon().status()
    except NotRunning:
        daemon = None
    except SagaError as exc:
        report["daemon"] = {"running": None, "error": str(exc)}
        daemon = None
    if daemon is not None:
        report["daemon"] = {"running": True, **daemon["daemon"]}
        for key in ("driver", "capture", "archive", "mount", "window", "drained", "losses", "spool", "previous_run",
                    "bounds"):
            report[key] = daemon.get(key)
        report["driver_error"] = None
        return report, None
    view, reason = _driver_view(env)
    if view:
        report.update(view)
        if view["driver"]["name"] in ("kmod", "ebpf"):
            # Loaded with no daemon: kept at its stop (daemon.keep_capturing) or `saga driver load`.
            report["daemon"].update(driver_kept=True, keep_capturing=env.config.daemon.keep_capturing)
    report["driver_error"] = reason
    return report, reason


def status(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False) -> None:
    """Driver in use, capture state, events and drops, rules, daemon and mount point."""
    env: Env = ctx.obj
    report, reason = gather(env)
    if as_json:
        json_out(report)
    else:
        _print(report)
    if reason:
        error(reason)
        raise typer.Exit(DriverUnavailable.exit_code)


def _print(r: dict) -> None:
    d, c = r["driver"], r["capture"]
    if d:
        state = "enabled" if d["enabled"] else "DISABLED"
        out(f"driver:   {d['name']} {d['version']} (ABI {d['abi_version']}), capture {state}")
        out(f"rules:    {d['rules']}{' (locked)' if d['locked'] else ''}, default action {d['default_action']}")
    else:
        out("driver:   none")
    if c:
        out(f"calls:    {c['calls']} counted, {c['errors']} failed")
        out(f"events:   {c['events']} logged, {c['read']} read, {c['drops']} dropped")
        if c["drops"]:
            warn(f"{c['drops']} events were dropped: the buffers filled faster than they were read")
    dm = r["daemon"]
    if dm.get("running"):
        out(f"daemon:   running, pid {dm['pid']}, up {duration(dm['uptime_s'])}, host {dm['host']}")
    elif dm.get("running") is None:
        out(f"daemon:   unknown ({dm.get('error')})")
    elif dm.get("driver_kept"):
        why = " (daemon.keep_capturing)" if dm.get("keep_capturing") else ""
        out(f"daemon:   not running; the driver captures on its own{why}: its events are not read "
            f"(dropped once its buffer is full); `saga driver unload` stops it")
    else:
        out("daemon:   not running")
    a = r.get("archive")
    if a:
        if a.get("enabled"):
            waiting = a.get("queued", 0) + a.get("in_flight", 0)
            out(f"archive:  {a['url']}: {a['archived']} archived, {waiting} waiting, {a['dropped']} dropped"
                + (f", error: {a['last_error']}" if a.get("last_error") else ""))
            causes = {k: v for k, v in (a.get("dropped_by") or {}).items() if v}
            if causes:
                warn("the archive dropped events: " + ", ".join(f"{n} ({k.replace('_', ' ')})"
                                                                 for k, n in causes.items()))
            if a.get("suspended"):
                warn(f"archiving is suspended: {a['suspended']}")
            for aside in a.get("set_aside") or ():
                warn(f"a damaged archive was set aside as {aside}")
        else:
            out(f"archive:  off ({a['url']})")
    sp = r.get("spool")
    if sp and sp.get("enabled"):
        out(f"spool:    {sp['dir']}: {sp['bytes']} of {sp['max_bytes']} bytes"
            + (" (FULL)" if sp.get("full") else ""))
    losses = r.get("losses")
    if losses and losses.get("ring"):
        warn(f"this daemon lost {losses['ring']} events to the driver's ring: it could not read fast enough "
             f"(see the daemon's log)")
    prev = r.get("previous_run")
    if prev and not prev.get("clean_stop"):
        lost = prev["lost"] + prev["lost_at_most"]
        warn(f"the previous daemon (pid {prev['pid']}) did not stop in order: "
             + (f"{prev['recovered']} events recovered from the spool" if prev["recovered"] else "nothing to recover")
             + (f", {prev['lost']} lost" + (f" (and up to {prev['lost_at_most']} more)" if prev["lost_at_most"]
                                              else "") if lost else ", none lost"))
    out(f"mount:    {r['mount'] or 'not mounted'}")
