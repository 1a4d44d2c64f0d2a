"""The rule conformance table (tests/common/conformance.py) on the replay driver."""
from __future__ import annotations

import pytest
from conformance import BAD, CASES, check, check_bad, check_locked, run_replay

from saga.drivers.replay import ReplayDriver


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    check(case, run_replay(case))


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_refused(bad):
    with ReplayDriver() as drv:
        check_bad(drv, bad)


def test_locked():
    with ReplayDriver() as drv:
        check_locked(drv)
