"""Alembic, driven from code: ``idp init`` upgrades the schema to the newest revision.

Migrations follow expand, then contract (docs/operations/migrations.md): from 0012 on each
declares ``phase = "expand"`` or ``"contract"``, and a test renders the expand ones' SQL and
refuses anything an older node still running could trip over.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from idp.store.db import SchemaOutdated

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# pg_advisory_lock key held by ``idp init``: the ASCII bytes of "Stepwise" as a bigint. Advisory
# locks are per database, so two Stepwise databases on one server do not wait for each other.
INIT_LOCK_KEY = 0x5374657077697365

# A migration's ALTER TABLE waits for the table's lock, and every query of the running nodes
# then queues behind it: give up after this long rather than stall the service (run init again).
MIGRATION_LOCK_TIMEOUT = "10s"

log = logging.getLogger("idp.store.migrate")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def _migration_timeouts(conn: Connection) -> None:
    """Each migration transaction on PostgreSQL: no statement timeout (the requests' one would
    cancel an index build or a backfill), but a bounded wait for table locks. Set for the
    session, not the transaction, so that it also holds in an autocommit block (CREATE INDEX
    CONCURRENTLY); :func:`upgrade` closes these connections afterwards."""
    conn.exec_driver_sql("SET statement_timeout = 0")
    conn.exec_driver_sql(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'")


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema; idempotent."""
    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine), "head")
        return
    event.listen(engine, "begin", _migration_timeouts)
    try:
        command.upgrade(alembic_config(engine), "head")
    finally:
        event.remove(engine, "begin", _migration_timeouts)
        engine.dispose()  # no pooled connection keeps the migrations' timeouts


@contextmanager
def init_lock(engine: Engine) -> Iterator[None]:
    """Held by one ``idp init`` at a time, so that nodes starting together do not race on the
    migrations or on creating signing keys: the others wait, then find nothing to do.

    PostgreSQL: a session-level advisory lock on a connection of its own (released in
    ``finally``, and by the server if this process dies). SQLite: an exclusive ``flock`` on a
    file beside the database. An in-memory SQLite database has no other user.
    """
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine):
            yield
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        with _file_lock(Path(database).with_name(Path(database).name + ".init-lock")):
            yield
        return
    yield


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    # Autocommit: the lock belongs to the session, and no transaction stays open meanwhile.
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        # The requests' statement timeout would cancel the wait for another init's migrations.
        conn.exec_driver_sql("SET statement_timeout = 0")
        params: dict[str, Any] = {"key": INIT_LOCK_KEY}
        if not conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), params):
            log.warning("another idp init is running on this database; waiting for it")
            conn.execute(text("SELECT pg_advisory_lock(:key)"), params)
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), params)
            except SQLAlchemyError:  # the server ends the lock with the session anyway
                log.warning("could not release the init lock; closing its connection")
    finally:
        conn.invalidate()  # its session was changed (statement_timeout): never back to the pool
        conn.close()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl  # POSIX only, as is the rest of the server

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_schema(engine: Engine) -> None:
    """Refuse to serve a database that ``idp init`` has not brought up to date. A database
    ahead of this release (a revision it does not know) is served: during a rolling upgrade or
    after a rollback, the newer release's expand migrations keep this one working
    (docs/operations/migrations.md)."""
    scripts = ScriptDirectory.from_config(alembic_config(engine))
    head = scripts.get_current_head()
    with engine.connect() as conn:
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
