#!/usr/bin/env python3
"""Generate saga's tables of symbolic constants from the kernel's headers.

The renderer prints flags, commands and ids by name (`O_CLOEXEC`,
`FUTEX_WAKE_PRIVATE`, `TCGETS`) as strace does.  The names and values come
from the Linux 6.12 headers the syscall table is built from
(tools/gen_syscalls.py): each table below says which header lines to take
(a name pattern, optionally a block between two names) and the C compiler
computes every value, so expressions such as `_IOR('T', 0x2A, struct
termios2)` or `(__O_TMPFILE | O_DIRECTORY)` are exact.  A few constants live
only in the kernel's internal headers (address families, socket types, MSG_*
flags): their `#define`s and enum members are copied into the program that
the compiler evaluates.  Tables keep header order, aliases included;
src/saga/decode.py decides which name of a value is printed.

Output: src/saga/_consts.py.  Usage: tools/gen_consts.py [--headers DIR] [--check]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_syscalls import newest_headers  # noqa: E402 - tools/ is not a package

ROOT = Path(__file__).resolve().parent.parent
PY_OUT = ROOT / "src/saga/_consts.py"


@dataclass(frozen=True)
class Table:
    name: str               # the Python name in _consts.py
    files: tuple[str, ...]  # headers scanned for names: uapi paths, or "kernel:" + an internal header
    pattern: str            # names taken (a full match)
    exclude: str = ""       # names left out (a full match)
    block: tuple[str, str] | None = None   # only the names from the first to the second, inclusive


def T(name: str, files: str, pattern: str, exclude: str = "", block: tuple[str, str] | None = None) -> Table:
    return Table(name, tuple(files.split()), pattern, exclude, block)


TABLES = (
    # open(2) and fcntl(2)
    T("O_ACCMODE", "asm-generic/fcntl.h", r"O_(RDONLY|WRONLY|RDWR)"),
    T("O_FLAGS", "asm-generic/fcntl.h", r"O_\w+|FASYNC", r"O_(ACCMODE|RDONLY|WRONLY|RDWR|NDELAY)"),
    T("FCNTL_CMDS", "asm-generic/fcntl.h linux/fcntl.h", r"F_[A-Z_0-9]+",
      r"F_(OWNER|SEAL)_\w+|F_(RDLCK|WRLCK|UNLCK|EXLCK|SHLCK|LINUX_SPECIFIC_BASE)|F_(GET|SET)LKW?64"),
    T("FCNTL_LOCKS", "asm-generic/fcntl.h", r"F_(RDLCK|WRLCK|UNLCK|EXLCK|SHLCK)"),
    T("FD_FLAGS", "asm-generic/fcntl.h", r"FD_CLOEXEC"),
    T("F_SEALS", "linux/fcntl.h", r"F_SEAL_\w+"),
    T("DN_FLAGS", "linux/fcntl.h", r"DN_\w+"),
    T("F_OWNER_TYPES", "asm-generic/fcntl.h", r"F_OWNER_\w+"),
    T("FLOCK_OPS", "asm-generic/fcntl.h", r"LOCK_\w+"),
    T("AT_FLAGS", "linux/fcntl.h", r"AT_\w+", r"AT_FDCWD"),
    T("RENAME_FLAGS", "linux/fs.h", r"RENAME_\w+"),
    T("SEEK_WHENCE", "linux/fs.h", r"SEEK_\w+", r"SEEK_MAX"),
    T("RWF_FLAGS", "linux/fs.h", r"RWF_\w+", r"RWF_SUPPORTED"),
    T("SYNC_FILE_RANGE_FLAGS", "linux/fs.h", r"SYNC_FILE_RANGE_\w+"),
    T("STATX_MASK", "linux/stat.h", r"STATX_\w+", r"STATX_ATTR_\w+|STATX__RESERVED"),
    T("FILE_TYPES", "linux/stat.h", r"S_IF(SOCK|LNK|REG|BLK|DIR|CHR|IFO)"),
    T("XATTR_FLAGS", "linux/xattr.h", r"XATTR_(CREATE|REPLACE)"),
    T("FALLOC_FLAGS", "linux/falloc.h", r"FALLOC_FL_\w+"),
    T("CLOSE_RANGE_FLAGS", "linux/close_range.h", r"CLOSE_RANGE_\w+"),
    T("UMOUNT_FLAGS", "kernel:linux/fs.h", r"MNT_(FORCE|DETACH|EXPIRE)|UMOUNT_NOFOLLOW"),
    T("MOUNT_FLAGS", "linux/mount.h", r"MS_\w+", r"MS_(RMT_MASK|MGC_VAL|MGC_MSK)"),
    # memory
    T("PROT_FLAGS", "asm-generic/mman-common.h", r"PROT_\w+"),
    T("MAP_TYPES", "linux/mman.h", r"MAP_(SHARED|PRIVATE|SHARED_VALIDATE|DROPPABLE)"),
    T("MAP_FLAGS", "asm-generic/mman-common.h asm-generic/mman.h asm/mman.h", r"MAP_\w+",
      r"MAP_(TYPE|FILE|UNINITIALIZED|HUGE_\w+)"),
    T("MREMAP_FLAGS", "linux/mman.h", r"MREMAP_\w+"),
    T("MSYNC_FLAGS", "asm-generic/mman-common.h", r"MS_\w+"),
    T("MADV_ADVICE", "asm-generic/mman-common.h", r"MADV_\w+"),
    T("MLOCKALL_FLAGS", "asm-generic/mman.h", r"MCL_\w+"),
    T("MLOCK_FLAGS", "asm-generic/mman-common.h", r"MLOCK_\w+"),
    T("MFD_FLAGS", "linux/memfd.h", r"MFD_\w+", r"MFD_HUGE_\w+"),
    T("FADV_ADVICE", "linux/fadvise.h", r"POSIX_FADV_\w+"),
    # processes, signals, time
    T("SIGNALS", "asm/signal.h", r"SIG[A-Z]+[0-9]*", r"SIG(RTMAX|STKSZ|UNUSED|IOT|POLL|STKFLT_)"),
    T("SIGPROCMASK_HOW", "asm-generic/signal-defs.h", r"SIG_(BLOCK|UNBLOCK|SETMASK)"),
    T("CLONE_FLAGS", "linux/sched.h", r"CLONE_\w+", r"CLONE_ARGS_SIZE_VER\d+"),
    T("SCHED_POLICIES", "linux/sched.h", r"SCHED_[A-Z]+", r"SCHED_RESET_ON_FORK"),
    T("WAIT_OPTIONS", "linux/wait.h", r"(__)?W[A-Z]+", r"WSTOPPED"),
    T("WAITID_TYPES", "linux/wait.h", r"P_\w+"),
    T("FUTEX_OPS", "linux/futex.h",
      r"FUTEX_(WAIT|WAKE|FD|REQUEUE|CMP_REQUEUE|WAKE_OP|LOCK_PI|UNLOCK_PI|TRYLOCK_PI|WAIT_BITSET|WAKE_BITSET"
      r"|WAIT_REQUEUE_PI|CMP_REQUEUE_PI|LOCK_PI2)(_PRIVATE)?"),
    T("FUTEX_OP_FLAGS", "linux/futex.h", r"FUTEX_(PRIVATE_FLAG|CLOCK_REALTIME)"),
    T("FUTEX_BITSETS", "linux/futex.h", r"FUTEX_BITSET_MATCH_ANY"),
    T("FUTEX_WAKE_OPS", "linux/futex.h", r"FUTEX_OP_(SET|ADD|OR|ANDN|XOR)"),
    T("FUTEX_WAKE_CMPS", "linux/futex.h", r"FUTEX_OP_CMP_\w+"),
    T("ARCH_PRCTL_CODES", "asm/prctl.h", r"ARCH_\w+"),
    T("PRCTL_OPTIONS", "linux/prctl.h", r"PR_\w+"),   # column-0 defines only: see scan()
    T("PRCTL_SET_MM", "linux/prctl.h", r"PR_SET_MM_\w+", r"PR_SET_MM_MAP_SIZE"),
    T("PRCTL_CAP_AMBIENT", "linux/prctl.h", r"PR_CAP_AMBIENT_\w+"),
    T("PRCTL_SET_VMA", "linux/prctl.h", r"PR_SET_VMA_\w+"),
    T("PRCTL_MCE_KILL", "linux/prctl.h", r"PR_MCE_KILL_(CLEAR|SET)"),
    T("SECCOMP_MODES", "linux/seccomp.h", r"SECCOMP_MODE_\w+"),
    T("CAPABILITIES", "linux/capability.h", r"CAP_[A-Z_]+", r"CAP_LAST_CAP"),
    T("RLIMIT_RESOURCES", "asm-generic/resource.h", r"RLIMIT_\w+"),
    T("RUSAGE_WHO", "linux/resource.h", r"RUSAGE_\w+"),
    T("PRIO_WHICH", "linux/resource.h", r"PRIO_(PROCESS|PGRP|USER)"),
    T("CLOCK_IDS", "linux/time.h", r"CLOCK_\w+"),
    T("TIMER_FLAGS", "linux/time.h", r"TIMER_ABSTIME"),
    T("ITIMER_WHICH", "linux/time.h", r"ITIMER_\w+"),
    T("TFD_FLAGS", "linux/timerfd.h", r"TFD_\w+", r"TFD_(IOC_\w+|SHARED_FCNTL_FLAGS|CREATE_FLAGS|SETTIME_FLAGS)"),
    T("EFD_FLAGS", "linux/eventfd.h", r"EFD_\w+"),
    T("SFD_FLAGS", "linux/signalfd.h", r"SFD_\w+"),
    T("IN_INIT_FLAGS", "linux/inotify.h", r"IN_(CLOEXEC|NONBLOCK)"),
    T("IN_EVENTS", "linux/inotify.h", r"IN_\w+", r"IN_(CLOEXEC|NONBLOCK|ALL_EVENTS|CLOSE|MOVE)"),
    T("EPOLL_CTL_OPS", "linux/eventpoll.h", r"EPOLL_CTL_\w+"),
    T("EPOLL_FLAGS", "linux/eventpoll.h", r"EPOLL_CLOEXEC"),
    T("GRND_FLAGS", "linux/random.h", r"GRND_\w+"),
    T("PIDFD_FLAGS", "linux/pidfd.h", r"PIDFD_(NONBLOCK|THREAD)"),
    T("PTRACE_REQUESTS", "linux/ptrace.h asm/ptrace-abi.h", r"PTRACE_[A-Z_]+",
      r"PTRACE_(O_\w+|EVENT_\w+|EVENTMSG_\w+|PEEKSIGINFO_SHARED|SYSCALL_INFO_\w+|GETFDPIC_\w+|"
      r"ARCH_PRCTL_\w+|SYSEMU_SINGLESTEP_\w+|GETSIGMASK_\w+)"),
    T("SECCOMP_OPS", "linux/seccomp.h", r"SECCOMP_(SET_MODE_\w+|GET_ACTION_AVAIL|GET_NOTIF_SIZES)"),
    T("SECCOMP_FILTER_FLAGS", "linux/seccomp.h", r"SECCOMP_FILTER_FLAG_\w+"),
    T("MEMBARRIER_CMDS", "linux/membarrier.h", r"MEMBARRIER_CMD_\w+", r"MEMBARRIER_CMD_SHARED"),
    T("PERSONALITY_TYPES", "linux/personality.h", r"PER_[A-Z0-9_]+", r"PER_MASK"),
    # sockets
    T("ADDRESS_FAMILIES", "kernel:linux/socket.h", r"AF_\w+", r"AF_MAX"),
    T("SOCK_TYPES", "kernel:linux/net.h", r"SOCK_(STREAM|DGRAM|RAW|RDM|SEQPACKET|DCCP|PACKET)"),
    T("SOCK_FLAGS", "kernel:linux/net.h", r"SOCK_(NONBLOCK|CLOEXEC)"),
    T("SHUTDOWN_HOW", "kernel:linux/net.h", r"SHUT_\w+"),
    T("MSG_FLAGS", "kernel:linux/socket.h", r"MSG_\w+",
      r"MSG_(CMSG_COMPAT|INTERNAL_SENDMSG_FLAGS|SENDPAGE_NOPOLICY|SENDPAGE_NOTLAST|TRYHARD|SPLICE_PAGES|NO_SHARED_FRAGS"
      r"|SENDPAGE_DECRYPTED)"),
    T("SOCKET_LEVELS", "asm-generic/socket.h kernel:linux/socket.h", r"SOL_\w+"),
    T("IP_PROTOCOLS", "linux/in.h linux/in6.h", r"IPPROTO_\w+", r"IPPROTO_MAX"),
    T("SO_OPTIONS", "asm-generic/socket.h", r"SO_\w+", r"SO_(TIMESTAMP|TIMESTAMPNS|TIMESTAMPING|RCVTIMEO|SNDTIMEO)"),
    T("TCP_OPTIONS", "linux/tcp.h", r"TCP_\w+", block=("TCP_NODELAY", "TCP_IS_MPTCP")),
    T("IP_OPTIONS", "linux/in.h", r"IP_\w+", r"IP_(RECVRETOPTS|PMTUDISC_\w+|DEFAULT_MULTICAST_\w+|MSFILTER_SIZE)",
      block=("IP_TOS", "IP_LOCAL_PORT_RANGE")),
    T("IPV6_OPTIONS", "linux/in6.h", r"IPV6_\w+",
      r"IPV6_(FL_\w+|PRIORITY_\w+|TLV_\w+|PMTUDISC_\w+|ADD_MEMBERSHIP|DROP_MEMBERSHIP|RXHOPOPTS|RXDSTOPTS"
      r"|PREFER_SRC_\w+)", block=("IPV6_ADDRFORM", "IPV6_FREEBIND")),
    T("NETLINK_PROTOCOLS", "linux/netlink.h", r"NETLINK_[A-Z0-9_]+", block=("NETLINK_ROUTE", "NETLINK_SMC")),
    # ioctl requests
    T("IOCTLS", "asm-generic/ioctls.h asm-generic/sockios.h linux/sockios.h linux/fs.h linux/random.h "
      "linux/loop.h linux/nsfs.h linux/timerfd.h linux/seccomp.h linux/pidfd.h linux/perf_event.h "
      "linux/vt.h linux/kd.h linux/userfaultfd.h linux/fiemap.h linux/fscrypt.h linux/fsverity.h",
      r"(TC|TIOC|FIO|SIOC|FS_IOC|FI|BLK|RND|LOOP_|NS_|TFD_IOC_|SECCOMP_IOCTL_|PIDFD_GET_|PERF_EVENT_IOC_|"
      r"VT_|KD|KIO|GIO_|PIO_|UFFDIO_|FS_IOC_)\w+",
      r"TIOCPKT_\w+|TIOCSER_TEMT|TIOCM_\w+|FIOQSIZE_|SIOCDEVPRIVATE|SIOCPROTOPRIVATE|SIOCIWFIRST|SIOCIWLAST|"
      r"SIOCGSTAMP|SIOCGSTAMPNS|FILE_\w+|FIEMAP_\w+|FS_IOC_GET_ENCRYPTION_POLICY_EX_SIZE|"
      r"BLK_\w+|FIOGETOWN_|KDGKBTYPE_|KD_\w+|VT_AUTO|VT_PROCESS|VT_ACKACQ|UFFDIO|UFFDIO_(API|REGISTER_MODE_\w+"
      r"|COPY_MODE_\w+|ZEROPAGE_MODE_\w+|WRITEPROTECT_MODE_\w+|CONTINUE_MODE_\w+|POISON_MODE_\w+|MOVE_MODE_\w+)|"
      r"LOOP_(SET_STATUS|GET_STATUS)|LOOP_\w+_FLAGS|VT_EVENT_\w+|VT_MAX_EVENT|NS_GET_MNTNS_ID|PIDFD_GET_INFO|FS_IOC_\w+_FL|TCSA\w+|TCOO\w+|TCO\w+|TCI\w+|"
      r"TCIOFF|TCION|TCOOFF|TCOON|KDGETKEYCODE_|KIOCSOUND_|RNDGETENTCNT_|FIBMAP_"),
)


# ---------------------------------------------------------------------------

_DEFINE = re.compile(r"^#\s*define\s+([A-Za-z_]\w*)(?![\w(])\s*(.*?)\s*$")
_DEFINE_COL0 = re.compile(r"^#define\s+([A-Za-z_]\w*)(?![\w(])")
_ENUM = re.compile(r"\benum\b[^{;]*\{(.*?)\}", re.S)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _joined_lines(text: str) -> list[str]:
    return _strip_comments(text).replace("\\\n", " ").splitlines()


def scan(path: Path, table: Table) -> list[tuple[str, str, bool]]:
    """(name, expression, is an enum member) for the table's names in the header, in header order."""
    lines = _joined_lines(path.read_text())
    found: list[tuple[str, str]] = []
    col0 = table.name == "PRCTL_OPTIONS"   # prctl.h indents the values of each option, not the options
    for line in lines:
        m = (_DEFINE_COL0 if col0 else _DEFINE).match(line)
        if m:
            found.append((m.group(1), _DEFINE.match(line).group(2), False))
    for body in _ENUM.findall("\n".join(lines)):
        prev = None
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, expr = (p.strip() for p in item.partition("="))
            if not re.fullmatch(r"[A-Za-z_]\w*", name):
                continue
            expr = expr or (f"({prev}) + 1" if prev else "0")
            found.append((name, expr, True))
            prev = name
    out, seen = [], set()
    for name, expr, is_enum in found:
        if name in seen or not re.fullmatch(table.pattern, name):
            continue
        if table.exclude and re.fullmatch(table.exclude, name):
            continue
        seen.add(name)
        out.append((name, expr, is_enum))
    if table.block:
        names = [n for n, _, _ in out]
        if table.block[0] not in names or table.block[1] not in names:
            raise SystemExit(f"gen_consts: {table.name}: block {table.block} not found in {path}")
        out = out[names.index(table.block[0]):names.index(table.block[1]) + 1]
    # enum members found after the #defines: put them back in header order
    text = "\n".join(lines)
    out.sort(key=lambda item: _position(text, item[0]))
    return out


