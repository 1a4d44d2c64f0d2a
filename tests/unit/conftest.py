"""Shared fixtures: the recorded workload, the replay driver, stores (SQLite and a real PostgreSQL)."""
from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

import pytest
from pgserver import serving

from saga import events
from saga.drivers.replay import ReplayDriver
from saga.store import Store, archive
from saga.store import rules as stored_rules

DATA = Path(__file__).resolve().parent.parent / "data"
WORKLOAD = DATA / "workload.saga.gz"     # tools/gen_fixture.py


@pytest.fixture
def tmp_path():
    """A short temporary directory: unix socket paths (the daemon's control socket) must fit in 107 bytes."""
    path = tempfile.mkdtemp(prefix="saga-t")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def recording() -> bytes:
    return gzip.decompress(WORKLOAD.read_bytes())


@pytest.fixture(scope="session")
def raws(recording) -> list[tuple]:
    return events.parse(recording)


@pytest.fixture
def replay(recording):
    drv = ReplayDriver(recording)
    yield drv
    drv.close()


@pytest.fixture
def archived_db(tmp_path, recording, raws) -> str:
    """A SQLite archive of the recorded workload (host h1, the first process's executable known), and
    tmp_path/saga.toml naming it."""
    url = f"sqlite:///{tmp_path}/saga.db"
    with Store.open(url) as st:
        with st.session() as s, s.begin():
            host = stored_rules.host_id(s, "h1")
        w = archive.EventWriter(st.engine, host)
        w.write([(recording, raws)], {raws[0][events.PID]: "/usr/bin/saga-fixture"})
        w.close()
    (tmp_path / "saga.toml").write_text(f'[store]\nurl = "{url}"\nhost = "h1"\n')
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/saga.db"


@pytest.fixture
def store(sqlite_url):
    """A SQLite archive opened as the daemon opens its own (own=True)."""
    st = Store.open(sqlite_url, own=True)
    yield st
    st.close()


# -- PostgreSQL: a real server, started once per session in a temp dir (tests/common/pgserver.py) -------

@pytest.fixture(scope="session")
def pg_server():
    yield from serving()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/saga.db"
    return request.getfixturevalue("pg_server").new_database()
