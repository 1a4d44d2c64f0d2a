#!/usr/bin/env python3
"""Hold saga's log lines against strace's, call by call.

A command runs under `strace -f` while the eBPF driver records the whole
machine; both therefore see the very same calls.  The calls of each thread
are paired in order (by name: saga also sees the calls strace cannot, such
as those before the first execve), then each pair's arguments are compared
position by position.  The figure that matters (issue 12) is the share of
paired calls where strace prints a symbol (`O_CLOEXEC`, `FUTEX_WAKE_PRIVATE`,
`NULL`, `(flags O_RDWR)` after a return value) and saga a bare number.
Struct contents, buffers and strings strace reads from the traced memory
are not compared: saga does not capture them.

    tools/strace_compare.py [--workload ordinary|server] [--top N] [-- CMD ...]

Needs root, strace and the eBPF driver's object (`make build`); loads the
driver into a private bpffs and unloads it at the end.  The command runs as
`nobody` (strace -u) and only that user's calls are logged, so the rest of
the machine cannot fill the ring.  tests/ebpf/test_strace_parity.py
runs it on the two workloads and holds the share to at most 2%.
"""
from __future__ import annotations

import argparse
import collections
import difflib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# strace's output

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_CALL = re.compile(r"^([a-z_0-9]+)\((.*)$", re.S)
_RESUMED = re.compile(r"^<\.\.\. ([a-z_0-9]+) resumed>(.*)$", re.S)
_UNFINISHED = " <unfinished ...>"
_RET = re.compile(r"\)\s+= (.*)$")


@dataclass
class StraceCall:
    tid: int
    name: str
    args: list[str]
    ret: str


def _split_ret(rest: str) -> tuple[str, str] | None:
    """'ARGS) = RET' -> (ARGS, RET), the last ') = ' outside quotes being the end of the arguments."""
    depth, quote, i, cut = 0, False, 0, -1
    while i < len(rest):
        c = rest[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0 and c == ")":
                cut = i
                break
            depth -= 1
        i += 1
    if cut < 0:
        return None
    m = _RET.match(rest[cut:])
    return (rest[:cut], m.group(1)) if m else None


def parse_strace(text: str) -> dict[int, list[StraceCall]]:
    """The calls of each thread, in order, with unfinished/resumed halves joined."""
    pending: dict[int, tuple[str, str]] = {}
    out: dict[int, list[StraceCall]] = collections.defaultdict(list)
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        tid, body = int(m.group(1)), m.group(2)
        if body.startswith(("+++", "---")):
            continue
        if body.endswith(_UNFINISHED):
            c = _CALL.match(body[: -len(_UNFINISHED)])
            if c:
                pending[tid] = (c.group(1), c.group(2))
            continue
        r = _RESUMED.match(body)
        if r:
            name, head = pending.pop(tid, (r.group(1), ""))
            body = f"{name}({head}{r.group(2)}"
        c = _CALL.match(body)
        if not c:
            continue
        parts = _split_ret(c.group(2))
        if parts is None:   # killed inside the call: `= ?` missing
            continue
        out[tid].append(StraceCall(tid, c.group(1), split_args(parts[0]), parts[1].strip()))
    return out


def split_args(text: str) -> list[str]:
    """Top-level arguments of a call, C comments removed (`0x7ffd /* 36 vars */` -> `0x7ffd`)."""
    args, depth, quote, start, i = [], 0, False, 0, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i])
            start = i + 1
        i += 1
    args.append(text[start:])
    args = [re.sub(r"/\*.*?\*/", "", a).strip() for a in args]
    return [] if args == [""] else args


# ---------------------------------------------------------------------------
# Comparison

