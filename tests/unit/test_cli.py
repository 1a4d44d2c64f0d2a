"""The saga command line through CliRunner, on the replay driver and a temporary SQLite archive."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from unit_config import make_config

from saga import _uapi, events, render, rules, syscalls
from saga.cli.context import Env
from saga.cli.main import app
from saga.drivers.replay import ReplayDriver
from saga.events import COMM, FLAGS, NR, PID, RET, TS, UID
from saga.store import Store, archive
from saga.store import rules as stored_rules

OPENAT = syscalls.BY_NAME["openat"].slot


class Saga:
    """Runs `saga ARGS` in-process against one replay driver (shared across calls, like a kernel)."""

    def __init__(self, tmp_path: Path, driver: ReplayDriver | None, url: str) -> None:
        self.driver = driver
        self.url = url
        self.config = make_config(tmp_path, url)
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, code: int | None = 0):
        result = self.runner.invoke(app, list(args), obj=Env(driver=self.driver, config=self.config), input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        if code is not None:
            assert result.exit_code == code, (result.stdout, result.stderr)
        if result.exit_code and "--debug" not in args:
            assert len(result.stderr.strip().splitlines()) >= 1 and "Traceback" not in result.stderr
        return result

    def archive(self, buf: bytes) -> None:
        with Store.open(self.url) as st:
            with st.session() as s, s.begin():
                h = stored_rules.host_id(s, self.config.store.host_name)
            w = archive.EventWriter(st.engine, h)
            w.write([(buf, events.parse(buf))])
            w.close()


@pytest.fixture
def saga(tmp_path, replay, sqlite_url):
    return Saga(tmp_path, replay, sqlite_url)


def expected_counts(raws):
    out: dict[str, list[int]] = {}
    for r in raws:
        c = out.setdefault(syscalls.name_of(r[NR]), [0, 0])
        c[0] += 1
        c[1] += r[RET] < 0 and not r[FLAGS] & _uapi.SAGA_EVF_NORETURN
    return out


# -- status and stats ---------------------------------------------------------------------------

def test_status_reports_the_driver_and_no_daemon(saga, raws):
    saga.driver.advance()
    out = saga("status").stdout
    assert "driver:   replay" in out and "capture enabled" in out and "daemon:   not running" in out
    assert f"{len(raws)} logged" in out
    obj = json.loads(saga("status", "--json").stdout)
    assert obj["driver"]["name"] == "replay" and obj["daemon"] == {"running": False}
    assert obj["capture"]["calls"] == len(raws) and obj["driver_error"] is None


def test_status_without_any_driver_exits_69_with_the_reason(tmp_path, sqlite_url):
    saga = Saga(tmp_path, None, sqlite_url)
    saga.config = make_config(tmp_path, sqlite_url, driver="kmod")   # no module can load on this host
    r = saga("status", code=69)
    assert "driver:   none" in r.stdout and "kmod" in r.stderr


def test_stats_json_has_every_syscall_with_exact_counts(saga, raws):
    saga.driver.advance()
    obj = json.loads(saga("stats", "--json").stdout)
    got = {s["name"]: [s["calls"], s["errors"]] for s in obj["syscalls"]}
    assert got == expected_counts(raws)
    assert all(s["nr"] == syscalls.BY_NAME[s["name"]].slot for s in obj["syscalls"])
    assert obj["calls"] == len(raws) and obj["drops"] == 0
    calls = [s["calls"] for s in obj["syscalls"]]
    assert calls == sorted(calls, reverse=True)


def test_stats_table_top_sort_and_totals(saga, raws):
    saga.driver.advance()
    counts = expected_counts(raws)
    out = saga("stats", "--top", "3", "--sort", "errors").stdout.splitlines()
    assert out[0].startswith("top 3 of") and out[1].split() == ["SYSCALL", "NR", "CALLS", "ERRORS", "ERR%"]
    body = [line.split() for line in out[2:-1]]
    by_errors = sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[0]))[:3]
    assert [(b[0], int(b[2]), int(b[3])) for b in body] == [(n, c, e) for n, (c, e) in by_errors]
    assert out[-1].split()[:3] == ["total", str(len(raws)), str(sum(e for _, e in counts.values()))]
    names = [line.split()[0] for line in saga("stats", "--sort", "name").stdout.splitlines()[2:-1]]
    assert names == sorted(counts)


def test_stats_warns_about_drops(tmp_path, recording, sqlite_url):
    drv = ReplayDriver(recording, ring_bytes=2048)
    drv.advance()
    r = Saga(tmp_path, drv, sqlite_url)("stats")
    assert "dropped (buffers full)" in r.stderr and f"{drv.stats().drops} dropped" in r.stdout


def test_stats_reset_prints_then_zeroes(saga, raws):
    saga.driver.advance()
    assert json.loads(saga("stats", "--json", "--reset").stdout)["calls"] == len(raws)
    assert json.loads(saga("stats", "--json").stdout)["calls"] == 0


class BusyBetweenReads(ReplayDriver):
    """Calls happen between the first and the second look at the counters."""

    def __init__(self, recording):
        super().__init__()
        self.recording, self.looks = recording, 0

    def stats(self):
        self.looks += 1
        if self.looks == 2:
            self.feed(self.recording)
            self.advance()
        return super().stats()


def test_stats_watch_prints_rates(tmp_path, sqlite_url, recording, raws):
    saga = Saga(tmp_path, BusyBetweenReads(recording), sqlite_url)
    lines = saga("stats", "--watch", "0.1", "--count", "2", "--json").stdout.splitlines()
    first, second = (json.loads(x) for x in lines)
    assert first["calls"] == second["calls"] == len(raws)
    rate = sum(s["calls_per_s"] for s in first["syscalls"])
    assert rate == pytest.approx(len(raws) / first["interval_s"], rel=0.05)
    assert sum(s["calls_per_s"] for s in second["syscalls"]) == 0
    table = saga("stats", "--watch", "0.1", "--count", "1").stdout
    assert "CALLS/s" in table and "ERRORS/s" in table


def test_stats_option_mistakes_are_usage_errors(saga):
    assert "--count needs --watch" in saga("stats", "--count", "2", code=64).stderr
    assert "cannot be combined" in saga("stats", "--watch", "1", "--reset", code=64).stderr
    assert "saga stats:" in saga("stats", "--sort", "bogus", code=64).stderr


# -- rules ----------------------------------------------------------------------------------------

def test_rules_add_warns_about_legacy_names_and_applies(saga, raws):
    r = saga("rules", "add", "ignore", "open")
    assert r.stdout.strip() == "added 1: ignore open"
    assert "glibc calls openat rather than open" in r.stderr and "'ignore open*'" in r.stderr
    saga("rules", "add", "ignore", "openat", "--comm", "nginx", "--key", "quiet")
    assert [rules.format(x) for x in saga.driver.list_rules()][1] == "ignore openat comm=nginx key=quiet"
    got = []
    while buf := saga.driver.read_raw(timeout=0):
        got += events.parse(buf)
    assert got == [r for r in raws if not (r[NR] == OPENAT and r[COMM].startswith(b"nginx\0"))]


def test_rules_list_rm_clear(saga):
    saga("rules", "add", "count", "read,write", "--uid", "nobody", "--errors", "--key", "io")
    saga("rules", "add", "log", "execve", "--first")
    saga("rules", "add", "ignore", "%memory", "--pid", "42", "--key", "io")
    assert saga("rules", "list").stdout.splitlines() == [
        "2: log execve", "1: count read,write uid=65534 errors key=io", "3: ignore %memory pid=42 key=io"]
    listed = json.loads(saga("rules", "list", "--json").stdout)
    assert [x["id"] for x in listed] == [2, 1, 3] and listed[1]["uid"] == 65534 and listed[1]["errors"] is True
    assert saga("rules", "rm", "2").stdout.strip() == "removed 2: log execve"
    assert len(saga("rules", "rm", "--key", "io").stdout.splitlines()) == 2
    assert "no rules" in saga("rules", "list").stderr
    assert "no rule with id 9" in saga("rules", "rm", "9", code=64).stderr
    assert "give a rule ID or --key" in saga("rules", "rm", code=64).stderr
    saga("rules", "add", "log", "read")
    assert saga("rules", "clear").stdout.strip() == "removed 1 rule"
    assert saga.driver.list_rules() == []


def test_rules_list_shows_when_the_driver_disagrees(saga):
    saga("rules", "add", "ignore", "open*")
    saga.driver.replace_rules([])
    r = saga("rules", "list")
    assert r.stdout == "" and "differ from the stored ones" in r.stderr
    assert saga("rules", "list", "--stored").stdout.strip() == "1: ignore open*"


@pytest.mark.parametrize("args, message", [
    (["rules", "add", "ignore", "opne"], "unknown syscall 'opne'; did you mean open"),
    (["rules", "add", "drop", "read"], "'drop' is not one of"),
    (["rules", "add", "log", "read", "--uid", "no-such-user-x"], "no such user"),
    (["rules", "add", "log", "read", "--comm", "a-name-longer-than-15"], "comm must be 1 to 15 bytes"),
    (["rules", "add", "log", "read", "--pid", "-3"], "saga rules add:"),
    (["rules", "add", "log", "nosuch*"], "matches no syscall"),
])
def test_bad_rules_exit_64_with_one_line(saga, args, message):
    r = saga(*args, code=64)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert saga.driver.list_rules() == []


def test_locked_rules_exit_77(saga):
    saga("rules", "add", "log", "read")
    saga("rules", "lock")
    assert "locked" in saga("rules", "add", "ignore", "all", code=77).stderr
    assert saga("rules", "list", "--stored").stdout.strip() == "1: log read"


def test_offline_changes_need_no_driver(tmp_path, sqlite_url):
    saga = Saga(tmp_path, None, sqlite_url)
    saga.config = make_config(tmp_path, sqlite_url, driver="kmod")
    assert "driver" in saga("rules", "add", "log", "read", code=69).stderr
    saga("rules", "add", "log", "read", "--offline")
    assert saga("rules", "list", "--stored").stdout.strip() == "1: log read"


def test_rule_files_check_load_save(saga, tmp_path):
    good = tmp_path / "site.rules"
    good.write_text("# site rules\nignore open  # legacy\n\ncount read,write comm=nginx key=io\nlog all errors\n")
    r = saga("rules", "check", str(good))
    assert r.stdout.strip() == f"{good}: 3 rules, ok" and "glibc calls openat" in r.stderr
    assert saga.driver.list_rules() == []
    saga("rules", "add", "log", "execve")
    assert saga("rules", "load", str(good)).stdout.strip() == f"loaded 3 rules from {good}"
    assert [rules.format(x) for x in saga.driver.list_rules()][0] == "ignore open"
    saved = tmp_path / "saved.rules"
    saga("rules", "save", str(saved))
    text = saved.read_text()
    assert text.startswith("# saga rules of testhost") and text.splitlines()[1:] == [
        "ignore open", "count read,write comm=nginx key=io", "log all errors"]
    assert saga("rules", "save", "-").stdout.splitlines()[1:] == text.splitlines()[1:]
    bad = tmp_path / "bad.rules"
    bad.write_text("log read\nlog opne\n")
    assert f"{bad}:2: unknown syscall 'opne'" in saga("rules", "load", str(bad), code=64).stderr
    assert len(saga.driver.list_rules()) == 3                       # nothing from the bad file
    saga("rules", "load", "-", input="ignore all\n")
    assert [rules.format(x) for x in saga.driver.list_rules()] == ["ignore all"]
    assert "No such file" in saga("rules", "check", str(tmp_path / "nope"), code=64).stderr


# -- query and log --------------------------------------------------------------------------------

def test_query_finds_archived_events_and_prints_them_like_the_log(saga, recording, raws):
    saga.archive(recording)
    want = sorted((r for r in raws if r[NR] == OPENAT and r[RET] < 0), key=lambda r: r[TS])
    out = saga("query", "--syscall", "openat", "--errors").stdout.splitlines()
    assert out == [render.line(r) for r in want]
    objs = [json.loads(x) for x in saga("query", "--syscall", "openat", "--errors", "--json").stdout.splitlines()]
    assert [o["ts_ns"] for o in objs] == [r[TS] for r in want]
    assert {o["host"] for o in objs} == {"testhost"} and all("exe" in o for o in objs)
    nobody = saga("query", "--uid", "65534").stdout.splitlines()
    assert len(nobody) == sum(1 for r in raws if r[UID] == 65534) and all("uid=65534" in x for x in nobody)
    hosted = saga("query", "--comm", "nginx", "--with-host", "-n", "2").stdout.splitlines()
    assert len(hosted) == 2 and all(x.startswith("testhost: ") for x in hosted)


def test_query_limit_time_and_no_match(saga, recording, raws):
    saga.archive(recording)
    r = saga("query", "--limit", "5")
    assert r.stdout.splitlines() == [render.line(x) for x in sorted(raws, key=lambda x: x[TS])[-5:]]
    assert "showing the 5 matching events archived last" in r.stderr
    mid = sorted(x[TS] for x in raws)[len(raws) // 2]
    since = saga("query", "--since", f"@{mid / 1e9:.9f}", "-n", "0").stdout.splitlines()
    assert abs(len(since) - sum(1 for x in raws if x[TS] >= mid)) <= 1   # float seconds: +-1 ns at the edge
    none = saga("query", "--comm", "no-such-comm", code=1)
    assert none.stdout == "" and "no matching events" in none.stderr
    assert saga("query", "--host", "elsewhere", code=1).stdout == ""
    assert "bad time" in saga("query", "--since", "lately", code=64).stderr


def test_query_without_an_archive_is_a_database_error(saga):
    assert "no archive at" in saga("query", code=78).stderr


def test_log_without_daemon_shows_the_archive(saga, recording, raws):
    saga.archive(recording)
    r = saga("log", "-n", "3", "--errors")
    want = sorted((x for x in raws if x[RET] < 0), key=lambda x: x[TS])[-3:]
    assert r.stdout.splitlines() == [render.line(x) for x in want]
    assert "daemon is not running" in r.stderr


def test_log_follow_without_daemon_reads_the_driver(saga, recording, raws, monkeypatch):
    # new events come once the backlog is shown and the command waits for more (its first read that
    # waits), not after a delay: under load a delay could put them in the backlog, and nothing would follow
    read = saga.driver.read_raw

    def read_then_more(size, timeout=None):
        if timeout != 0 and not fed:
            fed.append(saga.driver.feed(recording))
        return read(size, timeout=timeout)

    fed: list = []
    monkeypatch.setattr(saga.driver, "read_raw", read_then_more)
    want = [x for x in raws if x[NR] == OPENAT]
    r = saga("log", "-f", "-n", "2", "--syscall", "openat", "--count", "5", "--json")
    assert fed
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert [o["ts_ns"] for o in got] == [x[TS] for x in want[-2:] + want[:3]]
    assert got[0]["syscall"] == "openat" and got[0]["pid"] == want[-2][PID]


# -- failures in general ----------------------------------------------------------------------------

def test_config_and_database_errors_exit_78(saga, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[store]\nurll = 1\n")
    r = CliRunner().invoke(app, ["--config", str(bad), "rules", "list"])
    assert r.exit_code == 78 and "unknown key 'urll'" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(app, ["--config", str(tmp_path / "missing.toml"), "status"])
    assert r.exit_code == 78 and "no such configuration file" in r.stderr
    (tmp_path / "dir.db").mkdir()
    assert "cannot open the database" in saga("--db", str(tmp_path / "dir.db"), "rules", "list", code=78).stderr


def test_internal_errors_are_one_line_unless_debug(saga, monkeypatch):
    def boom(self):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(ReplayDriver, "stats", boom)
    r = saga("stats", code=70)
    assert r.stderr.strip() == "saga: internal error: RuntimeError: kaboom (run with --debug for the traceback)"
    assert "Traceback" in saga("--debug", "stats", code=70).stderr


def test_usage_errors_exit_64_and_help_exits_0(saga):
    assert "No such command 'stauts'" in saga("stauts", code=64).stderr
    assert "Commands" in saga().stdout
    assert "add" in saga("rules").stdout
    assert saga("--version").stdout.startswith("saga ")


def test_the_installed_command_prints_one_line_and_an_exit_code(tmp_path):
    exe = Path(sys.executable).with_name("saga")
    env = {**os.environ, "SAGA_DB": str(tmp_path / "x.db"), "SAGA_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text(f'[daemon]\nrun_dir = "{tmp_path}/run"\n')
    p = subprocess.run([str(exe), "rules", "add", "ignore", "opne", "--offline"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 64 and p.stdout == ""
    assert p.stderr == "saga: unknown syscall 'opne'; did you mean open, clone, openat?\n"
    # From a shell, as an administrator runs it: typer finds the shell among the command's ancestors (run
    # without one, from a suite started by `setsid nohup`, it says "Shell  not supported").
    p = subprocess.run(["bash", "-c", f"'{exe}' --show-completion bash; exit $?"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0 and "complete" in p.stdout


def test_a_reader_that_goes_away_is_not_an_error(saga, tmp_path, recording):
    saga.archive(recording * 10)              # more than a pipe holds
    exe = Path(sys.executable).with_name("saga")
    env = {**os.environ, "SAGA_DB": saga.url}
    (tmp_path / "none.toml").write_text("")
    p = subprocess.Popen([str(exe), "--config", str(tmp_path / "none.toml"), "query", "--limit", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout.readline()
    p.stdout.close()
    assert p.wait(timeout=60) == 0 and p.stderr.read() == b""


def test_driver_verbs_refuse_the_replay_driver(tmp_path, sqlite_url):
    saga = Saga(tmp_path, None, sqlite_url)
    saga.config = make_config(tmp_path, sqlite_url, driver="replay")
    for verb in ("load", "unload"):
        r = saga("driver", verb, code=64)
        assert r.stderr.strip() == "saga: the replay driver is a recording in the daemon's process: nothing to load " \
                                   "or unload"


def test_driver_verbs_need_root(tmp_path, sqlite_url, monkeypatch):
    monkeypatch.setattr("saga.drivers.lifetime.os.geteuid", lambda: 1000)
    saga = Saga(tmp_path, None, sqlite_url)
    for verb in ("status", "load", "unload"):
        r = saga("driver", verb, code=77)
        assert r.stderr.strip() == "saga: the capture driver is root's to see, load and unload: run as root (sudo)"
