#!/usr/bin/env python3
"""Generate the saga package's files from the code and the docs, at build time.

    gen_files.py conffile DOC OUT               /etc/saga/saga.toml: the defaults, commented
    gen_files.py man-config DOC VERSION OUT     saga.toml(5)
    gen_files.py man-cli INSTALL VERSION OUT    saga(8), from the command tree and docs/install.md
    gen_files.py man-doc MD NAME SECTION WHAT VERSION OUT   a page from one of docs/*.md
    gen_files.py completion OUT                 bash completion

DOC is docs/config.md: its `## \\`[section]\\`` tables give each key's meaning,
saga.config gives the keys and their defaults; a key missing from either side
stops the build.  INSTALL is docs/install.md: its sections "The service and
the driver" and "Everyday tasks" become saga(8)'s SERVICE and EXAMPLES.
Run with the packaged venv's python (debian/rules).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import re
import sys
import textwrap
import tomllib

from saga import config as saga_config

# ---------------------------------------------------------------- docs/config.md

_SECTION = re.compile(r"^## `\[(\w+)\]`\s*$")
_ROW = re.compile(r"^\|\s*`(\w+)`\s*\|(.*)\|(.*)\|(.*)\|\s*$")


@dataclasses.dataclass
class Key:
    section: str
    name: str
    kind: str
    default: str
    meaning: str
    restart: bool


def read_doc(path: str) -> tuple[list[str], dict[tuple[str, str], Key]]:
    """The introduction's lines (before the first `##`) and the documented keys."""
    intro: list[str] = []
    keys: dict[tuple[str, str], Key] = {}
    section = None
    in_intro = True
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("## "):
                in_intro = False
                m = _SECTION.match(line)
                section = m.group(1) if m else None
                continue
            if in_intro and not line.startswith("# "):
                intro.append(line)
            m = _ROW.match(line)
            if section and m:
                name, kind, default, meaning = (g.strip() for g in m.groups())
                restart = "*restart*" in meaning
                meaning = meaning.replace("*restart*", "").strip().rstrip(".")
                keys[(section, name)] = Key(section, name, plain(kind), plain(default), meaning, restart)
    return intro, keys


def config_keys(doc: dict[tuple[str, str], Key]) -> list[tuple[str, list[tuple[Key, str]]]]:
    """[(section, [(documented key, default as TOML)])] in saga.config's order; both sides must agree."""
    defaults = tomllib.loads(saga_config.defaults_toml())
    out, seen = [], set()
    for section, table in defaults.items():
        rows = []
        for name, value in table.items():
            key = doc.get((section, name))
            if key is None:
                sys.exit(f"gen_files: docs/config.md documents no key [{section}] {name}")
            seen.add((section, name))
            rows.append((key, toml_value(value)))
        out.append((section, rows))
    extra = sorted(set(doc) - seen)
    if extra:
        sys.exit(f"gen_files: docs/config.md documents keys saga.config does not have: {extra}")
    return out


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


DOC_DIR = "/usr/share/doc/saga"


def links(md: str) -> str:
    """[text](target) as its text; a link to another doc as where the package installs it."""
    def one(m):
        text, target = m.groups()
        if re.fullmatch(r"[\w.-]+\.md", target):
            return f"{DOC_DIR}/{target}"
        return text
    md = re.sub(r"\[([^]]+)\]\(([^)]*)\)", one, md)
    return re.sub(r"\bdocs/([\w.-]+\.md)\b", rf"{DOC_DIR}/\1", md)     # docs/*.md, as installed


def plain(md: str) -> str:
    """Markdown inline text as plain text."""
    md = links(md)
    md = re.sub(r"\*\*([^*]+)\*\*|\*([^*]+)\*", lambda m: m.group(1) or m.group(2), md)
    return md.replace("`", "")


# ---------------------------------------------------------------- the conffile

def conffile(doc_path: str, out: str) -> None:
    _, doc = read_doc(doc_path)
    lines = [
        "# /etc/saga/saga.toml: saga's configuration (man 5 saga.toml).",
        "#",
        "# Every key is optional; the commented lines show the defaults.  Uncomment",
        "# and change what you need, then `systemctl reload saga` (keys marked",
        "# \"restart\" take effect at `systemctl restart saga`).",
    ]
    for section, rows in config_keys(doc):
        lines += ["", f"[{section}]"]
        for key, value in rows:
            text = plain(key.meaning) + (" (restart)" if key.restart else "")
            lines += textwrap.wrap(text, 76, initial_indent="# ", subsequent_indent="#   ",
                                   break_on_hyphens=False, break_long_words=False)
            lines.append(f"#{key.name} = {value}")
    text = "\n".join(lines) + "\n"
    check_conffile(text)
    write(out, text)


