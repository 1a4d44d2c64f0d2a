"""The same workload through saga.ko and through the eBPF driver: the same counts, equivalent records.

`calls mix` (tests/kernel/workloads/calls.c) runs once per driver, without
ASLR (setarch -R) so even its pointer arguments repeat, confined by
`log all comm=calls` + `ignore all`.  Equivalent records: per thread, the
same calls in the same order with the same slot, number, flags, arguments,
paths, return value, comm and ids; pids and tids (fields, return values,
arguments) are compared by their order of first appearance, since they
differ between runs.  Time, duration and CPU are not compared.

The eBPF driver needs BTF and the object of `make bpf` (tools/vmtest builds it).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from bpffs import private_bpffs
from kernelutil import CALLS, Module, drain, only

from saga import _uapi, syscalls
from saga.drivers.ebpf import EbpfDriver, loader

MIX_DIR = "/tmp/saga-equivalence"  # the same path in both runs: it is an argument
# Calls the workload makes itself (getppid: 3 + 2 through int $0x80 + 2 in the child).
EXPECTED = {"getppid": 7, "rt_sigreturn": 3, "exit_group": 2, "tgkill": 3, "renameat": 1, "unlinkat": 1, "wait4": 1}

pytestmark = pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"),
                                reason="this kernel has no BTF (/sys/kernel/btf/vmlinux): no eBPF driver")


def run_mix(drv) -> tuple[dict[int, tuple[int, int]], list]:
    """Run the workload under drv's capture; its per-slot counts and records."""
    only(drv, "log all comm=calls", "ignore all")
    drain(drv)
    drv.reset_stats()
    shutil.rmtree(MIX_DIR, ignore_errors=True)
    os.mkdir(MIX_DIR)
    try:
        subprocess.run(["setarch", "x86_64", "-R", CALLS, "mix", MIX_DIR], check=True, env={"PATH": "/usr/bin:/bin"})
    finally:
        shutil.rmtree(MIX_DIR, ignore_errors=True)
    counts = {slot: c for slot, c in drv.stats().per_slot.items() if c != (0, 0)}
    return counts, [e for e in drain(drv) if e.comm == "calls"]


# Calls whose return value is a pid.
_PID_RETURNS = {"clone", "clone3", "fork", "vfork", "wait4", "getpid", "gettid", "getppid", "set_tid_address",
                "getpgid", "getpgrp", "getsid", "setsid"}


def normalized(evs) -> list[list[tuple]]:
    """Per thread (in order of first record), each record without what differs between runs."""
    # kmod: per-CPU buffers, so records are read out of order when a task ran on both CPUs; entry times
    # are not.  (The workload's first record, its execve, precedes its child's first, the clone.)
    evs = sorted(evs, key=lambda e: e.ts_ns)
    ids: dict[int, str] = {}

    def ident(v: int):
        return ids.get(v, v)

    for e in evs:
        for v in (e.pid, e.tid):
            ids.setdefault(v, f"task{len(ids)}")
    threads: dict[int, list[tuple]] = {}
    for e in evs:
        # Only pid values are renamed: a guest's pids are small, and openat's mode 0600 (384) can be one.
        kinds = [a.ctype for a in syscalls.BY_SLOT[e.nr].args] if e.nr in syscalls.BY_SLOT else ["?"] * 6
        args = tuple(ident(a) if kind == "pid_t" else a for a, kind in zip(e.args, kinds, strict=False))
        ret = ident(e.ret) if syscalls.name_of(e.nr) in _PID_RETURNS else e.ret
        threads.setdefault(e.tid, []).append((
            syscalls.name_of(e.nr), e.nr, e.orig_nr, e.flags, args,
            e.paths, ret, e.comm, ident(e.pid), ident(e.tid), ident(e.ppid), e.uid, e.gid))
    return list(threads.values())


def kmod_run():
    """The run through saga.ko, unloaded again before the eBPF driver loads."""
    mod = Module()
    mod.unload()
    mod.load()
    try:
        drv = mod.driver()
        try:
            return run_mix(drv)
        finally:
            drv.close()
    finally:
        mod.unload()


@pytest.fixture
def bpf_dir(monkeypatch):
    """A private bpffs under /tmp for the eBPF driver (SAGA_BPF_DIR); unloaded and unmounted afterwards."""
    if not loader.OBJECT.exists():
        pytest.fail(f"{loader.OBJECT} is missing: run `make bpf` on the host (tools/vmtest does)")
    with private_bpffs() as root:
        directory = os.path.join(root, "saga")
        monkeypatch.setenv("SAGA_BPF_DIR", directory)
        yield directory


def ebpf_run() -> tuple[dict[int, tuple[int, int]], list]:
    """The workload under the eBPF driver, in a run where the kernel skipped none of its program's runs.

    On preemptible syscall tracepoints (Linux >= 6.14, -rt above all) the kernel skips a program already
    running on the CPU: the driver counts those calls (`missed`, docs/ebpf.md) but cannot have them, so a
    run with misses cannot equal the module's; it is run again (a few misses in a run were seen on 7.3-rt).
    """
    drv = EbpfDriver.open(load=True)
    try:
        for _ in range(3):
            counts, evs = run_mix(drv)
            if drv.stats().missed == 0:
                return counts, evs
        pytest.fail(f"the kernel skipped saga's program in three runs of the workload ({drv.stats().missed} calls "
                    "missed in the last)")
    finally:
        drv.close()


def test_equivalence_kmod_ebpf(bpf_dir):
    # A first run faults in the pages the workload's paths live in (ld.so's "" of fstat among them), so that
    # both runs find them resident or not alike: a path in a page not present is a fault (PATH_FAULT).
    os.makedirs(MIX_DIR, exist_ok=True)
    try:
        subprocess.run(["setarch", "x86_64", "-R", CALLS, "mix", MIX_DIR], check=True, env={"PATH": "/usr/bin:/bin"})
    finally:
        shutil.rmtree(MIX_DIR, ignore_errors=True)
    k_counts, k_evs = kmod_run()  # one driver at a time
    e_counts, e_evs = ebpf_run()

    # The workload did what it says, and the kmod run saw it (the comparison is not vacuous).
    for name, n in EXPECTED.items():
        assert k_counts.get(syscalls.lookup(name).slot, (0, 0))[0] == n, name
    assert _uapi.SAGA_NR_UNKNOWN not in k_counts

    assert e_counts == k_counts
    k_threads, e_threads = normalized(k_evs), normalized(e_evs)
    assert len(k_threads) == 2  # the workload and its forked child
    for k, e in zip(k_threads, e_threads, strict=True):
        assert e == k
    assert len(e_threads) == len(k_threads)

    # Records of the notable cases are there (in both, by the comparison above).
    flat = [r for t in k_threads for r in t]
    flags_of = {name: [r[3] for r in flat if r[0] == name] for name in ("rt_sigreturn", "exit_group", "renameat")}
    assert flags_of["rt_sigreturn"] == [_uapi.SAGA_EVF_NORETURN] * 3
    assert flags_of["exit_group"] == [_uapi.SAGA_EVF_NORETURN] * 2
    assert [r[5] for r in flat if r[0] == "renameat"] == [(f"{MIX_DIR}/a", f"{MIX_DIR}/b")]
    assert any(r[3] & _uapi.SAGA_EVF_PATH_TRUNC for r in flat if r[0] == "openat")
    assert sum(1 for r in flat if r[3] & _uapi.SAGA_EVF_COMPAT) == 2
    # Every record is counted, and every logged call has its record.
    assert sum(c for c, _ in k_counts.values()) == len(flat)
