"""Printing: results on stdout, one-line notes and warnings on stderr, aligned tables, JSON."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import typer

from saga.render import printable

PROG = "saga"


def out(text: str = "") -> None:
    typer.echo(text)


# Notes, warnings and errors are one line each, and may quote what a user or a process wrote: printable()
# keeps a newline in it from starting a forged line and an escape sequence from reaching the terminal.

def note(text: str) -> None:
    """Something the user should know that is not the result (stderr, so pipes stay clean)."""
    typer.echo(f"{PROG}: {printable(text)}", err=True)


def warn(text: str) -> None:
    typer.echo(f"{PROG}: warning: {printable(text)}", err=True)


def error(text: str, prog: str = PROG) -> None:
    typer.echo(f"{prog}: {printable(text)}", err=True)


def json_out(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False))


def json_line(obj) -> None:
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
