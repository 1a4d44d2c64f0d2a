"""tools/strace_compare.py: strace's output parsed, calls paired and compared (the parity test's instrument)."""
import sys
from pathlib import Path

from saga import events, syscalls

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import strace_compare as sc  # noqa: E402

STRACE = """\
100 execve("/bin/x", ["x", "a, b"], 0x7ffd /* 3 vars */) = 0
100 futex(0x7f00, FUTEX_WAKE_PRIVATE, 1 <unfinished ...>
101 openat(AT_FDCWD, "/etc/a\\"b", O_RDONLY|O_CLOEXEC) = 3
100 <... futex resumed>)                = 0
101 fcntl(3, F_GETFL)                   = 0x8002 (flags O_RDWR|O_LARGEFILE)
101 rt_sigprocmask(SIG_SETMASK, ~[RTMIN RT_1], NULL, 8) = 0
101 +++ exited with 0 +++
100 exit_group(0)                       = ?
"""


def test_strace_lines_are_parsed_and_unfinished_calls_joined():
    calls = sc.parse_strace(STRACE)
    assert [c.name for c in calls[100]] == ["execve", "futex", "exit_group"]
    assert calls[100][0].args == ['"/bin/x"', '["x", "a, b"]', "0x7ffd"]
    assert calls[100][1].args == ["0x7f00", "FUTEX_WAKE_PRIVATE", "1"] and calls[100][1].ret == "0"
    assert calls[101][0].args[1] == '"/etc/a\\"b"'
    assert sc.ret_symbol(calls[101][1].ret) == "O_RDWR|O_LARGEFILE"
    assert calls[100][2].ret == "?"


def rec(tid, name, *args, ret=0, ts=0):
    return events.parse(events.pack(dict(nr=syscalls.BY_NAME[name].slot, pid=tid, tid=tid, args=args, ret=ret,
                                         ts_ns=ts)))[0]


def test_a_number_where_strace_has_a_symbol_is_a_gap_and_a_wrong_value_is_counted():
    calls = sc.parse_strace(STRACE)
    raws = [rec(100, "getpid", ts=1),   # a call strace did not see: left unpaired
            rec(100, "execve", 1, 2, 0x7FFD, ts=2), rec(100, "futex", 0x7F00, 0x81, 1, ts=3),
            rec(101, "openat", 2**32 - 100, 5, 0o2000000, ret=3, ts=4), rec(101, "fcntl", 3, 3, ret=0x8002, ts=5),
            rec(101, "rt_sigprocmask", 2, 0x7F10, 0, 8, ts=6), rec(100, "exit_group", 0, ts=7)]
    rep = sc.compare(calls, raws)
    assert rep.calls == rep.paired == 6 and rep.gap_calls == 0 and rep.value_calls == 0
    assert rep.memory_calls == 1   # the signal set strace read: not compared

    wrong = list(raws)
    wrong[2] = rec(100, "futex", 0x7F00, 0x81, 2, ts=3)       # val 2, strace says 1
    rep = sc.compare(calls, wrong)
    assert rep.value_calls == 1 and rep.values == {("futex", "val"): 1}


def test_the_comparison_sees_what_an_older_renderer_printed(monkeypatch):
    from saga import decode, render
    monkeypatch.setitem(decode.CALLS, "futex", lambda a, out: [out[0], str(a[1]), out[2]])
    render.clear_caches()
    try:
        rep = sc.compare(sc.parse_strace(STRACE), [rec(100, "futex", 0x7F00, 0x81, 1, ts=3)])
    finally:
        render.clear_caches()
    assert rep.gap_calls == 1 and rep.gaps[("futex", "op")] == 1 and rep.gap_share == 1.0


def test_symbols_compare_as_sets_and_aliases():
    assert sc.same_symbol("O_RDONLY|O_CLOEXEC|O_DIRECTORY", "O_RDONLY|O_DIRECTORY|O_CLOEXEC")
    assert sc.same_symbol("BTRFS_IOC_CLONE or FICLONE", "FICLONE")
    assert not sc.same_symbol("SIGRT_2", "SIGRTMIN")
    assert sc.is_symbolic("NULL") and not sc.is_symbolic("0x7f") and not sc.is_symbolic("[{fd=3}]")
