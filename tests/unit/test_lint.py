"""The tree passes the project's linter (pyproject.toml [tool.ruff]: pyflakes, pycodestyle, import order, bugbear)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    p = subprocess.run([str(ruff), "check", "--no-cache", "src", "tests", "tools", "bench", "packaging"], cwd=ROOT,
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_no_empty_file_is_tracked():
    """A stray output (an empty pipe2.out once sat at the top of the tree) is never committed: every tracked
    file has content."""
    p = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    assert p.returncode == 0, p.stderr.decode()
    names = [n for n in p.stdout.decode().split("\0") if n]
    empty = [n for n in names if (ROOT / n).is_file() and (ROOT / n).stat().st_size == 0]
    assert names and not empty, f"empty files in the tree: {empty}"
