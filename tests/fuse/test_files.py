"""stats, status, syscalls/<name>/ and procs/<pid>/ through a real mount; saga log alongside."""
from __future__ import annotations

import os
import threading

import psutil
import pytest
from fuse_helpers import lines_of, text_of
from typer.testing import CliRunner

from saga import syscalls
from saga.cli.context import Env
from saga.cli.main import app
from saga.cli.stats import Sort, render_table
from saga.events import COMM, NR, PID, RET, comm_str

OPENAT = syscalls.BY_NAME["openat"].slot


def test_stats_is_the_saga_stats_table(fs):
    assert fs.text("stats") == render_table(fs.driver.stats(), Sort.calls, None) + "\n"


def test_status_has_a_key_value_line_per_field(fs, raws):
    status = dict(line.split(": ", 1) for line in fs.text("status").splitlines())
    assert status["driver.name"] == "replay" and status["driver.enabled"] == "1"
    assert status["window.events"] == str(len(raws)) and status["drained.events"] == str(len(raws))
    assert status["capture.drops"] == "0" and status["archive.enabled"] == "0"
    assert status["mount"] == str(fs.mnt) and status["daemon.pid"] == str(os.getpid())


def test_syscall_directories(fs, raws):
    names = os.listdir(fs.path("syscalls"))
    assert set(names) >= {"openat", "read", "execve", "unknown"} and len(names) == len(set(names))
    per_slot = fs.driver.stats().per_slot
    assert fs.text("syscalls/openat/count") == f"{per_slot[OPENAT][0]}\n"
    assert fs.text("syscalls/openat/errors") == f"{per_slot[OPENAT][1]}\n"
    assert per_slot[OPENAT][1] == sum(1 for r in raws if r[NR] == OPENAT and r[RET] < 0) > 0
    assert fs.read("syscalls/openat/log") == text_of([r for r in raws if r[NR] == OPENAT])
    assert fs.text("syscalls/pivot_root/count") == "0\n" and fs.read("syscalls/pivot_root/log") == b""
    for missing in ("opne", "syscall_257", "openat/nope"):
        assert not os.path.exists(fs.path("syscalls", missing)), missing


def test_per_syscall_logs_follow_the_window(fs, raws, recording):
    before = fs.read("syscalls/openat/log")
    fs.driver.feed(recording)
    fs.wait_drained(2 * len(raws))
    assert fs.read("syscalls/openat/log") == before * 2


def test_process_directories(fs, raws):
    pids = sorted({r[PID] for r in raws})
    assert sorted(int(p) for p in os.listdir(fs.path("procs"))) == pids
    for pid in pids:
        mine = [r for r in raws if r[PID] == pid]
        assert fs.read(f"procs/{pid}/log") == text_of(mine)
        stats = fs.text(f"procs/{pid}/stats").splitlines()
        comm = comm_str(mine[-1][COMM])
        assert stats[:2] == [f"pid: {pid}", f"comm: {comm}"]
        assert f"events: {len(mine)}" in stats
        assert f"errors: {sum(1 for r in mine if r[RET] < 0)}" in stats
        if not psutil.pid_exists(pid):      # the recording's processes are long gone (unless a pid was reused)
            assert fs.text(f"procs/{pid}/cmdline") == f"[{comm}]\n"
    for missing in ("999999999", "0042", "x"):
        assert not os.path.exists(fs.path("procs", missing)), missing


def test_saga_log_keeps_working_with_sagafs_mounted(fs, raws, recording):
    def cli(*args):
        r = CliRunner().invoke(app, list(args), obj=Env(config=fs.config))
        assert r.exit_code == 0, r.stderr
        return r.stdout.splitlines()

    assert cli("log", "-n", "5") == lines_of(raws)[-5:]
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(cli("log", "-f", "-n", "0", "--count", "3")))
    reader.start()
    from fuse_helpers import wait_for
    wait_for(lambda: fs.state.counters.followers == 1, what="the follower")
    fs.driver.feed(recording)
    reader.join(20)
    assert got == lines_of(raws)[:3]


@pytest.mark.parametrize("name", ["stats", "rules", "error_log"])
def test_stat_and_a_fresh_open_agree(fs, name):
    assert os.stat(fs.path(name)).st_size == len(fs.read(name))


@pytest.mark.parametrize("name", ["log", "syscalls/openat/log"])
def test_log_files_have_size_0_and_are_read_to_the_end(fs, name):
    """Like tracefs's trace: rendered as they are read, so no size is known at open."""
    assert os.stat(fs.path(name)).st_size == 0 and len(fs.read(name)) > 0
