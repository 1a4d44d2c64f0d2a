"""Helpers for the sagafs tests (imported by conftest and the tests)."""
from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from waiting import wait_for

from saga import render
from saga.config import Config, DaemonConfig, RulesConfig, SagafsConfig, StoreConfig
from saga.daemon.service import Daemon, Options
from saga.drivers.replay import ReplayDriver
from saga.sagafs.mount import detach, mount_type


def lines_of(raws) -> list[str]:
    return [render.line(r) for r in raws]


def text_of(raws) -> bytes:
    return "".join(line + "\n" for line in lines_of(raws)).encode()


class Mounted:
    """`saga daemon` in a thread of this process, on a replay driver, serving sagafs at root/mnt."""

    def __init__(self, root: Path, recording: bytes = b"", *, group: str = "", archive: bool = False,
                 max_opens_per_user: int = 16, **daemon) -> None:
        root.mkdir(mode=0o755)
        self.root = root
        self.mnt = root / "mnt"                  # not there yet: the daemon creates it
        self.driver = ReplayDriver(recording)
        self.config = Config(daemon=DaemonConfig(run_dir=str(root / "run"), archive=archive, **daemon),
                             store=StoreConfig(url=f"sqlite:///{root}/saga.db", host="testhost", retention_days=0,
                                               max_size="0", space_left="0", admin_space_left="0"),
                             sagafs=SagafsConfig(mount=str(self.mnt), group=group,
                                                 max_opens_per_user=max_opens_per_user),
                             rules=RulesConfig(initial_file=""))
        self.daemon = Daemon(self.config, Options(reload_config=False), driver=self.driver)
        self.status: list[int] = []
        self.thread = threading.Thread(target=lambda: self.status.append(self.daemon.run(signals=False)))
        self.thread.start()
        if not self.daemon.ready.wait(30):
            raise AssertionError("the daemon did not start")
        self.state = self.daemon.state

    def path(self, *parts: str) -> str:
        return str(self.mnt.joinpath(*parts))

    def read(self, *parts: str) -> bytes:
        with open(self.path(*parts), "rb") as f:
            return f.read()

    def text(self, *parts: str) -> str:
        return self.read(*parts).decode()

    def drained(self) -> int:
        return self.state.counters.drained_events

    def wait_drained(self, n: int) -> None:
        wait_for(lambda: self.drained() >= n, what=f"{n} events drained")
        assert self.drained() == n

    def stop(self) -> int:
        if self.thread.is_alive():
            self.daemon.stop()
            self.thread.join(60)
            assert not self.thread.is_alive(), "the daemon did not stop"
        self.driver.close()
        return self.status[0] if self.status else -1

    @property
    def mounted(self) -> bool:
        return mount_type(str(self.mnt)) == "fuse.sagafs"


def read_available(fd: int, timeout: float = 10.0) -> bytes:
    """What one read returns once poll says the fd is readable (fails instead of hanging)."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    if not p.poll(timeout * 1000):
        raise AssertionError("nothing to read")
    return os.read(fd, 1 << 20)


def read_lines(fd: int, n: int, timeout: float = 20.0) -> list[str]:
    """Exactly n lines from a pipe fd (poll before each read: a broken pipe fails the test, never hangs)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(buf.splitlines())} of {n} lines")
        buf += read_available(fd, left)
    lines = buf.decode().splitlines()
    assert len(lines) == n, f"more than {n} lines: {lines[n:n + 3]}"
    return lines


def blocked_in_read(pid: int) -> bool:
    """Is the process inside read(2) now (/proc/PID/syscall starts with the syscall number, 0)?"""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split(" ", 1)[0] == "0"
    except OSError:
        return False


def detach_mounts_under(root: str) -> None:
    """Lazily unmount everything mounted below root (deepest first)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(root.rstrip("/") + "/")), key=len, reverse=True):
        try:
            detach(point)
        except Exception:   # noqa: BLE001 - best effort: already gone
            pass
