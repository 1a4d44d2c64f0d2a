"""A private PostgreSQL server for tests and benchmarks: initdb in a directory of its own, a unix socket
there and no TCP port, run as the postgres user when we are root (the server refuses to run as root)."""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator


class PgError(RuntimeError):
    pass


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        raise PgError(f"PostgreSQL's {name} is not installed (tools/deps.sh pg installs it)")
    return found


class PgServer:
    """root: where its data and socket live (default: a new temporary directory, removed by stop());
    a root given is kept, and a server initialised there before is started again."""

    def __init__(self, root: str | None = None) -> None:
        self.keep = root is not None
        self.root = root or tempfile.mkdtemp(prefix="saga-pg-")
        os.makedirs(self.root, exist_ok=True)
        self.data = os.path.join(self.root, "data")
        self.port = 54000 + os.getpid() % 1000
        self.as_user: list[str] = []
        self.user = pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            self.user = "postgres"
            shutil.chown(self.root, "postgres")
        os.chmod(self.root, 0o700)
        self._ids = itertools.count(1)

    def _run(self, *cmd: str) -> None:
        proc = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise PgError(f"PostgreSQL: {' '.join(cmd[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> None:
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run(pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        opts = f"-k {self.root} -c listen_addresses='' -p {self.port} -c fsync=off"
        self._run(pg_bin("pg_ctl"), "-D", self.data, "-o", opts, "-l", os.path.join(self.root, "log"), "-w",
                  "start")

    def stop(self) -> None:
        subprocess.run([*self.as_user, pg_bin("pg_ctl"), "-D", self.data, "-m", "fast" if self.keep else "immediate",
                        "-w", "stop"], capture_output=True, timeout=120)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}@/{db}?host={self.root}&port={self.port}"

    def new_database(self, name: str | None = None) -> str:
        import psycopg
        name = name or f"saga_test_{next(self._ids)}"
        with psycopg.connect(host=self.root, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop_server(self) -> None:
        """Take the server down, its data kept, as an outage would (tests/faults); start() brings it back."""
        self._run(pg_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop")


def serving() -> Iterator[PgServer]:
    """A test session's server (the body of its `pg_server` fixture): started once, stopped at the end;
    a server that cannot start fails the tests that need it with the reason."""
    import pytest  # here: bench/query uses this module without pytest

    server = PgServer()
    try:
        try:
            server.start()
        except PgError as e:
            pytest.fail(str(e))
        yield server
    finally:
        server.stop()
