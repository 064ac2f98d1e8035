"""Prometheus multiprocess mode for ``idp serve`` (TODO issue 16)."""

from __future__ import annotations

from idp.settings import Settings


def prepare_multiprocess_dir(settings: Settings) -> None:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory before the workers start."""
