"""Rendering speed: events as log lines (saga.render.line) and JSON objects (to_json).

Baseline, measured in the same run on the same events: a "floor" line
holding the same fields (time, cpu, pids, uid, comm, syscall name, the six
arguments in hex, the return value), made with one f-string per event: what
any text form of a record costs in Python.  The ratio line/floor is the
price of the strace-like decoding (names for flags and commands, per-call
printers, quoted paths).

Corpora: the recorded workload (tests/data/workload.saga.gz: files,
failures, threads, forks; a third of the calls carry paths) and a server's
mix (futex waits and wakes, sendto/recvfrom/poll, accept4, setsockopt,
openat, read, mmap, fcntl, ioctl: the top calls of the python http.server
workload of tests/ebpf/test_strace_parity.py, in its proportions).  Both
repeat their calls, so render.line finds most argument texts in its cache
(a busy server repeats 85% of its argument lists, the ordinary programs of
that test 23%); "arguments never seen before" empties that cache before
every event, the worst case.  "context" renders with the daemon's
unit/container lookup on (a process cache hit per event).  "saga.fastrender"
renders the same events from their bytes in window-sized chunks of 4096
(what the daemon does for /sagafs), warm, and with every cache emptied
before each chunk (each chunk's distinct calls rendered by saga.render
again).  Best of --rounds; every round runs every measure.
"""
from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np

from saga import events, fastrender, render, syscalls
from saga.drivers.replay import split_records
from saga.events import ARG0, COMM, CPU, NR, PID, RET, TID, TS, UID

ROOT = Path(__file__).resolve().parents[2]
_S = syscalls.BY_NAME
# (share in the server workload, call, args, ret): futex 60%, the rest after it.
SERVER_MIX = (
    (40, "futex", (0x7F06C5DFE990, 0x81, 1, 0, 0, 0), 1),
    (20, "futex", (0x7F06C5DFE990, 0x189, 0, 0, 0, 0xFFFFFFFF), 0),
    (5, "sendto", (5, 0x7F06C6794C00, 129, 0, 0, 0), 129),
    (5, "recvfrom", (7, 0x7F06AC000FB0, 8192, 0, 0, 0), 129),
    (4, "poll", (0x7F06C6BA49A0, 1, 500), 1),
    (3, "accept4", (3, 0x7F06C5DFE980, 0x7F06C5DFE974, 0x80000), 7),
    (3, "setsockopt", (4, 6, 1, 0x7F06C55FD830, 4), 0),
    (3, "rt_sigprocmask", (2, 0x7FFC00, 0, 8), 0),
    (4, "openat", (2**32 - 100, 0x55D9BA41FBA3, 0o2000000, 0), 3),
    (4, "read", (3, 0x7FFC00, 4096), 832),
    (3, "mmap", (0, 1048576, 3, 0x22, 2**64 - 1, 0), 0x7F22A8E59000),
    (2, "fcntl", (3, 3, 0), 0x8002),
    (2, "ioctl", (3, 0x5401, 0x7FFE999755E0), -25),
    (2, "close", (3,), 0),
)


def server_mix_bytes(n: int) -> bytes:
    one = []
    for share, name, args, ret in SERVER_MIX:
        paths = ("/usr/lib/python3.11/http/server.py",) if name == "openat" else ()
        rec = events.pack(dict(nr=_S[name].slot, pid=4242, tid=4243, uid=33, comm="python3", args=args, ret=ret,
                               ts_ns=1_796_000_000_000_000_000, duration_ns=5000, paths=paths))
        one += [rec] * share
    return b"".join(one[i % len(one)] for i in range(n))


def recorded_bytes(n: int) -> bytes:
    data = gzip.decompress((ROOT / "tests/data/workload.saga.gz").read_bytes())
    recs = [rec for rec, _ in split_records(data)]
    return b"".join(recs[i % len(recs)] for i in range(n))


CHUNK = 4096     # events a window chunk holds: what the daemon renders in one C pass


def c_chunks(buf: bytes) -> list[bytes]:
    """buf cut into window-sized chunks of records."""
    sizes = events.sizes(buf)
    ends = np.cumsum(sizes)[CHUNK - 1::CHUNK].tolist() + [len(buf)]
    starts = [0, *ends[:-1]]
    return [buf[a:b] for a, b in zip(starts, ends, strict=True) if b > a]


def timed_c(chunks: list[bytes], n: int, cold: bool) -> float:
    """ns per event of saga.fastrender over window-sized chunks; cold: its cache emptied before each."""
    fast = fastrender.Renderer()
    fast.lines(chunks[0])
    t = time.perf_counter()
    for c in chunks:
        if cold:
            fast.forget()
            render.clear_caches()
        fast.lines(c)
    return (time.perf_counter() - t) / n * 1e9


def floor_line(raw: tuple) -> str:
    a = raw[ARG0:ARG0 + 6]
    return (f"{raw[TS]} cpu={raw[CPU]} pid={raw[PID]} tid={raw[TID]} uid={raw[UID]} comm={raw[COMM]!r} "
            f"{_NAMES.get(raw[NR], raw[NR])}({hex(a[0])}, {hex(a[1])}, {hex(a[2])}, {hex(a[3])}, {hex(a[4])}, "
            f"{hex(a[5])}) = {raw[RET]}")


_NAMES = {s.slot: s.name for s in syscalls.BY_SLOT.values()}


def timed(fn, raws: list[tuple]) -> float:
    t = time.perf_counter()
    for r in raws:
        fn(r)
    return (time.perf_counter() - t) / len(raws) * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    data = {"recorded workload": recorded_bytes(args.events), "server mix": server_mix_bytes(args.events)}
    corpora = {name: events.parse(buf) for name, buf in data.items()}
    chunks = {name: c_chunks(buf) for name, buf in data.items()}
    c_measures = {"saga.fastrender (C), 4096-event chunks": False,
                  "saga.fastrender (C), every cache emptied before each chunk": True}
    where = ("unit=nginx.service", {"unit": "nginx.service", "container": None, "runtime": None, "pod": None,
                                    "cgroup": "/system.slice/nginx.service", "nspid": None})
    cache = {4242: where}

    def line_unseen(raw: tuple) -> str:
        render._ARGS_TEXT.clear()   # as if no call had these arguments before (the worst case)
        return render.line(raw)

    measures = {"floor (f-string of the fields)": floor_line, "render.line": render.line,
                "render.line, arguments never seen before": line_unseen, "render.to_json": render.to_json}
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for cname, raws in corpora.items():
            for mname, fn in measures.items():
                ns = timed(fn, raws)
                best[(cname, mname)] = min(best.get((cname, mname), ns), ns)
            render.context_of = lambda r: cache.get(r[PID])
            try:
                ns = timed(render.line, raws)
            finally:
                render.context_of = None
            best[(cname, "render.line with context")] = min(best.get((cname, "render.line with context"), ns), ns)
            for mname, cold in c_measures.items():
                ns = timed_c(chunks[cname], len(raws), cold)
                best[(cname, mname)] = min(best.get((cname, mname), ns), ns)
    print(f"Rendering {args.events:,} events per corpus, best of {args.rounds} (ns per event; "
          f"x = ratio to the floor of the same corpus)\n")
    print("| measure | " + " | ".join(corpora) + " |")
    print("|---|" + "---:|" * len(corpora))
    for mname in (*measures, "render.line with context", *c_measures):
        cells = []
        for cname in corpora:
            ns = best[(cname, mname)]
            cells.append(f"{ns:,.0f} ns ({ns / best[(cname, 'floor (f-string of the fields)')]:.1f}x)")
        print(f"| {mname} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
