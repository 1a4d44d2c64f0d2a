"""The default rule file: it loads, logs what an investigation needs and counts the rest; the daemon stores
it on a host's first start only."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from unit_config import make_config

from saga import events, syscalls
from saga.daemon.service import Daemon, Options
from saga.drivers.replay import ReplayDriver
from saga.events import NR, RET
from saga.rules import grammar
from saga.rules.model import same_rules
from saga.rules.service import RulesService
from saga.store import Store

RULES = Path(__file__).resolve().parents[2] / "packaging" / "rules.d" / "default.rules"
LOGGED = ("execve", "exit_group", "connect", "bind", "unlinkat", "renameat2", "fchmodat", "fchownat", "setuid",
          "mount", "init_module", "finit_module", "ptrace", "clone", "clone3")
COUNTED_ONLY = ("read", "write", "getppid", "mmap", "futex", "close", "fstat")


def _rules():
    return grammar.parse_lines(RULES.read_text(), source=str(RULES))


def test_the_file_logs_what_an_investigation_needs_and_counts_the_rest(recording, raws):
    rules = _rules()
    assert rules[-1].action == "count" and rules[-1].syscalls == ("all",)
    drv = ReplayDriver(recording)
    drv.replace_rules([r.with_id(i + 1) for i, r in enumerate(rules)])
    drv.advance()
    got = drv.read_raw(1 << 24)
    logged = events.parse(got)
    st = drv.stats()
    assert st.calls == sum(c for c, _ in st.per_slot.values()) and st.calls > len(logged) > 0
    names = {syscalls.name_of(r[NR]) for r in logged}
    assert not names & set(COUNTED_ONLY)                  # counted, not logged
    file_calls = syscalls.CLASSES["file"]
    for r in raws:
        name = syscalls.name_of(r[NR])
        if name in LOGGED or (name in file_calls and r[RET] < 0):
            assert any(x[NR] == r[NR] and x[RET] == r[RET] for x in logged), name
    drv.close()


@contextmanager
def daemon(config, driver):
    d = Daemon(config, Options(no_mount=True, reload_config=False), driver=driver)
    t = threading.Thread(target=d.run, kwargs={"signals": False})
    t.start()
    try:
        assert d.ready.wait(20), "the daemon did not start"
        yield d
    finally:
        d.stop()
        t.join(30)
        driver.close()


def test_the_daemon_stores_it_on_the_first_start_only(tmp_path, sqlite_url):
    cfg = make_config(tmp_path, sqlite_url)
    cfg = replace(cfg, rules=replace(cfg.rules, initial_file=str(RULES)))
    drv = ReplayDriver()
    with daemon(cfg, drv) as d:
        assert [grammar.format(x) for x in d.state.rules.stored()] == [grammar.format(x) for x in _rules()]
        assert same_rules(drv.list_rules(), d.state.rules.stored())
    with Store.open(sqlite_url) as st:
        RulesService(st, None, cfg.store.host_name).clear()      # the administrator's choice: no rules
    drv = ReplayDriver()
    with daemon(cfg, drv):
        assert drv.list_rules() == []                          # the host has had rules: they stay its own
    missing = replace(cfg, rules=replace(cfg.rules, initial_file=str(tmp_path / "none.rules")),
                      store=replace(cfg.store, url=f"sqlite:///{tmp_path}/other.db"))
    drv = ReplayDriver()
    with daemon(missing, drv):
        assert drv.list_rules() == []                          # no file: the driver's default, log everything
