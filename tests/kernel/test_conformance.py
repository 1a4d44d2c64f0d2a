"""The rule conformance table (tests/common/conformance.py) on the kernel module."""
from __future__ import annotations

import pytest
from conformance import BAD, CASES, check, check_bad, check_locked, run_live


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(saga, case):
    check(case, run_live(saga, case))


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_refused(saga, bad):
    check_bad(saga, bad)


def test_locked(saga):
    check_locked(saga)       # the fixture unloads the module afterwards: the lock goes with it
