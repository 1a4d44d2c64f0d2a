"""`saga daemon`: open the driver, install the stored rules, drain, archive, serve (docs/daemon.md).

Start: take the pidfile lock, open the store (schema brought up to date),
open the driver with load=True, install the stored rules (the database is
the source of truth), enable capture, start the archiver thread, then run
on trio: the drain loop, the control socket and, when
available, sagafs.  SIGTERM/SIGINT: stop draining, unmount, write
everything drained to the store, exit 0.  SIGHUP: reload the configuration
and the rules.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import math
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass

import trio
import trio.lowlevel

from saga import config as configmod
from saga import events, fastrender, render
from saga.config import Config
from saga.daemon import losses
from saga.daemon.archiver import LINGER_S, Archiver, Retention
from saga.daemon.bounds import DiskBounds
from saga.daemon.control import ControlServer
from saga.daemon.enrich import Enricher
from saga.daemon.spool import Spool, parse_cursor
from saga.daemon.state import DaemonState
from saga.daemon.window import EventWindow
from saga.drivers import Driver, lifetime
from saga.errors import (
    EX_TEMPFAIL,
    DriverError,
    DriverUnavailable,
    OSFailure,
    RulesLocked,
    SagaError,
    StoreError,
    from_oserror,
)
from saga.rules import grammar
from saga.rules.service import RulesService
from saga.store import Store, cursor
from saga.store import engine as store_engine
from saga.store import rules as stored_rules
from saga.store.models import Host

log = logging.getLogger("saga.daemon")

# Driver errors after which reading can never work again.
_FATAL_ERRNOS = {errno.ENODEV, errno.EBADF, errno.ENXIO}
_READS_PER_WAKE = 64
# A wake of the drain costs about the same for one record as for a thousand: after one that found little,
# let records gather for a moment (the kernel's buffers hold seconds of a storm).  Waking for every few
# records cost 4.7 us of CPU per event at 50,000 events/s against 1.1 at 200,000/s (bench/daemon).  A wake
# reads until a short read (the driver had no more), not until an empty one: each read costs the same
# per-read work (spool, window, enricher, archiver queue) however few records it holds.
_LITTLE_BYTES = 256 << 10
_GATHER_S = 0.02
# While nobody follows the live stream (`saga log -f`, a /sagafs/pipe reader), the eBPF ring's periodic check
# runs every _LAZY_WAKE_S instead of every 50 ms: each wake costs the drain a fixed ~0.3 ms (20 a second were
# 0.12 us per event at 50,000 events/s, and most of an idle daemon's CPU).  The ring's fill mark still wakes
# the drain at once in a storm; a follower, a /sagafs file opened or `saga log` wakes it at once too.
LAZY_WAKE_S = 0.25
_LOOK_EVERY_S = 1.0           # how often the loss monitor looks at the counters
NOTIFY_EVERY = 5.0            # seconds between STATUS= updates


@dataclass(frozen=True)
class Options:
    """What the command line adds to the configuration."""

    config_path: str | None = None   # reread on SIGHUP (None: the default path)
    reload_config: bool = True       # False: a configuration given as an object (tests); reload does rules only
    db: str | None = None            # --db / SAGA_DB, kept across reloads
    driver: str | None = None        # --driver (default: daemon.driver)
    replay: str | None = None        # --replay FILE (default: daemon.replay)
    mount: str | None = None         # --mount PATH
    no_mount: bool = False           # --no-mount


def sagafs_server():
    """(saga.sagafs.serve, None), or (None, why sagafs cannot run in this installation)."""
    try:
        from saga import sagafs
    except ImportError as exc:       # pyfuse3 or libfuse3 missing
        return None, str(exc)
    return sagafs.serve, None


def resolve_mount(config: Config, opts: Options):
    """(mount point or None, serve function or None); an explicit --mount that cannot work is an error."""
    if opts.no_mount:
        return None, None
    path = opts.mount or config.sagafs.mount or None
    if path is None:
        return None, None
    serve, why = sagafs_server()
    if serve is None:
        if opts.mount:
            raise DriverUnavailable(f"sagafs cannot run here ({why}): run the daemon with --no-mount")
        log.warning("sagafs cannot run here (%s): not mounting %s", why, path)
        return None, None
    return os.path.abspath(path), serve


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about readiness and stopping; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(message.encode(), addr)
    except OSError as exc:
        log.warning("sd_notify: %s", exc)


def status_line(status: dict, rate: float | None) -> str:
    """systemd's STATUS= (what `systemctl status saga` shows): the driver, events per second, and the
    counts of losses.status_line."""
    d = status["driver"]
    driver = f"driver {d['name']} {d['version']}" + ("" if d["enabled"] else " (capture DISABLED)")
    return "; ".join([driver, "starting" if rate is None else f"{rate:,.0f} events/s", losses.status_line(status)])


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a group of task errors: a SagaError if there is one."""
    errors: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            errors.append(exc)
    return next((e for e in errors if isinstance(e, SagaError)), errors[0] if errors else group)


