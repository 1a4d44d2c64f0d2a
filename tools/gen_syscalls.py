#!/usr/bin/env python3
"""Generate saga's syscall tables from the kernel's own syscall table.

Inputs (from a Debian linux-headers tree, the newest one saga supports):
  arch/x86/include/generated/uapi/asm/unistd_64.h   native numbers
  arch/x86/include/generated/uapi/asm/unistd_32.h   ia32 numbers
  include/linux/syscalls.h                          argument names and types
plus tools/syscalls-extra.txt for what those headers lack (x86-only calls
such as mmap and arch_prctl, unnamed prototypes, calls newer than the headers).

Outputs:
  src/saga/syscalls/_table.py   names, slots, arguments and their kinds, classes
  kmod/saga_syscalls.h          slot names, path-argument positions, ia32 map
                                (shared by the kernel module and the BPF program)

Usage: tools/gen_syscalls.py [--headers DIR] [--check]
"""
from __future__ import annotations

import argparse
import glob
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRA = ROOT / "tools/syscalls-extra.txt"
PY_OUT = ROOT / "src/saga/syscalls/_table.py"
C_OUT = ROOT / "kmod/saga_syscalls.h"

NR_SLOTS, COMPAT_BASE = 1024, 512  # must match kmod/include/uapi/linux/saga.h

# Argument names that hold a path when their type is a user char pointer.
PATH_NAMES = {"filename", "pathname", "path", "oldname", "newname", "old", "new", "specialfile",
              "dir_name", "dev_name", "library", "new_root", "put_old", "from_path", "to_path",
              "special", "oldpath", "newpath"}
# Calls whose path argument has a name that is not a path elsewhere.
PATH_BY_CALL = {"umount": {"name"}, "umount2": {"name"}, "acct": {"name"},
                "name_to_handle_at": {"name"}}
FD_NAMES = {"fd", "oldfd", "newfd", "fd_in", "fd_out", "epfd", "out_fd", "in_fd", "ufd",
            "fdin", "fdout", "pidfd", "src_fd", "dst_fd", "fildes"}
DIRFD_NAMES = {"dfd", "olddfd", "newdfd", "dirfd", "from_dfd", "to_dfd"}

# Classes as in strace's -e trace=%class; %file is derived (takes a path).
CLASSES = {
    "network": "socket socketpair bind listen accept accept4 connect getsockname getpeername "
               "sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg setsockopt getsockopt shutdown",
    "process": "fork vfork clone clone3 execve execveat exit exit_group wait4 waitid kill tkill "
               "tgkill pidfd_open pidfd_send_signal pidfd_getfd rt_sigqueueinfo rt_tgsigqueueinfo "
               "unshare setns prctl arch_prctl ptrace",
    "memory": "brk mmap munmap mremap mprotect pkey_mprotect madvise process_madvise mlock mlock2 "
              "munlock mlockall munlockall msync mincore mbind set_mempolicy get_mempolicy "
              "set_mempolicy_home_node migrate_pages move_pages remap_file_pages mseal "
              "map_shadow_stack memfd_secret",
    "signal": "rt_sigaction rt_sigprocmask rt_sigpending rt_sigsuspend rt_sigtimedwait "
              "rt_sigqueueinfo rt_tgsigqueueinfo rt_sigreturn sigaltstack signalfd signalfd4 kill "
              "tkill tgkill pause pidfd_send_signal",
    "ipc": "msgget msgsnd msgrcv msgctl semget semop semtimedop semctl shmget shmat shmdt shmctl",
}

# Calls whose new task returns 0 from them without having entered: that return is neither
# counted nor logged (docs/kernel-abi.md, "The child side of fork").
FORK_CALLS = ("clone", "fork", "vfork", "clone3")
# Calls counted and logged at entry (exit and exit_group never reach sys_exit; sigreturn's restored
# context reads -1 there), by name in each ABI.
DONE_AT_ENTRY = ("exit", "exit_group", "rt_sigreturn")
DONE_AT_ENTRY_IA32 = ("exit", "exit_group", "rt_sigreturn", "sigreturn")
# The aux blob (docs/kernel-abi.md, "Aux blob"): call -> (kind, pointer arg, length arg or None,
# length is read through a pointer, read at exit).  Kinds are the SAGA_AUX_* names.
AUX = {
    "execve": ("ARGV", 1, None, False, False),
    "execveat": ("ARGV", 2, None, False, False),
    "connect": ("SOCKADDR", 1, 2, False, False),
    "bind": ("SOCKADDR", 1, 2, False, False),
    "sendto": ("SOCKADDR", 4, 5, False, False),
    "accept": ("SOCKADDR", 1, 2, True, True),
    "accept4": ("SOCKADDR", 1, 2, True, True),
    "recvfrom": ("SOCKADDR", 4, 5, True, True),
    "clone3": ("CLONE_ARGS", 0, 1, False, False),
}

