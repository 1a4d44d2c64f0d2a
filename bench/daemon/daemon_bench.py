"""bench/daemon: what `saga daemon` costs per event, against the least any reader of the same ring costs.

A paced C producer (bench/overhead/loop.c, `paced RATE SECONDS`: getppid() in small bursts) makes calls
at 50,000, 200,000 and 500,000 per second through the real eBPF driver (loaded in a private bpffs; the
whole benchmark runs in its own mount namespace, so its bpffs, tracefs and sagafs mounts go with it).
The driver's rules log the getppid calls of the producer (by a task name of this run's own: the eBPF
driver sees every process's calls, and other jobs on a shared machine make getppid calls too, which
counted once as this run's ring drops) and count everything else, so the events are the producer's calls.

- **daemon**: `saga daemon` as the service runs it, default configuration (window of 1,000,000 events,
  archive into SQLite, spool, enrichment, sagafs mounted) and nobody reading.  For each rate: its CPU time
  (all threads, /proc/PID/task/*/stat) from the producer's start until every event is drained and archived,
  divided by the events archived: **µs of daemon CPU per event**; the archiver thread's part of it apart
  (the archive write, issue 10 item 5's 0.7 µs budget is the store's); CPU % while the producer runs;
  drops at each layer (ring, archive) and events readers missed.
- **floor**: a C program reading the same ring with libbpf's ring_buffer and a callback that only counts
  (bench/daemon/ringcount.c), same driver, same rules, same rates, in the same run: its CPU per event and
  its drops.

Then, with the window full of events nobody has read: `cat /sagafs/log` of it (rendered as read), and
`head -c 600 /sagafs/log` timed while the producer runs at the highest rate (open and first read under a
storm).  Each figure is the median over --rounds rounds (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILD = ROOT / "build" / "bench" / "daemon"
SAGA = str(Path(sys.executable).with_name("saga"))
TARGET_US = 1.5
TARGET_CAT_S = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PRODUCER = f"sagabench{os.getpid() % 100000}"        # the producer's task name (comm), this run's own
BENCH_RULES = f"log getppid comm={PRODUCER} key=bench\ncount all\n"


def build() -> tuple[str, str]:
    BUILD.mkdir(parents=True, exist_ok=True)
    loop, ring = BUILD / "loop", BUILD / "ringcount"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(loop), str(ROOT / "bench" / "overhead" / "loop.c")], check=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(ring), str(HERE / "ringcount.c"), "-lbpf"], check=True)
    return str(loop), str(ring)


def producer(loop: str, top: Path) -> str:
    """The producer under this run's own name (its comm, which the rules log)."""
    path = top / PRODUCER
    shutil.copy2(loop, path)
    return str(path)


def cpu_seconds(pid: int) -> tuple[float, dict[str, float]]:
    """The process's CPU time (user + system), in all and per thread name."""
    total = 0.0
    per: dict[str, float] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                text = f.read()
        except OSError:
            continue                     # a thread that just ended
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        secs = (int(fields[11]) + int(fields[12])) / CLK_TCK
        total += secs
        per[name] = per.get(name, 0.0) + secs
    # Threads that ended took their time to the process's stat (cutime is for children, not threads).
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    whole = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return max(whole, total), per


def status(sock: str) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(sock)
        s.sendall(b'{"op": "status"}\n')
        data = b""
        while not data.endswith(b"\n"):
            part = s.recv(1 << 16)
            if not part:
                break
            data += part
    return json.loads(data)["status"]


