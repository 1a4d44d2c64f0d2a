"""`saga`: the command line's entry point (docs/cli.md).

`saga COMMAND` builds only that command with typer (saga.cli.app).  `saga
query` and `saga report` with a plain command line (saga.cli.options.parse)
start without typer at all: an administrator waits for them, and typer,
click and the pydantic models typer checks each value with take longer to
load than a search of the last hour takes.  Both ways run the same code
(saga.cli.search) and end the same way (saga.cli.guard); a command line
the fast start does not understand, help included, goes to typer.

Before any of that, main() hands the command to the user's command server
(saga.cli.client), whose worker runs run(); this module imports nothing
else until it runs the command here.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:       # not imported: typing alone takes longer than handing a command to the server
    from collections.abc import Callable, Sequence
    from typing import Any

# saga multiplies no matrices: numpy's BLAS starting a thread per CPU, which spin while it loads,
# cost a command ~40 ms of CPU on 2 CPUs (docs/benchmarks.md "Query"); one thread is enough.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The commands: name -> (module, attribute, a group of subcommands or one command), in help order.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "status": ("saga.cli.status", "status", False),
    "stats": ("saga.cli.stats", "stats", False),
    "rules": ("saga.cli.rules", "app", True),
    "log": ("saga.cli.log", "log", False),
    "query": ("saga.cli.query", "query", False),
    "report": ("saga.cli.report", "report", False),
    "daemon": ("saga.cli.daemon", "daemon", False),
    "driver": ("saga.cli.driver", "app", True),
}


def command_at(args: Sequence[str]) -> int | None:
    """Where in `args` the command's name is (after saga's own options), None when they name none."""
    from saga.cli.options import ROOT
    takes_value = {flag for o in ROOT if o.kind is not bool for flag in o.flags}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in takes_value:
            i += 2
        elif arg.startswith("-"):
            if arg in ("-h", "--help", "--version", "--"):
                return None
            i += 1
        else:
            return i if arg in COMMANDS else None
    return None


def _fast(name: str, args: Sequence[str], at: int) -> int | None:
    """Run `saga query` or `saga report` without typer; None when typer must parse the command line."""
    from saga.cli import options
    table = {"query": options.QUERY, "report": options.REPORT}[name]
    root, values = options.parse(args[:at], options.ROOT), options.parse(args[at + 1:], table)
    if root is None or values is None:
        return None
    from saga.cli import guard, search
    from saga.cli.context import Env
    run: Callable[..., int] = search.run_query if name == "query" else search.run_report
    guard.setup(root["debug"])
    env = Env()
    env.configure(config_path=root["config"], db=root["db"], debug=root["debug"])
    try:
        return run(env, **values)
    except (Exception, KeyboardInterrupt) as exc:
        return guard.exit_code(exc, root["debug"])
    finally:
        env.close()


def main() -> None:
    """The `saga` command: in a worker of the user's command server, or here when that cannot be."""
    from saga.cli import client
    code = client.hand_over(sys.argv)
    if code is not None:
        sys.exit(code)
    run()


def run() -> None:
    """The command in sys.argv, in this process."""
    args = sys.argv[1:]
    at = command_at(args)
    name = args[at] if at is not None else None
    if name in ("query", "report") and at is not None:
        code = _fast(name, args, at)
        if code is not None:
            sys.exit(code)
    from saga.cli.app import build
    build(name)()


def __getattr__(name: str) -> Any:
    if name == "app":            # every command (tests, packaging/gen_files.py)
        from saga.cli.app import build
        return build()
    raise AttributeError(name)
