"""Record content: identity, arguments, paths, return values, durations, compat."""
from __future__ import annotations

import errno
import os
import time

import recorded
from ebpf_helpers import drain, records
from ruleids import numbered

from saga import _uapi, events, syscalls
from saga.rules import parse

GETPPID, CLOSE, OPENAT, RENAMEAT, EXIT_GROUP = (syscalls.BY_NAME[n].slot for n in
                                                ("getppid", "close", "openat", "renameat", "exit_group"))
FORKS = syscalls.FORK_SLOTS
AT_FDCWD = -100


def only(drv, pid: int, syscalls: str) -> None:
    drv.replace_rules(numbered([parse(f"log {syscalls} pid={pid}"), parse("ignore all")]))


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
    assert created[events.PATH_LEN0] == len(f"{tmp_path}/a") + 1 and created[events.PATH_LEN1] == 0  # its NUL

    r = renames[0]
    assert events.paths_of(r) == (f"{tmp_path}/a", f"{tmp_path}/b")
    assert r[events.RET] == 0
    assert r[events.SIZE] % 8 == 0 and r[events.SIZE] > events.FIXED

    assert longp[events.FLAGS] & _uapi.SAGA_EVF_PATH_TRUNC
    assert longp[events.PATH_LEN0] == _uapi.SAGA_PATH_MAX
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
        (raw,) = events.parse(data[off:off + size])
        if raw[events.PID] == w.pid:
            found += 1
            tail = data[off + events.FIXED + raw[events.PATH_LEN0] + raw[events.PATH_LEN1]:off + size]
            assert tail == bytes(len(tail)) and raw[events.AUX_LEN] == 0
        off += size
    assert found == 1


def test_compat_int80(drv, workload):
    w = workload("compat", 25)
    drv.replace_rules(numbered([f"log getppid pid={w.pid}", f"count all pid={w.pid}", "ignore all"]))
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


def test_the_recorded_workload_is_what_the_driver_captures(drv, tmp_path):
    """tools/gen_fixture.py under the driver: each call it records (argv, socket addresses, clone3's
    arguments, the empty and the NULL path, cgroup, ...) was captured alike, with the rule that logged it."""
    drv.replace_rules(numbered(recorded.rules()))
    drain(drv)
    drops = drv.stats().drops
    want = recorded.run(tmp_path / "live.saga.gz")
    got = [r for _ in range(64) if (buf := drv.read_raw(1 << 24, 0)) for r in events.parse(buf)]
    assert drv.stats().drops == drops
    assert recorded.compare(want, got) == len(want) > 300
    kinds = {events.aux_kind(r) for r in want}
    assert kinds == {0, _uapi.SAGA_AUX_ARGV, _uapi.SAGA_AUX_SOCKADDR, _uapi.SAGA_AUX_CLONE_ARGS}


def test_a_fork_counts_once_and_its_child_side_is_not_logged(drv, workload):
    w = workload("fork", 5)
    drv.replace_rules(numbered([f"log clone,fork,vfork,clone3 pid={w.pid} tree", "count clone,fork,vfork,clone3",
                                "ignore all"]))
    before = sum(drv.stats().per_slot.get(s, (0, 0))[0] for s in FORKS)
    w.go(drv)
    recs = [r for r in records(drv) if r[events.NR] in FORKS and w.pid in (r[events.PID], r[events.PPID])]
    assert len(recs) == 5 and all(r[events.PID] == w.pid and r[events.RET] > 0 for r in recs)
    assert sum(drv.stats().per_slot.get(s, (0, 0))[0] for s in FORKS) - before >= 5
    assert not [r for r in recs if r[events.RET] == 0]


def test_cgroup_id_is_the_tasks_cgroup2_directory(drv, workload):
    w = workload("getppid", 3)
    only(drv, w.pid, "getppid")
    w.go(drv)
    with open("/proc/self/cgroup") as f:
        path = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
    with open("/proc/self/mounts") as f:
        mount = next(line.split()[1] for line in f if line.split()[2] == "cgroup2")
    assert {r[events.CGROUP_ID] for r in records(drv, pid=w.pid)} == {os.stat(mount + path).st_ino}


def test_argv_ending_before_an_unreadable_page_is_read_whole(drv, workload):
    """execve's argv array (3 pointers and the NULL) ends where a PROT_NONE page begins: a driver
    that reads pointers ahead of the NULL (the eBPF driver reads the first 8 at once) must not report a fault."""
    w = workload("argv-edge")
    only(drv, w.pid, "execve")
    faults = drv.stats().aux_faults
    w.go(drv)
    (r,) = records(drv, pid=w.pid)
    assert events.argv_of(r) == [b"edge", b"of", b"the page"]
    assert r[events.FLAGS] & (_uapi.SAGA_EVF_AUX_FAULT | _uapi.SAGA_EVF_AUX_TRUNC) == 0
    assert r[events.RET] == -errno.ENOENT
    assert drv.stats().aux_faults == faults


def test_argv_strings_close_together_read_alike_whatever_their_layout(drv, workload):
    """execve's strings packed (read with one window read, the path among them), partly beyond the
    window, far apart, packed before an unreadable page (the window read faults) and longer than the
    blob keeps: the path and the blob (whole strings within the bounds) are what one read per string
    gives, every time."""
    w = workload("argv-window")
    only(drv, w.pid, "execve")
    faults = drv.stats().aux_faults
    w.go(drv)
    recs = records(drv, pid=w.pid)
    short = [b"one", b"two", b"three", b"", b"five"]
    want = [short, short + [b"L" * 400], [b"one", b"far away", b"three", b"", b"five"],
            [b"ab", b"cd", b"ef", b"gh"], [bytes([ord("a") + i]) * 99 for i in range(5)]]
    assert [events.argv_of(r) for r in recs] == want
    assert [events.path_bytes(r)[0] for r in recs] == \
        [b"/nonexistent/saga-argv-" + k for k in (b"packed", b"long", b"far", b"edge", b"cut")]
    assert [r[events.FLAGS] & (_uapi.SAGA_EVF_AUX_FAULT | _uapi.SAGA_EVF_AUX_TRUNC) for r in recs] == \
        [0, 0, 0, 0, _uapi.SAGA_EVF_AUX_TRUNC]
    assert all(r[events.RET] == -errno.ENOENT for r in recs)
    assert drv.stats().aux_faults == faults
