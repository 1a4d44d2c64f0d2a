"""Records: fields of a known openat, paths, compat, NO_ENTER, NORETURN, readers excluded."""
import os
import subprocess
import time

from kernelutil import CALLS, NOBODY, SLOT, calls, drain, only, spawn, status

from saga import _uapi

AT_FDCWD = 0xFFFFFF9C  # -100 as the int the workload passes (upper register half undefined)
O_RDONLY_CLOEXEC = os.O_RDONLY | os.O_CLOEXEC


def mine(evs, pid, nr=None):
    return [e for e in evs if e.pid == pid and (nr is None or e.nr == nr)]


def test_openat_record_fields(saga, tmp_path):
    path = str(tmp_path / "known-file")
    with open(path, "w") as f:
        f.write("x")
    drain(saga)
    t0 = time.time_ns()
    pid, tid, fd = map(int, calls("open", path).split())
    t1 = time.time_ns()
    recs = [e for e in mine(drain(saga), pid, SLOT["openat"]) if e.paths == (path,)]
    assert len(recs) == 1
    e = recs[0]
    assert (e.tid, e.ppid, e.comm, e.uid, e.gid) == (tid, os.getpid(), "calls", 0, 0)
    assert e.nr == e.orig_nr == SLOT["openat"]
    assert e.args[0] & 0xFFFFFFFF == AT_FDCWD and e.args[2] == O_RDONLY_CLOEXEC
    assert e.ret == fd >= 3
    assert e.flags == 0
    assert t0 <= e.ts_ns <= t1
    assert 0 < e.duration_ns < t1 - t0
    assert 0 <= e.cpu < os.cpu_count()


def test_failed_openat_record_and_uid(saga):
    drain(saga)
    out = calls("open", "/nonexistent/dir/file", user=NOBODY)
    pid, _, ret = map(int, out.split())
    assert ret == -1
    recs = [e for e in mine(drain(saga), pid, SLOT["openat"]) if e.paths == ("/nonexistent/dir/file",)]
    assert len(recs) == 1
    assert recs[0].ret == -2  # -ENOENT
    assert (recs[0].uid, recs[0].gid) == (NOBODY, NOBODY)


def test_path_of_255_bytes_is_kept_whole(saga):
    drain(saga)
    proc = subprocess.run([CALLS, "path", "255"], capture_output=True, text=True, check=True)
    path = proc.stdout.strip()
    recs = [e for e in drain(saga) if e.comm == "calls" and e.nr == SLOT["openat"] and e.paths and
            e.paths[0].startswith("/bcdefgh/")]
    assert len(recs) == 1
    assert recs[0].paths == (path,)
    assert not recs[0].flags & _uapi.SAGA_EVF_PATH_TRUNC


def test_long_path_is_cut_and_flagged(saga):
    drain(saga)
    path = calls("path", 300).strip()
    recs = [e for e in drain(saga) if e.comm == "calls" and e.nr == SLOT["openat"] and e.paths and
            e.paths[0].startswith("/bcdefgh/")]
    assert len(recs) == 1
    assert recs[0].paths == (path[:255],)
    assert recs[0].flags & _uapi.SAGA_EVF_PATH_TRUNC


def test_unreadable_path_is_flagged_not_faulted_in(saga):
    only(saga, "log openat comm=calls", "ignore all")
    drain(saga)
    f0 = saga.stats().path_faults
    calls("fault")
    recs = [e for e in drain(saga) if e.flags & _uapi.SAGA_EVF_PATH_FAULT]
    assert len(recs) == 1
    assert recs[0].paths == () and recs[0].ret == -2  # the kernel itself read "" (ENOENT)
    assert saga.stats().path_faults == f0 + 1


def test_ia32_call_maps_to_native_slot_and_is_flagged(saga):
    only(saga, "log getppid comm=calls", "ignore all")
    drain(saga)
    calls("int80", 3)
    recs = [e for e in drain(saga) if e.comm == "calls"]
    assert len(recs) == 3
    for e in recs:
        assert e.nr == SLOT["getppid"] and e.orig_nr == 64
        assert e.flags & _uapi.SAGA_EVF_COMPAT
        assert e.ret == os.getpid()  # getppid of the workload is us


def test_a_fork_counts_once_and_its_child_side_is_not_logged(saga):
    only(saga, "log clone,fork,vfork,clone3 comm=calls", "count all")
    drain(saga)
    n0 = saga.stats().no_enter
    child = int(calls("fork"))
    recs = [e for e in drain(saga) if e.nr == SLOT["clone"] and child in (e.pid, e.ret)]
    assert [(e.ret, e.flags) for e in recs] == [(child, 0)]   # the parent's, with the child's pid
    assert saga.stats().no_enter == n0


