"""`/sagafs/pipe`: new events as they arrive, like tracefs's `trace_pipe` (docs/sagafs.md).

Each open file is one reader with its own position in the daemon's event
window: it starts at the events that arrive after the open, and a read
returns what has arrived since the last one (whole lines, or the rest of
a line a short read cut), blocking while there is nothing.  Readers never
hold the daemon up: the window moves on regardless, and a reader that
fell more than the window behind gets a line `# lost N events ...` where
the events it missed would have been.  The lines are cut from the
window's own rendering, so any number of readers costs no extra
rendering.
"""
from __future__ import annotations

import errno
import os

import pyfuse3
import trio

from saga.sagafs import signals

SIGNAL_CHECK_S = 0.25       # how often a blocked reader looks for a signal to its process
LOST_LINE = "# lost {n} events: this reader fell behind the daemon's window\n"


class Pipe:
    """One open `pipe` file."""

    def __init__(self, fs, _key: int, flags: int, tid: int) -> None:
        self.fs = fs
        self.seq = fs.state.window.next_seq
        self.pending: memoryview = memoryview(b"")
        self.nonblock = bool(flags & os.O_NONBLOCK)
        self.tid = tid
        self.uid = 0                 # who opened it (set by open, for the per-user limits)
        self.poll_handle: pyfuse3.PollHandle | None = None

    def ready(self) -> bool:
        """Would a read return at once (data, or the end at unmount)?"""
        return bool(self.pending) or self.fs.state.window.next_seq > self.seq or self.fs.closing

    def _fill(self, size: int) -> None:
        text, self.seq, lost = self.fs.state.window.text_since(self.seq, size)
        if lost:
            text = LOST_LINE.format(n=lost).encode() + text
        self.pending = memoryview(text)

    async def read(self, size: int) -> memoryview:
        while not self.pending:
            if self.fs.closing:
                return memoryview(b"")       # the end of the file: the daemon is stopping
            self._fill(size)
            if self.pending:
                break
            if self.nonblock:
                raise pyfuse3.FUSEError(errno.EAGAIN)
            await self._wait()
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    async def _wait(self) -> None:
        with trio.move_on_after(SIGNAL_CHECK_S) as scope:
            self.fs.waiting.add(scope)
            try:
                await self.fs.state.wait_for_events(self.seq)
            finally:
                self.fs.waiting.discard(scope)
        if scope.cancelled_caught and not self.fs.closing and signals.interrupted(self.tid):
            raise pyfuse3.FUSEError(errno.EINTR)

    # -- poll(2) -----------------------------------------------------------------------------
    def want_poll(self, handle) -> None:
        self.poll_handle = handle
        self.fs.pollers.add(self)

    def notify_poll(self) -> None:
        handle, self.poll_handle = self.poll_handle, None
        self.fs.pollers.discard(self)
        if handle is not None:
            try:
                handle.notify()
            except OSError:
                pass   # the poller went away

    def close(self) -> None:
        self.fs.pollers.discard(self)
        self.poll_handle = None