def _position(text: str, name: str) -> int:
    m = re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text)
    return m.start() if m else len(text)


def include_dirs(headers: Path) -> list[str]:
    common = Path(str(headers).replace("-amd64", "-common")) if "-amd64" in str(headers) else headers
    return [str(p) for p in (common / "include/uapi", common / "arch/x86/include/uapi",
                             headers / "arch/x86/include/generated/uapi", headers / "include/generated/uapi")]


def header_path(headers: Path, spec: str) -> Path:
    common = Path(str(headers).replace("-amd64", "-common")) if "-amd64" in str(headers) else headers
    if spec.startswith("kernel:"):
        return common / "include" / spec[len("kernel:"):]
    for d in include_dirs(headers):
        p = Path(d) / spec
        if p.exists():
            return p
    raise SystemExit(f"gen_consts: no header {spec} under {headers}")


def build(headers: Path) -> dict[str, list[tuple[str, int]]]:
    names: dict[str, list[tuple[str, bool]]] = {}
    internal: list[tuple[str, str]] = []
    includes: list[str] = []
    for t in TABLES:
        names[t.name] = []
        for spec in t.files:
            for name, expr, is_enum in scan(header_path(headers, spec), t):
                kernel_only = spec.startswith("kernel:")
                names[t.name].append((name, is_enum and not kernel_only))
                if kernel_only:
                    internal.append((name, expr))
            if not spec.startswith("kernel:") and spec not in includes:
                includes.append(spec)
    src = ["#include <linux/types.h>", "#include <asm/fcntl.h>", "#include <asm/socket.h>", "#include <asm/termbits.h>",
           "#include <stddef.h>", "#include <linux/serial.h>",
           "#include <linux/blktrace_api.h>"]
    src += [f"#include <{h}>" for h in includes]
    for name, expr in internal:   # the kernel's own headers cannot be compiled outside it: their values only
        src += [f"#ifndef {name}", f"#define {name} {expr}", "#endif"]
    src += ["int printf(const char *, ...);", "int main(void)", "{"]
    for t in TABLES:
        for name, is_enum in names[t.name]:
            line = f'\tprintf("{t.name} {name} %lld\\n", (long long)({name}));'
            src += [line] if is_enum else [f"#ifdef {name}", line, "#endif"]   # some are #if'd out
    src += ["\treturn 0;", "}"]
    values = _run_c("\n".join(src) + "\n", headers)
    out: dict[str, list[tuple[str, int]]] = {}
    for t in TABLES:
        out[t.name] = [(n, values[(t.name, n)]) for n, _ in names[t.name] if (t.name, n) in values]
        if not out[t.name]:
            raise SystemExit(f"gen_consts: table {t.name} is empty: check its headers and pattern")
    return out


