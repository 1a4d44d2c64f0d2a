"""bench/overhead: what tracing adds to a system call, saga's eBPF driver against the usual tools.

For each variant (set up, measured, torn down in turn, the order shuffled
every round), a C loop times N getppid() calls and N 1-byte reads of
/dev/zero; each round also measures the bare loop, and a variant's cost
in that round is its time per call minus the bare time.  Reported: the
median over rounds and the spread (min..max), and the ratio to the floor
(a tp_btf program that only bumps a per-CPU counter).  The logging
variant also reports the events/s its draining reader received and the
drops, flat out and at a paced 500,000 calls/s.

Writes a markdown table to stdout and, with --plot, a PNG.
Environment: BENCH_ROUNDS (default 5), BENCH_SCALE (default 1.0, multiplies N).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from saga import _uapi
from saga.drivers.ebpf import EbpfDriver, libbpf, loader
from saga.drivers.ebpf.shared import Words

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILD = ROOT / "build" / "bench" / "overhead"
BPFTRACE_PROG = "tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }"
PACED_RATE = 500_000
PACED_SECONDS = 4  # ~2 M events per round
# Calls whose records carry an aux blob (docs/kernel-abi.md), against a plain logged getppid.
AUX_KINDS = ("connect", "execve")


@dataclass
class Variant:
    name: str
    calls: int                       # loop iterations per measurement (slow tools get fewer)
    setup: object = None             # () -> context manager yielding a command prefix
    samples: dict = field(default_factory=lambda: {"getppid": [], "read": []})
    prog_ns: list = field(default_factory=list)  # BPF run time per call (kernel.bpf_stats_enabled)
    floor_ns: list = field(default_factory=list)  # the floor's, measured in the same calls
    aux_ratio: dict = field(default_factory=lambda: {k: [] for k in AUX_KINDS})  # program time / getppid's
    aux_ns: dict = field(default_factory=lambda: {k: [] for k in AUX_KINDS})
    note: str = ""


def build() -> tuple[str, str]:
    BUILD.mkdir(parents=True, exist_ok=True)
    loop = BUILD / "loop"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(loop), str(HERE / "loop.c")], check=True)
    floor = BUILD / "floor.bpf.o"
    subprocess.run([str(ROOT / "tools" / "build-bpf.sh"), str(floor), str(HERE / "floor.bpf.c")], check=True,
                   stdout=subprocess.DEVNULL)
    return str(loop), str(floor)


def run_loop(prefix: list[str], loop: str, kind: str, n: int) -> float:
    """ns per call as the loop measured it (the tool's own start-up is outside the timed part)."""
    out = subprocess.run(prefix + [loop, kind, str(n)], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


# -- variants: each a context manager that yields the command prefix ----------

@contextlib.contextmanager
def nothing():
    yield []


@contextlib.contextmanager
def floor_prog(bpffs: str, obj_path: str, pin: str = "floor_link"):
    link = os.path.join(bpffs, pin)
    obj = libbpf.BpfObject(obj_path)
    try:
        obj.load()
        obj.attach_and_pin("floor_sys_enter", link)
    finally:
        obj.close()
    try:
        yield []
    finally:
        os.unlink(link)
        time.sleep(0.2)  # the kernel releases the link from a work queue


@contextlib.contextmanager
def saga(bpffs: str, default_action: int, reader: bool, stats: dict, obj_path: Path = loader.OBJECT):
    directory = os.path.join(bpffs, "saga")
    os.environ["SAGA_BPF_DIR"] = directory
    loader.load(directory, default_action=default_action, obj_path=obj_path)
    proc = None
    drv = EbpfDriver.open()
    try:
        if reader:
            proc = subprocess.Popen([sys.executable, str(HERE / "reader.py")], stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline().strip() == "ready"
        stats["driver"] = drv
        yield []
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        drv.close()
        loader.unload(directory)


@contextlib.contextmanager
def bpftrace():
    proc = subprocess.Popen(["bpftrace", "-e", BPFTRACE_PROG], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline()  # "Attaching 1 probe..." once attached
        if "Attaching" not in line:
            raise RuntimeError(f"bpftrace did not start: {line!r}")
        time.sleep(0.3)
        yield []
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def prefixed(cmd: list[str]):
    yield cmd


@contextlib.contextmanager
def auditd(tmp: str):
    conf = Path(tmp) / "auditd.conf"
    conf.write_text(f"log_file = {tmp}/audit.log\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\nfreq = 50\n"
                    "max_log_file = 100\nmax_log_file_action = ROTATE\nnum_logs = 2\nspace_left = 75\n"
                    "space_left_action = IGNORE\nadmin_space_left = 50\nadmin_space_left_action = IGNORE\n"
                    "disk_full_action = IGNORE\ndisk_error_action = IGNORE\n")
    os.chmod(conf, 0o640)
    proc = subprocess.Popen(["auditd", "-n", "-c", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rule = ["-a", "always,exit", "-F", "arch=b64", "-S", "all", "-k", "saga-bench"]
    try:
        time.sleep(0.5)
        subprocess.run(["auditctl", "-b", "8192"], check=True, capture_output=True)
        subprocess.run(["auditctl", "-e", "1"], check=True, capture_output=True)
        subprocess.run(["auditctl"] + rule, check=True, capture_output=True)
        yield []
    finally:
        subprocess.run(["auditctl", "-d"] + rule[1:], capture_output=True)
        subprocess.run(["auditctl", "-e", "0"], capture_output=True)
        proc.terminate()
        proc.wait(timeout=30)


def bpf_progs() -> dict[int, tuple[int, int]]:
    """Loaded BPF programs: id -> (run_cnt, run_time_ns)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    return {p["id"]: (p.get("run_cnt", 0), p.get("run_time_ns", 0)) for p in json.loads(out or "[]")}


def prog_cost(ids: set[int], loop: str, n: int, floor_ids: set[int] = frozenset(),
              kind: str = "getppid") -> tuple[float, float] | None:
    """ns of BPF program time per traced call, by the kernel's own BPF stats: (variant, floor).

    The floor, when attached alongside (floor_ids), is measured in the same
    calls, so the ratio of the two is free of the between-run drift of a
    busy machine.  Enabling the stats adds two clock reads to every program
    run, so this overstates every BPF tool alike; it is free of the
    scheduling noise of the end-to-end loop, which on a busy 2-CPU machine
    swamps ~10 ns."""
    if not ids:
        return None
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1")
    try:
        before = bpf_progs()
        run_loop([], loop, kind, n)
        after = bpf_progs()
    finally:
        Path("/proc/sys/kernel/bpf_stats_enabled").write_text("0")

    def per_call(group: set[int]) -> float:
        deltas = [(after[i][0] - before[i][0], after[i][1] - before[i][1]) for i in group
                  if i in after and i in before]
        calls = max((c for c, _ in deltas), default=0)  # every traced call runs the group's main program
        return sum(t for _, t in deltas) / calls if calls else float("nan")

    return per_call(ids), (per_call(floor_ids) if floor_ids else float("nan"))


def available(tool: str) -> bool:
    return subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode == 0


# -- the run ---------------------------------------------------------------------

class RingLevel:
    """How full the driver's ring is, from its position pages (mapped read-only: not a reader)."""

    def __init__(self, directory: str):
        import mmap
        fd = libbpf.obj_get(os.path.join(directory, "events"))
        try:
            self.size = libbpf.map_info(fd).max_entries
            self._cons = mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=0)
            self._prod = mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=mmap.PAGESIZE)
        finally:
            os.close(fd)
        self._c, self._p = Words(self._cons), Words(self._prod)
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(0.002):
            self.peak = max(self.peak, self._p.u64(0) - self._c.u64(0))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self._c.release()
        self._p.release()
        self._cons.close()
        self._prod.close()


def throughput(loop: str, drv, args: list[str]) -> tuple[float, int, float, int, float]:
    """Run the loop; return (events/s the reader received, drops, calls/s the loop made, events received,
    peak fill of the ring as a fraction).

    Received = records the reader took from the ring between the loop's start
    and the moment it had caught up with what was written by the loop's end,
    over that time (other processes' records count too: they are logged).
    The peak fill tells a reader that fell behind (drops with the ring full)
    from a loss with room to spare."""
    s0 = drv.stats()
    t0 = time.monotonic()
    with RingLevel(drv.directory) as level:
        out = subprocess.run([loop, *args], check=True, capture_output=True, text=True).stdout.split()
    target = drv.stats().events - s0.events  # written by the end of the loop
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = drv.stats()
        if s.read - s0.read >= target - (s.drops - s0.drops):
            break
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    rate = float(out[-1]) if args[0] == "paced" else 1e9 / float(out[-1])
    return (s.read - s0.read) / elapsed, s.drops - s0.drops, rate, s.read - s0.read, level.peak / level.size


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot", help="write a PNG of the results here")
    ap.add_argument("--only", help="comma list of variants to run")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/overhead needs root", file=sys.stderr)
        return 77
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    scale = float(os.environ.get("BENCH_SCALE", "1.0"))
    loop, floor_obj = build()
    tmp = tempfile.mkdtemp(prefix="saga-bench-")
    bpffs = os.path.join(tmp, "bpffs")
    os.mkdir(bpffs)
    subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True)
    saga_stats: dict = {}
    n = lambda k: max(1000, int(k * scale))  # noqa: E731
    variants = [
        Variant("bare (no tracing)", n(2_000_000), nothing),
        Variant("floor: tp_btf, per-CPU counter", n(2_000_000), lambda: floor_prog(bpffs, floor_obj)),
        Variant("saga-ebpf count-only", n(2_000_000),
                lambda: saga(bpffs, _uapi.SAGA_ACT_COUNT, False, saga_stats)),
        Variant("saga-ebpf logging, reader draining", n(1_000_000),
                lambda: saga(bpffs, _uapi.SAGA_ACT_LOG, True, saga_stats)),
    ]
    if available("bpftrace"):
        variants.append(Variant("bpftrace count one-liner", n(1_000_000), bpftrace))
    if available("strace"):
        variants.append(Variant("strace -c -f", n(20_000),
                                lambda: prefixed(["strace", "-c", "-f", "-o", "/dev/null"])))
    if available("perf"):
        variants.append(Variant("perf trace -s", n(50_000),
                                lambda: prefixed(["perf", "trace", "-s", "-o", "/dev/null", "--"])))
    if available("auditd") and available("auditctl"):
        variants.append(Variant("auditd, all-syscalls rule", n(50_000), lambda: auditd(tmp)))
    if opts.only:
        keep = opts.only.split(",")
        variants = [v for v in variants if v.name.split()[0] in keep or v in variants[:2]]  # bare, floor
    missing = [t for t in ("bpftrace", "strace", "perf", "auditd") if not available(t)]

    log_runs: list[tuple[str, float, int, float]] = []
    load0 = os.getloadavg()
    try:
        for r in range(rounds):
            order = variants[:]
            random.Random(r).shuffle(order)
            for v in order:
                try:
                    progs_before = set(bpf_progs())
                    with v.setup() as prefix:
                        for kind in ("getppid", "read"):
                            v.samples[kind].append(run_loop(prefix, loop, kind, v.calls))
                        ours = set(bpf_progs()) - progs_before
                        if ours and not v.name.startswith("floor"):
                            # The floor alongside, for a ratio measured in the same calls.
                            with floor_prog(bpffs, floor_obj, "floor_beside"):
                                floor_ids = set(bpf_progs()) - progs_before - ours
                                cost = prog_cost(ours, loop, v.calls, floor_ids)
                        else:
                            cost = prog_cost(ours, loop, v.calls)
                        if cost is not None:
                            v.prog_ns.append(cost[0])
                            v.floor_ns.append(cost[1])
                        if v.name.startswith("saga-ebpf logging") and cost is not None:
                            for kind in AUX_KINDS:   # program time of a call with an aux blob, same round
                                aux = prog_cost(ours, loop, max(1000, v.calls // 10), kind=kind)
                                if aux is not None:
                                    v.aux_ns[kind].append(aux[0])
                                    v.aux_ratio[kind].append(aux[0] / cost[0])
                        if v.name.startswith("saga-ebpf logging"):
                            drv = saga_stats["driver"]
                            log_runs.append(("flat out", *throughput(loop, drv, ["getppid", str(n(2_000_000))])))
                            log_runs.append((f"paced {PACED_RATE:,}/s",
                                             *throughput(loop, drv, ["paced", str(PACED_RATE), str(PACED_SECONDS)])))
                except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
                    v.note = f"failed: {exc}"[:120]
                print(f"round {r + 1}/{rounds}: {v.name} done", file=sys.stderr)
    finally:
        subprocess.run(["umount", bpffs], check=False)
        for p in Path(tmp).glob("*"):
            if p.is_file():
                p.unlink()
        os.rmdir(bpffs)
        os.rmdir(tmp)
    load1 = os.getloadavg()
    report(variants, log_runs, rounds, load0, load1, missing)
    if opts.plot:
        plot(variants, opts.plot)
    return 0


def added(v: Variant, base: Variant, kind: str) -> list[float]:
    return [a - b for a, b in zip(v.samples[kind], base.samples[kind], strict=True)]


def fmt_spread(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}..{max(xs):,.0f})"


def fmt_ratio(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}..{max(xs):.2f})"


def report(variants, log_runs, rounds, load0, load1, missing) -> None:
    base, floor = variants[0], variants[1]
    print(f"ns per call; median over {rounds} rounds (min..max); 'added' = variant minus bare in the same round.\n")
    print("| variant | getppid ns | added | x floor | read(/dev/zero, 1) ns | added | x floor |")
    print("|---|---|---|---|---|---|---|")
    for v in variants:
        cells = [v.name]
        for kind in ("getppid", "read"):
            if not v.samples[kind]:
                cells += [v.note or "n/a", "", ""]
                continue
            cells.append(fmt_spread(v.samples[kind]))
            if v is base:
                cells += ["", ""]
                continue
            add = added(v, base, kind)
            cells.append(fmt_spread(add))
            f_add = statistics.median(added(floor, base, kind)) if floor.samples[kind] else 0
            cells.append(f"{statistics.median(add) / f_add:.2f}" if f_add > 0 else "n/a")
        print("| " + " | ".join(cells) + " |")
    with_progs = [v for v in variants if v.prog_ns]
    if with_progs:
        print("\nBPF program time per traced getppid, from the kernel's BPF stats (kernel.bpf_stats_enabled: "
              "adds two clock reads per program run to every tool alike).  Each tool is measured with the floor "
              "attached alongside, in the same calls; 'x floor' is the median of the per-round ratios.\n")
        print("| variant | ns per call | floor ns, same calls | x floor |")
        print("|---|---|---|---|")
        for v in with_progs:
            if v is floor:
                print(f"| {v.name} | {fmt_spread(v.prog_ns)} | | 1.00 |")
                continue
            ratios = [a / b for a, b in zip(v.prog_ns, v.floor_ns, strict=True) if b > 0]  # NaN compares false
            print(f"| {v.name} | {fmt_spread(v.prog_ns)} | {fmt_spread([b for b in v.floor_ns if b > 0])} | "
                  f"{fmt_ratio(ratios)} |")
    with_aux = [v for v in variants if any(v.aux_ns.values())]
    for v in with_aux:
        print(f"\n{v.name}: program time of calls whose records carry an aux blob, against a logged getppid "
              "in the same round (connect: a socket address; execve: 5 argument strings, the call fails).\n")
        print("| call | ns per call | x logged getppid |")
        print("|---|---|---|")
        print(f"| getppid | {fmt_spread(v.prog_ns)} | 1.00 |")
        for kind in AUX_KINDS:
            print(f"| {kind} | {fmt_spread(v.aux_ns[kind])} | {fmt_ratio(v.aux_ratio[kind])} |")
    if log_runs:
        print("\nsaga-ebpf logging: events/s received by the draining reader (a separate process using "
              "EbpfDriver.read_raw), and records dropped.\n")
        print("| run | calls/s made | events/s received | drops | peak ring fill | events received, all rounds "
              "| drops, all rounds |")
        print("|---|---|---|---|---|---|---|")
        for label in sorted({r[0] for r in log_runs}):
            runs = [r for r in log_runs if r[0] == label]
            fill = [100 * r[5] for r in runs]
            print(f"| {label} | {fmt_spread([r[3] for r in runs])} | {fmt_spread([r[1] for r in runs])} | "
                  f"{fmt_spread([r[2] for r in runs])} | "
                  f"{statistics.median(fill):.0f}% ({min(fill):.0f}..{max(fill):.0f}%) "
                  f"| {sum(r[4] for r in runs):,} | {sum(r[2] for r in runs):,} |")
        print("\nPer round (run: events/s received, drops, peak ring fill): " + "; ".join(
            f"{r[0]}: {r[1]:,.0f}, {r[2]:,}, {100 * r[5]:.0f}%" for r in log_runs))
    print(f"\nload average before/after: {load0[0]:.2f} / {load1[0]:.2f} on {os.cpu_count()} CPUs; "
          f"kernel {os.uname().release}")
    if missing:
        print(f"not installed, skipped: {', '.join(missing)} (tools/deps.sh bench)")


def plot(variants, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path}", file=sys.stderr)
        return
    base = variants[0]
    shown = [v for v in variants[1:] if v.samples["getppid"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, kind, title in ((axes[0], "getppid", "getppid()"), (axes[1], "read", "read(/dev/zero, 1 byte)")):
        data = [[max(x, 0.1) for x in added(v, base, kind)] for v in shown]
        ax.boxplot(data, orientation="horizontal", whis=(0, 100))
        ax.set_yticks(range(1, len(shown) + 1), [v.name for v in shown])
        ax.set_xscale("log")
        ax.set_xlabel("ns added per call (log scale)")
        ax.set_title(title)
        ax.invert_yaxis()
    axes[1].set_yticklabels([])
    fig.suptitle(f"Syscall tracing overhead on {os.uname().release} ({len(base.samples['getppid'])} rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
