"""saga.drivers.kmod.KmodDriver against the real module."""
import os
import time

import pytest
from kernelutil import calls, rule
from ruleids import numbered

from saga import __version__, _uapi
from saga.drivers import open_driver
from saga.drivers.kmod import KmodDriver
from saga.errors import DriverUnavailable, PermissionDenied
from saga.rules.model import same_rule


def test_open_without_module_says_how_to_load(module):
    with pytest.raises(DriverUnavailable, match=r"start the daemon \(systemctl start saga\) or run `saga driver load`"):
        KmodDriver.open()


def test_open_driver_picks_kmod(saga):
    with open_driver("kmod") as drv:
        assert drv.info().driver == "kmod"
    with open_driver("auto") as drv:
        assert drv.name == "kmod"


def test_info(saga):
    info = saga.info()
    assert info.driver == "kmod" and info.version == __version__      # the one version, written into saga.h
    assert info.abi_version == _uapi.SAGA_ABI_VERSION
    assert info.features == 0xFF
    assert info.ring_bytes == 4 << 20 and info.nr_cpus == os.cpu_count()
    assert info.enabled and not info.locked and info.nr_rules == 0 and info.default_action == "log"


def test_rules_round_trip(saga):
    rules = numbered([rule("count read,write comm=nginx key=nginx-io"), rule("log openat errors"),
                      rule("ignore all pid=1 uid=0"), rule("count getppid exe=/bin/sh tree")], first=40)
    saga.replace_rules(rules)
    got = saga.list_rules()
    assert [g.id for g in got] == [40, 41, 42, 43]
    for g, r in zip(got, rules, strict=True):
        assert same_rule(g, r)   # the same, however the driver spells the syscalls and the program
    assert got[2].syscalls == ("all",) and got[3].exe.startswith("@")
    assert saga.info().nr_rules == 4


def test_read_raw_times_out_with_nothing(saga):
    saga.replace_rules(numbered([rule("ignore all")]))
    while saga.read_raw(timeout=0):
        pass
    t0 = time.monotonic()
    assert saga.read_raw(timeout=0.3) == b""
    assert time.monotonic() - t0 >= 0.25


def test_read_raw_waits_for_records(saga):
    saga.replace_rules(numbered([rule("log getppid comm=calls"), rule("ignore all")]))
    while saga.read_raw(timeout=0):
        pass
    calls("getppid", 2)
    assert len(saga.read_raw(timeout=5)) >= 2 * _uapi.SAGA_EVENT.size


def test_unprivileged_open_is_permission_denied(saga):
    from kernelutil import NOBODY, as_user

    def attempt():
        try:
            KmodDriver.open()
        except PermissionDenied as exc:
            return str(exc)
        return "opened"
    assert "run as root" in as_user(NOBODY, attempt)
