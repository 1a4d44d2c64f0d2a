"""A real PostgreSQL server for tests, in a temporary directory (unix socket only), shared by the suites.

Started with initdb and pg_ctl as the `postgres` user when run as root; a
failure to start fails the test (never a skip: tools/deps.sh pg installs
the server).  `stop_server`/`start_server` take it down and up again with
its data (the fault suite's database outages).
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest


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
        self.start_server()

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

    def stop_server(self) -> None:
        """Take the server down (its data stays), as an outage would."""
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop")

    def start_server(self) -> None:
        """Bring it back after stop_server."""
        opts = f"-k {self.root} -c listen_addresses='' -p {self.port} -c fsync=off"
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-o", opts, "-l", os.path.join(self.root, "log"), "-w",
                  "start")
