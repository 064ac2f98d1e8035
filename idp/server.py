"""``idp serve``: gunicorn with the settings in config/gunicorn.conf.py."""

from __future__ import annotations

import runpy
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from gunicorn.app.base import BaseApplication

from idp.services import Services
from idp.settings import ROOT
from idp.store.migrate import alembic_config


class SchemaOutdated(Exception):
    pass


def check_schema(svc: Services) -> None:
    """Refuse to serve a database that ``idp init`` has not brought up to date."""
    head = ScriptDirectory.from_config(alembic_config(svc.db.engine)).get_current_head()
    with svc.db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise SchemaOutdated("the database schema is not up to date: run `idp init` first")


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        defaults = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
        for key, value in {**defaults, **self.options}.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        from idp import create_app

        return create_app()


def run(svc: Services, host: str, port: int, workers: int) -> None:
    check_schema(svc)
    _Gunicorn({"bind": f"{host}:{port}", "workers": workers}).run()
