"""Shared fixtures: the recorded workload, the replay driver, stores (SQLite and a real PostgreSQL)."""
from __future__ import annotations

import glob
import gzip
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from saga import events
from saga.drivers.replay import ReplayDriver

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
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/saga.db"


# -- PostgreSQL: a real server, started once per session in a temp dir -------------------------

def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        pytest.fail(f"PostgreSQL's {name} is not installed (tools/deps.sh pg installs it)")
    return found


class PgServer:
    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="saga-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = 54000 + os.getpid() % 1000
        self.as_user: list[str] = []
        self.user = pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:   # the server refuses to run as root: run it as postgres
            self.as_user = ["runuser", "-u", "postgres", "--"]
            self.user = "postgres"
            shutil.chown(self.root, "postgres")
        os.chmod(self.root, 0o700)
        self._ids = itertools.count(1)

    def _run(self, *cmd: str) -> None:
        proc = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            pytest.fail(f"PostgreSQL: {' '.join(cmd[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> None:
        self._run(_pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        opts = f"-k {self.root} -c listen_addresses='' -p {self.port} -c fsync=off"
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-o", opts, "-l", os.path.join(self.root, "log"), "-w",
                  "start")

    def stop(self) -> None:
        subprocess.run([*self.as_user, _pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}@/{db}?host={self.root}&port={self.port}"

    def new_database(self) -> str:
        import psycopg
        name = f"saga_test_{next(self._ids)}"
        with psycopg.connect(host=self.root, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server():
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/saga.db"
    return request.getfixturevalue("pg_server").new_database()
