"""One table of rule cases, run against every driver (issue 14): the replay driver
(tests/unit), the eBPF driver (tests/ebpf) and the kernel module (tests/kernel).

A case is a rule list and one kind of call, with the verdict the rules give it:
`log` (counted, and logged with the id of the deciding rule, 0 for the default
action), `count` or `ignore`.  Live drivers see real calls: `run_live` forks a
worker process (this Python, with the comm, uid and parent the case asks for) that
makes N calls after the rules are installed; the verdict is read back from the
driver (the worker's records, and the slot's counter).  The replay driver sees the
same scenario as records (`run_replay`).  Rule text may name `{pid}` (the calling
process), `{exe}` (its program: this Python) and `{other}` (another program).

BAD lists rule changes every driver refuses, with the error class and errno.
"""
from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass

from saga import events, rules, syscalls
from saga.drivers.base import Driver
from saga.drivers.replay import ReplayDriver
from saga.errors import RuleError, RulesLocked

N = 60            # calls per case
NOBODY = 65534
PARENT = "conf-parent"
WORKER = "conf-worker"
EXE = os.path.realpath(sys.executable)
OTHER = os.path.realpath("/bin/sh")


# The calls: getsid, which the rest of a busy host hardly ever makes (its counter tells what the
# rules did): getsid(0) succeeds, getsid of a pid that cannot exist fails with ESRCH.
SYSCALL = "getsid"
NO_PID = 1 << 30


@dataclass(frozen=True)
class Call:
    fails: bool = False
    comm: str = WORKER            # the caller's name
    uid: int = 0
    tree: str | None = None       # made by a child of a process named PARENT, forked "after" or "before"
                                  # the rules are installed (None: the worker itself calls)


@dataclass(frozen=True)
class Case:
    name: str
    rules: tuple[str, ...]
    call: Call
    verdict: str                  # log | count | ignore
    rule_id: int = 0              # of the rule that logs it (verdict log); rules are numbered from 1
    default: str = "log"


def case(name: str, rule_lines, verdict: str, rule_id: int = 0, **call) -> Case:
    return Case(name, tuple(rule_lines), Call(**call), verdict, rule_id)


CASES = [
    case("log", ["log getsid"], "log", 1),
    case("count", ["count getsid"], "count"),
    case("ignore", ["ignore getsid"], "ignore"),
    case("no rule matches: the default action", ["count openat", "ignore read"], "log", 0),
    case("first match wins", ["count getsid", "log getsid"], "count"),
    case("first match wins, log first", ["log getsid", "count getsid"], "log", 1),
    case("a set of names", ["ignore read,write,getsid,close"], "ignore"),
    case("all", ["ignore all"], "ignore"),
    case("a glob", ["ignore gets*"], "ignore"),
    case("a class", ["count %process", "ignore getsid"], "ignore"),
    case("comm matches", [f"ignore getsid comm={WORKER}"], "ignore"),
    case("comm does not match", ["ignore getsid comm=other"], "log"),
    case("comm, then a field-less rule", ["ignore getsid comm=other", "count getsid"], "count"),
    case("uid matches", [f"ignore getsid uid={NOBODY}"], "ignore", uid=NOBODY),
    case("uid does not match", [f"ignore getsid uid={NOBODY}"], "log"),
    case("pid matches", ["count getsid pid={pid}"], "count"),
    case("pid does not match", ["count getsid pid=1"], "log"),
    case("exe matches", ["count getsid exe={exe}"], "count"),
    case("exe does not match", ["count getsid exe={other}"], "log"),
    case("fields are ANDed", [f"ignore getsid comm={WORKER} uid=1"], "log"),
    case("errors: a failure", ["log getsid errors", "ignore getsid"], "log", 1, fails=True),
    case("errors: a success goes on", ["log getsid errors", "count getsid"], "count"),
    case("errors: a success goes on to ignore", ["count getsid errors", "ignore getsid"], "ignore"),
    case("errors, counted", ["count getsid errors", "ignore getsid"], "count", fails=True),
    case("errors, logged by the next rule", ["ignore getsid errors comm=other", "log getsid"], "log", 2,
         fails=True),
    case("tree: a child forked after the rule", [f"ignore getsid comm={PARENT} tree"], "ignore", tree="after"),
    case("tree: a child forked before the rule", [f"ignore getsid comm={PARENT} tree"], "log", tree="before"),
    case("without tree the child is not covered", [f"ignore getsid comm={PARENT}"], "log", tree="after"),
    case("tree by exe", ["count getsid exe={exe} tree"], "count", tree="after"),
    case("tree rule for another process", ["ignore getsid comm=other tree"], "log", tree="after"),
    case("a tree rule logs its tree", [f"log getsid comm={PARENT} tree", "ignore getsid"], "log", 1,
         tree="after"),
    case("1024 rules walked", [f"count getsid pid={100000 + i}" for i in range(1023)] + ["ignore getsid"],
         "ignore"),
]