_IDENT = re.compile(r"(?<![0-9A-Za-z_])[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"^-?(0x[0-9a-f]+|\d+)$")
_NAMED = re.compile(r"^([a-z_]+)=(.*)$", re.S)
# strace prints clone's arguments by name and in another order than the kernel's.
_CLONE_NAMES = {"flags": "clone_flags", "child_stack": "newsp", "parent_tid": "parent_tidptr",
                "parent_tidptr": "parent_tidptr", "child_tidptr": "child_tidptr", "tls": "tls"}


def is_symbolic(token: str) -> bool:
    """A value strace printed with a name: bare, no struct, array, set or string read from memory."""
    if not token or token[0] in "\"[{~" or token.endswith("..."):
        return False
    return _IDENT.search(token) is not None


def _items(tok: str) -> list[str]:
    """The elements of `[a, b]` or the fields of `{a=1, b=2}`, top level."""
    return split_args(tok[1:-1]) if len(tok) >= 2 else []


def same_aux(strace_tok: str, saga_tok: str) -> bool:
    """The same argv, socket address or clone_args: strace cuts each string at -s bytes (`"abc"...`),
    saga the whole list at its bound (`, ...]`); netlink's padding (nl_pad) and clone3's values at exit
    (` => {parent_tid=[..]}`) are strace's alone."""
    strace_tok = strace_tok.split(" => ", 1)[0]
    mine, theirs = _items(saga_tok), [t for t in _items(strace_tok) if not t.startswith("nl_pad=")]
    if mine and mine[-1] == "...":
        mine = mine[:-1]
        theirs = theirs[:len(mine)]
    if len(mine) != len(theirs):
        return False
    for m, t in zip(mine, theirs, strict=True):
        if t.endswith('"...'):
            if not m.startswith(t[:-4]):
                return False
        elif m != t and not same_symbol(t.split("=", 1)[-1], m.split("=", 1)[-1]):
            return False
    return True


def c_int(tok: str) -> int:
    """A C integer literal: 0x1f, 022 (octal), -1, 17."""
    if re.fullmatch(r"-?0[0-7]+", tok):
        return int(tok.replace("0", "0o", 1), 0)
    return int(tok, 0)


def same_symbol(strace_tok: str, saga_tok: str) -> bool:
    """The same value by name: flags in any order; `A or B` (strace's aliases) matches either."""
    if strace_tok == saga_tok:
        return True
    alternatives = strace_tok.split(" or ")
    if saga_tok in alternatives:
        return True
    return set(strace_tok.split("|")) == set(saga_tok.split("|"))


def ret_symbol(ret: str) -> str | None:
    """The symbolic part of strace's return value: `0x8002 (flags O_RDWR|O_LARGEFILE)` -> the flags."""
    m = re.match(r"^(-?\w+)(?: \((.*)\))?$", ret)
    if not m or not m.group(2):
        return None
    note = m.group(2)
    if note.startswith("flags "):
        return note[6:]
    if re.fullmatch(r"[A-Z][A-Z0-9_|]*_[A-Z0-9_|]*", note):
        return note
    return None


@dataclass
class Report:
    calls: int = 0                      # strace's calls
    paired: int = 0
    gap_calls: int = 0                  # strace a symbol, saga a number
    differ_calls: int = 0               # both symbolic, not the same text
    memory_calls: int = 0               # strace shows names inside memory it read (structs, sets): not compared
    aux_calls: int = 0                  # saga shows what it captured of memory too (argv, sockaddr, clone_args)
    aux_differ_calls: int = 0           # ... and it is not what strace shows
    aux_missing_calls: int = 0          # strace shows argv, an address or clone_args where saga a bare pointer
    value_calls: int = 0                # both numbers, not the same value: a wrong decoding
    format_calls: int = 0               # both numbers, the same value written differently (0x20 and 32)
    by_name: collections.Counter = field(default_factory=collections.Counter)
    gaps: collections.Counter = field(default_factory=collections.Counter)      # (call, arg) -> n
    differ: collections.Counter = field(default_factory=collections.Counter)
    values: collections.Counter = field(default_factory=collections.Counter)
    formats: collections.Counter = field(default_factory=collections.Counter)
    aux_differ: collections.Counter = field(default_factory=collections.Counter)
    aux_missing: collections.Counter = field(default_factory=collections.Counter)
    aux_by_name: collections.Counter = field(default_factory=collections.Counter)   # calls shown with aux
    examples: dict = field(default_factory=dict)

    @property
    def gap_share(self) -> float:
        return self.gap_calls / self.paired if self.paired else 0.0

    def summary(self, top: int = 60) -> str:
        lines = [f"strace calls {self.calls}, paired with saga {self.paired} "
                 f"({100 * self.paired / max(self.calls, 1):.1f}%)",
                 f"symbol in strace, number in saga: {self.gap_calls} calls = {100 * self.gap_share:.2f}%",
                 f"both symbolic but different: {self.differ_calls} calls",
                 f"both numbers, different values: {self.value_calls} calls; same value written "
                 f"differently: {self.format_calls} calls",
                 f"names in memory strace read (structs, arrays, signal sets; not compared): "
                 f"{self.memory_calls} calls",
                 f"argv, socket addresses, clone_args saga captured: {self.aux_calls} calls, "
                 f"not as strace shows them: {self.aux_differ_calls}; shown by strace, a pointer in saga: "
                 f"{self.aux_missing_calls}",
                 "  by call: " + " ".join(f"{n}:{c}" for n, c in sorted(self.aux_by_name.items())), "",
                 f"top {top} syscalls: " + " ".join(f"{n}:{c}" for n, c in self.by_name.most_common(top))]
        for title, counter in (("gaps", self.gaps), ("different symbols", self.differ),
                               ("different values", self.values), ("different formats", self.formats),
                               ("different aux", self.aux_differ), ("aux missing", self.aux_missing)):
            if counter:
                lines.append(f"\n{title} (call, argument, calls, example strace | saga):")
                for key, n in counter.most_common(40):
                    lines.append(f"  {key[0]} {key[1]} {n}  {self.examples.get((title, key), '')}")
        return "\n".join(lines)


def _saga_args(raw: tuple, render) -> list[str]:
    return split_args(render.format_args(raw))


def _named(tokens: list[str]) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in map(_NAMED.match, tokens) if m}


