"""saga's configuration: /etc/saga/saga.toml (docs/config.md).

Every key has a default, so a missing default file is fine and an empty
file is a complete configuration.  Unknown sections or keys and values of
the wrong type are errors (ConfigError, exit 78) naming the file and key:
a typo must not silently fall back to a default.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from saga.errors import ConfigError, from_oserror

DEFAULT_PATH = "/etc/saga/saga.toml"
DEFAULT_DB = "sqlite:////var/lib/saga/saga.db"
DEFAULT_SPOOL = "/var/lib/saga/spool"
DEFAULT_RULES = "/etc/saga/rules.d/default.rules"
DRIVERS = ("auto", "kmod", "ebpf", "replay")


def _positive(v: int) -> str | None:
    return None if v > 0 else "must be > 0"


def _not_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> tuple[float, bool]:
    """A disk size setting: (bytes, False), or (a share of the filesystem, True) for "N%".

    "512" and "512M" are MiB (a bare number is MiB, as auditd's space_left), "2G", "100K", "1T"; "10%" of
    the filesystem's size; "0" means none.  ValueError for anything else."""
    t = text.strip().upper()
    if t.endswith("%"):
        share = float(t[:-1])
        if not 0 <= share < 100:
            raise ValueError(text)
        return share / 100, True
    unit = t[-1:] if t[-1:] in _UNITS and not t[-1:].isdigit() else ""
    number = float(t[:-1] if unit else t)
    if number < 0:
        raise ValueError(text)
    return number * _UNITS[unit], False


def _size(v: str) -> str | None:
    try:
        parse_size(v)
    except ValueError:
        return 'must be a size: MiB ("512"), with a unit ("512M", "2G") or a share of the filesystem ("10%")'
    return None


def _one_of(*choices: str):
    def check(v: str) -> str | None:
        return None if v in choices else "must be one of " + ", ".join(choices)
    return check


def _key(default, check=None, *, restart: bool = False):
    """A key; restart=True: read once at daemon start, so a reload keeps its running value (and says so)."""
    return field(default=default, metadata={"check": check, "restart": restart})


@dataclass(frozen=True)
class DaemonConfig:
    driver: str = _key("auto", _one_of(*DRIVERS), restart=True)
    replay: str = _key("", restart=True)          # the recording, for driver = "replay"
    run_dir: str = _key("/run/saga", restart=True)  # control socket and pidfile
    window_events: int = _key(1_000_000, _positive, restart=True)
    batch_bytes: int = _key(1 << 20, _positive, restart=True)
    archive: bool = _key(True, restart=True)
    archive_queue: int = _key(262_144, _positive)   # events waiting for the database
    enrich: bool = _key(True)
    stop_timeout: float = _key(30.0, _not_negative)
    keep_capturing: bool = _key(False)            # leave the driver loaded when the daemon stops
    spool_dir: str = _key("", restart=True)       # drained events on disk until archived; "" = beside the archive
    spool_max_bytes: int = _key(256 << 20, _not_negative)   # 0 = no spool
    warn_interval: float = _key(60.0, _positive)  # at most one loss warning per cause this often

    @property
    def socket_path(self) -> str:
        return os.path.join(self.run_dir, "saga.sock")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.run_dir, "saga.pid")


@dataclass(frozen=True)
class SagafsConfig:
    mount: str = _key("/sagafs", restart=True)    # "" = do not mount
    group: str = _key("", restart=True)           # a group allowed to read; "" = root only
    max_opens_per_user: int = _key(16, _positive)  # log and pipe files one user (not root) may hold open


@dataclass(frozen=True)
class StoreConfig:
    url: str = _key(DEFAULT_DB, restart=True)
    host: str = _key("", restart=True)            # "" = this machine's host name
    retention_days: float = _key(30.0, _not_negative)
    retention_rows: int = _key(0, _not_negative)
    prune_interval: float = _key(300.0, _positive)
    group: str = _key("", restart=True)           # a group allowed to read a SQLite archive; "" = root only
    busy_timeout: float = _key(30.0, _positive, restart=True)  # a SQLite writer waits this long for a lock
    # Disk bounds (saga.daemon.bounds; anchor: auditd.conf's max_log_file, space_left, admin_space_left).
    max_size: str = _key("25%", _size)            # the archive's cap ("0": none)
    max_size_action: str = _key("prune", _one_of("prune", "suspend", "warn"))
    space_left: str = _key("10%", _size)          # free space on the archive's filesystem to keep
    space_left_action: str = _key("prune", _one_of("prune", "suspend", "warn"))
    admin_space_left: str = _key("5%", _size)     # below this, whatever else happens, archiving pauses
    admin_space_left_action: str = _key("suspend", _one_of("suspend", "warn"))
    bounds_interval: float = _key(5.0, _positive)  # how often the daemon checks them

    @property
    def host_name(self) -> str:
        import socket
        return self.host or socket.gethostname()


