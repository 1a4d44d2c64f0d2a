#!/usr/bin/env python3
"""The version in one place: src/saga/__init__.py's __version__, written into the lines that
repeat it where Python cannot be read (the module: kmod/saga.h's SAGA_VERSION; DKMS:
kmod/dkms.conf's PACKAGE_VERSION).

Usage: tools/gen_version.py [--check]   (`make uapi` runs it; a unit test runs --check)
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src/saga/__init__.py"
# file -> (the line's pattern, the line for a version)
TARGETS = {
    ROOT / "kmod/saga.h": (r'^#define SAGA_VERSION\t+".*"$', '#define SAGA_VERSION\t\t"{}"'),
    ROOT / "kmod/dkms.conf": (r'^PACKAGE_VERSION=".*"$', 'PACKAGE_VERSION="{}"'),
}


def version() -> str:
    m = re.search(r'^__version__ = "([^"]+)"$', SOURCE.read_text(), re.M)
    if not m:
        raise SystemExit(f"gen_version: no __version__ in {SOURCE}")
    return m.group(1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a target says another version")
    args = ap.parse_args()
    v, stale = version(), 0
    for path, (pattern, line) in TARGETS.items():
        text = path.read_text()
        new, n = re.subn(pattern, line.format(v).replace("\\", "\\\\"), text, count=1, flags=re.M)
        if n != 1:
            raise SystemExit(f"gen_version: {path.relative_to(ROOT)} has no line matching {pattern}")
        if new != text:
            if args.check:
                print(f"{path.relative_to(ROOT)} does not say version {v}: run `make uapi`", file=sys.stderr)
                stale = 1
            else:
                path.write_text(new)
    return stale


if __name__ == "__main__":
    sys.exit(main())
