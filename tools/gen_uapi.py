#!/usr/bin/env python3
"""Generate the Python mirrors of saga's C headers.

  kmod/include/uapi/linux/saga.h  ->  src/saga/_uapi.py               (the /dev/saga ABI)
  bpf/saga_bpf.h                  ->  src/saga/drivers/ebpf/_layout.py (the eBPF driver's maps)
  src/saga/__init__.py            ->  SAGA_VERSION in kmod/saga.h, PACKAGE_VERSION in kmod/dkms.conf

The C compiler computes every number: constant values, ioctl numbers,
struct sizes, member offsets, sizes and signedness.  This script only
reads member *names* from the header and turns the compiler's answers
into `struct` formats (a member that is itself a struct becomes opaque
bytes), so a mirror cannot drift from its header without
tests/unit/test_generated.py noticing.

Usage: tools/gen_uapi.py [--check]
"""
from __future__ import annotations

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UAPI_DIR = ROOT / "kmod/include/uapi"
# (header, output, what the module mirrors)
TARGETS = (
    (UAPI_DIR / "linux/saga.h", ROOT / "src/saga/_uapi.py", "ABI of /dev/saga"),
    (ROOT / "bpf/saga_bpf.h", ROOT / "src/saga/drivers/ebpf/_layout.py", "Map layouts of the eBPF driver"),
)

DEFINE_RE = re.compile(r"^#define[ \t]+(SAGA_\w+)[ \t]+\S", re.M)
STRUCT_RE = re.compile(r"^struct\s+(saga_\w+)\s*\{(.*?)^\};", re.M | re.S)
MEMBER_RE = re.compile(r"^\s*(?:__[us](?:8|16|32|64)|char|struct\s+\w+)\s+(\w+)\s*(\[[^\]]*\])?\s*;", re.M)
STRUCT_MEMBER_RE = re.compile(r"^\s*struct\s+\w+\s+(\w+)", re.M)

INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
             (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}


def parse_header(text: str) -> tuple[list[str], dict[str, list[tuple[str, bool]]]]:
    """Names of the constants, and per struct its members as (name, is_array)."""
    defines = [m.group(1) for m in DEFINE_RE.finditer(text)
               if not m.group(1).startswith("_UAPI")]
    structs = {}
    for m in STRUCT_RE.finditer(text):
        body = re.sub(r"/\*.*?\*/", "", m.group(2), flags=re.S)
        structs[m.group(1)] = [(mm.group(1), bool(mm.group(2))) for mm in MEMBER_RE.finditer(body)]
    return defines, structs


def probe_program(header: Path, defines: list[str], structs: dict, opaque: set) -> str:
    """C source that prints one tab-separated line per fact."""
    out = [f'#include "{header}"', "#include <stdio.h>", "#include <stddef.h>", "",
           "#define SIGNED(x) ((__typeof__(x))-1 < (__typeof__(x))0)",
           'static void emit_s(const char *n, const char *v) { printf("S\\t%s\\t%s\\n", n, v); }',
           'static void emit_d(const char *n, long long v) { printf("D\\t%s\\t%lld\\n", n, v); }',
           "#define EMIT(n) _Generic((n), char *: emit_s, default: emit_d)(#n, n)", "", "int main(void) {"]
    for name in defines:
        out.append(f"  EMIT({name});")
    for sname, members in structs.items():
        out.append(f'  printf("T\\t{sname}\\t%zu\\n", sizeof(struct {sname}));')
        for mname, is_array in members:
            elem = f"((struct {sname} *)0)->{mname}" + ("[0]" if is_array else "")
            whole = f"((struct {sname} *)0)->{mname}"
            signed = "0" if (sname, mname) in opaque else f"SIGNED({elem})"
            out.append(f'  printf("M\\t{sname}\\t{mname}\\t%zu\\t%zu\\t%zu\\t%d\\n", offsetof(struct {sname}, {mname}),'
                       f" sizeof({whole}), sizeof({elem}), {signed});")
    out += ["  return 0;", "}", ""]
    return "\n".join(out)


def run_probe(source: str) -> list[list[str]]:
    cc = os.environ.get("CC", "cc")
    include = ["-I", str(UAPI_DIR)]
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp, "probe.c"), Path(tmp, "probe")
        src.write_text(source)
        cc_run = subprocess.run([cc, "-std=gnu11", "-Wall", "-Werror", *include, "-o", str(exe), str(src)],
                                capture_output=True, text=True)
        if cc_run.returncode:
            raise SystemExit(f"gen_uapi: the probe program did not compile:\n{cc_run.stderr[:4000]}")
        res = subprocess.run([str(exe)], check=True, capture_output=True, text=True)
    return [line.split("\t") for line in res.stdout.splitlines()]


def member_code(size: int, elem: int, signed: bool, is_char: bool, is_struct: bool = False) -> str:
    count = size // elem
    if is_struct:
        return f"{size}s"
    if is_char:
        return f"{count}s"
    code = INT_CODES[(elem, signed)]
    return f"{count}{code}" if count > 1 else code


