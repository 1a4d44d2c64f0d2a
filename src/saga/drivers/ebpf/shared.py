"""Words of memory shared with the BPF program, read and written whole.

The driver shares memory maps with the kernel (the program's .bss holding
struct saga_bpf_config, the ring buffer's position pages) that the probes
read while user space writes them.  `struct.pack_into` must not be used
there: it zero-fills its destination and then writes it byte by byte, so a
probe on another CPU can read 0 or a torn value (a consumer position of 0
made the kernel see a full ring and drop records).  A `memoryview` cast to
"I" or "Q" reads and writes an aligned item with one load or store.
"""
from __future__ import annotations

_U64_MASK = (1 << 64) - 1


class Words:
    """Aligned 32- and 64-bit words of a buffer, addressed by byte offset."""

    def __init__(self, buf):
        view = memoryview(buf)
        self._views = [view]
        self._u32 = view[:len(view) // 4 * 4].cast("I")
        self._u64 = view[:len(view) // 8 * 8].cast("Q")
        self._views += [self._u32, self._u64]

    def u32(self, off: int) -> int:
        return self._u32[_index(off, 4)]

    def set_u32(self, off: int, value: int) -> None:
        self._u32[_index(off, 4)] = value

    def u64(self, off: int) -> int:
        return self._u64[_index(off, 8)]

    def set_u64(self, off: int, value: int) -> None:
        self._u64[_index(off, 8)] = value

    def s64(self, off: int) -> int:
        v = self._u64[_index(off, 8)]
        return v - (1 << 64) if v >> 63 else v

    def set_s64(self, off: int, value: int) -> None:
        self._u64[_index(off, 8)] = value & _U64_MASK

    def release(self) -> None:
        """Drop the views (an mmap cannot be closed while they exist)."""
        for v in reversed(self._views):
            v.release()
        self._views = []


def _index(off: int, size: int) -> int:
    if off % size:
        raise ValueError(f"offset {off} is not aligned to {size} bytes")
    return off // size
