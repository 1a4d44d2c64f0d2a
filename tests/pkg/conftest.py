"""Fixtures for the package tests (root): the built packages and a machine to install them on.

`debs` builds dist/*.deb with packaging/build.sh (make deb), unless
SAGA_PKG_DEBS names a directory holding them already.  `machine` is a
throwaway overlay of the cached Debian 12 root (pkgroot.py) with the
packages' dependencies and then the packages themselves installed with apt.
"""
from __future__ import annotations

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


@pytest.fixture(scope="session")
def debs() -> dict[str, Path]:
    """{'saga': path, 'saga-dkms': path}, built for this session unless SAGA_PKG_DEBS has them."""
    ver = version()
    where = Path(os.environ.get("SAGA_PKG_DEBS") or REPO / "dist")
    if not os.environ.get("SAGA_PKG_DEBS"):
        res = subprocess.run([str(REPO / "packaging/build.sh")], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        assert res.returncode == 0, f"packaging/build.sh failed:\n{res.stdout[-4000:]}"
    out = {"saga": where / f"saga_{ver}_amd64.deb", "saga-dkms": where / f"saga-dkms_{ver}_all.deb"}
    for path in out.values():
        assert path.is_file(), f"{path} was not built"
    return out


@pytest.fixture(scope="session")
def base() -> Path:
    try:
        return pkgroot.base_root(log=lambda msg: print(msg, file=sys.stderr))
    except (pkgroot.SetupError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"could not make the Debian 12 test machine: {exc}")


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


class Installed:
    """The machine with saga's packages installed, and what it looked like before."""

    def __init__(self, machine: pkgroot.Machine, debs: dict[str, Path]):
        self.machine = machine
        self.debs = debs
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


@pytest.fixture(scope="session")
def installed(base, debs):
    machine = pkgroot.Machine(base)
    try:
        yield Installed(machine, debs)
    finally:
        machine.close()
