"""`saga driver`: which capture driver is loaded, and loading or unloading it by hand.

The daemon loads the driver when it starts and unloads it when it stops
(saga.drivers.lifetime).  These verbs are the administrator's: `status`
says what is loaded and who owns it, `load` starts capturing without a
daemon (counters and rules; nobody reads the events), `unload` removes it,
refused while a daemon owns it.
"""
from __future__ import annotations

import enum
from typing import Annotated

import typer

import saga
from saga.cli.context import Env
from saga.cli.output import json_out, out, warn
from saga.drivers import lifetime, open_driver
from saga.errors import DriverUnavailable, SagaError, UsageError

app = typer.Typer(no_args_is_help=True, help="The capture driver: status, load, unload (the daemon does it "
                                             "at start and stop).")


class Kind(str, enum.Enum):
    auto = "auto"
    kmod = "kmod"
    ebpf = "ebpf"


KindOption = Annotated[Kind | None, typer.Option("--driver", help="Which driver [default: daemon.driver; "
                                                                   "auto: the module, else eBPF]")]


def _kind(env: Env, kind: Kind | None) -> str:
    name = kind.value if kind else env.config.daemon.driver
    if name == "replay":
        raise UsageError("the replay driver is a recording in the daemon's process: nothing to load or unload")
    return name


def _describe(found: lifetime.Loaded) -> dict:
    view: dict = {"driver": found.kind, "where": found.where, "version": found.version,
                  "daemon_pid": found.owner if found.owner and found.owner > 0 else None,
                  "owned": bool(found.owner)}
    try:
        with open_driver(found.kind) as drv:
            info, st = drv.info(), drv.stats()
    except SagaError as exc:
        view["error"] = str(exc)
        return view
    view.update(enabled=info.enabled, rules=info.nr_rules, locked=info.locked, calls=st.calls, events=st.events,
                read=st.read, drops=st.drops)
    return view


def status(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False) -> None:
    """What is loaded (module, eBPF program), its version, and whether a daemon owns it. Exit 69: none."""
    env: Env = ctx.obj
    views = [_describe(found) for found in lifetime.loaded()]
    if as_json:
        json_out(views)
    for v in views if not as_json else ():
        version = v["version"] or "of another saga (unreadable)"
        out(f"{v['driver']} {version} at {v['where']}")
        if v["owned"]:
            pid = f" (pid {v['daemon_pid']})" if v["daemon_pid"] else ""
            out(f"  owned by the saga daemon{pid}; it unloads the driver when it stops")
        else:
            kept = " (daemon.keep_capturing)" if env.config.daemon.keep_capturing else ""
            out(f"  no daemon: capturing on its own{kept}; its events are not read, so they are dropped "
                f"once its buffer is full. `saga driver unload` stops it")
        if "error" in v:
            out(f"  {v['error']}")
        else:
            out(f"  capture {'enabled' if v['enabled'] else 'DISABLED'}, {v['rules']} rules"
                f"{' (locked)' if v['locked'] else ''}; {v['calls']} calls, {v['events']} events, "
                f"{v['read']} read, {v['drops']} dropped")
        if v["version"] != saga.__version__:
            warn(f"the {v['driver']} driver is {version}, this saga {saga.__version__}: the daemon replaces it "
                 f"when it starts (or: saga driver unload)")
    if not views:
        if not as_json:
            out("no saga driver is loaded")
        raise typer.Exit(DriverUnavailable.exit_code)


def load(ctx: typer.Context, kind: KindOption = None) -> None:
    """Load the driver without a daemon: it counts and applies rules; nobody reads its events."""
    env: Env = ctx.obj
    found = lifetime.load(_kind(env, kind))
    out(f"the {found.kind} driver {found.version} is loaded at {found.where}")
    if found.owner:
        out("  (owned by the running saga daemon)")


def unload(ctx: typer.Context, kind: KindOption = None,
           unless_kept: Annotated[bool, typer.Option("--unless-kept", help="Do nothing when "
                                                     "daemon.keep_capturing is true (the unit's stop)")] = False,
           ) -> None:
    """Unload the driver: detach and unpin the eBPF program, or remove the module. Refused while a daemon runs."""
    env: Env = ctx.obj
    if unless_kept and env.config.daemon.keep_capturing:
        out("the driver keeps capturing (daemon.keep_capturing)")
        return
    done = lifetime.unload(_kind(env, kind))
    if done:
        out("\n".join(f"unloaded the {k} driver" for k in done))
    elif not unless_kept:      # the unit's ExecStopPost after every clean stop: nothing to say
        out("no saga driver was loaded")


app.command("status")(status)
app.command("load")(load)
app.command("unload")(unload)
