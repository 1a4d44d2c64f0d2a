"""The pyfuse3 operations: one generic implementation over the table (table.py, tree.py).

House rules: handlers raise only pyfuse3.FUSEError (a SagaError becomes
its `errno`, saga.errors; anything else is logged and becomes EIO); nothing blocks the
trio thread (the rules service and /proc lookups run in worker threads).

Files are served with direct_io and without the page cache: every read
reaches the open file's own snapshot, so two opens at different moments
never see each other's bytes through a shared cache, a file whose content
changes needs no invalidation, and `pipe` can block.  Reads are as large
as the reader asks (st_blksize is 1 MiB, so `cat` asks for 1 MiB at a
time).

Readers cannot stall the daemon: opening a log file renders nothing, and
a read renders only what it returns, a chunk at a time with the event loop
free in between (views.fill), so open and read answer quickly whatever the
window's size and the event rate, and a reader killed meanwhile is let go
at once.  Log files therefore report size 0, like tracefs's `trace` and
/proc files: tools read them to the end.  The other files have their size.

Limits: each user but root may hold at most `sagafs.max_opens_per_user`
log and pipe files open at once (EMFILE beyond), and all users but root
together at most MAX_PIPE_READERS - ROOT_PIPE_READERS pipes: a group
member cannot use up what root needs.
"""
from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import select
import stat
import time

import pyfuse3
import trio

from saga.daemon.state import DaemonState
from saga.daemon.window import Snapshot
from saga.errors import SagaError
from saga.sagafs.pipe import Pipe
from saga.sagafs.rulesfile import MAX_WRITE, ErrorLog
from saga.sagafs.tree import Node, Tree
from saga.sagafs.views import Content, StaticText, Views, fill

log = logging.getLogger("saga.sagafs")

BLKSIZE = 1 << 20
MAX_PIPE_READERS = 64
ROOT_PIPE_READERS = 16       # kept for root: other users together get the rest
MAX_PARTIAL_LINE = MAX_WRITE  # a line still waiting for its end
FILE_ATTR_TIMEOUT = 0.0      # sizes change with every event: always ask
DIR_ATTR_TIMEOUT = 1.0