# Table names whose entry point in syscalls.h has another name.
ENTRY_ALIASES = {"stat": "newstat", "lstat": "newlstat", "fstat": "newfstat", "uname": "newuname",
                 "umount2": "umount", "sendfile": "sendfile64", "oldumount": "oldumount"}

PROTO_RE = re.compile(r"asmlinkage\s+long\s+sys_(\w+)\s*\(([^;]*?)\)\s*;", re.S)
DEFINE_RE = re.compile(r"#define\s+__NR_(\w+)\s+(\d+)")


C_TYPE_WORDS = {"int", "long", "short", "char", "unsigned", "signed", "void", "const", "struct"}


def parse_args(arglist: str) -> tuple[tuple[str, str], ...] | None:
    """(name, type) per argument, or None when an argument has no name."""
    arglist = " ".join(arglist.split())
    if arglist in ("void", ""):
        return ()
    out = []
    for raw in arglist.split(","):
        words = raw.replace("*", " * ").split()
        if len(words) < 2 or words[-1] == "*" or words[-1] in C_TYPE_WORDS:
            return None  # a bare type such as `int` or `struct sockaddr __user *`
        out.append((words[-1], " ".join(words[:-1]).replace(" *", "*").replace("*", " *")))
    return tuple(out)


# The C types of syscall arguments that are not pointers, resolved to how a value is printed:
# int/long signed decimal (32/64 bits), uint/ulong unsigned decimal, addr a 64-bit address or
# handle in hex, id a uid/gid (unsigned, but -1 means "unchanged" and prints as -1), mode octal.
# Every typedef the prototypes use must be here: an unknown one stops the generator, so a new
# type is never silently cut to 32 bits (cap_user_header_t is a pointer, aio_context_t a handle).
SCALAR_TYPES = {
    "int": "int", "__s32": "int", "long": "long", "unsigned": "uint", "unsigned int": "uint",
    "u32": "uint", "__u32": "uint", "uint32_t": "uint", "unsigned long": "ulong", "size_t": "ulong",
    "u64": "ulong", "__u64": "ulong", "pid_t": "int", "clockid_t": "int", "timer_t": "int",
    "key_t": "int", "key_serial_t": "int", "mqd_t": "int", "old_sigset_t": "ulong", "rwf_t": "int",
    "off_t": "long", "loff_t": "long", "uid_t": "id", "gid_t": "id", "qid_t": "id",
    "old_uid_t": "id", "old_gid_t": "id", "umode_t": "mode", "aio_context_t": "addr",
    "cap_user_header_t": "ptr", "cap_user_data_t": "ptr", "__sighandler_t": "ptr",
}
# Argument names that hold an address when their type is an integer.
ADDR_NAMES = {"addr", "start", "brk", "new_addr", "shmaddr"}
# File modes passed as a plain int (elsewhere a `mode` is a policy or an access mask).
MODE_ARGS = {("umask", "mask")}


def scalar_type(ctype: str) -> str:
    base = " ".join(w for w in ctype.split() if w not in ("const", "volatile", "__user"))
    if base.startswith("enum "):
        return "int"
    if base not in SCALAR_TYPES:
        raise SystemExit(f"gen_syscalls: argument type {base!r} is not in SCALAR_TYPES: say how it is printed")
    return SCALAR_TYPES[base]


