"""Fixtures for the eBPF driver on this machine's kernel (root).

Every load goes into a private bpffs mounted under a temporary directory
(SAGA_BPF_DIR), never /sys/fs/bpf/saga, and is unloaded and unmounted at
the end.  Workloads are a small C program (workload.c) that prints its
pid and waits for a go line, so rules can name the pid before it runs.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from bpffs import private_bpffs
from ebpf_helpers import Workload, drain, loaded

HERE = Path(__file__).parent

if os.geteuid() != 0:
    pytest.skip("the eBPF driver tests need root", allow_module_level=True)


@pytest.fixture(scope="session")
def bpffs():
    """A private BPF filesystem for this test session."""
    with private_bpffs() as root:
        yield root


@pytest.fixture(scope="session")
def session_driver(bpffs):
    with loaded(bpffs, "main") as drv:
        yield drv


def _reset(drv) -> None:
    drv.replace_rules([])
    drv.set_enabled(True)
    drain(drv)


@pytest.fixture
def drv(session_driver):
    """The shared instance with no rules, capture on, and the ring drained."""
    os.environ["SAGA_BPF_DIR"] = session_driver.directory
    _reset(session_driver)
    yield session_driver
    session_driver.replace_rules([])
    session_driver.set_enabled(True)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run a test on the shared driver again when it failed while the kernel skipped saga's programs.

    From Linux 6.14 the syscall tracepoints are preemptible, and the kernel skips a program that is
    already running on the CPU (counted: `missed`, docs/ebpf.md): a call whose entry program was
    skipped has no entry state, one whose exit program was skipped no record.  A failure in a run with
    such skips says nothing of saga, so the test is made again (three runs at most); a failure in a
    run without them stands.
    """
    drv = pyfuncitem.funcargs.get("drv")
    if drv is None:
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    for attempt in range(3):
        before = drv.stats().missed
        try:
            pyfuncitem.obj(**args)
            return True
        except AssertionError:
            if attempt == 2 or drv.stats().missed == before:
                raise
            _reset(drv)
    return True


@pytest.fixture(scope="session")
def workload_bin():
    # World-readable directory: some workloads run as another user.
    d = tempfile.mkdtemp(prefix="saga-bin-")
    os.chmod(d, 0o755)
    out = os.path.join(d, "saga-workload")
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", out, str(HERE / "workload.c")], check=True)
    yield out
    os.unlink(out)
    os.rmdir(d)


@pytest.fixture
def workload(workload_bin):
    started = []

    def start(*args, user=None) -> Workload:
        w = Workload(workload_bin, *args, user=user)
        started.append(w)
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
