"""Robustness: random ioctls, unload/reload under load, rule swaps under load."""
import fcntl
import os
import subprocess
import time

from kernelutil import CALLS, NOBODY, SLOT, TCG_PATIENCE, Module, calls, only, slot_calls, spawn
from ruleids import numbered

from saga import _uapi, events
from saga.rules.abi import pack_rule


def test_100000_random_ioctls(saga):
    out = calls("fuzz", 100000, 1)  # the workload opens /dev/saga itself, as root
    counts = dict(kv.split("=") for kv in out.split())
    assert sum(map(int, counts.values())) == 100000
    assert int(counts["enotty"]) > 0 and int(counts["einval"]) > 0
    assert saga.info().abi_version == _uapi.SAGA_ABI_VERSION  # still answers


def test_fuzz_unprivileged_on_inherited_fd(saga):
    # An unprivileged process holding an fd root opened.
    import random

    from kernelutil import NOBODY, as_user, ioctl_errno

    fd = saga.fileno()

    def fuzz():
        rnd = random.Random(4)
        counts = {}
        for _ in range(5000):
            nr = rnd.randrange(12)
            size = rnd.choice((0, 4, 24, 48, 80, 200, rnd.randrange(512)))
            direction = rnd.randrange(4)
            cmd = (direction << 30) | (size << 16) | (_uapi.SAGA_IOC_MAGIC << 8) | nr
            arg = bytearray(rnd.randbytes(max(size, 8)))
            e = ioctl_errno(fd, cmd, arg)
            counts[e] = counts.get(e, 0) + 1
        return counts

    counts = as_user(NOBODY, fuzz)
    assert set(counts) <= {0, 1, 14, 22, 25}  # ok, EPERM, EFAULT, EINVAL, ENOTTY
    assert saga.info().abi_version == _uapi.SAGA_ABI_VERSION


def test_unload_reload_20_times_under_load(module):
    hammers = [spawn("storm", 600) for _ in range(2)]
    try:
        for i in range(20):
            module.load()
            drv = Module.driver()
            drv.read_raw(1 << 16)
            s = drv.stats()
            drv.close()
            assert s.calls > 0, f"round {i}: nothing counted"
            time.sleep(0.05)
            module.unload()
        assert all(h.poll() is None for h in hammers), "a hammer died"
    finally:
        for h in hammers:
            h.kill()
            h.wait()
    assert not os.path.isdir("/sys/module/saga")


# Rule sets the swapper cycles through.  Each decides getppid the same way for
# the hammers (uid nobody: counted, whether logged or not) and ignores it for
# everyone else, so the count is exact whatever set a call meets at entry and
# exit; they differ in everything else: fast path or walk, logging (entry
# state kept at sys_enter, records at sys_exit) or not, and size (a walk of
# 66 rules, a 13 KB set).
def _swap_sets() -> list[list[str]]:
    hammers = f"uid={NOBODY}"
    filler = [f"ignore acct pid={100000 + i} key=filler{i}" for i in range(64)]
    return [
        [f"count getppid {hammers}", "ignore getppid", "count all"],
        [f"log getppid {hammers}", "ignore getppid", "count all"],
        ["ignore getppid uid=0", f"log openat,close {hammers}", "count getppid", "ignore all"],
        [*filler, f"count getppid {hammers}", "ignore getppid", "count all"],
    ]


def _generation(drv) -> int:
    """The rule generation (bumped by every change), from RULE_LIST with no room for rules."""
    layout = _uapi.SAGA_RULE_LIST
    buf = bytearray(layout.size)
    fcntl.ioctl(drv.fileno(), _uapi.SAGA_IOC_RULE_LIST, buf, True)
    return _uapi.SAGA_RULE_LIST_STRUCT.unpack(buf)[layout.names.index("generation")]


def test_rule_swaps_as_fast_as_the_ioctl_allows_while_every_cpu_hammers(saga, tmp_path):
    files = []
    for i, lines in enumerate(_swap_sets()):
        path = tmp_path / f"set{i}"
        path.write_bytes(b"".join(pack_rule(r) for r in numbered(lines)))     # ids: the caller's (ABI 2)
        files.append(str(path))
    only(saga, "ignore all")
    while saga.read_raw(1 << 20):
        pass
    saga.reset_stats()      # nothing is counted under "ignore all": the reset is exact
    before = _generation(saga)
    rounds, ncpu = 1000, os.cpu_count()   # thousands of swaps under TCG; more only costs time
    swapper = subprocess.Popen([CALLS, "swap", *files], stdout=subprocess.PIPE, text=True)
    records = []
    try:
        assert swapper.stdout.readline() == "ready\n"
        hammers = [subprocess.Popen([CALLS, "hammer", str(rounds), str(i % ncpu)], user=NOBODY, group=NOBODY)
                   for i in range(2 * ncpu)]
        while any(h.poll() is None for h in hammers):
            records += events.parse(saga.read_raw(1 << 20, timeout=0.2))
        assert [h.returncode for h in hammers] == [0] * len(hammers)
    finally:
        swapper.terminate()
        out, _ = swapper.communicate(timeout=TCG_PATIENCE)
    assert swapper.returncode == 0
    swaps = int(out.split("=")[1])
    only(saga, "ignore all")     # nothing new is logged from here on
    records += events.parse(saga.read_raw(1 << 20))
    while more := saga.read_raw(1 << 20):
        records += events.parse(more)

    assert swaps > 0
    assert _generation(saga) == before + swaps + 1      # every swap took effect, plus the last `only`
    stats = saga.stats()
    assert slot_calls(saga, "getppid")[0] == 2 * ncpu * rounds
    assert stats.read == len(records) == stats.events    # every record written was read, once
    logged = [events.Event.from_raw(r) for r in records]
    assert all(e.uid == NOBODY for e in logged)
    assert {e.nr for e in logged} <= {SLOT["getppid"], SLOT["openat"], SLOT["close"]}
