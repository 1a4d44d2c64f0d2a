"""`saga`: the command line (docs/cli.md).

One module per command group; commands are thin: they parse options,
call the layers below and print.  Errors are turned into one line on
stderr and an exit code here, once (saga.errors: 64 usage/rule, 69 no
driver, 77 permission, 78 config/database); `--debug` adds the traceback.
"""
from __future__ import annotations

import io
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:                      # typer >= 0.2x vendors click
    from typer import _click as click
except ImportError:       # older typer uses the click package
    import click  # type: ignore[no-redef, import-not-found, unused-ignore]  # not installed with a new typer

from saga import __version__
from saga.cli import daemon as daemon_cmd
from saga.cli import driver as driver_cmd
from saga.cli import log as log_cmd
from saga.cli import query as query_cmd
from saga.cli import report as report_cmd
from saga.cli import rules as rules_cmd
from saga.cli import stats as stats_cmd
from saga.cli import status as status_cmd
from saga.cli.context import Env
from saga.cli.output import error
from saga.errors import EX_SOFTWARE, EX_USAGE, SagaError

_debug = False
# `saga` or `saga rules` alone: click >= 8.2 raises this to print the help.
_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())


class SagaGroup(TyperGroup):
    """The root command: maps every failure to one stderr line and an exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        global _debug
        _debug = False
        try:
            rv = super().main(args=args, prog_name="saga", complete_var=complete_var,
                              standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
            code = rv if isinstance(rv, int) else 0
        except _NoArgsIsHelp as exc:
            typer.echo(exc.format_message())   # `saga`, `saga rules`: the help is the answer
            code = 0
        except click.exceptions.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx is not None else "saga"
            error(exc.format_message(), prog=path)
            code = EX_USAGE
        except typer.Abort:
            code = 130
        except KeyboardInterrupt:
            code = 130
        except SagaError as exc:
            if _debug:
                traceback.print_exc()
            error(str(exc))
            code = exc.exit_code
        except BrokenPipeError:
            _quiet_stdout()
            code = 0
        except Exception as exc:  # a bug: say so in one line unless asked for the details
            if _debug:
                traceback.print_exc()
            error(f"internal error: {type(exc).__name__}: {exc}" + ("" if _debug else
                                                                    " (run with --debug for the traceback)"))
            code = EX_SOFTWARE
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:   # the reader went away (saga log | head): not an error
            _quiet_stdout()
            raise typer.Exit(0) from None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain about the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


app = typer.Typer(cls=SagaGroup, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="saga: syscall logging for Linux. Counters, rules, the live log and its archive.",
                  context_settings={"help_option_names": ["-h", "--help"]})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"saga {__version__}")
        raise typer.Exit()


@app.callback()
def root(ctx: typer.Context,
         db: Annotated[str | None, typer.Option("--db", envvar="SAGA_DB", metavar="URL",
                                                help="Database URL or SQLite path (default: store.url)")] = None,
         config: Annotated[str | None, typer.Option("--config", envvar="SAGA_CONFIG", metavar="PATH",
                                                    help="Configuration file [default: /etc/saga/saga.toml]")] = None,
         debug: Annotated[bool, typer.Option("--debug", help="Log details; show tracebacks")] = False,
         version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit")] = False) -> None:
    global _debug
    _debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr,
                        format="saga: %(levelname)s %(name)s: %(message)s", force=True)
    if debug:
        logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    env = ctx.obj if isinstance(ctx.obj, Env) else Env()
    env.configure(config_path=config, db=db, debug=debug)
    ctx.obj = env
    ctx.call_on_close(env.close)


app.command("status")(status_cmd.status)
app.command("stats")(stats_cmd.stats)
app.add_typer(rules_cmd.app, name="rules")
app.command("log")(log_cmd.log)
app.command("query")(query_cmd.query)
app.command("report")(report_cmd.report)
app.command("daemon")(daemon_cmd.daemon)
app.add_typer(driver_cmd.app, name="driver")


def main() -> None:
    app()
