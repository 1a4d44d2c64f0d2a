"""`saga daemon`: the foreground service (docs/daemon.md)."""
from __future__ import annotations

import enum
import logging
import sys
from typing import Annotated

import typer

from saga.cli.context import Env


class DriverKind(str, enum.Enum):
    auto = "auto"
    kmod = "kmod"
    ebpf = "ebpf"
    replay = "replay"


def daemon(ctx: typer.Context,
           driver: Annotated[DriverKind | None, typer.Option("--driver", help="Capture driver [default: "
                                                             "daemon.driver, auto: kmod, else ebpf]")] = None,
           replay: Annotated[str | None, typer.Option("--replay", metavar="FILE",
                                                      help="Recording for --driver replay")] = None,
           mount: Annotated[str | None, typer.Option("--mount", metavar="PATH",
                                                     help="Mount sagafs here [default: sagafs.mount]")] = None,
           no_mount: Annotated[bool, typer.Option("--no-mount", help="Do not mount sagafs")] = False) -> None:
    """Run the saga service in the foreground: drain, archive, serve /sagafs and the control socket."""
    env: Env = ctx.obj
    if mount and no_mount:
        raise typer.BadParameter("--mount and --no-mount exclude each other")
    kind = driver.value if driver else None
    if replay and kind not in (None, "replay"):
        raise typer.BadParameter("--replay goes with --driver replay")
    if replay:
        kind = "replay"
    logging.basicConfig(level=logging.DEBUG if env.debug else logging.INFO, stream=sys.stderr,
                        format="saga daemon: %(levelname)s: %(message)s", force=True)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    from saga.daemon.service import Daemon, Options  # trio, SQLAlchemy: only the daemon needs them here
    opts = Options(config_path=env.config_path, db=env.db, driver=kind, replay=replay, mount=mount,
                   no_mount=no_mount)
    status = Daemon(env.config, opts).run()
    raise typer.Exit(status)
