"""Query speed: saga query and saga report on an archive of 10,000,000 events, against grep -F.

The archive is built from the recorded workload (tests/data/workload.saga.gz):
each event copies one of its records (the call, its arguments, return value,
flags and duration) and gets a process from a pool of 2,000 (pid, tid,
parent, user, task name, executable) and, for calls with paths, paths drawn
from a pool of 5,000 distinct ones (Zipf-distributed, as a real host's: a
few hot libraries and /proc files, a long tail of homes, logs, temporary
files), timestamps spread over the 24 hours before the run.  It is written
as the daemon's archiver writes on a busy host, 65,536 events per write
through store.archive.EventWriter; the CPU that writing took per event is
reported.  The baseline, measured in the same run: the same
events rendered in the /sagafs/log format into a text file (page cache
warm), and `grep -F` of the same question over it.

Each measure is the median of --rounds runs of the saga command as an
installed saga runs it after its first command: handed to the user's
command server (docs/cli.md "The command server"; a private one in
--workdir, started by an uncounted first command and stopped at the end),
whose forked worker searches and prints; its CPU time is the client's, the
worker's (the server reports it) and the server's own per command
(accepting, checking, forking: its clock ticks over all the commands it
ran, divided by their number), its peak RSS the larger of the client's and
the worker's (which counts the pages it shares with the server), and, for
`-n 0` searches, the time to its first line.  Beside it, the same command
in its own process (SAGA_NO_SERVER=1: interpreter start, imports, the
search and the printing), as before the server.  Both run from compiled
bytecode, as an installed saga does (compiled once into --workdir: the
tree itself is never written).  The targets are judged on the command
through the server.  "in-process" is the same search inside one process
(Search.stream / report.summarize), without interpreter start and imports.
The archive and the text are kept in --workdir and reused when they match
--events.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from saga import events, render
from saga.filters import EventFilter, failed
from saga.store import Store, archive, columns
from saga.store import rules as stored_rules
from saga.store.query import Search, blocks
from saga.store.reader import open_reader
from saga.store.report import By, summarize

if TYPE_CHECKING:
    from cliserver import CommandServer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/common"))      # the command server and the PostgreSQL server of the tests
SAGA = str(ROOT / ".venv/bin/saga")
HOUR = 3600 * 10**9
SPAN = 24 * HOUR
WRITE = 65536                   # events per write: the most the daemon's archiver writes at once
N_PROCS, N_PATHS = 2000, 5000
SHADOW = b"/etc/shadow"
NAMES = ("nginx", "postgres", "sshd", "systemd", "cron", "bash", "python3", "java", "node", "redis-server",
         "dockerd", "containerd", "rsyslogd", "journald", "apt", "dpkg", "gzip", "tar", "rsync", "backup",
         "curl", "wget", "git", "make", "cc1", "ld", "ls", "cat", "grep", "find", "sed", "awk", "sort", "ps",
         "top", "vim", "less", "sudo", "su", "login", "agetty", "dbus-daemon", "polkitd", "udevd", "chronyd",
         "snmpd", "zabbix_agentd", "php-fpm", "memcached", "haproxy")
TARGETS = {"path": 1.0, "errno": 1.0, "report": 5.0}
RSS_TARGET_MB = 200
RATIO_TARGET = 20


def path_pool(rng: np.random.Generator) -> list[bytes]:
    """5,000 distinct paths, in the order of how often they are used (most first)."""
    hot = [b"/etc/ld.so.cache", b"/lib/x86_64-linux-gnu/libc.so.6", b"/etc/localtime", b"/dev/null",
           b"/etc/nsswitch.conf", b"/etc/passwd", b"/etc/group", b"/etc/hosts", b"/etc/resolv.conf",
           b"/proc/self/status", b"/proc/meminfo", b"/proc/stat", b"/sys/fs/cgroup/cpu.max"]
    libs = [f"/usr/lib/x86_64-linux-gnu/lib{n}.so.{v}".encode() for n in
            ("ssl", "crypto", "z", "pcre2-8", "systemd", "m", "pthread", "dl", "selinux", "gcc_s", "stdc++",
             "ffi", "lzma", "zstd", "bz2", "cap", "acl", "attr", "uuid", "blkid", "mount", "sqlite3", "xml2",
             "curl", "nghttp2", "idn2", "gnutls", "nettle", "hogweed", "gmp", "p11-kit", "tasn1", "unistring")
            for v in range(8)]
    procs = [f"/proc/{1000 + 29 * i}/{f}".encode() for i in range(300) for f in ("stat", "status", "cmdline")]
    homes = [f"/home/user{u}/{f}".encode() for u in range(120) for f in
             (".ssh/authorized_keys", ".ssh/known_hosts", ".bashrc", ".profile", ".cache/motd.legal-displayed",
              ".config/git/config", "notes.txt")]
    www = [f"/var/www/html/site{s}/page{p}.html".encode() for s in range(20) for p in range(40)]
    logs = [f"/var/log/{d}/{f}.log".encode() for d in ("nginx", "postgresql", "apt", "app") for f in
            ("access", "error", "main", "audit", "debug")]
    tmp = [f"/tmp/tmp.{rng.integers(0, 36**8):08x}".encode() for _ in range(1500)]
    pool = list(dict.fromkeys(hot + libs + procs + homes + www + logs + tmp))
    rest = pool[len(hot):]
    order = rng.permutation(len(rest))
    pool = hot + [rest[i] for i in order]
    pool = [p for p in pool if p != SHADOW][:N_PATHS - 1]
    pool.insert(700, SHADOW)       # a rare file: rank 700 of 5,000
    return pool


def layout() -> str:
    """What an archive built by an earlier version must share with this one to be reused."""
    from saga.store import schema
    return f"schema {schema.SCHEMA_VERSION}, {columns.COLUMN_SLOTS} slots, {columns.FAILURE_ROW.descr}"


def build(url: str, n: int, text_path: Path, seed: int = 1) -> dict:
    """Write n events into the archive at url and their rendered lines into text_path; returns facts."""
    rng = np.random.default_rng(seed)
    recording = gzip.decompress((ROOT / "tests/data/workload.saga.gz").read_bytes())
    raws = events.parse(recording)
    templates = columns.extract(recording, archive.sizes_of(recording, raws)).fields
    n_paths = [len(events.paths_of(r)) for r in raws]
    paths = path_pool(rng)
    weights = 1.0 / np.arange(1, len(paths) + 1) ** 1.1
    weights /= weights.sum()
    pids = 1000 + rng.choice(60000, N_PROCS, replace=False)
    procs = {
        "pid": pids, "tid": pids, "ppid": rng.choice(pids[:100], N_PROCS),
        "uid": rng.choice([0, 0, 0, 33, 1000, 1001, 1002, 65534], N_PROCS),
        "name": rng.integers(0, len(NAMES), N_PROCS),
    }
    proc_w = 1.0 / np.arange(1, N_PROCS + 1) ** 0.9
    proc_w /= proc_w.sum()
    exes = {int(p): f"/usr/bin/{NAMES[k]}" for p, k in zip(pids, procs["name"], strict=True)}
    comms = np.array([NAMES[k].encode()[:15].ljust(16, b"\0") for k in range(len(NAMES))], "V16")
    start = time.time_ns() - SPAN
    store = Store.open(url)
    with store.session() as s, s.begin():
        host = stored_rules.host_id(s, "bench")
    writer = archive.EventWriter(store.engine, host)
    facts = {"events": n, "layout": layout(), "start_ns": start, "shadow_last_hour": 0, "eacces": 0, "write_cpu_s": 0.0}
    code = columns.FIELD_CODES
    with open(text_path, "w", encoding="utf-8", errors="surrogateescape") as text:
        for at in range(0, n, WRITE):
            k = min(WRITE, n - at)
            t = rng.integers(0, len(raws), k)
            p = rng.choice(N_PROCS, k, p=proc_w)
            f = {c: column[t] for c, column in templates.items()}
            f[code["pid"]] = procs["pid"][p]
            f[code["tid"]] = procs["tid"][p]
            f[code["ppid"]] = procs["ppid"][p]
            f[code["uid"]] = procs["uid"][p]
            f[code["comm"]] = comms[procs["name"][p]]
            f[code["cpu"]] = rng.integers(0, 2, k)
            f[code["ts_ns"]] = start + np.arange(at, at + k, dtype=np.int64) * (SPAN // n)
            chosen = rng.choice(len(paths), 2 * k, p=weights).reshape(k, 2)
            pairs = [(paths[a], paths[b] if n_paths[tt] > 1 else None) if n_paths[tt] else (None, None)
                     for tt, (a, b) in zip(t.tolist(), chosen.tolist(), strict=True)]
            buf = columns.records(f, k, pairs)
            got = events.parse(buf)
            t0 = time.thread_time()
            writer.write([(buf, got)], {pid: exes[pid] for pid in np.unique(f[code["pid"]]).tolist()})
            facts["write_cpu_s"] += time.thread_time() - t0
            text.write(render.lines(got))
            last_hour = f[code["ts_ns"]] >= start + SPAN - HOUR
            facts["shadow_last_hour"] += sum(1 for i, pr in enumerate(pairs) if last_hour[i] and SHADOW in pr)
            facts["eacces"] += sum(1 for r in got if r[events.RET] == -13 and failed(r))
    writer.close()
    facts["usage"] = archive.usage(store.engine).__dict__
    store.close()
    return facts


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, float | None, float, int, int]:
    """(wall seconds, seconds to the first line or None, CPU seconds, peak RSS KiB, lines) of `saga ARGS`.

    CPU and peak RSS are measured by /usr/bin/time: a child forked from this process would count this
    process's memory before its exec.  When env lets saga use its command server, the command must be
    served: the worker's CPU is added and its peak RSS counted (SAGA_SERVER_RUSAGE).
    """
    usage_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"saga-bench-usage.{os.getpid()}"
    worker_file = usage_file.with_suffix(".worker")
    served = "SAGA_NO_SERVER" not in env
    t0 = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M %U %S", "-o", str(usage_file), SAGA, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**env, "SAGA_SERVER_RUSAGE": str(worker_file)} if served else env)
    first = None
    lines = 0
    assert proc.stdout is not None
    for _ in iter(proc.stdout.readline, b""):
        if first is None:
            first = time.perf_counter() - t0
        lines += 1
    code = proc.wait()
    took = time.perf_counter() - t0
    rss, user, system = usage_file.read_text().split()[-3:]
    usage_file.unlink()
    if code not in (0, 1):
        raise SystemExit(f"bench/query: saga {' '.join(args)} exited {code}")
    cpu, peak = float(user) + float(system), int(rss)
    if served:
        if not worker_file.exists():
            raise SystemExit(f"bench/query: saga {' '.join(args)} was not served by the command server")
        w_user, w_system, w_rss = worker_file.read_text().split()
        worker_file.unlink()
        cpu, peak = cpu + float(w_user) + float(w_system), max(peak, int(w_rss))
    return took, first, cpu, peak, lines


def grep(word: str, path: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, matching lines) of grep -F over the text."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(["grep", "-F", "-c", word, str(path)], capture_output=True, text=True)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return took, cpu, int(out.stdout.strip() or 0)


def in_process(url: str, what: str, day: str, hour: str) -> tuple[float, float]:
    """(wall, CPU) seconds of the search inside this process, its lines rendered as the command prints them."""
    t0, c0 = time.perf_counter(), time.process_time()
    with open_reader(url) as db:
        if what in ("path", "errno"):
            flt = EventFilter.build(path="/etc/shadow", since=hour) if what == "path" else \
                EventFilter.build(errno="EACCES", since=day)
            search = Search(db, flt)
            for block in blocks(search.parts(idle=True)):
                search.text(block)
        else:
            summarize(Search(db, EventFilter.build(since=day)), By.syscall)
    return time.perf_counter() - t0, time.process_time() - c0


def cpu_of(cmd: list[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system) of a command, its output thrown away."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


START_STEPS = [       # what a command pays before it searches, step by step (each includes the ones before)
    ("the interpreter (`python -c pass`)", "pass", {}),
    ("+ numpy, one BLAS thread (as saga sets it)", "import numpy", {"OPENBLAS_NUM_THREADS": "1"}),
    ("+ saga's modules a search imports, and the database's driver", "import saga.cli.main, saga.cli.search, "
     "saga.cli.guard, saga.cli.context, saga.store.query, {driver}", {}),
]
NUMPY_DEFAULT = ("numpy with its default BLAS threads (one per CPU; not what saga does)", "import numpy", {})


def start_costs(env: dict[str, str], driver: str, runs: int = 11) -> list[tuple[str, float]]:
    """Median CPU seconds of each start step, and of numpy as it starts by default, alternating (driver:
    the module that talks to the database, sqlite3 or psycopg)."""
    py = str(ROOT / ".venv/bin/python")
    steps = START_STEPS + [NUMPY_DEFAULT]
    base = {k: v for k, v in env.items() if k != "OPENBLAS_NUM_THREADS"}
    got: list[list[float]] = [[] for _ in steps]
    for _ in range(runs):
        for i, (_label, code, extra) in enumerate(steps):
            got[i].append(cpu_of([py, "-c", code.format(driver=driver)], {**base, **extra}))
    return [(label, statistics.median(g)) for (label, _c, _e), g in zip(steps, got, strict=True)]


def size(url: str) -> int:
    """Bytes the archive takes: the SQLite file, or the PostgreSQL database."""
    if url.startswith("sqlite:///"):
        return os.path.getsize(url.removeprefix("sqlite:///"))
    with open_reader(url) as db:
        return int(db.one("SELECT pg_database_size(current_database())", ())[0])


def compiled(work: Path) -> dict[str, str]:
    """The environment of the commands: bytecode kept in the work directory (the first run of each
    command, not measured, compiles what it imports)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/var/tmp"), "saga-bench-query"))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--postgres", action="store_true",
                    help="the archive in a private PostgreSQL server (its data kept in the work directory)")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if not args.postgres:
        db = work / "archive.db"
        if not db.exists():
            (work / "facts.json").unlink(missing_ok=True)
        run(args, work, f"sqlite:///{db}", "", lambda: [p.unlink() for p in work.glob("archive.db*")])
        return
    from pgserver import PgServer
    server = PgServer(str(work / "pg"))
    server.start()
    try:
        run(args, work, server.url("saga_bench"), "-pg", lambda: server.new_database("saga_bench"))
    finally:
        server.stop()


