"""/sagafs/rules and error_log: commands by write(2), all or nothing, errors readable afterwards."""
from __future__ import annotations

import errno
import os
import subprocess

import pytest

from saga import rules
from saga.rules.service import RulesService
from saga.store import Store


def write(m, text: str, name: str = "rules") -> None:
    fd = os.open(m.path(name), os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_fails(m, text: str) -> int:
    with pytest.raises(OSError) as err:
        write(m, text)
    return err.value.errno


def in_force(m) -> list[str]:
    return [rules.format(r, with_id=True) for r in m.driver.list_rules()]


def stored(m) -> list[str]:
    with Store.open(m.config.store.url) as st:
        return [rules.format(r, with_id=True) for r in RulesService(st, None, "testhost").stored()]


def test_reading_lists_the_rules_as_saga_rules_list_does(fs):
    assert fs.read("rules") == b""
    with Store.open(fs.config.store.url) as st:
        RulesService(st, fs.driver, "testhost").add(rules.parse("count read,write comm=nginx"))
    assert fs.text("rules") == "1: count read,write comm=nginx\n"


def test_a_line_adds_minus_id_removes_clear_clears(fs):
    write(fs, "ignore openat\n")
    write(fs, "log read pid=42 key=k1\ncount write errors\n")          # two at once
    want = ["1: ignore openat", "2: log read pid=42 key=k1", "3: count write errors"]
    assert in_force(fs) == stored(fs) == want
    assert fs.text("rules").splitlines() == want
    write(fs, "-2\n")
    assert in_force(fs) == stored(fs) == [want[0], want[2]]
    write(fs, "# a comment\n\nclear\n")
    assert in_force(fs) == stored(fs) == []
    assert fs.read("error_log") == b""


def test_shell_redirections_add_without_truncating(fs):
    for op in (">", ">>"):
        subprocess.run(["sh", "-c", f"echo 'ignore close' {op} {fs.path('rules')}"], check=True)
    assert in_force(fs) == ["1: ignore close", "2: ignore close"]


def test_a_bad_line_fails_the_write_applies_nothing_and_says_why(fs):
    write(fs, "ignore openat\n")
    assert write_fails(fs, "count read\nignore opne\n") == errno.EINVAL
    assert in_force(fs) == stored(fs) == ["1: ignore openat"]
    log = fs.text("error_log")
    assert "rules: error: unknown syscall 'opne'; did you mean" in log and "Command: ignore opne" in log
    assert write_fails(fs, "count read\n-99\n") == errno.ENOENT              # parses, cannot apply: rolled back
    assert in_force(fs) == stored(fs) == ["1: ignore openat"]
    assert "no rule with id 99\n  Command: -99" in fs.text("error_log")
    for bad in ("-x\n", "3: ignore read\n", "ignore\n", "\xff\n"):
        assert write_fails(fs, bad) == errno.EINVAL, bad
    assert in_force(fs) == ["1: ignore openat"]
    out = subprocess.run(["bash", "-c", f"echo 'frobnicate read' > {fs.path('rules')}"], capture_output=True, text=True,
                         check=False)
    assert out.returncode != 0 and "Invalid argument" in out.stderr
    write(fs, "\n", "error_log")                                               # any write clears it
    assert fs.read("error_log") == b""
    assert write_fails(fs, "-99\n") == errno.ENOENT
    subprocess.run(["sh", "-c", f": > {fs.path('error_log')}"], check=True)     # so does truncating it
    assert fs.read("error_log") == b""


def test_warnings_are_logged_for_rules_that_are_applied(fs):
    write(fs, "ignore open\n")
    assert in_force(fs) == ["1: ignore open"]
    assert "rules: warning: glibc calls openat rather than open" in fs.text("error_log")


def test_locked_rules_refuse_with_eperm(fs):
    write(fs, "ignore read\n")
    fs.driver.lock_rules()
    assert write_fails(fs, "ignore write\n") == errno.EPERM
    assert "rules are locked" in fs.text("error_log")
    assert in_force(fs) == stored(fs) == ["1: ignore read"]


def test_read_only_files_refuse_writes(fs):
    for name in ("log", "stats", "status", "pipe", "syscalls/read/count"):
        with pytest.raises(PermissionError):
            os.open(fs.path(name), os.O_WRONLY)


def test_rules_decide_what_the_log_shows(fs, raws, recording):
    from saga.events import NR
    openat = rules.parse("ignore openat").slots
    write(fs, "ignore openat\n")
    fs.driver.feed(recording)
    fs.wait_drained(len(raws) + sum(1 for r in raws if r[NR] not in openat))
    assert "openat(" not in fs.text("log").splitlines()[-1]
    assert fs.text("syscalls/openat/count") == f"{sum(1 for r in raws if r[NR] in openat)}\n"


def test_a_line_cut_across_writes_is_applied_whole(fs):
    fd = os.open(fs.path("rules"), os.O_WRONLY)
    try:
        os.write(fd, b"log open")                   # not `log open`: the line has not ended
        assert in_force(fs) == []
        os.write(fd, b"at key='a#b' # a comment\ncount re")
        assert in_force(fs) == ["1: log openat key='a#b'"]
        os.write(fd, b"ad")
    finally:
        os.close(fd)                                # a last line without its newline: applied at close
    assert in_force(fs) == stored(fs) == ["1: log openat key='a#b'", "2: count read"]
    fd = os.open(fs.path("rules"), os.O_WRONLY)
    os.write(fd, b"ignore opne")
    with pytest.raises(OSError) as err:             # its error is close's
        os.close(fd)
    assert err.value.errno == errno.EINVAL and len(in_force(fs)) == 2


def test_control_characters_are_refused_and_shown_escaped(fs):
    assert write_fails(fs, "log read key=\x1b[2Jx\n") == errno.EINVAL
    assert in_force(fs) == []
    log = fs.text("error_log")
    assert "\x1b" not in log and "key=\\x1b[2Jx" in log
