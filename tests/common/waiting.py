"""Polling for a condition, shared by the test suites (pytest puts tests/common on sys.path)."""
from __future__ import annotations

import time


def wait_for(cond, timeout: float = 20.0, what: str = "condition", every: float = 0.02) -> None:
    """Return once cond() is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
