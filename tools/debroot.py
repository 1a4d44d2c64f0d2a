#!/usr/bin/env python3
"""Debian roots made with debootstrap, cached: the machines tests/pkg installs saga's packages on
(Debian 12 and 13), and the Debian 13 root `make deb` builds the Debian 13 packages in.

A root (debootstrap, then its package list) is built once and cached under
SAGA_TEST_CACHE (default /var/cache/saga-test), keyed by everything that
goes into it: the package list, the apt sources and this recipe; an flock
serialises its making between sessions, and roots of stale keys are
removed.  Nothing uses a cached root directly: tests work on an overlay of
it, the package build on a copy of the sources inside an overlay.
Commands run in a root with chroot, with /proc, /sys and /dev mounted for
the duration of each command only, so nothing stays mounted between them.

    tools/debroot.py machine|build RELEASE    the root's path (made first if need be)
"""
from __future__ import annotations

import dataclasses
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("SAGA_TEST_CACHE", "/var/cache/saga-test"))
RECIPE = 3  # bump when the way the base is made changes
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"


@dataclasses.dataclass(frozen=True)
class Release:
    suite: str
    name: str
    python: str                      # the interpreter the packages are built for
    later_headers: str | None        # a second kernel's headers, downloaded (not installed)
    host_sources: bool               # use this host's apt sources (it runs this release)

    def packages(self, kind: str) -> list[str]:
        """machine: the kernel the packages are tested against (its headers for DKMS, its image to boot
        the machine), DKMS, systemd to boot it (nspawn), and what saga's packages depend on, so a test
        installs only saga's own packages.  build: what packaging/debian/control builds with."""
        if kind == "build":
            return ["build-essential", "fakeroot", "dpkg-dev", "debhelper", "dh-dkms", "dh-virtualenv",
                    self.python, f"{self.python}-dev", f"{self.python}-venv", "libfuse3-dev", "pkg-config",
                    "clang", "llvm", "libbpf-dev", "linux-libc-dev", "git", "ca-certificates"]
        libfuse = "libfuse3-3" if self.suite == "bookworm" else "libfuse3-4"   # (its soname moved in 13)
        return ["linux-image-amd64", "linux-headers-amd64", "dkms", "systemd", "systemd-sysv", "udev", "dbus",
                "kmod", self.python, "fuse3", libfuse, "libbpf1", "zlib1g", "procps", "man-db",
                "ca-certificates"]


RELEASES = {
    # A second kernel's headers: a test installs them later to see DKMS build saga.ko for a kernel that came after.
    "bookworm": Release("bookworm", "Debian 12", "python3.11", "linux-headers-6.12-amd64", True),
    "trixie": Release("trixie", "Debian 13", "python3.13", None, False),
}
BOOKWORM = RELEASES["bookworm"]

class SetupError(RuntimeError):
    """The root could not be made (not a failure of saga's packages)."""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def apt_sources(release: Release) -> dict[str, bytes]:
    """The machine's apt sources (and the host's Acquire settings): this host's for its own release,
    Debian's archive for another (never added to this host's sources)."""
    files = {}
    if release.host_sources:
        for path in sorted(glob.glob("/etc/apt/sources.list") + glob.glob("/etc/apt/sources.list.d/*.list")
                           + glob.glob("/etc/apt/sources.list.d/*.sources")):
            files[path] = Path(path).read_bytes()
        if not any(p.startswith("/etc/apt/sources.list") for p in files):
            raise SetupError("this host has no apt sources to build the test machine from")
    else:
        s = release.suite
        files["/etc/apt/sources.list.d/debian.sources"] = (
            f"Types: deb\nURIs: {MIRROR}\nSuites: {s} {s}-updates\nComponents: main\n"
            f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {SECURITY}\nSuites: {s}-security\nComponents: main\n"
            f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n").encode()
    for path in sorted(glob.glob("/etc/apt/apt.conf.d/*")):
        data = Path(path).read_bytes()
        if b"Acquire::" in data:
            files[path] = data
    return files


def debian_mirror(release: Release, sources: dict[str, bytes]) -> str:
    """The first archive URI that serves the suite's main component."""
    suite = release.suite
    for path, data in sources.items():
        text = data.decode(errors="replace")
        if path.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith("#"):
                        k, v = line.split(":", 1)
                        fields[k.strip()] = v.split()
                if suite in fields.get("Suites", []) and "deb" in fields.get("Types", []):
                    return fields["URIs"][0]
        elif path.startswith("/etc/apt/sources.list"):
            for line in text.splitlines():
                words = line.split()
                if len(words) >= 3 and words[0] == "deb" and suite in words:
                    uri = [w for w in words[1:] if not w.startswith("[")][0]
                    return uri
    raise SetupError(f"no apt source for {suite}")


def base_key(release: Release, sources: dict[str, bytes], packages: list[str]) -> str:
    h = hashlib.sha256()
    h.update(repr((RECIPE, release, packages)).encode())
    for path, data in sources.items():
        h.update(path.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:16]


def base_root(release: Release = BOOKWORM, log=print, *, kind: str = "machine") -> Path:
    """The cached root of a release (kind machine or build), built first if needed (a few minutes, once)."""
    sources = apt_sources(release)
    packages = release.packages(kind)
    prefix = f"{release.suite}-" if kind == "machine" else f"{release.suite}-{kind}-"
    root = CACHE / f"{prefix}{base_key(release, sources, packages)}"
    if (root / ".saga-test-complete").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{prefix}lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # one session makes it; the others wait and use it
        if (root / ".saga-test-complete").exists():
            return root
        tmp = Path(tempfile.mkdtemp(prefix="building-", dir=CACHE))
        log(f"debroot: making the {release.name} {kind} root {root} (once; a few minutes)")
        try:
            _build(tmp, release, sources, packages, release.later_headers if kind == "machine" else None)
            (tmp / ".saga-test-complete").touch()
            for old in CACHE.glob(f"{prefix}*"):       # roots of other keys are stale
                if old.is_dir() and old.name[len(prefix):].isalnum() and len(old.name) == len(prefix) + 16:
                    shutil.rmtree(old, ignore_errors=True)
            tmp.rename(root)
        except BaseException:
            umount_all(tmp)
            if not mounted_below(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            raise
    return root


def _build(root: Path, release: Release, sources: dict[str, bytes], packages: list[str], later: str | None) -> None:
    try:
        run(["debootstrap", "--variant=minbase", release.suite, str(root), debian_mirror(release, sources)],
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
    # Services must not start in a chroot; a machine booted with systemd removes this in its overlay.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    cmds = [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]]
    if later:
        cmds.append(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "--download-only", later])
    for cmd in cmds:
        res = chroot(root, cmd, env=env, check=False, capture=True)
        if res.returncode != 0:
            raise SetupError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout[-3000:]}")
    (root / "etc/hostname").write_text("saga-test\n")


def chroot(root: Path, cmd: list[str], *, env: dict | None = None, check: bool = True,
           capture: bool = False, timeout: float | None = 1800) -> subprocess.CompletedProcess:
    """Run cmd in root with /proc, /sys and /dev mounted for its duration."""
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                "SAGA_NO_SERVER": "1"}     # a saga command started in it starts no command server (docs/cli.md)
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


