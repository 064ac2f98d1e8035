"""Second factors at login through the real HTML forms: enrolment, verification, codes.

TOTP codes come from ``oathtool``; SMS codes are read back from a real local HTTP server that
stands in for the SMS gateway, email from a real local SMTP server.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, delivery_settings, make_app
from tests.mfa_helpers import MfaBrowser, oathtool, set_policy
from tests.outbox import Outboxes


@pytest.fixture
def app(tmp_path: Path, outboxes: Outboxes) -> Flask:
    return make_app(tmp_path, **delivery_settings(outboxes))


@pytest.fixture
def mb(client: FlaskClient, tenant: str) -> MfaBrowser:
    return MfaBrowser(client, tenant)


def test_required_mfa_enrols_totp_then_asks_for_it_at_every_login(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required")
    assert mb.password("alice", PASSWORD) == "enroll"
    assert 'value="skip"' not in mb.html
    secret = mb.enroll_totp()
    codes = mb.backup_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert mb.finished
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert '<dd id="level">2</dd>' in page and '<dd id="amr">pwd otp mfa</dd>' in page
    subjects = [m["subject"] for m in outboxes.mail.to("alice@acme.test")]
    assert "Acme Inc: Two-step sign-in is on" in subjects

    client.post("/t/acme/logout", data={"csrf_token": _csrf(client)})
    assert mb.password("alice", PASSWORD) == "verify_totp"
    # The code used to activate cannot be replayed; the next time step's code works.
    mb.submit(code=oathtool(secret), action="verify")
    assert mb.step == "verify_totp" and mb.alert == "That code is not correct. Try again."
    mb.submit(code=oathtool(secret, time.time() + 30), action="verify")
    assert mb.finished


def _csrf(client: FlaskClient) -> str:
    from tests.html import csrf_of

    return csrf_of(client.get("/t/acme/account").get_data(as_text=True))
