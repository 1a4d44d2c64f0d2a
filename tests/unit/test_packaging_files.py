"""packaging/gen_files.py: the files the saga package generates from the code and docs."""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

from saga import config

REPO = Path(__file__).resolve().parents[2]
DOC = str(REPO / "docs/config.md")


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("saga_pkg_gen_files", REPO / "packaging/gen_files.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_conffile_comments_every_default(gen, tmp_path):
    out = tmp_path / "saga.toml"
    gen.conffile(DOC, str(out))
    text = out.read_text()
    # as shipped: every key commented, so the file means the defaults
    cfg = config.from_dict(tomllib.loads(text))
    assert dataclasses.replace(cfg, path=None) == config.Config()
    defaults = tomllib.loads(config.defaults_toml())
    for section, table in defaults.items():
        assert f"[{section}]" in text
        for key in table:
            assert re.search(rf"^#{key} = ", text, re.M), f"[{section}] {key} is not in the conffile"
    assert all(len(line) <= 80 for line in text.splitlines())


def test_a_key_the_docs_do_not_describe_stops_the_build(gen, tmp_path):
    doc = tmp_path / "config.md"
    doc.write_text(Path(DOC).read_text().replace("| `retention_days` |", "| `retention_dayz` |"))
    with pytest.raises(SystemExit, match="retention_days"):
        gen.conffile(str(doc), str(tmp_path / "out"))


def test_man_pages(gen, tmp_path):
    gen.man_config(DOC, "9.9", str(tmp_path / "saga.toml.5"))
    page = (tmp_path / "saga.toml.5").read_text()
    assert page.startswith('.TH SAGA.TOML 5 ')
    assert "\\fBretention_days\\fR = 30.0" in page
    gen.man_cli("9.9", str(tmp_path / "saga.8"))
    page = (tmp_path / "saga.8").read_text()
    assert page.startswith('.TH SAGA 8 ')
    for cmd in ("saga daemon", "saga rules add", "saga query", "saga stats"):
        assert f'.SS "{cmd}' in page, cmd
    # roff: no line may start with a control character it did not mean
    assert not [ln for ln in page.splitlines() if ln.startswith("'")]


def test_markdown_inline_to_roff(gen):
    assert gen.roff_inline("see `saga log` and *restart*") == "see \\fBsaga log\\fR and \\fIrestart\\fR"
    assert gen.plain("[store.md](store.md)") == "/usr/share/doc/saga/store.md"
    assert gen.roff(".hidden -x") == "\\&.hidden \\-x"
