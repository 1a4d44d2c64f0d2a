"""The ring buffer under a high event rate: a reader that keeps up loses nothing.

Drops must only ever mean a full ring.  (A reader that published its
consumer position byte by byte let the kernel see a full ring now and then:
a few drops per million events however empty the ring was.)
"""
from __future__ import annotations

from ebpf_helpers import Drainer, first_args, loaded

from saga.syscalls import BY_NAME

GETPPID = BY_NAME["getppid"].slot
N = 1_000_000
PAUSE_US = 10  # a pause every 64 calls: about the 500,000 calls/s of the target here, not flat out


def test_a_reader_that_keeps_up_loses_nothing(bpffs, workload):
    with loaded(bpffs, "rate", ring_bytes=64 << 20) as d:
        w = workload("seq", N, PAUSE_US)
        drainer = Drainer(d)
        drainer.start()
        before = d.stats()
        try:
            w.release()
            assert w.proc.wait(timeout=120) == 0
        finally:
            chunks = drainer.stop()
        st = d.stats()
        assert st.drops - before.drops == 0
        assert first_args(chunks, w.pid, GETPPID) == list(range(N))
        assert st.read - before.read >= N
