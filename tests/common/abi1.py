"""ABI 1 records, for the store's migrations: archives written before ABI 2 hold them.
tests/data/workload-abi1.saga.gz is the recorded workload as ABI 1 wrote it (and
tests/data/archive-v2.db.gz was written from it)."""
from __future__ import annotations

import gzip
from pathlib import Path

from saga import events
from saga.store.migrations import ABI1_EVENT

DATA = Path(__file__).resolve().parents[1] / "data"


def recording() -> bytes:
    return gzip.decompress((DATA / "workload-abi1.saga.gz").read_bytes())


def sizes(buf: bytes) -> list[int]:
    out, off = [], 0
    while off < len(buf):
        out.append(int.from_bytes(buf[off:off + 2], "little"))
        off += out[-1]
    return out


def as_abi2(buf: bytes) -> list[tuple]:
    """What ABI 1 records say, as ABI 2 raw tuples (no rule, cgroup or aux: ABI 1 had none; a path's NUL
    counted in its length)."""
    out, off = [], 0
    for size in sizes(buf):
        f = ABI1_EVENT.unpack(buf, off)
        tail = buf[off + ABI1_EVENT.size:off + size]
        len0, len1 = f["path_len"]
        paths = [tail[:len0] if len0 else None, tail[len0 + 1 if len0 else 0:][:len1] if len1 else None]
        rec = events.pack(dict(flags=f["flags"], nr=f["nr"], orig_nr=f["orig_nr"], cpu=f["cpu"], pid=f["pid"],
                               tid=f["tid"], ppid=f["ppid"], uid=f["uid"], gid=f["gid"], ts_ns=f["ts_ns"],
                               duration_ns=f["duration_ns"], ret=f["ret"], args=f["args"],
                               comm=f["comm"].rstrip(b"\0"), paths=paths if len1 else paths[:1]))
        out.extend(events.parse(rec))
        off += size
    return out
