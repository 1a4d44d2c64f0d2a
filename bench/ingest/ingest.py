"""Ingest speed: records in the /dev/saga format parsed, and parsed and archived to SQLite.

Baseline, measured in the same run on the same bytes: struct.iter_unpack,
the fastest a Python program can turn fixed-size records into tuples.  It
needs fixed-size records, so the comparison corpus holds calls without
paths (every record the fixed size); a second corpus repeats the recorded
workload (tests/data/workload.saga.gz: a third of the calls carry paths)
to show the realistic mix.

"archive" is the daemon's path on one core, end to end: parse each 1 MiB
read as the daemon gets it, look up executables (psutil cache), and write
what is queued into a fresh SQLite archive (store.archive.EventWriter),
at most 65,536 events per write as the daemon's archiver takes them.  The
CPU the writes took (thread time) is the archive's share of the daemon's
budget per event (issue 10: 1.5 µs in all, about 0.7 for the archive).
Each figure is the best of --rounds runs (the machine is shared; the best
run is the least disturbed), and each round runs every measure, so all
meet the same load.
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

from saga import _uapi, events
from saga.daemon.enrich import Enricher
from saga.drivers.replay import split_records
from saga.store import Store, archive
from saga.store import rules as stored_rules

ROOT = Path(__file__).resolve().parents[2]
READ_BYTES = 1 << 20
TARGET_PARSE = 1_000_000
TARGET_ARCHIVE = 300_000
TARGET_WRITE_US = 0.7
WRITE_EVENTS = 65536        # the most the daemon's archiver writes at once


def corpora(n: int) -> tuple[bytes, bytes]:
    """(fixed-size corpus, realistic mix), n records each, from the recorded workload."""
    data = gzip.decompress((ROOT / "tests/data/workload.saga.gz").read_bytes())
    recs = [rec for rec, _ in split_records(data)]
    fixed = [r for r in recs if len(r) == events.FIXED]
    mix = b"".join(recs[i % len(recs)] for i in range(n))
    return b"".join(fixed[i % len(fixed)] for i in range(n)), mix


def reads(buf: bytes) -> list[bytes]:
    """Cut a corpus into whole-record reads of about READ_BYTES, as read_raw returns them."""
    out, start, off = [], 0, 0
    while off < len(buf):
        size = struct.unpack_from("<H", buf, off)[0]
        if off + size - start > READ_BYTES:
            out.append(buf[start:off])
            start = off
        off += size
    out.append(buf[start:])
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def archive_run(chunks: list[bytes], workdir: str) -> tuple[float, float]:
    """(seconds to parse and archive all chunks into a new database, CPU seconds of the writes alone);
    setup not timed."""
    path = tempfile.mkdtemp(dir=workdir)
    store = Store.open(f"sqlite:///{path}/saga.db")
    with store.session() as s, s.begin():
        host = stored_rules.host_id(s, "bench")
    writer = archive.EventWriter(store.engine, host)
    enricher = Enricher()
    queued: list[tuple[bytes, list[tuple]]] = []
    exes: dict = {}
    write_cpu = 0.0

    def flush() -> float:
        t = time.thread_time()
        writer.write(queued, exes)
        queued.clear()
        exes.clear()
        return time.thread_time() - t

    t0 = time.perf_counter()
    for buf in chunks:
        raws = events.parse(buf)
        exes.update(enricher.exes(r[events.PID] for r in raws))
        queued.append((buf, raws))
        if sum(len(r) for _, r in queued) >= WRITE_EVENTS:
            write_cpu += flush()
    if queued:
        write_cpu += flush()
    took = time.perf_counter() - t0
    writer.close()
    stored = archive.count(store.engine)
    want = sum(len(events.parse(buf)) for buf in chunks)
    if stored != want:
        raise SystemExit(f"ingest: the archive holds {stored} events, {want} were written")
    store.close()
    shutil.rmtree(path)
    return took, write_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", default=os.environ.get("TMPDIR", "/var/tmp"))
    args = ap.parse_args()
    n = args.events
    fixed, mix = corpora(n)
    fixed_reads, mix_reads = reads(fixed), reads(mix)
    unpack = _uapi.SAGA_EVENT_STRUCT.iter_unpack

    # Rounds interleave every measure, so the baseline and the measures meet the same load.
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, fn in (("base", lambda: [list(unpack(b)) for b in fixed_reads]),
                         ("parse_fixed", lambda: [events.parse(b) for b in fixed_reads]),
                         ("parse_mix", lambda: [events.parse(b) for b in mix_reads])):
            runs.setdefault(name, []).append(timed(fn))
        for name, chunks in (("arch_fixed", fixed_reads), ("arch_mix", mix_reads)):
            took, write_cpu = archive_run(chunks, args.workdir)
            runs.setdefault(name, []).append(took)
            runs.setdefault(name + "_write", []).append(write_cpu)
    base, parse_fixed, parse_mix, arch_fixed, arch_mix = (
        n / min(runs[k]) for k in ("base", "parse_fixed", "parse_mix", "arch_fixed", "arch_mix"))

    def row(what, corpus, rate, target=None):
        verdict = "" if target is None else ("yes" if rate >= target else "**no**")
        goal = "" if target is None else f"≥ {target:,}"
        return f"| {what} | {corpus} | {rate:,.0f} | {rate / base:.2f} | {goal} | {verdict} |"

    load = os.getloadavg()[0]
    print(f"Ingest, {n:,} events per run, best of {args.rounds} runs, load average {load:.1f} "
          f"on {os.cpu_count()} CPUs.\n")
    print("| measure | corpus | events/s | × iter_unpack | target | met |")
    print("|---|---|---:|---:|---:|:---:|")
    print(row("struct.iter_unpack (baseline)", "fixed", base))
    print(row("saga.events.parse", "fixed", parse_fixed, TARGET_PARSE))
    print(row("saga.events.parse", "mix", parse_mix, TARGET_PARSE))
    print(row("parse + archive to SQLite", "fixed", arch_fixed, TARGET_ARCHIVE))
    print(row("parse + archive to SQLite", "mix", arch_mix, TARGET_ARCHIVE))
    print("\n| archive writes (EventWriter.write, at most 65,536 events each) | corpus | CPU µs per event | target "
          "| met |")
    print("|---|---|---:|---:|:---:|")
    for corpus in ("fixed", "mix"):
        us = min(runs[f"arch_{corpus}_write"]) / n * 1e6
        print(f"| thread CPU of the writes, commit included | {corpus} | {us:.2f} | ≤ {TARGET_WRITE_US} | "
              f"{'yes' if us <= TARGET_WRITE_US else '**no**'} |")
    print(f"\nfixed: {events.FIXED}-byte records without paths; mix: the recorded workload "
          f"({len(mix) / n:.0f} bytes per record on average).")


if __name__ == "__main__":
    main()