def _run_c(source: str, headers: Path) -> dict[tuple[str, str], int]:
    with tempfile.TemporaryDirectory(prefix="gen-consts-") as d:
        c, exe = os.path.join(d, "consts.c"), os.path.join(d, "consts")
        Path(c).write_text(source)
        # What `make headers_install` strips from the uapi headers of a kernel tree.
        os.mkdir(os.path.join(d, "linux"))
        for stub in ("compiler_types.h", "compiler.h"):
            Path(d, "linux", stub).write_text("")
        cmd = ["cc", "-w", "-D__user=", "-D__force=", "-D__iomem=", "-D__attribute_const__=",
               "-D__packed=__attribute__((packed))", f"-I{d}",
               *[f"-I{p}" for p in include_dirs(headers)], "-o", exe, c]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"gen_consts: the C compiler failed:\n{res.stderr[:4000]}")
        out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    values = {}
    for line in out.splitlines():
        table, name, value = line.split()
        values[(table, name)] = int(value)
    return values


def render_py(tables: dict[str, list[tuple[str, int]]], source: str) -> str:
    lines = [f'"""Symbolic constants, generated by tools/gen_consts.py from {source}.', "",
             "Do not edit: run `make consts`.  Each table lists (name, value) in header order,",
             "aliases included; saga.decode chooses the name printed for a value.", '"""', ""]
    for name, items in tables.items():
        lines.append(f"{name} = (")
        for n, v in items:
            lines.append(f"    ({n!r}, {v if -10 < v < 10 else hex(v)}),")
        lines += [")", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--headers", type=Path, help="a linux-headers-*-amd64 directory")
    ap.add_argument("--check", action="store_true", help="exit 1 if the output is stale")
    args = ap.parse_args()
    headers = args.headers or newest_headers()
    text = render_py(build(headers), "the Linux 6.12 amd64 headers")
    if args.check:
        if not PY_OUT.exists() or PY_OUT.read_text() != text:
            print(f"{PY_OUT.relative_to(ROOT)} is stale: run `make consts`", file=sys.stderr)
            return 1
        return 0
    PY_OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
