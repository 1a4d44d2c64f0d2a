"""Mounting: permissions, the daemon as a process (clean unmount on SIGTERM, stale mounts), conflicts."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fuse_helpers import text_of
from waiting import wait_for

from saga.sagafs.mount import mount_type

NOBODY, NOGROUP, DAEMON_GID = 65534, 65534, 1


def as_user(cmd: str, gid: int) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", cmd], user=NOBODY, group=gid, extra_groups=[], capture_output=True,
                          text=True, timeout=30, check=False)


def test_root_only_by_default(fs):
    r = as_user(f"ls {fs.mnt}", NOGROUP)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_user(f"cat {fs.path('log')}", NOGROUP)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_a_configured_group_may_read_but_not_write(mount, raws):
    m = mount(group="nogroup")
    m.wait_drained(len(raws))
    st = os.stat(m.path("log"))
    assert (st.st_gid, st.st_mode & 0o777) == (NOGROUP, 0o440)
    assert os.stat(m.path("rules")).st_mode & 0o777 == 0o640
    r = as_user(f"cat {m.path('log')}", NOGROUP)
    assert r.returncode == 0 and r.stdout.encode() == text_of(raws)
    assert as_user(f"cat {m.path('procs')}/*/cmdline", NOGROUP).returncode == 0
    r = as_user(f"echo 'ignore read' > {m.path('rules')}", NOGROUP)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert m.driver.list_rules() == []
    r = as_user(f"cat {m.path('log')}", DAEMON_GID)          # not in the group
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_the_mount_point_must_be_a_directory(tmp_path):
    from saga.errors import ConfigError
    from saga.sagafs.mount import prepare
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        prepare(str(tmp_path / "f"))
    prepare(str(tmp_path / "a" / "b"))                         # created when missing
    assert (tmp_path / "a" / "b").is_dir()


# -- the daemon as a process ----------------------------------------------------------------------

def _config(root: Path, mnt: Path, group: str = "") -> Path:
    cfg = root / "saga.toml"
    cfg.write_text(f'[daemon]\nrun_dir = "{root}/run"\narchive = false\n[store]\nurl = "sqlite:///{root}/saga.db"\n'
                   f'host = "testhost"\n[sagafs]\nmount = "{mnt}"\ngroup = "{group}"\n')
    return cfg


def _daemon(cfg: Path, recording: Path, *extra: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("saga")
    return subprocess.Popen([str(exe), "--config", str(cfg), "daemon", "--replay", str(recording), *extra],
                            stderr=subprocess.PIPE, text=True)


def _serving(proc: subprocess.Popen, mnt: Path, raws) -> None:
    def ready() -> bool:
        try:
            return (mnt / "log").read_bytes() == text_of(raws)
        except OSError:                 # not mounted yet, or still the stale mount
            return False

    wait_for(lambda: proc.poll() is not None or ready(), what="the mount")
    assert proc.poll() is None, proc.stderr.read()


def test_sigterm_unmounts_and_a_stale_mount_is_recovered(tmp_path, recording, raws):
    rec = tmp_path / "w.saga"
    rec.write_bytes(recording)
    mnt = tmp_path / "mnt"
    cfg = _config(tmp_path, mnt)
    first = _daemon(cfg, rec)
    _serving(first, mnt, raws)
    first.kill()                                             # a crash: the mount stays, dead
    first.communicate(timeout=30)
    with pytest.raises(OSError) as err:
        os.stat(mnt / "log")
    assert err.value.errno == errno.ENOTCONN
    second = _daemon(cfg, rec)
    _serving(second, mnt, raws)
    assert (mnt / "log").read_bytes() == text_of(raws)
    second.send_signal(signal.SIGTERM)
    _, err_text = second.communicate(timeout=60)
    assert second.returncode == 0, err_text
    assert "a sagafs mount left by a daemon that died: unmounting it" in err_text
    assert mount_type(str(mnt)) is None and os.listdir(mnt) == []


def test_a_live_sagafs_is_not_mounted_over(fs, tmp_path, recording):
    rec = tmp_path / "w.saga"
    rec.write_bytes(recording)
    other = tmp_path / "other"
    other.mkdir()
    cfg = _config(other, fs.mnt)
    proc = _daemon(cfg, rec, "--mount", str(fs.mnt))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75 and f"sagafs is already mounted at {fs.mnt}" in err
    assert fs.read("log")                                      # the first one is untouched


def test_an_unknown_group_is_a_configuration_error(tmp_path, recording):
    rec = tmp_path / "w.saga"
    rec.write_bytes(recording)
    proc = _daemon(_config(tmp_path, tmp_path / "mnt", group="no-such-group-here"), rec)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 78 and "sagafs.group: no such group 'no-such-group-here'" in err
    assert mount_type(str(tmp_path / "mnt")) is None


def test_unmounted_from_outside_the_daemon_runs_on(fs, raws):
    subprocess.run(["umount", str(fs.mnt)], check=True)
    wait_for(lambda: fs.state.mountpoint is None, what="the daemon to notice")
    assert fs.daemon.state.counters.drained_events == len(raws) and fs.thread.is_alive()
    assert fs.stop() == 0
