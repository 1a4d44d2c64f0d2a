"""The rule conformance table (tests/common/conformance.py) on the eBPF driver."""
from __future__ import annotations

import pytest
from conformance import BAD, CASES, check, check_bad, check_locked, run_live
from ebpf_helpers import loaded


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(drv, case):
    check(case, run_live(drv, case))


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_refused(drv, bad):
    check_bad(drv, bad)


def test_locked(bpffs):
    with loaded(bpffs, "conformance-lock") as drv:
        check_locked(drv)
