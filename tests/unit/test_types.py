"""src/saga type-checks clean with mypy (pyproject.toml [tool.mypy]: the settings and their reasons)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_finds_nothing():
    mypy = Path(sys.executable).with_name("mypy")
    # The cache lives in the venv, outside the tracked tree (a warm run takes a second, a cold one ~6 s).
    cache = Path(sys.prefix) / "mypy-cache"
    p = subprocess.run([str(mypy), "--cache-dir", str(cache), "--no-error-summary"], cwd=ROOT,
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
