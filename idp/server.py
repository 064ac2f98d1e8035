"""``idp serve``: granian (HTTP/1.1, WSGI) with the settings in config/granian.toml."""

from __future__ import annotations

import tomllib
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from idp.services import Services
from idp.settings import ROOT
from idp.store.db import SchemaOutdated
from idp.store.migrate import alembic_config

CONFIG = ROOT / "config" / "granian.toml"


def check_schema(svc: Services) -> None:
    """Refuse to serve a database that ``idp init`` has not brought up to date."""
    head = ScriptDirectory.from_config(alembic_config(svc.db.engine)).get_current_head()
    with svc.db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise SchemaOutdated("the database schema is not up to date: run `idp init` first")


def run(svc: Services, host: str, port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    check_schema(svc)
    options: dict[str, Any] = tomllib.loads(CONFIG.read_text())
    Granian(
        "idp.app:create_app",
        factory=True,
        interface=Interfaces.WSGI,
        address=host,
        port=port,
        workers=workers,
        **options,
    ).serve()
