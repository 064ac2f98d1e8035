"""Failed sign-ins and failed codes are in the audit log as failures (issue 14), without what
was typed: a name that matched no account may be a password typed in the wrong box."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.store.models import AuditEvent
from testkit.totp import oathtool
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import MfaBrowser, set_user
from tests.web.test_assurance import with_totp


def events(app: Flask) -> list[AuditEvent]:
    with svc(app).db.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_failed_passwords_and_codes_are_audited_as_failures(
    app: Flask, mb: MfaBrowser, client: FlaskClient, tenant: str
) -> None:
    secret = with_totp(app, mb, client, "alice")
    set_user(app, "alice", mfa_enabled=True)  # asked for her code at every sign-in
    mb.password("alice", "not the password")
    mb.password("MySecretP@ss-w0rd!", "whatever")  # a password in the username box
    mb.password("MySecretP@ss-w0rd!", "whatever")
    assert mb.password("alice", PASSWORD) == "verify_totp"
    now = svc(app).clock.time()
    valid = {oathtool(secret, now + d) for d in range(-90, 91, 30)}
    mb.submit(code=next(c for c in ("000000", "111111") if c not in valid), action="verify")
    found = [e for e in events(app) if e.result == "failure"]
    assert [e.event for e in found] == ["login.failed"] * 3 + ["mfa.code_failed"]
    alice_id = found[0].subject_id
    assert alice_id is not None and found[3].subject_id == alice_id
    unknown = found[1:3]
    assert all(e.subject_id is None and e.ip for e in unknown)
    assert unknown[0].details["name_digest"] == unknown[1].details["name_digest"]
    dumped = json.dumps([e.details for e in events(app)]).lower()
    assert "mysecretp" not in dumped and "whatever" not in dumped
