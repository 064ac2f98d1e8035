"""Console writes need re-authentication at the admin's own level; afterwards the admin is
back on the form they sent, with their choices but never a secret in the URL (issue 14)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from testkit.html import csrf_of
from testkit.totp import oathtool
from tests.conftest import PASSWORD
from tests.mfa_helpers import MfaBrowser
from tests.web.test_assurance import follow_to_login, with_totp


def test_after_re_authentication_the_admin_returns_to_the_form_with_their_choices(
    app: Flask, mb: MfaBrowser, client: FlaskClient, tenant: str
) -> None:
    secret = with_totp(app, mb, client, "olivia")
    assert mb.password("olivia", PASSWORD) is None and mb.finished  # level 1 of 2
    page = client.get("/t/acme/admin/keys/oidc/rotate?alg=ES256&grace_hours=5")
    assert page.status_code == 200
    form = {"csrf_token": csrf_of(page.get_data(as_text=True)), "alg": "ES256",
            "grace_hours": "5", "confirm": "yes", "password": "hunter2-never-in-a-url"}  # fmt: skip
    follow_to_login(mb, client, client.post("/t/acme/admin/keys/oidc/rotate", data=form))
    assert mb.step == "verify_totp"
    mb.submit(code=oathtool(secret), action="verify")
    assert mb.finished
    back = urlsplit(mb.done_at)
    assert back.path == "/t/acme/admin/keys/oidc/rotate"
    assert parse_qs(back.query) == {"alg": ["ES256"], "grace_hours": ["5"]}
    assert "hunter2" not in mb.done_at and "csrf" not in mb.done_at
    shown = client.get(mb.done_at).get_data(as_text=True)
    assert "Rotate the ES256 signing key?" in shown