def check_conffile(text: str) -> None:
    """As shipped and with every key uncommented, the file must mean the defaults."""
    uncommented = re.sub(r"(?m)^#(\w+ = )", r"\1", text)
    for variant in (text, uncommented):
        cfg = saga_config.from_dict(tomllib.loads(variant))
        if dataclasses.replace(cfg, path=None) != saga_config.Config():
            sys.exit("gen_files: the generated saga.toml does not mean the defaults")


# ---------------------------------------------------------------- roff

def roff(text: str) -> str:
    """Plain text escaped for roff (a line must not start with . or ')."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


def roff_inline(md: str) -> str:
    """Markdown inline text as roff: `code` bold, *em* italic, links as their text."""
    md = links(md)
    parts = re.split(r"(`[^`]*`|\*\*[^*]+\*\*|\*[^*]+\*)", md)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) > 1:
            out.append("\\fB" + roff(p[1:-1]) + "\\fR")
        elif p.startswith("**") and p.endswith("**") and len(p) > 3:
            out.append("\\fB" + roff(p[2:-2]) + "\\fR")
        elif p.startswith("*") and p.endswith("*") and len(p) > 1:
            out.append("\\fI" + roff(p[1:-1]) + "\\fR")
        else:
            out.append(roff(p))
    return "".join(out)


def roff_markdown(lines: list[str], subsection: str = ".SS") -> list[str]:
    """Markdown blocks as roff: paragraphs, fenced code, lists, tables and (### ...) subheadings."""
    out: list[str] = []
    para: list[str] = []          # the paragraph, or the list item, being read
    bullet: list[str] = []        # its bullet when it is a list item
    table: list[list[str]] = []
    code = False

    def flush():
        if para:
            out.extend([f".IP {bullet[0]} 4" if bullet else ".PP", roff_inline(" ".join(para))])
            para.clear()
            bullet.clear()
        if table:
            out.extend(table_roff(table))
            table.clear()

    for line in lines:
        item = re.match(r"^(-|\d+\.) (.*)", line)
        if line.startswith("```"):
            flush()
            out.extend([".PP", ".nf", ".RS 4"] if not code else [".RE", ".fi"])
            code = not code
        elif code:
            out.append(roff(line) if line else ".sp")
        elif line.startswith("#"):
            flush()
            out.append(f'{subsection} "{roff(plain(line.lstrip("#").strip()))}"')
        elif line.startswith("|"):
            if para:
                flush()
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                table.append(cells)
        elif not line.strip():
            flush()
        elif item:
            flush()
            bullet.append("\\(bu" if item.group(1) == "-" else item.group(1))
            para.append(item.group(2).strip())
        else:
            para.append(line.strip())    # a paragraph's next line, or a list item's
    flush()
    return out


def table_roff(rows: list[list[str]]) -> list[str]:
    """A Markdown table as tagged paragraphs: the first cell as the tag, the others under it
    (named by their header when there are more than two columns)."""
    head, body = rows[0], rows[1:]
    out = []
    for row in body:
        rest = row[1:]
        if len(rest) == 1:
            text = roff_inline(rest[0])
        else:
            text = "; ".join(f"{roff(plain(h))}: {roff_inline(c)}" for h, c in zip(head[1:], rest, strict=False))
        out += [".TP", roff_inline(row[0]), text or "\\&"]
    return out


def md_sections(path: str) -> tuple[str, list[str], dict[str, list[str]]]:
    """(title, the lines before the first ##, {## heading: its lines}) of a Markdown document."""
    title, intro, sections = "", [], {}
    current = intro
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if line.startswith("# ") and not title:
                title = plain(line[2:].strip())
            elif line.startswith("## "):
                current = sections.setdefault(plain(line[3:].strip()), [])
            else:
                current.append(line)
    return title, intro, sections


def th(name: str, section: int, version: str, manual: str) -> str:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None
    day = datetime.datetime.fromtimestamp(epoch, datetime.UTC) if epoch else datetime.datetime.now()
    return f'.TH {name} {section} "{day:%Y-%m-%d}" "saga {version}" "{manual}"'


# ---------------------------------------------------------------- saga.toml(5)

def man_config(doc_path: str, version: str, out: str) -> None:
    intro, doc = read_doc(doc_path)
    lines = [th("SAGA.TOML", 5, version, "File Formats"),
             ".SH NAME", "saga.toml \\- configuration of the saga daemon and command",
             ".SH SYNOPSIS", "/etc/saga/saga.toml",
             ".SH DESCRIPTION"]
    lines += roff_markdown(intro)
    for section, rows in config_keys(doc):
        lines.append(f'.SS "[{section}]"')
        for key, value in rows:
            lines += [".TP", f"\\fB{key.name}\\fR = {roff(value)}  ({roff(key.kind)})",
                      roff_inline(key.meaning) + (" \\fI(restart)\\fR" if key.restart else "")]
    lines += [".SH DEFAULTS", ".nf", ".RS 4"]
    lines += [roff(x) if x else ".sp" for x in saga_config.defaults_toml().rstrip("\n").split("\n")]
    lines += [".RE", ".fi",
              ".SH FILES", ".TP", "/etc/saga/saga.toml", "this file (a conffile of the saga package)",
              ".SH SEE ALSO", "\\fBsaga\\fR(8), " + roff(f"{DOC_DIR}/config.md")]
    write(out, "\n".join(lines) + "\n")


# ---------------------------------------------------------------- pages from docs/*.md

def man_doc(md: str, name: str, section: str, what: str, version: str, out: str) -> None:
    """A man page from one document: `name \\- what` as NAME, its introduction as DESCRIPTION, every
    ## section as a section."""
    _, intro, sections = md_sections(md)
    manual = {"5": "File Formats", "7": "Miscellanea"}.get(section, "saga")
    lines = [th(name.upper(), int(section), version, manual), ".SH NAME", f"{roff(name)} \\- {roff(what)}",
             ".SH DESCRIPTION"]
    lines += roff_markdown(intro)
    for heading, body in sections.items():
        lines.append(f'.SH "{roff(heading.upper())}"')
        lines += roff_markdown(body)
    lines += [".SH SEE ALSO", "\\fBsaga\\fR(8), " + roff(f"{DOC_DIR}/{os.path.basename(md)}")]
    write(out, "\n".join(lines) + "\n")


# ---------------------------------------------------------------- saga(8)

def _click():
    try:
        from typer import _click as click  # typer >= 0.2x vendors click
        return click
    except ImportError:
        import click
        return click


def man_cli(install_md: str, version: str, out: str) -> None:
    import typer.main

    from saga.cli.main import app
    click = _click()
    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="saga")
    lines = [th("SAGA", 8, version, "System Administration"),
             ".SH NAME", "saga \\- " + roff(first_sentence(root.help or "syscall logging for Linux")),
             ".SH SYNOPSIS", ".B saga", "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
             ".SH DESCRIPTION"]
    lines += help_paragraphs((root.help or "").removeprefix("saga: "))
    lines += [".PP", "Installed by the saga package, the daemon runs as \\fBsaga.service\\fR; the other commands "
              "ask it, or the capture driver directly."]
    _, _, install = md_sections(install_md)
    for heading, name in (("The service and the driver", "THE SERVICE AND THE DRIVER"),):
        if heading not in install:
            sys.exit(f"gen_files: {install_md} has no section '## {heading}'")
        lines += [f'.SH "{name}"'] + roff_markdown(install[heading])
    lines += [".SH OPTIONS"] + params_roff(root, ctx, with_help=True)
    lines.append(".SH COMMANDS")
    for path, cmd, cctx in commands(root, ctx, "saga"):
        usage = re.sub(r"[{}]", "", " ".join(cmd.collect_usage_pieces(cctx)))
        lines += [f'.SS "{roff(path)} {roff(usage)}"'] + help_paragraphs(cmd.help) + params_roff(cmd, cctx)
    if "Everyday tasks" not in install:
        sys.exit(f"gen_files: {install_md} has no section '## Everyday tasks'")
    lines += [".SH EXAMPLES"] + roff_markdown(install["Everyday tasks"])
    lines += [".SH EXIT STATUS",
              "0 success; 1 nothing matched (\\fBsaga query\\fR); 64 bad usage or rule; 69 no capture driver can run;",
              "70 internal error; 71 the operating system refused; 75 busy (a daemon already runs, or owns the",
              "driver);",
              "77 permission denied or rules locked; 78 bad configuration or database.",
              ".SH ENVIRONMENT", ".TP", "SAGA_CONFIG", "the configuration file (as \\fB\\-\\-config\\fR)",
              ".TP", "SAGA_DB", "the database URL (as \\fB\\-\\-db\\fR)",
              ".SH FILES",
              ".TP", "/etc/saga/saga.toml", "the configuration, see \\fBsaga.toml\\fR(5)",
              ".TP", "/var/lib/saga/saga.db", "the archive (default store.url)",
              ".TP", "/run/saga/saga.sock", "the daemon's control socket",
              ".TP", "/sagafs", "the daemon's filesystem: log, pipe, stats, rules, status",
              ".TP", "/dev/saga", "the kernel module's device (package saga\\-dkms)",
              ".TP", "/sys/fs/bpf/saga", "the eBPF driver's pins (while it is loaded)",
              ".TP", f"{DOC_DIR}/", "the documents: install.md, daemon.md, ebpf.md, cli.md, ...",
              ".SH SEE ALSO", "\\fBsaga.toml\\fR(5), \\fBsaga\\-rules\\fR(7), \\fBsagafs\\fR(5), "
              "\\fBsaga\\-log\\fR(5), \\fBsystemctl\\fR(1) (saga.service), \\fBdkms\\fR(8)"]
    write(out, "\n".join(lines) + "\n")


