"""Fixtures for the in-VM tests of saga.ko (run by tools/vmtest, one boot per kernel).

tools/vmtest sets SAGA_KO (the module built for the booted kernel) and
SAGA_BIN (the compiled workloads).  Elsewhere these tests are skipped.
"""
from __future__ import annotations

import os

import kernelutil
import pytest


def pytest_collection_modifyitems(config, items):
    if kernelutil.IN_VM:
        return
    skip = pytest.mark.skip(reason="runs inside a VM with saga.ko: tools/vmtest REL")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture
def module():
    """The module, unloaded before and after the test; the test loads it with its parameters."""
    mod = kernelutil.Module()
    mod.unload()
    yield mod
    mod.unload()


@pytest.fixture
def saga(module):
    """The module loaded with default parameters, and a KmodDriver on it."""
    module.load()
    drv = module.driver()
    yield drv
    drv.close()
