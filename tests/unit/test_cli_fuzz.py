"""Any value of any option gives a clear one-line error with a documented exit code, never exit 70.

Hypothesis feeds odd values (huge and negative numbers, inf and nan, empty
strings, quotes, globs, control characters, far dates) to each option and
argument that takes one, through the real command line (CliRunner) on the
replay driver and a SQLite archive.  Commands that never end (`log -f`,
`stats --watch`, `daemon`) are left out; file arguments get fuzzed content
in a temporary file instead of fuzzed paths.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner
from unit_config import make_config

from saga import events
from saga.cli.context import Env
from saga.cli.main import app
from saga.errors import EX_SOFTWARE
from saga.store import Store, archive
from saga.store import rules as stored_rules

DOCUMENTED = {0, 1, 64, 69, 71, 74, 75, 77, 78}    # docs/cli.md, "Exit status and errors"
V = "{}"                                          # where the fuzzed value goes

CASES = [
    ["stats", "--top", V], ["stats", "--sort", V], ["stats", "--count", V, "--json"],
    *(["log", opt, V] for opt in ("--syscall", "--pid", "--comm", "--uid", "--lines", "--count")),
    *(["query", opt, V] for opt in ("--syscall", "--pid", "--comm", "--uid", "--since", "--until", "--host",
                                    "--limit")),
    ["query", "--since", "1h", "--until", V],
    ["rules", "add", V, "read"], ["rules", "add", "log", V],
    *(["rules", "add", "log", "read", opt, V] for opt in ("--pid", "--uid", "--comm", "--key")),
    ["rules", "rm", V], ["rules", "rm", "--key", V],
    ["rules", "check", "FILE"], ["rules", "load", "FILE"], ["rules", "load", "--offline", "FILE"],
    ["--config", "FILE", "rules", "list"],
    ["--db", V, "query"],                 # in a temporary directory: a plain path is a SQLite file there
]

special = st.sampled_from([
    "", " ", "-", "--", "@", "@inf", "@-inf", "@nan", "nan", "inf", "-inf", "1e400", "1e400d", "0x10", "0",
    "-1", "@-1", "4294967295", "4294967296", "18446744073709551616", "999999999999999999999",
    "-999999999999999999999", "%", "%file", "*", "[", "'", '"', "\\", "#", "a#b", "all", "now", "1h", "99999999999d",
    "2026-13-45", "0001-01-01", "9999-12-31T23:59:59Z", "@99999999999999999999", "root", "nobody",
    "\x1b[2J", "a\nb", "\u202e", "\xff", "é", "postgresql://u@[::1", "postgresql://u@h:x/db", "sqlite://",
    "sqlite:///:memory:", "mysql://a/b", "postgresql://u@/db?host=/nonexistent&connect_timeout=1", ".", "/",
])
values = st.one_of(
    special,
    st.integers(-2**80, 2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24),
)
file_texts = st.one_of(
    values.map(lambda v: f"log {v}\n"), values.map(lambda v: f"log read comm={v} key={v}\n"),
    values.map(lambda v: f"[daemon]\nbatch_bytes = {v}\n"), values.map(lambda v: f"[store]\n{v} = 1\n"),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@pytest.fixture
def env(tmp_path, replay, sqlite_url, monkeypatch):
    monkeypatch.chdir(tmp_path)
    replay.advance()
    with Store.open(sqlite_url) as st_:                          # an archive for query and log to search
        with st_.session() as s, s.begin():
            host = stored_rules.host_id(s, "testhost")
        w = archive.EventWriter(st_.engine, host)
        buf = replay.read_raw(1 << 20, timeout=0)
        w.write([(buf, events.parse(buf))])
        w.close()
    return Env(driver=replay, config=make_config(tmp_path, sqlite_url))


def _run(argv: list[str], env: Env, tmp_path, value: str) -> None:
    if "FILE" in argv:
        path = tmp_path / "fuzzed"
        path.write_bytes(value.encode("utf-8", "surrogateescape"))
        argv = [str(path) if a == "FILE" else a for a in argv]
        obj = None if argv[0] == "--config" else env        # the root reads --config only without an Env
    else:
        argv = [value if a == V else a for a in argv]
        obj = env
    r = CliRunner().invoke(app, argv, obj=obj)
    what = f"saga {argv!r}: exit {r.exit_code}\n{r.stderr}"
    assert r.exit_code != EX_SOFTWARE and r.exit_code in DOCUMENTED, what
    assert not r.exception or isinstance(r.exception, SystemExit), what
    assert "Traceback" not in r.stderr and "\x1b" not in r.stderr + r.stdout, what
    if r.exit_code not in (0, 1):
        assert r.stderr.strip(), what
        assert r.stderr.splitlines()[-1].startswith("saga"), what


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_value_makes_an_internal_error(env, tmp_path, data):
    argv = data.draw(st.sampled_from(CASES), label="argv")
    value = data.draw(file_texts if "FILE" in argv else values, label="value")
    _run(argv, env, tmp_path, value)


@pytest.mark.parametrize("every", ["1e300", "inf", "nan", "0", "86401"])
def test_a_watch_interval_no_clock_can_sleep_is_a_usage_error(env, every):
    r = CliRunner().invoke(app, ["stats", "--watch", every, "--count", "1"], obj=env)
    assert r.exit_code == 64 and "--watch" in r.stderr, r.stderr


@pytest.mark.parametrize("argv, code, says", [
    (["query", "-S", "@99999999999999999999"], 64, "out of range"),
    (["query", "-U", "@inf"], 64, "out of range"),
    (["query", "-S", "99999999999d"], 64, "out of range"),
    (["query", "-p", "999999999999999999999"], 64, "pid 999999999999999999999 is out of range"),
    (["log", "-p", "999999999999999999999"], 64, "out of range"),
    (["query", "-u", "4294967296"], 64, "uid 4294967296 is out of range"),
    (["query", "-n", "99999999999999999999999"], 0, ""),                  # more than there are: all of them
    (["--db", "postgresql://u@[::1", "query"], 78, "not a database URL"),
])
def test_values_that_made_internal_errors(env, argv, code, says):
    r = CliRunner().invoke(app, argv, obj=env if argv[0] != "--db" else None)
    assert r.exit_code == code and says in r.stderr, r.stderr
