"""Readers cannot stall or starve the daemon: per-user limits, nothing rendered at open, killed readers go."""
from __future__ import annotations

import os
import signal
import subprocess
import textwrap

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
    """While a reader works through a big window, new events keep being drained (the reads yield)."""
    m = mount(feed=False, window_events=400_000)
    for _ in range(500):
        m.driver.feed(recording)
    m.wait_drained(500 * len(raws))
    before = m.drained()
    fd = os.open(m.path("log"), os.O_RDONLY)
    seen_during = []
    try:
        while True:
            if len(seen_during) == 3:
                m.driver.feed(recording)
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            seen_during.append(m.drained())
    finally:
        os.close(fd)
    assert max(seen_during) == before + len(raws), "events fed while the log was read were drained meanwhile"
