"""The rules service: the one place a rule change is stored and applied together.

Every change runs the same steps in one database transaction: load the
host's stored list, compute the new list, write it, install it in the
driver (`replace_rules`: one atomic step in the kernel), commit.  If the
driver refuses, the transaction rolls back; if the commit fails after the
driver took the new list, the driver gets its previous list back.  Either
both the database and the driver change, or neither does.

The database is the source of truth: `sync()` (daemon start, SIGHUP)
installs the stored list in the driver.  Rule ids come from the database
and are never reused on a host.  Used by the CLI, the daemon and /sagafs.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from saga.drivers.base import Driver
from saga.errors import UsageError
from saga.rules.model import Rule, check_list, same_rules
from saga.store import Store
from saga.store import rules as stored_rules
from saga.store.engine import translate

log = logging.getLogger(__name__)


class RulesService:
    """Rules of `host`, stored in `store` and in force in `driver` (None: change the database only)."""

    def __init__(self, store: Store, driver: Driver | None, host: str) -> None:
        self.store = store
        self.driver = driver
        self.host = host

    # -- reading -------------------------------------------------------------
    def stored(self) -> list[Rule]:
        with translate("reading the stored rules"), self.store.session() as s:
            hid = stored_rules.find_host_id(s, self.host)
            return [] if hid is None else stored_rules.load(s, hid)

    def in_force(self) -> list[Rule]:
        """The driver's rules (the stored ones when there is no driver)."""
        return self.driver.list_rules() if self.driver is not None else self.stored()

    # -- changing ------------------------------------------------------------
    def add(self, rule: Rule, *, first: bool = False) -> Rule:
        """Append `rule` (or put it first); returns it with its id."""
        new = self._change(lambda old, ids: ([ids(rule)] + old) if first else (old + [ids(rule)]))
        return new[0] if first else new[-1]

    def remove(self, rule_id: int) -> Rule:
        return self._remove(lambda r: r.id == rule_id, f"no rule with id {rule_id} (saga rules list shows the ids)")[0]

    def remove_key(self, key: str) -> list[Rule]:
        return self._remove(lambda r: r.key == key, f"no rule has key {key!r}")

    def _remove(self, matches: Callable[[Rule], bool], none: str) -> list[Rule]:
        """Remove the rules `matches` picks (UsageError `none` when there are none); returns them."""
        removed: list[Rule] = []

        def drop(old: list[Rule], _ids) -> list[Rule]:
            removed[:] = [r for r in old if matches(r)]
            if not removed:
                raise UsageError(none)
            return [r for r in old if not matches(r)]

        self._change(drop)
        return removed

    def replace(self, rules: list[Rule]) -> list[Rule]:
        """Make `rules` the whole list (rule files); ids given in the file are kept."""
        check_list(rules)
        return self._change(lambda _old, ids: [ids(r) for r in rules],
                            keep_ids=[r.id for r in rules if r.id is not None])

    def clear(self) -> list[Rule]:
        removed: list[Rule] = []

        def drop(old: list[Rule], _ids) -> list[Rule]:
            removed.extend(old)
            return []

        self._change(drop)
        return removed

    def edit(self, compute: Callable[[list[Rule], Callable[[Rule], Rule]], list[Rule]]) -> list[Rule]:
        """Any change as one: `compute(stored, with_id)` returns the new list (with_id gives a new rule its
        id); an exception it raises leaves everything as it was (/sagafs/rules: several lines in one write)."""
        return self._change(compute)

    def lock(self) -> None:
        """Make the driver's rules immutable until it is unloaded (not stored: see config rules.lock)."""
        self.require_driver().lock_rules()

    def sync(self) -> bool:
        """Install the stored rules in the driver; returns True when the driver had others."""
        driver = self.require_driver()
        wanted = self.stored()
        if same_rules(driver.list_rules(), wanted):
            return False
        driver.replace_rules(wanted)
        return True

    # -- the one change path -------------------------------------------------
    def require_driver(self) -> Driver:
        if self.driver is None:
            raise UsageError("this needs the capture driver, and none is open")
        return self.driver

    def _change(self, compute: Callable[[list[Rule], Callable[[Rule], Rule]], list[Rule]],
                keep_ids: list[int] | None = None) -> list[Rule]:
        # Locked rules: the driver refuses the change (RulesLocked) before the commit, so nothing is stored.
        # The session is closed (rolled back) by any exception before the commit.
        with translate("changing the stored rules"), self.store.session(write=True) as s:
            hid = stored_rules.host_id(s, self.host)
            stored_rules.lock_host(s, hid)
            if keep_ids:
                stored_rules.note_rule_ids(s, hid, keep_ids)
            old = stored_rules.load(s, hid)

            def with_id(rule: Rule) -> Rule:
                return rule if rule.id is not None else rule.with_id(stored_rules.take_rule_ids(s, hid, 1)[0])

            new = compute(old, with_id)
            check_list(new)              # what no driver would take is not stored either (--offline)
            stored_rules.save(s, hid, new)
            if self.driver is None:
                s.commit()
                return new
            before = self.driver.list_rules()
            self.driver.replace_rules(new)
            try:
                s.commit()
            except BaseException:
                self._restore(before)
                raise
        return new

    def _restore(self, before: list[Rule]) -> None:
        try:
            self.require_driver().replace_rules(before)
        except Exception as exc:  # the commit error is the one to report; this one is logged
            log.error("could not restore the driver's rules after a failed commit: %s", exc)
