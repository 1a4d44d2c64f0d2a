"""How fast the archive grows: the default rule file (packaging/rules.d/default.rules) against logging
every call, on the recorded workload (tests/data/workload.saga.gz) replayed --repeat times.

Each policy runs the real daemon (in this process, on the replay driver: the calls of the recording are
made again and again, the driver applies the rules) archiving into a fresh SQLite archive; measured: the
calls made, the events logged, and the bytes the archive's data then takes (SQLite's pages in use, the
spool and WAL excluded).  Growth per hour follows for a host making a given number of calls per second with
this workload's mix (the rates: an idle server, a busy one, and the ~75,000 calls/s host of issue 10).
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import threading
import time
from pathlib import Path

from saga.config import Config, DaemonConfig, RulesConfig, SagafsConfig, StoreConfig
from saga.daemon.service import Daemon, Options
from saga.drivers.replay import ReplayDriver
from saga.store import Store

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "packaging" / "rules.d" / "default.rules"
RATES = (1_000, 10_000, 75_000)


def run_policy(work: Path, recording: bytes, repeat: int, rules_file: str) -> tuple[int, int, int]:
    """(calls made, events logged, archive data bytes) for one policy."""
    db = work / "saga.db"
    cfg = Config(daemon=DaemonConfig(run_dir=str(work / "run"), enrich=False),
                 store=StoreConfig(url=f"sqlite:///{db}", host="bench", retention_days=0, max_size="0",
                                   space_left="0", admin_space_left="0"),
                 sagafs=SagafsConfig(mount=""), rules=RulesConfig(initial_file=rules_file))
    drv = ReplayDriver(ring_bytes=64 << 20)
    d = Daemon(cfg, Options(no_mount=True, reload_config=False), driver=drv)
    t = threading.Thread(target=d.run, kwargs={"signals": False})
    t.start()
    if not d.ready.wait(60):
        raise SystemExit("the daemon did not start")
    for _ in range(repeat):
        drv.feed(recording)
        while drv.pending:
            time.sleep(0.01)
    st = drv.stats()
    while d.state is None or d.state.counters.drained_events < st.events:
        time.sleep(0.05)
    d.stop()
    t.join(120)
    calls = st.calls
    logged = st.events
    if st.drops:
        raise SystemExit(f"the replay ring dropped {st.drops} events: the measure would be wrong")
    with Store.open(f"sqlite:///{db}") as store, store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    drv.close()
    return calls, logged, (pages - free) * size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=500)
    ap.add_argument("--workdir", default=None)
    opts = ap.parse_args()
    recording = gzip.decompress((ROOT / "tests" / "data" / "workload.saga.gz").read_bytes())
    rows = []
    for name, rules in (("log every call (no rules)", ""), ("default rule file", str(RULES))):
        work = Path(tempfile.mkdtemp(prefix="saga-bench-growth-", dir=opts.workdir))
        try:
            calls, logged, data = run_policy(work, recording, opts.repeat, rules)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rows.append((name, calls, logged, data))
    print(f"Recorded workload replayed {opts.repeat} times; archive data = SQLite pages in use after the run.\n")
    head = "| policy | calls | logged | share logged | archive bytes per call | "
    head += " | ".join(f"growth per hour at {r:,} calls/s" for r in RATES) + " |"
    print(head)
    print("|" + "---|" * (5 + len(RATES)))
    for name, calls, logged, data in rows:
        per_call = data / calls
        growth = " | ".join(f"{per_call * r * 3600 / 2**30:,.2f} GiB" for r in RATES)
        print(f"| {name} | {calls:,} | {logged:,} | {logged / calls:.1%} | {per_call:.1f} | {growth} |")


if __name__ == "__main__":
    main()
