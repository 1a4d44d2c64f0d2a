"""`saga query` and `saga report` start without typer when their command line is plain (saga.cli.main):
the same output, errors and exit codes as typer's commands, which are built from the same option tables."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saga.cli import main as cli_main
from saga.cli import options
from saga.cli.app import build


@pytest.fixture
def db(archived_db) -> str:
    return archived_db


def _fast(argv: list[str], capsys) -> tuple[int | None, str, str]:
    at = cli_main.command_at(argv)
    assert at is not None
    code = cli_main._fast(argv[at], argv, at)
    got = capsys.readouterr()
    return code, got.out, got.err


def _typer(argv: list[str]) -> tuple[int, str, str]:
    r = CliRunner().invoke(build(), argv)
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


def test_plain_command_lines_print_what_typer_prints(db, tmp_path, capsys, monkeypatch):
    config = ["--config", str(tmp_path / "saga.toml")]
    cases = [
        ["query"], ["query", "-n", "0", "--errno", "EACCES"], ["query", "--errors", "--limit=5", "--json"],
        ["query", "-n", "0", "--path", "/etc/*", "-s", "openat,newfstatat", "--with-host"],
        ["query", "-x", "saga-fixture", "-n", "3"], ["query", "--errno", "EXDEV"], ["query", "--errno", "ENOPE"],
        ["query", "--since", "tomorrowish"], ["query", "--host", "nope"],
        ["report"], ["report", "--by", "errno", "--json"], ["report", "-b", "file", "-t", "5", "--sort", "failures"],
        ["report", "--by", "colour"], ["report", "--errno", "EXDEV"],
    ]
    for case in cases:
        for argv in (["--db", db, *case], [*config, *case]):
            fast = _fast(argv, capsys)
            assert fast[0] is not None, argv
            assert fast == _typer(argv), argv
    monkeypatch.setenv("SAGA_DB", db)          # --db from the environment, as click reads it
    assert _fast(["query", "-n", "2"], capsys) == _typer(["query", "-n", "2"])
    assert _fast(["--config", str(tmp_path / "nope.toml"), "query"], capsys) == \
        _typer(["--config", str(tmp_path / "nope.toml"), "query"])


def test_what_the_fast_start_leaves_to_typer():
    for args in (["-en0"], ["-n"], ["-n", "-1"], ["-n", "1e3"], ["--pid", "x"], ["--help"], ["-h"], ["extra"],
                 ["--json=yes"], ["--sort", "size"], ["--nope"], ["--"]):
        table = options.REPORT if "--sort" in args else options.QUERY
        assert options.parse(args, table) is None, args
    assert options.parse(["-n", "0", "-e", "--path=/etc/*"], options.QUERY) == \
        {**{o.dest: o.default for o in options.QUERY}, "limit": 0, "errors": True, "path": "/etc/*"}
    assert cli_main.command_at(["--db", "query", "report"]) == 2
    assert cli_main.command_at(["--debug", "query"]) == 1
    assert cli_main.command_at(["--version", "query"]) is None
    assert cli_main.command_at(["querry"]) is None


def test_the_option_tables_are_the_typer_commands_options():
    """typer's commands are made from the tables (saga itself: by hand, from the same entries)."""
    import typer.main
    skip = {"ctx", "version", "help", "install_completion", "show_completion"}
    for name, table in (("", options.ROOT), ("query", options.QUERY), ("report", options.REPORT)):
        group = typer.main.get_command(build(name or None))
        cmd = group.commands[name] if name else group      # type: ignore[attr-defined]
        params = {p.name: p for p in cmd.params if p.name not in skip}
        assert list(params) == [o.dest for o in table], name
        for o in table:
            p = params[o.dest]
            assert (tuple(p.opts), p.help, p.metavar, p.envvar) == (o.flags, o.help, o.metavar, o.envvar), o
            assert getattr(p.default, "value", p.default) == o.default, o


def _loaded(argv: list[str]) -> tuple[set[str], str]:
    """The top-level modules `saga ARGV` loaded in a new interpreter, and its OPENBLAS_NUM_THREADS."""
    code = "\n".join([
        "import os, sys",
        "from saga.cli.main import main",
        f"sys.argv = ['saga', *{argv!r}]",
        "try:",
        "    main()",
        "except SystemExit as e:",
        "    assert e.code in (0, None), e.code",
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))",
        "print(os.environ.get('OPENBLAS_NUM_THREADS'))"])
    env = {k: v for k, v in os.environ.items() if k not in ("SAGA_DB", "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parent, timeout=120)
    assert out.returncode == 0, out.stderr
    modules, blas = out.stdout.splitlines()[-2:]
    return set(modules.split()), blas


# Not needed to search and print a SQLite archive: what each costs a command's start (docs/benchmarks.md).
HEAVY = {"typer", "click", "pydantic", "sqlalchemy", "rich", "psycopg", "psutil", "pyfuse3", "trio"}
NOT_TO_SEARCH = {"difflib", "json", "socket", "calendar", "shlex", "urllib", "ipaddress"}


def test_a_plain_search_loads_neither_typer_nor_sqlalchemy_nor_what_it_does_not_use(db):
    loaded, blas = _loaded(["--db", db, "query", "-n", "2", "--errno", "ENOENT"])
    assert loaded & (HEAVY | NOT_TO_SEARCH) == set()
    assert blas == "1"         # numpy's BLAS starts one thread, not one per CPU (they spin at start)
    loaded, _ = _loaded(["--db", db, "report", "--by", "syscall"])
    assert loaded & (HEAVY | NOT_TO_SEARCH) == set()
    assert "json" in _loaded(["--db", db, "query", "-n", "2", "--json"])[0]    # the check can see a module


def test_a_commands_help_loads_neither_numpy_nor_the_database_drivers():
    for command in ("query", "report"):
        loaded, _ = _loaded([command, "--help"])
        assert "typer" in loaded
        assert loaded & {"numpy", "sqlalchemy", "psycopg", "sqlite3", "psutil", "pyfuse3"} == set()
