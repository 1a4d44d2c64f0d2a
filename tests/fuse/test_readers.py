"""Readers cannot stall or starve the daemon: per-user limits, nothing rendered at open, killed readers go."""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import textwrap
import weakref

from fuse_helpers import text_of
from waiting import wait_for

NOBODY, NOGROUP = 65534, 65534

HOLDER = textwrap.dedent("""
    import os, sys, time
    opened, err = [], ""
    for i in range(int(sys.argv[2])):
        try:
            opened.append(os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK))
        except OSError as exc:
            err = exc.strerror
            break
    print(len(opened), err, flush=True)
    sys.stdin.read()          # hold them until told
""")


def hold(path: str, n: int, user: int = NOBODY) -> tuple[subprocess.Popen, int, str]:
    """A process of `user` opening `path` up to n times and holding what it got; (it, opened, error)."""
    p = subprocess.Popen(["/usr/bin/python3", "-c", HOLDER, path, str(n)], user=user, group=NOGROUP, extra_groups=[],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    count, _, err = p.stdout.readline().strip().partition(" ")
    return p, int(count), err


def release(p: subprocess.Popen) -> None:
    p.communicate("", timeout=30)


def test_a_group_member_cannot_take_every_open_and_root_still_reads(mount, raws):
    m = mount(group="nogroup")
    m.wait_drained(len(raws))
    fs_limit = m.config.sagafs.max_opens_per_user
    logs, n_logs, err = hold(m.path("log"), fs_limit + 5)
    assert (n_logs, err) == (fs_limit, "Too many open files")
    pipes, n_pipes, err = hold(m.path("pipe"), 5)              # the limit counts log and pipe files together
    assert (n_pipes, err) == (0, "Too many open files")
    try:
        assert m.read("log") == text_of(raws)                 # root is not limited
        fd = os.open(m.path("pipe"), os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
    finally:
        release(logs)
        release(pipes)
    wait_for(lambda: not m.state.sagafs.opens_by_uid, what="the opens to be released")
    again, n, _ = hold(m.path("log"), 1)
    assert n == 1
    release(again)


def test_pipes_of_users_leave_root_its_reserve(mount):
    from saga.sagafs.ops import MAX_PIPE_READERS, ROOT_PIPE_READERS
    m = mount(group="nogroup", max_opens_per_user=MAX_PIPE_READERS)
    holders = []
    try:
        p, n, err = hold(m.path("pipe"), MAX_PIPE_READERS)
        holders.append(p)
        assert (n, err) == (MAX_PIPE_READERS - ROOT_PIPE_READERS, "Device or resource busy")
        fds = [os.open(m.path("pipe"), os.O_RDONLY | os.O_NONBLOCK) for _ in range(ROOT_PIPE_READERS)]
        for fd in fds:
            os.close(fd)
    finally:
        for p in holders:
            release(p)


def test_opening_the_log_renders_nothing_and_reading_renders_what_is_read(mount, recording, raws):
    m = mount(feed=False, window_events=100_000)
    for _ in range(40):
        m.driver.feed(recording)
    m.wait_drained(40 * len(raws))
    window = m.state.window
    fd = os.open(m.path("log"), os.O_RDONLY)
    try:
        assert sum(c.rendered_events for c in window.chunks) == 0
        first = os.read(fd, 4096)
        assert first == text_of(raws)[:4096]
        rendered = sum(c.rendered_events for c in window.chunks)
        assert 0 < rendered <= window.chunk_events            # one part, not the window
    finally:
        os.close(fd)


def test_a_killed_reader_goes_and_its_open_is_released(mount, recording, raws):
    m = mount(feed=False, window_events=400_000)
    for _ in range(800):
        m.driver.feed(recording)
    m.wait_drained(800 * len(raws))
    reader = subprocess.Popen(["cat", m.path("log")], stdout=subprocess.DEVNULL)
    fs = m.state.sagafs
    wait_for(lambda: fs.opens_by_uid.get(0, 0) == 1, what="the reader's open")
    reader.send_signal(signal.SIGKILL)
    assert reader.wait(timeout=30) == -signal.SIGKILL
    wait_for(lambda: not fs.opens_by_uid, what="the killed reader's open to be released")


def test_reading_a_log_file_does_not_hold_up_the_drain(mount, recording, raws):
    """While a reader is part way through a big window, new events are drained (an open file holds nothing
    up); the reader still gets the file as it was at its open."""
    m = mount(feed=False, window_events=400_000)
    for _ in range(500):
        m.driver.feed(recording)
    m.wait_drained(500 * len(raws))
    before = m.drained()
    fd = os.open(m.path("log"), os.O_RDONLY)
    got = 0
    try:
        for _ in range(3):
            got += len(os.read(fd, 1 << 20))
        m.driver.feed(recording)
        wait_for(lambda: m.drained() == before + len(raws), what="the events fed mid-read to be drained")
        while chunk := os.read(fd, 1 << 20):
            got += len(chunk)
    finally:
        os.close(fd)
    assert got == 500 * len(text_of(raws))


def test_an_open_log_keeps_a_few_parts_and_gives_everything_back_at_close(mount, recording, raws):
    """A snapshot references the window's chunks (nothing copied) and keeps at most a few rendered parts;
    chunks that left the window while it was open are freed when it closes."""
    from saga.daemon.window import Snapshot
    from saga.sagafs.ops import OpenFile
    m = mount(feed=False, window_events=8192)     # two chunks of 4,096
    for _ in range(20):
        m.driver.feed(recording)
    m.wait_drained(20 * len(raws))
    fd = os.open(m.path("log"), os.O_RDONLY)
    try:
        got = len(os.read(fd, 4096))
        opened = [h.content for h in list(m.state.sagafs.handles.values())
                  if isinstance(h, OpenFile) and isinstance(h.content, Snapshot)]
        assert len(opened) == 1
        snap = weakref.ref(opened[0])
        chunks = [weakref.ref(c) for c, _ in opened[0].parts]
        del opened
        for _ in range(40):                                  # the window moves past everything it holds
            m.driver.feed(recording)
        m.wait_drained(60 * len(raws))
        assert all(r() is not None for r in chunks)          # the open file still reads them
        while chunk := os.read(fd, 1 << 20):
            got += len(chunk)
            assert len(snap()._texts) <= Snapshot.KEEP_PARTS
    finally:
        os.close(fd)
    wait_for(lambda: gc.collect() >= 0 and snap() is None and all(r() is None for r in chunks),
             what="the snapshot and its chunks to be freed at close")
    assert got > 4096
