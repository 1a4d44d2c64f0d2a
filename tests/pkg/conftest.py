"""Fixtures for the package tests (root): the built packages and machines to install them on.

`built` builds the packages of both releases (packaging/build.sh, what
`make deb` runs) into build/pkg/, unless SAGA_PKG_DEBS names a directory
holding them already (DIR/bookworm/*.deb, DIR/trixie/*.deb).  `previous`
is the saga package an upgrade starts from: this one, relabelled with the
version before this one.  Each test module runs once per release
(`release` is parametrized; SAGA_PKG_RELEASES="bookworm" limits them);
`base` is that release's cached root (tools/debroot.py), and `installed` a
throwaway overlay of it with the packages installed with apt in a chroot.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import pkgroot  # noqa: E402
from pkgroot import REPO, version  # noqa: E402

if os.geteuid() != 0:
    pytest.skip("the package tests need root (debootstrap, chroot, mounts)", allow_module_level=True)

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


def debs_in(where: Path, release: str, ver: str, names: tuple[str, ...] = ("saga", "saga-dkms")) -> dict[str, Path]:
    out = {name: where / release / (f"saga_{ver}_amd64.deb" if name == "saga" else f"saga-dkms_{ver}_all.deb")
           for name in names}
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
def previous(built, tmp_path_factory) -> tuple[str, Path]:
    """(version, directory) of the saga package of the previous version, for every release tested:
    this version's, relabelled (relabel())."""
    ver = previous_version(version())
    out = tmp_path_factory.mktemp("previous")
    for release in RELEASES:
        relabel(built / release / f"saga_{version()}_amd64.deb", ver, out / release)
    return ver, out


def relabel(deb: Path, new: str, out: Path) -> Path:
    """The package `deb` as version `new`: what an upgrade to it starts from.

    The same files with every mark of the version changed: the package's
    Version, saga.__version__ (which the daemon writes into the driver it
    loads, and `saga driver status` shows), the dist-info, and md5sums.  The
    byte-compiled saga/__init__ is dropped (it holds the old version; Python
    compiles the source at first import).  Building the tree again with
    `packaging/build.sh --version` makes the same package, minutes later."""
    old = deb_field(deb, "Version")
    out.mkdir(parents=True, exist_ok=True)
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    site = next(tree.glob("opt/venvs/saga/lib/python3.*/site-packages"))
    init = site / "saga/__init__.py"
    init.write_text(re.sub(r'(?m)^__version__ = ".*"$', f'__version__ = "{new}"', init.read_text()))
    for pyc in (site / "saga/__pycache__").glob("__init__.*.pyc"):
        pyc.unlink()
    info = site / f"saga-{old}.dist-info"
    info = info.rename(site / f"saga-{new}.dist-info")
    meta = info / "METADATA"
    meta.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {new}", meta.read_text()))
    control = tree / "DEBIAN/control"
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {new}", control.read_text()))
    sums = []
    for line in (tree / "DEBIAN/md5sums").read_text().splitlines():
        path = line.split("  ", 1)[1].replace(f"saga-{old}.dist-info", f"saga-{new}.dist-info")
        if (tree / path).is_file():
            sums.append(f"{hashlib.md5((tree / path).read_bytes()).hexdigest()}  {path}")
    (tree / "DEBIAN/md5sums").write_text("\n".join(sums) + "\n")
    result = out / f"saga_{new}_amd64.deb"
    # Uncompressed: xz takes most of a minute for a package only this test installs.
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Znone", "-b", str(tree), str(result)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    return result


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
