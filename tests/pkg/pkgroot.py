"""A clean Debian 12 machine in a directory, for installing saga's packages.

The base root (debootstrap, then a kernel with its headers, DKMS and what
the packages depend on) is built once and cached under SAGA_TEST_CACHE
(default /var/cache/saga-test), keyed by everything that goes into it: the
package lists, this host's apt sources and this recipe.  Each test session
works on an overlay of it (the cache is never modified) that it throws away.
Commands run in it with chroot, with /proc, /sys and /dev mounted for the
duration of each command only, so nothing stays mounted between them.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SAGA_TEST_CACHE", "/var/cache/saga-test"))
SUITE = "bookworm"
RECIPE = 2  # bump when the way the base is made changes

# The kernel the packages are tested against (its headers for DKMS, its image
# to boot the machine), DKMS, and what saga's packages depend on: the base has
# it all, so a session installs only saga's own packages.
BASE_PACKAGES = [
    "linux-image-amd64", "linux-headers-amd64", "dkms", "systemd", "systemd-sysv", "udev", "kmod",
    "python3.11", "fuse3", "libfuse3-3", "libbpf1", "zlib1g", "procps", "man-db", "ca-certificates",
]
# A second kernel's headers, downloaded into the base (not installed): a test
# installs them later to see DKMS build saga.ko for a kernel that came after.
LATER_HEADERS = "linux-headers-6.12-amd64"

# Paths whose contents change by merely running apt and dpkg, or are not files.
VOLATILE = ("proc", "sys", "dev", "run", "tmp", "var/cache/apt", "var/cache/debconf", "var/cache/man",
            "var/lib/apt", "var/log", "var/lib/dpkg/triggers", "var/lib/dpkg/lock", "var/lib/dpkg/lock-frontend",
            "var/lib/dpkg/status-old", "var/lib/dpkg/available", "var/lib/dpkg/diversions-old",
            "var/lib/dpkg/statoverride-old", "var/lib/dpkg/updates", "root/saga-test")


def version() -> str:
    """saga's version, the one source: src/saga/__init__.py."""
    for line in (REPO / "src/saga/__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split('"')[1]
    raise AssertionError("no __version__ in src/saga/__init__.py")


class SetupError(RuntimeError):
    """The test machine could not be made (not a failure of saga's packages)."""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def host_apt_sources() -> dict[str, bytes]:
    """This host's enabled apt sources and Acquire settings, to give the machine the same archive."""
    files = {}
    for path in sorted(glob.glob("/etc/apt/sources.list") + glob.glob("/etc/apt/sources.list.d/*.list")
                       + glob.glob("/etc/apt/sources.list.d/*.sources")):
        files[path] = Path(path).read_bytes()
    for path in sorted(glob.glob("/etc/apt/apt.conf.d/*")):
        data = Path(path).read_bytes()
        if b"Acquire::" in data:
            files[path] = data
    if not any(p.startswith("/etc/apt/sources.list") for p in files):
        raise SetupError("this host has no apt sources to build the test machine from")
    return files


def debian_mirror(sources: dict[str, bytes]) -> str:
    """The first archive URI that serves the suite's main component."""
    for path, data in sources.items():
        text = data.decode(errors="replace")
        if path.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith("#"):
                        k, v = line.split(":", 1)
                        fields[k.strip()] = v.split()
                if SUITE in fields.get("Suites", []) and "deb" in fields.get("Types", []):
                    return fields["URIs"][0]
        elif path.startswith("/etc/apt/sources.list"):
            for line in text.splitlines():
                words = line.split()
                if len(words) >= 3 and words[0] == "deb" and SUITE in words:
                    uri = [w for w in words[1:] if not w.startswith("[")][0]
                    return uri
    raise SetupError(f"no apt source for {SUITE} on this host")


def base_key(sources: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    h.update(repr((RECIPE, SUITE, BASE_PACKAGES, LATER_HEADERS)).encode())
    for path, data in sources.items():
        h.update(path.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:16]


def base_root(log=print) -> Path:
    """The cached base root, built first if needed (a few minutes, once)."""
    sources = host_apt_sources()
    root = CACHE / f"bookworm-{base_key(sources)}"
    if (root / ".saga-test-complete").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="building-", dir=CACHE))
    log(f"pkgroot: building the Debian 12 test machine in {root} (once; a few minutes)")
    try:
        _build(tmp, sources)
        (tmp / ".saga-test-complete").touch()
        for old in CACHE.glob("bookworm-*"):      # roots of other keys are stale
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(root)
    except BaseException:
        _umount_all(tmp)
        if not _mounted_below(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _build(root: Path, sources: dict[str, bytes]) -> None:
    try:
        run(["debootstrap", "--variant=minbase", SUITE, str(root), debian_mirror(sources)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except subprocess.CalledProcessError as exc:
        raise SetupError(f"debootstrap failed: {exc.stderr.decode(errors='replace')[-2000:]}") from None
    for path in glob.glob(str(root / "etc/apt/sources.list.d/*")) + [str(root / "etc/apt/sources.list")]:
        if os.path.exists(path):
            os.unlink(path)
    for path, data in sources.items():
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    # Services must not start in a chroot; the test machine has no init running.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *BASE_PACKAGES],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "--download-only", LATER_HEADERS]):
        res = chroot(root, cmd, env=env, check=False, capture=True)
        if res.returncode != 0:
            raise SetupError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout[-3000:]}")
    (root / "etc/hostname").write_text("saga-test\n")


def chroot(root: Path, cmd: list[str], *, env: dict | None = None, check: bool = True,
           capture: bool = False, timeout: float | None = 1800) -> subprocess.CompletedProcess:
    """Run cmd in root with /proc, /sys and /dev mounted for its duration."""
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    full_env.update(env or {})
    mounts = [("proc", "proc", ["-t", "proc", "proc"]), ("sys", "sys", ["-t", "sysfs", "sysfs"]),
              ("dev", "dev", ["--bind", "/dev"]), ("dev/pts", "dev/pts", ["--bind", "/dev/pts"])]
    done = []
    try:
        for _, rel, args in mounts:
            run(["mount", *args, str(root / rel)])
            done.append(root / rel)
        return subprocess.run(["chroot", str(root), *cmd], env=full_env, check=check, timeout=timeout,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.STDOUT if capture else None, text=True)
    finally:
        for path in reversed(done):
            subprocess.run(["umount", "-l", str(path)], check=False)


def _mounted_below(root: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p == str(root) or p.startswith(str(root) + "/")]


def _umount_all(root: Path) -> None:
    """Unmount anything left mounted under root (after an interrupted command)."""
    for point in sorted((p for p in _mounted_below(root) if p != str(root)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


class Machine:
    """A throwaway overlay of the base root."""

    def __init__(self, base: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="saga-pkgtest-"))
        self.root = self.dir / "root"
        for d in ("upper", "work", "root"):
            (self.dir / d).mkdir()
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={base},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}", str(self.root)])

    def run(self, *cmd: str, check: bool = True, env: dict | None = None,
            timeout: float | None = 1800) -> subprocess.CompletedProcess:
        """Run in the machine; stdout and stderr together in .stdout."""
        res = chroot(self.root, list(cmd), env=env, check=False, capture=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout[-4000:]}")
        return res

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return self.run("sh", "-ec", script, **kw)

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def files(self) -> set[str]:
        """Every path in the machine but the volatile ones (directories end with /)."""
        out = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel
            dirnames[:] = [d for d in dirnames if os.path.join(rel, d) not in VOLATILE]
            for d in dirnames:
                full = os.path.join(rel, d)
                out.add("/" + full + ("/" if not os.path.islink(os.path.join(dirpath, d)) else ""))
            for name in filenames:
                full = os.path.join(rel, name)
                if full not in VOLATILE:
                    out.add("/" + full)
        return out

    def kernels_with_headers(self) -> list[str]:
        """Releases whose /lib/modules/R/build has headers (the links resolve inside the machine)."""
        return self.run("sh", "-c", "for b in /lib/modules/*/build; do [ -d $b/include ] && "
                        "basename ${b%/build}; done; true").stdout.split()

    def default_kernel(self) -> str:
        """The release linux-image-amd64 points at (the kernel the base was made with)."""
        dep = self.run("dpkg-query", "-W", "-f", "${Depends}", "linux-image-amd64").stdout.split()[0]
        return dep.removeprefix("linux-image-").rstrip(",")

    def close(self) -> None:
        _umount_all(self.root)
        subprocess.run(["umount", "-l", str(self.root)], check=False)
        # Never delete through a mount (a bind of /dev would take the host's with it).
        if _mounted_below(self.dir):
            raise SetupError(f"{self.dir} still has mounts below it: left in place")
        shutil.rmtree(self.dir, ignore_errors=True)
