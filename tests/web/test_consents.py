"""The applications a user allowed, on the account page (issue 15): listed with their scopes,
and revoked: the consent goes, the application's tokens for the user stop working, and its
next sign-in asks for consent again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.store.models import Consent, Grant
from testkit.html import csrf_of
from tests.conftest import svc
from tests.web.devices_support import (
    BOTH_STORES,
    DEVICES,
    FIREFOX,
    age_authentication,
    app_for,
    browser,
    events,
    page,
    post,
    row_of,
    rows,
    sign_in,
)
from tests.web.oidc_helpers import (
    Rp,
    authorize,
    code_flow,
    exchange,
    pkce,
    query_of,
    register,
    token,
)


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    return app_for(request, tmp_path)


def allow(client: FlaskClient, rp: Rp, scope: str = "openid profile email") -> dict[str, Any]:
    """Authorize ``rp`` (already signed in), answer its consent page with Allow, and exchange
    the code: the tokens."""
    verifier, challenge = pkce()
    resp = authorize(client, rp, scope=scope, code_challenge=challenge,
                     code_challenge_method="S256")  # fmt: skip
    assert resp.status_code == 200, resp.status_code
    html = resp.get_data(as_text=True)
    action = html.split('action="')[1].split('"')[0].replace("&amp;", "&")
    allowed = client.post(action, data={"csrf_token": csrf_of(html), "action": "allow"})
    code = query_of(allowed.headers["Location"])["code"]
    body: dict[str, Any] = exchange(client, rp, code, verifier).get_json()
    assert "refresh_token" in body, body
    return body


def asks_consent(client: FlaskClient, rp: Rp) -> bool:
    resp = authorize(client, rp, code_challenge=pkce()[1], code_challenge_method="S256")
    if resp.status_code == 200:
        assert "data-scope=" in resp.get_data(as_text=True)
        return True
    assert resp.status_code == 302 and "code" in query_of(resp.headers["Location"])
    return False


def refreshes(client: FlaskClient, rp: Rp, refresh_token: str) -> bool:
    resp = token(client, rp, grant_type="refresh_token", refresh_token=refresh_token)
    assert resp.status_code in (200, 400), resp.status_code
    return resp.status_code == 200


@BOTH_STORES
def test_revoking_an_application_ends_its_tokens_and_asks_consent_again(
    app: Flask, tenant: str
) -> None:
    partner = register(app, "Partner", first_party=False)
    other = register(app, "Other partner", first_party=False)
    own = register(app, "Intranet")  # first party: never asks, never listed
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    partner_tokens = allow(laptop, partner, "openid profile email offline_access")
    other_tokens = allow(laptop, other)
    query, verifier = code_flow(laptop, own)
    own_tokens = exchange(laptop, own, query["code"], verifier).get_json()
    assert not asks_consent(laptop, partner)  # remembered

    html = page(laptop)
    assert len(rows(html, "consents")) == 2 and "Intranet" not in html
    listed = row_of(html, "consents", "<td>Partner</td>")
    for described in ("Confirm who you are", "Your email address", "Stay connected"):
        assert described in listed
    assert "UTC" in listed  # when

    resp = post(laptop, "applications/revoke", client_id=partner.client_id)
    assert resp.status_code == 302 and resp.headers["Location"] == DEVICES
    assert "Partner</td>" not in page(laptop).replace("Other partner</td>", "")
    # Its tokens end, offline_access included: the permission they rest on is gone.
    assert not refreshes(laptop, partner, partner_tokens["refresh_token"])
    assert refreshes(laptop, other, other_tokens["refresh_token"])  # others go on
    assert refreshes(laptop, own, own_tokens["refresh_token"])
    assert asks_consent(laptop, partner) and not asks_consent(laptop, other)
    [revoked] = events(app, "user.consent_revoked")
    assert revoked["client_id"] == partner.client_id and revoked["grants"] >= 1
    reasons = [e["reason"] for e in events(app, "oauth.grant_revoked")]
    assert reasons and set(reasons) == {"consent_revoked"}
    with svc(app).db.session() as s:
        assert s.scalars(select(Consent.client_id)).all() == [other.client_id]
        live = s.scalars(select(Grant.client_id).where(Grant.revoked_at.is_(None))).all()
        assert partner.client_id not in live


def test_another_users_consent_cannot_be_revoked(app: Flask, tenant: str) -> None:
    partner = register(app, "Partner", first_party=False)
    olivia = sign_in(browser(app, FIREFOX, "198.51.100.40"), "olivia")
    tokens = allow(olivia, partner)
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    for client_id in (partner.client_id, "", "nonexistent", "x" * 500):
        assert post(laptop, "applications/revoke", client_id=client_id).status_code == 404
    assert not asks_consent(olivia, partner)
    assert refreshes(olivia, partner, tokens["refresh_token"])
    assert "<td>Partner</td>" in page(olivia)
    assert events(app, "user.consent_revoked") == []


def test_revoking_needs_recent_authentication_and_the_csrf_token(app: Flask, tenant: str) -> None:
    partner = register(app, "Partner", first_party=False)
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    tokens = allow(laptop, partner)
    no_token = laptop.post(f"{DEVICES}/applications/revoke", data={"client_id": partner.client_id})
    assert no_token.status_code == 400
    age_authentication(app, laptop, 600)
    resp = post(laptop, "applications/revoke", client_id=partner.client_id)
    assert resp.status_code == 302 and "/t/acme/login?flow=" in resp.headers["Location"]
    assert refreshes(laptop, partner, tokens["refresh_token"])
    assert "<td>Partner</td>" in page(laptop)