class PidFile:
    """daemon.run_dir/saga.pid, locked for the daemon's life: a second daemon is refused."""

    def __init__(self, run_dir: str, path: str) -> None:
        self.run_dir = run_dir
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> PidFile:
        try:
            os.makedirs(self.run_dir, mode=0o755, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise from_oserror(exc, f"cannot create {self.path}", OSFailure, hint="run the daemon as root") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SagaError(f"a saga daemon is already running (pid {other})", exit_code=EX_TEMPFAIL) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self.fd is not None:
            os.close(self.fd)


class Daemon:
    """One run of the daemon.  `driver` injects an open driver (tests); else it is opened with load=True."""

    def __init__(self, config: Config, opts: Options, *, driver: Driver | None = None) -> None:
        self.config = config
        self.opts = opts
        self.state: DaemonState | None = None
        self.fatal: SagaError | None = None
        self.mount, self.serve_fs = resolve_mount(config, opts)
        self._driver = driver
        self.owned: lifetime.Owned | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self.ready = threading.Event()       # set once serving (tests, embedding)

    # -- start and stop ---------------------------------------------------------------
    def open(self) -> DaemonState:
        c = self.config
        store = open_archive(c)
        spool = None
        try:
            host = c.store.host_name
            host_id = self._register_host(store, host)
            seed_rules(store, host, host_id, c.rules.initial_file)
            spool = open_spool(c)
            driver = self._driver
            if driver is None:
                kind = self.opts.driver or c.daemon.driver
                self.owned = lifetime.own(kind, replay_path=self.opts.replay or c.daemon.replay or None)
                driver = self.owned.driver
        except BaseException:
            if spool is not None:
                spool.close(clean=False)
            store.close()
            raise
        try:
            rules = RulesService(store, driver, host)
            if not driver.info().enabled:
                driver.set_enabled(True)
            self._install_rules(rules)
            enricher = Enricher()
            archiver = None
            if c.daemon.archive:
                archiver = Archiver(store, host_id, enricher=enricher if c.daemon.enrich else None,
                                    max_queued=c.daemon.archive_queue, retention=self._retention(c),
                                    spool=spool,
                                    new_archive=lambda: self._new_archive(store, host, driver),
                                    linger=LINGER_S)
                archiver.bounds = DiskBounds(store, c.store, warn_every=c.daemon.warn_interval)
                if spool is not None:
                    self._replay(spool, store, host_id, archiver)
            elif spool is not None:
                spool.recover(None)
            state = DaemonState(config=c, driver=driver, store=store, rules=rules,
                                window=EventWindow(max_events=c.daemon.window_events), enricher=enricher,
                                archiver=archiver, host=host, spool=spool,
                                ring_drops_at_start=driver.stats().drops,
                                context=c.daemon.enrich and driver.name != "replay")
        except BaseException:
            self._release_driver(keep=False)
            if spool is not None:
                spool.close(clean=False)
            store.close()
            raise
        if spool is not None and spool.previous is not None:
            report_previous_run(spool.previous)
        if archiver is not None:
            archiver.start()
        if state.context:   # a recording's processes ran elsewhere: no unit or container for them
            render.context_of = enricher.where
        if not fastrender.available():
            log.warning("the compiled renderer cannot be used (%s): /sagafs renders its lines in Python, "
                        "about 20 times slower", fastrender.why_not())
        self.state = state
        return state

    @staticmethod
    def _register_host(store: Store, host: str) -> int:
        with store.session() as s, s.begin():
            return stored_rules.host_id(s, host)

    def _new_archive(self, store: Store, host: str, driver: Driver) -> int:
        """The archive was replaced by a new one (set aside, deleted): register this host in it and keep the
        rules in force there, since the new archive has none.  Returns the host's new id."""
        host_id = self._register_host(store, host)
        try:
            in_force = driver.list_rules()
            RulesService(store, None, host).replace(in_force)
            log.warning("stored the %d rules in force in the new archive", len(in_force))
        except SagaError as exc:
            log.error("could not store the rules in force in the new archive: %s", exc)
        return host_id

    @staticmethod
    def _replay(spool: Spool, store: Store, host_id: int, archiver: Archiver) -> None:
        """Hand the archiver what the spool holds beyond the archive's cursor (a crash, or a stop with the
        database down)."""
        try:
            text = cursor.read(store.engine, host_id)
        except SagaError as exc:
            log.error("cannot read the spool cursor from the archive (%s): replaying from the spool's own", exc)
            text = None
        replay = spool.recover(parse_cursor(text, spool.spool_id))
        for where, n in replay.pieces:
            archiver.submit_spooled(where, n)
        if replay.events:
            log.warning("the spool holds %d events the archive does not have yet: archiving them now",
                        replay.events)

    def _install_rules(self, rules: RulesService) -> bool:
        """The stored rules into the driver, then the lock if configured; True when the rules changed.

        Rules locked by an earlier run stay as they are until the driver is unloaded: that is a
        warning, not a reason to stop capturing.
        """
        try:
            changed = rules.sync()
        except RulesLocked:
            log.warning("the driver's rules are locked and differ from the stored ones: they stay as they are "
                        "until the driver is unloaded")
            return False
        driver = rules.require_driver()
        if changed:
            log.info("installed the %d stored rules in the %s driver", len(rules.stored()), driver.name)
        if self.config.rules.lock and not driver.info().locked:
            rules.lock()
        return changed

    @staticmethod
    def _retention(c: Config) -> Retention:
        return Retention(max_age_s=c.store.retention_days * 86400, max_rows=c.store.retention_rows,
                         interval_s=c.store.prune_interval)

    def close(self) -> int:
        """Flush the archive and release everything; the exit status."""
        state = self.state
        status = 0
        if state is not None:
            if state.archiver is not None:
                lost = state.archiver.stop(self.config.daemon.stop_timeout)
                if lost:
                    status = StoreError.exit_code
            report = state.status()
            log.info("stopped: %s", losses.status_line(report))
            lost_now = losses.lost_total(report)
            if lost_now:
                log.warning("this run lost %d events: %s", lost_now, _loss_summary(report))
            if state.spool is not None:
                state.spool.close(clean=True)
            self._release_driver(keep=self.config.daemon.keep_capturing)
            state.store.close()
            if render.context_of == state.enricher.where:
                render.context_of = None
        if self.fatal is not None:
            log.error("%s", self.fatal)
            status = self.fatal.exit_code
        return status

    def _release_driver(self, *, keep: bool) -> None:
        """Close the driver we own and unload it (unless keep): a stopped saga costs nothing per call."""
        owned, self.owned = self.owned, None
        if owned is None:   # an injected driver belongs to whoever injected it
            return
        try:
            owned.release(keep=keep)
        except SagaError as exc:
            log.error("stopping the driver: %s", exc)
        if keep and owned.backend is not None:
            log.info("the %s driver keeps capturing without the daemon (daemon.keep_capturing)", owned.backend.kind)

    def run(self, *, signals: bool = True) -> int:
        """The whole life of the daemon; returns its exit status.

        signals=False (a daemon in a thread, for tests) leaves signals alone: stop() ends it.
        """
        with PidFile(self.config.daemon.run_dir, self.config.daemon.pidfile):
            self.open()
            try:
                trio.run(self._serve, signals)
            except BaseExceptionGroup as group:   # trio groups task errors: report the one that matters
                raise _first_error(group) from None
            finally:
                status = self.close()
                sd_notify("STOPPING=1")
        return status

    def stop(self) -> None:
        """Ask a running daemon to stop, from any thread (as SIGTERM does)."""
        if self._token is not None and self._stop is not None:
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass

    # -- the event loop ------------------------------------------------------------------
    @property
    def _open_state(self) -> DaemonState:
        """The state of a daemon that open() set up (everything below runs after it)."""
        if self.state is None:
            raise RuntimeError("the daemon is not open")
        return self.state

    async def _serve(self, signals: bool) -> None:
        state = self._open_state
        self._token = trio.lowlevel.current_trio_token()
        self._stop = stop = trio.Event()
        async with trio.open_nursery() as nursery:
            if signals:
                await nursery.start(self._signals, stop)
            control = ControlServer(state, self.config.daemon.socket_path, self.reload)
            await nursery.start(control.serve)
            nursery.start_soon(self._drain, stop)
            nursery.start_soon(self._watch_losses)
            if self._open_state.context:
                nursery.start_soon(self._enrich)
            if self.serve_fs is not None:
                await self._mount(nursery)
            info = state.driver.info()
            log.info("running: driver %s %s, %d rules, control socket %s", info.driver, info.version,
                     info.nr_rules, self.config.daemon.socket_path)
            sd_notify("READY=1\nSTATUS=" + status_line(state.status(), None))
            self.ready.set()
            if os.environ.get("NOTIFY_SOCKET"):
                nursery.start_soon(self._notify_status)
            await stop.wait()
            nursery.cancel_scope.cancel()
        c = state.counters
        log.info("stopped draining after %d events", c.drained_events)

    async def _notify_status(self) -> None:
        """`systemctl status saga` shows the driver, the event rate and the drops (STATUS=, refreshed)."""
        state = self._open_state
        then, drained = time.monotonic(), state.counters.drained_events
        while True:
            await trio.sleep(NOTIFY_EVERY)
            now, n = time.monotonic(), state.counters.drained_events
            sd_notify("STATUS=" + status_line(state.status(), (n - drained) / (now - then)))
            then, drained = now, n

    async def _mount(self, nursery: trio.Nursery) -> None:
        """Mount sagafs; a mount point from the configuration that cannot be mounted is logged, not fatal."""
        try:
            await nursery.start(self.serve_fs, self._open_state, self.mount)
        except DriverUnavailable as exc:
            if self.opts.mount:
                raise
            log.error("%s: running without sagafs", exc)
            return
        self._open_state.mountpoint = self.mount
        log.info("sagafs mounted at %s", self.mount)

    async def _signals(self, stop: trio.Event, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as received:
            task_status.started()
            async for signum in received:
                if signum == signal.SIGHUP:
                    await self.reload()
                else:
                    log.info("stopping (%s)", signal.Signals(signum).name)
                    stop.set()

    async def _drain(self, stop: trio.Event) -> None:
        """Read records whenever the driver's descriptor polls readable; never blocks on the archive."""
        state = self._open_state
        try:
            await self._drain_loop(stop, state)
        finally:
            state.drain_lazy = False
            state.drain_wait = None

    async def _drain_loop(self, stop: trio.Event, state: DaemonState) -> None:
        driver = state.driver
        spool = state.spool
        fd = driver.fileno()
        size = self.config.daemon.batch_bytes
        last_empty = -math.inf
        while True:
            lazy = not state.followed()
            if lazy != state.drain_lazy:
                state.drain_lazy = lazy
                try:
                    driver.set_wake_period(LAZY_WAKE_S if lazy else None)
                except DriverError as exc:
                    log.error("setting the driver's periodic check: %s", exc)
            with trio.CancelScope() as waiting:
                state.drain_wait = waiting
                await trio.lowlevel.wait_readable(fd)
            state.drain_wait = None
            got = 0
            for _ in range(_READS_PER_WAKE):
                try:
                    buf = driver.read_raw(size, timeout=0)
                except DriverError as exc:
                    state.counters.read_errors += 1
                    if exc.errno in _FATAL_ERRNOS:
                        self.fatal = exc
                        stop.set()
                        return
                    log.error("reading events: %s", exc)
                    await trio.sleep(0.5)
                    break
                if not buf:
                    break
                if spool is not None:
                    spool.in_hand(len(buf))      # a crash from here on is counted (spool.py)
                got += len(buf)
                try:
                    sizes = events.sizes(buf)       # not parsed: readers parse what they read
                except events.RecordError as exc:   # a driver bug: say so, keep going
                    state.counters.malformed_reads += 1
                    state.counters.malformed_bytes += len(buf)
                    log.error("the driver returned malformed records (%d bytes lost): %s", len(buf), exc)
                    if spool is not None:
                        spool.in_hand(0, 0)
                    continue
                state.ingest(buf, sizes)
                await trio.lowlevel.checkpoint()
                if len(buf) < size // 2:
                    break       # the driver had no more: the rest comes at the next wake, not a read each
            state.drained_pass()
            now = trio.current_time()
            if got == 0:
                # The eBPF ring's periodic tick finds nothing when idle: wait for the next one.  A descriptor
                # polling readable while empty (a second empty wake within _GATHER_S) must not spin.
                if now - last_empty < _GATHER_S:
                    await trio.sleep(_GATHER_S)
                last_empty = now
            elif got < _LITTLE_BYTES:
                await trio.sleep(_GATHER_S)

    async def _enrich(self) -> None:
        """Look up the processes and cgroups new events came from (in a thread): unit, container, namespace pids."""
        state = self._open_state
        enricher = state.enricher
        while True:
            # Woken by a read that noted unknown processes, not every 50 ms: an idle daemon's wakes cost CPU.
            await state.lookups_wanted.wait()
            state.lookups_wanted = trio.Event()
            await trio.sleep(0.05)      # a burst of new processes: one lookup for the lot
            pending = enricher.take_pending()
            if pending[0] or pending[1]:
                await trio.to_thread.run_sync(enricher.lookup_all, pending)

    async def _watch_losses(self) -> None:
        """Look at the loss counters once a second; warn (rate-limited) about each cause that lost events."""
        monitor = losses.LossMonitor(every=self.config.daemon.warn_interval)
        monitor.start(self._open_state.status())
        while True:
            await trio.sleep(_LOOK_EVERY_S)
            monitor.every = self.config.daemon.warn_interval
            monitor.look(self._open_state.status())

    async def reload(self) -> None:
        """SIGHUP: reread the configuration, apply what can change live, reinstall the stored rules."""
        state = self._open_state
        sd_notify("RELOADING=1")
        if self.opts.reload_config:
            try:
                new = configmod.load(self.opts.config_path).with_db(self.opts.db)
            except SagaError as exc:
                log.error("reload: %s (keeping the running configuration)", exc)
            else:
                self._apply(new)
        try:
            changed = await trio.to_thread.run_sync(self._install_rules, state.rules)
            log.info("reloaded%s", ": rules reinstalled from the database" if changed else "")
        except SagaError as exc:
            log.error("reload: rules: %s", exc)
        state.counters.reloads += 1
        sd_notify("READY=1")

    def _apply(self, new: Config) -> None:
        old = self.config
        restart = configmod.needs_restart(old, new)      # the keys marked restart in saga.config
        if restart:
            log.warning("reload: %s changed: takes effect when the daemon restarts", ", ".join(restart))
        state = self._open_state
        archiver = state.archiver
        if archiver is not None:
            archiver.retention = self._retention(new)
            archiver.enricher = state.enricher if new.daemon.enrich else None
            archiver.max_queued = new.daemon.archive_queue
            if archiver.bounds is not None:
                archiver.bounds.config = new.store
                archiver.bounds.warn_every = new.daemon.warn_interval
                archiver.bounds.next_check = 0.0
        if state.spool is not None:
            state.spool.max_bytes = new.daemon.spool_max_bytes
        self.config = configmod.keep_running(old, new)
        state.config = self.config


def open_archive(c: Config) -> Store:
    """The daemon's store.  A SQLite archive it cannot even open because it is damaged is set aside and a new
    one started (the service must come back); its file is private (0600, 0640 with store.group)."""
    gid = configmod.group_id("store.group", c.store.group) if c.store.group else None
    try:
        return Store.open(c.store.url, own=True, gid=gid, busy_timeout=c.store.busy_timeout)
    except store_engine.ArchiveCorrupt as exc:
        path = store_engine.sqlite_path(store_engine.normalize_url(c.store.url))
        if path is None:
            raise
        aside = store_engine.set_aside(path)
        log.error("%s: moved it to %s and started a new archive (`sqlite3 %s .recover` may save what it held)",
                  exc, aside, aside)
        return Store.open(c.store.url, own=True, gid=gid, busy_timeout=c.store.busy_timeout)


def seed_rules(store: Store, host: str, host_id: int, path: str) -> None:
    """A host's first start: store the rules of rules.initial_file (the default rule file), so the daemon
    installs them.  A host that ever had rules keeps its own (the archive is the truth); a file that does
    not exist means none (the driver's default: log everything); a bad file is logged, not fatal."""
    if not path:
        return
    with store.session() as s:
        host_row = s.get(Host, host_id)
        if host_row is None or host_row.next_rule_id != 1:
            return                                   # rules were given ids on this host before
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        log.info("no initial rule file at %s: every call is logged until rules are added", path)
        return
    except OSError as exc:
        log.error("cannot read the initial rule file %s: %s", path, exc.strerror)
        return
    try:
        rules = RulesService(store, None, host).replace(grammar.parse_lines(text, source=path))
    except SagaError as exc:
        log.error("the initial rule file is not loaded: %s", exc)
        return
    log.info("first start on this host: stored the %d rules of %s", len(rules), path)


def open_spool(c: Config) -> Spool | None:
    """The spool and its crash state page; a spool directory that cannot be used is logged, not fatal."""
    try:
        return Spool(c.spool_dir, c.daemon.spool_max_bytes)
    except OSError as exc:
        log.error("cannot use the spool directory %s (%s): running without a spool; a crash will lose the events "
                  "waiting for the database, uncounted", c.spool_dir, exc.strerror or exc)
        return None


def report_previous_run(prev) -> None:
    """Say at start what the run before this one ended with."""
    if prev.clean:
        return
    msg = (f"the previous daemon (pid {prev.pid}) did not stop in order (killed or crashed): it had drained "
           f"{prev.drained} events and archived {prev.archived}")
    if prev.recovered:
        msg += f"; {prev.recovered} waited in the spool and are archived now"
    if prev.lost or prev.lost_at_most:
        msg += f"; the crash lost {prev.lost} events" + (
            f" and up to {prev.lost_at_most} more" if prev.lost_at_most else "")
        log.error("%s", msg)
    else:
        log.warning("%s; none was lost", msg)


def _loss_summary(report: dict) -> str:
    parts = []
    if report["losses"]["ring"]:
        parts.append(f"{report['losses']['ring']} dropped by the driver's ring (the daemon read too slowly)")
    arc = report["archive"]
    if arc.get("enabled"):
        for cause, n in arc["dropped_by"].items():
            if n:
                parts.append(f"{n} dropped by the archive ({cause.replace('_', ' ')})")
    return "; ".join(parts)
