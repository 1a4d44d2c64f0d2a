"""Per-syscall counters: exact counts, errors, reset, pause, compat, /proc/saga/stats."""
from kernelutil import SLOT, calls, only, proc, slot_calls

N = 20000
MARGIN = 5  # other processes in the VM may call getppid now and then


def test_getppid_counted_exactly_with_count_rule(saga):
    only(saga, "count getppid")
    before, _ = slot_calls(saga, "getppid")
    calls("getppid", N)
    after, errors = slot_calls(saga, "getppid")
    assert N <= after - before <= N + MARGIN
    assert errors == 0


def test_getppid_counted_exactly_when_logged(saga):
    before, _ = slot_calls(saga, "getppid")
    calls("getppid", N)  # default action log: records may drop, counts may not
    after, _ = slot_calls(saga, "getppid")
    assert N <= after - before <= N + MARGIN


def test_failing_openat_counts_errors(saga):
    only(saga, "count openat comm=calls", "ignore all")   # other tasks' failing opens are not ours to count
    c0, e0 = slot_calls(saga, "openat")
    calls("fail", 500)
    c1, e1 = slot_calls(saga, "openat")
    assert 500 <= e1 - e0 <= 500 + MARGIN
    assert 500 <= c1 - c0 <= 500 + 50  # the loader opens libraries


def test_totals_are_the_sum_of_the_slots(saga):
    only(saga, "count all")
    calls("getppid", 100)
    s = saga.stats()
    # counters move while we read; totals are summed in the same call, slots right after
    assert abs(s.calls - sum(c for c, _ in s.per_slot.values())) < 200
    assert s.errors <= s.calls


def test_reset_zeroes_counters(saga):
    only(saga, "count all")
    calls("getppid", 1000)
    assert slot_calls(saga, "getppid")[0] >= 1000
    before = saga.stats().reset_ns
    saga.reset_stats()
    s = saga.stats()
    assert s.per_slot.get(SLOT["getppid"], (0, 0))[0] <= MARGIN
    assert s.reset_ns > before
    assert s.events == s.drops == s.read == 0 or s.calls < 1000


def test_paused_capture_counts_nothing(saga):
    only(saga, "count getppid")
    saga.set_enabled(False)
    assert not saga.info().enabled
    c0, _ = slot_calls(saga, "getppid")
    calls("getppid", 1000)
    assert slot_calls(saga, "getppid")[0] == c0
    saga.set_enabled(True)
    calls("getppid", 1000)
    assert slot_calls(saga, "getppid")[0] >= c0 + 1000


def test_ignore_counts_nothing(saga):
    only(saga, "ignore getppid")
    calls("getppid", 1000)
    assert slot_calls(saga, "getppid")[0] <= MARGIN


def test_ia32_getppid_counts_in_the_native_slot(saga):
    only(saga, "count getppid")
    c0, _ = slot_calls(saga, "getppid")
    calls("int80", 300)
    assert 300 <= slot_calls(saga, "getppid")[0] - c0 <= 300 + MARGIN


def test_proc_stats_format(saga):
    only(saga, "count all")
    calls("getppid", 777)
    calls("fail", 3)
    lines = proc("stats").splitlines()
    assert lines[0] == "syscall calls errors"
    rows = {}
    for line in lines[1:]:
        name, c, e = line.split()
        rows[name] = (int(c), int(e))
        assert int(c) > 0 or int(e) > 0
    assert 777 <= rows["getppid"][0] <= 777 + MARGIN
    assert rows["openat"][1] >= 3
    assert "read" in rows


def test_proc_status_keys(saga):
    from kernelutil import status
    st = status()
    for key in ("version", "abi_version", "enabled", "locked", "rules", "default_action", "cpus", "ring_bytes",
                "ring_used", "entries", "entries_used", "readers", "calls", "errors", "events", "drops", "read",
                "no_enter", "path_faults", "reset_ns", "aux_faults", "tree_tasks", "tree_used", "tree_drops"):
        assert key in st, key
    assert st["enabled"] == "1" and st["locked"] == "0" and st["default_action"] == "log"
    assert int(st["readers"]) >= 1  # this test holds /dev/saga open
