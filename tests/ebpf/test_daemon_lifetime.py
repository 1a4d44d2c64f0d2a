"""The daemon owns the eBPF driver: loads it at start, unloads it at stop, one daemon per driver.

Daemons run as `saga daemon` processes with their pins in the session's
private bpffs (SAGA_BPF_DIR), without sagafs; `saga driver ...` runs as the
administrator would.  What is attached is checked by link id with bpftool
(the host may run other saga instances: tests never look at names alone).
"""
from __future__ import annotations

import json
import mmap
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import wait_for

import saga
from saga.drivers.ebpf import layout as L
from saga.drivers.ebpf import libbpf

SAGA = str(Path(sys.executable).with_name("saga"))


class Daemon:
    """A `saga daemon` process with a configuration of its own (run dir, database) in tmp."""

    def __init__(self, tmp: Path, name: str, pin_dir: str, *, keep: bool = False):
        self.dir = tmp / name
        self.dir.mkdir()
        self.config = self.dir / "saga.toml"
        self.config.write_text(f'[daemon]\nrun_dir = "{self.dir}/run"\narchive = false\n'
                               f'keep_capturing = {"true" if keep else "false"}\n'
                               f'[store]\nurl = "sqlite:///{self.dir}/saga.db"\n[sagafs]\nmount = ""\n')
        self.env = {**os.environ, "SAGA_BPF_DIR": pin_dir}
        self.proc: subprocess.Popen | None = None

    def saga(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SAGA, "--config", str(self.config), *args], env=self.env, capture_output=True,
                              text=True, timeout=120)

    def start(self) -> Daemon:
        self.proc = subprocess.Popen([SAGA, "--config", str(self.config), "daemon", "--driver", "ebpf"],
                                     env=self.env, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: self.proc.poll() is not None or self._running(), timeout=60, what="the daemon")
        assert self.proc.poll() is None, self.proc.stderr.read()
        return self

    def _running(self) -> bool:
        res = self.saga("status", "--json")
        return res.returncode == 0 and json.loads(res.stdout)["daemon"]["running"]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        return err


@pytest.fixture
def pin_dir(bpffs, request):
    path = os.path.join(bpffs, request.node.name[:40])
    yield path
    if os.path.isdir(path):   # a failed test: leave nothing loaded
        subprocess.run([SAGA, "driver", "unload", "--driver", "ebpf"], env={**os.environ, "SAGA_BPF_DIR": path},
                       capture_output=True)


def links_of(directory: str) -> set[int]:
    """Ids of the links pinned in the driver's directory."""
    out = set()
    for name in os.listdir(directory):
        if name.startswith("link_"):
            info = subprocess.run(["bpftool", "-j", "link", "show", "pinned", os.path.join(directory, name)],
                                  check=True, capture_output=True, text=True).stdout
            out.add(json.loads(info)["id"])
    return out


def attached_links() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "link", "show"], check=True, capture_output=True, text=True).stdout
    return {link["id"] for link in json.loads(out)}


def test_stop_leaves_nothing_attached_or_pinned(tmp_path, pin_dir):
    d = Daemon(tmp_path, "a", pin_dir).start()
    links = links_of(pin_dir)
    assert len(links) >= 3 and links <= attached_links()
    status = d.saga("driver", "status", "--json")
    assert status.returncode == 0, status.stderr
    [view] = json.loads(status.stdout)
    assert view["driver"] == "ebpf" and view["version"] == saga.__version__ and view["where"] == pin_dir
    assert view["owned"] and view["daemon_pid"] == d.proc.pid
    err = d.stop()
    assert "unloaded the ebpf driver" in err
    assert not os.path.exists(pin_dir)
    wait_for(lambda: not links & attached_links(), timeout=10, what="the links to go")
    res = d.saga("driver", "status")
    assert res.returncode == 69 and res.stdout.strip() == "no saga driver is loaded"


