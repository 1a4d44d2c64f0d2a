"""A throwaway Debian machine for installing saga's packages: an overlay of a cached root.

The roots (Debian 12 and 13: a kernel with its headers, DKMS, systemd and
what the packages depend on) come from tools/debroot.py.  Each test session
works on an overlay of one (the cache is never modified) that it throws
away.  Commands run in it with chroot (debroot.chroot: /proc, /sys and /dev
mounted for each command only); pkgboot.py boots it with systemd.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from debroot import (  # noqa: E402
    BOOKWORM,
    CACHE,
    RELEASES,
    Overlay,
    Release,
    SetupError,
    base_root,
    chroot,
)

__all__ = ["BOOKWORM", "CACHE", "RELEASES", "Overlay", "Release", "SetupError", "base_root", "Machine", "version",
           "VOLATILE"]

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


class Machine(Overlay):
    """A throwaway overlay of a base root, with what the tests ask of it."""

    def run(self, *cmd: str, check: bool = True, env: dict | None = None,
            timeout: float | None = 1800) -> subprocess.CompletedProcess:
        """Run in the machine; stdout and stderr together in .stdout."""
        res = chroot(self.root, list(cmd), env=env, check=False, capture=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout[-4000:]}")
        return res

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return self.run("sh", "-ec", script, **kw)

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