@dataclass(frozen=True)
class RulesConfig:
    lock: bool = _key(False)
    initial_file: str = _key(DEFAULT_RULES)       # loaded into the archive on a host's first start ("" = none)


@dataclass(frozen=True)
class Config:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    sagafs: SagafsConfig = field(default_factory=SagafsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    path: str | None = None                       # the file it came from, None for defaults

    @property
    def spool_dir(self) -> str:
        """daemon.spool_dir, or its default: beside a SQLite archive (saga.db.spool), else DEFAULT_SPOOL."""
        if self.daemon.spool_dir:
            return self.daemon.spool_dir
        url = self.store.url
        if "://" not in url:
            return os.path.abspath(url) + ".spool"
        if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
            return os.path.abspath(url[len("sqlite:///"):]) + ".spool"
        return DEFAULT_SPOOL

    def with_db(self, url: str | None) -> Config:
        """The same configuration with the database URL overridden (--db, SAGA_DB)."""
        if not url:
            return self
        return dataclasses.replace(self, store=dataclasses.replace(self.store, url=url))


_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "path"}
_SECTION_TYPES = {"daemon": DaemonConfig, "sagafs": SagafsConfig, "store": StoreConfig, "rules": RulesConfig}
_PY_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def restart_keys() -> list[tuple[str, str]]:
    """(section, key) of every key a running daemon reads only at start."""
    return [(name, f.name) for name in _SECTION_TYPES for f in dataclasses.fields(_SECTION_TYPES[name])
            if f.metadata["restart"]]


def needs_restart(old: Config, new: Config) -> list[str]:
    """The restart keys whose values differ, as `section.key`."""
    return [f"{s}.{k}" for s, k in restart_keys() if getattr(getattr(old, s), k) != getattr(getattr(new, s), k)]


def keep_running(old: Config, new: Config) -> Config:
    """`new` with every restart key at its running value (`old`'s): what a reload applies."""
    sections = {s: dataclasses.replace(getattr(new, s), **{k: getattr(getattr(old, s), k)
                                                             for s2, k in restart_keys() if s2 == s})
                for s in _SECTION_TYPES}
    return dataclasses.replace(new, **sections)


def _closest(word: str, choices) -> str:
    import difflib
    hint = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def _value(where: str, f: dataclasses.Field, value: Any) -> Any:
    want = _PY_TYPES[str(f.type)]       # a string: this module's annotations are not evaluated
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {f.type}, got {type(value).__name__} {value!r}")
    check = f.metadata.get("check")
    problem = check(value) if check else None
    if problem:
        raise ConfigError(f"{where} = {value!r}: {problem}")
    return value


def from_dict(data: dict, source: str = "<config>") -> Config:
    sections = {}
    for name, table in data.items():
        cls = _SECTION_TYPES.get(name)
        if cls is None:
            raise ConfigError(f"{source}: unknown section [{name}]{_closest(name, _SECTION_TYPES)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {name} must be a [{name}] table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in table.items():
            f = fields.get(key)
            if f is None:
                raise ConfigError(f"{source}: unknown key {key!r} in [{name}]{_closest(key, fields)}")
            values[key] = _value(f"{source}: [{name}] {key}", f, value)
        sections[name] = cls(**values)
    return Config(**sections, path=source if source != "<config>" else None)


def group_id(key: str, name: str) -> int:
    """The id of the group a key names (sagafs.group, store.group); an unknown group is a ConfigError."""
    import grp
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"{key}: no such group {name!r}") from None


def load(path: str | None = None) -> Config:
    """The configuration at `path`; the default path may be missing (defaults), an explicit one may not.
    (difflib, grp, socket and tomllib are imported where used: `saga query` starts without most of them.)"""
    explicit = path is not None
    path = path or DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: no such configuration file") from None
        return Config()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except OSError as exc:
        raise from_oserror(exc, f"reading {path}", ConfigError) from None
    import tomllib
    try:
        data = tomllib.loads(raw.decode())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return from_dict(data, path)


def defaults_toml() -> str:
    """The default configuration as TOML (docs/config.md and packaging quote it)."""
    out = []
    base = Config()
    for name in _SECTIONS:
        out.append(f"[{name}]")
        section = getattr(base, name)
        for f in dataclasses.fields(section):
            v = getattr(section, f.name)
            out.append(f"{f.name} = {_toml(v)}")
        out.append("")
    return "\n".join(out)


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)
