import pytest
from hypothesis import given
from hypothesis import strategies as st

from saga import rules, syscalls
from saga.errors import RuleError

names = st.sampled_from(sorted(syscalls.NATIVE_NAMES))
tokens = st.one_of(names, st.sampled_from(["all", "open*", "*stat*", "%file", "%network", "%process", "%memory",
                                           "%signal", "%ipc", "ia32:socketcall"]))
text = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_categories=("Cc",)), min_size=1,
               max_size=8)


@st.composite
def rule_st(draw):
    return rules.Rule(
        action=draw(st.sampled_from(["log", "count", "ignore"])),
        syscalls=tuple(draw(st.lists(tokens, min_size=1, max_size=4, unique=True))),
        pid=draw(st.none() | st.integers(0, 2**31)),
        uid=draw(st.none() | st.integers(0, 2**31)),
        comm=draw(st.none() | text.filter(lambda s: len(s.encode()) <= 15)),
        errors=draw(st.booleans()),
        key=draw(st.none() | text),
        id=draw(st.none() | st.integers(1, 10**6)),
    )


@given(rule_st())
def test_parse_inverts_format(rule):
    assert rules.parse(rules.format(rule, with_id=True)) == rule


def test_globs_classes_and_all_expand():
    assert {syscalls.name_of(s) for s in rules.parse("log open*").slots} >= {"open", "openat", "openat2"}
    assert syscalls.BY_NAME["openat"].slot in rules.parse("log %file").slots
    assert syscalls.BY_NAME["connect"].slot in rules.parse("log %network").slots
    assert rules.parse("ignore all").slots == frozenset(range(1024))  # named or not


def test_legacy_name_warns_with_suggestion():
    (warning,) = rules.parse("ignore open").warnings()
    assert "openat" in warning and "open*" in warning
    assert rules.parse("ignore open*").warnings() == []


@pytest.mark.parametrize("line, message", [
    ("ignore opne", "did you mean open"),
    ("drop open", "unknown action"),
    ("log %nope", "unknown class"),
    ("log zz*", "matches no syscall"),
    ("log open pid=abc", "needs a number"),
    ("log open comm=abcdefghijklmnop", "comm must be"),
    ("log open frob=1", "unknown field"),
    ("log open errors errors", "given twice"),
    ("log", "a rule is ACTION SYSCALLS"),
    ("log open uid=no-such-user-here", "no such user"),
])
def test_bad_rules_say_why(line, message):
    with pytest.raises(RuleError, match=message):
        rules.parse(line)


def test_rule_file_errors_name_the_line():
    with pytest.raises(RuleError, match=r"f.rules:3: unknown syscall"):
        rules.parse_lines("# comment\nlog open\nlog nosuchcall\n", "f.rules")
    assert [r.action for r in rules.parse_lines("log open  # trailing\n\ncount read\n")] == ["log", "count"]


def test_bitmap_round_trip():
    rule = rules.parse("log open*,ia32:socketcall")
    assert rules.slots_from_bitmap(rule.bitmap()) == rule.slots
