"""Record content: identity, arguments, paths, return values, durations, compat."""
from __future__ import annotations

import errno
import os
import time

from ebpf_helpers import records

from saga import _uapi, events
from saga.rules import parse

GETPPID, CLOSE, OPENAT, RENAMEAT, EXIT_GROUP = 110, 3, 257, 264, 231
AT_FDCWD = -100


def only(drv, pid: int, syscalls: str) -> None:
    drv.replace_rules([parse(f"log {syscalls} pid={pid}"), parse("ignore all")])


def test_identity_and_timing(drv, workload):
    w = workload("getppid", 20)
    only(drv, w.pid, "getppid")
    t0 = time.clock_gettime_ns(time.CLOCK_REALTIME)
    w.go(drv)
    t1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
    recs = records(drv, pid=w.pid)
    assert len(recs) == 20
    for r in recs:
        assert r[events.SIZE] == events.FIXED
        assert r[events.TID] == w.pid
        assert r[events.PPID] == os.getpid()
        assert (r[events.UID], r[events.GID]) == (0, 0)
        assert events.comm_str(r[events.COMM]) == "saga-workload"
        assert r[events.RET] == os.getpid()  # getppid returns the test process
        assert r[events.NR] == r[events.ORIG_NR] == GETPPID
        assert r[events.FLAGS] == 0
        assert r[events.DURATION] > 0
        assert t0 - 50_000_000 <= r[events.TS] <= t1 + 50_000_000  # CLOCK_REALTIME at entry
        assert 0 <= r[events.CPU] < os.cpu_count()
    stamps = [r[events.TS] for r in recs]
    assert stamps == sorted(stamps)


def test_thread_ids(drv, workload):
    w = workload("thread", 10)
    only(drv, w.pid, "getppid")
    w.go(drv)
    recs = records(drv, pid=w.pid)
    assert len(recs) == 10
    assert {r[events.TID] for r in recs} != {w.pid} and len({r[events.TID] for r in recs}) == 1


def test_errors_and_args(drv, workload):
    w = workload("errors", 3)
    only(drv, w.pid, "close")
    w.go(drv)
    recs = records(drv, pid=w.pid)
    assert len(recs) == 3
    for r in recs:
        assert r[events.RET] == -errno.EBADF
        # close(int fd = -1): the raw register; the kernel reads its low 32 bits, the
        # upper ones are the C library's (glibc 2.36 zero-extends the int, 2.41 sign-extends it)
        assert r[events.ARG0] & 0xFFFFFFFF == 0xFFFFFFFF
        assert r[events.FLAGS] == 0 and not r[events.PATHS]


def test_paths(drv, workload, tmp_path):
    w = workload("paths", tmp_path)
    only(drv, w.pid, "openat,renameat")
    w.go(drv)
    recs = records(drv, pid=w.pid)
    opens = [r for r in recs if r[events.NR] == OPENAT]
    renames = [r for r in recs if r[events.NR] == RENAMEAT]
    assert len(opens) == 3 and len(renames) == 1

    created, longp, bad = opens
    assert events.paths_of(created) == (f"{tmp_path}/a",)
    assert created[events.RET] >= 0 and created[events.FLAGS] == 0
    assert created[events.ARG0] & 0xFFFFFFFF == AT_FDCWD & 0xFFFFFFFF  # raw register: an int
    assert created[events.PATH_LEN0] == len(f"{tmp_path}/a") and created[events.PATH_LEN1] == 0

    r = renames[0]
    assert events.paths_of(r) == (f"{tmp_path}/a", f"{tmp_path}/b")
    assert r[events.RET] == 0
    assert r[events.SIZE] % 8 == 0 and r[events.SIZE] > events.FIXED

    assert longp[events.FLAGS] & _uapi.SAGA_EVF_PATH_TRUNC
    assert longp[events.PATH_LEN0] == _uapi.SAGA_PATH_MAX - 1
    assert events.paths_of(longp)[0] == ("/nonexistent/" + "x" * 300)[:255]
    assert longp[events.RET] == -errno.ENAMETOOLONG or longp[events.RET] == -errno.ENOENT

    assert bad[events.FLAGS] & _uapi.SAGA_EVF_PATH_FAULT
    assert not bad[events.PATHS] and bad[events.RET] == -errno.EFAULT
    assert drv.stats().path_faults >= 1


def test_record_bytes_are_padded_with_zeros(drv, workload, tmp_path):
    w = workload("paths", tmp_path)
    only(drv, w.pid, "renameat")
    w.go(drv)
    data = b""
    for _ in range(100):
        chunk = drv.read_raw(1 << 24, 0)
        if not chunk:
            break
        data += chunk
    off = 0
    found = 0
    while off < len(data):
        size = int.from_bytes(data[off:off + 2], "little")
        pid = int.from_bytes(data[off + 16:off + 20], "little")
        if pid == w.pid:
            found += 1
            rec = data[off:off + size]
            l0, l1 = events.parse(rec)[0][events.PATH_LEN0:events.PATH_LEN1 + 1]
            tail = rec[events.FIXED + l0 + 1 + l1 + 1:]
            assert tail == bytes(len(tail))
            assert rec[124:128] == bytes(4)  # __pad
        off += size
    assert found == 1


def test_compat_int80(drv, workload):
    w = workload("compat", 25)
    drv.replace_rules([parse(f"log getppid pid={w.pid}"), parse(f"count all pid={w.pid}"), parse("ignore all")])
    before = drv.stats().per_slot.get(GETPPID, (0, 0))
    w.go(drv)
    recs = records(drv, pid=w.pid)
    assert len(recs) == 25
    for r in recs:
        assert r[events.NR] == GETPPID  # mapped to the native slot of the same name
        assert r[events.ORIG_NR] == 64  # the ia32 number
        assert r[events.FLAGS] & _uapi.SAGA_EVF_COMPAT
        assert r[events.RET] == os.getpid()
    assert drv.stats().per_slot[GETPPID][0] - before[0] == 25


def test_noreturn_exit_group(drv, workload):
    w = workload("getppid", 0)
    only(drv, w.pid, "exit_group")
    before = drv.stats().per_slot.get(EXIT_GROUP, (0, 0))[0]
    w.go(drv)
    (r,) = records(drv, pid=w.pid)
    assert r[events.NR] == EXIT_GROUP and r[events.FLAGS] == _uapi.SAGA_EVF_NORETURN
    assert r[events.ARG0] == 0 and r[events.DURATION] == 0
    assert drv.stats().per_slot[EXIT_GROUP][0] - before >= 1