def _compare_call(rep: Report, sc: StraceCall, raw: tuple, render, syscalls) -> None:
    from saga import events
    sargs = _saga_args(raw, render)
    spec = syscalls.BY_SLOT.get(raw[events.NR])
    names = [a.name for a in spec.args] if spec else []
    pairs: list[tuple[int | None, str, str, str]] = []   # (position, argument, strace, saga)
    s_named, g_named = _named(sc.args), _named(sargs)
    if s_named and g_named:   # clone: both print name=value
        pairs = [(None, k, v, g_named[k]) for k, v in s_named.items() if k in g_named]
    else:
        pairs = [(i, names[i] if i < len(names) else str(i), tok, sargs[i])
                 for i, tok in enumerate(sc.args) if i < len(sargs)]
    aux_at = render.aux_arg(raw[events.NR])
    gap = differ = memory = value = form = aux = aux_differ = aux_missing = False
    for i, arg, s_tok, g_tok in pairs:
        if g_tok[:1] in ("[", "{") and s_tok[:1] in ("[", "{"):   # argv, sockaddr, clone_args: saga captured them
            aux = True
            if not same_aux(s_tok, g_tok):
                aux_differ = True
                rep.aux_differ[(sc.name, arg)] += 1
                rep.examples.setdefault(("different aux", (sc.name, arg)), f"{s_tok} | {g_tok}")
            continue
        if i is not None and i == aux_at and s_tok[:1] in ("[", "{") and _NUMBER.match(g_tok):
            aux_missing = True   # what the aux blob is for, not captured
            rep.aux_missing[(sc.name, arg)] += 1
            rep.examples.setdefault(("aux missing", (sc.name, arg)), f"{s_tok} | {g_tok}")
            continue
        if not is_symbolic(s_tok):
            if s_tok[:1] in ("[", "{", "~") and _IDENT.search(re.sub(r'"(\\.|[^"\\])*"', "", s_tok)):
                memory = True
            elif _NUMBER.match(s_tok) and _NUMBER.match(g_tok) and s_tok != g_tok:
                key = (sc.name, arg)
                if c_int(s_tok) != c_int(g_tok):
                    value = True
                    rep.values[key] += 1
                    rep.examples.setdefault(("different values", key), f"{s_tok} | {g_tok}")
                else:
                    form = True
                    rep.formats[key] += 1
                    rep.examples.setdefault(("different formats", key), f"{s_tok} | {g_tok}")
            continue
        if _NUMBER.match(g_tok):
            gap = True
            rep.gaps[(sc.name, arg)] += 1
            rep.examples.setdefault(("gaps", (sc.name, arg)), f"{s_tok} | {g_tok}")
        elif not same_symbol(s_tok, g_tok) and not g_tok.startswith(("\"", "[", "{")):
            differ = True
            rep.differ[(sc.name, arg)] += 1
            rep.examples.setdefault(("different symbols", (sc.name, arg)), f"{s_tok} | {g_tok}")
    want = ret_symbol(sc.ret)
    if want is not None:
        got = render.format_ret(raw)
        m = re.match(r"^\S+ \((?:\w+ )?(.*)\)$", got)
        if m is None:
            gap = True
            rep.gaps[(sc.name, "=")] += 1
            rep.examples.setdefault(("gaps", (sc.name, "=")), f"{sc.ret} | {got}")
        elif not same_symbol(want, m.group(1)):
            differ = True
            rep.differ[(sc.name, "=")] += 1
            rep.examples.setdefault(("different symbols", (sc.name, "=")), f"{sc.ret} | {got}")
    rep.gap_calls += gap
    rep.differ_calls += differ
    rep.memory_calls += memory
    rep.value_calls += value
    rep.format_calls += form
    rep.aux_calls += aux
    rep.aux_differ_calls += aux_differ
    rep.aux_missing_calls += aux_missing
    if aux:
        rep.aux_by_name[sc.name] += 1


