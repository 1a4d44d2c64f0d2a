"""Loss accounting: every layer adds up at every moment, losses are warned about (rate-limited) and reported."""
from __future__ import annotations

import logging
import os
import threading

from test_daemon import Running
from unit_config import make_config
from waiting import wait_for

from saga.daemon import losses
from saga.daemon.service import Daemon, Options
from saga.drivers.replay import ReplayDriver
from saga.store import Store, archive


def _check_layers(status: dict) -> list[str]:
    bad = []
    for name, layer in losses.layers(status).items():
        if layer["produced"] != layer["read"] + layer["dropped"] + layer["in_flight"] or layer["in_flight"] < 0:
            bad.append(f"{name}: {layer}")
    a = status["archive"]
    if a.get("enabled") and a["dropped"] != sum(a["dropped_by"].values()):
        bad.append(f"archive causes: {a}")
    return bad


def test_every_layer_adds_up_while_events_are_lost(tmp_path, sqlite_url, recording, raws):
    """A small window, a small ring, a tiny archive queue and no spool: losses at each layer, all counted."""
    drv = ReplayDriver(ring_bytes=64 << 10)
    r = Running(tmp_path, sqlite_url, drv, window_events=500, archive_queue=300, spool_max_bytes=0,
                batch_bytes=4096)
    bad: list[str] = []
    seen: list[dict] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            st = r.status()
            seen.append(st)
            bad.extend(_check_layers(st))

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        for _ in range(30):
            for _ in range(2):          # twice the recording (56 KiB) between reads: the 64 KiB ring overflows
                drv.feed(recording)
                drv.advance(len(raws))
            # Each round drained before the next: the window then sees more events than it keeps
            # however fast the feeding loop runs (unloaded, it could outrun every read).
            wait_for(lambda: r.status()["capture"]["events"] == r.status()["capture"]["read"],
                     what="the ring drained")
    finally:
        done.set()
        t.join()
    wait_for(lambda: r.status()["archive"]["queued"] == 0 and r.status()["archive"]["in_flight"] == 0)
    st = r.status()
    a = st["archive"]
    assert not bad, bad[:3]
    assert len(seen) > 3
    assert st["losses"]["ring"] > 0 and st["window"]["dropped"] > 0
    assert st["drained"]["events"] == a["submitted"] == a["archived"] + a["dropped"]
    assert st["capture"]["read"] == st["drained"]["events"]
    assert r.stop() == 0
    assert _archived(sqlite_url) == a["archived"]
    drv.close()


def _archived(url: str) -> int:
    with Store.open(url) as st:
        return archive.count(st.engine)


def test_warnings_say_count_cause_and_fix_at_most_once_per_interval():
    now = [0.0]
    m = losses.LossMonitor(every=60.0, clock=lambda: now[0])
    st = {"capture": {"drops": 0}, "drained": {"malformed": 0}, "window": {"readers_lost": 0},
          "driver": {"ring_bytes": 1 << 20},
          "archive": {"enabled": True, "dropped_by": {"queue_full": 0}, "last_error": None, "suspended": None}}
    m.start(st)
    st["capture"]["drops"] = 500
    first = m.look(st)
    assert len(first) == 1 and "lost 500 events" in first[0] and "ring (1024 KiB)" in first[0]
    st["capture"]["drops"] = 800
    now[0] = 30.0
    assert m.look(st) == []                               # held back: too soon after the last one
    st["archive"]["dropped_by"]["queue_full"] = 70
    st["archive"]["last_error"] = "archiving events: database is locked"
    arch = m.look(st)                                     # another cause has its own interval
    assert len(arch) == 1 and "lost 70 events" in arch[0] and "database is locked" in arch[0]
    now[0] = 61.0
    later = m.look(st)
    assert len(later) == 1 and "lost 300 events" in later[0]   # the held-back count
    now[0] = 200.0
    assert m.look(st) == []                               # nothing new, nothing said


def test_the_stop_reports_what_was_lost(tmp_path, sqlite_url, recording, raws, caplog):
    drv = ReplayDriver(recording)
    d = Daemon(make_config(tmp_path, sqlite_url, archive_queue=10, spool_max_bytes=0, batch_bytes=4096),
               Options(no_mount=True, reload_config=False), driver=drv)
    t = threading.Thread(target=d.run, kwargs={"signals": False})
    with caplog.at_level(logging.INFO, logger="saga.daemon"):
        t.start()
        assert d.ready.wait(20)
        wait_for(lambda: d.state.counters.drained_events == len(raws))
        d.stop()
        t.join(30)
    text = caplog.text
    a = d.state.archiver
    assert a.dropped > 0
    assert f"stopped: {len(raws):,} events drained, {a.archived:,} archived, {a.dropped:,} lost" in text
    assert f"this run lost {a.dropped} events: {a.dropped} dropped by the archive (queue full)" in text
    drv.close()


def test_status_line_names_the_trouble():
    st = {"drained": {"events": 1000}, "losses": {"ring": 5},
          "archive": {"enabled": True, "archived": 900, "queued": 50, "in_flight": 40, "dropped": 10,
                      "suspended": None, "last_error": "archiving events: database is locked"},
          "previous_run": {"clean_stop": False, "lost": 3, "lost_at_most": 0}}
    line = losses.status_line(st)
    assert line == ("1,000 events drained, 900 archived, 90 waiting, 15 lost; ring dropped 5; archive dropped 10; "
                    "archive failing: archiving events: database is locked; the last run crashed and lost 3")


def test_a_damaged_archive_at_start_is_set_aside_and_the_daemon_comes_back(tmp_path, sqlite_url, recording, raws):
    path = sqlite_url[len("sqlite:///"):]
    with open(path, "wb") as f:
        f.write(b"this is not a database, whatever it was" * 1000)
    r = Running(tmp_path, sqlite_url, ReplayDriver(recording))
    wait_for(lambda: r.status()["archive"]["archived"] == len(raws))
    assert r.stop() == 0
    aside = [f for f in os.listdir(tmp_path) if f.startswith("saga.db.corrupt-")]
    assert len(aside) == 1 and _archived(sqlite_url) == len(raws)
    r.driver.close()
