"""The persistent store on SQLite and on a real PostgreSQL server, through the same migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from factors.password import Argon2Params, PasswordFactor
from idp import directory
from idp.store.db import Database
from idp.store.migrate import upgrade
from idp.store.models import AuditEvent, Base, Credential, User
from testkit.servers import create_database

PF = PasswordFactor(Argon2Params(memory_kib=8192, time_cost=1))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = create_database(request.getfixturevalue("postgres_url"), f"t_{uuid.uuid4().hex[:12]}")
    database = Database(url)
    upgrade(database.engine)
    yield database
    database.engine.dispose()


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(db: Database) -> None:
    upgrade(db.engine)
    tables = set(inspect(db.engine).get_table_names())
    assert {"tenants", "users", "credentials", "audit_events", "alembic_version"} <= tables


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_tenant_user_credential_and_audit_round_trip(db: Database) -> None:
    with db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme")
        u = directory.create_user(s, PF, t, "Alice", "alice@acme.test", "admin", "tall red kettle")
        s.add(
            Credential(
                user_id=u.id,
                type="totp",
                label="phone",
                secret=b"\x00\xffcipher",
                data={"digits": 6},
                created_at=1,
            )
        )
    with db.session() as s:
        t = directory.require_tenant(s, "acme")
        alice = directory.require_user(s, t, "  ALICE ")
        assert (
            alice.role == "admin"
            and alice.password_hash
            and alice.password_hash.startswith("$argon2id$")
        )
        cred = s.scalars(select(Credential).where(Credential.user_id == alice.id)).one()
        assert cred.secret == b"\x00\xffcipher" and cred.data == {"digits": 6}
        events = [e.event for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert events == ["tenant.created", "user.created"]


def test_usernames_are_unique_per_tenant_case_insensitively(db: Database) -> None:
    with db.session() as s:
        a = directory.create_tenant(s, "a")
        b = directory.create_tenant(s, "b")
        directory.create_user(s, PF, a, "bob", "bob@a.test")
        directory.create_user(s, PF, b, "bob", "bob@b.test")
    with pytest.raises(directory.DirectoryError, match="already exists"), db.session() as s:
        directory.create_user(s, PF, directory.require_tenant(s, "a"), "BOB", "x@a.test")


def test_database_constraint_backs_the_check(db: Database) -> None:
    with db.session() as s:
        t = directory.create_tenant(s, "c")
        directory.create_user(s, PF, t, "carol", "carol@c.test")
    with pytest.raises(IntegrityError), db.session() as s:
        t = directory.require_tenant(s, "c")
        s.add(
            User(
                tenant_id=t.id,
                username="Carol",
                username_norm="carol",
                email="c@c.test",
                role="member",
                status="active",
                created_at=1,
                updated_at=1,
            )
        )
    with db.session() as s:  # the failed transaction left nothing behind
        assert len(directory.list_users(s, directory.require_tenant(s, "c"))) == 1


def test_deleting_a_user_deletes_its_credentials(db: Database) -> None:
    with db.session() as s:
        t = directory.create_tenant(s, "d")
        u = directory.create_user(s, PF, t, "dan", "dan@d.test")
        s.add(Credential(user_id=u.id, type="totp", created_at=1, data={}))
    with db.session() as s:
        s.delete(directory.require_user(s, directory.require_tenant(s, "d"), "dan"))
    with db.session() as s:
        assert s.scalars(select(Credential)).all() == []
