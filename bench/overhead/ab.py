"""bench/overhead/ab: two or more builds of saga's BPF object, logging program time side by side.

Each round loads every object in turn (the order reversed every other
round), with the draining reader and the floor attached alongside, and
measures the BPF program time per call (kernel.bpf_stats_enabled) of a
logged getppid, the floor's in the same calls, and the program time of a
connect (socket address) and an execve with 5 argument strings against
the getppid of the same load.  Objects measured in the same minutes see
the same machine: the comparison to trust for a change to the programs
(docs/benchmarks.md).  Root; run through bench/overhead/ab (a private
mount namespace).

With --lower-bound, the same rounds also measure bench/overhead/lower_bound.bpf.c:
the least any two-program logger pays for an entry time, a duration and one
136-byte ring record (its ring drained by a thread that reads what was written).

Usage: bench/overhead/ab [--rounds N] [--calls N] [--lower-bound] OBJ [OBJ...]
"""
from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import overhead

from saga import _uapi
from saga.drivers.ebpf import libbpf

HERE = Path(__file__).resolve().parent
LOWER_BOUND = "lower bound: two programs, entry time, one ring record"


def fmt(xs: list[float], digits: int = 0) -> str:
    med = statistics.median(xs)
    return f"{med:,.{digits}f} ({min(xs):,.{digits}f}..{max(xs):,.{digits}f})"


def build_lower_bound() -> str:
    out = overhead.BUILD / "lower_bound.bpf.o"
    subprocess.run([str(overhead.ROOT / "tools" / "build-bpf.sh"), str(out), str(HERE / "lower_bound.bpf.c")],
                   check=True, stdout=subprocess.DEVNULL)
    return str(out)


def _drain(fd: int, stop: threading.Event) -> None:
    """Consume the lower bound's ring as a reader would: read what was written, then release it."""
    size = libbpf.map_info(fd).max_entries
    page = mmap.PAGESIZE
    cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
    rest = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
    pos = 0
    try:
        while not stop.wait(0.002):
            prod = int.from_bytes(rest[0:8], "little")
            while pos < prod:
                start = page + pos % size
                n = min(prod - pos, size - pos % size)
                bytes(rest[start:start + n])
                pos += n
            cons[0:8] = pos.to_bytes(8, "little")   # one 8-byte store: the kernel never sees a torn position
    finally:
        cons.close()
        rest.close()


@contextlib.contextmanager
def lower_bound(bpffs: str, obj_path: str):
    obj = libbpf.BpfObject(obj_path)
    links = [os.path.join(bpffs, "lb_enter"), os.path.join(bpffs, "lb_exit")]
    stop = threading.Event()
    thread = None
    try:
        obj.load()
        obj.attach_and_pin("lb_sys_enter", links[0])
        obj.attach_and_pin("lb_sys_exit", links[1])
        thread = threading.Thread(target=_drain, args=(obj.map_fd("lb_events"), stop), daemon=True)
        thread.start()
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        for link in links:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        obj.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=300_000, help="getppid calls per measurement")
    ap.add_argument("--lower-bound", action="store_true", help="measure lower_bound.bpf.c in the same rounds")
    ap.add_argument("objects", nargs="+")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/overhead/ab needs root", file=sys.stderr)
        return 77
    loop, floor_obj = overhead.build()
    lb_obj = build_lower_bound() if opts.lower_bound else None
    tmp = tempfile.mkdtemp(prefix="saga-ab-")
    bpffs = os.path.join(tmp, "bpffs")
    os.mkdir(bpffs)
    subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True)
    kinds = {"getppid": opts.calls, "execve": opts.calls // 15, "connect": opts.calls // 3}
    names = opts.objects + ([LOWER_BOUND] if lb_obj else [])
    res: dict[str, dict[str, list[float]]] = {o: {k: [] for k in (*kinds, "floor")} for o in names}
    load0 = os.getloadavg()
    try:
        for r in range(opts.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for obj in order:
                before = set(overhead.bpf_progs())
                setup = lower_bound(bpffs, lb_obj) if obj == LOWER_BOUND else \
                    overhead.saga(bpffs, _uapi.SAGA_ACT_LOG, True, {}, Path(obj))
                with setup:
                    ours = set(overhead.bpf_progs()) - before
                    with overhead.floor_prog(bpffs, floor_obj, "floor_beside"):
                        floor_ids = set(overhead.bpf_progs()) - before - ours
                        for kind, n in kinds.items():
                            cost = overhead.prog_cost(ours, loop, n, floor_ids, kind=kind)
                            res[obj][kind].append(cost[0])
                            if kind == "getppid":
                                res[obj]["floor"].append(cost[1])
                print(f"round {r + 1}/{opts.rounds}: {obj}: getppid {res[obj]['getppid'][-1]:.0f} ns, "
                      f"floor {res[obj]['floor'][-1]:.0f}, execve {res[obj]['execve'][-1]:.0f}, "
                      f"connect {res[obj]['connect'][-1]:.0f}", file=sys.stderr)
    finally:
        subprocess.run(["umount", bpffs], check=False)
        os.rmdir(bpffs)
        os.rmdir(tmp)
    load1 = os.getloadavg()
    print(f"Program time per call, ns; median over {opts.rounds} rounds (min..max); logging with the draining "
          "reader, the floor attached alongside.\n")
    print("| object | getppid ns | floor ns | getppid x floor | execve ns | execve x getppid | connect ns "
          "| connect x getppid |")
    print("|---|---|---|---|---|---|---|---|")
    for obj, v in res.items():
        xf = [a / b for a, b in zip(v["getppid"], v["floor"], strict=True)]
        xe = [a / b for a, b in zip(v["execve"], v["getppid"], strict=True)]
        xc = [a / b for a, b in zip(v["connect"], v["getppid"], strict=True)]
        print(f"| {obj} | {fmt(v['getppid'])} | {fmt(v['floor'])} | {fmt(xf, 2)} | {fmt(v['execve'])} | "
              f"{fmt(xe, 2)} | {fmt(v['connect'])} | {fmt(xc, 2)} |")
    print(f"\nload average before/after: {load0[0]:.2f} / {load1[0]:.2f} on {os.cpu_count()} CPUs; "
          f"kernel {os.uname().release}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