def compare(strace: dict[int, list[StraceCall]], raws: list[tuple]) -> Report:
    """Pair each thread's calls in order and compare them (see the module's docstring)."""
    from saga import events, render, syscalls
    by_tid: dict[int, list[tuple]] = collections.defaultdict(list)
    for r in raws:
        if r[events.TID] in strace:
            by_tid[r[events.TID]].append(r)
    rep = Report()
    for tid, scalls in strace.items():
        rep.calls += len(scalls)
        for sc in scalls:
            rep.by_name[sc.name] += 1
        mine = sorted(by_tid.get(tid, ()), key=lambda r: r[events.TS])
        a = [sc.name for sc in scalls]
        b = [syscalls.name_of(r[events.NR]) for r in mine]
        for blk in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
            for k in range(blk.size):
                rep.paired += 1
                _compare_call(rep, scalls[blk.a + k], mine[blk.b + k], render, syscalls)
    return rep


# ---------------------------------------------------------------------------
# Running a command under strace and the eBPF driver

WORKLOADS = {
    # Ordinary programs: coreutils, sh, tar, git, threaded python, fork and exec.
    "ordinary": r"""
set -e
d=$(mktemp -d /tmp/saga-cmp.XXXXXX); cd "$d"
ls -la /etc >/dev/null; cat /etc/hostname >/dev/null; id >/dev/null; date >/dev/null
mkdir -p a/b; echo hi > a/b/f; cp a/b/f a/g; mv a/g a/h; ln -s h a/l; chmod 640 a/h; touch -d @0 a/h
stat a/h >/dev/null; find . -type f | sort | wc -l >/dev/null; du -s a >/dev/null; grep -r hi a >/dev/null
sed -e s/hi/ho/ a/b/f > a/s; readlink a/l >/dev/null; head -c 100 /dev/urandom | od >/dev/null
tar czf t.tgz a; mkdir x; tar xzf t.tgz -C x; rm -rf x
git init -q r; cd r; git config user.email t@example.com; git config user.name t
echo one > one; git add one; git commit -qm one; git log --oneline >/dev/null; git status -s >/dev/null; cd ..
python3 -c '
import os, threading, subprocess, socket, tempfile, time
def work(i):
    with open(f"t{i}", "w") as f: f.write("x" * 1000)
    os.stat(f"t{i}"); os.unlink(f"t{i}")
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
pid = os.fork()
if pid == 0: os._exit(0)
os.waitpid(pid, 0)
subprocess.run(["true"])
a, b = socket.socketpair(); a.send(b"x"); b.recv(1); a.close(); b.close()
os.umask(0o27); os.umask(0o22)
time.sleep(0.01)
'
(sleep 0.01 &) ; sh -c 'exit 0'; env true
seq 1 20000 | sort -r --parallel=2 -S 1M | uniq | wc -l >/dev/null; seq 1 50 | xargs -P2 -n10 echo >/dev/null
flock l true; timeout 5 sleep 0.01; nice -n 5 true; setsid true; dd if=/dev/zero of=z bs=4k count=16 2>/dev/null
awk 'BEGIN { print 1 }' >/dev/null; perl -e 'mkdir "p"; rmdir "p"; kill 0, $$'
gzip -k a/b/f; gzip -dc a/b/f.gz >/dev/null
cd /; rm -rf "$d"
""",
    # A server: python's threaded http.server answering clients (requests over TCP), then datagrams
    # (UDP over IPv4 and IPv6, unix) whose sender's address recvfrom returns.
    "server": r"""
exec python3 -c '
import http.server, threading, urllib.request, socketserver, os, tempfile
os.chdir(tempfile.mkdtemp())
with open("index.html", "w") as f: f.write("hello " * 200)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
srv.RequestHandlerClass.log_message = lambda *a: None
port = srv.server_address[1]
t = threading.Thread(target=srv.serve_forever); t.start()
def client(n):
    for i in range(n):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html") as r: r.read()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/missing")
        except Exception:
            pass
cs = [threading.Thread(target=client, args=(25,)) for _ in range(4)]
[c.start() for c in cs]; [c.join() for c in cs]
import asyncio
async def fetch():
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /index.html HTTP/1.0\r\n\r\n"); await w.drain()
    await r.read(); w.close(); await w.wait_closed()
async def many():
    await asyncio.gather(*(fetch() for _ in range(20)))
asyncio.run(many())
srv.shutdown(); srv.server_close()
import socket
for fam, where in ((socket.AF_INET, ("127.0.0.1", 0)), (socket.AF_INET6, ("::1", 0)),
                   (socket.AF_UNIX, os.path.join(os.getcwd(), "sock"))):
    try:
        a = socket.socket(fam, socket.SOCK_DGRAM); a.bind(where)
    except OSError:
        continue   # no IPv6 here
    b = socket.socket(fam, socket.SOCK_DGRAM); b.bind(where + "-b" if fam == socket.AF_UNIX else where)
    for i in range(5):
        b.sendto(b"ping", a.getsockname()); data, peer = a.recvfrom(100); a.sendto(data, peer); b.recvfrom(100)
    a.close(); b.close()
'
""",
}


