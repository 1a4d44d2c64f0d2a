"""Progress of a long archive search on a terminal: shown after 2 s, gone once results print.

Only when stderr is a terminal (rich draws it there, so stdout stays the
results); a pipe or a file never sees it.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

SHOW_AFTER_S = 2.0


class Progress:
    """Call tick() as work is done (cheap: it only looks at the clock); close() before printing results."""

    def __init__(self, total: Callable[[], int], what: str = "searching the archive",
                 enabled: bool | None = None) -> None:
        self.total = total
        self.what = what
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._next = self.start + SHOW_AFTER_S

    def tick(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.1
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("batches"), TimeElapsedColumn(), console=Console(stderr=True),
                            transient=True, redirect_stdout=False)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total() or None)
        self._bar.update(self._task, completed=self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
