"""Rule text survives every trip (save, load, check, list) and cannot forge a line or reach the terminal raw."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner
from unit_config import make_config

from saga import _uapi, rules
from saga.cli.context import Env
from saga.cli.main import app
from saga.errors import RuleError
from saga.render import printable

# Anything printable, quotes, `#` and spaces included.
values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_categories=("Cc",)),
                 min_size=1, max_size=10)


@given(st.lists(st.tuples(st.none() | values.filter(lambda s: len(s.encode()) <= rules.model.COMM_MAX),
                          st.none() | values.filter(lambda s: len(s.encode()) <= rules.model.KEY_MAX)),
                min_size=1, max_size=5))
def test_a_saved_file_loads_back_the_same_rules(fields):
    rs = [rules.Rule("log", ("read",), comm=c, key=k) for c, k in fields]
    text = "# saved\n" + "".join(rules.format(r) + "\n" for r in rs)
    assert rules.parse_lines(text) == rs


def test_hash_outside_quotes_is_a_comment_inside_quotes_a_character():
    assert rules.parse_lines("log read key='a#b'  # why\n") == [rules.Rule("log", ("read",), key="a#b")]
    assert rules.parse_lines("log read key=a#b\n") == [rules.Rule("log", ("read",), key="a")]
    assert rules.format(rules.Rule("log", ("read",), comm="x#y")) == "log read comm='x#y'"


@pytest.mark.parametrize("bad", ["a\nb", "\x1b[2J", "tab\there", "\x9b31m", "del\x7f", "\u202eevil", "x\u2028y"])
def test_control_characters_in_comm_or_key_are_refused(bad):
    for field in ("comm", "key"):
        with pytest.raises(RuleError, match="control characters") as e:
            rules.Rule("log", ("read",), **{field: bad})
        assert printable(str(e.value)) == str(e.value)       # the message shows them escaped


def test_a_file_no_driver_can_hold_is_refused_by_check_and_load(tmp_path, replay, sqlite_url):
    big = tmp_path / "big.rules"
    big.write_text("log read\n" * (_uapi.SAGA_MAX_RULES + 1))
    dup = tmp_path / "dup.rules"
    dup.write_text("3: log read\n3: log write\n")
    env = Env(driver=replay, config=make_config(tmp_path, sqlite_url))
    for path, why in ((big, f"at most {_uapi.SAGA_MAX_RULES}"), (dup, "appears twice")):
        for cmd in (["check"], ["load"], ["load", "--offline"]):
            r = CliRunner().invoke(app, ["rules", *cmd, str(path)], obj=env)
            assert r.exit_code == 64 and why in r.stderr, (cmd, r.stderr)
    assert replay.list_rules() == []
    ok = tmp_path / "ok.rules"
    ok.write_text("log read\n" * _uapi.SAGA_MAX_RULES)
    assert CliRunner().invoke(app, ["rules", "check", str(ok)], obj=env).exit_code == 0


def test_errors_quoting_user_input_stay_one_escaped_line(tmp_path, replay, sqlite_url):
    env = Env(driver=replay, config=make_config(tmp_path, sqlite_url))
    r = CliRunner().invoke(app, ["rules", "add", "log", "read", "--uid", "ro\x1b[31mot\nforged"], obj=env)
    assert r.exit_code == 64 and r.stderr == "saga: uid=ro\\x1b[31mot\\x0aforged: no such user\n"
    r = CliRunner().invoke(app, ["rules", "add", "log", "read", "--key", "k\nforged: 9"], obj=env)
    assert r.exit_code == 64 and len(r.stderr.splitlines()) == 1 and "\x1b" not in r.stderr
    assert replay.list_rules() == []
