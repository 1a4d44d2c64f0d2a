"""/sagafs/pipe: live events, several readers, losses, O_NONBLOCK, poll, signals, and the end at stop."""
from __future__ import annotations

import errno
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fuse_helpers import blocked_in_read, lines_of, read_lines
from waiting import wait_for

LOST = re.compile(r"^# lost (\d+) events: this reader fell behind the daemon's window$")


def test_each_reader_gets_the_new_events_as_they_arrive(fs, raws, recording):
    a = os.open(fs.path("pipe"), os.O_RDONLY)
    b = os.open(fs.path("pipe"), os.O_RDONLY)
    try:
        fs.driver.feed(recording)               # only what arrives after the open
        want = lines_of(raws)
        assert read_lines(a, len(want)) == want
        assert read_lines(b, len(want)) == want
        fs.driver.feed(recording[:raws[0][0]])  # one more event: a read returns it without waiting for more
        assert read_lines(a, 1) == want[:1]
    finally:
        os.close(a)
        os.close(b)


def test_short_reads_cut_lines_and_the_rest_follows(fs, raws, recording):
    fd = os.open(fs.path("pipe"), os.O_RDONLY)
    try:
        fs.driver.feed(recording)
        want = "".join(x + "\n" for x in lines_of(raws)).encode()
        got = b""
        while len(got) < len(want):
            got += os.read(fd, 37)
        assert got == want
    finally:
        os.close(fd)


def test_nonblocking_reads_and_poll(fs, raws, recording):
    fd = os.open(fs.path("pipe"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(BlockingIOError):
            os.read(fd, 100)
        p = select.poll()
        p.register(fd, select.POLLIN)
        assert p.poll(200) == []
        fs.driver.feed(recording)
        assert p.poll(10_000) == [(fd, select.POLLIN)]
        assert os.read(fd, 1 << 20).decode().splitlines()[0] == lines_of(raws)[0]
    finally:
        os.close(fd)


def test_a_slow_reader_never_holds_the_daemon_up_and_is_told_what_it_lost(mount, raws, recording):
    m = mount(feed=False, window_events=200)
    fd = os.open(m.path("pipe"), os.O_RDONLY)
    try:
        rounds = 20
        for _ in range(rounds):
            m.driver.feed(recording)
        m.wait_drained(rounds * len(raws))     # drained while the reader read nothing
        everything = lines_of(raws) * rounds
        got: list[str] = []
        lost = 0
        while lost + sum(1 for x in got if not LOST.match(x)) < len(everything):
            for line in os.read(fd, 1 << 16).decode().splitlines():
                match = LOST.match(line)
                if match:
                    assert not got, "losses are reported where they happened: before the first line here"
                    lost += int(match.group(1))
                else:
                    got.append(line)
        assert lost > 0
        assert got == everything[lost:]
    finally:
        os.close(fd)


def test_many_readers_and_the_cap(fs):
    from saga.sagafs.ops import MAX_PIPE_READERS
    fds = [os.open(fs.path("pipe"), os.O_RDONLY) for _ in range(MAX_PIPE_READERS)]
    try:
        with pytest.raises(OSError) as err:
            os.open(fs.path("pipe"), os.O_RDONLY)
        assert err.value.errno == errno.EBUSY
    finally:
        for fd in fds:
            os.close(fd)
    os.close(os.open(fs.path("pipe"), os.O_RDONLY))    # released: room again


def _default_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _blocked_reader(cmd: list[str]) -> subprocess.Popen:
    # As from an interactive shell, however pytest itself was started (CI, `&`, setsid): a process
    # group of its own under pytest, never orphaned, so the kernel does not discard a stop signal
    # sent to it; and SIGINT/SIGQUIT at their defaults (a background shell starts jobs ignoring them).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0,
                            preexec_fn=_default_interrupts)
    wait_for(lambda: blocked_in_read(proc.pid) or proc.poll() is not None, what="the reader to block")
    assert proc.poll() is None
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_blocked_reader_dies_of_a_signal(fs, sig):
    cat = _blocked_reader(["cat", fs.path("pipe")])
    cat.send_signal(sig)
    assert cat.wait(timeout=5) == -sig


def test_a_signal_handler_runs_while_a_reader_is_blocked(fs):
    script = textwrap.dedent("""
        import os, signal, sys
        class Interrupted(Exception):
            pass
        def handler(*_):
            raise Interrupted
        signal.signal(signal.SIGUSR1, handler)
        fd = os.open(sys.argv[1], os.O_RDONLY)
        try:
            os.read(fd, 100)
        except Interrupted:
            print("interrupted")
    """)
    reader = _blocked_reader([sys.executable, "-c", script, fs.path("pipe")])
    reader.send_signal(signal.SIGUSR1)
    out, err = reader.communicate(timeout=5)
    assert (reader.returncode, out, err) == (0, "interrupted\n", "")


def test_a_stop_signal_does_not_end_the_read(fs, raws, recording):
    """Ctrl-Z must not turn into EINTR (cat would fail once continued): the read waits for data."""
    cat = _blocked_reader(["cat", fs.path("pipe")])
    cat.send_signal(signal.SIGTSTP)
    wait_for(lambda: blocked_in_read(cat.pid))
    fs.driver.feed(recording)
    wait_for(lambda: Path(f"/proc/{cat.pid}/stat").read_text().split(") ")[1][0] == "T", what="cat to stop")
    cat.send_signal(signal.SIGCONT)
    assert cat.stdout.readline().rstrip("\n") == lines_of(raws)[0]
    cat.send_signal(signal.SIGTERM)
    assert cat.wait(timeout=5) == -signal.SIGTERM


def test_readers_get_the_end_of_the_file_when_the_daemon_stops(mount):
    m = mount(feed=False)
    cat = _blocked_reader(["cat", m.path("pipe")])
    assert m.stop() == 0
    assert cat.wait(timeout=10) == 0 and cat.stdout.read() == "", cat.stderr.read()
    assert not m.mounted
