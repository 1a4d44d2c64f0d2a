"""docs/architecture.md, the map of the tree, names only files and sections that exist."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
TREE = ("src", "kmod", "bpf", "tools", "tests", "packaging", "bench", "docs")
PATHISH = re.compile(r"`([\w./-]+\.(?:py|c|h|md|sh|txt)|[\w.-]+/(?:[\w.-]+/?)*)`")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _exists(name: str) -> bool:
    """A path from the top, src/saga or docs/; a bare file name (in a list after its directory) anywhere."""
    name = name.rstrip("/")
    if "/" not in name and any(any((ROOT / d).glob(f"**/{name}")) for d in TREE):
        return True
    return any((base / name).exists() for base in (ROOT, ROOT / "src" / "saga", ROOT / "docs"))


def test_every_named_file_exists():
    missing = sorted({m for m in PATHISH.findall(DOC.read_text()) if not _exists(m)})
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_every_link_and_anchor_resolves():
    bad = []
    for target in re.findall(r"\]\(([^)]+)\)", DOC.read_text()):
        path, _, anchor = target.partition("#")
        doc = (DOC.parent / path).resolve()
        if not doc.exists():
            bad.append(target)
        elif anchor and anchor not in {_slug(h) for h in re.findall(r"^#+ (.*)$", doc.read_text(), re.M)}:
            bad.append(target)
    assert not bad, f"docs/architecture.md links to nothing: {bad}"


def test_every_source_file_is_on_the_map():
    """A newcomer finds any piece from the map: each source file of the module, the BPF program and the
    package is named in it (by its file name)."""
    text = DOC.read_text()
    files = [*ROOT.glob("kmod/*.[ch]"), *ROOT.glob("bpf/*.[ch]"), *ROOT.glob("src/saga/**/*.py")]
    unnamed = sorted(str(f.relative_to(ROOT)) for f in files
                     if f.name != "__init__.py" and not re.search(rf"[`/]{re.escape(f.name)}`", text))
    assert not unnamed, f"docs/architecture.md does not say where these are: {unnamed}"
