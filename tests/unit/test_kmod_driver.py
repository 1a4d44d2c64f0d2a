"""Rules in their kernel form (struct saga_rule), and KmodDriver's explanations without a kernel
(tests/kernel runs the rest in VMs)."""
import os

from saga import _uapi
from saga.drivers import kmod
from saga.rules import exe, parse
from saga.rules.abi import pack_rule, unpack_rule
from saga.rules.model import same_rule


def test_rule_round_trips_through_the_kernel_struct():
    for text in ("count read,write comm=nginx key=nginx-io", "log openat errors", "ignore all pid=1 uid=0",
                 "7: log execve comm='my prog'", "3: ignore all exe=/bin/sh tree"):
        r = parse(text)
        raw = pack_rule(r)
        assert len(raw) == _uapi.SAGA_RULE.size
        back = unpack_rule(raw)
        assert back.slots == r.slots and same_rule(back, r.with_id(r.id or 0))
        assert (back.action, back.pid, back.uid, back.comm, back.errors, back.key, back.id, back.tree) == \
            (r.action, r.pid, r.uid, r.comm, r.errors, r.key, r.id or 0, r.tree)


def test_rule_struct_fields():
    f = _uapi.SAGA_RULE.unpack(pack_rule(parse("5: ignore getppid comm=calls errors")))
    assert (f["id"], f["action"], f["pid"], f["uid"], f["__pad"]) == (5, _uapi.SAGA_ACT_IGNORE, 0, 0, 0)
    assert f["match"] == _uapi.SAGA_MATCH_COMM | _uapi.SAGA_MATCH_ERRORS
    assert f["comm"] == b"calls".ljust(16, b"\0") and f["key"] == bytes(32)
    words = f["syscalls"]
    assert words[110 // 64] == 1 << (110 % 64) and sum(bin(w).count("1") for w in words) == 1


def test_exe_is_the_files_identity_with_the_device_in_the_kernels_encoding():
    st = os.stat("/bin/sh")
    f = _uapi.SAGA_RULE.unpack(pack_rule(parse("1: ignore all exe=/bin/sh")))
    assert f["match"] == _uapi.SAGA_MATCH_EXE and f["exe_ino"] == st.st_ino
    # ext4 and the like: the mount's device is stat's; the kernel keeps it as major << 20 | minor
    assert f["exe_dev"] == os.major(st.st_dev) << 20 | os.minor(st.st_dev)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    assert exe.format_identity(f["exe_dev"], f["exe_ino"]) == f"@{major}:{minor}:{st.st_ino}"


def test_why_unavailable_names_the_fix():
    msg = kmod.why_unavailable()
    assert "saga driver load" in msg or "cannot load modules" in msg or "eBPF" in msg or "udev" in msg


def test_stats_reads_every_struct_by_its_names(monkeypatch):
    """STATS_GET as the module answers it (counters written through counters_ptr), read back by name."""
    import ctypes
    counters = {3: (5, 2), _uapi.SAGA_NR_SLOTS - 1: (7, 0)}
    totals = {name: i + 11 for i, name in enumerate(_uapi.SAGA_STATS.names)
              if name not in ("nr_slots", "__pad", "counters_ptr")}

    def ioctl(fd, request, arg, mutate=False):
        assert request == _uapi.SAGA_IOC_STATS_GET and mutate
        asked = _uapi.SAGA_STATS.unpack(arg)
        for slot, (calls, errors) in counters.items():
            one = _uapi.SAGA_COUNTER.pack(calls=calls, errors=errors)
            ctypes.memmove(asked["counters_ptr"] + slot * len(one), bytes(one), len(one))
        arg[:] = _uapi.SAGA_STATS.pack(**{**asked, **totals})
        return 0

    monkeypatch.setattr(kmod.fcntl, "ioctl", ioctl)
    fd = os.open(os.devnull, os.O_RDONLY)
    drv = kmod.KmodDriver(fd)
    try:
        st = drv.stats()
    finally:
        drv.close()
    assert st.per_slot == counters
    assert {name: getattr(st, name) for name in totals} == totals
