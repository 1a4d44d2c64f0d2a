"""Helpers for the eBPF driver tests (imported by conftest and the tests)."""
from __future__ import annotations

import os
import struct
import subprocess
import threading
from contextlib import contextmanager

from saga import _uapi, events
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

    def release(self) -> None:
        """Let it run without waiting for it."""
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()

    def begin_steps(self) -> None:
        """Start a `steps` workload: it then makes one call per step()."""
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == b"ready\n"

    def step(self) -> None:
        self.proc.stdin.write(b"c\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == b"ok\n"

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


class Drainer(threading.Thread):
    """Reads the driver's ring in the background, as the daemon does, keeping the bytes."""

    def __init__(self, drv):
        super().__init__(daemon=True)
        self.drv = drv
        self.chunks: list[bytes] = []
        self._done = threading.Event()
        drv.fileno()  # register as a reader before starting

    def run(self) -> None:
        while not self._done.is_set():
            data = self.drv.read_raw(8 << 20, 0.05)
            if data:
                self.chunks.append(data)

    def finish(self) -> list[tuple]:
        """Stop once everything written so far is read; return the parsed records."""
        return [r for chunk in self.stop() for r in events.parse(chunk)]

    def stop(self) -> list[bytes]:
        """Stop once everything written so far is read; return the bytes read."""
        self._done.set()
        self.join()
        for _ in range(100):  # bounded: other processes on the machine keep logging
            data = self.drv.read_raw(8 << 20, 0)
            if not data:
                break
            self.chunks.append(data)
        return self.chunks


def _picker(*names: str) -> struct.Struct:
    """These members of struct saga_event (in the order they lie), the rest skipped: offsets from _uapi."""
    fmt, at = "<", 0
    for f in sorted((_uapi.SAGA_EVENT.field(n) for n in names), key=lambda f: f.offset):
        fmt, at = fmt + f"{f.offset - at}x{f.code}", f.offset + f.size
    return struct.Struct(fmt)


_HEAD = _picker("size", "nr", "pid")
_ARG0 = _uapi.SAGA_EVENT.offset("args")


def first_args(chunks: list[bytes], pid: int, slot: int) -> list[int]:
    """args[0] of pid's records in slot, in stream order (lighter than parsing a million records)."""
    out = []
    for chunk in chunks:
        off, end = 0, len(chunk)
        while off < end:
            size, nr, p = _HEAD.unpack_from(chunk, off)
            if p == pid and nr == slot:
                out.append(int.from_bytes(chunk[off + _ARG0:off + _ARG0 + 8], "little"))
            off += size
    return out
