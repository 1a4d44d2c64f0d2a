"""`saga` with typer: every command's options, help and usage errors (docs/cli.md).

One module per command group; commands are thin: they parse options,
call the layers below and print.  Errors are turned into one line on
stderr and an exit code here, once (saga.cli.guard).  `build(only)` makes
the command line with one command (what `saga COMMAND` needs: typer builds
every option of every command it is given) or all of them (`saga --help`,
tests, the man pages).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:                      # typer >= 0.2x vendors click
    from typer import _click as click
except ImportError:       # older typer uses the click package
    import click  # type: ignore[no-redef, import-not-found, unused-ignore]  # not installed with a new typer

from saga import __version__
from saga.cli import guard
from saga.cli import options as o
from saga.cli.context import Env
from saga.cli.main import COMMANDS
from saga.cli.output import error
from saga.errors import EX_USAGE

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
        except Exception as exc:
            code = guard.exit_code(exc, _debug)
        except KeyboardInterrupt as exc:
            code = guard.exit_code(exc, _debug)
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:   # the reader went away (saga log | head): not an error
            guard.quiet_stdout()
            raise typer.Exit(0) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"saga {__version__}")
        raise typer.Exit()


def root(ctx: typer.Context,
         db: Annotated[str | None, typer.Option(*o.DB.flags, envvar=o.DB.envvar, metavar=o.DB.metavar,
                                                help=o.DB.help)] = None,
         config: Annotated[str | None, typer.Option(*o.CONFIG.flags, envvar=o.CONFIG.envvar, metavar=o.CONFIG.metavar,
                                                    help=o.CONFIG.help)] = None,
         debug: Annotated[bool, typer.Option(*o.DEBUG.flags, help=o.DEBUG.help)] = False,
         version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit")] = False) -> None:
    global _debug
    _debug = debug
    guard.setup(debug)
    env = ctx.obj if isinstance(ctx.obj, Env) else Env()
    env.configure(config_path=config, db=db, debug=debug)
    ctx.obj = env
    ctx.call_on_close(env.close)


def build(only: str | None = None) -> typer.Typer:
    """The command line with every command, or with `only` that one."""
    new = typer.Typer(cls=SagaGroup, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                      help="saga: syscall logging for Linux. Counters, rules, the live log and its archive.",
                      context_settings={"help_option_names": ["-h", "--help"]})
    new.callback()(root)
    for name, (module, attr, group) in COMMANDS.items():
        if only is not None and name != only:
            continue
        obj = getattr(importlib.import_module(module), attr)
        if group:
            new.add_typer(obj, name=name)
        else:
            new.command(name)(obj)
    return new
