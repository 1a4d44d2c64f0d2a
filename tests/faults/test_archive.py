"""The archive under the running daemon: a full disk (a small real tmpfs), the file deleted, the file
corrupted, a lock held past the busy timeout.  The daemon runs on; every marker is archived once or
counted."""
from __future__ import annotations

import os
import sqlite3
import subprocess

from fault_helpers import archived_markers, run_markers, status_json
from waiting import wait_for


def _accounted(st: dict) -> None:
    a = st["archive"]
    assert a["submitted"] == a["archived"] + a["dropped"] + a["queued"] + a["in_flight"] + a["left_in_spool"]


def test_a_full_disk_prunes_the_oldest_then_suspends_and_resumes(daemons, marker_bin, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True)
    d = daemons.make("full", f"sqlite:///{disk}/saga.db").start()
    # Far more than the cap (25% of 64 MiB): the oldest go, the newest stay.  A marker is a failed close:
    # stored twice (among its errno's rows too), ~268 bytes, so 600,000 would take ~160 MB.
    run_markers(marker_bin, 0, 600_000, 200_000)
    st = d.wait_caught_up()
    wait_for(lambda: d.status()["bounds"]["pruned_for_size"] > 0 and d.status()["bounds"]["used"] <= 16 << 20,
             what="the cap to prune")
    assert st["archive"]["dropped"] == 0, status_json(d)
    # The cap's pruning settled before the disk is filled (a deletion grows the WAL, which can take the
    # archive past the cap again for a few rounds): filled while it still deletes, the WAL takes the room
    # the test leaves, and the checkpoint after the failed deletion, not a prune for space, gives it back.
    seen: list[int] = []

    def cap_settled() -> bool:
        b = d.status()["bounds"]
        seen.append(b["pruned_for_size"])
        return b["used"] <= 16 << 20 and len(seen) > 8 and seen[-1] == seen[-9]   # 8 polls, ~2 s: 4 checks

    wait_for(cap_settled, timeout=60, every=0.25, what="the cap's pruning to settle")
    # Pruned to 90% of the cap, less than one batch below (~1.5 MiB here), then grown by what came after:
    # never far below (tests/unit/test_bounds.py has batches of unequal sizes, where that went wrong).
    assert d.status()["bounds"]["used"] >= 12 << 20, status_json(d)
    kept = archived_markers(d.url)
    assert max(kept.values()) == 1 and max(kept) == 599_999 and min(kept) > 0   # the oldest went
    # Something else fills the disk: saga gives its space back; filled again, with nothing left to give,
    # it suspends archiving while there is no room.
    junk = disk / "junk"

    def fill(leave: int) -> None:
        """Take all but `leave` bytes of what is free now (the daemon is idle: caught up)."""
        st = os.statvfs(disk)
        size = (os.path.getsize(junk) if junk.exists() else 0) + st.f_bavail * st.f_frsize - leave
        with open(junk, "ab") as f:
            os.posix_fallocate(f.fileno(), 0, size)

    fill(4 << 20)       # 4 MiB free: below space_left (6.4 MiB), room enough to delete: it gives space back
    wait_for(lambda: d.status()["bounds"]["pruned_for_space"] > 0, what="space to be given back")
    fill(1 << 20)       # 1 MiB: below admin_space_left (3.2 MiB): archiving is suspended
    wait_for(lambda: d.status()["bounds"]["suspended"] is not None, what="archiving to be suspended")
    run_markers(marker_bin, 600_000, 10_000, 50_000)
    wait_for(lambda: d.status()["archive"]["dropped_by"]["suspended"] >= 10_000, what="the drops to be counted")
    assert d.alive
    os.unlink(junk)
    wait_for(lambda: d.status()["bounds"]["suspended"] is None, what="archiving to resume")
    run_markers(marker_bin, 610_000, 10_000, 50_000)
    st = d.wait_caught_up()
    _accounted(st)
    got = archived_markers(d.url)
    assert max(got.values()) == 1 and set(range(610_000, 620_000)) <= set(got)
    assert not set(range(600_000, 610_000)) & set(got)              # the suspended ones: dropped, counted
    log = d.log()
    assert "archiving suspended" in log and "archiving resumed" in log and "above store.max_size" in log
    assert d.stop() == 0


def test_the_archive_deleted_then_corrupted_under_the_daemon(daemons, marker_bin, tmp_path):
    d = daemons.make("file", f"sqlite:///{tmp_path}/file/saga.db").start()
    path = tmp_path / "file" / "saga.db"
    run_markers(marker_bin, 0, 10_000, 50_000)
    d.wait_caught_up()
    for suffix in ("", "-wal", "-shm"):
        os.unlink(f"{path}{suffix}")
    run_markers(marker_bin, 10_000, 10_000, 50_000)
    st = d.wait_caught_up()
    assert st["archive"]["reopened"] == 1 and st["archive"]["dropped"] == 0
    assert set(archived_markers(d.url)) == set(range(10_000, 20_000))    # the new archive: what came after
    assert os.stat(path).st_mode & 0o777 == 0o600
    # Pages overwritten.  Writes that meet the damage set the file aside at once; writes that do not
    # (they touch other pages) go on, and the next start's quick_check finds it: either way a new archive
    # is started, the damaged one kept aside, and the service runs on.
    with sqlite3.connect(path) as conn:        # everything into the file first: the WAL holds no page of it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 3)
        f.write(os.urandom(os.path.getsize(path) - os.path.getsize(path) // 3))
    run_markers(marker_bin, 20_000, 10_000, 50_000)
    d.wait_caught_up()
    assert d.stop() == 0
    d.start()
    st = d.status()
    aside = sorted(str(p) for p in path.parent.glob("saga.db.corrupt-*"))
    assert len(aside) == 1 and st["archive"]["set_aside"] in ([], aside), st["archive"]
    assert "moved it to" in d.log() and "is damaged" in d.log() or "malformed" in d.log()
    run_markers(marker_bin, 30_000, 10_000, 50_000)
    d.wait_caught_up()
    got = archived_markers(d.url)
    assert max(got.values()) == 1 and set(range(30_000, 40_000)) <= set(got)
    assert d.stop() == 0


def test_a_lock_held_past_the_busy_timeout_is_waited_out(daemons, marker_bin, tmp_path):
    d = daemons.make("lock", f"sqlite:///{tmp_path}/lock/saga.db", store="busy_timeout = 0.5\n").start()
    path = str(tmp_path / "lock" / "saga.db")
    run_markers(marker_bin, 0, 5_000, 50_000)
    d.wait_caught_up()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                 # another writer, holding the lock until the daemon retried
    try:
        run_markers(marker_bin, 5_000, 20_000, 50_000)
        wait_for(lambda: d.status()["archive"]["retries"] >= 2, what="retries past the busy timeout")
        assert "locked" in (d.status()["archive"]["last_error"] or "")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    st = d.wait_caught_up()
    assert st["archive"]["dropped"] == 0 and st["archive"]["last_error"] is None
    got = archived_markers(d.url)
    assert set(got) == set(range(25_000)) and max(got.values()) == 1
    log = d.log()
    assert "Traceback" not in log and "database is locked (retrying" in log, log
    assert d.stop() == 0, status_json(d)