def commands(group, ctx, path):
    """(path, command, context) of every visible subcommand, depth first."""
    click = _click()
    for name, cmd in getattr(group, "commands", {}).items():
        if getattr(cmd, "hidden", False):
            continue
        cctx = click.Context(cmd, info_name=name, parent=ctx)
        sub = f"{path} {name}"
        if getattr(cmd, "commands", None):
            yield sub, cmd, cctx
            yield from commands(cmd, cctx, sub)
        else:
            yield sub, cmd, cctx


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    text = text.split(": ", 1)[1] if text.startswith("saga: ") else text
    return text.split(". ")[0].rstrip(".")


def help_paragraphs(text: str | None) -> list[str]:
    out = []
    for para in re.split(r"\n\s*\n", (text or "").strip()):
        para = " ".join(line.strip() for line in para.splitlines() if line.strip() != "\b")
        if para:
            out += [".PP", roff(para)]
    return out


def params_roff(cmd, ctx, with_help: bool = False) -> list[str]:
    """The command's parameters as tagged paragraphs (--help only where asked: it is everywhere)."""
    out = []
    for p in cmd.get_params(ctx):
        skip = {"install_completion", "show_completion"} | (set() if with_help else {"help"})
        if getattr(p, "hidden", False) or p.name in skip:
            continue
        record = p.get_help_record(ctx) if p.param_type_name == "option" else None
        if record:
            names, text = record
        else:  # an argument: its metavar, and typer's help
            names, text = (p.metavar or p.name.upper()), getattr(p, "help", "") or ""
        out += [".TP", "\\fB" + roff(names) + "\\fR", roff(" ".join(text.split())) or "\\&"]
    return out


# ---------------------------------------------------------------- bash completion

def completion(out: str) -> None:
    try:
        from typer._completion_shared import get_completion_script
    except ImportError:
        sys.exit("gen_files: this typer has no typer._completion_shared.get_completion_script")
    script = get_completion_script(prog_name="saga", complete_var="_SAGA_COMPLETE", shell="bash")
    write(out, "# bash completion for saga (generated from typer's script)\n" + script.strip() + "\n")


# ----------------------------------------------------------------

def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: list[str]) -> None:
    usage = __doc__.split("\n\n")[1]
    if not argv:
        sys.exit("usage:\n" + usage)
    cmd, args = argv[0], argv[1:]
    table = {"conffile": (conffile, 2), "man-config": (man_config, 3), "man-cli": (man_cli, 3),
             "man-doc": (man_doc, 6), "completion": (completion, 1)}
    if cmd not in table or len(args) != table[cmd][1]:
        sys.exit("usage:\n" + usage)
    table[cmd][0](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
