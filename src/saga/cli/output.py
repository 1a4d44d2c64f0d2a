"""Printing: results on stdout, one-line notes and warnings on stderr, aligned tables, JSON.

Plain writes to sys.stdout and sys.stderr, flushed (as click.echo does), so
that a command that does not need typer does not import it.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

PROG = "saga"
RED, YELLOW, BOLD, RESET = "\x1b[31m", "\x1b[33m", "\x1b[1m", "\x1b[0m"


def colour(stream: TextIO) -> bool:
    """Whether to colour what goes to `stream`: a terminal, unless NO_COLOR is set (no-color.org) or TERM=dumb."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def paint(text: str, code: str, stream: TextIO) -> str:
    return f"{code}{text}{RESET}" if colour(stream) else text


def _echo(text: str, stream: TextIO) -> None:
    stream.write(text + "\n")
    stream.flush()


def out(text: str = "") -> None:
    _echo(text, sys.stdout)


def _printable(text: str) -> str:
    from saga.render import printable  # here: `saga COMMAND --help` starts without numpy
    return printable(text)


# Notes, warnings and errors are one line each, and may quote what a user or a process wrote: printable()
# keeps a newline in it from starting a forged line and an escape sequence from reaching the terminal.

def note(text: str) -> None:
    """Something the user should know that is not the result (stderr, so pipes stay clean)."""
    _echo(f"{PROG}: {_printable(text)}", sys.stderr)


def warn(text: str) -> None:
    _echo(f"{PROG}: " + paint("warning:", YELLOW, sys.stderr) + f" {_printable(text)}", sys.stderr)


def error(text: str, prog: str = PROG) -> None:
    _echo(paint(f"{prog}: {_printable(text)}", RED + BOLD, sys.stderr), sys.stderr)


def failed_line(line: str) -> str:
    """An event line with its failed return value in red (the caller knows the call failed)."""
    at = line.rfind(") = ")
    end = line.find(" <", at)
    if at < 0 or end < 0:
        return line
    return f"{line[:at + 4]}{RED}{line[at + 4:end]}{RESET}{line[end:]}"


def json_out(obj) -> None:
    import json  # here: only --json needs it (a command's start)
    _echo(json.dumps(obj, indent=2, sort_keys=False), sys.stdout)


def json_line(obj) -> None:
    import json
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> str:
    """Columns padded to their widest cell; `align` has one l/r per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"