def arg_kind(call: str, name: str, ctype: str, compat: bool = False) -> str:
    """How an argument is printed: path str ptr fd dirfd mode flags flags64 int uint long ulong addr id."""
    user_char = re.search(r"\bchar\s+__user\s*\*$|\bchar\s*\*$", ctype.replace("const ", "")) is not None
    if user_char and (name in PATH_NAMES or name in PATH_BY_CALL.get(call, ())):
        return "path"
    if user_char:
        return "str"
    if "*" in ctype:
        return "ptr"
    scalar = scalar_type(ctype)
    if compat and scalar in ("long", "ulong", "addr"):
        scalar = {"long": "int", "ulong": "uint", "addr": "uint"}[scalar]  # ia32 registers are 32 bits
    if scalar in ("ptr", "id", "mode"):
        return scalar
    if name in DIRFD_NAMES:
        return "dirfd"
    if name in FD_NAMES:
        return "fd"
    if (call, name) in MODE_ARGS:
        return "mode"
    if "flag" in name:
        return "flags64" if scalar in ("long", "ulong") else "flags"
    if name in ADDR_NAMES and not compat and scalar in ("ulong", "addr"):
        return "addr"
    return scalar


def clean_type(ctype: str) -> str:
    return " ".join(ctype.replace("__user", "").split()).replace(" *", " *").replace("* ", "*")


def read_numbers(path: Path) -> dict[str, int]:
    # __NR_syscalls is the table's size, not a call
    return {m.group(1): int(m.group(2)) for m in DEFINE_RE.finditer(path.read_text()) if m.group(1) != "syscalls"}


def read_prototypes(text: str) -> dict[str, tuple]:
    protos: dict[str, tuple] = {}
    for m in PROTO_RE.finditer(re.sub(r"/\*.*?\*/", "", text, flags=re.S)):
        args = parse_args(m.group(2))
        if args is not None:
            protos.setdefault(m.group(1), args)  # first variant wins; #ifdef'd twins follow
    return protos


