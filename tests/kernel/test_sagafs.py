"""sagafs on the real module, inside the test VMs: after a workload, /sagafs shows its calls exactly.

Runs inside the VMs only (tools/vmtest; tests/kernel/conftest.py skips it
elsewhere), as root.  The fixture loads saga.ko, starts the daemon as a
process on the kmod driver and mounts sagafs in a temporary directory;
rules written to /sagafs/rules then log only the workload `calls`
(tests/kernel/workloads/calls.c).  Counts are compared as differences
around each workload, so they are exact.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from kernelutil import CALLS, TCG_PATIENCE, Module, calls
from waiting import wait_for

from saga.sagafs.mount import mount_type

SAGA = str(Path(sys.executable).with_name("saga"))


@pytest.fixture(scope="module")
def sagafs():
    """`saga daemon --driver kmod` serving sagafs, one for the tests here (a start takes long under TCG)."""
    module = Module()
    module.unload()
    module.load()
    subprocess.run(["modprobe", "fuse"], capture_output=True, check=False)   # a module on 6.1, built in on 6.12
    root = Path(tempfile.mkdtemp(prefix="saga-vfs"))
    mnt = root / "mnt"
    cfg = root / "saga.toml"
    cfg.write_text(f'[daemon]\nrun_dir = "{root}/run"\narchive = false\n[store]\nurl = "sqlite:///{root}/saga.db"\n'
                   f'host = "vm"\n[sagafs]\nmount = "{mnt}"\n')
    proc = subprocess.Popen([SAGA, "--config", str(cfg), "daemon", "--driver", "kmod"], stderr=subprocess.PIPE,
                            text=True)
    try:
        try:   # slow under TCG: the daemon's start alone takes seconds
            wait_for(lambda: proc.poll() is not None or mount_type(str(mnt)) == "fuse.sagafs", timeout=TCG_PATIENCE,
                     what="the mount")
        except AssertionError:
            proc.kill()
            raise AssertionError(f"sagafs was not mounted: {proc.communicate()[1]}") from None
        assert proc.poll() is None, proc.stderr.read()
        with open(mnt / "rules", "w") as f:
            f.write("log all comm=calls\nignore all\n")
        assert (mnt / "rules").read_text() == "1: log all comm=calls\n2: ignore all\n"
        yield mnt
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TCG_PATIENCE)
        stale = mount_type(str(mnt))
        if stale:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(root, ignore_errors=True)
        module.unload()
    assert proc.returncode == 0, err
    assert stale is None, "sagafs was left mounted"


def lines_of(mnt: Path, pid: int) -> list[str]:
    """The workload's lines in /sagafs/log once its exit_group is there."""
    found: list[str] = []

    def done() -> bool:
        found[:] = [x for x in (mnt / "log").read_text().splitlines() if f" pid={pid} " in x]
        return any(" exit_group(" in x for x in found)

    wait_for(done, timeout=120, what=f"pid {pid}'s exit_group in /sagafs/log")
    return found


def count(mnt: Path, name: str, what: str = "count") -> int:
    return int((mnt / "syscalls" / name / what).read_text())


def test_cat_log_shows_the_workload_with_pids_paths_and_return_values(sagafs):
    # Counts are compared as differences: the window and the counters also hold what came before the
    # rules were written (the daemon starting, udev).
    before = count(sagafs, "openat"), count(sagafs, "openat", "errors")
    pid, tid, fd = map(int, calls("open", "/etc/hostname").split())
    assert fd >= 0
    mine = lines_of(sagafs, pid)
    assert all(f" pid={pid} tid={tid} uid=0 comm=calls " in x for x in mine)
    assert sum(f' openat(AT_FDCWD, "/etc/hostname", O_RDONLY|O_CLOEXEC) = {fd} <' in x for x in mine) == 1
    # The last call by time (the module's per-CPU buffers deliver a task that changed CPUs out of order:
    # a call ended on one CPU can come after its exit_group, read from another).
    assert max(mine, key=lambda x: x.split(" ", 1)[0]).endswith(" exit_group(0) = ? <?> [noreturn]")

    gone, _, ret = map(int, calls("open", "/nonexistent/saga-vm").split())
    assert ret == -1                        # syscall(2) returns -1 and sets errno; the log shows the kernel's -2
    failed = lines_of(sagafs, gone)
    assert sum(' openat(AT_FDCWD, "/nonexistent/saga-vm", O_RDONLY|O_CLOEXEC) = -2 ENOENT <' in x
               for x in failed) == 1

    # The same lines under procs/ and syscalls/, and the driver's counts of exactly them.
    assert (sagafs / "procs" / str(pid) / "log").read_text().splitlines() == mine
    assert (sagafs / "procs" / str(gone) / "log").read_text().splitlines() == failed
    openats = [x for x in (sagafs / "syscalls" / "openat" / "log").read_text().splitlines()
               if f" pid={pid} " in x or f" pid={gone} " in x]
    assert openats == [x for x in mine + failed if " openat(" in x]
    assert count(sagafs, "openat") - before[0] == len(openats)
    assert count(sagafs, "openat", "errors") - before[1] == sum(" = -" in x for x in openats)
    # The daemon read its command line if it looked while the process lived, else only its name is known.
    assert (sagafs / "procs" / str(pid) / "cmdline").read_text() in ("[calls]\n", f"{CALLS} open /etc/hostname\n")


def status_of(mnt: Path) -> dict[str, str]:
    return dict(x.split(": ", 1) for x in (mnt / "status").read_text().splitlines())


def test_pipe_streams_the_workload_and_stats_count_it(sagafs):
    before = count(sagafs, "getppid")
    drops = status_of(sagafs)["capture.drops"]       # the ring may fill while the daemon starts under TCG
    fd = os.open(sagafs / "pipe", os.O_RDONLY)
    try:
        calls("getppid", 100)
        seen: list[str] = []
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not any(" comm=calls exit_group(" in x for x in seen):
            assert poller.poll(30_000), "nothing arrived on /sagafs/pipe"
            seen += os.read(fd, 1 << 20).decode().splitlines()
    finally:
        os.close(fd)
    assert sum(" comm=calls getppid() = " in x for x in seen) == 100
    assert count(sagafs, "getppid") - before == 100
    row = next(r.split() for r in (sagafs / "stats").read_text().splitlines() if r.startswith("getppid "))
    assert row[1:4] == ["110", str(before + 100), "0"]
    status = status_of(sagafs)
    assert status["driver.name"] == "kmod" and status["capture.drops"] == drops
