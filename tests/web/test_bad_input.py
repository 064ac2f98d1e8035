"""Bad input found by fuzzing (issue 13, "Bad input never gives a 500"): each gets a clear
4xx answer, never a 500. The app runs with exceptions handled as in production."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from idp.saml import sps
from testkit.html import csrf_of
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import MfaBrowser
from tests.web.oidc_helpers import authorize, pkce, register
from tests.web.test_mfa_policy import admin_token
from tests.web.test_saml_attacks import METADATA, authn_request, get_sso


@pytest.fixture
def prod_like(app: Flask) -> Flask:
    """Errors answered by the app's handlers, as under ``idp serve`` (not re-raised)."""
    app.testing = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_an_overlong_host_label_gets_400(
    prod_like: Flask, client: FlaskClient, tenant: str
) -> None:
    resp = client.get("/t/acme/login", headers={"Host": "a" * 64 + ".example"})
    assert resp.status_code == 400


def test_a_return_to_that_is_no_url_falls_back(
    prod_like: Flask, client: FlaskClient, tenant: str
) -> None:
    resp = client.get("/t/acme/login", query_string={"return_to": "http://[::1"})
    assert resp.status_code == 302 and "/login?flow=" in resp.headers["Location"]


def test_deeply_nested_json_gets_invalid_request(
    prod_like: Flask, client: FlaskClient, tenant: str
) -> None:
    rp = register(prod_like)
    claims = "[" * 1000
    resp = authorize(client, rp, code_challenge=pkce()[1], code_challenge_method="S256",
                     claims=claims)  # fmt: skip
    assert resp.status_code == 302 and "error=invalid_request" in resp.headers["Location"]
    bearer = {"Authorization": f"Bearer {admin_token(prod_like, client)}"}
    api = client.put("/t/acme/admin/api/mfa-policy", headers=bearer, data="[" * 1000,
                     content_type="application/json")  # fmt: skip
    assert api.status_code == 400 and api.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("digits", ["²", "①", "٣"])
def test_unicode_digits_are_not_numbers(
    prod_like: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser, digits: str
) -> None:
    with svc(prod_like).db.session() as s:
        sps.add_sp(s, directory.require_tenant(s, "acme"), METADATA.encode())
    xml = authn_request("_u1", acs=None, extra=f' AssertionConsumerServiceIndex="{digits}"')
    assert get_sso(client, xml).status_code == 400
    assert mb.password("olivia", PASSWORD) is None  # an owner, in the console
    page = client.get("/t/acme/admin/policy").get_data(as_text=True)
    form = {"csrf_token": csrf_of(page), "mode": "off", "scope": "all", "apply": "next_login",
            "factors": "totp", "reoffer_days": digits}  # fmt: skip
    saved = client.post("/t/acme/admin/policy", data=form, follow_redirects=True)
    assert saved.status_code == 200 and "reoffer_days must be a whole number" in saved.text
    page = client.get("/t/acme/account").get_data(as_text=True)
    bogus = {"csrf_token": csrf_of(page), "factor": f"totp:{digits}"}
    removed = client.post("/t/acme/account/factors/remove", data=bogus)
    assert removed.status_code == 404
