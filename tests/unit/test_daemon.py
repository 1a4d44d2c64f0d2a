"""The daemon end to end on the replay driver: drain, archive, control socket, rules, signals."""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner
from unit_config import make_config
from waiting import wait_for

from saga import events, render, rules, syscalls
from saga.cli.context import Env
from saga.cli.main import app
from saga.daemon import service
from saga.daemon.client import DaemonClient
from saga.daemon.service import Daemon, Options
from saga.drivers.replay import ReplayDriver
from saga.errors import DriverError, DriverUnavailable, SagaError
from saga.events import NR, RET
from saga.rules.service import RulesService
from saga.store import Store, archive

OPENAT = syscalls.BY_NAME["openat"].slot


class Running:
    """A daemon in a thread of this process, on an injected replay driver."""

    def __init__(self, tmp_path, url, driver, **daemon_cfg) -> None:
        self.config = make_config(tmp_path, url, **daemon_cfg)
        self.driver = driver
        self.daemon = Daemon(self.config, Options(no_mount=True, reload_config=False), driver=driver)
        self.status_code: list[int] = []
        # A daemon thread: a failing test must not keep the test run from exiting.
        self.thread = threading.Thread(target=lambda: self.status_code.append(self.daemon.run(signals=False)),
                                       daemon=True)
        self.thread.start()
        assert self.daemon.ready.wait(20), "daemon did not start"
        self.client = DaemonClient(self.config.daemon.socket_path)

    def status(self) -> dict:
        return self.client.status()

    def stop(self) -> int:
        self.daemon.stop()
        self.thread.join(30)
        return self.status_code[0]

    def cli(self, *args, code=0):
        r = CliRunner().invoke(app, list(args), obj=Env(config=self.config))
        assert r.exit_code == code, (r.stdout, r.stderr)
        return r


@pytest.fixture
def running(tmp_path, sqlite_url, recording):
    r = Running(tmp_path, sqlite_url, ReplayDriver(recording))
    yield r
    if r.thread.is_alive():
        r.stop()
    r.driver.close()


def test_drains_archives_and_answers_status_and_log(running, raws):
    wait_for(lambda: running.status()["archive"]["archived"] == len(raws), what="the archive")
    st = running.status()
    assert st["drained"]["events"] == len(raws) and st["window"]["events"] == len(raws)
    assert st["driver"]["name"] == "replay" and st["mount"] is None
    obj = json.loads(running.cli("status", "--json").stdout)
    assert obj["daemon"]["running"] is True and obj["daemon"]["pid"] == os.getpid()
    assert running.cli("log", "-n", "5").stdout.splitlines() == [render.line(r) for r in raws[-5:]]
    errs = [json.loads(x) for x in running.cli("log", "--json", "-n", "1000", "--errors", "--syscall", "openat")
            .stdout.splitlines()]
    assert [o["ts_ns"] for o in errs] == [r[events.TS] for r in raws if r[NR] == OPENAT and r[RET] < 0]
    assert running.stop() == 0
    with Store.open(running.config.store.url) as st:
        assert archive.count(st.engine) == len(raws)


def test_follow_streams_new_events(running, raws, recording):
    wait_for(lambda: running.status()["drained"]["events"] == len(raws))
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(
        running.cli("log", "-f", "-n", "0", "--syscall", "openat", "--count", "3").stdout.splitlines()))
    reader.start()
    wait_for(lambda: running.status()["daemon"]["followers"] == 1, what="the follower")
    running.driver.feed(recording)
    reader.join(20)
    assert got == [render.line(r) for r in raws if r[NR] == OPENAT][:3]


def test_a_slow_follower_is_told_what_it_lost(tmp_path, sqlite_url, recording, raws):
    r = Running(tmp_path, sqlite_url, ReplayDriver(), window_events=200, archive=False)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(r.config.daemon.socket_path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b'{"op": "log", "n": 0, "follow": true}\n')
    wait_for(lambda: r.status()["daemon"]["followers"] == 1, what="the follower")
    rounds = 60
    for _ in range(rounds):                      # far more than the window and the socket buffers hold
        r.driver.feed(recording)
    wait_for(lambda: r.status()["drained"]["events"] == rounds * len(raws))
    f = sock.makefile("rb")
    seen = lost = 0
    while seen + lost < rounds * len(raws):
        msg = json.loads(f.readline())
        if "lost" in msg:
            lost += msg["lost"]
        else:
            seen += 1
    assert lost > 0 and seen + lost == rounds * len(raws)
    sock.close()
    r.stop()
    r.driver.close()