def test_a_second_daemon_on_the_same_driver_is_refused(tmp_path, pin_dir):
    first = Daemon(tmp_path, "first", pin_dir).start()
    try:
        other = Daemon(tmp_path, "other", pin_dir)   # another run dir and database: only the driver is shared
        res = subprocess.run([SAGA, "--config", str(other.config), "daemon", "--driver", "ebpf"], env=other.env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 75, res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("saga: ")]    # (its log aside)
        assert errors == [f"saga: a saga daemon (pid {first.proc.pid}) owns the ebpf driver ({pin_dir}): "
                          f"one daemon per driver; stop that one first (systemctl stop saga, or make down)"], res.stderr
        # Unloading from under it is refused the same way; the first daemon still runs and owns it.
        res = first.saga("driver", "unload")
        assert res.returncode == 75 and f"(pid {first.proc.pid}) owns the ebpf driver" in res.stderr
        assert first.proc.poll() is None and os.path.isdir(pin_dir)
    finally:
        first.stop()
    assert not os.path.exists(pin_dir)


def test_keep_capturing_leaves_it_loaded_and_status_says_so(tmp_path, pin_dir):
    d = Daemon(tmp_path, "keep", pin_dir, keep=True).start()
    links = links_of(pin_dir)
    err = d.stop()
    assert "keeps capturing without the daemon (daemon.keep_capturing)" in err
    assert links_of(pin_dir) == links and links <= attached_links()
    res = d.saga("status")
    assert "daemon:   not running; the driver captures on its own (daemon.keep_capturing)" in res.stdout
    # A new daemon takes over the same driver (same version), and a stop without keep removes it.
    d2 = Daemon(tmp_path, "next", pin_dir).start()
    assert links_of(pin_dir) == links
    d2.stop()
    assert not os.path.exists(pin_dir)


def _set_version(directory: str, version: str) -> None:
    """Make the loaded driver say it is another saga version (what an upgrade leaves loaded)."""
    fd = libbpf.obj_get(os.path.join(directory, L.PIN_CONFIG))
    try:
        with mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            # The probes never read the version: a plain byte copy is fine here.
            m[L.CFG_VERSION:L.CFG_VERSION + L.VERSION_LEN] = version.encode().ljust(L.VERSION_LEN, b"\0")
    finally:
        os.close(fd)


def test_a_driver_of_another_version_is_replaced_at_start(tmp_path, pin_dir):
    admin = Daemon(tmp_path, "admin", pin_dir)
    res = admin.saga("driver", "load", "--driver", "ebpf")
    assert res.returncode == 0, res.stderr
    _set_version(pin_dir, "0.0.1")
    old_links = links_of(pin_dir)
    res = admin.saga("driver", "status")
    assert res.stdout.startswith(f"ebpf 0.0.1 at {pin_dir}\n  no daemon: capturing on its own"), res.stdout
    assert f"this saga {saga.__version__}: the daemon replaces it" in res.stderr
    d = Daemon(tmp_path, "new", pin_dir).start()
    [view] = json.loads(d.saga("driver", "status", "--json").stdout)
    assert view["version"] == saga.__version__
    assert not old_links & links_of(pin_dir)
    wait_for(lambda: not old_links & attached_links(), timeout=10, what="the old links to go")
    err = d.stop()
    assert f"replacing the eBPF driver 0.0.1 with {saga.__version__}" in err


def test_driver_load_and_unload_by_hand(tmp_path, pin_dir):
    admin = Daemon(tmp_path, "admin", pin_dir)
    res = admin.saga("driver", "load", "--driver", "ebpf")
    assert res.returncode == 0 and res.stdout.strip() == f"the ebpf driver {saga.__version__} is loaded at {pin_dir}"
    links = links_of(pin_dir)
    assert admin.saga("driver", "load", "--driver", "ebpf").returncode == 0
    assert links_of(pin_dir) == links           # loaded already: left as it is
    res = admin.saga("driver", "unload")
    assert res.returncode == 0 and res.stdout.strip() == "unloaded the ebpf driver"
    assert not os.path.exists(pin_dir)
    wait_for(lambda: not links & attached_links(), timeout=10, what="the links to go")
    res = admin.saga("driver", "unload")
    assert res.returncode == 0 and res.stdout.strip() == "no saga driver was loaded"