def wait_for(cond, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise SystemExit(f"bench/daemon: timed out waiting for {what}")


def paced(loop: str, rate: int, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([loop, "paced", str(rate), str(seconds)], stdout=subprocess.PIPE, text=True)


class DaemonRun:
    """`saga daemon` on the eBPF driver in work/, default configuration but the paths."""

    def __init__(self, work: Path) -> None:
        self.work = work
        (work / "bench.rules").write_text(BENCH_RULES)
        self.mnt = work / "mnt"
        cfg = work / "saga.toml"
        cfg.write_text(f'[daemon]\ndriver = "ebpf"\nrun_dir = "{work}/run"\n'
                       f'[store]\nurl = "sqlite:///{work}/saga.db"\nhost = "bench"\n'
                       f'[sagafs]\nmount = "{self.mnt}"\n[rules]\ninitial_file = "{work}/bench.rules"\n')
        self.sock = str(work / "run" / "saga.sock")
        self.log = open(work / "daemon.log", "w")
        self.proc = subprocess.Popen([SAGA, "--config", str(cfg), "daemon"], stderr=self.log)
        wait_for(lambda: self.proc.poll() is not None or self._answers(), 120, "the daemon")
        if self.proc.poll() is not None:
            raise SystemExit(f"bench/daemon: the daemon exited: {(work / 'daemon.log').read_text()}")
        wait_for(lambda: os.path.ismount(self.mnt), 30, "sagafs")

    def _answers(self) -> bool:
        try:
            return status(self.sock)["driver"]["rules"] == 2
        except (OSError, ValueError, KeyError):
            return False

    def caught_up(self) -> bool:
        st = status(self.sock)
        a = st["archive"]
        return (st["capture"]["events"] == st["capture"]["read"] and a["queued"] == 0 and a["in_flight"] == 0
                and a["submitted"] == st["drained"]["events"])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def daemon_round(work: Path, loop: str, rates: list[int], seconds: float) -> dict:
    d = DaemonRun(work)
    out: dict = {}
    try:
        for rate in rates:
            s0 = status(d.sock)
            c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
            prod = paced(loop, rate, seconds)
            probes = []
            if rate == max(rates):           # open and first read of the log while the storm goes on
                time.sleep(seconds / 3)
                while prod.poll() is None and len(probes) < 3:
                    t = time.monotonic()
                    subprocess.run(["head", "-c", "600", str(d.mnt / "log")], stdout=subprocess.DEVNULL,
                                   check=True, timeout=120)
                    probes.append(time.monotonic() - t)
                    time.sleep(0.5)
            reached = float(prod.communicate(timeout=seconds * 10 + 60)[0].strip() or 0)
            c_mid, t_mid = cpu_seconds(d.proc.pid), time.monotonic()
            # Asked rarely: each status costs the daemon a little CPU, counted in its cost per event.
            wait_for(d.caught_up, 600, f"the daemon to archive the {rate}/s run", every=0.5)
            c1 = cpu_seconds(d.proc.pid)
            s1 = status(d.sock)
            events = s1["archive"]["archived"] - s0["archive"]["archived"]
            arch = c1[1].get("saga-archiver", 0.0) - c0[1].get("saga-archiver", 0.0)
            out[rate] = {
                "reached": reached, "events": events,
                "us": (c1[0] - c0[0]) / events * 1e6 if events else float("nan"),
                "us_archiver": arch / events * 1e6 if events else float("nan"),
                "cpu_pct": (c_mid[0] - c0[0]) / (t_mid - t0) * 100,
                "ring_drops": s1["capture"]["drops"] - s0["capture"]["drops"],
                "archive_drops": s1["archive"]["dropped"] - s0["archive"]["dropped"],
                "readers_lost": s1["window"]["readers_lost"] - s0["window"]["readers_lost"],
                "probes": probes,
                "load": os.getloadavg()[0],
            }
        t = time.monotonic()
        subprocess.run(["cat", str(d.mnt / "log")], stdout=subprocess.DEVNULL, check=True, timeout=600)
        out["cat_fresh"] = time.monotonic() - t
        out["window"] = status(d.sock)["window"]["events"]
        t = time.monotonic()
        subprocess.run(["cat", str(d.mnt / "log")], stdout=subprocess.DEVNULL, check=True, timeout=600)
        out["cat_again"] = time.monotonic() - t
    finally:
        d.stop()
    return out


def floor_round(bpffs: Path, loop: str, ring: str, rates: list[int], seconds: float) -> dict:
    from saga.drivers.ebpf import EbpfDriver, loader
    from saga.drivers.ebpf import layout as L
    from saga.rules import grammar
    directory = str(bpffs / "saga")
    loader.load(directory)
    out: dict = {}
    try:
        with EbpfDriver.open() as drv:
            drv.replace_rules([r.with_id(i + 1) for i, r in enumerate(grammar.parse_lines(BENCH_RULES))])
            for rate in rates:
                reader = subprocess.Popen([ring, os.path.join(directory, L.MAP_EVENTS)], stdout=subprocess.PIPE,
                                          text=True)
                assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
                s0 = drv.stats()
                c0, t0 = cpu_seconds(reader.pid), time.monotonic()
                prod = paced(loop, rate, seconds)
                reached = float(prod.communicate(timeout=seconds * 10 + 60)[0].strip() or 0)
                c_mid, t_mid = cpu_seconds(reader.pid), time.monotonic()
                time.sleep(0.3)
                c1 = cpu_seconds(reader.pid)
                reader.send_signal(signal.SIGTERM)
                records = int(reader.communicate(timeout=30)[0].split()[0])
                s1 = drv.stats()
                out[rate] = {"reached": reached, "events": records,
                             "us": (c1[0] - c0[0]) / records * 1e6 if records else float("nan"),
                             "cpu_pct": (c_mid[0] - c0[0]) / (t_mid - t0) * 100,
                             "ring_drops": s1.drops - s0.drops}
    finally:
        loader.unload(directory)
    return out


def median(rounds: list[dict], rate, key: str) -> float:
    return statistics.median(r[rate][key] for r in rounds)


def spread(rounds: list[dict], rate, key: str) -> str:
    vals = [r[rate][key] for r in rounds]
    return f"{statistics.median(vals):.2f} ({min(vals):.2f}..{max(vals):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="50000,200000,500000")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--plot", default=None)
    opts = ap.parse_args()
    rates = [int(x) for x in opts.rates.split(",")]
    loop, ring = build()
    load_before = os.getloadavg()[0]
    top = Path(tempfile.mkdtemp(prefix="saga-bench-daemon-"))
    loop = producer(loop, top)
    bpffs = top / "bpffs"
    bpffs.mkdir()
    subprocess.run(["mount", "-t", "bpf", "bpf", str(bpffs)], check=True)
    os.environ["SAGA_BPF_DIR"] = str(bpffs / "saga")
    daemon_rounds, floor_rounds = [], []
    try:
        for k in range(opts.rounds):
            work = top / f"round{k}"
            work.mkdir()
            daemon_rounds.append(daemon_round(work, loop, rates, opts.seconds))
            floor_rounds.append(floor_round(bpffs, loop, ring, rates, opts.seconds))
            subprocess.run(["rm", "-rf", str(work)], check=False)
    finally:
        subprocess.run(["umount", "-l", str(bpffs)], check=False)
        subprocess.run(["rm", "-rf", str(top)], check=False)
    report(rates, daemon_rounds, floor_rounds, load_before, opts)


def report(rates, dr, fr, load_before, opts) -> None:
    print(f"Median over {opts.rounds} rounds (min..max); {opts.seconds:.0f} s per rate; "
          f"µs = CPU time per event drained and archived (daemon) or consumed (floor).\n")
    print("| rate asked | reached | daemon µs/event | of which archiver thread | daemon CPU % | "
          "floor µs/event | floor CPU % | daemon / floor | events archived (daemon) | ring drops (daemon) | "
          "archive drops | readers lost | ring drops (floor) | target ≤ 1.5 µs |")
    print("|" + "---|" * 14)
    for rate in rates:
        us = median(dr, rate, "us")
        fl = median(fr, rate, "us")
        print(f"| {rate:,}/s | {median(dr, rate, 'reached'):,.0f}/s | {spread(dr, rate, 'us')} | "
              f"{spread(dr, rate, 'us_archiver')} | {median(dr, rate, 'cpu_pct'):.0f}% | {spread(fr, rate, 'us')} | "
              f"{median(fr, rate, 'cpu_pct'):.1f}% | {f'{us / fl:.1f}' if fl else 'n/a'} | "
              f"{sum(r[rate]['events'] for r in dr):,} | "
              f"{sum(r[rate]['ring_drops'] for r in dr):,} | {sum(r[rate]['archive_drops'] for r in dr):,} | "
              f"{sum(r[rate]['readers_lost'] for r in dr):,} | {sum(r[rate]['ring_drops'] for r in fr):,} | "
              f"{'met' if us <= TARGET_US else 'NOT met'} |")
    print("\nEach round (daemon µs/event, of which the archiver thread; the 1-minute load average at the end of "
          "the rate's run):\n")
    print("| round | " + " | ".join(f"{rate:,}/s" for rate in rates) + " |")
    print("|---|" + "---|" * len(rates))
    for k, r in enumerate(dr):
        cells = (f"{r[rate]['us']:.2f} ({r[rate]['us_archiver']:.2f}), load {r[rate]['load']:.1f}" for rate in rates)
        print(f"| {k + 1} | " + " | ".join(cells) + " |")
    probes = [p for r in dr for p in r[max(rates)]["probes"]]
    cat = statistics.median(r["cat_fresh"] for r in dr)
    print()
    print(f"`cat /sagafs/log` of a fresh window ({dr[0]['window']:,} events, nothing rendered before): "
          f"{cat:.2f} s median ({min(r['cat_fresh'] for r in dr):.2f}..{max(r['cat_fresh'] for r in dr):.2f}), "
          f"target ≤ {TARGET_CAT_S:.0f} s: {'met' if cat <= TARGET_CAT_S else 'NOT met'}; the same again "
          f"(texts kept): {statistics.median(r['cat_again'] for r in dr):.2f} s.")
    if probes:
        print(f"`head -c 600 /sagafs/log` while {max(rates):,} calls/s were made: {len(probes)} probes, "
              f"median {statistics.median(probes) * 1000:.0f} ms, worst {max(probes) * 1000:.0f} ms.")
    print(f"\nload average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"kernel {os.uname().release}; the producer's calls only are logged (comm={PRODUCER}); "
          f"events and drops are sums over the rounds")
    if opts.plot:
        plot(rates, dr, fr, opts.plot)


def plot(rates, dr, fr, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib missing: no plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [r / 1000 for r in rates]
    ax.plot(xs, [median(dr, r, "us") for r in rates], "o-", label="saga daemon (all threads)")
    ax.plot(xs, [median(dr, r, "us_archiver") for r in rates], "s--", label="of which the archiver thread")
    ax.plot(xs, [median(fr, r, "us") for r in rates], "^-", label="floor: C libbpf reader that only counts")
    ax.axhline(TARGET_US, color="grey", linestyle=":", label=f"target {TARGET_US} µs")
    ax.set_xlabel("events per second (thousands)")
    ax.set_ylabel("CPU µs per event")
    ax.set_title("bench/daemon: CPU per event, eBPF driver, nobody reading")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
