"""errno <-> SagaError (saga.errors): the translation, and the boundaries that use it."""
from __future__ import annotations

import errno
import os

import pytest
from typer.testing import CliRunner
from unit_config import make_config

from saga import config
from saga.cli.context import Env
from saga.cli.main import app
from saga.daemon.client import DaemonClient
from saga.daemon.service import PidFile
from saga.errors import (
    EX_CONFIG,
    EX_IOERR,
    EX_NOPERM,
    EX_OSERR,
    EX_USAGE,
    ConfigError,
    DriverError,
    OSFailure,
    PermissionDenied,
    RulesLocked,
    SagaError,
    StoreError,
    UsageError,
    from_oserror,
)
from saga.sagafs.rulesfile import NoSuchRule


def test_permission_errnos_become_permission_denied_with_the_hint():
    for code in (errno.EPERM, errno.EACCES):
        e = from_oserror(OSError(code, os.strerror(code)), "opening x", StoreError, hint="run as root, or pass --db")
        assert type(e) is PermissionDenied and e.exit_code == EX_NOPERM and e.errno == code
        assert str(e) == f"opening x: {os.strerror(code)} (run as root, or pass --db)"
    e = from_oserror(OSError(errno.EACCES, "x"), "w", denied=ConfigError)
    assert type(e) is ConfigError and e.errno == errno.EACCES


def test_other_errnos_become_the_given_class_and_keep_the_errno():
    e = from_oserror(OSError(errno.ENOSPC, "x"), "writing y", StoreError)
    assert type(e) is StoreError and e.errno == errno.ENOSPC and str(e) == "writing y: No space left on device"
    e = from_oserror(OSError(errno.ENODEV, "x"), "reading z")
    assert type(e) is DriverError and e.exit_code == EX_OSERR and e.errno == errno.ENODEV
    e = from_oserror(OSError("AF_UNIX path too long"), "binding", OSFailure)   # no errno at all
    assert str(e) == "binding: AF_UNIX path too long" and e.errno == errno.EIO


def test_every_error_stands_for_an_errno():
    """The errnos a write to /sagafs/rules fails with (docs/sagafs.md)."""
    assert UsageError("x").errno == errno.EINVAL
    assert NoSuchRule("no rule with id 9", "-9").errno == errno.ENOENT
    assert RulesLocked("x").errno == errno.EPERM
    assert PermissionDenied("x").errno == errno.EACCES
    assert StoreError("x").errno == errno.EIO and SagaError("x").errno == errno.EIO
    assert DriverError("x").errno == errno.EIO and DriverError("x", errno=errno.EINVAL).errno == errno.EINVAL


def test_a_pidfile_that_cannot_be_created_is_an_os_failure_not_an_internal_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSFailure) as e:                       # ENOTDIR: run_dir below a file
        PidFile(str(blocker / "run"), str(blocker / "run" / "saga.pid")).__enter__()
    assert e.value.exit_code == EX_OSERR and e.value.errno == errno.ENOTDIR


def test_the_control_socket_path_and_the_client(tmp_path):
    client = DaemonClient(str(tmp_path / ("x" * 200)))          # longer than sun_path: no errno
    with pytest.raises(OSFailure, match="cannot talk to the daemon"):
        list(client.request({"op": "status"}))


def test_configuration_files_that_cannot_be_read(tmp_path, monkeypatch):
    bad = tmp_path / "saga.toml"
    bad.write_bytes(b'[store]\nurl = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(str(bad))

    def refuse(*_a, **_k):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(PermissionDenied, match="run as root"):
        config.load(str(tmp_path / "saga.toml"))


def _saga(tmp_path, sqlite_url, replay, *args):
    env = Env(driver=replay, config=make_config(tmp_path, sqlite_url)) if replay is not None else None
    r = CliRunner().invoke(app, list(args), obj=env)
    assert not r.exception or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r


def test_rule_files_that_cannot_be_read_or_written(tmp_path, sqlite_url, replay):
    r = _saga(tmp_path, sqlite_url, replay, "rules", "load", str(tmp_path / "missing.rules"))
    assert r.exit_code == EX_USAGE and "No such file or directory" in r.stderr
    r = _saga(tmp_path, sqlite_url, replay, "rules", "save", str(tmp_path / "no" / "dir" / "x.rules"))
    assert r.exit_code == EX_IOERR and "writing" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    r = _saga(tmp_path, sqlite_url, None, "--config", str(bad), "status")     # the CLI reads it
    assert r.exit_code == EX_CONFIG and "not UTF-8" in r.stderr


def test_a_refused_driver_change_keeps_its_errno_and_falls_back_on_the_one_translation():
    from saga.drivers.base import refusal
    e = refusal(errno.EPERM, "replacing the rules")
    assert type(e) is PermissionDenied and e.errno == errno.EPERM and e.exit_code == EX_NOPERM
    assert str(e) == "replacing the rules: Operation not permitted (needs CAP_SYS_ADMIN: run as root)"
    e = refusal(errno.EIO, "locking the rules")
    assert type(e) is DriverError and e.errno == errno.EIO and str(e) == "locking the rules: Input/output error"
    assert type(refusal(errno.EBUSY, "x")) is RulesLocked
    assert [refusal(code, "x").errno for code in (errno.EEXIST, errno.ENOSPC, errno.EINVAL)] == \
        [errno.EEXIST, errno.ENOSPC, errno.EINVAL]
