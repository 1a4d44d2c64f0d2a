"""/sagafs/log through a real mount: exact content, offsets, and the usual tools on a file of size 0."""
from __future__ import annotations

import os
import stat
import subprocess

from fuse_helpers import lines_of, text_of
from waiting import wait_for

from saga.sagafs.table import TABLE


def run(*cmd: str) -> bytes:
    return subprocess.run(cmd, check=True, capture_output=True, timeout=60).stdout


def test_the_tree_is_the_table(fs):
    top = sorted({f.path.split("/")[0] for f in TABLE})
    assert sorted(os.listdir(fs.mnt)) == top
    for f in TABLE:
        if "{" not in f.path:
            st = os.stat(fs.path(f.path))
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == f.mode & 0o700, f.path
            assert (st.st_uid, st.st_gid) == (0, 0)
    for d in ("syscalls", "procs"):
        assert stat.S_IMODE(os.stat(fs.path(d)).st_mode) == 0o500


def test_cat_prints_the_retained_window_and_ends(fs, raws):
    want = text_of(raws)
    assert run("cat", fs.path("log")) == want
    assert fs.read("log") == want
    assert os.stat(fs.path("log")).st_size == 0          # rendered as it is read, like tracefs's trace


def test_tail_head_grep_dd_wc_cp_agree_with_the_content(fs, raws, tmp_path):
    want = text_of(raws)
    lines = lines_of(raws)
    log = fs.path("log")
    assert run("tail", "-n", "7", log).decode().splitlines() == lines[-7:]
    assert run("tail", "-c", "1000", log) == want[-1000:]
    assert run("head", "-c", "4097", log) == want[:4097]
    assert run("head", "-n", "3", log).decode().splitlines() == lines[:3]
    assert int(run("grep", "-c", "openat(", log)) == sum("openat(" in x for x in lines)
    for skip in (0, 1, 4096, len(want) - 10):
        assert run("dd", f"if={log}", "bs=4096", f"skip={skip}", "iflag=skip_bytes", "status=none") == want[skip:]
    assert run("dd", f"if={log}", "bs=1000", "skip=3", "status=none") == want[3000:]
    assert int(run("wc", "-c", log).split()[0]) == len(want)
    assert int(run("wc", "-l", log).split()[0]) == len(lines)
    copy = tmp_path / "copy"
    run("cp", log, str(copy))
    assert copy.read_bytes() == want
    assert run("less", "-FX", log) == want        # not a terminal: less prints the file


def test_reads_at_any_offset(fs, raws):
    want = text_of(raws)
    fd = os.open(fs.path("log"), os.O_RDONLY)
    try:
        for off in (len(want) - 1, 0, 1, 1000, len(want), len(want) + 100, 17):   # forwards and back
            assert os.pread(fd, 333, off) == want[off:off + 333]
        assert os.lseek(fd, len(want) - 50, os.SEEK_SET) == len(want) - 50
        assert os.read(fd, 100) == want[-50:]
    finally:
        os.close(fd)


def test_an_open_file_keeps_its_snapshot_while_the_window_moves_on(fs, raws, recording):
    """Like tracefs `trace`: the bytes of an open file stay put; new opens see the new window."""
    before = text_of(raws)
    fd = os.open(fs.path("log"), os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 0) == before[:100]        # begun before the window moves
        fs.driver.feed(recording)
        fs.wait_drained(2 * len(raws))
        after = text_of(raws + raws)
        assert os.pread(fd, len(after), 0) == before
        assert run("cat", fs.path("log")) == after
        assert run("tail", "-n", "2", fs.path("log")).decode().splitlines() == lines_of(raws)[-2:]
    finally:
        os.close(fd)


def test_the_window_limit_drops_the_oldest_whole_chunks(mount, raws, recording):
    m = mount(window_events=300)
    m.wait_drained(len(raws))
    window = m.state.window
    wait_for(lambda: len(window) <= 300)
    kept = raws[len(raws) - len(window):]
    assert m.read("log") == text_of(kept)
    assert f"window.dropped: {len(raws) - len(kept)}" in m.text("status").splitlines()


def test_an_empty_window_is_an_empty_file(mount):
    m = mount(feed=False)
    assert m.read("log") == b""
    assert os.stat(m.path("log")).st_size == 0
    assert os.listdir(m.path("procs")) == []
