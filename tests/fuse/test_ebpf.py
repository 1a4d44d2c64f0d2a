"""sagafs served by `saga daemon` on the real eBPF driver: a workload's calls show up in /sagafs.

The daemon runs as a process with its BPF pins in a private bpffs
(SAGA_BPF_DIR), which is unloaded and unmounted afterwards.  A busy
machine makes far more calls than the window holds for long, so the
fixture writes rules to /sagafs/rules that log only the workloads
(copies of cat and sleep under names of their own) and ignore the rest;
the checks then look for each workload's pid.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from bpffs import private_bpffs
from cgroup_fixture import service_cgroup
from fuse_helpers import detach_mounts_under, read_available
from waiting import wait_for

from saga.drivers.ebpf import loader
from saga.sagafs.mount import mount_type

try:
    loader.check_host(loader.OBJECT)
except Exception as exc:      # noqa: BLE001 - any reason the driver cannot run here
    pytest.fail(f"the eBPF driver cannot run on this machine: {exc}", pytrace=False)


CAT, SLEEP = "sagafs-cat", "sagafs-sleep"     # comm of the workloads


@pytest.fixture(scope="module")
def root():
    path = Path(tempfile.mkdtemp(prefix="saga-fsb"))
    shutil.copy("/usr/bin/cat", path / CAT)
    shutil.copy("/usr/bin/sleep", path / SLEEP)
    yield path
    detach_mounts_under(str(path))
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ebpf_daemon(root):
    with private_bpffs(where=str(root)) as bpffs:
        yield from _serve_ebpf(root, Path(bpffs))


def _serve_ebpf(root, bpffs):
    mnt = root / "mnt"
    cfg = root / "saga.toml"
    cfg.write_text(f'[daemon]\nrun_dir = "{root}/run"\narchive = false\n[store]\nurl = "sqlite:///{root}/saga.db"\n'
                   f'host = "testhost"\n[sagafs]\nmount = "{mnt}"\n')
    env = {**os.environ, "SAGA_BPF_DIR": str(bpffs / "saga")}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("saga")), "--config", str(cfg), "daemon",
                             "--driver", "ebpf"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: proc.poll() is not None or mount_type(str(mnt)) == "fuse.sagafs", timeout=60,
                 what="the eBPF daemon's mount")
        assert proc.poll() is None, proc.stderr.read()
        with open(mnt / "rules", "w") as f:
            f.write(f"log all comm={CAT}\nlog all comm={SLEEP}\nignore all\n")
        assert (mnt / "rules").read_text() == f"1: log all comm={CAT}\n2: log all comm={SLEEP}\n3: ignore all\n"
        yield mnt
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert mount_type(str(mnt)) is None


def _lines_of(mnt: Path, pid: int, last: str) -> list[str]:
    """The workload's lines in /sagafs/log, once the call `last` of it has been drained."""
    found: list[str] = []

    def done() -> bool:
        found[:] = [x for x in (mnt / "log").read_text().splitlines() if f" pid={pid} " in x]
        return any(f" {last}(" in x for x in found)

    try:
        wait_for(done, timeout=30, what=f"{last} of pid {pid} in /sagafs/log")
    except AssertionError:
        status = (mnt / "status").read_text()
        raise AssertionError(f"no {last} of pid {pid} in /sagafs/log; its lines: {found[-3:]}; {status}") from None
    return found


