"""``idp serve``: granian (HTTP/1.1, WSGI) with the settings in idp/config/granian.toml."""

from __future__ import annotations

import logging
import tomllib
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from idp.services import Services
from idp.settings import PACKAGE
from idp.store.db import SchemaOutdated
from idp.store.migrate import alembic_config

CONFIG = PACKAGE / "config" / "granian.toml"
log = logging.getLogger("idp.server")


def check_schema(svc: Services) -> None:
    """Refuse to serve a database that ``idp init`` has not brought up to date. A database
    ahead of this release (a revision it does not know) is served: during a rolling upgrade or
    after a rollback, the newer release's expand migrations keep this one working
    (docs/operations/migrations.md)."""
    scripts = ScriptDirectory.from_config(alembic_config(svc.db.engine))
    head = scripts.get_current_head()
    with svc.db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    try:
        known = current is not None and scripts.get_revision(current) is not None
    except CommandError:  # a revision this release does not know: a newer one
        known = False
    if current is None or known:
        raise SchemaOutdated("the database schema is not up to date: run `idp init` first")
    log.warning("the database schema (%s) is newer than this release's (%s)", current, head)


def run(svc: Services, host: str, port: int, workers: int, outbox_worker: bool = True) -> None:
    """Serve until stopped; with ``outbox_worker`` (and IDP_OUTBOX_WORKER=on) the notification
    worker runs beside the HTTP workers as a child process."""
    from granian import Granian
    from granian.constants import Interfaces

    from idp import metrics_setup
    from idp import outbox_worker as outbox

    check_schema(svc)
    options: dict[str, Any] = tomllib.loads(CONFIG.read_text())
    # Every worker writes its samples under one directory, which /metrics adds up.
    metrics_setup.prepare_multiprocess_dir(svc.settings)
    worker = outbox.Supervisor() if outbox_worker and svc.settings.outbox_worker == "on" else None
    try:
        Granian(
            "idp.app:create_app",
            factory=True,
            interface=Interfaces.WSGI,
            address=host,
            port=port,
            workers=workers,
            **options,
        ).serve()
    finally:
        if worker is not None:
            worker.close()
