"""The recorded workload, made live: tools/gen_fixture.py runs under a driver, and every
record it writes (what each call did, from the caller's side) must match what the driver
captured of the same call.  This holds the fixture the unit tests replay to what the
drivers really write, and the drivers' aux blobs, paths and context to the calls."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

from saga import events, syscalls

ROOT = Path(__file__).resolve().parents[2]
RULE_ID = 1


def rules() -> list[str]:
    """Log what this process starts from now on (the recorder and its children, marked at their fork)
    and nothing else; this process reads, so its own calls are not logged."""
    return [f"{RULE_ID}: log all pid={os.getpid()} tree", "2: count all"]


def run(out: Path) -> list[tuple]:
    """Run the recorder as root; its records, parsed."""
    subprocess.run([sys.executable, str(ROOT / "tools/gen_fixture.py"), "--out", str(out)], check=True,
                   capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    return events.parse(gzip.decompress(out.read_bytes()))


def _key(r: tuple) -> tuple:
    call = syscalls.BY_SLOT.get(r[events.NR])
    n = len(call.args) if call else 6     # registers a call does not take hold whatever they held
    return r[events.TID], r[events.NR], r[events.RET], r[events.ARG0:events.ARG0 + n]


def compare(recorded: list[tuple], captured: list[tuple]) -> int:
    """Check that each recorded call was captured alike (in order per thread); returns how many."""
    by_tid: dict[int, list[tuple]] = {}
    for r in sorted(captured, key=lambda r: r[events.TS]):   # the module reads CPU by CPU
        by_tid.setdefault(r[events.TID], []).append(r)
    at: dict[int, int] = {}
    for want in recorded:
        seq, key = by_tid.get(want[events.TID], []), _key(want)
        i = at.get(want[events.TID], 0)
        while i < len(seq) and _key(seq[i]) != key:
            i += 1
        assert i < len(seq), f"not captured: {syscalls.name_of(want[events.NR])} {key}"
        got = seq[i]
        at[want[events.TID]] = i + 1
        what = syscalls.name_of(want[events.NR])
        for name, idx in (("pid", events.PID), ("ppid", events.PPID), ("uid", events.UID), ("gid", events.GID),
                          ("comm", events.COMM), ("cgroup_id", events.CGROUP_ID), ("flags", events.FLAGS)):
            assert got[idx] == want[idx], f"{what}: {name} {got[idx]!r} != recorded {want[idx]!r}"
        assert events.path_bytes(got) == events.path_bytes(want), what
        assert (events.aux_kind(got), events.aux_bytes(got)) == (events.aux_kind(want), events.aux_bytes(want)), \
            what
        assert got[events.RULE_ID] == RULE_ID, what
    return len(recorded)
