"""Fixtures of the fault suite (root): real components under faults (docs/daemon.md, docs/development.md).

`saga daemon` runs as a process on the real eBPF driver, loaded in a
private bpffs (SAGA_BPF_DIR) and unloaded at the end; the marker workload
(marker.c) makes calls whose first argument numbers them; databases are
real SQLite files (on real, small tmpfs mounts where the test needs a full
disk) and a real PostgreSQL server (tests/common/pgserver.py).  Whatever a
test mounts or starts is undone, even when it fails.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from bpffs import private_bpffs
from fault_helpers import Daemons
from pgserver import serving

from saga.drivers.ebpf import loader

HERE = Path(__file__).parent

if os.geteuid() != 0:
    pytest.skip("the fault suite loads the eBPF driver and mounts filesystems: it needs root",
                allow_module_level=True)


@pytest.fixture
def tmp_path():
    """A short directory others may enter (a group member's reader runs as nobody)."""
    path = tempfile.mkdtemp(prefix="saga-fault-")
    os.chmod(path, 0o755)
    yield Path(path)
    _unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)


def _unmount_under(root: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(root.rstrip("/") + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture(scope="session")
def bpffs():
    with private_bpffs("saga-fault-bpffs-") as root:
        yield root


@pytest.fixture(scope="session")
def marker_bin():
    d = tempfile.mkdtemp(prefix="saga-fault-bin-")
    os.chmod(d, 0o755)
    out = os.path.join(d, "marker")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", out, str(HERE / "marker.c")], check=True)
    yield out
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemons(tmp_path, bpffs):
    """Start `saga daemon` processes (Daemons.start); every one is stopped or killed at the end."""
    pin = os.path.join(bpffs, "saga")
    d = Daemons(tmp_path, pin)
    yield d
    d.cleanup()
    loader.unload(pin)


@pytest.fixture(scope="session")
def pg_server():
    yield from serving()
