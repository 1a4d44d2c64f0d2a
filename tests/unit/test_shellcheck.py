"""The shell scripts (tools/, packaging/, bench/) pass shellcheck (installed by tools/deps.sh base)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIRS = ("tools", "packaging", "bench")
SHEBANG = re.compile(rb"#!\s*\S*/(env\s+)?(sh|bash|dash)(\s|$)")


def shell_scripts() -> list[Path]:
    """*.sh files (sourced ones too) and files whose first line runs a shell."""
    out = []
    for d in DIRS:
        for p in sorted((ROOT / d).rglob("*")):
            if not p.is_file() or "__pycache__" in p.parts:
                continue
            with p.open("rb") as f:
                first = f.readline(100)
            if p.suffix == ".sh" or SHEBANG.match(first):
                out.append(p)
    return out


def test_the_scripts_are_found():
    names = {str(p.relative_to(ROOT)) for p in shell_scripts()}
    assert {"tools/deps.sh", "tools/vmtest", "tools/vmlib.sh", "packaging/debian/saga.postinst",
            "bench/kmod/run"} <= names


def test_shellcheck_finds_nothing():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: tools/deps.sh base installs it"
    p = subprocess.run([shellcheck, "--external-sources", *map(str, shell_scripts())], cwd=ROOT,
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
