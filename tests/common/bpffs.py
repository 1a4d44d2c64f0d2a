"""A private BPF filesystem for a test: mounted on a fresh directory, never /sys/fs/bpf.

Whatever saga loaded under it (each top-level directory is one driver's pins) is unloaded before
the unmount, so a failing test leaves no program attached to the host's system calls.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from saga.drivers.ebpf import loader


@contextmanager
def private_bpffs(prefix: str = "saga-bpffs-", where: str | None = None) -> Iterator[str]:
    """Mount a bpffs on a new directory (under `where`, else the temp dir); yield its path."""
    root = tempfile.mkdtemp(prefix=prefix, dir=where)
    subprocess.run(["mount", "-t", "bpf", "bpf", root], check=True)
    try:
        yield root
    finally:
        for name in os.listdir(root):
            loader.unload(os.path.join(root, name))
        subprocess.run(["umount", root], check=False)
        os.rmdir(root)