def run(args: argparse.Namespace, work: Path, url: str, kind: str, empty: Callable[[], object]) -> None:
    """Build the archive at url (and its text) unless the one there fits, then measure."""
    text, meta = work / f"log{kind}.txt", work / f"facts{kind}.json"
    facts = json.loads(meta.read_text()) if meta.exists() else {}
    if args.rebuild or facts.get("events") != args.events or facts.get("layout") != layout():
        meta.unlink(missing_ok=True)
        empty()
        t0 = time.perf_counter()
        facts = build(url, args.events, text)
        facts["build_s"] = time.perf_counter() - t0
        meta.write_text(json.dumps(facts))
    base = ["--db", url]
    env = compiled(work)
    alone = {**env, "SAGA_NO_SERVER": "1"}
    from cliserver import CommandServer
    server = CommandServer(work, env)
    server.stop()                       # one an interrupted run left
    try:
        measure(args, work, url, kind, facts, text, base, alone, server)
    finally:
        server.stop()


def measure(args: argparse.Namespace, work: Path, url: str, kind: str, facts: dict, text: Path, base: list[str],
            alone: dict[str, str], server: CommandServer) -> None:
    # The day the archive covers and its last hour, as times (the archive may be reused on a later day).
    day, hour = f"@{facts['start_ns'] / 1e9:.9f}", f"@{(facts['start_ns'] + SPAN - HOUR) / 1e9:.9f}"
    measures = {
        "path": (["query", "--path", "/etc/shadow", "--since", hour, "-n", "0"], "/etc/shadow",
                 facts["shadow_last_hour"]),
        "errno": (["query", "--errno", "EACCES", "--since", day, "-n", "0"], "EACCES", facts["eacces"]),
        "report": (["report", "--since", day], None, None),
    }
    runs: dict[str, list] = {k: [] for k in measures}
    own: dict[str, list] = {k: [] for k in measures}
    greps: dict[str, list] = {k: [] for k in measures}
    inproc: dict[str, list] = {k: [] for k in measures}
    loads = []
    for cmd, _word, _want in measures.values():         # bytecode compiled, pages cached: not measured
        run_cli(base + cmd, alone)
    server.start()                                      # as a user's first command starts it
    for cmd, _word, _want in measures.values():         # the server's first worker of each: not measured
        run_cli(base + cmd, server.env)
    server_cpu, served = server.cpu(), 0
    print(f"bench/query {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, uptime: {uptime()}\n", flush=True)
    for _ in range(args.rounds):
        for name, (cmd, word, want) in measures.items():
            loads.append(os.getloadavg()[0])
            took, first, cpu, rss, lines = run_cli(base + cmd, server.env)
            served += 1
            alone_took, _first, alone_cpu, alone_rss, alone_lines = run_cli(base + cmd, alone)
            for got in (lines, alone_lines):
                if want is not None and got != want:
                    raise SystemExit(f"bench/query: {name}: {got} lines, the archive holds {want} such events")
            runs[name].append((took, first, cpu, rss))
            own[name].append((alone_took, alone_cpu, alone_rss))
            inproc[name].append(in_process(url, name, day, hour))
            if word is not None:
                g, g_cpu, _count = grep(word, text)
                greps[name].append((g, g_cpu))
    share = (server.cpu() - server_cpu) / served      # the server's own CPU per command
    starts = start_costs(alone, "psycopg" if kind else "sqlite3")
    u = facts["usage"]
    print(f"Query on {'PostgreSQL' if kind else 'SQLite'}, {facts['events']:,} events over 24 hours "
          f"({u['batches']:,} batches, "
          f"{u['stored_bytes'] / facts['events']:.0f} bytes per event in columns, archive file "
          f"{size(url) / 2**30:.2f} GiB; text {text.stat().st_size / 2**30:.2f} GiB), median of "
          f"{args.rounds} runs, load average {min(loads):.1f} to {max(loads):.1f} during the runs on "
          f"{os.cpu_count()} CPUs.\n")
    print("| measure | saga command (server), s | first line, s | CPU, s | peak RSS, MB | own process, s (CPU) | "
          "in-process, s (CPU) | grep -F, s (CPU) | × grep (command) | × grep (command CPU) | "
          "× grep (own process) | × grep (in-process) | target | met |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name, (cmd, word, _) in measures.items():
        took = statistics.median(r[0] for r in runs[name])
        firsts = [r[1] for r in runs[name] if r[1] is not None]
        first = statistics.median(firsts) if firsts and word is not None else None
        cpu = statistics.median(r[2] for r in runs[name]) + share
        rss = max(r[3] for r in runs[name]) / 1024
        alone_took = statistics.median(r[0] for r in own[name])
        alone_cpu = statistics.median(r[1] for r in own[name])
        ip = statistics.median(x[0] for x in inproc[name])
        ip_cpu = statistics.median(x[1] for x in inproc[name])
        met = {"time": took <= TARGETS[name], "RSS": rss <= RSS_TARGET_MB}
        goal = f"≤ {TARGETS[name]:g} s, ≤ {RSS_TARGET_MB} MB"
        gw: float | None = None
        gc: float | None = None
        if word is not None:
            gw = statistics.median(x[0] for x in greps[name])
            gc = statistics.median(x[1] for x in greps[name])
            if first is not None:       # (none when nothing matched)
                met["first line"] = first <= 1.0
            met["× grep"] = gw / took >= RATIO_TARGET
            goal += f", first line ≤ 1 s, ≥ {RATIO_TARGET}× grep"
        verdict = "yes" if all(met.values()) else "**no** (" + ", ".join(
            f"{k}: {'yes' if v else 'no'}" for k, v in met.items()) + ")"
        print(f"| `saga {' '.join(cmd)}` | {took:.3f} | {'' if first is None else f'{first:.3f}'} "
              f"| {cpu:.3f} | {rss:.0f} | {alone_took:.2f} ({alone_cpu:.2f}) | {ip:.3f} ({ip_cpu:.3f}) | "
              f"{'' if gw is None else f'{gw:.2f} ({gc:.2f})'} | {'' if gw is None else f'{gw / took:.1f}'} | "
              f"{'' if gc is None else f'{gc / cpu:.1f}'} | {'' if gw is None else f'{gw / alone_took:.1f}'} | "
              f"{'' if gw is None else f'{gw / ip:.0f}'} | {goal} | {verdict} |")
    print(f"\nCPU of a command through the server: the client's and the worker's (median), plus the server's own "
          f"{share * 1000:.1f} ms per command ({served} commands; clock ticks).  Peak RSS: the worker's, which "
          f"counts the pages it shares with the server.")
    print(f"\nArchive write while building: {facts['write_cpu_s'] / facts['events'] * 1e6:.2f} µs of CPU per event "
          f"(EventWriter.write, merges included; target ≤ 0.7).  Built in {facts.get('build_s', 0):.0f} s.")
    print(f"Matches: {facts['shadow_last_hour']} /etc/shadow calls in the last hour, {facts['eacces']} EACCES "
          f"in the day.")
    print("\nA command's start, CPU (median of 11, alternating; each step includes the ones above):\n")
    print("| step | CPU, ms |\n|---|---:|")
    for label, cpu in starts:
        print(f"| {label} | {cpu * 1000:.0f} |")
    started = starts[len(START_STEPS) - 1][1]
    for name, (cmd, word, _) in measures.items():
        cpu = statistics.median(r[1] for r in own[name])
        line = (f"`saga {cmd[0]}` {name} in its own process: {cpu * 1000:.0f} ms of CPU, {started * 1000:.0f} of "
                f"them the start")
        if word is not None:
            gc = statistics.median(x[1] for x in greps[name])
            line += (f"; grep -F takes {gc * 1000:.0f} ms of CPU, so the start alone allows at most "
                     f"{gc / started:.1f}× grep by CPU")
        print(f"- {line}")
    print(f"\nuptime at the end: {uptime()}")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
