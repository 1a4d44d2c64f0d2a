"""Which service or container a call came from: cgroup v2 ids resolved to systemd units and container ids.

A record carries the id of its task's cgroup in the cgroup v2 hierarchy
(docs/kernel-abi.md): the inode number of the cgroup's directory.  The
resolver turns an id into the directory's path, by the pid that made the
call (`/proc/PID/cgroup`, checked against the id) or else by listing the
hierarchy (the directory entries carry the inode numbers, so no stat per
cgroup; at most one walk a second), and remembers it; an id it cannot
find is looked for again only after `rescan_s` seconds.  `parse()` reads the path the way systemd and the
container runtimes lay it out:

    /system.slice/nginx.service                                   unit nginx.service
    /user.slice/user-1000.slice/user@1000.service/app.slice/x.service   unit x.service
    /system.slice/docker-<64 hex>.scope                           docker container (systemd driver)
    /docker/<64 hex>                                              docker container (cgroupfs driver)
    /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
    /kubepods/besteffort/pod<uid>/<id>                            kubernetes pod and container
    /machine.slice/libpod-<id>.scope[/container]                  podman
    .../crio-<id>.scope, .../<parent>:cri-containerd:<id>, /default/<id> (containerd's ctr)
    /lxc.payload.<name>, /machine.slice/machine-<name>.scope      lxc, systemd-nspawn machines

Used by the daemon's process cache (saga.daemon.enrich): the log line's
`unit=`/`container=`, the JSON fields, /sagafs/procs/PID/stats and the
unit stored with each archived event.
"""
from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_HEX64 = r"[0-9a-f]{64}"
_UNIT = re.compile(r".+\.(service|scope|socket|mount|swap)$")
_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"   # systemd writes _ for -
_POD = re.compile(rf"(?:^|-)pod({_UUID})(?=\.slice|:|$)")
# (runtime, pattern of one path component): the container's id (or name) is the pattern's last group.
_CONTAINERS = (
    ("docker", re.compile(rf"^docker-({_HEX64})\.scope$")),
    ("containerd", re.compile(rf"^cri-containerd-({_HEX64})\.scope$")),
    ("containerd", re.compile(rf"^.*:cri-containerd:({_HEX64})$")),
    ("cri-o", re.compile(rf"^crio-({_HEX64})(?:\.scope)?$")),
    ("podman", re.compile(rf"^libpod-(?:payload-)?({_HEX64})(?:\.scope)?$")),
    ("lxc", re.compile(r"^lxc\.payload\.(.+)$")),
    ("nspawn", re.compile(r"^machine-(.+)\.scope$")),
    ("nspawn", re.compile(r"^systemd-nspawn@(.+)\.service$")),
)
_BARE_ID = re.compile(rf"^{_HEX64}$")


@dataclass(frozen=True)
class Context:
    """What a cgroup path says about the processes in it."""

    path: str                    # in the cgroup v2 hierarchy: "/system.slice/nginx.service"
    unit: str | None = None      # the innermost systemd unit: "nginx.service"
    container: str | None = None  # the container's id (64 hex) or, for lxc and nspawn, its name
    runtime: str | None = None   # docker, containerd, cri-o, podman, kubernetes, lxc, nspawn
    pod: str | None = None       # the kubernetes pod's uid

    @property
    def name(self) -> str | None:
        """The one name saga stores and searches (`--unit`): the unit, else `runtime:container`."""
        if self.unit is not None:
            return self.unit
        if self.container is not None:
            return f"{self.runtime}:{self.container}"
        return None

    @property
    def token(self) -> str:
        """The log line's words for it: `unit=nginx.service`, `container=3f2a1b2c3d4e` (docker's short id)."""
        words = []
        if self.unit is not None:
            words.append(f"unit={self.unit}")
        if self.container is not None:
            short = self.container[:12] if _BARE_ID.match(self.container) else self.container
            words.append(f"container={short}")
        return " ".join(words)

    def to_json(self) -> dict:
        return {"cgroup": self.path, "unit": self.unit, "container": self.container, "runtime": self.runtime,
                "pod": self.pod}


def _unescape(name: str) -> str:
    r"""systemd's escaping of unit name parts (`\x2d` for a dash in a machine name)."""
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), name)


