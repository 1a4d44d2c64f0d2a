"""The rules service: the database and the driver change together, or neither does."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy.exc
from sqlalchemy.orm import Session

from saga import rules
from saga.drivers.replay import ReplayDriver
from saga.errors import DriverError, RuleError, RulesLocked, StoreError, UsageError
from saga.rules.model import same_rules
from saga.rules.service import RulesService
from saga.store import Store


@pytest.fixture
def svc(store_url):
    store = Store.open(store_url)
    drv = ReplayDriver()
    yield RulesService(store, drv, "host-a")
    drv.close()
    store.close()


def in_step(svc: RulesService) -> bool:
    return same_rules(svc.driver.list_rules(), svc.stored())


def test_changes_reach_both_the_database_and_the_driver(svc):
    a = svc.add(rules.parse("ignore open*"))
    b = svc.add(rules.parse("count read,write comm=nginx key=io"))
    c = svc.add(rules.parse("log execve"), first=True)
    assert [r.id for r in svc.stored()] == [c.id, a.id, b.id]
    assert in_step(svc)
    assert svc.remove(a.id) == a
    assert svc.remove_key("io") == [b]
    assert in_step(svc) and [r.id for r in svc.stored()] == [c.id]
    installed = svc.replace(rules.parse_lines("log all errors\n9: ignore read"))
    assert [r.id for r in installed][1] == 9 and in_step(svc)
    assert len(svc.clear()) == 2 and svc.stored() == [] and svc.driver.list_rules() == []


def test_ids_are_never_reused(svc):
    first = svc.add(rules.parse("log read"))
    svc.remove(first.id)
    assert svc.add(rules.parse("log read")).id > first.id
    svc.replace([rules.parse("50: log write")])
    assert svc.add(rules.parse("log read")).id == 51


def test_unknown_ids_and_keys_are_usage_errors(svc):
    with pytest.raises(UsageError, match="no rule with id 4"):
        svc.remove(4)
    with pytest.raises(UsageError, match="no rule has key"):
        svc.remove_key("nope")
    with pytest.raises(RuleError, match="twice"):
        svc.replace([rules.parse("3: log read"), rules.parse("3: log write")])


class RefusingDriver(ReplayDriver):
    def replace_rules(self, rules_):
        raise DriverError("the kernel said no", errno=12)


def test_a_driver_refusal_leaves_the_database_unchanged(store_url):
    store = Store.open(store_url)
    good = RulesService(store, ReplayDriver(), "h")
    good.add(rules.parse("log read"))
    bad = RulesService(store, RefusingDriver(), "h")
    with pytest.raises(DriverError, match="said no"):
        bad.add(rules.parse("ignore all"))
    with pytest.raises(DriverError):
        bad.clear()
    assert [rules.format(r) for r in good.stored()] == ["log read"]
    store.close()


def test_a_failed_commit_puts_the_drivers_rules_back(svc, monkeypatch):
    svc.add(rules.parse("log read"))
    before = svc.driver.list_rules()

    def fail(self):
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Session, "commit", fail)
    with pytest.raises(StoreError, match="disk I/O error"):
        svc.add(rules.parse("ignore all"))
    monkeypatch.undo()
    assert same_rules(svc.driver.list_rules(), before)
    assert [rules.format(r) for r in svc.stored()] == ["log read"]


def test_locked_rules_refuse_changes_before_touching_the_database(svc):
    svc.add(rules.parse("log read"))
    svc.lock()
    with pytest.raises(RulesLocked):
        svc.add(rules.parse("ignore all"))
    assert len(svc.stored()) == 1


def test_locked_rules_are_told_by_the_refused_change_itself(svc, monkeypatch):
    """The driver's EBUSY says it (RulesLocked): no second question to the driver first, and the refused
    change leaves neither rules nor a used id behind."""
    first = svc.add(rules.parse("log read key=k"))
    svc.lock()
    monkeypatch.setattr(svc.driver, "info", lambda: pytest.fail("the driver was asked before the change"))
    for change in (lambda: svc.add(rules.parse("ignore all")), lambda: svc.remove_key("k"), svc.clear,
                   lambda: svc.replace([rules.parse("log write")])):
        with pytest.raises(RulesLocked, match="rules are locked until the driver is unloaded"):
            change()
    assert svc.stored() == [first]
    with ReplayDriver() as other:
        assert RulesService(svc.store, other, "host-a").add(rules.parse("log write")).id == first.id + 1


def test_sync_installs_the_stored_rules(svc):
    svc.add(rules.parse("ignore open*"))
    svc.driver.replace_rules([])
    assert not in_step(svc)
    assert svc.sync() is True and in_step(svc)
    assert svc.sync() is False


def test_offline_changes_only_the_database(store_url):
    store = Store.open(store_url)
    offline = RulesService(store, None, "h")
    r = offline.add(rules.parse("count read"))
    assert offline.stored() == [r] and offline.in_force() == [r]
    with pytest.raises(UsageError):
        offline.lock()
    store.close()


def test_concurrent_changes_are_serialized(store_url):
    store = Store.open(store_url)
    drv = ReplayDriver()
    errors = []

    def worker(n):
        svc = RulesService(store, drv, "h")
        try:
            for i in range(5):
                svc.add(rules.parse(f"count read key=w{n}-{i}"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    svc = RulesService(store, drv, "h")
    stored = svc.stored()
    assert len(stored) == 20 and len({r.id for r in stored}) == 20
    assert in_step(svc)
    drv.close()
    store.close()


def test_exe_and_tree_are_stored_and_installed(svc):
    r = svc.add(rules.parse("ignore all exe=/bin/sh tree key=backup"))
    assert [(x.exe, x.tree) for x in svc.stored()] == [("/bin/sh", True)]
    assert svc.driver.list_rules()[0].exe.startswith("@") and svc.driver.list_rules()[0].tree
    assert svc.sync() is False      # the stored path and the identity the driver holds are the same rule
    assert r.id == svc.stored()[0].id
