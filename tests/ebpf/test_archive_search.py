"""`saga query --argv` and `--unit` on calls the eBPF driver captured and the daemon archived (issue 12).

A `saga daemon` with its archive logs one process tree (a copy of sh under a
name of its own, `tree`) and ignores the rest; the shell runs in a cgroup
laid out as systemd lays out demo.service and starts a program with
arguments no other process has.  The archive must find that execve by a
piece of its arguments and the shell's calls by the unit.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from cgroup_fixture import service_cgroup
from test_daemon_lifetime import Daemon
from waiting import wait_for

SH = "sagaq-sh"      # comm of the workload's shell


def _query(daemon: Daemon, *args: str) -> subprocess.CompletedProcess:
    return daemon.saga("query", "--json", "-n", "0", *args)


def test_the_archive_finds_an_execve_by_its_arguments_and_a_service_by_its_unit(tmp_path, bpffs):
    sh = tmp_path / SH
    shutil.copy("/bin/sh", sh)
    rules = tmp_path / "initial.rules"
    rules.write_text(f"log all comm={SH} tree\nignore all\n")
    daemon = Daemon(tmp_path, "d", os.path.join(bpffs, "archive_search"))   # unloaded by its stop
    config = daemon.config.read_text()
    assert "archive = false\n" in config and "[rules]" not in config, config   # what is changed below
    daemon.config.write_text(config.replace("archive = false\n", "archive = true\n")
                             + f'[rules]\ninitial_file = "{rules}"\n')
    marker = f"saga-argv-{uuid.uuid4().hex[:12]}"
    with service_cgroup() as (unit_dir, _):
        daemon.start()
        try:
            _search(daemon, unit_dir, sh, marker)
        finally:
            daemon.stop()


def _search(daemon: Daemon, unit_dir: Path, sh: Path, marker: str) -> None:
    script = f"echo $$ > {unit_dir}/cgroup.procs && exec {sh} -c '/bin/true {marker} \"two words\"; exit 0'"
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    found: list[dict] = []

    def archived() -> bool:
        res = _query(daemon, "--argv", marker[5:])   # a piece of one argument
        found[:] = [json.loads(x) for x in res.stdout.splitlines()]
        return res.returncode == 0
    wait_for(archived, timeout=60, what="the workload's execve in the archive")
    assert [(e["syscall"], e["argv"], e["ret"], e["rule_id"]) for e in found] == \
        [("execve", ["/bin/true", marker, "two words"], 0, 1)], found   # logged by rule 1, the only log rule
    assert found[0]["args_text"].startswith(f'"/bin/true", ["/bin/true", "{marker}", "two words"], 0x'), found
    assert _query(daemon, "--argv", f"{marker} two words").returncode == 0   # arguments joined by spaces
    assert _query(daemon, "--argv", f"{marker}-not").returncode == 1

    res = _query(daemon, "--unit", "demo.service")
    assert res.returncode == 0, res.stderr
    calls = [json.loads(x) for x in res.stdout.splitlines()]
    assert {e["comm"] for e in calls} == {SH, "true"}, {e["comm"] for e in calls}
    assert any(e["syscall"] == "execve" and e["argv"] == found[0]["argv"] for e in calls)
    assert _query(daemon, "--unit", "demo.service", "--argv", marker).returncode == 0
    assert _query(daemon, "--unit", "other.service").returncode == 1
