"""sagafs speed: reading the retained log through the mount, and `cat /sagafs/stats` (docs/benchmarks.md).

The daemon runs as a process (`saga daemon --replay`), fed N events (the
recorded workload repeated), with a window of N events and the archive
off.  Once it has drained them (nothing is rendered until read):

- **log**: `cat /sagafs/log > /dev/null`, against the same bytes served
  by the smallest pyfuse3 filesystem (bench/sagafs/minimal.py) in the same
  run, in two ways that read through pyfuse3 at every open: the page cache
  dropped at open (readahead-sized reads), and as sagafs does (direct_io,
  1 MiB reads).  The faster of the two is "the limit of pyfuse3 here"; the
  ratio is against it.  pyfuse3's default (keep the page cache across
  opens) is shown too: repeated reads of an unchanging file then come
  from the kernel, not from pyfuse3.  Best of --rounds rounds, each
  round running every variant in a shuffled order (the machine is shared:
  the best run is the least disturbed one).
- **stats**: `cat /sagafs/stats`, process start included, 5 per round: on
  the replay driver (a daemon with nothing to do) and, as root when it can
  load, on the eBPF driver (a daemon draining and rendering every call this
  machine makes; its event rate is printed).  Next to them, `cat` of a
  file of the same size on the minimal pyfuse3 filesystem: the floor this
  machine's load sets.  Median, 90th percentile and worst; the target is
  judged on the median (a shared 2-CPU machine delays any process now and
  then: see the floor's worst).

- **fresh**: the first `cat /sagafs/log` after the drain (a fresh window:
  it renders every line; the daemon renders nothing ahead), once (a
  fresh window is fresh once), in time and × the limit's read of the same
  bytes; next to it, a second daemon fed the same events with
  SAGA_PYTHON_RENDER=1 (saga.render alone, no compiled renderer): the
  baseline, its bytes compared with the first's.  Target: ≤ 2 s.

Also shown: `tail -n 10 /sagafs/log`.
"""
from __future__ import annotations

import argparse
import gzip
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAGA = str(Path(sys.executable).with_name("saga"))
TARGET_RATIO = 0.70
TARGET_STATS_MS = 50.0
TARGET_FRESH_S = 2.0


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise SystemExit(f"bench/sagafs: timed out waiting for {what}")


def timed(*cmd) -> float:
    """Seconds a command takes, output to /dev/null, process start included."""
    t0 = time.perf_counter()
    subprocess.run([str(c) for c in cmd], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def status_of(mnt: Path) -> dict[str, str]:
    try:
        return dict(line.split(": ", 1) for line in (mnt / "status").read_text().splitlines())
    except OSError:
        return {}


class Daemon:
    def __init__(self, work: Path, name: str, args: list[str], window: int, env: dict | None = None,
                 daemon_keys: str = "") -> None:
        self.dir = work / name
        self.dir.mkdir()
        self.mnt = self.dir / "mnt"
        cfg = self.dir / "saga.toml"
        cfg.write_text(f'[daemon]\nrun_dir = "{self.dir}/run"\narchive = false\nwindow_events = {window}\n{daemon_keys}'
                       f'[store]\nurl = "sqlite:///{self.dir}/saga.db"\nhost = "bench"\n'
                       f'[sagafs]\nmount = "{self.mnt}"\n')
        self.log = open(self.dir / "daemon.log", "w")
        self.proc = subprocess.Popen([SAGA, "--config", str(cfg), "daemon", *args], stderr=self.log,
                                     env={**os.environ, **(env or {})})
        wait_for(lambda: self.proc.poll() is not None or "mount" in status_of(self.mnt), 120, f"{name} to mount")
        if self.proc.poll() is not None:
            raise SystemExit(f"bench/sagafs: the {name} daemon failed: {(self.dir / 'daemon.log').read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.log.close()


class Minimal:
    def __init__(self, work: Path, data: Path, mode: str) -> None:
        self.mnt = work / f"minimal-{mode}"
        self.mnt.mkdir()
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("minimal.py")), str(self.mnt),
                                      str(data), mode], stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"bench/sagafs: the minimal pyfuse3 server ({mode}) did not start")
        self.file = self.mnt / "f"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def spread(ms: list[float]) -> tuple[float, float, float]:
    """(median, 90th percentile, worst)."""
    v = sorted(ms)
    return statistics.median(v), v[min(len(v) - 1, int(len(v) * 0.9))], v[-1]