def test_stored_rules_are_installed_at_start_and_on_reload(tmp_path, sqlite_url, recording, raws):
    cfg = make_config(tmp_path, sqlite_url)
    with Store.open(sqlite_url) as st:
        RulesService(st, None, cfg.store.host_name).add(rules.parse("ignore openat"))
    r = Running(tmp_path, sqlite_url, ReplayDriver(recording))
    wait_for(lambda: r.status()["drained"]["events"] > 0)
    assert [rules.format(x) for x in r.driver.list_rules()] == ["ignore openat"]
    expect = sum(1 for x in raws if x[NR] != OPENAT)
    wait_for(lambda: r.status()["drained"]["events"] == expect)
    with Store.open(sqlite_url) as st:
        RulesService(st, None, cfg.store.host_name).add(rules.parse("count read"))
    assert len(r.driver.list_rules()) == 1
    assert list(r.client.request({"op": "reload"})) == [{"reloaded": True}]
    assert [rules.format(x) for x in r.driver.list_rules()] == ["ignore openat", "count read"]
    r.stop()
    r.driver.close()


def test_rules_lock_at_start(tmp_path, sqlite_url):
    drv = ReplayDriver()
    cfg = make_config(tmp_path, sqlite_url)
    d = Daemon(replace(cfg, rules=replace(cfg.rules, lock=True)), Options(no_mount=True, reload_config=False),
               driver=drv)
    t = threading.Thread(target=d.run, kwargs={"signals": False})
    t.start()
    assert d.ready.wait(20)
    assert drv.info().locked
    d.stop()
    t.join(30)
    drv.close()


def test_a_second_daemon_is_refused(running):
    with pytest.raises(SagaError, match=r"already running \(pid \d+\)") as err:
        Daemon(running.config, Options(no_mount=True), driver=ReplayDriver()).run(signals=False)
    assert err.value.exit_code == 75
    assert running.status()["daemon"]["pid"] == os.getpid()


def test_control_errors_are_answered_not_fatal(running):
    with pytest.raises(SagaError, match="unknown op 'dance'"):
        list(running.client.request({"op": "dance"}))
    with pytest.raises(SagaError, match="unknown format"):
        list(running.client.request({"op": "log", "format": "xml"}))
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(running.config.daemon.socket_path)
    sock.sendall(b"this is not json\n")
    assert json.loads(sock.makefile("rb").readline())["exit_code"] == 64
    sock.close()
    assert running.status()["daemon"]["pid"] == os.getpid()


def test_a_mount_that_cannot_work_here(tmp_path, sqlite_url, monkeypatch):
    """Without pyfuse3/libfuse3: --mount is an error, a mount point from the configuration a warning."""
    from saga.daemon import service
    monkeypatch.setattr(service, "sagafs_server", lambda: (None, "No module named 'pyfuse3'"))
    cfg = make_config(tmp_path, sqlite_url)
    with pytest.raises(DriverUnavailable, match="sagafs cannot run here .*pyfuse3.*--no-mount"):
        Daemon(cfg, Options(mount=str(tmp_path / "mnt")), driver=ReplayDriver())
    quiet = Daemon(replace(cfg, sagafs=replace(cfg.sagafs, mount=str(tmp_path / "mnt"))), Options(),
                   driver=ReplayDriver())
    assert quiet.mount is None          # from the config only: a warning, and no mount


# -- the real process: signals ---------------------------------------------------------------------

def _config_file(tmp_path: Path, url: str) -> Path:
    p = tmp_path / "saga.toml"
    p.write_text(f'[daemon]\nrun_dir = "{tmp_path}/run"\n[store]\nurl = "{url}"\nretention_days = 0\n'
                 f'host = "testhost"\n[sagafs]\nmount = ""\n')
    return p


