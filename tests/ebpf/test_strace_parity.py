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

# The calls each workload makes whose aux blob saga shows: process starts, threads, a server's addresses
# (accept4's and recvfrom's read at exit: the peer the kernel wrote).
AUX_CALLS = {"ordinary": {"execve", "clone3", "connect"},
             "server": {"accept4", "bind", "clone3", "connect", "recvfrom", "sendto"}}


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
    # argv, socket addresses and clone_args (ABI 2's aux blob) as strace shows them, for every call that has one
    assert rep.aux_calls > 20, summary
    assert AUX_CALLS[workload] <= set(rep.aux_by_name), summary
    assert rep.aux_differ_calls <= 0.01 * rep.aux_calls, summary
    assert rep.aux_missing_calls <= 0.01 * rep.aux_calls, summary
