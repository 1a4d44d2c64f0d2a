"""Event rings: exact drop accounting, blocking reads, poll/epoll wake-ups."""
import os
import select
import threading
import time

from kernelutil import calls, drain, only, spawn

from saga import _uapi, events


def test_tiny_ring_burst_without_reader_accounts_every_call(module):
    module.load(ring_size=4096)
    with module.driver() as drv:
        assert drv.info().ring_bytes == 4096
        only(drv, "log getppid comm=calls", "ignore all")
        drain(drv)
        drv.reset_stats()
        calls("getppid", 5000)
        recs = [e for e in drain(drv) if e.comm == "calls"]
        s = drv.stats()
        assert s.drops > 0
        assert len(recs) + s.drops == 5000
        assert s.events == len(recs) == s.read


def test_ring_size_parameter_rounds_up(module):
    module.load(ring_size=5000)
    with module.driver() as drv:
        assert drv.info().ring_bytes == 8192
        with open("/sys/module/saga/parameters/ring_size") as f:
            assert f.read().strip() == "8192"


def test_blocking_read_returns_a_lone_event(saga):
    only(saga, "log getppid comm=calls", "ignore all")
    drain(saga)
    fd = os.open("/dev/saga", os.O_RDONLY)  # blocking
    try:
        timer = threading.Timer(0.5, calls, ("getppid", 1))
        timer.start()
        buf = os.read(fd, 65536)  # blocks until the periodic check or the mark wakes us
        timer.join()
        recs = events.parse(buf)
        assert len(recs) == 1 and recs[0][events.NR] == 110
    finally:
        os.close(fd)


def test_poll_wakes_for_a_lone_event(saga):
    only(saga, "log getppid comm=calls", "ignore all")
    drain(saga)
    p = select.poll()
    p.register(saga.fileno(), select.POLLIN)
    assert p.poll(0) == []
    calls("getppid", 1)
    ready = p.poll(10_000)  # a bound so a lost wake-up fails instead of hanging
    assert ready == [(saga.fileno(), select.POLLIN)]
    assert len(drain(saga)) == 1


def test_epoll_wakes_a_sleeping_waiter(saga):
    only(saga, "log getppid comm=calls", "ignore all")
    drain(saga)
    ep = select.epoll()
    ep.register(saga.fileno(), select.EPOLLIN)
    try:
        assert ep.poll(0) == []
        timer = threading.Timer(0.3, calls, ("getppid", 3))
        timer.start()
        ready = ep.poll(10)
        timer.join()
        assert ready and ready[0][1] & select.EPOLLIN
        time.sleep(0.05)
        assert len([e for e in drain(saga) if e.comm == "calls"]) == 3
    finally:
        ep.close()


def test_many_events_cross_the_mark_and_wake_at_once(module):
    module.load(ring_size=65536)
    with module.driver() as drv:
        only(drv, "log getppid comm=calls", "ignore all")
        drain(drv)
        p = select.poll()
        p.register(drv.fileno(), select.POLLIN)
        proc = spawn("getppid", 200)  # 200 * 128 bytes: past a quarter of the ring
        ready = p.poll(10_000)
        proc.wait()
        assert ready
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 200 and time.monotonic() < deadline:
            got += [e for e in drain(drv) if e.comm == "calls"]
        assert len(got) == 200 and drv.stats().drops == 0


def test_reader_keeps_up_without_drops(saga):
    only(saga, "log getppid comm=calls", "ignore all")
    drain(saga)
    saga.reset_stats()
    got = 0
    proc = spawn("getppid", 50000)
    while proc.poll() is None or got < 50000:
        buf = saga.read_raw(1 << 20, timeout=0.5)
        if not buf and proc.poll() is not None:
            break
        got += sum(1 for r in events.parse(buf) if r[events.COMM].startswith(b"calls\0"))
    s = saga.stats()
    assert got + s.drops == 50000
    assert got == s.read


def test_record_sizes_are_multiples_of_eight(saga):
    calls("open", "/etc/hostname")
    for e in events.parse(saga.read_raw()):
        assert e[events.SIZE] % 8 == 0 and e[events.SIZE] >= _uapi.SAGA_EVENT.size
