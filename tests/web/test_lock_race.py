"""A lock after too many wrong passwords never overwrites what an admin did meanwhile
(review of issue 17's kept rows): the lock is decided by the database's row, after the hash."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from factors.password import PasswordFactor
from idp import directory
from idp.store.models import AuditEvent, Tenant, User
from testkit import servers
from tests.conftest import PASSWORD, Browser, make_app, svc


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_disable_during_the_password_check_is_not_turned_into_a_lock(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    database: str,
) -> None:  # fmt: skip
    overrides: dict[str, Any] = {}
    if database == "postgres":
        server = request.getfixturevalue("postgres_url")
        overrides["database_url"] = servers.create_database(server, f"lk_{uuid.uuid4().hex[:12]}")
    app = make_app(tmp_path, throttle_lock_after=1, throttle_free_attempts=0, **overrides)
    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        directory.create_user(s, s_.passwords, t, "alice", "alice@acme.test", "member", PASSWORD)
    real = PasswordFactor.verify

    def verify(self: PasswordFactor, encoded: str | None, password: str) -> None:
        """The real check, with an admin's disable committed (its own session, as another
        request would) while it runs: the interleaving a slow hash leaves room for."""
        with s_.db.session() as s:
            tenant = s.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
            user = s.scalars(select(User).where(User.username == "alice")).one()
            directory.set_status(s, tenant, user, "disabled")
        real(self, encoded, password)

    monkeypatch.setattr(PasswordFactor, "verify", verify)
    resp = Browser(app.test_client(), "acme").login("alice", "wrong password")
    assert resp.status_code == 200
    with s_.db.session() as s:
        user = s.scalars(select(User).where(User.username == "alice")).one()
        status = user.status
        events = list(s.scalars(select(AuditEvent.event).where(AuditEvent.subject_id == user.id)
                                .order_by(AuditEvent.id)))  # fmt: skip
    assert status == "disabled" and "user.locked" not in events, (status, events)
    s_.db.engine.dispose()


def test_the_lock_still_applies_to_an_active_user(tmp_path: Path) -> None:
    app = make_app(tmp_path, throttle_lock_after=1, throttle_free_attempts=0)
    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        directory.create_user(s, s_.passwords, t, "alice", "alice@acme.test", "member", PASSWORD)
    assert Browser(app.test_client(), "acme").login("alice", "wrong").status_code == 200
    with s_.db.session() as s:
        user = s.scalars(select(User).where(User.username == "alice")).one()
        event = s.scalars(select(AuditEvent).where(AuditEvent.event == "user.locked")).one()
        assert user.status == "locked" and event.subject_id == user.id
        assert event.details == {"previous": "active"}