@dataclass(frozen=True)
class Bad:
    name: str
    rules: tuple[str | None, ...]   # rule text, with `ID:` (None: 1025 rules)
    error: type
    errno: int | None = None


BAD = [
    Bad("two rules with one id", ("5: log read", "5: log write"), RuleError, errno.EEXIST),
    Bad("a rule without an id", ("log read",), RuleError, errno.EINVAL),
    Bad("more rules than a driver holds", (None,), RuleError, errno.ENOSPC),
    Bad("a program that does not exist", ("1: log read exe=/nonexistent/saga-conformance",), RuleError),
]


def bad_rules(bad: Bad) -> list[rules.Rule]:
    if bad.rules == (None,):
        return [rules.parse(f"{i}: count read pid={i}") for i in range(1, 1026)]
    return [rules.parse(line) for line in bad.rules]


def rule_list(c: Case, pid: int) -> list[rules.Rule]:
    return [rules.parse(line.format(pid=pid, exe=EXE, other=OTHER)).with_id(i)
            for i, line in enumerate(c.rules, 1)]


# -- live drivers ----------------------------------------------------------------------------------

def _name(comm: str) -> None:
    with open("/proc/thread-self/comm", "w") as f:
        f.write(comm)


def _calls(call: Call) -> None:
    for _ in range(N):
        try:
            os.getsid(NO_PID if call.fails else 0)
        except OSError:
            pass


def _wait_ok(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status):
        raise AssertionError(f"worker {pid} failed: status {status:#x}")


def _worker(call: Call, to_parent: int, go: int) -> None:
    """In the forked worker: report the caller's pid, wait for the rules, make the calls."""
    os.setgroups([])
    os.setgid(call.uid)
    os.setuid(call.uid)
    if call.tree is None:
        _name(call.comm)
        os.write(to_parent, f"{os.getpid()}\n".encode())
        os.read(go, 1)
        _calls(call)
        return
    _name(PARENT)
    child_go_r, child_go_w = os.pipe()

    def child() -> None:
        child_pid = os.fork()
        if child_pid == 0:
            _name(call.comm)
            os.read(child_go_r, 1)
            _calls(call)
            os._exit(0)
        return child_pid

    if call.tree == "before":
        pid = child()
        os.write(to_parent, f"{pid}\n".encode())
        os.read(go, 1)
    else:
        os.write(to_parent, f"{os.getpid()}\n".encode())   # rules naming the parent are what count
        os.read(go, 1)
        pid = child()
    os.write(child_go_w, b"x")
    _wait_ok(pid)


def drain(drv: Driver) -> list[tuple]:
    """The records buffered now, parsed (bounded: other processes on a host keep logging)."""
    out: list[tuple] = []
    for _ in range(64):
        buf = drv.read_raw(1 << 24, timeout=0)
        if not buf:
            break
        out.extend(events.parse(buf))
    return out


