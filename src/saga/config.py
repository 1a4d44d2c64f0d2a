"""saga's configuration: /etc/saga/saga.toml (docs/config.md).

Every key has a default, so a missing default file is fine and an empty
file is a complete configuration.  Unknown sections or keys and values of
the wrong type are errors (ConfigError, exit 78) naming the file and key:
a typo must not silently fall back to a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import tomllib
from dataclasses import dataclass, field
from typing import Any

from saga.errors import ConfigError, from_oserror

DEFAULT_PATH = "/etc/saga/saga.toml"
DEFAULT_DB = "sqlite:////var/lib/saga/saga.db"
DRIVERS = ("auto", "kmod", "ebpf", "replay")


def _positive(v: int) -> str | None:
    return None if v > 0 else "must be > 0"


def _not_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _one_of(*choices: str):
    def check(v: str) -> str | None:
        return None if v in choices else "must be one of " + ", ".join(choices)
    return check


def _key(default, check=None):
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class DaemonConfig:
    driver: str = _key("auto", _one_of(*DRIVERS))
    replay: str = _key("")                        # the recording, for driver = "replay"
    run_dir: str = _key("/run/saga")              # control socket and pidfile
    window_events: int = _key(1_000_000, _positive)
    batch_bytes: int = _key(1 << 20, _positive)
    archive: bool = _key(True)
    archive_queue: int = _key(262_144, _positive)   # events waiting for the database
    enrich: bool = _key(True)
    stop_timeout: float = _key(30.0, _not_negative)
    keep_capturing: bool = _key(False)            # leave the driver loaded when the daemon stops

    @property
    def socket_path(self) -> str:
        return os.path.join(self.run_dir, "saga.sock")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.run_dir, "saga.pid")


@dataclass(frozen=True)
class SagafsConfig:
    mount: str = _key("/sagafs")                  # "" = do not mount
    group: str = _key("")                         # a group allowed to read; "" = root only


@dataclass(frozen=True)
class StoreConfig:
    url: str = _key(DEFAULT_DB)
    host: str = _key("")                          # "" = this machine's host name
    retention_days: float = _key(30.0, _not_negative)
    retention_rows: int = _key(0, _not_negative)
    prune_interval: float = _key(300.0, _positive)

    @property
    def host_name(self) -> str:
        return self.host or socket.gethostname()


@dataclass(frozen=True)
class RulesConfig:
    lock: bool = _key(False)


@dataclass(frozen=True)
class Config:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    sagafs: SagafsConfig = field(default_factory=SagafsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    path: str | None = None                       # the file it came from, None for defaults

    def with_db(self, url: str | None) -> Config:
        """The same configuration with the database URL overridden (--db, SAGA_DB)."""
        if not url:
            return self
        return dataclasses.replace(self, store=dataclasses.replace(self.store, url=url))


_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "path"}
_SECTION_TYPES = {"daemon": DaemonConfig, "sagafs": SagafsConfig, "store": StoreConfig, "rules": RulesConfig}
_PY_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _closest(word: str, choices) -> str:
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


def load(path: str | None = None) -> Config:
    """The configuration at `path`; the default path may be missing (defaults), an explicit one may not."""
    explicit = path is not None
    path = path or DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: no such configuration file") from None
        return Config()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except OSError as exc:
        raise from_oserror(exc, f"reading {path}", ConfigError) from None
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
