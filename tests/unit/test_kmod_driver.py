"""Rules in their kernel form (struct saga_rule), and KmodDriver's explanations without a kernel
(tests/kernel runs the rest in VMs)."""
from saga import _uapi
from saga.drivers import kmod
from saga.rules import parse
from saga.rules.abi import pack_rule, unpack_rule


def test_rule_round_trips_through_the_kernel_struct():
    for text in ("count read,write comm=nginx key=nginx-io", "log openat errors", "ignore all pid=1 uid=0",
                 "7: log execve comm='my prog'"):
        r = parse(text)
        raw = pack_rule(r, position=3)
        assert len(raw) == _uapi.SAGA_RULE.size
        back = unpack_rule(raw)
        assert back.slots == r.slots
        assert (back.action, back.pid, back.uid, back.comm, back.errors, back.key, back.id) == \
            (r.action, r.pid, r.uid, r.comm, r.errors, r.key, r.id or 0)


def test_rule_struct_fields():
    f = _uapi.SAGA_RULE_STRUCT.unpack(pack_rule(parse("ignore getppid comm=calls errors")))
    rid, action, match, pid, uid, pos, pad, comm, key = f[:9]
    assert (rid, action, pid, uid, pos, pad) == (0, _uapi.SAGA_ACT_IGNORE, 0, 0, _uapi.SAGA_POS_END, 0)
    assert match == _uapi.SAGA_MATCH_COMM | _uapi.SAGA_MATCH_ERRORS
    assert comm == b"calls".ljust(16, b"\0") and key == bytes(32)
    assert f[9 + 110 // 64] == 1 << (110 % 64) and sum(bin(w).count("1") for w in f[9:]) == 1


def test_why_unavailable_names_the_fix():
    msg = kmod.why_unavailable()
    assert "saga driver load" in msg or "cannot load modules" in msg or "eBPF" in msg or "udev" in msg
