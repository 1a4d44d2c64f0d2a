"""saga's log lines held against strace's on the same calls (issue 12).

Each workload runs under `strace -f` while the eBPF driver records it
(tools/strace_compare.py pairs the calls of each thread and compares them
argument by argument).  The share of calls where strace prints a symbol
(`FUTEX_WAKE_PRIVATE`, `O_CLOEXEC`, `(flags O_RDWR)`) and saga a bare number
must stay at or below 2%; numbers both print must have the same value.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import strace_compare  # noqa: E402 - tools/ is not a package


@pytest.mark.parametrize("workload", sorted(strace_compare.WORKLOADS))
def test_saga_prints_the_symbols_strace_prints(workload, bpffs):
    assert shutil.which("strace"), "strace is missing: `tools/deps.sh bench` installs it"
    rep = strace_compare.run_workload(workload, bpffs)
    summary = rep.summary()
    print(summary)
    assert rep.calls > 1000, summary
    assert rep.paired >= 0.95 * rep.calls, summary
    assert rep.gap_share <= 0.02, summary
    assert rep.differ_calls <= 0.02 * rep.paired, summary
    assert rep.value_calls <= 0.001 * rep.paired, summary
