"""The TOML configuration: defaults, every key, and one-line errors for mistakes."""
from __future__ import annotations

import tomllib

import pytest

from saga import config
from saga.errors import ConfigError


def test_missing_default_file_means_defaults(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "DEFAULT_PATH", str(tmp_path / "absent.toml"))
    c = config.load()
    assert c == config.Config()
    assert c.store.url == "sqlite:////var/lib/saga/saga.db"
    assert c.daemon.socket_path == "/run/saga/saga.sock" and c.sagafs.mount == "/sagafs"


def test_an_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(str(tmp_path / "absent.toml"))


def test_values_are_read_and_ints_widen_to_floats(tmp_path):
    p = tmp_path / "saga.toml"
    p.write_text('[store]\nurl = "postgresql://saga@db/saga"\nretention_days = 7\nretention_rows = 1000\n'
                 '[daemon]\ndriver = "ebpf"\narchive = false\n[rules]\nlock = true\n[sagafs]\ngroup = "adm"\n')
    c = config.load(str(p))
    assert (c.store.url, c.store.retention_days, c.store.retention_rows) == ("postgresql://saga@db/saga", 7.0, 1000)
    assert (c.daemon.driver, c.daemon.archive, c.rules.lock, c.sagafs.group) == ("ebpf", False, True, "adm")
    assert c.with_db("sqlite:////x.db").store.url == "sqlite:////x.db" and c.with_db(None) is c


@pytest.mark.parametrize("text, message", [
    ("[store]\nretention_dayz = 3\n", "unknown key 'retention_dayz' in \\[store\\]; did you mean 'retention_days'"),
    ("[stor]\n", "unknown section \\[stor\\]; did you mean 'store'"),
    ("[daemon]\ndriver = \"magic\"\n", "must be one of auto, kmod, ebpf, replay"),
    ("[daemon]\nwindow_events = \"many\"\n", "expected int, got str"),
    ("[daemon]\narchive = 1\n", "expected bool, got int"),
    ("[daemon]\nwindow_events = 0\n", "must be > 0"),
    ("[store]\nretention_days = -1\n", "must be >= 0"),
    ("store = 3\n", "must be a \\[store\\] table"),
    ("[store\n", "saga.toml"),
])
def test_mistakes_are_one_line_config_errors(tmp_path, text, message):
    p = tmp_path / "saga.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        config.load(str(p))
    assert "\n" not in str(err.value)


def test_the_default_toml_is_the_defaults():
    assert config.from_dict(tomllib.loads(config.defaults_toml())) == config.Config()


def test_docs_show_the_real_defaults():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    assert block.strip() == config.defaults_toml().strip()


def test_docs_mark_exactly_the_restart_keys():
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    marked = set()
    for section, body in re.findall(r"^## `\[(\w+)\]`\n(.*?)(?=^## |\Z)", doc, re.M | re.S):
        marked |= {(section, key) for key, rest in re.findall(r"^\| `(\w+)` \|(.*)$", body, re.M)
                   if "*restart*" in rest}
    assert marked == set(config.restart_keys())


def test_a_reload_keeps_exactly_the_restart_keys():
    old = config.Config()
    new = config.from_dict({"daemon": {"batch_bytes": 4096, "archive_queue": 7, "replay": "/x"},
                            "store": {"url": "/tmp/other.db", "retention_days": 1.0}})
    assert config.needs_restart(old, new) == ["daemon.replay", "daemon.batch_bytes", "store.url"]
    kept = config.keep_running(old, new)
    assert (kept.daemon.batch_bytes, kept.daemon.replay, kept.store.url) == (1 << 20, "", old.store.url)
    assert (kept.daemon.archive_queue, kept.store.retention_days) == (7, 1.0)
    assert config.needs_restart(old, kept) == []
