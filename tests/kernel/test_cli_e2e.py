"""The saga command line end to end on the real module: rules, stats, log, query, with exact counts.

Runs inside the test VMs only (tools/vmtest; tests/kernel/conftest.py skips
it elsewhere), as root, with saga.ko loaded by the `module` fixture and the
C workload `calls` (tests/kernel/workloads/calls.c) making the system calls.

Counts are exact because the rules confine counting to the workload: its
getppid calls and its failing openat calls are logged, everything else on
the machine (pytest, the saga commands themselves) is ignored.

Commands run in-process through typer's CliRunner (a Python start under TCG
emulation takes seconds); the installed `saga` script runs once as a
process, and the daemon runs as one.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kernelutil import TCG_PATIENCE, calls
from typer.testing import CliRunner
from waiting import wait_for

from saga.cli.main import app

SAGA = str(Path(sys.executable).with_name("saga"))
N_GETPPID = 1000
N_FAIL = 37
MISSING = "/nonexistent/saga-test"      # what `calls fail` opens


@pytest.fixture
def cli(module, tmp_path):
    """`saga ARGS` as a user runs it, on a fresh archive, with saga.ko loaded.

    Nothing is logged before the test's rules are in (default action ignore): the
    ring then holds only the workload, with no drops from the machine's own calls."""
    module.load(default_action="ignore")
    config = tmp_path / "saga.toml"
    config.write_text(f'[daemon]\nrun_dir = "{tmp_path}/run"\n[sagafs]\nmount = ""\n'
                      f'[store]\nhost = "vm"\nretention_days = 0\n')
    env = {**os.environ, "SAGA_DB": f"{tmp_path}/saga.db", "SAGA_CONFIG": str(config)}

    def run(*args: str, code: int = 0):
        r = CliRunner().invoke(app, list(args), env=env)
        assert r.exit_code == code, (args, r.stdout, r.stderr, r.exception)
        return r

    run.env = env
    run.run_dir = tmp_path / "run"
    return run


def confine_to_the_workload(cli) -> None:
    cli("rules", "add", "log", "getppid", "--comm", "calls")
    cli("rules", "add", "log", "openat", "--comm", "calls", "--errors")
    cli("rules", "add", "ignore", "all")
    assert cli("rules", "list").stdout == ("1: log getppid comm=calls\n2: log openat comm=calls errors\n"
                                           "3: ignore all\n")


def by_name(stats_json: str) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(stats_json)["syscalls"]}


def test_rules_add_warns_and_the_module_holds_the_rule(cli):
    r = cli("rules", "add", "ignore", "open")
    assert "glibc calls openat" in r.stderr and r.stdout.strip() == "added 1: ignore open"
    with open("/proc/saga/rules") as f:
        assert "ignore open" in f.read()
    assert "unknown syscall 'opne'" in cli("rules", "add", "ignore", "opne", code=64).stderr
    cli("rules", "rm", "1")
    p = subprocess.run([SAGA, "rules", "list"], env=cli.env, capture_output=True, text=True,
                       timeout=TCG_PATIENCE, check=False)
    assert (p.returncode, p.stdout) == (0, "") and "no rules" in p.stderr


def test_stats_count_exactly_what_the_rules_select(cli):
    confine_to_the_workload(cli)
    cli("stats", "--reset")
    calls("getppid", N_GETPPID)
    calls("fail", N_FAIL)
    got = by_name(cli("stats", "--json").stdout)
    assert set(got) == {"getppid", "openat"}
    assert (got["getppid"]["calls"], got["getppid"]["errors"]) == (N_GETPPID, 0)
    assert (got["openat"]["calls"], got["openat"]["errors"]) == (N_FAIL, N_FAIL)
    table = cli("stats", "--sort", "name").stdout.splitlines()
    assert table[-1].split()[:3] == ["total", str(N_GETPPID + N_FAIL), str(N_FAIL)]


def test_log_follow_reads_the_module_without_a_daemon(cli):
    confine_to_the_workload(cli)
    calls("fail", N_FAIL)
    out = cli("log", "-f", "-n", "1000", "--count", str(N_FAIL), "--json").stdout.splitlines()
    evs = [json.loads(x) for x in out]
    assert len(evs) == N_FAIL
    assert all((e["syscall"], e["comm"], e["ret"], e["errno"], e["paths"]) ==
               ("openat", "calls", -2, "ENOENT", [MISSING]) for e in evs)
    assert len({e["pid"] for e in evs}) == 1


def test_daemon_log_and_query_with_exact_counts(cli):
    confine_to_the_workload(cli)
    daemon = subprocess.Popen([SAGA, "daemon", "--driver", "kmod", "--no-mount"], env=cli.env,
                              stderr=subprocess.PIPE, text=True)
    try:
        sock = cli.run_dir / "saga.sock"
        wait_for(lambda: sock.exists() or daemon.poll() is not None, timeout=TCG_PATIENCE, what="the control socket")
        assert sock.exists(), daemon.stderr.read()
        calls("getppid", N_GETPPID)
        calls("fail", N_FAIL)
        want = N_GETPPID + N_FAIL
        wait_for(lambda: json.loads(cli("status", "--json").stdout)["archive"]["archived"] >= want,
                 timeout=TCG_PATIENCE, what=f"{want} archived events", every=0.5)
        status = json.loads(cli("status", "--json").stdout)
        assert status["daemon"]["running"] and status["driver"]["name"] == "kmod"
        assert status["capture"]["drops"] == 0
        logged = cli("log", "-n", "5000", "--syscall", "getppid").stdout.splitlines()
        assert len(logged) == N_GETPPID and all(" comm=calls getppid() = " in x for x in logged)
        failed = [json.loads(x) for x in cli("log", "-n", "5000", "--errors", "--json").stdout.splitlines()]
        assert len(failed) == N_FAIL and {e["paths"][0] for e in failed} == {MISSING}
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=TCG_PATIENCE)
    assert daemon.returncode == 0, err
    q = [json.loads(x) for x in cli("query", "--syscall", "openat", "--errors", "--json").stdout.splitlines()]
    assert len(q) == N_FAIL
    assert all((e["host"], e["comm"], e["ret"], e["errno"], e["paths"]) == ("vm", "calls", -2, "ENOENT", [MISSING])
               for e in q)
    assert all(e["exe"] in (None, str(Path(os.environ.get("SAGA_BIN", "")) / "calls")) for e in q)
    assert len(cli("query", "--syscall", "getppid", "--limit", "0").stdout.splitlines()) == N_GETPPID
    assert len(cli("query", "--comm", "calls", "--since", "1h", "--limit", "0").stdout.splitlines()) == \
        N_GETPPID + N_FAIL
    assert cli("query", "--syscall", "execve", code=1).stdout == ""
