"""``idp serve``: granian (HTTP/1.1, WSGI) with the settings in idp/config/granian.toml."""

from __future__ import annotations

import gc
import tomllib
from typing import TYPE_CHECKING, Any

from idp.services import Services
from idp.settings import PACKAGE
from idp.store.migrate import check_schema

if TYPE_CHECKING:
    from flask import Flask

CONFIG = PACKAGE / "config" / "granian.toml"


def worker_app() -> Flask:
    """The app of one granian worker. Everything built so far (modules, templates, the app)
    lives as long as the worker: ``gc.freeze`` moves it out of the collector's sight, so a
    full collection scans only what requests allocate (tens of milliseconds less at p99)."""
    from idp.app import create_app

    app = create_app()
    gc.collect()
    gc.freeze()
    return app


def run(svc: Services, host: str, port: int, workers: int, outbox_worker: bool = True) -> None:
    """Serve until stopped; with ``outbox_worker`` (and IDP_OUTBOX_WORKER=on) the notification
    worker runs beside the HTTP workers as a child process."""
    from granian import Granian
    from granian.constants import Interfaces

    from idp import metrics_setup
    from idp import outbox_worker as outbox

    check_schema(svc.db.engine)
    options: dict[str, Any] = tomllib.loads(CONFIG.read_text())
    # One WSGI thread per worker on SQLite and the in-process store (CPU only: more threads
    # only take turns on the GIL); with PostgreSQL or Redis, a second thread works while the
    # first waits on the network (bench/compare.py --stores).
    options.setdefault(
        "blocking_threads", 1 if svc.db.is_sqlite and not svc.settings.shared_store else 2
    )
    # Every worker writes its samples under one directory, which /metrics adds up.
    metrics_setup.prepare_multiprocess_dir(svc.settings)
    worker = outbox.Supervisor() if outbox_worker and svc.settings.outbox_worker == "on" else None
    try:
        Granian(
            "idp.server:worker_app",
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
