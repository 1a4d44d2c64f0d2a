"""read() order across the per-CPU rings (docs/kernel-abi.md, "Reading records").

A record's key is when it was written: ts_ns + duration_ns.  read() merges
the rings by it, so a task that changes CPUs has its records in the order
it made its calls, and a later read() never returns a record that sorts
before one already returned.  tools/vmtest boots two vCPUs.
"""
import os

from kernelutil import SLOT, calls, drain, only, spawn

from saga import _uapi, events


def key(r) -> int:
    return r[events.TS] + r[events.DURATION]


def two_cpus() -> None:
    assert len(os.sched_getaffinity(0)) >= 2, "needs two CPUs (tools/vmtest boots SAGA_VM_CPUS=2)"


def test_a_task_hopping_cpus_reads_back_in_call_order(saga):
    two_cpus()
    only(saga, "log getppid,exit_group comm=calls", "ignore all")
    drain(saga)
    n = 64
    calls("hop", n)  # getppid(i) on CPU i % 2, then exit_group on CPU n % 2
    recs = events.parse(saga.read_raw(1 << 20, timeout=0))
    assert saga.stats().drops == 0
    mine = [r for r in recs if r[events.COMM].startswith(b"calls\0")]
    # The records really come from both rings, call by call ...
    assert [(r[events.NR], r[events.ARG0], r[events.CPU]) for r in mine] == \
        [(SLOT["getppid"], i, i % 2) for i in range(n)] + [(SLOT["exit_group"], 0, n % 2)]
    # ... and one read gives them in time order.
    assert [key(r) for r in recs] == sorted(key(r) for r in recs)


def test_reads_never_go_back_in_time_while_every_cpu_writes(saga):
    """Two writers, one per CPU, and reads of one record's room each while
    they run: the keys of everything read, read after read, never decrease."""
    two_cpus()
    only(saga, "log getppid,openat,close comm=calls", "ignore all")
    drain(saga)
    saga.reset_stats()
    n = 2000
    writers = [spawn("hammer", n, cpu) for cpu in (0, 1)]
    keys, cpus, reads = [], set(), 0
    while True:
        running = any(w.poll() is None for w in writers)
        buf = saga.read_raw(_uapi.SAGA_EVENT_MAX, timeout=0.2)
        if not buf and not running:
            break
        reads += bool(buf)
        for r in events.parse(buf):
            if r[events.COMM].startswith(b"calls\0"):
                keys.append(key(r))
                cpus.add(r[events.CPU])
    assert [w.wait() for w in writers] == [0, 0]
    s = saga.stats()
    # Every record written is read or counted dropped (the loader's openat and close count too).
    assert len(keys) == s.read and s.read + s.drops == s.events >= 2 * 3 * n
    assert cpus == {0, 1} and reads > 100
    assert keys == sorted(keys)