def _handler(fn):
    """Run one request: count it (for a clean stop) and turn every failure into a FUSEError."""
    @functools.wraps(fn)
    async def run(self, *args):
        self.active += 1
        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except SagaError as exc:
            log.warning("%s: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(exc.errno) from None
        except Exception:
            log.exception("sagafs: %s failed", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None
        finally:
            self.active -= 1
    return run


def _as_content(content: bytes | Snapshot) -> Content:
    return content if isinstance(content, Snapshot) else StaticText(content)


class OpenFile:
    """An open regular file: what it reads (None when opened write-only), who opened it (uid, -1 when it
    does not count against the limits), and the start of a line written without its end (applied when the
    rest comes, or at close)."""

    def __init__(self, node: Node, content: Content | None, writable: bool, uid: int) -> None:
        self.node = node
        self.content = content
        self.writable = writable
        self.uid = uid
        self.partial = b""


class SagaFS(pyfuse3.Operations):
    def __init__(self, state: DaemonState, *, gid: int = 0, group_readable: bool = False) -> None:
        super().__init__()
        self.state = state
        self.views = Views(state.window)
        self.tree = Tree()
        self.errors = ErrorLog()
        self.gid = gid
        self.mask = 0o750 if group_readable else 0o700
        self.handles: dict[int, OpenFile | Pipe | list] = {}
        self.opens_by_uid: dict[int, int] = {}     # log and pipe files open, per user
        self.pipe_readers = 0
        self.user_pipe_readers = 0                 # of them, opened by users other than root
        self.pollers: set[Pipe] = set()
        self.waiting: set[trio.CancelScope] = set()
        self.closing = False
        self.active = 0
        self._fh = itertools.count(1)
        self._born_ns = time.time_ns()

    # -- attributes ------------------------------------------------------------------------
    def _node(self, inode: int) -> Node:
        node = self.tree.node(inode)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _attrs(self, node: Node, size: int = 0) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.inode
        a.st_uid = 0
        a.st_gid = self.gid
        a.entry_timeout = self.tree.entry_timeout(node)
        file = node.file
        if file is None:                                   # a directory
            a.st_mode = stat.S_IFDIR | (0o555 & self.mask)
            a.st_nlink = 2
            a.attr_timeout = DIR_ATTR_TIMEOUT
            now = self._born_ns
        else:
            a.st_mode = stat.S_IFREG | (file.mode & self.mask)
            a.st_nlink = 1
            a.st_size = size
            a.st_blocks = (size + 511) // 512
            a.attr_timeout = FILE_ATTR_TIMEOUT
            now = time.time_ns()
        a.st_blksize = BLKSIZE
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = now
        return a

    async def _size(self, node: Node) -> int:
        file = node.file
        if file is None or isinstance(file.read, type):
            return 0                                       # directories, and streams (pipe)
        content = await file.read(self, node.value)
        return 0 if isinstance(content, Snapshot) else len(content)   # log files: rendered as read

    @_handler
    async def getattr(self, inode, ctx=None):
        node = self._node(inode)
        return self._attrs(node, await self._size(node))

    @_handler
    async def lookup(self, parent_inode, name, ctx=None):
        parent = self._node(parent_inode)
        if not parent.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        node = await self.tree.child(self, parent, os.fsdecode(name))
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attrs(node, await self._size(node))

    @_handler
    async def setattr(self, inode, attr, fields, fh, ctx):
        node = self._node(inode)
        # `echo ... > rules` truncates before it writes: on a writable file, truncating is writing nothing.
        only_size = fields.update_size and not (fields.update_mode or fields.update_uid or fields.update_gid
                                                 or fields.update_atime or fields.update_mtime)
        write = node.file.write if node.file is not None else None
        if write is None or not only_size or ctx.uid != 0:
            raise pyfuse3.FUSEError(errno.EPERM)
        await write(self, node.value, b"")
        return self._attrs(node, await self._size(node))

    @_handler
    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s

    # -- directories -----------------------------------------------------------------------
    @_handler
    async def opendir(self, inode, ctx):
        node = self._node(inode)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        fh = next(self._fh)
        self.handles[fh] = await self.tree.children(self, node)     # the listing, fixed at opendir
        return fh

    @_handler
    async def readdir(self, fh, start_id, token):
        entries = self.handles.get(fh)
        if not isinstance(entries, list):
            raise pyfuse3.FUSEError(errno.EBADF)
        for i in range(start_id, len(entries)):
            name, node = entries[i]
            # Sizes are not computed here: file attributes are never cached (attr_timeout 0).
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self._attrs(node), i + 1):
                break

    @_handler
    async def releasedir(self, fh):
        self.handles.pop(fh, None)

    # -- files -----------------------------------------------------------------------------
    @_handler
    async def open(self, inode, flags, ctx):
        node = self._node(inode)
        f = node.file
        if f is None:
            raise pyfuse3.FUSEError(errno.EISDIR)
        access = flags & os.O_ACCMODE
        writing = access in (os.O_WRONLY, os.O_RDWR)
        if writing and (f.write is None or ctx.uid != 0):
            raise pyfuse3.FUSEError(errno.EACCES)
        if writing and flags & os.O_TRUNC and f.write is not None:    # as in setattr: write nothing
            await f.write(self, node.value, b"")
        fh = next(self._fh)
        uid = ctx.uid
        if isinstance(f.read, type):                                  # a stream: pipe
            if self.pipe_readers >= MAX_PIPE_READERS or (
                    uid != 0 and self.user_pipe_readers >= MAX_PIPE_READERS - ROOT_PIPE_READERS):
                raise pyfuse3.FUSEError(errno.EBUSY)
            self._count_open(uid)
            self.handles[fh] = pipe = f.read(self, node.value, flags, ctx.pid)
            pipe.uid = uid
            self.pipe_readers += 1
            self.user_pipe_readers += uid != 0
            self.state.wake_drain()       # a lazy drain reads often again (a follower: service.py)
            return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False, nonseekable=True)
        if access != os.O_WRONLY:
            await self.state.catch_up()   # the events the ring holds now are in what this open shows
        content = None if access == os.O_WRONLY else _as_content(await f.read(self, node.value))
        lazy = isinstance(content, Snapshot)
        if lazy:
            self._count_open(uid)
        self.handles[fh] = OpenFile(node, content, writing, uid if lazy else -1)
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)

    def _count_open(self, uid: int) -> None:
        """One more log or pipe file open by uid; EMFILE past the per-user limit (root has none)."""
        n = self.opens_by_uid.get(uid, 0)
        if uid != 0 and n >= self.state.config.sagafs.max_opens_per_user:     # read now: a reload may change it
            raise pyfuse3.FUSEError(errno.EMFILE)
        self.opens_by_uid[uid] = n + 1

    def readers(self) -> dict:
        """Open log and pipe files, for status: per user, and pipes."""
        return {"open_by_uid": {str(u): n for u, n in sorted(self.opens_by_uid.items())},
                "pipes": self.pipe_readers}

    def _uncount_open(self, uid: int) -> None:
        n = self.opens_by_uid.get(uid, 0) - 1
        if n > 0:
            self.opens_by_uid[uid] = n
        else:
            self.opens_by_uid.pop(uid, None)

    def _handle(self, fh: int):
        h = self.handles.get(fh)
        if h is None or isinstance(h, list):
            raise pyfuse3.FUSEError(errno.EBADF)
        return h

    @_handler
    async def read(self, fh, off, size):
        h = self._handle(fh)
        if isinstance(h, Pipe):
            return await h.read(size)
        if h.content is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return await fill(h.content, off, size)

    @_handler
    async def write(self, fh, off, buf):
        """Whole lines go to the file's writer; a line cut across write(2) calls waits for its end, so
        `printf 'log open'; printf 'at\\n'` on one descriptor is one rule, never `log open`."""
        h = self._handle(fh)
        if isinstance(h, Pipe) or not h.writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        data = h.partial + bytes(buf)
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > MAX_PARTIAL_LINE:
            h.partial = b""
            raise pyfuse3.FUSEError(errno.EINVAL)
        h.partial = data[cut:]
        if cut:
            await self._write_lines(h, data[:cut])
        return len(buf)

    @_handler
    async def flush(self, fh):
        """close(2): a last line without its newline is applied now; its error is close's."""
        h = self.handles.get(fh)
        if isinstance(h, OpenFile) and h.partial:
            data, h.partial = h.partial, b""
            await self._write_lines(h, data)

    async def _write_lines(self, h: OpenFile, data: bytes) -> None:
        file = h.node.file
        if file is None or file.write is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        await file.write(self, h.node.value, data)

    @_handler
    async def release(self, fh):
        h = self.handles.pop(fh, None)
        if isinstance(h, Pipe):
            h.close()
            self.pipe_readers -= 1
            self.user_pipe_readers -= h.uid != 0
            self._uncount_open(h.uid)
        elif isinstance(h, OpenFile) and h.uid >= 0:
            self._uncount_open(h.uid)
            h.content = None              # the snapshot's chunks and texts go with it

    @_handler
    async def poll(self, inode, fh, ph, ctx):
        h = self.handles.get(fh)
        if isinstance(h, Pipe):
            if h.ready():
                return select.POLLIN | select.POLLRDNORM
            if ph is not None:
                h.want_poll(ph)
            return 0
        ready = select.POLLIN | select.POLLRDNORM
        if isinstance(h, OpenFile) and h.writable:
            ready |= select.POLLOUT | select.POLLWRNORM
        return ready

    # -- the filesystem cannot be reshaped ------------------------------------------------
    async def _refuse(self, *args):
        raise pyfuse3.FUSEError(errno.EPERM)

    mknod = mkdir = unlink = rmdir = symlink = rename = link = _refuse

    async def create(self, parent_inode, name, mode, flags, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    # -- life ------------------------------------------------------------------------------
    async def notify_pollers(self) -> None:
        """Wake poll(2)ers of `pipe` when events arrive."""
        seq = self.state.window.next_seq
        while True:
            await self.state.wait_for_events(seq)
            seq = self.state.window.next_seq
            for p in list(self.pollers):
                p.notify_poll()

    async def stop(self, timeout: float = 2.0) -> None:
        """Answer every blocked reader (end of file) and wait, a little, for requests in flight."""
        self.closing = True
        for scope in list(self.waiting):
            scope.cancel()
        for p in list(self.pollers):
            p.notify_poll()
        with trio.move_on_after(timeout):
            while self.active:
                await trio.sleep(0.01)
