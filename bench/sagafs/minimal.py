"""The baseline of bench/sagafs: the smallest pyfuse3 filesystem serving one file from memory.

    minimal.py MOUNTPOINT DATAFILE cached|pagecache|direct

One file, `f`, with DATAFILE's bytes; a read returns a slice of them.
How opens are answered:
- `cached`: pyfuse3's defaults (keep_cache): after the first read the
  kernel serves the file from its page cache without asking pyfuse3 at
  all, which only a file that never changes may allow;
- `pagecache`: through the page cache and its readahead, the cache
  dropped at each open (what a changing file needs), so every open reads
  through pyfuse3;
- `direct`: the way sagafs serves files (direct_io, st_blksize 1 MiB, so
  `cat` reads 1 MiB at a time).
Prints `ready` once mounted; SIGTERM unmounts and exits.
"""
from __future__ import annotations

import errno
import signal
import stat
import sys

import pyfuse3
import trio

FILE_INODE = 2


class OneFile(pyfuse3.Operations):
    def __init__(self, data: bytes, mode: str) -> None:
        super().__init__()
        self.data = data
        self.mode = mode

    async def getattr(self, inode, ctx=None):
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == pyfuse3.ROOT_INODE:
            a.st_mode, a.st_nlink = stat.S_IFDIR | 0o755, 2
        elif inode == FILE_INODE:
            a.st_mode, a.st_nlink, a.st_size = stat.S_IFREG | 0o444, 1, len(self.data)
            if self.mode == "direct":
                a.st_blksize = 1 << 20
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return a

    async def lookup(self, parent_inode, name, ctx=None):
        if parent_inode != pyfuse3.ROOT_INODE or name != b"f":
            raise pyfuse3.FUSEError(errno.ENOENT)
        return await self.getattr(FILE_INODE)

    async def open(self, inode, flags, ctx):
        if self.mode == "direct":
            return pyfuse3.FileInfo(fh=inode, direct_io=True, keep_cache=False)
        if self.mode == "pagecache":
            return pyfuse3.FileInfo(fh=inode, keep_cache=False)
        return pyfuse3.FileInfo(fh=inode)

    async def read(self, fh, off, size):
        return self.data[off:off + size]


def main() -> None:
    mountpoint, path, mode = sys.argv[1:4]
    with open(path, "rb") as f:
        data = f.read()
    if mode not in ("cached", "pagecache", "direct"):
        raise SystemExit(f"minimal.py: unknown mode {mode!r}")
    pyfuse3.init(OneFile(data, mode), mountpoint, set(pyfuse3.default_options) | {"fsname=minimal"})

    async def serve():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pyfuse3.main)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                print("ready", flush=True)
                async for _ in signals:
                    pyfuse3.terminate()
                    break

    try:
        trio.run(serve)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
