"""Mounting sagafs for the daemon: the mount point, stale mounts, options, and serve().

The daemon calls `serve(state, mountpoint)` in its nursery (docs/daemon.md,
the sagafs seam).  Before mounting: the mount point is created if missing;
a mount left by a daemon that died (its files answer "Transport endpoint is
not connected") is detached; a live sagafs already there is an error.  On
stop: blocked readers are answered (end of file), requests in flight are
given a moment, then the filesystem is unmounted.

Permissions: by default only root can enter the mount at all (no
allow_other).  With `sagafs.group`, the mount allows other users and lets
the kernel check modes (default_permissions): the group may read, and
writable files stay root's (docs/sagafs.md).  sagafs's own open refuses
writes by anyone but root either way.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import stat
import subprocess

import pyfuse3
import trio

from saga.config import group_id
from saga.daemon.state import DaemonState
from saga.errors import EX_TEMPFAIL, ConfigError, DriverUnavailable, SagaError, from_oserror
from saga.sagafs.ops import MAX_PIPE_READERS, SagaFS

log = logging.getLogger("saga.sagafs")

FSTYPE = "fuse.sagafs"
_MNT_DETACH = 2


def options(group_readable: bool) -> set[str]:
    """Mount options.  Root only: no allow_other, so the kernel lets nobody else in, and sagafs's open
    checks writes.  With a group: allow_other, and default_permissions so the kernel checks modes (it
    then asks for attributes at every open: one more request, paid only then)."""
    opts = {"fsname=sagafs", "subtype=sagafs", "noexec", "nosuid", "nodev"}
    if group_readable:
        opts |= {"allow_other", "default_permissions"}
    return opts


def _unescape(field: str) -> str:
    """A mountinfo path field (spaces and the like are written \\040)."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")


def mount_type(path: str) -> str | None:
    """The type of the filesystem mounted exactly at `path` (the topmost), or None."""
    found = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if _unescape(fields[4]) == path:
                    found = fields[sep + 1]
    except OSError:
        return None
    return found


def detach(path: str) -> None:
    """Lazily unmount `path` (a stale FUSE mount)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.umount2(os.fsencode(path), _MNT_DETACH) == 0:
        return
    err = ctypes.get_errno()
    proc = subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DriverUnavailable(f"cannot unmount the stale sagafs at {path}: {os.strerror(err)}; "
                                f"{proc.stderr.strip()}")


def _dead(path: str) -> bool:
    """Is the FUSE mount at `path` one whose server is gone?  (statfs always reaches the server:
    the root's attributes may still be cached.)"""
    try:
        os.statvfs(path)
    except OSError as exc:
        return exc.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def prepare(path: str) -> None:
    """Make `path` ready to mount on: created if missing, a stale sagafs detached, a live one refused."""
    kind = mount_type(path)
    if kind is not None and kind.startswith("fuse") and _dead(path):
        if kind != FSTYPE:
            raise DriverUnavailable(f"{path} is a dead FUSE mount ({kind}), not sagafs: unmount it "
                                    "(fusermount3 -u -z)")
        log.warning("%s: a sagafs mount left by a daemon that died: unmounting it", path)
        detach(path)
        kind = mount_type(path)
    if kind == FSTYPE:
        raise SagaError(f"sagafs is already mounted at {path} (by another saga daemon?)", exit_code=EX_TEMPFAIL)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise from_oserror(exc, f"cannot create the sagafs mount point {path}", DriverUnavailable,
                               denied=DriverUnavailable) from None
        return
    except OSError as exc:
        raise from_oserror(exc, f"cannot use {path} as the sagafs mount point", DriverUnavailable,
                           denied=DriverUnavailable) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"the sagafs mount point {path} is not a directory")


async def _run_fuse(fs: SagaFS, scope: trio.CancelScope, path: str) -> None:
    with scope:
        await pyfuse3.main(min_tasks=1, max_tasks=MAX_PIPE_READERS + 32)
    if not scope.cancel_called:      # unmounted from outside (umount /sagafs)
        log.warning("sagafs was unmounted from %s by someone else: the daemon runs on without it", path)
        fs.closing = True
        fs.state.mountpoint = None


async def serve(state: DaemonState, mountpoint: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Mount sagafs at `mountpoint`, serve it until cancelled, then unmount."""
    group = state.config.sagafs.group
    gid = group_id("sagafs.group", group) if group else 0
    path = os.path.abspath(mountpoint)
    await trio.to_thread.run_sync(prepare, path)
    fs = SagaFS(state, gid=gid, group_readable=bool(group))
    try:
        pyfuse3.init(fs, path, options(bool(group)))
    except RuntimeError as exc:
        if "fuse_session_mount" in str(exc):     # the session exists, the mount does not
            pyfuse3.close(unmount=False)
        raise DriverUnavailable(f"cannot mount sagafs at {path} ({exc}): is the fuse3 package installed and "
                                "/dev/fuse there? (--no-mount runs the daemon without sagafs)") from None
    # pyfuse3 serves in its own shielded scope: at stop, requests are answered before it is cancelled.
    fuse_scope = trio.CancelScope(shield=True)
    state.sagafs = fs
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run_fuse, fs, fuse_scope, path)
            nursery.start_soon(fs.notify_pollers)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await fs.stop()
                    fuse_scope.cancel()
    finally:
        state.sagafs = None
        pyfuse3.close(unmount=True)
        log.info("sagafs unmounted from %s", path)
