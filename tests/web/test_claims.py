"""The claims each scope releases, in the id_token and from UserInfo (OpenID Connect Core 1.0
section 5.4): profile, email with the real email_verified, phone from the contact number,
and the groups scope. Empty claims are left out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from idp.mfa import credentials
from testkit.html import csrf_of
from tests.conftest import svc
from tests.mfa_helpers import set_user
from tests.web.oidc_helpers import Rp, authorize, pkce, register, sign_in
from tests.web.test_oidc import tokens_for, verify

ALL = "openid profile email phone groups"
PROTOCOL = {"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "acr", "amr", "sid",
            "at_hash", "nonce"}  # fmt: skip


@pytest.fixture
def rp(app: Flask, tenant: str) -> Rp:
    return register(app)


def add_phone(app: Flask, e164: str, contact: bool = True) -> int:
    """An SMS factor for alice (as enrolment stores it); marked as contact number."""
    s_ = svc(app)
    with s_.db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        cred = credentials.add(s, s_.cipher, user, "sms", e164, None, 1)
        if contact:
            user.contact_phone_id = cred.id
        return cred.id


def both(client: FlaskClient, rp: Rp, scope: str, **params: str) -> tuple[dict[str, Any], ...]:
    """The id_token's claims and UserInfo's answer for ``scope``."""
    body = tokens_for(client, rp, scope=scope, **params)
    info = client.get(
        "/t/acme/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}
    )
    assert info.status_code == 200
    return verify(client, body["id_token"]), info.get_json()


def test_every_scope_releases_its_claims_in_the_id_token_and_userinfo(
    app: Flask, client: FlaskClient, rp: Rp
) -> None:
    set_user(app, "alice", display_name="Alice Liddell", given_name="Alice",
             family_name="Liddell", locale="en-GB", email_verified=True,
             updated_at=1_700_000_000)  # fmt: skip
    add_phone(app, "+16502530000")
    claims, info = both(client, rp, ALL)
    expected = {
        "name": "Alice Liddell",
        "given_name": "Alice",
        "family_name": "Liddell",
        "locale": "en-GB",
        "preferred_username": "alice",
        "updated_at": 1_700_000_000,
        "email": "alice@acme.test",
        "email_verified": True,
        "phone_number": "+16502530000",
        "phone_number_verified": True,
        "groups": ["member"],
    }
    assert {k: v for k, v in claims.items() if k not in PROTOCOL} == expected
    assert {k: v for k, v in info.items() if k != "sub"} == expected
    assert info["sub"] == claims["sub"]


def test_empty_claims_are_left_out_and_email_verified_is_the_real_flag(
    app: Flask, client: FlaskClient, rp: Rp
) -> None:
    add_phone(app, "+16502530000", contact=False)  # a factor, but not the contact number
    claims, info = both(client, rp, ALL)
    for released in (claims, info):
        assert released["email_verified"] is False and released["groups"] == ["member"]
        for absent in ("name", "given_name", "family_name", "locale", "phone_number",
                       "phone_number_verified"):  # fmt: skip
            assert absent not in released, absent
        assert "" not in released.values()
    set_user(app, "alice", given_name="Alice", family_name="Liddell")
    claims, info = both(client, rp, "openid profile")
    assert claims["name"] == info["name"] == "Alice Liddell"  # no display name: both names
    assert "email" not in info and "groups" not in info and "phone_number" not in info


def test_the_phone_claim_follows_the_factor_it_names(
    app: Flask, client: FlaskClient, rp: Rp
) -> None:
    add_phone(app, "+442079460018")
    assert both(client, rp, "openid phone")[1]["phone_number"] == "+442079460018"
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        credentials.remove_all(s, user)  # the factor is gone: the number is no longer proved
    claims, info = both(client, rp, "openid phone")
    assert "phone_number" not in claims and "phone_number" not in info
    s_ = svc(app)  # another user's factor never counts for alice
    with s_.db.session() as s:
        tenant = directory.require_tenant(s, "acme")
        olivia = directory.require_user(s, tenant, "olivia")
        other = credentials.add(s, s_.cipher, olivia, "sms", "+16502530000", None, 1)
        directory.require_user(s, tenant, "alice").contact_phone_id = other.id
    assert "phone_number" not in both(client, rp, "openid phone")[1]


def test_groups_lists_the_role_and_discovery_names_the_scope(
    app: Flask, client: FlaskClient, rp: Rp
) -> None:
    set_user(app, "alice", role="admin")
    claims, info = both(client, rp, "openid groups")
    assert claims["groups"] == info["groups"] == ["admin"]
    doc = client.get("/t/acme/.well-known/openid-configuration").get_json()
    assert "groups" in doc["scopes_supported"]
    for claim in ("groups", "name", "given_name", "family_name", "locale", "phone_number"):
        assert claim in doc["claims_supported"], claim


def test_the_claims_parameter_still_works_with_the_new_scopes(
    app: Flask, client: FlaskClient, rp: Rp
) -> None:
    set_user(app, "alice", email_verified=True)
    wanted = {"id_token": {"acr": {"essential": True, "values": ["urn:stepwise:loa:1"]},
                           "email": None}, "userinfo": {"groups": None}}  # fmt: skip
    claims, info = both(client, rp, ALL, claims=json.dumps(wanted))
    assert claims["acr"] == "urn:stepwise:loa:1" and claims["email_verified"] is True
    assert info["groups"] == ["member"]


def test_the_consent_page_describes_the_groups_scope(app: Flask, client: FlaskClient,
                                                     tenant: str) -> None:  # fmt: skip
    rp = register(app, "Partner", first_party=False)
    page = sign_in(client, authorize(client, rp, scope=ALL, code_challenge=pkce()[1],
                                     code_challenge_method="S256"))  # fmt: skip
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-scope="groups"' in html
    assert "Your role here (as groups)" in html and csrf_of(html)


def test_the_admin_api_and_the_console_offer_the_profile_attributes(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    from tests.mfa_helpers import MfaBrowser
    from tests.web.test_admin_api_applications import bearer
    from tests.web.test_saml_idp import SP_METADATA

    chosen = ["displayName", "givenName", "sn", "mail", "memberOf"]
    api = app.test_client()
    added = api.post("/t/acme/admin/api/saml-sps", headers=bearer(app, api),
                     json={"metadata": SP_METADATA, "attributes": chosen})  # fmt: skip
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["attributes"] == chosen
    bad = api.patch(f"/t/acme/admin/api/saml-sps/{added.get_json()['id']}",
                    headers=bearer(app, api), json={"attributes": ["salary"]})  # fmt: skip
    assert bad.status_code == 400  # not one of the Attribute names (schema validation)
    MfaBrowser(client, "acme").password("olivia", "correct horse battery")
    form = client.get("/t/acme/admin/sps/new").get_data(as_text=True)
    for key in chosen:
        assert f'name="attributes" value="{key}">' in form, key  # offered, not ticked
    assert 'value="username" checked' in form and 'value="memberOf" checked' not in form