def _start(tmp_path: Path, cfg: Path, recording: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("saga")
    proc = subprocess.Popen([str(exe), "--config", str(cfg), "daemon", "--replay", str(recording)],
                            stderr=subprocess.PIPE, text=True)
    sock = tmp_path / "run" / "saga.sock"
    wait_for(lambda: sock.exists() or proc.poll() is not None, what="the control socket")
    assert proc.poll() is None, proc.stderr.read()
    return proc


def test_sigterm_archives_everything_drained_and_cleans_up(tmp_path, sqlite_url, recording):
    rec = tmp_path / "big.saga"
    rec.write_bytes(recording * 40)
    proc = _start(tmp_path, _config_file(tmp_path, sqlite_url), rec)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    drained = int(re.search(r"stopped draining after (\d+) events", err).group(1))
    with Store.open(sqlite_url) as st:
        assert archive.count(st.engine) == drained
    assert f"stopped: {drained:,} events drained, {drained:,} archived, none lost" in err
    assert not (tmp_path / "run" / "saga.sock").exists() and not (tmp_path / "run" / "saga.pid").exists()


def test_sighup_reloads_rules_and_a_stale_socket_is_replaced(tmp_path, sqlite_url, recording):
    run = tmp_path / "run"
    run.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(run / "saga.sock"))          # left by a daemon that died
    stale.close()
    (run / "saga.pid").write_text("999999\n")
    rec = tmp_path / "w.saga"
    rec.write_bytes(recording)
    cfg = _config_file(tmp_path, sqlite_url)
    proc = _start(tmp_path, cfg, rec)
    try:
        client = DaemonClient(str(run / "saga.sock"))
        wait_for(lambda: _answers(client))
        assert client.status()["driver"]["rules"] == 0
        with Store.open(sqlite_url) as st:
            RulesService(st, None, "testhost").add(rules.parse("ignore read"))
        cfg.write_text(cfg.read_text() + "[rules]\nlock = true\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: client.status()["driver"]["locked"], what="the reload")
        assert client.status()["driver"]["rules"] == 1
        cfg.write_text("[store\n")                      # a broken file: the running configuration stays
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: client.status()["daemon"]["reloads"] == 2, what="the second reload")
        assert client.status()["driver"]["locked"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "reloaded: rules reinstalled from the database" in err
    assert "keeping the running configuration" in err


def _answers(client: DaemonClient) -> bool:
    try:
        client.status()
        return True
    except Exception:
        return False


def test_locked_rules_that_differ_do_not_stop_the_daemon(tmp_path, sqlite_url, recording):
    cfg = make_config(tmp_path, sqlite_url)
    with Store.open(sqlite_url) as st:
        RulesService(st, None, cfg.store.host_name).add(rules.parse("ignore all"))
    drv = ReplayDriver(recording)
    drv.replace_rules([rules.parse("1: count read")])
    drv.lock_rules()
    r = Running(tmp_path, sqlite_url, drv)
    wait_for(lambda: r.status()["drained"]["events"] > 0, what="draining under the locked rules")
    assert [rules.format(x) for x in drv.list_rules()] == ["count read"]
    r.stop()
    drv.close()


def test_a_control_socket_that_cannot_be_made_is_a_config_error(tmp_path, sqlite_url):
    deep = tmp_path / ("d" * 120)                     # longer than a unix socket path may be
    cfg = replace(make_config(tmp_path, sqlite_url), daemon=replace(make_config(tmp_path, sqlite_url).daemon,
                                                                  run_dir=str(deep)))
    drv = ReplayDriver()
    with pytest.raises(SagaError, match="cannot create the control socket") as err:
        Daemon(cfg, Options(no_mount=True, reload_config=False), driver=drv).run(signals=False)
    assert err.value.exit_code == 78
    assert not (deep / "saga.pid").exists()
    drv.close()


class VanishingDriver(ReplayDriver):
    """A driver whose device goes away (rmmod) after the first batch."""

    def __init__(self, recording):
        super().__init__(recording)
        self.reads = 0

    def read_raw(self, max_bytes=1 << 20, timeout=0.0):
        self.reads += 1
        if self.reads > 1:
            raise DriverError("reading /dev/saga: No such device", errno=errno.ENODEV)
        return super().read_raw(max_bytes, timeout)


def test_a_vanished_driver_stops_the_daemon_with_71_after_archiving(tmp_path, sqlite_url, recording):
    drv = VanishingDriver(recording)
    d = Daemon(make_config(tmp_path, sqlite_url, batch_bytes=4096), Options(no_mount=True, reload_config=False),
               driver=drv)
    assert d.run(signals=False) == 71
    with Store.open(sqlite_url) as st:
        assert archive.count(st.engine) == d.state.counters.drained_events > 0
    drv.close()


def test_a_reload_applies_live_keys_and_names_the_restart_keys_it_keeps(tmp_path, sqlite_url, recording, caplog):
    cfg = make_config(tmp_path, sqlite_url)
    d = Daemon(cfg, Options(no_mount=True, reload_config=False), driver=ReplayDriver(recording))
    d.open()
    try:
        new = replace(cfg, daemon=replace(cfg.daemon, batch_bytes=4096, archive_queue=7, window_events=5))
        with caplog.at_level("WARNING", logger="saga.daemon"):
            d._apply(new)
        assert "daemon.window_events, daemon.batch_bytes changed: takes effect when the daemon restarts" \
            in caplog.text
        assert (d.config.daemon.batch_bytes, d.config.daemon.window_events) == (1 << 20, cfg.daemon.window_events)
        assert d.config.daemon.archive_queue == d.state.archiver.max_queued == 7
        assert d.state.config is d.config
    finally:
        d.close()


def test_systemd_hears_ready_and_a_status_line(tmp_path, sqlite_url, recording, raws, monkeypatch):
    """Type=notify: READY=1 with a STATUS= line, then STATUS= refreshed (what `systemctl status` shows)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setattr("saga.daemon.service.NOTIFY_EVERY", 0.05)
    r = Running(tmp_path, sqlite_url, ReplayDriver(recording))
    try:
        first = listener.recv(4096).decode()
        assert first.startswith("READY=1\nSTATUS=driver replay ")
        assert "; starting; 0 events drained" in first and "none lost" in first
        r.driver.advance()
        wait_for(lambda: r.status()["drained"]["events"] == len(raws), what="the drain")
        seen = ""
        while f"; {len(raws):,} events drained" not in seen:
            seen = listener.recv(4096).decode()
        assert re.match(rf"STATUS=driver replay \S+; [\d,]+ events/s; {len(raws):,} events drained, ", seen), seen
        assert "none lost" in seen
        assert r.stop() == 0
        while seen != "STOPPING=1":
            seen = listener.recv(4096).decode()
    finally:
        if r.thread.is_alive():
            r.stop()
        r.driver.close()
        listener.close()


def test_without_the_compiled_renderer_the_daemon_says_so_once_and_renders_in_python(tmp_path, sqlite_url, recording,
                                                                                       caplog, monkeypatch):
    from saga import fastrender
    for name, value in (("LIBRARY", tmp_path / "missing.so"), ("_tried", False), ("_lib", None), ("_why", ""),
                        ("_shared", None)):
        monkeypatch.setattr(fastrender, name, value)
    d = Daemon(make_config(tmp_path, sqlite_url), Options(no_mount=True, reload_config=False),
               driver=ReplayDriver(recording))
    with caplog.at_level("WARNING", logger="saga.daemon"):
        d.open()
    try:
        d.state.window.append(recording)
        assert caplog.text.count("the compiled renderer cannot be used") == 1
        assert f"{tmp_path / 'missing.so'} is missing (make build compiles it)" in caplog.text
        text = d.state.window.snapshot().read_all()
        assert text == "".join(render.line(r) + "\n" for r in events.parse(recording)).encode("utf-8",
                                                                                              "surrogateescape")
    finally:
        d.close()


class PeriodDriver(ReplayDriver):
    """A replay driver that records the periodic check the daemon asks for (the eBPF driver's timer)."""

    def __init__(self, recording):
        super().__init__(recording)
        self.periods: list[float | None] = []

    def set_wake_period(self, seconds):
        self.periods.append(seconds)


def test_the_drain_is_lazy_only_while_nobody_follows(tmp_path, sqlite_url, recording, raws):
    r = Running(tmp_path, sqlite_url, PeriodDriver(recording))
    try:
        wait_for(lambda: r.status()["drained"]["events"] == len(raws))
        assert r.driver.periods[-1] == service.LAZY_WAKE_S        # nobody follows: the slow check
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.extend(
            r.cli("log", "-f", "-n", "0", "--syscall", "openat", "--count", "3").stdout.splitlines()))
        reader.start()
        wait_for(lambda: r.status()["daemon"]["followers"] == 1, what="the follower")
        wait_for(lambda: r.driver.periods[-1] is None, what="the drain to leave its lazy pace")   # woken at once
        r.driver.feed(recording)
        reader.join(20)
        assert got == [render.line(x) for x in raws if x[NR] == OPENAT][:3]
        wait_for(lambda: r.status()["daemon"]["followers"] == 0, what="the follower to go")
        r.driver.feed(recording)          # the next wake finds nobody following
        wait_for(lambda: r.driver.periods[-1] == service.LAZY_WAKE_S, what="the lazy pace again")
        assert r.stop() == 0
    finally:
        if r.thread.is_alive():
            r.stop()
        r.driver.close()