def parse(path: str) -> Context:
    """The unit, container and pod a cgroup path names (see the module's docstring)."""
    parts = [p for p in path.split("/") if p]
    unit = container = runtime = pod = None
    for i, part in enumerate(parts):
        if _UNIT.match(part):
            unit = part
        m = _POD.search(part)
        if m:
            pod = m.group(1).replace("_", "-")
        for rt, pattern in _CONTAINERS:
            m = pattern.match(part)
            if m:
                runtime, container = rt, m.group(m.lastindex or 0)
                if rt == "nspawn":
                    container = _unescape(container)
                break
        else:
            if _BARE_ID.match(part) and i > 0:   # cgroupfs drivers: the id under its runtime's directory
                parent = parts[i - 1]
                runtime = ("docker" if parent == "docker" else "kubernetes" if pod is not None
                           else "containerd")
                container = part
        if part == "lxc" and i + 1 < len(parts) and runtime is None:   # LXC before 4.0: /lxc/<name>
            runtime, container = "lxc", parts[i + 1]
    return Context("/" + "/".join(parts), unit, container, runtime, pod)


def cgroup2_root(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on hybrid systems)."""
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if fields[sep + 1] == "cgroup2":
                    return fields[4].replace("\\040", " ")
    except (OSError, ValueError, IndexError):
        return None
    return None


def pid_cgroup(pid: int, proc: str = "/proc") -> str | None:
    """The cgroup v2 path of a process (the `0::` line of /proc/PID/cgroup), or None."""
    try:
        with open(f"{proc}/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].rstrip("\n")
    except OSError:
        return None
    return None


class CgroupResolver:
    """cgroup id -> Context, cached; thread-safe (the archiver thread and sagafs's threads both ask)."""

    def __init__(self, root: str | None = None, *, proc: str = "/proc", rescan_s: float = 5.0,
                 scan_gap_s: float = 1.0, max_entries: int = 65536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root if root is not None else cgroup2_root()
        self.proc = proc
        self.rescan_s = rescan_s      # an id not found is looked for again after this long
        self.scan_gap_s = scan_gap_s  # at most one walk of the hierarchy this often
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[int, Context] = {}
        self._missing: dict[int, float] = {}   # ids not found, and when they were last looked for
        self._last_scan = float("-inf")
        self.scans = 0                          # walks of the hierarchy, for tests and status

    def cached(self, cgroup_id: int) -> Context | None:
        """The context of an id already resolved; never reads the file system (safe on the event loop)."""
        return self._known.get(cgroup_id)

    def resolve(self, cgroup_id: int, pid: int | None = None) -> Context | None:
        """The context of an id: from the cache, else by pid, else by listing the hierarchy (rate-limited)."""
        ctx = self._known.get(cgroup_id)
        if ctx is not None or not cgroup_id or self.root is None:
            return ctx
        if pid is not None:
            path = pid_cgroup(pid, self.proc)
            if path is not None and self._inode(path) == cgroup_id:
                return self._remember(cgroup_id, path)
        now = self._clock()
        if now - self._missing.get(cgroup_id, float("-inf")) < self.rescan_s:
            return None
        if now - self._last_scan >= self.scan_gap_s:
            self._scan(now)
            ctx = self._known.get(cgroup_id)
            if ctx is not None:
                return ctx
        with self._lock:
            self._missing[cgroup_id] = now
        return None

    def of_pid(self, pid: int) -> tuple[int, Context] | None:
        """(cgroup id, context) of a live process, for records that carry no cgroup id."""
        if self.root is None:
            return None
        path = pid_cgroup(pid, self.proc)
        if path is None:
            return None
        ino = self._inode(path)
        if ino is None:
            return None
        return ino, self._remember(ino, path)

    def _inode(self, path: str) -> int | None:
        if self.root is None:
            return None
        try:
            return os.stat(self.root + path.rstrip("/") if path != "/" else self.root).st_ino
        except OSError:
            return None

    def _remember(self, cgroup_id: int, path: str) -> Context:
        ctx = parse(path)
        with self._lock:
            if len(self._known) >= self.max_entries:
                self._known.clear()   # cgroups come and go; the live ones are found again
            self._known[cgroup_id] = ctx
            self._missing.pop(cgroup_id, None)
        return ctx

    def _scan(self, now: float) -> None:
        """Every cgroup directory's inode number and path, from one walk of the hierarchy."""
        assert self.root is not None
        self._last_scan = now
        self.scans += 1
        found: dict[int, str] = {}
        try:
            found[os.stat(self.root).st_ino] = "/"
        except OSError:
            return
        stack = [(self.root, "")]
        while stack:
            directory, rel = stack.pop()
            try:
                with os.scandir(directory) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            found[entry.inode()] = f"{rel}/{entry.name}"
                            stack.append((entry.path, f"{rel}/{entry.name}"))
            except OSError:   # a cgroup removed while we walk
                continue
        for ino, path in found.items():
            if ino not in self._known:
                self._remember(ino, path)
