"""What commands share: the configuration, the store, the driver, the daemon's socket.

Each is opened on first use and closed when the command ends, so `saga
rules list` never touches a database it does not need and `saga query`
never opens a driver.  Tests pass an Env with a driver of their own
(`CliRunner().invoke(app, args, obj=Env(driver=ReplayDriver(...)))`);
an injected driver is never closed by the CLI.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from saga import config as configmod
from saga.cli.progress import Progress
from saga.config import Config

if TYPE_CHECKING:       # imported on first use: a command pays only for what it uses (docs/cli.md)
    from saga.daemon.client import DaemonClient
    from saga.drivers import Driver
    from saga.filters import EventFilter
    from saga.rules.service import RulesService
    from saga.store import Store
    from saga.store.query import Archived, Search
    from saga.store.reader import Reader


class Env:
    def __init__(self, *, driver: Driver | None = None, config: Config | None = None) -> None:
        self._injected_driver = driver
        self._config = config
        self._driver: Driver | None = None
        self._store: Store | None = None
        self.config_path: str | None = None
        self.db: str | None = None
        self.debug = False

    def configure(self, *, config_path: str | None, db: str | None, debug: bool) -> None:
        self.config_path = config_path
        self.db = db
        self.debug = debug

    @cached_property
    def config(self) -> Config:
        base = self._config if self._config is not None else configmod.load(self.config_path)
        return base.with_db(self.db)

    @property
    def host(self) -> str:
        return self.config.store.host_name

    def store(self, *, create: bool = True) -> Store:
        """The store; create=False (reading events) refuses to create a SQLite archive that is not there."""
        if self._store is None:
            from saga.store import Store
            self._store = Store.open(self.config.store.url, create=create)
        return self._store

    def reader(self) -> Reader:
        """A read-only connection to the archive, which must exist (no SQLAlchemy: saga.store.reader)."""
        from saga.store.reader import open_reader
        return open_reader(self.config.store.url)

    def search(self, flt: EventFilter, limit: int | None) -> list[Archived]:
        """The newest `limit` archived events that match (None: all), from an archive that must exist."""
        from saga.store.query import search
        if limit is not None and limit >= 1 << 63:    # more than a database counts (SQL LIMIT is 64-bit): all
            limit = None
        with self.reader() as db:
            return search(db, flt, limit)

    @contextmanager
    def searching(self, flt: EventFilter) -> Iterator[tuple[Search, Progress]]:
        """A search of the archive (which must exist), with its progress display on a terminal."""
        from saga.store.query import Search
        with self.reader() as db:
            search: Search | None = None
            with Progress(lambda: search.total_batches() if search else 0) as progress:
                search = Search(db, flt, progress.tick)
                yield search, progress

    def driver(self) -> Driver:
        """The capture driver, attached without loading anything (DriverUnavailable says how to load it)."""
        if self._injected_driver is not None:
            return self._injected_driver
        if self._driver is None:
            from saga.drivers import open_driver
            c = self.config.daemon
            self._driver = open_driver(c.driver, load=False, replay_path=c.replay or None)
        return self._driver

    def rules(self, *, offline: bool = False) -> RulesService:
        from saga.rules.service import RulesService
        return RulesService(self.store(), None if offline else self.driver(), self.host)

    def daemon(self) -> DaemonClient:
        from saga.daemon.client import DaemonClient
        return DaemonClient(self.config.daemon.socket_path)

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        if self._store is not None:
            self._store.close()
            self._store = None
