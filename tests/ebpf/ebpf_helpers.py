"""Helpers for the eBPF driver tests (imported by conftest and the tests)."""
from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager

from saga import events
from saga.drivers.ebpf import EbpfDriver, loader


@contextmanager
def loaded(root: str, name: str, monkeypatch=None, **kwargs):
    """Load a fresh driver instance pinned at root/name; unload it afterwards."""
    directory = os.path.join(root, name)
    old = os.environ.get("SAGA_BPF_DIR")
    os.environ["SAGA_BPF_DIR"] = directory
    drv = None
    try:
        drv = EbpfDriver.open(load=True, **kwargs)
        yield drv
    finally:
        if drv is not None:
            drv.close()
        loader.unload(directory)
        if old is None:
            os.environ.pop("SAGA_BPF_DIR", None)
        else:
            os.environ["SAGA_BPF_DIR"] = old


def drain(drv) -> None:
    for _ in range(100):  # bounded: other processes on the machine keep logging
        if not drv.read_raw(1 << 24, 0):
            return


class Workload:
    """A started workload, paused until go()."""

    def __init__(self, binary: str, *args, user: int | None = None):
        self.proc = subprocess.Popen([binary, *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     user=user)
        self.pid = int(self.proc.stdout.readline())

    def go(self, drv=None) -> int:
        """Let it run (after draining drv's ring, so only what it does now is read back)."""
        if drv is not None:
            drain(drv)
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        return rc


def records(drv, pid: int | None = None, slot: int | None = None) -> list[tuple]:
    """The records waiting in the ring (optionally of one pid / slot).

    A workload's records are in the ring before wait() returns (they are
    written at sys_exit), so reading what is there now is enough."""
    out = []
    for _ in range(100):
        data = drv.read_raw(1 << 24, 0)
        if not data:
            break
        out += events.parse(data)
    return [r for r in out if (pid is None or r[events.PID] == pid) and (slot is None or r[events.NR] == slot)]
