"""A user's saga command server (saga.cli.server) in a private runtime directory, for tests and benchmarks:
the environment of commands that use it, its start (by a first command, as a user's starts) and its stop."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from waiting import wait_for

from saga.cli import client

SAGA = str(Path(sys.executable).with_name("saga"))
WAIT = 120.0            # the longest a wait may take on a loaded machine before it fails


def wait_exit(pid: int, timeout: float = WAIT) -> None:
    """Wait until process `pid` (not a child of this one) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise AssertionError(f"process {pid} still runs after {timeout:g} s")
    finally:
        os.close(fd)


def served_count(log: str) -> int:
    """How many commands the servers of a log ran (each says so when it stops)."""
    return sum(int(line.split("stopped after ")[1].split()[0]) for line in log.splitlines() if "stopped after" in line)


class CommandServer:
    """$XDG_RUNTIME_DIR is root/run (made 0700); env: the environment of commands that use its server."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, **extra: str) -> None:
        self.run = root / "run"
        self.run.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.run, 0o700)
        self.dir = self.run / "saga"
        self.env = {k: v for k, v in (os.environ if env is None else env).items() if k != "SAGA_NO_SERVER"}
        self.env.update({"XDG_RUNTIME_DIR": str(self.run), "SAGA_SERVER_IDLE": "3600", **extra})

    def saga(self, *args: str, served: bool = True, **kw) -> subprocess.CompletedProcess:
        env = dict(self.env) if served else {**self.env, "SAGA_NO_SERVER": "1"}
        env.update(kw.pop("env", {}))
        return subprocess.run([SAGA, *args], capture_output=True, env=env, **kw)

    def log(self) -> str:
        try:
            return (self.dir / client.LOG).read_text()
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        log = self.log()
        return log.count("serving on") > log.count("stopped")

    def pid(self) -> int:
        return int((self.dir / client.LOCK).read_text())

    def start(self) -> int:
        """Start the server as a first command does (that command runs in its own process), wait for it to
        listen; its pid."""
        before = self.log().count("serving on")
        assert self.saga("--version").returncode == 0
        wait_for(lambda: self.log().count("serving on") > before or "Traceback" in self.log(), WAIT,
                 "the command server to listen")
        assert "Traceback" not in self.log(), self.log()
        return self.pid()

    def cpu(self) -> float:
        """CPU seconds the server itself has used (clock ticks: accepting, checking, forking)."""
        fields = Path(f"/proc/{self.pid()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CommandServer:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def stop(self) -> str:
        """SIGTERM the server if it runs, wait for it to end; the log."""
        if self.running():
            pid = self.pid()
            os.kill(pid, signal.SIGTERM)
            wait_exit(pid)
        return self.log()
