"""Reading the BPF ring buffer straight from its memory map.

The kernel maps a BPF_MAP_TYPE_RINGBUF map as: one read-write page with
the consumer position, then (read-only) one page with the producer
position followed by the data area mapped twice in a row, so a record
that wraps around the end is still contiguous.  Each record is an 8-byte
header (u32 length with BUSY and DISCARD bits, u32 page offset) and its
payload, padded to 8 bytes.  saga's payloads are whole `struct
saga_event` records whose sizes are multiples of 8, so the concatenated
payloads are exactly the /dev/saga read() format.

The positions are read and written through `Words` (one 8-byte load or
store each): the kernel reads the consumer position while we write it,
and a byte-wise write (struct.pack_into) lets it see a smaller position,
i.e. a full ring, and drop records.

Copying out is done in Python without a per-event callback into C.  Most
records are fixed-size (no paths): a run of them is recognised by its
length words and its payloads are gathered by one numpy copy (a strided
view of the ring, every record's payload without its header, copied into
a new bytes object), whatever the run's length; other records take a
slice each.  The consumer position is published only
after the bytes are copied out.

Wakeups: the BPF program wakes readers only when the ring passes a fill
mark; a periodic timer in the same epoll set is the "periodic check" of
docs/capture.md, so a trickle of events is seen within WAKE_PERIOD_S.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import time

import numpy as np

from saga import _uapi
from saga.drivers.ebpf.shared import Words

BUSY = 1 << 31
DISCARD = 1 << 30
HDR = 8
WAKE_PERIOD_S = 0.05
FIXED = _uapi.SAGA_EVENT.size   # sizeof(struct saga_event): a record without paths or aux
UNIT = FIXED + HDR           # its footprint in the ring
MIN_RUN = 8                  # shorter runs are not worth the set-up


class RingReader:
    def __init__(self, fd: int, size: int):
        page = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self._cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._cons_pos = Words(self._cons)
        self._prod_pos = Words(memoryview(self._prod)[:page])
        self._data = memoryview(self._prod)[page:]
        self._data_at = page                  # where the data area starts in self._prod
        self._lens = self._data.cast("I")
        self._ring_fd = fd
        self._ep = select.epoll()
        self._ep.register(fd, select.EPOLLIN)
        self._timer = periodic_timer(WAKE_PERIOD_S)
        self._ep.register(self._timer, select.EPOLLIN)

    def fileno(self) -> int:
        return self._ep.fileno()

    def pending(self) -> int:
        """Bytes waiting in the ring (headers included)."""
        return self._prod_pos.u64(0) - self._cons_pos.u64(0)

    def read(self, max_bytes: int) -> tuple[bytes, int]:
        """Copy out whole records, at most max_bytes of payload; returns (bytes, records)."""
        cons = self._cons_pos.u64(0)
        prod = self._prod_pos.u64(0)
        if cons == prod:
            return b"", 0
        data, mask, lens = self._data, self.mask, self._lens
        parts: list[bytes | memoryview] = []
        append = parts.append
        total = records = 0
        while cons < prod:
            off = cons & mask
            run = self._fixed_run(off, prod - cons, (max_bytes - total) // FIXED)
            if run:
                append(self._gather(off, run))
                records += run
                total += run * FIXED
                cons += run * UNIT
                continue
            length = lens[off >> 2]
            if length & BUSY:
                break  # still being written
            if length & DISCARD:
                length &= ~DISCARD
            else:
                if total + length > max_bytes:
                    if not parts:
                        raise OSError(errno.EINVAL, f"{max_bytes} bytes cannot hold the next record ({length} bytes)")
                    break
                append(data[off + HDR:off + HDR + length])
                records += 1
                total += length
            cons += (length + HDR + 7) & ~7
        out = b"".join(parts)
        self._cons_pos.set_u64(0, cons)
        return out, records

    def _fixed_run(self, off: int, avail: int, room: int) -> int:
        """How many committed fixed-size records start at off (0 if fewer than MIN_RUN)."""
        k = min(avail // UNIT, room)     # one run for a whole read of fixed-size records: no join
        first = off // 4
        step = UNIT // 4
        if k < MIN_RUN or self._lens[first] != FIXED or self._lens[first + (MIN_RUN - 1) * step] != FIXED:
            return 0  # cheap refusal: a mixed stream must not pay for a scan per record
        # the length words of the next k records, in numpy (a strided memoryview costs 0.1 us per record)
        lens = np.ndarray((k,), "<u4", self._prod, self._data_at + off, (UNIT,))
        other = np.flatnonzero(lens != FIXED)
        run = int(other[0]) if len(other) else k     # the longest all-fixed prefix
        return run if run >= MIN_RUN else 0

    def _gather(self, off: int, k: int) -> bytes:
        """The payloads of k fixed-size records at off, without their headers: one copy, in numpy.  (Strided
        memoryview copies, 8 bytes of every record at a time, took 0.12 us per record from warm memory,
        this 0.005; a whole read_raw at 50,000 events/s went from 0.15-0.19 to 0.11 us per event.)"""
        run = np.ndarray((k, FIXED // 8), "<u8", self._prod, self._data_at + off + HDR, (UNIT, 8))
        return run.tobytes()

    def wait(self, timeout: float | None) -> None:
        """Sleep until the ring has data, the periodic check fires, or timeout (None: forever)."""
        if self.pending():
            return
        self._ep.poll(-1 if timeout is None else timeout)
        self.drain_timer()

    def set_period(self, period: float) -> None:
        """The periodic check every `period` seconds from now on."""
        _arm(self._timer, period)

    def drain_timer(self) -> None:
        try:
            os.read(self._timer, 8)
        except BlockingIOError:
            pass

    def close(self) -> None:
        self._lens.release()
        self._data.release()
        self._cons_pos.release()
        self._prod_pos.release()
        self._ep.close()
        if self._timer >= 0:
            os.close(self._timer)
            self._timer = -1
        self._prod.close()
        self._cons.close()


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(None, use_errno=True)
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


def periodic_timer(period: float) -> int:
    """A non-blocking timerfd (CLOCK_MONOTONIC) that expires every `period` seconds."""
    fd = _libc.timerfd_create(time.CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"timerfd_create: {os.strerror(err)}")
    try:
        _arm(fd, period)
    except OSError:
        os.close(fd)
        raise
    return fd


def _arm(fd: int, period: float) -> None:
    """Make the timerfd expire every `period` seconds, the first time `period` seconds from now."""
    sec, nsec = int(period), int(period % 1 * 1e9)
    spec = _Itimerspec(_Timespec(sec, nsec), _Timespec(sec, nsec))
    if _libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"timerfd_settime: {os.strerror(err)}")
