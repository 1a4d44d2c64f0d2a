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
    gen.man_cli(str(REPO / "docs/install.md"), "9.9", str(tmp_path / "saga.8"))
    page = (tmp_path / "saga.8").read_text()
    assert page.startswith('.TH SAGA 8 ')
    for cmd in ("saga daemon", "saga rules add", "saga query", "saga stats", "saga driver status",
                "saga driver load", "saga driver unload"):
        assert f'.SS "{cmd}' in page, cmd
    # The service's lifecycle and the everyday tasks come from docs/install.md.
    assert '.SH "THE SERVICE AND THE DRIVER"' in page and "\\fBExecStopPost=saga driver unload" in page
    examples = page.split(".SH EXAMPLES\n", 1)[1].split(".SH ", 1)[0]
    assert "saga rules add ignore 'open*'" in examples and "systemctl status saga" in examples
    # roff: no line may start with a control character it did not mean
    assert not [ln for ln in page.splitlines() if ln.startswith("'")]


@pytest.mark.parametrize(("doc", "name", "section", "expect"), [
    ("rules.md", "saga-rules", "7", ["ACTION SYSCALLS [pid=N]", '.SH "ORDER AND DEFAULTS"', ".TP\n\\fB%file\\fR"]),
    ("sagafs.md", "sagafs", "5", ['.SH "THE FILES"', '.SS "log"', '.SH "PERMISSIONS"']),
    ("log-format.md", "saga-log", "5", ['.SH "JSON (\\-\\-JSON)"']),
])
def test_man_pages_from_the_documents(gen, tmp_path, doc, name, section, expect):
    out = tmp_path / f"{name}.{section}"
    gen.man_doc(str(REPO / "docs" / doc), name, section, "what it is", "9.9", str(out))
    page = out.read_text()
    assert page.startswith(f".TH {name.upper()} {section} ")
    assert page.split("\n")[2] == f"{gen.roff(name)} \\- what it is"
    for text in expect:
        assert text in page, text
    assert "|" not in "".join(ln for ln in page.splitlines() if not ln.startswith((".", " ")) and "`" in ln)
    assert not [ln for ln in page.splitlines() if ln.startswith("'")]
    # Every heading, table row and list item of the document made it into the page.
    text = (REPO / "docs" / doc).read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("|---")]
    headings = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert page.count(".TP") >= len(rows) - text.count("\n|---") and page.count(".SH") >= len(headings)


def test_every_document_the_package_points_at_is_shipped():
    """Man pages, the conffile and messages name docs as /usr/share/doc/saga/X.md or docs/X.md; the package
    installs docs/*.md there (debian/rules), so each X must be one of them."""
    shipped = {p.name for p in (REPO / "docs").glob("*.md")}
    named = set()
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "docs").glob("*.md"), REPO / "packaging/gen_files.py",
                 REPO / "packaging/debian/saga.service"]:
        text = path.read_text()
        named |= set(re.findall(r"(?:docs/|/usr/share/doc/saga/)([\w.-]+\.md)", text))
        if path.parent.name == "docs":
            named |= {t for t in re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]*)?\)", text)}
    assert named and not named - shipped, sorted(named - shipped)


def test_markdown_inline_to_roff(gen):
    assert gen.roff_inline("see `saga log` and *restart*") == "see \\fBsaga log\\fR and \\fIrestart\\fR"
    assert gen.plain("[store.md](store.md)") == "/usr/share/doc/saga/store.md"
    assert gen.roff(".hidden -x") == "\\&.hidden \\-x"
