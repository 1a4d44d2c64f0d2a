"""Fixtures for sagafs on this machine: real FUSE mounts served by a real daemon (root).

`mounted` runs the daemon in a thread of this process on the replay driver
fed with the recorded workload (tests/data), so contents are exact;
tests/fuse/test_ebpf.py runs it as a process on the real eBPF driver.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from fuse_helpers import Mounted, detach_mounts_under

from saga import events

DATA = Path(__file__).resolve().parent.parent / "data"

if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
    pytest.skip("the sagafs tests mount FUSE filesystems: they need root and /dev/fuse", allow_module_level=True)


@pytest.fixture
def tmp_path():
    """A short directory others may enter (permission tests run commands as nobody); any mount left
    under it (a test that failed half way) is detached before it is removed."""
    path = tempfile.mkdtemp(prefix="saga-fs")
    os.chmod(path, 0o755)
    yield Path(path)
    detach_mounts_under(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def recording() -> bytes:
    return gzip.decompress((DATA / "workload.saga.gz").read_bytes())


@pytest.fixture(scope="session")
def raws(recording) -> list[tuple]:
    return events.parse(recording)


@pytest.fixture
def mount(tmp_path, recording):
    """Start a daemon serving sagafs (Mounted options as keywords); every one started is stopped."""
    started: list[Mounted] = []

    def start(feed: bool = True, **kw) -> Mounted:
        m = Mounted(tmp_path / f"d{len(started)}", recording if feed else b"", **kw)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


@pytest.fixture
def fs(mount, raws) -> Mounted:
    """A mounted sagafs that has drained the whole recording."""
    m = mount()
    m.wait_drained(len(raws))
    return m