def test_cat_log_shows_the_workload_with_pids_paths_and_return_values(ebpf_daemon, root):
    mnt = ebpf_daemon
    missing = f"/nonexistent/saga-fuse-{uuid.uuid4().hex}"
    proc = subprocess.Popen([root / CAT, "/etc/hostname", missing], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert proc.wait() == 1
    lines = _lines_of(mnt, proc.pid, "exit_group")
    assert all(f" tid={proc.pid} uid=0 comm={CAT} " in x for x in lines)
    assert any(' openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3 <' in x for x in lines)
    assert any(f' openat(AT_FDCWD, "{missing}", O_RDONLY) = -2 ENOENT <' in x for x in lines)
    assert lines[-1].endswith(" exit_group(1) = ? <?> [noreturn]")
    # The same lines, and only them, under procs/<pid>/ and (for openat) syscalls/openat/.
    assert (mnt / "procs" / str(proc.pid) / "log").read_text().splitlines() == lines
    openats = [x for x in (mnt / "syscalls" / "openat" / "log").read_text().splitlines() if f" pid={proc.pid} " in x]
    assert openats == [x for x in lines if " openat(" in x]


def test_a_live_process_has_its_command_line(ebpf_daemon, root):
    mnt = ebpf_daemon
    sleeper = subprocess.Popen([root / SLEEP, "30"])
    try:
        _lines_of(mnt, sleeper.pid, "close")
        assert (mnt / "procs" / str(sleeper.pid) / "cmdline").read_text() == f"{root / SLEEP} 30\n"
        stats = (mnt / "procs" / str(sleeper.pid) / "stats").read_text().splitlines()
        assert f"comm: {SLEEP}" in stats and "user: root" in stats and f"exe: {root / SLEEP}" in stats
    finally:
        sleeper.kill()
        sleeper.wait()


def test_pipe_streams_the_workload_as_it_runs(ebpf_daemon, root):
    mnt = ebpf_daemon
    fd = os.open(mnt / "pipe", os.O_RDONLY)
    try:
        proc = subprocess.Popen([root / CAT, "/nonexistent/saga-pipe"], stderr=subprocess.DEVNULL)
        proc.wait()
        seen: list[str] = []
        while not any(f" pid={proc.pid} " in x and " exit_group(" in x for x in seen):
            seen += read_available(fd, timeout=20).decode().splitlines()
        mine = [x for x in seen if f" pid={proc.pid} " in x]
        assert any(' openat(AT_FDCWD, "/nonexistent/saga-pipe", O_RDONLY) = -2 ENOENT <' in x for x in mine)
    finally:
        os.close(fd)


def test_stats_and_counts_are_the_drivers(ebpf_daemon):
    mnt = ebpf_daemon
    head = (mnt / "stats").read_text().splitlines()
    assert head[1].split() == ["SYSCALL", "NR", "CALLS", "ERRORS", "ERR%"]
    assert int((mnt / "syscalls" / "openat" / "count").read_text()) > 0
    status = dict(x.split(": ", 1) for x in (mnt / "status").read_text().splitlines())
    assert status["driver.name"] == "ebpf" and status["mount"] == str(mnt)


@pytest.fixture
def demo_service():
    with service_cgroup() as cgroup:
        yield cgroup


def test_a_process_in_a_service_and_a_pid_namespace_says_so(ebpf_daemon, root, demo_service):
    """The unit of the cgroup a process runs in, and its pid inside its own pid namespace, shown in the log
    line, /sagafs/procs/PID/stats and the JSON form (docs/log-format.md#context)."""
    import json

    import psutil
    mnt = ebpf_daemon
    unit_dir, cg_path = demo_service
    script = f"echo $$ > {unit_dir}/cgroup.procs && exec unshare --pid --fork {root / CAT}"
    shell = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        found: list[psutil.Process] = []
        wait_for(lambda: found.extend(p for p in psutil.Process(shell.pid).children(recursive=True)
                                      if p.name() == CAT) or found, timeout=10, what="the workload's cat")
        pid = found[0].pid
        _lines_of(mnt, pid, "mmap")
        stats = (mnt / "procs" / str(pid) / "stats").read_text().splitlines()
        assert "unit: demo.service" in stats and f"cgroup: {cg_path}" in stats, stats
        assert f"nspid: {pid} 1" in stats and "container: -" in stats, stats
        shell.stdin.write(b"x\n")
        shell.stdin.close()
        assert shell.wait(timeout=30) == 0
        lines = _lines_of(mnt, pid, "exit_group")
        assert f" comm={CAT} unit=demo.service exit_group(0) = ? <?> [noreturn]" in lines[-1], lines[-1]
        saga = str(Path(sys.executable).with_name("saga"))
        out = subprocess.run([saga, "--config", str(root / "saga.toml"), "log", "--json", "-p", str(pid), "-n", "1"],
                             capture_output=True, text=True, check=True).stdout
        event = json.loads(out.splitlines()[-1])
        assert (event["unit"], event["cgroup"], event["container"], event["nspid"]) == ("demo.service", cg_path,
                                                                                        None, 1), event
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