def opaque_members(header_text: str) -> set[tuple[str, str]]:
    """(struct, member) pairs whose type is a struct: mirrored as bytes."""
    return {(s, m) for s, body in STRUCT_RE.findall(header_text) for m in STRUCT_MEMBER_RE.findall(body)}


def render(header_text: str, facts: list[list[str]], header_name: str, title: str) -> str:
    consts: list[tuple[str, object]] = []
    sizes: dict[str, int] = {}
    members: dict[str, list[tuple]] = {}
    char_members = {(s, m) for s, body in STRUCT_RE.findall(header_text)
                    for m in re.findall(r"^\s*char\s+(\w+)", body, re.M)}
    opaque = opaque_members(header_text)
    for f in facts:
        if f[0] == "D":
            consts.append((f[1], int(f[2])))
        elif f[0] == "S":
            consts.append((f[1], f[2]))
        elif f[0] == "T":
            sizes[f[1]] = int(f[2])
        elif f[0] == "M":
            sname, mname, off, size, elem, signed = f[1], f[2], int(f[3]), int(f[4]), int(f[5]), f[6] == "1"
            members.setdefault(sname, []).append(
                (mname, off, size, size // elem,
                 member_code(size, elem, signed, (sname, mname) in char_members, (sname, mname) in opaque)))

    lines = [f'"""{title}, generated by tools/gen_uapi.py from {header_name}.',
             "", "Do not edit: run `make uapi` after changing the header.", '"""',
             "from __future__ import annotations", "", "import struct", "",
             "from saga.structs import Field, Layout", ""]
    lines += ["# Constants", ""]
    for name, value in consts:
        if isinstance(value, str):
            lines.append(f"{name} = {value!r}")
        elif name.startswith("SAGA_IOC_") and name != "SAGA_IOC_MAGIC" or value > 0xffff:
            lines.append(f"{name} = {value:#x}")
        else:
            lines.append(f"{name} = {value}")
    lines += ["", "# Struct layouts", ""]
    for sname, mems in members.items():
        fmt, pos = "<", 0
        for _mname, off, size, _elems, code in sorted(mems, key=lambda m: m[1]):
            if off > pos:
                fmt += f"{off - pos}x"
            fmt += code
            pos = off + size
        if sizes[sname] > pos:
            fmt += f"{sizes[sname] - pos}x"
        if struct.calcsize(fmt) != sizes[sname]:
            raise SystemExit(f"gen_uapi: {sname}: format {fmt} is {struct.calcsize(fmt)} bytes, C says {sizes[sname]}")
        const = sname.upper()
        lines.append(f"{const} = Layout({sname!r}, {sizes[sname]}, {fmt!r}, (")
        lines += [f"    Field({m!r}, {o}, {s}, {c}, {k!r})," for m, o, s, c, k in mems]
        lines.append("))")
        lines.append(f"{const}_STRUCT = struct.Struct({fmt!r})")
        lines.append("")
    return "\n".join(lines)


def generate(header: Path, title: str) -> str:
    """The mirror of `header`: its constants and its structs as saga.structs Layouts."""
    text = header.read_text()
    defines, structs = parse_header(text)
    facts = run_probe(probe_program(header, defines, structs, opaque_members(text)))
    try:
        name = str(header.relative_to(ROOT))
    except ValueError:
        name = header.name
    return render(text, facts, name, title)


# The version in one place: src/saga/__init__.py's __version__, written into the lines that repeat
# it where Python is not read (the module's SAGA_VERSION, DKMS's PACKAGE_VERSION).
VERSION_SOURCE = ROOT / "src/saga/__init__.py"
VERSION_LINES = {
    ROOT / "kmod/saga.h": (r'^#define SAGA_VERSION\t+".*"$', '#define SAGA_VERSION\t\t"{}"'),
    ROOT / "kmod/dkms.conf": (r'^PACKAGE_VERSION=".*"$', 'PACKAGE_VERSION="{}"'),
}


def with_version(path: Path) -> str:
    m = re.search(r'^__version__ = "([^"]+)"$', VERSION_SOURCE.read_text(), re.M)
    if not m:
        raise SystemExit(f"gen_uapi: no __version__ in {VERSION_SOURCE}")
    pattern, line = VERSION_LINES[path]
    new, n = re.subn(pattern, line.format(m.group(1)), path.read_text(), count=1, flags=re.M)
    if n != 1:
        raise SystemExit(f"gen_uapi: {path.relative_to(ROOT)} has no line matching {pattern}")
    return new


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if an output file is stale")
    args = ap.parse_args()
    stale = 0
    outputs = [(output, generate(header, title)) for header, output, title in TARGETS]
    outputs += [(path, with_version(path)) for path in VERSION_LINES]
    for output, text in outputs:
        if args.check:
            if not output.exists() or output.read_text() != text:
                print(f"{output.relative_to(ROOT)} is stale: run `make uapi`", file=sys.stderr)
                stale = 1
        elif not output.exists() or output.read_text() != text:
            output.write_text(text)
    return stale


if __name__ == "__main__":
    sys.exit(main())
