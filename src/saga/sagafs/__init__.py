"""sagafs: the /sagafs filesystem the daemon serves with pyfuse3 (docs/sagafs.md).

    table.py      what the filesystem holds: one declarative table of (path, mode, read, write)
    tree.py       directories and inode numbers derived from the table
    files.py      read handlers: log, stats, status, rules, per-syscall and per-process files
    pipe.py       the `pipe` stream; signals.py: interrupting a blocked reader
    rulesfile.py  writes to `rules`, and `error_log`
    views.py      cooperative, cached views of the daemon's event window
    ops.py        the pyfuse3 operations, generic over the table
    mount.py      mount point, stale mounts, options, and serve() for the daemon
"""
from saga.sagafs.mount import serve

__all__ = ["serve"]
