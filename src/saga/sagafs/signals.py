"""Has the process blocked in one of our reads been sent a signal?

A task that gets a signal while the kernel waits for a FUSE reply sends
FUSE_INTERRUPT and keeps waiting (uninterruptibly, even for SIGKILL)
until the filesystem answers.  libfuse records the interrupt, but pyfuse3
does not pass it on, so a reader blocked on /sagafs/pipe looks at the
reading thread's pending signals in /proc instead, a few times a second,
and answers EINTR when there is one it must act on.

A stop signal with its default action (Ctrl-Z: SIGTSTP) does not count:
EINTR would end `cat` with an error once it is continued, while waiting
lets it stop as soon as the next line is returned.
"""
from __future__ import annotations

import signal

_DEFAULT_STOPS = 0
for _sig in (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
    _DEFAULT_STOPS |= 1 << (_sig - 1)


def _masks(tid: int) -> dict[str, int] | None:
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(b":")
        if key in (b"SigPnd", b"ShdPnd", b"SigBlk", b"SigCgt"):
            out[key.decode()] = int(value.strip(), 16)
    return out


def interrupted(tid: int) -> bool:
    """True when thread `tid` has a pending, unblocked signal that should end its read.

    `tid` is the thread that opened the file (pyfuse3 does not say who reads); 0 or a thread we cannot
    see (another pid namespace, or it has exited while another thread reads) is never interrupted.
    """
    m = _masks(tid) if tid > 0 else None
    if m is None:
        return False
    pending = (m.get("SigPnd", 0) | m.get("ShdPnd", 0)) & ~m.get("SigBlk", 0)
    pending &= ~(_DEFAULT_STOPS & ~m.get("SigCgt", 0))
    return pending != 0