def mounted_below(root: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p == str(root) or p.startswith(str(root) + "/")]


def umount_all(root: Path) -> None:
    """Unmount anything left mounted under root (after an interrupted command)."""
    for point in sorted((p for p in mounted_below(root) if p != str(root)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)




class Overlay:
    """A throwaway overlay of a cached root (which it never changes); close() unmounts and deletes it."""

    def __init__(self, base: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="saga-root-"))
        self.root = self.dir / "root"
        for d in ("upper", "work", "root"):
            (self.dir / d).mkdir()
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={base},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}", str(self.root)])

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def close(self) -> None:
        umount_all(self.root)
        subprocess.run(["umount", "-l", str(self.root)], check=False)
        # Never delete through a mount (a bind of /dev would take the host's with it).
        if mounted_below(self.dir):
            raise SetupError(f"{self.dir} still has mounts below it: left in place")
        shutil.rmtree(self.dir, ignore_errors=True)


def build_in(release: Release, src: Path) -> None:
    """dpkg-buildpackage -b for the source tree src in the release's build root; the .debs land next to
    src, as dpkg-buildpackage puts them."""
    base = base_root(release, log=lambda m: print(m, file=sys.stderr), kind="build")
    ov = Overlay(base)
    try:
        inside = ov.path(f"/build/{src.name}")
        shutil.copytree(src, inside, symlinks=True)
        # The certificate authorities this host adds (an HTTPS proxy's): pip fetches through them.
        local_cas = sorted(glob.glob("/usr/local/share/ca-certificates/*.crt"))
        for ca in local_cas:
            shutil.copy2(ca, ov.path(ca))
        script = ("update-ca-certificates >/dev/null && " if local_cas else "") + \
            f"cd /build/{src.name} && dpkg-buildpackage -b -us -uc -j{os.cpu_count()}"
        res = chroot(ov.root, ["sh", "-c", script], check=False)
        if res.returncode:
            raise SetupError(f"dpkg-buildpackage exited {res.returncode}")
        for deb in ov.path("/build").glob("*.deb"):
            shutil.copy2(deb, src.parent / deb.name)
    finally:
        ov.close()


def main(argv: list[str]) -> int:
    usage = (f"usage: tools/debroot.py machine|build {'|'.join(RELEASES)}\n"
             f"       tools/debroot.py dpkg-buildpackage {'|'.join(RELEASES)} SRCDIR")
    try:
        if len(argv) == 2 and argv[0] in ("machine", "build") and argv[1] in RELEASES:
            print(base_root(RELEASES[argv[1]], log=lambda m: print(m, file=sys.stderr), kind=argv[0]))
        elif len(argv) == 3 and argv[0] == "dpkg-buildpackage" and argv[1] in RELEASES:
            build_in(RELEASES[argv[1]], Path(argv[2]).resolve())
        else:
            print(usage, file=sys.stderr)
            return 64
    except (SetupError, subprocess.CalledProcessError) as exc:
        print(f"debroot: {exc}", file=sys.stderr)
        return 69
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
