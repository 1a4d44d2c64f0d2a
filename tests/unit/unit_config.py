"""Config objects for tests (an importable module: conftest.py names clash across test directories)."""
from __future__ import annotations

from saga.config import Config, DaemonConfig, SagafsConfig, StoreConfig


def make_config(tmp_path, url: str, **daemon) -> Config:
    return Config(daemon=DaemonConfig(run_dir=str(tmp_path / "run"), **daemon),
                  store=StoreConfig(url=url, host="testhost", retention_days=0), sagafs=SagafsConfig(mount=""))
