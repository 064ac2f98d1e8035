"""Alembic, driven from code: ``idp init`` upgrades the schema to the newest revision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema; idempotent."""
    command.upgrade(alembic_config(engine), "head")


@contextmanager
def init_lock(engine: Engine) -> Iterator[None]:
    """Held by one ``idp init`` at a time (TODO issue 16: PostgreSQL advisory lock)."""
    yield
