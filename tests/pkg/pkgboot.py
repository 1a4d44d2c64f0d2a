"""Boot a test machine with systemd as PID 1 (systemd-nspawn --boot) and run commands in it.

The container shares this host's kernel (so saga runs its eBPF driver
there: the module side is the VM's, pkgvm.py) and gets what the driver
needs: CAP_BPF and CAP_PERFMON, the bpf() and perf_event_open() calls, and
/dev/fuse for /sagafs.  This host's PID 1 is not systemd, hence
--register=no --keep-unit (no machined, no scope unit).  Commands run in
the container's namespaces with nsenter, as root, the way an administrator
on its console would run them; `systemctl` talks to its systemd.  The
console goes to a log file that failures show.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

BASE_FLAGS = ["--register=no", "--keep-unit", "--bind=/dev/fuse", "--console=pipe"]
# What the eBPF driver needs from a container.
BPF_FLAGS = ["--capability=CAP_BPF,CAP_PERFMON", "--system-call-filter=bpf perf_event_open"]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BootError(AssertionError):
    pass


class Booted:
    """A machine directory booted with systemd-nspawn; stop() powers it off.  bpf=False: a container
    that may not use BPF (nspawn's defaults)."""

    def __init__(self, root: Path, log: Path, timeout: float = 180, bpf: bool = True):
        self.root = root
        self.log = log
        # Services start as on any system (the chroot base forbids it with policy-rc.d).
        (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
        self.name = f"saga-test-{uuid.uuid4().hex[:8]}"
        self._log = open(log, "w")
        cmd = ["systemd-nspawn", "--boot", f"--directory={root}", f"--machine={self.name}", *BASE_FLAGS,
               *(BPF_FLAGS if bpf else [])]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self.pid = self._find_init(timeout)
            self.state = self._booted(timeout)
        except BaseException:
            self.stop()
            raise

    def _find_init(self, timeout: float) -> int:
        """The container's PID 1: nspawn's descendant that is pid 1 in its own pid namespace."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BootError(f"systemd-nspawn exited {self.proc.returncode}\n{self.console()}")
            for pid in _descendants(self.proc.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                nspid = next((ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), [])
                name = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("Name:")), "")
                if len(nspid) >= 2 and nspid[-1] == "1" and name == "systemd":    # exec'd by nspawn's child
                    return pid
            time.sleep(0.1)
        raise BootError(f"no init in the container after {timeout} s\n{self.console()}")

    def _booted(self, timeout: float) -> str:
        """Wait for the boot to finish: running, or degraded (some unit failed; the tests say which)."""
        deadline = time.monotonic() + timeout
        res = None
        while time.monotonic() < deadline:
            # Fails at once until systemd listens on its private socket.
            res = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
            state = res.stdout.strip()
            if state in ("running", "degraded"):
                return state
            # "offline" until systemd has set itself up (/run/systemd/system).
            if state and state not in ("initializing", "starting", "offline"):
                break
            time.sleep(0.5)
        raise BootError(f"the container did not boot: {res.stdout if res else ''}{res.stderr if res else ''}\n"
                        f"{self.console()}")

    def run(self, *cmd: str, check: bool = True, timeout: float = 600, env: dict | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run cmd in the container (all its namespaces, its root); stdout and stderr apart."""
        full = ["nsenter", f"--target={self.pid}", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
                "--root", "--wd", "--", "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "HOME=/root",
                "PYTHONDONTWRITEBYTECODE=1", "SAGA_NO_SERVER=1", *(f"{k}={v}" for k, v in (env or {}).items()), *cmd]
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        return res

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return self.run("sh", "-ec", script, **kw)

    def host_path(self, rel: str) -> str:
        """A path in the container as this host can open it (its mounts included)."""
        return f"/proc/{self.pid}/root/{rel.lstrip('/')}"

    def console(self) -> str:
        self._log.flush()
        try:
            return "--- console (last 60 lines)\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])
        except OSError:
            return ""

    def stop(self, timeout: float = 120) -> int | None:
        """Power off (nspawn turns SIGTERM into an orderly shutdown of the container); kill if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        kids = [int(c) for c in children]
        out += kids
        todo += kids
    return out
