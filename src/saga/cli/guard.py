"""How a command ends: every failure one stderr line and an exit code, the same with or without typer.

saga.errors: 64 usage/rule, 69 no driver, 77 permission, 78 config/database;
a bug is one line and 70 (`--debug` adds the traceback); Ctrl-C is 130; a
reader that went away (`saga log | head`) is not an error.
"""
from __future__ import annotations

import io
import logging
import os
import sys

from saga.cli.output import error
from saga.errors import EX_SOFTWARE, SagaError


def setup(debug: bool) -> None:
    """Log to stderr (everything with --debug)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr,
                        format="saga: %(levelname)s %(name)s: %(message)s", force=True)
    if debug:
        logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


def quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain about the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def exit_code(exc: BaseException, debug: bool) -> int:
    """Say what went wrong (one line on stderr) and return the exit code; re-raises what is not a failure."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, BrokenPipeError):
        quiet_stdout()
        return 0
    import traceback  # here: only a failure needs it (a command's start)
    if isinstance(exc, SagaError):
        if debug:
            traceback.print_exception(exc)
        error(str(exc))
        return exc.exit_code
    if isinstance(exc, Exception):    # a bug: say so in one line unless asked for the details
        if debug:
            traceback.print_exception(exc)
        error(f"internal error: {type(exc).__name__}: {exc}" + ("" if debug else
                                                                " (run with --debug for the traceback)"))
        return EX_SOFTWARE
    raise exc
