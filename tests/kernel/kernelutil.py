"""Helpers for tests/kernel: load/unload saga.ko, run the C workloads, read records."""
from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import time

from ruleids import numbered

from saga import _uapi, events
from saga.drivers.kmod import KmodDriver
from saga.rules import parse as rule
from saga.syscalls import BY_NAME

KO = os.environ.get("SAGA_KO", "")
BIN = os.environ.get("SAGA_BIN", "")
IN_VM = bool(KO)
CALLS = os.path.join(BIN, "calls")
NOBODY = 65534
# Upper bound (s) for what a Python process does under TCG: a start alone takes
# 30 s or more when the VMs share the host's CPUs (the daemon once needed over 60 s on -rt).
TCG_PATIENCE = 300

# Slots (native x86_64 numbers).
SLOT = {n: BY_NAME[n].slot for n in ("read", "close", "getppid", "openat", "exit_group", "clone", "nanosleep",
                                     "rt_sigreturn")}


class Module:
    def load(self, **params) -> None:
        args = [f"{k}={v}" for k, v in params.items()]
        subprocess.run(["insmod", KO, *args], check=True, capture_output=True, text=True)

    def unload(self) -> None:
        if os.path.isdir("/sys/module/saga"):
            for _ in range(50):  # a workload may still hold /dev/saga for a moment
                if subprocess.run(["rmmod", "saga"], capture_output=True).returncode == 0:
                    return
                time.sleep(0.1)
            raise RuntimeError("rmmod saga keeps failing")

    @staticmethod
    def driver() -> KmodDriver:
        return KmodDriver.open()


def calls(*args, user: int | None = None, check: bool = True) -> str:
    """Run the workload, return its stdout."""
    kw = {"user": user, "group": user} if user is not None else {}
    out = subprocess.run([CALLS, *map(str, args)], capture_output=True, text=True, check=check, **kw)
    return out.stdout


def spawn(*args) -> subprocess.Popen:
    return subprocess.Popen([CALLS, *map(str, args)], stdout=subprocess.DEVNULL)


def drain(drv: KmodDriver) -> list[events.Event]:
    """Every record buffered now."""
    out = []
    while True:
        buf = drv.read_raw(1 << 20, timeout=0)
        if not buf:
            return out
        out.extend(events.Event.from_raw(r) for r in events.parse(buf))


def slot_calls(drv: KmodDriver, name: str) -> tuple[int, int]:
    return drv.stats().per_slot.get(SLOT[name], (0, 0))


def only(drv: KmodDriver, *lines: str) -> None:
    """Install exactly these rules (grammar of docs/rules.md)."""
    drv.replace_rules(numbered([rule(line) for line in lines]))


def ioctl_errno(fd: int, request: int, arg=0) -> int:
    """0 or the errno an ioctl failed with."""
    try:
        fcntl.ioctl(fd, request, arg, True) if isinstance(arg, bytearray) else fcntl.ioctl(fd, request, arg)
        return 0
    except OSError as exc:
        return exc.errno


def as_user(uid: int, fn) -> object:
    """Run fn() in a child that dropped to uid (keeping open fds); return its result."""
    import pickle
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            data = pickle.dumps(fn())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            data = pickle.dumps(exc)
        os.write(w, data)
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    result = pickle.loads(b"".join(chunks))
    if isinstance(result, BaseException):
        raise result
    return result


def proc(name: str) -> str:
    with open(f"/proc/saga/{name}") as f:
        return f.read()


def status() -> dict[str, str]:
    return dict(line.split(": ", 1) for line in proc("status").splitlines())


def param(name: str) -> str:
    with open(f"/sys/module/saga/parameters/{name}") as f:
        return f.read().strip()


__all__ = ["KO", "BIN", "IN_VM", "CALLS", "NOBODY", "SLOT", "Module", "calls", "spawn", "drain", "slot_calls",
           "only", "ioctl_errno", "as_user", "proc", "status", "param", "rule", "errno", "_uapi"]
