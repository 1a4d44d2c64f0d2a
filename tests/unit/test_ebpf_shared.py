"""Words shared with the BPF program are written whole (no root, no kernel needed).

The kernel reads the ring's consumer position and the config fields while
user space writes them.  struct.pack_into zero-fills and then writes byte
by byte, which a concurrent reader can see; Words stores with one
instruction.  A second process watches a shared page while this one
alternates two values, first with pack_into (showing the watcher can see
tearing on this machine) and then with Words (it must see none).
"""
from __future__ import annotations

import mmap
import os
import struct
import time

import pytest

from saga.drivers.ebpf.shared import Words

A, B = 0x0101010101010101, 0xFEFEFEFEFEFEFEFE  # every byte differs, none is zero
SECONDS = 0.4


def torn_values_seen(store) -> int:
    """Values other than A and B a concurrent process read while `store` alternated them."""
    page = mmap.mmap(-1, mmap.PAGESIZE)
    store(page, A)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the watcher
        words, bad = Words(page), 0
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            for _ in range(2000):
                v = words.u64(0)
                if v != A and v != B:
                    bad += 1
        os.write(wfd, str(bad).encode())
        os._exit(0)
    os.close(wfd)
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        for _ in range(1000):
            store(page, B)
            store(page, A)
    os.waitpid(pid, 0)
    with os.fdopen(rfd) as f:
        return int(f.read())


def pack_into(page, value):
    struct.pack_into("<Q", page, 0, value)


_words: dict[int, Words] = {}


def words_store(page, value):
    words = _words.get(id(page))
    if words is None:
        words = _words[id(page)] = Words(page)
    words.set_u64(0, value)


def test_a_concurrent_reader_never_sees_a_torn_word():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two CPUs to run the watcher alongside")
    if torn_values_seen(pack_into) == 0:
        pytest.skip("the watcher never ran alongside the writer (busy machine): inconclusive")
    assert torn_values_seen(words_store) == 0


def test_signed_and_unsigned_round_trip():
    buf = bytearray(32)
    w = Words(buf)
    w.set_s64(8, -5)
    w.set_u32(4, 0xFFFFFFFF)
    w.set_u64(16, 1 << 63)
    assert (w.s64(8), w.u64(8), w.u32(4), w.u64(16)) == (-5, (1 << 64) - 5, 0xFFFFFFFF, 1 << 63)
    assert struct.unpack_from("<q", buf, 8)[0] == -5
    w.release()


def test_misaligned_offsets_are_refused():
    w = Words(bytearray(16))
    with pytest.raises(ValueError, match="not aligned"):
        w.u64(4)
    with pytest.raises(ValueError, match="not aligned"):
        w.set_u32(2, 1)