def test_the_recorded_workload_is_what_the_module_captures(saga, tmp_path):
    """tools/gen_fixture.py in the VM: each call it records (argv, socket addresses, clone3's arguments,
    the empty and the NULL path, cgroup, ...) was captured alike, with the rule that logged it."""
    import recorded
    from ruleids import numbered

    from saga import events

    saga.replace_rules(numbered(recorded.rules()))
    drain(saga)
    drops = saga.stats().drops
    want = recorded.run(tmp_path / "live.saga.gz")
    got = [r for _ in range(64) if (buf := saga.read_raw(1 << 24, timeout=0)) for r in events.parse(buf)]
    assert saga.stats().drops == drops
    assert recorded.compare(want, got) == len(want) > 300
    assert {events.aux_kind(r) for r in want} == {0, _uapi.SAGA_AUX_ARGV, _uapi.SAGA_AUX_SOCKADDR,
                                                  _uapi.SAGA_AUX_CLONE_ARGS}


def test_exit_group_logged_at_entry(saga):
    drain(saga)
    p = subprocess.run([CALLS, "exit", "7"])
    assert p.returncode == 7
    recs = [e for e in drain(saga) if e.comm == "calls" and e.nr == SLOT["exit_group"]]
    assert len(recs) == 1
    assert recs[0].flags & _uapi.SAGA_EVF_NORETURN and recs[0].args[0] == 7


def test_rt_sigreturn_counted_and_logged_at_entry(saga):
    only(saga, "log rt_sigreturn comm=calls", "count all")
    drain(saga)
    c0 = saga.stats().per_slot.get(SLOT["rt_sigreturn"], (0, 0))[0]
    u0 = saga.stats().per_slot.get(_uapi.SAGA_NR_UNKNOWN, (0, 0))[0]
    calls("signal", 20)
    recs = [e for e in drain(saga) if e.comm == "calls" and e.nr == SLOT["rt_sigreturn"]]
    assert len(recs) == 20 and all(e.flags & _uapi.SAGA_EVF_NORETURN for e in recs)
    s = saga.stats()
    assert 20 <= s.per_slot[SLOT["rt_sigreturn"]][0] - c0 <= 25
    # the exit after sigreturn reads syscall number -1: not counted as `unknown`
    assert s.per_slot.get(_uapi.SAGA_NR_UNKNOWN, (0, 0))[0] == u0


def test_call_in_flight_at_load_has_no_entry(module):
    sleeper = spawn("sleep", 3000)
    time.sleep(1.0)  # it is inside nanosleep now
    module.load()
    with module.driver() as drv:
        sleeper.wait()
        recs = mine(drain(drv), sleeper.pid, SLOT["nanosleep"])
        assert len(recs) == 1 and recs[0].flags & _uapi.SAGA_EVF_NO_ENTER and recs[0].ret == 0


def test_full_entry_table_means_no_enter(module):
    module.load(entries=64)
    with module.driver() as drv:
        only(drv, "log nanosleep comm=calls", "ignore all")
        drain(drv)
        calls("block", 100, 4000)  # 100 tasks in nanosleep at once, 64 entries
        recs = [e for e in drain(drv) if e.nr == SLOT["nanosleep"]]
        no_enter = [e for e in recs if e.flags & _uapi.SAGA_EVF_NO_ENTER]
        assert len(recs) == 100
        assert len(no_enter) >= 100 - 64
        assert drv.stats().no_enter >= len(no_enter)


def test_readers_are_not_logged_but_counted(saga):
    only(saga, "log getppid")
    drain(saga)
    c0 = saga.stats().per_slot.get(SLOT["getppid"], (0, 0))[0]
    for _ in range(50):
        os.getppid()
    assert not [e for e in drain(saga) if e.pid == os.getpid()]
    assert saga.stats().per_slot[SLOT["getppid"]][0] >= c0 + 50
    assert int(status()["readers"]) >= 1


def test_records_are_whole_and_step_by_size(saga):
    calls("getppid", 10)
    calls("open", "/etc/hostname")
    buf = saga.read_raw(1 << 20)
    off = 0
    while off < len(buf):
        size = int.from_bytes(buf[off:off + 2], "little")
        assert size >= _uapi.SAGA_EVENT.size and size % 8 == 0
        off += size
    assert off == len(buf)
