"""bench/kmodread inside the VM: what read() on /dev/saga costs per record.

Run by bench/kmodread/run in one boot, with this tree's saga.ko and a
baseline's.  Each round, for each module in turn: two writers (one per CPU,
at once) log K getppid calls each into rings large enough to keep them all,
then one thread drains them with read()s of a given size; its CPU time per
record is the read path's cost (the Python loop around os.read included,
the same for both).  The write side: one writer on CPU 0 alone, its mean
ns per logged call.  Ratios are medians of per-round ratios (this tree /
baseline), so host drift cancels.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from saga import events
from saga.drivers.kmod import KmodDriver
from saga.rules import parse as rule

RING = 4 << 20  # per CPU: 30,000 records of 136 bytes
CASES = (("blocks", 1 << 20), ("blocks", 4096), ("alternate", 1 << 20))  # fill, read() size


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def key(r: tuple) -> int:
    return r[events.TS] + r[events.DURATION]


class Module:
    def __init__(self, ko: str, calls: str, k: int):
        self.ko, self.calls, self.k = ko, calls, k

    def write(self, drv: KmodDriver) -> float:
        """ns per logged getppid of one writer on CPU 0 (the other CPU idle, no reader)."""
        out = sh("taskset", "-c", "0", self.calls, "bench", str(self.k))
        while drv.read_raw(1 << 20, timeout=0):
            pass
        return float(out.split()[-1])

    def fill(self, drv: KmodDriver, how: str) -> None:
        """K records on each CPU.  "blocks": two writers at once, one per CPU, whose
        records interleave in runs (the vCPUs take turns); "alternate": one task
        that changes CPUs before each call, so the merge switches rings at every record."""
        drv.reset_stats()
        if how == "blocks":
            writers = [subprocess.Popen(["taskset", "-c", str(cpu), self.calls, "getppid", str(self.k)])
                       for cpu in (0, 1)]
        else:
            writers = [subprocess.Popen([self.calls, "hop", str(2 * self.k)])]
        if any(w.wait() for w in writers):
            raise SystemExit("bench/kmodread: a writer failed")
        s = drv.stats()
        if s.drops or s.events != 2 * self.k:
            raise SystemExit(f"bench/kmodread: {s.events} records, {s.drops} drops: expected {2 * self.k}, 0")

    def drain(self, size: int) -> tuple[float, float, int, bool]:
        """CPU ns and wall ns per record of reading everything with read()s of
        @size bytes; the number of read() calls; whether keys never decreased."""
        fd = os.open("/dev/saga", os.O_RDONLY | os.O_NONBLOCK)
        bufs = []
        try:
            c0, w0 = time.thread_time_ns(), time.monotonic_ns()
            while True:
                try:
                    buf = os.read(fd, size)
                except BlockingIOError:
                    break
                bufs.append(buf)
            c1, w1 = time.thread_time_ns(), time.monotonic_ns()
        finally:
            os.close(fd)
        keys = [key(r) for b in bufs for r in events.parse(b)]
        if len(keys) != 2 * self.k:
            raise SystemExit(f"bench/kmodread: read {len(keys)} records of {2 * self.k}")
        return (c1 - c0) / len(keys), (w1 - w0) / len(keys), len(bufs), keys == sorted(keys)

    def round(self) -> dict[str, float | bool]:
        sh("insmod", self.ko, f"ring_size={RING}")
        try:
            out: dict[str, float | bool] = {}
            with KmodDriver.open() as drv:
                drv.replace_rules([rule("1: log getppid comm=calls"), rule("2: ignore all")])
                while drv.read_raw(1 << 20, timeout=0):
                    pass  # what the default rule logged before
                out["write"] = self.write(drv)
                for how, size in CASES:
                    self.fill(drv, how)
                    cpu, wall, reads, ordered = self.drain(size)
                    case = f"{how} {size}"
                    out[f"cpu {case}"], out[f"wall {case}"] = cpu, wall
                    out[f"reads {case}"], out[f"ordered {case}"] = reads, ordered
            return out
        finally:
            sh("rmmod", "saga")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ko", required=True)
    ap.add_argument("--base-ko", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--calls", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("-k", type=int, default=20_000)
    args = ap.parse_args()

    mods = {"base": Module(args.base_ko, args.calls, args.k), "this": Module(args.ko, args.calls, args.k)}
    res: dict[str, list[dict[str, float | bool]]] = {m: [] for m in mods}
    for _ in range(args.rounds):
        for name, mod in mods.items():
            res[name].append(mod.round())

    def med(name: str, what: str) -> float:
        return statistics.median(float(r[what]) for r in res[name])

    def ratio(what: str) -> float:
        return statistics.median(float(t[what]) / float(b[what]) for t, b in zip(res["this"], res["base"], strict=True))

    print(f"kernel {args.kernel}, {os.cpu_count()} vCPUs under QEMU TCG (no KVM), one TCG thread; "
          f"per module, round and case: {args.k} logged getppid on each CPU (no reader; blocks: two "
          f"writers at once; alternate: one task changing CPUs before each call), then one "
          f"thread drains the {2 * args.k} records; median of {args.rounds} alternating rounds; "
          f"ratios are medians of per-round ratios (this tree / baseline {args.base})\n")
    print("| measure | baseline (unmerged) | this tree (merged by time) | ratio |")
    print("|---|---:|---:|---:|")
    for how, size in CASES:
        label = f"{how}, read() of " + ("1 MiB" if size == 1 << 20 else f"{size} B")
        case = f"{how} {size}"
        for what, unit in (("cpu", "CPU ns per record"), ("wall", "wall ns per record")):
            w = f"{what} {case}"
            print(f"| {label}: {unit} | {med('base', w):.0f} | {med('this', w):.0f} | {ratio(w):.2f} |")
        print(f"| {label}: read() calls | {med('base', f'reads {case}'):.0f} | "
              f"{med('this', f'reads {case}'):.0f} | |")
    print(f"| a logged getppid on CPU 0, ns (one writer, no reader) | {med('base', 'write'):.0f} | "
          f"{med('this', 'write'):.0f} | {ratio('write'):.2f} |")
    print()
    for name in mods:
        ok = sum(bool(r[f"ordered {how} {size}"]) for r in res[name] for how, size in CASES)
        print(f"- {name}: drains in time order: {ok} of {len(CASES) * args.rounds}")


if __name__ == "__main__":
    main()
