"""Fixtures for the package tests (root): the built packages and machines to install them on.

`built` builds the packages of both releases (packaging/build.sh, what
`make deb` runs) into build/pkg/, unless SAGA_PKG_DEBS names a directory
holding them already (DIR/bookworm/*.deb, DIR/trixie/*.deb).  `previous`
builds the same tree stamped with the version before this one (the package
an upgrade starts from), cached under SAGA_TEST_CACHE by the hash of the
sources it is built from (SAGA_PKG_PREVIOUS=DIR: built there already).  Each test module runs once per release
(`release` is parametrized; SAGA_PKG_RELEASES="bookworm" limits them);
`base` is that release's cached root (tools/debroot.py), and `installed` a
throwaway overlay of it with the packages installed with apt in a chroot.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import pkgroot  # noqa: E402
from pkgroot import REPO, version  # noqa: E402

if os.geteuid() != 0:
    pytest.skip("the package tests need root (debootstrap, chroot, mounts)", allow_module_level=True)

# What the packages are made of (packaging/build.sh copies these).
SOURCES = ("pyproject.toml", "README.md", "src", "bpf", "kmod", "docs", "tools", "packaging")


def previous_version(v: str) -> str:
    """A version that sorts before v for both dpkg and Python: 0.1.3 -> 0.1.2, 0.2.0 -> 0.1.99."""
    parts = [int(p) for p in v.split(".")]
    for i in reversed(range(len(parts))):
        if parts[i]:
            parts[i] -= 1
            return ".".join(str(p) for p in parts[:i + 1] + [99] * (len(parts) - i - 1))
    raise AssertionError(f"no version before {v}")


def _build(out: Path, *args: str) -> None:
    res = subprocess.run([str(REPO / "packaging/build.sh"), "--out", str(out), *args], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert res.returncode == 0, f"packaging/build.sh {' '.join(args)} failed:\n{res.stdout[-4000:]}"


def _sources_hash() -> str:
    files = subprocess.run(["git", "ls-files", "-z", *SOURCES], cwd=REPO, check=True, capture_output=True).stdout
    h = hashlib.sha256()
    for name in sorted(files.split(b"\0")):
        if name and (REPO / name.decode()).is_file():
            h.update(name + b"\0" + (REPO / name.decode()).read_bytes())
    return h.hexdigest()[:16]


def debs_in(where: Path, release: str, ver: str) -> dict[str, Path]:
    out = {"saga": where / release / f"saga_{ver}_amd64.deb",
           "saga-dkms": where / release / f"saga-dkms_{ver}_all.deb"}
    for path in out.values():
        assert path.is_file(), f"{path} was not built"
    return out


RELEASES = os.environ.get("SAGA_PKG_RELEASES", " ".join(pkgroot.RELEASES)).split()


@pytest.fixture(scope="session")
def built() -> Path:
    """The directory holding this version's packages for every release tested."""
    if os.environ.get("SAGA_PKG_DEBS"):
        return Path(os.environ["SAGA_PKG_DEBS"])
    out = REPO / "build/pkg"
    for release in RELEASES:
        _build(out, "--release", release)
    return out


@pytest.fixture(scope="session")
def previous() -> tuple[str, Path]:
    """(version, directory) of the packages of the previous version, for every release tested (cached;
    SAGA_PKG_PREVIOUS=DIR: already built there)."""
    ver = previous_version(version())
    if os.environ.get("SAGA_PKG_PREVIOUS"):
        return ver, Path(os.environ["SAGA_PKG_PREVIOUS"])
    where = pkgroot.CACHE / f"debs-{ver}-{_sources_hash()}"
    for stale in pkgroot.CACHE.glob(f"debs-{ver}-*"):
        if stale != where:
            subprocess.run(["rm", "-rf", str(stale)], check=True)
    for release in RELEASES:
        if not (where / release / ".complete").exists():
            _build(where, "--version", ver, "--release", release)
            (where / release / ".complete").touch()
    return ver, where


@pytest.fixture(scope="module", params=RELEASES)
def release(request) -> pkgroot.Release:
    return pkgroot.RELEASES[request.param]


@pytest.fixture(scope="module")
def debs(built, release) -> dict[str, Path]:
    """{'saga': path, 'saga-dkms': path} of this release."""
    return debs_in(built, release.suite, version())


@pytest.fixture(scope="module")
def base(release) -> Path:
    try:
        return pkgroot.base_root(release, log=lambda msg: print(msg, file=sys.stderr))
    except (pkgroot.SetupError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"could not make the {release.name} test machine: {exc}")


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


class Installed:
    """The machine with saga's packages installed, and what it looked like before."""

    def __init__(self, machine: pkgroot.Machine, debs: dict[str, Path], release: pkgroot.Release):
        self.machine = machine
        self.debs = debs
        self.release = release
        self.version = version()
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        # Dependencies first (normally all in the base already), so the
        # snapshot below differs from the installed machine only by saga's own.
        deps = ", ".join(d for d in (deb_field(p, "Depends") for p in debs.values()) if d)
        machine.run("apt-get", "satisfy", "-y", "-qq", "--no-install-recommends", deps, env=env)
        self.before = machine.files()
        self.packages_before = self.package_list()
        incoming = machine.path("/root/saga-test")
        incoming.mkdir(parents=True, exist_ok=True)
        for path in debs.values():
            (incoming / path.name).write_bytes(path.read_bytes())
        self.install_log = machine.run("apt-get", "install", "-y", "--no-install-recommends",
                                       *(f"/root/saga-test/{p.name}" for p in debs.values()), env=env).stdout

    def package_list(self) -> set[str]:
        out = self.machine.run("dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n").stdout
        return {line.split()[0] for line in out.splitlines() if line.split()[1:] and line.split()[1].startswith("i")}


@pytest.fixture(scope="module")
def installed(base, debs, release):
    machine = pkgroot.Machine(base)
    try:
        yield Installed(machine, debs, release)
    finally:
        machine.close()
