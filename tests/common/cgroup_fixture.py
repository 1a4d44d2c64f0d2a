"""A cgroup laid out as systemd lays out a service, for tests of the unit a call is shown and found by."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from waiting import wait_for


@contextmanager
def service_cgroup() -> Iterator[tuple[Path, str]]:
    """saga-test-<id>.slice/demo.service under the cgroup v2 root: (its directory, its cgroup path);
    removed afterwards, once the processes put in it are gone."""
    from saga.cgroups import cgroup2_root
    top = cgroup2_root()
    assert top is not None, "no cgroup v2 hierarchy mounted"
    slice_ = Path(top) / f"saga-test-{uuid.uuid4().hex[:8]}.slice"
    unit = slice_ / "demo.service"
    unit.mkdir(parents=True)
    try:
        yield unit, "/" + str(unit.relative_to(top))
    finally:
        for d in (unit, slice_):
            wait_for(lambda d=d: not (d / "cgroup.procs").exists() or not (d / "cgroup.procs").read_text(),
                     timeout=10, what=f"{d} to empty")
            d.rmdir()