def run_live(drv: Driver, c: Case) -> tuple[str, set[int]]:
    """The verdict a live driver gives the case's calls, and the rule ids on their records."""
    slot = syscalls.BY_NAME[SYSCALL].slot
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    worker = os.fork()
    if worker == 0:
        code = 1
        try:
            os.close(report_r)
            os.close(go_w)
            _worker(c.call, report_w, go_r)
            code = 0
        finally:
            os._exit(code)
    os.close(report_w)
    os.close(go_r)
    try:
        caller = int(os.read(report_r, 64).split()[0])
        drv.replace_rules(rule_list(c, caller))
        drain(drv)
        before = drv.stats().per_slot.get(slot, (0, 0))[0]
        os.write(go_w, b"x")
        _wait_ok(worker)
    finally:
        os.close(report_r)
        os.close(go_w)
    counted = drv.stats().per_slot.get(slot, (0, 0))[0] - before
    mine = [r for r in drain(drv) if r[events.NR] == slot and events.comm_str(r[events.COMM]) == c.call.comm]
    ids = {r[events.RULE_ID] for r in mine}
    if len(mine) == N:
        return "log", ids
    assert not mine, f"{len(mine)} of {N} calls logged"
    return ("count" if counted >= N else "ignore"), ids


# -- the replay driver -------------------------------------------------------------------------------

def run_replay(c: Case) -> tuple[str, set[int]]:
    """The same scenario as records: the calls (and the parent's fork) as a kernel driver would see them."""
    drv = ReplayDriver(default_action=c.default)
    try:
        parent, caller = 4000, 4001
        slot = syscalls.BY_NAME[SYSCALL].slot
        common = dict(uid=c.call.uid, gid=c.call.uid)
        before, after = [], []
        if c.call.tree is not None:
            fork = events.pack(dict(nr=syscalls.BY_NAME["clone"].slot, pid=parent, ret=caller, comm=PARENT,
                                    **common))
            (before if c.call.tree == "before" else after).append(fork)
            drv.set_exe(parent, EXE)
        else:
            caller = parent
            drv.set_exe(caller, EXE)
        calls = [events.pack(dict(nr=slot, pid=caller, ppid=parent, comm=c.call.comm,
                                  ret=-errno.ESRCH if c.call.fails else parent, **common)) for _ in range(N)]
        drv.feed(b"".join(before))
        drv.advance()
        drv.replace_rules(rule_list(c, parent if c.call.tree == "after" else caller))
        drv.read_raw(1 << 20)
        drv.reset_stats()
        drv.feed(b"".join(after + calls))
        drv.advance()
        mine = [r for r in events.parse(drv.read_raw(1 << 24)) if r[events.NR] == slot]
        counted = drv.stats().per_slot.get(slot, (0, 0))[0]
        ids = {r[events.RULE_ID] for r in mine}
        if mine:
            assert len(mine) == N
            return "log", ids
        return ("count" if counted >= N else "ignore"), ids
    finally:
        drv.close()


def check(c: Case, got: tuple[str, set[int]]) -> None:
    verdict, ids = got
    assert verdict == c.verdict
    if verdict == "log":
        assert ids == {c.rule_id}


def check_bad(drv: Driver, bad: Bad) -> None:
    before = drv.list_rules()
    try:
        drv.replace_rules(bad_rules(bad))
    except bad.error as exc:
        if bad.errno is not None:
            assert exc.errno == bad.errno
    else:
        raise AssertionError(f"{bad.name}: accepted")
    assert drv.list_rules() == before      # nothing half-applied


def check_locked(drv: Driver) -> None:
    """After lock_rules: every change is refused with RulesLocked, listing still works."""
    before = drv.list_rules()
    drv.lock_rules()
    for change in (lambda: drv.replace_rules([]), lambda: drv.set_enabled(False)):
        try:
            change()
        except RulesLocked:
            pass
        else:
            raise AssertionError("a change was accepted after lock")
    drv.lock_rules()          # locking again changes nothing
    assert drv.list_rules() == before and drv.info().locked and drv.info().enabled
