"""exe=: a program's identity as the drivers compare it (docs/kernel-abi.md, "exe").

The kernel knows a task's executable as a file (mm->exe_file): an inode
number on a superblock whose device is kept in the kernel's encoding
(major << 20 | minor).  A rule names a path; it is resolved to that
identity when the rules are installed.  The device comes from the mount
the file is on (/proc/self/mountinfo shows the superblock's device as
the kernel holds it), not from stat(2)'s st_dev, which differs on btrfs
subvolumes.  Drivers list a rule with the identity they hold, written
`@MAJOR:MINOR:INODE`, which the grammar reads back.
"""
from __future__ import annotations

import os
import re

from saga.errors import RuleError

_ID = re.compile(r"^@(\d+):(\d+):(\d+)$")
_OCTAL = re.compile(r"\\([0-7]{3})")
MINOR_BITS = 20


def kernel_dev(major: int, minor: int) -> int:
    return major << MINOR_BITS | minor


def check(value: str) -> None:
    """An exe= value: an absolute path or an identity."""
    if not (value.startswith("/") or _ID.match(value)):
        raise RuleError(f"exe={value}: needs an absolute path (or @MAJOR:MINOR:INODE, as drivers list it)")


def format_identity(dev: int, ino: int) -> str:
    return f"@{dev >> MINOR_BITS}:{dev & ((1 << MINOR_BITS) - 1)}:{ino}"


def _mount_device(path: str) -> int | None:
    """The kernel device of the mount holding `path` (a resolved path), from /proc/self/mountinfo."""
    best, dev = -1, None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 5:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), parts[4])  # \040 and friends
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # longest mount point; of equals, the last mounted
            major, _, minor = parts[2].partition(":")
            best, dev = len(point), kernel_dev(int(major), int(minor))
    return dev


def identity(value: str) -> tuple[int, int]:
    """(device, inode) of an exe= value, as the drivers compare it."""
    m = _ID.match(value)
    if m:
        return kernel_dev(int(m.group(1)), int(m.group(2))), int(m.group(3))
    try:
        real = os.path.realpath(value, strict=True)
        st = os.stat(real)
    except OSError as exc:
        raise RuleError(f"exe={value}: {exc.strerror} (the program must exist when the rule is installed)") from None
    if not os.path.isfile(real):
        raise RuleError(f"exe={value}: not a regular file")
    dev = _mount_device(real)
    if dev is None:
        dev = kernel_dev(os.major(st.st_dev), os.minor(st.st_dev))
    return dev, st.st_ino
