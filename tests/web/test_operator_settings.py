"""Operator settings that would weaken a deployment are refused with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from idp.ephemeral.redis_store import RedisStore
from idp.settings import SettingsError, load

PREPARE = (
    "from idp.metrics_setup import prepare_multiprocess_dir as p\n"
    "from idp.settings import load\n"
    "p(load())"
)


@pytest.mark.parametrize("param", ["ssl_cert_reqs=none", "ssl_check_hostname=false"])
def test_redis_tls_checks_cannot_be_turned_off_in_the_url(param: str) -> None:
    with pytest.raises(SettingsError, match="cannot be turned off"):
        RedisStore.for_settings(load({"redis_url": f"rediss://localhost:6380/0?{param}"}))


def _prepare(directory: Path) -> subprocess.CompletedProcess[str]:
    """In a child: the multiprocess switch is process-wide."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.run(
        [sys.executable, "-c", PREPARE], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_metrics_directory_is_emptied_of_samples_only(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir(mode=0o700)
    (metrics / "counter_123.db").write_bytes(b"old samples")
    (metrics / "stepwise.db").write_bytes(b"someone's database")
    result = _prepare(metrics)
    assert result.returncode == 0, result.stderr
    assert not (metrics / "counter_123.db").exists()
    assert (metrics / "stepwise.db").read_bytes() == b"someone's database"


def test_a_metrics_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "private")
    (tmp_path / "private").mkdir(mode=0o700)
    for directory in (shared, link):
        result = _prepare(directory)
        assert result.returncode != 0
        assert "only its owner can write" in result.stderr
