"""Step-up over the Flask test client: the tenant's acr table, discovery, session rotation,
and the context the access token and introspection report."""

from __future__ import annotations

import json
import time

from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from idp import directory
from testkit.totp import oathtool
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import MfaBrowser
from tests.web.oidc_helpers import authorize, exchange, pkce, query_of, register
from tests.web.test_login import session_id

LOA2 = "urn:stepwise:loa:2"


def add_acr(app: Flask, value: str, level: int) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        t.acr_levels = {**t.acr_levels, value: level}


def run(
    mb: MfaBrowser, client: FlaskClient, rp: object, totp: dict[str, str], **params: str
) -> dict[str, object]:
    """Authorize, answer whatever steps come (TOTP from oathtool), exchange the code."""
    verifier, challenge = pkce()
    resp = authorize(
        client,
        rp,
        code_challenge=challenge,
        code_challenge_method="S256",  # type: ignore[arg-type]
        **params,
    )
    while "/login" in resp.headers.get("Location", ""):
        mb.url = resp.headers["Location"]
        mb._page(client.get(mb.url))
        while mb.html:
            step = mb.step
            if step == "identify":
                mb.submit(username="alice", password=PASSWORD, action="continue")
            elif step == "enroll":
                totp["secret"] = mb.enroll_totp()
            elif step == "backup_codes":
                mb.backup_codes()
            elif step == "verify_totp":
                mb.submit(code=oathtool(totp["secret"], time.time() + 30), action="verify")
            else:
                raise AssertionError(step)
        resp = client.get(mb.done_at)
    query = query_of(resp.headers["Location"])
    body: dict[str, object] = exchange(client, rp, query["code"], verifier).get_json()  # type: ignore[arg-type]
    return body


def claims_of(client: FlaskClient, token: object) -> dict[str, object]:
    keyset = KeySet.import_key_set(client.get("/t/acme/jwks").get_json())
    return dict(jwt.decode(str(token), keyset).claims)


def test_discovery_advertises_the_tenants_acr_table_and_the_claims_parameter(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    add_acr(app, "https://acme.example/high", 2)
    doc = client.get("/t/acme/.well-known/openid-configuration").get_json()
    assert doc["claims_parameter_supported"] is True
    assert LOA2 in doc["acr_values_supported"]
    assert "https://acme.example/high" in doc["acr_values_supported"]


def test_step_up_with_a_tenant_acr_value_rotates_the_session_and_reports_the_context(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    add_acr(app, "https://acme.example/high", 2)
    rp = register(app)
    mb, totp = MfaBrowser(client, "acme"), {}
    first = run(mb, client, rp, totp)
    assert claims_of(client, first["id_token"])["acr"] == "urn:stepwise:loa:1"
    before = session_id(client)
    stepped = run(mb, client, rp, totp, acr_values="https://acme.example/high")
    assert session_id(client) != before  # the session id rotates after a step-up
    id_token = claims_of(client, stepped["id_token"])
    access = claims_of(client, stepped["access_token"])
    for claims in (id_token, access):
        assert claims["acr"] == "https://acme.example/high"
        assert claims["amr"] == ["pwd", "otp", "mfa"]
    seen = client.post(
        "/t/acme/introspect",
        data={"token": stepped["access_token"]},
        auth=(rp.client_id, rp.secret),
    ).get_json()
    assert seen["acr"] == "https://acme.example/high" and seen["auth_time"] == id_token["auth_time"]
    # A refresh keeps the context the grant was made with.
    refreshed = client.post(
        "/t/acme/token",
        auth=(rp.client_id, rp.secret),
        data={"grant_type": "refresh_token", "refresh_token": stepped["refresh_token"]},
    ).get_json()
    assert claims_of(client, refreshed["access_token"])["acr"] == "https://acme.example/high"


def test_default_acr_values_of_the_client_apply_when_the_request_has_none(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    rp = register(app, default_acr_values=[LOA2])
    body = run(MfaBrowser(client, "acme"), client, rp, {})
    assert claims_of(client, body["id_token"])["acr"] == LOA2
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["unknown:x"]}}})
    _, challenge = pkce()
    resp = authorize(
        client, rp, code_challenge=challenge, code_challenge_method="S256", claims=claims
    )
    assert query_of(resp.headers["Location"])["error"] == "unmet_authentication_requirements"
