"""Robustness: random ioctls, unload/reload under load."""
import os
import time

from kernelutil import Module, _uapi, calls, spawn


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
