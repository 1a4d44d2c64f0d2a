"""What /sagafs holds: one declarative table, in the spirit of libfs's `tree_descr` (binfmt_misc, securityfs).

Each entry is (path, mode, read handler, write handler).  Directories
follow from the paths; a `{name}` component is a directory per value of a
parameter (PARAMS: how to list its values and how to parse a name).
Adding a file is one line here plus its handler.

Handlers (files.py, pipe.py, rulesfile.py):
- read: `async def f(fs, key) -> bytes | Snapshot`, the whole content,
  taken when the file is opened (each open file reads its own snapshot,
  like seq_file and tracefs's `trace`); `key` is the parameter's value
  (a syscall slot, a pid) or 0.  Or a Stream class (`pipe`): reads block
  for new data instead.
- write: `async def f(fs, key, data: bytes) -> None`; one call per write(2)
  with the whole lines it completes (a line without its newline waits for
  the next write, or close); it raises FUSEError (or a SagaError, mapped
  to its errno).

Modes are the widest the file ever gets: the mount masks them to root
only, or root plus the `sagafs.group` group (mount.py).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from saga.sagafs import files, pipe, rulesfile


@dataclass(frozen=True)
class File:
    path: str
    mode: int
    read: Callable | type
    write: Callable | None = None


@dataclass(frozen=True)
class Param:
    """A directory level with one entry per value (`syscalls/{syscall}`, `procs/{pid}`)."""

    names: Callable[..., Awaitable[list[tuple[str, int]]]]   # (fs) -> [(name, value)]
    parse: Callable[..., Awaitable[int | None]]               # (fs, name) -> value, None if there is none
    entry_timeout: float                                      # how long the kernel may trust a lookup


TABLE: tuple[File, ...] = (
    File("log",                       0o444, files.log),
    File("pipe",                      0o444, pipe.Pipe),
    File("stats",                     0o444, files.stats),
    File("status",                    0o444, files.status),
    File("rules",                     0o644, files.rules, rulesfile.write_rules),
    File("error_log",                 0o644, files.error_log, rulesfile.clear_error_log),
    File("syscalls/{syscall}/count",  0o444, files.syscall_count),
    File("syscalls/{syscall}/errors", 0o444, files.syscall_errors),
    File("syscalls/{syscall}/log",    0o444, files.syscall_log),
    File("procs/{pid}/log",           0o444, files.proc_log),
    File("procs/{pid}/stats",         0o444, files.proc_stats),
    File("procs/{pid}/cmdline",       0o444, files.proc_cmdline),
)

PARAMS: dict[str, Param] = {
    "syscall": Param(files.syscall_names, files.syscall_parse, entry_timeout=60.0),
    "pid": Param(files.pid_names, files.pid_parse, entry_timeout=0.0),   # processes leave the window
}
