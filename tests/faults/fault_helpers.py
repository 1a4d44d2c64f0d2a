"""Helpers of the fault suite: `saga daemon` processes on the eBPF driver, the marker workload, the archive."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from waiting import wait_for

from saga.daemon.client import DaemonClient
from saga.events import ARG0
from saga.filters import EventFilter
from saga.store import Store, query

SAGA = str(Path(sys.executable).with_name("saga"))
BASE = 0x40000000                 # marker.c: marker i is close(BASE + i)
# The marker's task name is its file's name, one per test session: two fault suites running at
# once on one host (two engineers) would otherwise log and count each other's markers.
MARKER = f"sagamk{os.urandom(4).hex()}"
RULES = f"log close comm={MARKER} key=marker\ncount all\n"


class DaemonProc:
    """One `saga daemon` process with its own configuration in dir (archive url, spool, sagafs)."""

    def __init__(self, directory: Path, pin: str, url: str, *, store: str = "", daemon: str = "",
                 mount: str = "", group: str = "") -> None:
        self.dir = directory
        self.dir.mkdir(exist_ok=True)
        (self.dir / "marker.rules").write_text(RULES)
        self.url = url
        self.config = self.dir / "saga.toml"
        self.config.write_text(
            f'[daemon]\ndriver = "ebpf"\nrun_dir = "{self.dir}/run"\nspool_dir = "{self.dir}/spool"\n'
            f'warn_interval = 1.0\n{daemon}'
            f'[store]\nurl = "{url}"\nhost = "faulthost"\nretention_days = 0\nbounds_interval = 0.5\n{store}'
            f'[sagafs]\nmount = "{mount}"\ngroup = "{group}"\n'
            f'[rules]\ninitial_file = "{self.dir}/marker.rules"\n')
        self.env = {**os.environ, "SAGA_BPF_DIR": pin}
        self.client = DaemonClient(str(self.dir / "run" / "saga.sock"))
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []

    def start(self) -> DaemonProc:
        log = self.dir / f"daemon{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "w") as err:
            self.proc = subprocess.Popen([SAGA, "--config", str(self.config), "daemon"], env=self.env, stderr=err)
        wait_for(lambda: self.proc.poll() is not None or self._ready(), timeout=60, what="the daemon")
        assert self.proc.poll() is None, log.read_text()
        return self

    def _ready(self) -> bool:
        try:
            return self.client.status()["driver"]["rules"] == 2
        except Exception:   # noqa: BLE001 - not up yet
            return False

    def status(self) -> dict:
        return self.client.status()

    def log(self) -> str:
        return "".join(p.read_text() for p in self.logs)

    def caught_up(self) -> bool:
        """Everything in the ring drained, everything drained archived (or counted dropped)."""
        st = self.status()
        a = st["archive"]
        return (st["capture"]["events"] == st["capture"]["read"] and a["queued"] == 0 and a["in_flight"] == 0
                and a["submitted"] == st["drained"]["events"] + a["recovered"])

    def wait_caught_up(self, timeout: float = 120) -> dict:
        try:
            wait_for(self.caught_up, timeout=timeout, what="the daemon to archive what it drained", every=0.2)
        except AssertionError:
            raise AssertionError(f"the daemon did not catch up: {status_json(self)}\n{self.log()[-3000:]}") from None
        return self.status()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Daemons:
    def __init__(self, tmp: Path, pin: str) -> None:
        self.tmp = tmp
        self.pin = pin
        self.made: list[DaemonProc] = []

    def make(self, name: str, url: str, **kw) -> DaemonProc:
        d = DaemonProc(self.tmp / name, self.pin, url, **kw)
        self.made.append(d)
        return d

    def cleanup(self) -> None:
        for d in self.made:
            if d.alive:
                d.kill()


def markers(marker_bin: str, first: int, count: int, rate: int = 0) -> subprocess.Popen:
    """Start the marker workload: markers first .. first + count - 1 at rate calls/s (0: flat out)."""
    return subprocess.Popen([marker_bin, str(first), str(count), str(rate), MARKER], stdout=subprocess.PIPE, text=True)


def run_markers(marker_bin: str, first: int, count: int, rate: int = 0) -> None:
    p = markers(marker_bin, first, count, rate)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0 and int(out) == count


def archived_markers(url: str) -> Counter:
    """How many times each marker is in the archive at url."""
    with Store.open(url) as st, st.session() as s:
        return Counter(e.raw[ARG0] - BASE for e in query.search(s, EventFilter(comm=MARKER)))


def status_json(d: DaemonProc) -> str:
    return json.dumps(d.status(), indent=1)