def recording(n: int) -> bytes:
    data = gzip.decompress((ROOT / "tests/data/workload.saga.gz").read_bytes())
    from saga import events
    per = len(events.parse(data))
    return data * (n // per) + b"".join(_records(data)[: n % per])


def _records(data: bytes) -> list[bytes]:
    from saga import events
    out, off = [], 0
    for raw in events.parse(data):
        out.append(data[off:off + raw[events.SIZE]])
        off += raw[events.SIZE]
    return out


def ebpf_daemon(work: Path, window: int) -> tuple[Daemon | None, str]:
    """A daemon on the eBPF driver in a private bpffs, or (None, why not)."""
    if os.geteuid() != 0:
        return None, "not root"
    from saga.drivers.ebpf import loader
    try:
        loader.check_host(loader.OBJECT)
    except Exception as exc:   # noqa: BLE001 - the reason is printed
        return None, str(exc)
    bpffs = work / "bpffs"
    bpffs.mkdir()
    subprocess.run(["mount", "-t", "bpf", "bpf", str(bpffs)], check=True)
    return Daemon(work, "ebpf", ["--driver", "ebpf"], window, env={"SAGA_BPF_DIR": str(bpffs / "saga")}), ""


def cleanup_ebpf(work: Path) -> None:
    bpffs = work / "bpffs"
    if bpffs.exists():
        from saga.drivers.ebpf import loader
        loader.unload(str(bpffs / "saga"))
        subprocess.run(["umount", str(bpffs)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--workdir", default=None)
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="saga-bench-fs-", dir=opts.workdir))
    started: list = []
    try:
        rec = work / "events.saga"
        rec.write_bytes(recording(opts.events))
        fs = Daemon(work, "replay", ["--replay", str(rec)], opts.events)
        started.append(fs)
        wait_for(lambda: status_of(fs.mnt).get("drained.events") == str(opts.events), 600, "the drain")
        first = timed("cat", fs.mnt / "log")
        log_copy = work / "log.txt"
        with open(log_copy, "wb") as out:
            subprocess.run(["cat", str(fs.mnt / "log")], stdout=out, check=True)
        size = log_copy.stat().st_size
        # The same fresh window rendered by saga.render alone (no compiled renderer): the same bytes.
        py = Daemon(work, "replay-python", ["--replay", str(rec)], opts.events, env={"SAGA_PYTHON_RENDER": "1"})
        started.append(py)
        wait_for(lambda: status_of(py.mnt).get("drained.events") == str(opts.events), 600, "the drain")
        first_py = timed("cat", py.mnt / "log")
        subprocess.run(["cmp", str(py.mnt / "log"), str(log_copy)], check=True)
        py.stop()
        started.remove(py)

        baselines = {mode: Minimal(work, log_copy, mode) for mode in ("pagecache", "direct", "cached")}
        started += baselines.values()
        small = work / "small"
        small.mkdir()
        stats_copy = small / "stats.txt"
        stats_copy.write_bytes((fs.mnt / "stats").read_bytes())
        floor = Minimal(small, stats_copy, "direct")
        started.append(floor)
        for b in baselines.values():
            subprocess.run(["cmp", str(fs.mnt / "log"), str(b.file)], check=True)
        reads = {"sagafs": (fs.mnt / "log")} | {m: b.file for m, b in baselines.items()}
        best = {name: float("inf") for name in reads}
        stats_ms: list[float] = []
        floor_ms: list[float] = []
        tail_ms: list[float] = []
        for _ in range(opts.rounds):
            order = list(reads)
            random.shuffle(order)
            for name in order:
                best[name] = min(best[name], timed("cat", reads[name]))
            for _ in range(5):
                stats_ms.append(timed("cat", fs.mnt / "stats") * 1000)
                floor_ms.append(timed("cat", floor.file) * 1000)
            tail_ms.append(timed("tail", "-n", "10", fs.mnt / "log") * 1000)

        ebpf, why = ebpf_daemon(work, 100_000)
        ebpf_ms: list[float] = []
        ebpf_floor_ms: list[float] = []
        ebpf_rate = 0.0
        if ebpf is not None:
            started.append(ebpf)
            time.sleep(2)                             # past loading and the first backlog
            t0, n0 = time.monotonic(), int(status_of(ebpf.mnt).get("drained.events", 0))
            for _ in range(opts.rounds * 5):
                ebpf_ms.append(timed("cat", ebpf.mnt / "stats") * 1000)
                ebpf_floor_ms.append(timed("cat", floor.file) * 1000)
            ebpf_rate = (int(status_of(ebpf.mnt).get("drained.events", 0)) - n0) / (time.monotonic() - t0)

        mbps = {name: size / t / 1e6 for name, t in best.items()}
        limit = max(("pagecache", "direct"), key=lambda m: mbps[m])
        ratio = mbps["sagafs"] / mbps[limit]
        load = os.getloadavg()[0]
        print(f"bench/sagafs: {opts.events:,} events, {size / 1e6:.1f} MB of log; best of {opts.rounds} rounds; "
              f"load average {load:.1f}\n")
        print("| measure | result | × limit | target | met |")
        print("|---|---:|---:|---:|:---:|")
        print(f"| `cat /sagafs/log` | {mbps['sagafs']:,.0f} MB/s ({best['sagafs'] * 1000:.0f} ms) | {ratio:.2f} "
              f"| ≥ {TARGET_RATIO:.2f} | {'yes' if ratio >= TARGET_RATIO else '**no**'} |")
        for mode, label in (("direct", "minimal pyfuse3 file, direct_io and 1 MiB reads"),
                            ("pagecache", "minimal pyfuse3 file, page cache dropped at open"),
                            ("cached", ("minimal pyfuse3 file, page cache kept (pyfuse3's default; "
                                        "not through pyfuse3)"))):
            mark = " (the limit)" if mode == limit else ""
            print(f"| {label}{mark} | {mbps[mode]:,.0f} MB/s ({best[mode] * 1000:.0f} ms) | "
                  f"{mbps[mode] / mbps[limit]:.2f} |  |  |")
        rows = (("`cat /sagafs/stats`, replay driver (idle daemon)", stats_ms),
                ("`cat` of the same bytes on the minimal pyfuse3 file (the floor)", floor_ms),
                (f"`cat /sagafs/stats`, eBPF driver (daemon draining {ebpf_rate:,.0f} events/s)", ebpf_ms),
                ("the floor, measured alongside the eBPF run", ebpf_floor_ms))
        for i, (label, ms) in enumerate(rows):
            if not ms:
                print(f"| {label} | not measured: {why} |  |  |  |")
                continue
            med, p90, worst = spread(ms)
            target = f"≤ {TARGET_STATS_MS:.0f} ms" if i % 2 == 0 else ""
            met = ("yes" if med <= TARGET_STATS_MS else "**no**") if i % 2 == 0 else ""
            print(f"| {label}: median, p90, worst of {len(ms)} | {med:.1f}, {p90:.1f}, {worst:.1f} ms |  "
                  f"| {target} | {met} |")
        print(f"| `tail -n 10 /sagafs/log`: median | {statistics.median(tail_ms):.1f} ms |  |  |  |")
        print(f"| first `cat /sagafs/log` after the drain (a fresh window: renders every line) | {first * 1000:.0f} ms "
              f"| {first / best[limit]:.1f} | ≤ {TARGET_FRESH_S * 1000:.0f} ms | "
              f"{'yes' if first <= TARGET_FRESH_S else '**no**'} |")
        print(f"| the same, rendered in Python alone (SAGA_PYTHON_RENDER=1) | {first_py * 1000:.0f} ms "
              f"| {first_py / best[limit]:.1f} |  |  |")
    finally:
        for s in reversed(started):
            s.stop()
        cleanup_ebpf(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