WORKLOAD_USER, WORKLOAD_UID = "nobody", 65534
WORKLOAD_PATH = "/usr/local/bin:/usr/bin:/bin"


def _run_traced(argv: list[str], timeout: float = 300) -> None:
    """Run argv in a session of its own; on a timeout, kill all of it (strace would let its tracees go)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError(f"{' '.join(argv[:12])}...: still running after {timeout:.0f} s, killed") from None
    if rc:
        raise RuntimeError(f"{' '.join(argv[:12])}...: exit status {rc}")


def record(cmd: list[str], workdir: str, bpffs: str | None = None) -> tuple[str, list[tuple], bytes]:
    """Run cmd under strace -f with the eBPF driver loaded; (strace's text, saga's records, their bytes).

    The driver is loaded into `bpffs` (a BPF filesystem the caller mounted), else into one mounted
    here for the run."""
    sys.path.insert(0, str(ROOT / "tests/ebpf"))
    from ebpf_helpers import loaded

    from saga import events
    from saga.rules import grammar
    own = bpffs is None
    if own:
        bpffs = tempfile.mkdtemp(prefix="saga-bpffs-", dir=workdir)
        subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True)
    out = os.path.join(workdir, "strace.txt")
    chunks: list[bytes] = []
    try:
        # Only the workload's calls are logged: it runs as its own user (the machine's other
        # processes could fill the ring and drop events).
        with loaded(bpffs, "strace-compare", default_action="ignore") as drv:
            drv.replace_rules([grammar.parse(f"1: log all uid={WORKLOAD_UID}")])
            stop = threading.Event()

            def reader() -> None:
                while not stop.is_set():
                    b = drv.read_raw(1 << 24, 0.05)
                    if b:
                        chunks.append(b)

            t = threading.Thread(target=reader, daemon=True)
            t.start()
            try:
                _run_traced(["strace", "-f", "-qq", "-e", "signal=none", "-s", "64", "-o", out,
                             "-u", WORKLOAD_USER, "-E", f"PATH={WORKLOAD_PATH}", "-E", "HOME=/tmp", "--", *cmd])
                time.sleep(0.2)
            finally:
                stop.set()
                t.join()
            while b := drv.read_raw(1 << 24, 0):
                chunks.append(b)
            drops = drv.stats().drops
            if drops:
                raise RuntimeError(f"the eBPF driver dropped {drops} events: the comparison would be partial")
    finally:
        if own:
            subprocess.run(["umount", bpffs], check=False)
            os.rmdir(bpffs)
    data = b"".join(chunks)
    return Path(out).read_text(errors="surrogateescape"), events.parse(data), data


def run_workload(name: str, bpffs: str | None = None) -> Report:
    with tempfile.TemporaryDirectory(prefix="saga-cmp-") as d:
        text, raws, _ = record(["sh", "-c", WORKLOADS[name]], d, bpffs)
    return compare(parse_strace(text), raws)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="ordinary")
    ap.add_argument("--top", type=int, default=60)
    ap.add_argument("--strace", help="compare a saved strace output ...")
    ap.add_argument("--records", help="... with saved saga records (raw /dev/saga bytes)")
    ap.add_argument("--save", help="keep the strace output and the records as SAVE.strace and SAVE.saga")
    ap.add_argument("cmd", nargs="*")
    args = ap.parse_args()
    if args.strace:
        from saga import events
        rep = compare(parse_strace(Path(args.strace).read_text(errors="surrogateescape")),
                      events.parse(Path(args.records).read_bytes()))
    else:
        cmd = args.cmd or ["sh", "-c", WORKLOADS[args.workload]]
        with tempfile.TemporaryDirectory(prefix="saga-cmp-") as d:
            text, raws, data = record(cmd, d)
        if args.save:
            Path(args.save + ".strace").write_text(text, errors="surrogateescape")
            Path(args.save + ".saga").write_bytes(data)
        rep = compare(parse_strace(text), raws)
    print(rep.summary(args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
