"""The packages under real systemd: a clean machine booted with systemd-nspawn --boot (pkgboot.py).

In order, as an administrator would: install the previous version's
package (this one relabelled, conftest.relabel), which
starts saga.service; add rules; upgrade to this version, which restarts it
on the new driver with the rules and the archive kept; reload; restart;
stop (nothing stays attached); a crash (the unit's ExecStopPost unloads);
a configuration no restart can cure (no restart loop); a second daemon
(refused); `systemctl status`; the hardening score; purge (nothing
attached, pinned or left on disk).

The container shares this host's kernel, which cannot load modules, so
saga runs its eBPF driver here: what is attached is checked from this
host, by link id (bpftool sees every container's programs).  The module's
side of the lifecycle is the VM's (test_packages.py).
"""
from __future__ import annotations

import json
import re
import subprocess
import time

import pkgroot
import pytest
from conftest import debs_in
from pkgboot import Booted
from pkgroot import version

MARKER = "lc-marker"        # a copy of cat: the rules log its calls only (no "saga" in its name: purge checks)


class Host:
    """What the lifecycle needs to remember between steps."""

    def __init__(self, box: Booted, machine: pkgroot.Machine, release: pkgroot.Release, old: str):
        self.box = box
        self.machine = machine
        self.release = release
        self.old = old
        self.links: set[int] = set()
        self.files_before: set[str] = set()
        self.marker_ids: set[tuple] = set()

    def saga(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.box.run("saga", *args, check=check)

    def status(self) -> dict:
        return json.loads(self.saga("status", "--json").stdout)

    def driver(self) -> dict:
        res = self.saga("driver", "status", "--json", check=False)
        views = json.loads(res.stdout) if res.stdout.strip() else []
        assert len(views) == 1, res.stdout + res.stderr
        return views[0]

    def unit(self, *props: str) -> dict[str, str]:
        out = self.box.run("systemctl", "show", "saga.service", *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_active(self, timeout: float = 90) -> str:
        """Wait until saga.service is active (Type=notify: the daemon said READY=1); its MainPID."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            u = self.unit("ActiveState", "SubState", "MainPID")
            if u["ActiveState"] == "active":
                return u["MainPID"]
            if u["ActiveState"] == "failed":
                break
            time.sleep(0.5)
        raise AssertionError(f"saga.service is not active: {u}\n{self.journal()}")

    def journal(self) -> str:
        return "--- journalctl -u saga\n" + self.box.run("journalctl", "-u", "saga", "--no-pager", "-n", "40",
                                                         check=False).stdout

    def pinned_links(self) -> set[int]:
        """Ids of the links saga pinned in the container's /sys/fs/bpf/saga (looked at from this host)."""
        base = self.box.host_path("/sys/fs/bpf/saga")
        names = subprocess.run(["ls", base], capture_output=True, text=True).stdout.split()
        out = set()
        for name in (n for n in names if n.startswith("link_")):
            info = subprocess.run(["bpftool", "-j", "link", "show", "pinned", f"{base}/{name}"], check=True,
                                  capture_output=True, text=True).stdout
            out.add(json.loads(info)["id"])
        return out

    def assert_detached(self, links: set[int]) -> None:
        """None of these links is attached any more (the kernel frees unpinned links from a work queue)."""
        for _ in range(100):
            out = subprocess.run(["bpftool", "-j", "link", "show"], check=True, capture_output=True, text=True)
            left = links & {link["id"] for link in json.loads(out.stdout)}
            if not left:
                return
            time.sleep(0.1)
        raise AssertionError(f"saga's links {sorted(left)} are still attached\n{self.journal()}")

    def marker_events(self) -> set[tuple]:
        """The archived events of the marker process, as (time, thread, call)."""
        out = self.saga("query", "--comm", MARKER, "--limit", "0", "--json", check=False)
        assert out.returncode in (0, 1), out.stderr       # 1: nothing matched
        return {(e["ts_ns"], e["tid"], e["nr"]) for e in map(json.loads, filter(str.strip, out.stdout.splitlines()))}


@pytest.fixture(scope="module")
def host(base, built, previous, release, tmp_path_factory):
    old, old_dir = previous
    machine = pkgroot.Machine(base)
    box = None
    try:
        incoming = machine.path("/root/saga-test")
        incoming.mkdir(parents=True, exist_ok=True)
        for path in [old_dir / release.suite / f"saga_{old}_amd64.deb",
                     *debs_in(built, release.suite, version(), ("saga",)).values()]:
            (incoming / path.name).write_bytes(path.read_bytes())
        box = Booted(machine.root, tmp_path_factory.mktemp("nspawn") / "console.log")
        h = Host(box, machine, release, old)
        h.files_before = machine.files()
        yield h
    finally:
        if box is not None:
            box.stop()
        machine.close()


APT = {"DEBIAN_FRONTEND": "noninteractive"}


def test_installing_starts_the_service_on_the_packaged_driver(host):
    """The previous version first: apt installs it, and its postinst starts saga.service."""
    h = host
    h.box.run("apt-get", "install", "-y", "--no-install-recommends", f"/root/saga-test/saga_{h.old}_amd64.deb",
              env=APT)
    pid = h.wait_active()
    d = h.driver()
    assert d["driver"] == "ebpf" and d["version"] == h.old and d["owned"] and str(d["daemon_pid"]) == pid, d
    assert h.saga("--version").stdout.strip() == f"saga {h.old}"
    h.links = h.pinned_links()
    assert len(h.links) >= 3


def test_rules_and_the_marker_are_logged(host):
    h = host
    for rule in (f"log all --comm {MARKER} --first", "count all"):     # (first: before the default rules)
        h.saga("rules", "add", *rule.split())
    h.box.run("cp", "/bin/cat", f"/usr/local/bin/{MARKER}")
    h.box.run(MARKER, "/etc/hostname")
    deadline = time.monotonic() + 60
    while not h.marker_events() and time.monotonic() < deadline:
        time.sleep(1)
    h.marker_ids = h.marker_events()
    assert h.marker_ids, "the marker's calls were not archived\n" + h.journal()
    log = h.box.run("cat", "/sagafs/log").stdout
    assert f"comm={MARKER} openat(AT_FDCWD, \"/etc/hostname\", O_RDONLY) = 3" in log


def test_upgrade_runs_the_new_driver_and_keeps_rules_and_archive(host, release):
    h = host
    rules_before = h.saga("rules", "list").stdout
    h.box.run("apt-get", "install", "-y", "--no-install-recommends",
              f"/root/saga-test/saga_{version()}_amd64.deb", env=APT)
    pid = h.wait_active()
    assert h.saga("--version").stdout.strip() == f"saga {version()}"
    d = h.driver()
    assert d["version"] == version() and str(d["daemon_pid"]) == pid, d
    h.assert_detached(h.links)            # the old version's programs are gone
    h.links = h.pinned_links()
    assert h.saga("rules", "list").stdout == rules_before
    assert h.marker_ids <= h.marker_events(), "the archive lost events in the upgrade"


def test_active_status_line_and_sagafs(host):
    h = host
    text = h.unit("StatusText")["StatusText"]
    assert re.match(rf"driver ebpf {re.escape(version())}; (starting|[\d,]+ events/s); [\d,]+ events drained, "
                    r"[\d,]+ archived.*(none|[\d,]+) lost", text), text
    shown = h.box.run("systemctl", "status", "saga", "--no-pager", check=False).stdout
    assert f"Status: \"driver ebpf {version()};" in shown, shown
    assert h.box.run("cat", "/sagafs/log").returncode == 0


def test_reload_and_restart_keep_the_rules(host):
    h = host
    rules = h.saga("rules", "list").stdout
    reloads = h.status()["daemon"]["reloads"]
    h.box.run("systemctl", "reload", "saga")
    deadline = time.monotonic() + 30
    while h.status()["daemon"]["reloads"] == reloads and time.monotonic() < deadline:
        time.sleep(0.5)
    assert h.status()["daemon"]["reloads"] == reloads + 1
    h.box.run("systemctl", "restart", "saga")
    pid = h.wait_active()
    assert h.saga("rules", "list").stdout == rules
    assert str(h.driver()["daemon_pid"]) == pid
    h.assert_detached(h.links)            # the stop before the start unloaded them
    h.links = h.pinned_links()


def test_stop_leaves_nothing_attached(host):
    h = host
    h.box.run("systemctl", "stop", "saga")
    h.assert_detached(h.links)
    assert h.box.run("test", "-e", "/sys/fs/bpf/saga", check=False).returncode == 1
    assert h.box.run("mountpoint", "-q", "/sagafs", check=False).returncode != 0
    res = h.saga("driver", "status", check=False)
    assert res.returncode == 69 and res.stdout.strip() == "no saga driver is loaded"
    h.box.run("systemctl", "start", "saga")
    h.wait_active()
    h.links = h.pinned_links()


def test_a_killed_daemon_is_restarted_and_its_driver_replaced(host):
    """SIGKILL: the daemon cannot unload; ExecStopPost does, and Restart= brings a new one."""
    h = host
    pid = h.unit("MainPID")["MainPID"]
    h.box.run("systemctl", "kill", "--signal=KILL", "saga")
    deadline = time.monotonic() + 60
    while h.unit("MainPID")["MainPID"] in (pid, "0") and time.monotonic() < deadline:
        time.sleep(0.5)
    h.wait_active()
    h.assert_detached(h.links)
    h.links = h.pinned_links()
    assert h.unit("NRestarts")["NRestarts"] == "1"


def test_a_condition_no_restart_cures_does_not_loop(host):
    """daemon.driver = "kmod" where no module can load: exit 69, and the unit stays failed."""
    h = host
    conf = h.box.run("cat", "/etc/saga/saga.toml").stdout
    h.box.run("sh", "-c", "printf '[daemon]\\ndriver = \"kmod\"\\n' > /etc/saga/saga.toml")
    try:
        # The steps before may have used the start limit's minute (fast on an idle machine): reset it, so the
        # refusal seen is the driver's (69), not the limit's.
        h.box.run("systemctl", "reset-failed", "saga", check=False)
        h.box.run("systemctl", "restart", "saga", check=False)
        time.sleep(8)                     # longer than RestartSec: a loop would have restarted it
        u = h.unit("ActiveState", "Result", "ExecMainStatus", "NRestarts")
        assert u["ActiveState"] == "failed" and u["ExecMainStatus"] == "69", u
        assert u["NRestarts"] == "0", u
        assert "the kmod driver cannot run: this kernel cannot load modules" in h.journal()
        assert h.box.run("test", "-e", "/sys/fs/bpf/saga", check=False).returncode == 1
    finally:
        h.box.run("sh", "-c", "cat > /etc/saga/saga.toml", input=conf)
    # (The steps before started it often within the start limit's minute; an administrator
    # who fixed the configuration of a failed unit resets it too.)
    h.box.run("systemctl", "reset-failed", "saga")
    res = h.box.run("systemctl", "restart", "saga", check=False)
    assert res.returncode == 0, res.stderr + h.journal()
    h.wait_active()
    h.links = h.pinned_links()


def test_a_second_daemon_is_refused(host):
    h = host
    h.box.run("sh", "-c", "printf '[daemon]\\nrun_dir = \"/tmp/other\"\\n[store]\\nurl = \"sqlite:////tmp/o.db\"\\n"
                          "[sagafs]\\nmount = \"\"\\n' > /tmp/other.toml")
    res = h.box.run("saga", "--config", "/tmp/other.toml", "daemon", check=False)
    pid = h.unit("MainPID")["MainPID"]
    assert res.returncode == 75, res.stderr
    assert f"a saga daemon (pid {pid}) owns the ebpf driver (/sys/fs/bpf/saga)" in res.stderr


def test_hardening_exposure(host):
    h = host
    out = h.box.run("systemd-analyze", "security", "saga", "--no-pager", check=False).stdout
    score = float(re.search(r"Overall exposure level for saga\.service: ([\d.]+)", out).group(1))
    assert score <= 6.0, out


def test_purge_leaves_nothing_attached_pinned_or_on_disk(host):
    h = host
    h.box.run("apt-get", "purge", "-y", "saga", env=APT)
    h.assert_detached(h.links)
    assert h.box.run("test", "-e", "/sys/fs/bpf/saga", check=False).returncode == 1
    assert h.unit("LoadState")["LoadState"] == "not-found"
    left = sorted(p for p in h.machine.files() - h.files_before if "saga" in p.lower())
    # (The chroot tests compare the whole tree; a booted system changes too much for that.)
    assert not left, "purge left behind:\n" + "\n".join(left[:50])


def test_a_container_that_may_not_use_bpf_is_told_why(base, built, release, tmp_path):
    """nspawn's defaults (no CAP_BPF, bpf() refused by its seccomp filter): the service fails once with
    exit 69 and one line naming the cause and the container's fix, and is not restarted."""
    machine = pkgroot.Machine(base)
    box = None
    try:
        deb = debs_in(built, release.suite, version(), ("saga",))["saga"]
        (machine.path("/root") / deb.name).write_bytes(deb.read_bytes())
        box = Booted(machine.root, tmp_path / "console.log", bpf=False)
        box.run("apt-get", "install", "-y", "--no-install-recommends", f"/root/{deb.name}", env=APT, check=False)
        time.sleep(8)                     # longer than RestartSec
        u = dict(line.split("=", 1) for line in box.run(
            "systemctl", "show", "saga", "--property=ActiveState", "--property=ExecMainStatus",
            "--property=NRestarts").stdout.splitlines())
        journal = box.run("journalctl", "-u", "saga", "--no-pager", check=False).stdout
        assert u == {"ActiveState": "failed", "ExecMainStatus": "69", "NRestarts": "0"}, (u, journal)
        errors = [ln for ln in journal.splitlines() if "]: saga: " in ln]     # what the daemon printed
        assert len(errors) == 1, journal
        assert "ebpf: a seccomp filter refuses the bpf() system call" in errors[0], errors[0]
        assert "--system-call-filter='bpf perf_event_open'" in errors[0], errors[0]
        # The module's side names the kernel's real limit, not a package to install.
        assert "kmod: this kernel cannot load modules" in errors[0] and "saga-dkms" not in errors[0], errors[0]
    finally:
        if box is not None:
            box.stop()
        machine.close()
