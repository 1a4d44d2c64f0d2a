"""Config objects for tests (an importable module: conftest.py names clash across test directories)."""
from __future__ import annotations

from saga.config import Config, DaemonConfig, RulesConfig, SagafsConfig, StoreConfig


def make_config(tmp_path, url: str, **daemon) -> Config:
    # Disk bounds off: a test must not depend on how full this machine's disk is (tests/unit/test_bounds.py).
    daemon.setdefault("spool_dir", str(tmp_path / "spool"))     # never /var/lib/saga (a PostgreSQL url's default)
    return Config(daemon=DaemonConfig(run_dir=str(tmp_path / "run"), **daemon),
                  store=StoreConfig(url=url, host="testhost", retention_days=0, max_size="0", space_left="0",
                                    admin_space_left="0"), sagafs=SagafsConfig(mount=""),
                  rules=RulesConfig(initial_file=""))