def read_extra(path: Path) -> tuple[dict[str, int], dict[str, tuple]]:
    numbers, protos = {}, {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^(\d+|-)\s+(\w+)\((.*)\)$", line)
        if not m:
            raise SystemExit(f"gen_syscalls: bad line in {path.name}: {line}")
        if m.group(1) != "-":
            numbers[m.group(2)] = int(m.group(1))
        args = parse_args(m.group(3))
        if args is None:
            raise SystemExit(f"gen_syscalls: unnamed argument in {path.name}: {line}")
        protos[m.group(2)] = args
    return numbers, protos


def build(headers: Path) -> dict:
    arch = headers
    common = Path(str(headers).replace("-amd64", "-common")) if "-amd64" in str(headers) else headers
    native = read_numbers(arch / "arch/x86/include/generated/uapi/asm/unistd_64.h")
    ia32 = read_numbers(arch / "arch/x86/include/generated/uapi/asm/unistd_32.h")
    protos = read_prototypes((common / "include/linux/syscalls.h").read_text())
    extra_nr, extra_protos = read_extra(EXTRA)
    for name, nr in extra_nr.items():
        if native.get(name, nr) != nr:
            raise SystemExit(f"gen_syscalls: {name} is {native[name]} in the headers, {nr} in {EXTRA.name}")
        native[name] = nr
    protos.update(extra_protos)

    def args_of(name: str, compat: bool = False) -> tuple:
        entry = name if name in protos else ENTRY_ALIASES.get(name, name)
        return tuple((a, clean_type(t), arg_kind(name, a, t, compat)) for a, t in protos.get(entry, ()))

    missing = sorted(n for n in native if n not in protos and ENTRY_ALIASES.get(n) not in protos)
    calls = sorted((nr, name, args_of(name)) for name, nr in native.items())
    by_name = {name: nr for nr, name, _ in calls}
    compat = []
    for name, nr in sorted(ia32.items(), key=lambda kv: kv[1]):
        slot = by_name.get(name, COMPAT_BASE + nr)
        if slot >= NR_SLOTS - 1:
            slot = NR_SLOTS - 1
        compat.append((nr, name, slot, args_of(name, compat=True) if slot >= COMPAT_BASE else ()))
    classes = {"file": sorted(n for _, n, a in calls if any(k == "path" for _, _, k in a))}
    for cls, names in CLASSES.items():
        classes[cls] = sorted(n for n in names.split() if n in by_name)
    return {"calls": calls, "compat": compat, "classes": classes, "missing": missing}


def path_code(args: tuple) -> int:
    idx = [i for i, (_, _, k) in enumerate(args) if k == "path"][:2]
    code = 0
    for shift, i in zip((0, 4), idx, strict=False):
        code |= (i + 1) << shift
    return code


def render_py(t: dict, source: str) -> str:
    lines = [f'"""Syscall table, generated by tools/gen_syscalls.py from {source}.', "",
             "Do not edit: run `make syscalls`.", "", "NATIVE: (slot, name, ((arg, type, kind), ...)) per x86_64 call.",
             "IA32: (ia32 number, name, slot, args) per 32-bit call; args only for calls counted apart.",
             "Argument kinds: path str ptr fd dirfd mode flags flags64 int uint long ulong addr id.",
             '"""', "",
             "NATIVE = ("]
    for nr, name, args in t["calls"]:
        lines.append(f"    ({nr}, {name!r}, {args!r}),")
    lines += [")", "", "IA32 = ("]
    for nr, name, slot, args in t["compat"]:
        lines.append(f"    ({nr}, {name!r}, {slot}, {args!r}),")
    lines += [")", "", "CLASSES = {"]
    for cls, names in t["classes"].items():
        lines.append(f"    {cls!r}: {tuple(names)!r},")
    lines += ["}", "",
              "# The child side of these calls is neither counted nor logged (docs/kernel-abi.md).",
              f"FORK_CALLS = {FORK_CALLS!r}",
              "# Counted and logged at entry (flag NORETURN).",
              f"DONE_AT_ENTRY = {DONE_AT_ENTRY + ('ia32:sigreturn',)!r}",
              "# call -> (SAGA_AUX_* kind name, pointer arg, length arg or None, length read through a pointer,"
              " read at exit)",
              "AUX = {"]
    lines += [f"    {name!r}: {spec!r}," for name, spec in AUX.items()]
    lines += ["}", ""]
    return "\n".join(lines)


def render_c(t: dict, source: str) -> str:
    names: dict[int, str] = {nr: name for nr, name, _ in t["calls"]}
    paths: dict[int, int] = {nr: path_code(args) for nr, name, args in t["calls"]}
    for _nr, name, slot, args in t["compat"]:
        if slot >= COMPAT_BASE and slot != NR_SLOTS - 1:
            names[slot] = f"ia32:{name}"
            paths[slot] = path_code(args)
    names[NR_SLOTS - 1] = "unknown"
    max_ia32 = max(nr for nr, *_ in t["compat"]) + 1
    ia32_slot = {nr: slot for nr, _, slot, _ in t["compat"]}
    out = ["/* SPDX-License-Identifier: GPL-2.0 */",
           f"/* Generated by tools/gen_syscalls.py from {source}. Do not edit: run `make syscalls`. */",
           "#ifndef SAGA_SYSCALLS_H", "#define SAGA_SYSCALLS_H", "",
           f"#define SAGA_NR_IA32 {max_ia32}", "",
           "#ifdef SAGA_WANT_SLOT_NAMES",
           "/* Name of each slot; NULL for unused slots. */",
           "static const char *const saga_slot_names[SAGA_NR_SLOTS] = {"]
    out += [f'\t[{slot}] = "{name}",' for slot, name in sorted(names.items())]
    out += ["};", "#endif", "",
            "/*",
            " * Path arguments of each slot: bits 0-3 hold 1 + the index of the first",
            " * path argument, bits 4-7 the second; 0 means none.",
            " */",
            "static const unsigned char saga_slot_paths[SAGA_NR_SLOTS] = {"]
    out += [f"\t[{slot}] = 0x{code:02x}, /* {names[slot]} */" for slot, code in sorted(paths.items()) if code]
    out += ["};", "",
            "/* Slot of each ia32 syscall number (see SAGA_COMPAT_BASE). */",
            "static const unsigned short saga_ia32_slot[SAGA_NR_IA32] = {"]
    out += [f"\t[{nr}] = {ia32_slot.get(nr, NR_SLOTS - 1)}," for nr in range(max_ia32)]
    out += ["};", ""]
    out += render_c_sets(t, names)
    out += ["#endif /* SAGA_SYSCALLS_H */", ""]
    return "\n".join(out)


def render_c_sets(t: dict, names: dict[int, str]) -> list[str]:
    """The call sets both kernel sides test by slot or number, and the aux table."""
    native = {name: nr for nr, name, _ in t["calls"]}
    ia32 = {name: nr for nr, name, _, _ in t["compat"]}
    ia32_slot = {nr: slot for nr, _, slot, _ in t["compat"]}

    def test(var: str, values) -> str:
        return " || ".join(f"{var} == {v}" for v in sorted(values))

    fork = [native[n] for n in FORK_CALLS]
    entry_slots = {native[n] for n in DONE_AT_ENTRY} | {ia32_slot[ia32[n]] for n in DONE_AT_ENTRY_IA32}
    entry_ids = {native[n] for n in DONE_AT_ENTRY} | {ia32[n] for n in DONE_AT_ENTRY_IA32}
    if max(entry_ids) >= 256:
        raise SystemExit("gen_syscalls: a done-at-entry number is >= 256: widen saga_entry_ids")
    words = [0] * 4
    for nr in entry_ids:
        words[nr >> 6] |= 1 << (nr & 63)
    out = ["/* Slots whose new task returns 0 without having entered (" + ", ".join(FORK_CALLS) + "):",
           " * that return is neither counted nor logged. */",
           "static __always_inline int saga_fork_slot(unsigned int slot)", "{",
           f"\treturn {test('slot', fork)};", "}", "",
           "/* Slots counted and logged at entry (NORETURN): " + ", ".join(DONE_AT_ENTRY)
           + ", ia32 sigreturn. */",
           "static __always_inline int saga_done_at_entry(unsigned int slot)", "{",
           f"\treturn {test('slot', entry_slots)};", "}", "",
           "/* The native ones by name: the BPF program counts some of them from hooks of their own. */"]
    out += [f"#define SAGA_SLOT_{n.upper()}\t{native[n]}" for n in DONE_AT_ENTRY]
    out += ["",
            "/* Done-at-entry numbers in either ABI: the only ones sys_enter must see when nothing can be logged. */",
            "static const unsigned long long saga_entry_ids[4] = {"]
    out += [f"\t0x{w:016x}ULL," for w in words]
    out += ["};", "",
            "static __always_inline int saga_maybe_done_at_entry(long id)", "{",
            "\treturn (unsigned long)id < 256 && (saga_entry_ids[id >> 6] >> (id & 63)) & 1;", "}", "",
            "/*",
            " * The aux blob of each slot (docs/kernel-abi.md): bits 0-2 a SAGA_AUX_* kind, bit 3 read",
            " * at exit, bits 4-6 the pointer argument, bits 8-10 the length argument, bit 11 the length",
            " * argument points to it, bit 12 there is a length argument; 0: no aux.",
            " */",
            "#define SAGA_AUXSPEC_EXIT\t0x0008",
            "#define SAGA_AUXSPEC_PTR(s)\t(((s) >> 4) & 7)",
            "#define SAGA_AUXSPEC_LEN(s)\t(((s) >> 8) & 7)",
            "#define SAGA_AUXSPEC_LENPTR\t0x0800",
            "#define SAGA_AUXSPEC_HASLEN\t0x1000",
            "static const unsigned short saga_slot_aux[SAGA_NR_SLOTS] = {"]
    for name, (kind, ptr, length, lenptr, at_exit) in sorted(AUX.items(), key=lambda kv: native[kv[0]]):
        parts = [f"SAGA_AUX_{kind}", f"({ptr} << 4)"]
        if length is not None:
            parts += [f"({length} << 8)", "SAGA_AUXSPEC_HASLEN"]
        if lenptr:
            parts.append("SAGA_AUXSPEC_LENPTR")
        if at_exit:
            parts.append("SAGA_AUXSPEC_EXIT")
        out.append(f"\t[{native[name]}] = {' | '.join(parts)}, /* {name} */")
    out += ["};", ""]
    return out


def newest_headers() -> Path:
    cands = sorted(glob.glob("/usr/src/linux-headers-6.12*-amd64"))
    if not cands:
        raise SystemExit("gen_syscalls: no /usr/src/linux-headers-6.12*-amd64; run `make deps` or pass --headers")
    return Path(cands[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--headers", type=Path, help="a linux-headers-*-amd64 directory")
    ap.add_argument("--check", action="store_true", help="exit 1 if the outputs are stale")
    ap.add_argument("--missing", action="store_true", help="list calls with no known arguments")
    args = ap.parse_args()
    headers = args.headers or newest_headers()
    t = build(headers)
    if args.missing:
        print("\n".join(t["missing"]))
        return 0
    source = "the Linux 6.12 amd64 headers and tools/syscalls-extra.txt"
    outputs = {PY_OUT: render_py(t, source), C_OUT: render_c(t, source)}
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is stale: run `make syscalls`", file=sys.stderr)
        return 1 if stale else 0
    for p, text in outputs.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
