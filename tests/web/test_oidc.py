"""OpenID Provider behaviour over the Flask test client, including the automatable parts of
the OpenID Foundation's Basic OP plan (prompt=none, max_age, code reuse, redirect URIs,
scope claims, id_token_hint, unknown parameters, POST to the authorization endpoint)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from testkit.html import csrf_of
from tests.conftest import PASSWORD, later, svc
from tests.web.oidc_helpers import (
    ISSUER,
    REDIRECT,
    Rp,
    authorize,
    code_flow,
    exchange,
    pkce,
    query_of,
    register,
    sign_in,
    token,
)


@pytest.fixture
def rp(app: Flask, tenant: str) -> Rp:
    return register(app, post_logout_redirect_uris=["https://rp.example/bye"])


def verify(client: FlaskClient, jws: str) -> dict[str, Any]:
    keyset = KeySet.import_key_set(client.get("/t/acme/jwks").get_json())
    return dict(jwt.decode(jws, keyset).claims)


def tokens_for(client: FlaskClient, rp: Rp, **params: str) -> dict[str, Any]:
    query, verifier = code_flow(client, rp, **params)
    resp = exchange(client, rp, query["code"], verifier)
    assert resp.status_code == 200, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    return body


def test_discovery_names_every_endpoint_of_the_issuer(client: FlaskClient, rp: Rp) -> None:
    doc = client.get("/t/acme/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == ISSUER
    for name in ("authorization", "token", "userinfo", "revocation", "introspection"):
        assert doc[f"{name}_endpoint"].startswith(ISSUER + "/")
    assert doc["jwks_uri"] == ISSUER + "/jwks"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert client.get("/t/nope/.well-known/openid-configuration").status_code == 404


def test_code_flow_id_token_claims(client: FlaskClient, rp: Rp) -> None:
    body = tokens_for(client, rp)
    claims = verify(client, body["id_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == rp.client_id
    assert claims["nonce"] == "n-1" and claims["acr"] == "urn:stepwise:loa:1"
    assert claims["amr"] == ["pwd"] and abs(claims["auth_time"] - time.time()) < 30
    assert claims["sid"] and claims["at_hash"] and claims["exp"] > claims["iat"]
    access = verify(client, body["access_token"])
    assert access["client_id"] == rp.client_id and access["sub"] == claims["sub"]
    assert access["scope"] == "openid profile email" and access["acr"] == "urn:stepwise:loa:1"
    header = jwt.decode(body["access_token"], KeySet.import_key_set(
        client.get("/t/acme/jwks").get_json())).header  # fmt: skip
    assert header["typ"] == "at+jwt"
    # the same user gets the same sub next time
    assert verify(client, tokens_for(client, rp)["id_token"])["sub"] == claims["sub"]


def test_scope_claims_in_userinfo(client: FlaskClient, rp: Rp) -> None:
    body = tokens_for(client, rp, scope="openid email")
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    info = client.get("/t/acme/userinfo", headers=auth).get_json()
    assert info["email"] == "alice@acme.test" and "preferred_username" not in info
    posted = client.post("/t/acme/userinfo", data={"access_token": body["access_token"]})
    assert posted.get_json() == info
    bad = client.get("/t/acme/userinfo", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]


def test_prompt_none_without_session_returns_login_required(client: FlaskClient, rp: Rp) -> None:
    resp = authorize(client, rp, prompt="none", code_challenge=pkce()[1],
                     code_challenge_method="S256")  # fmt: skip
    assert resp.status_code == 302 and resp.headers["Location"].startswith(REDIRECT)
    q = query_of(resp.headers["Location"])
    assert q["error"] == "login_required" and q["state"] == "st-1" and q["iss"] == ISSUER


def test_prompt_none_with_session_issues_code_silently(client: FlaskClient, rp: Rp) -> None:
    code_flow(client, rp)
    query, _ = code_flow(client, rp, prompt="none")
    assert "code" in query


def test_max_age_forces_a_fresh_login(app: Flask, client: FlaskClient, rp: Rp) -> None:
    first = verify(client, tokens_for(client, rp)["id_token"])
    later(app, 2)
    resp = authorize(client, rp, max_age="1", code_challenge=pkce()[1],
                     code_challenge_method="S256")  # fmt: skip
    assert "/login" in resp.headers["Location"]  # the session is too old: asked again
    second = verify(client, tokens_for(client, rp, max_age="1")["id_token"])
    assert second["auth_time"] > first["auth_time"]


def test_prompt_login_asks_again_even_with_a_session(client: FlaskClient, rp: Rp) -> None:
    code_flow(client, rp)
    resp = authorize(client, rp, prompt="login", code_challenge=pkce()[1],
                     code_challenge_method="S256")  # fmt: skip
    assert "/login" in resp.headers["Location"]
    assert "code" in query_of(sign_in(client, resp).headers["Location"])


def test_code_reuse_fails_and_revokes_tokens_issued_from_it(client: FlaskClient, rp: Rp) -> None:
    query, verifier = code_flow(client, rp)
    first = exchange(client, rp, query["code"], verifier).get_json()
    again = exchange(client, rp, query["code"], verifier)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    info = client.get(
        "/t/acme/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}
    )
    assert info.status_code == 401
    refreshed = token(client, rp, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"


def test_refresh_rotates_and_reuse_revokes_the_family(client: FlaskClient, rp: Rp) -> None:
    first = tokens_for(client, rp)
    second = token(client, rp, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200
    new = second.get_json()
    assert new["refresh_token"] != first["refresh_token"]
    claims = verify(client, new["id_token"])
    assert claims["auth_time"] == verify(client, first["id_token"])["auth_time"]
    assert "nonce" not in claims
    replay = token(client, rp, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    # the whole family is gone: the newest refresh token and access token too
    latest = token(client, rp, grant_type="refresh_token", refresh_token=new["refresh_token"])
    assert latest.status_code == 400
    auth = {"Authorization": f"Bearer {new['access_token']}"}
    assert client.get("/t/acme/userinfo", headers=auth).status_code == 401


def test_unregistered_redirect_uri_is_an_error_page_not_a_redirect(
    client: FlaskClient, rp: Rp
) -> None:
    for uri in ("https://evil.example/cb", REDIRECT + "/x", REDIRECT + "?a=1", ""):
        resp = authorize(client, rp, redirect_uri=uri)
        assert resp.status_code == 400 and "Location" not in resp.headers
    unknown = authorize(client, Rp("nope", None))
    assert unknown.status_code == 400 and "not registered" in unknown.get_data(as_text=True)


def test_errors_after_the_redirect_is_known_go_to_the_client(client: FlaskClient, rp: Rp) -> None:
    cases = {
        "unsupported_response_type": {"response_type": "token"},
        "request_not_supported": {"request": "eyJ.x.y"},
        "request_uri_not_supported": {"request_uri": "https://rp.example/r"},
        "invalid_request": {"code_challenge": pkce()[1], "code_challenge_method": "plain"},
    }
    for error, params in cases.items():
        resp = authorize(client, rp, **params)
        assert resp.status_code == 302, (error, resp.get_data(as_text=True)[:200])
        q = query_of(resp.headers["Location"])
        assert q["error"] == error and q["state"] == "st-1", (error, q)
    bad_age = query_of(authorize(client, rp, max_age="soon").headers["Location"])
    assert bad_age["error"] == "invalid_request"


def test_public_clients_must_use_pkce(app: Flask, client: FlaskClient, tenant: str) -> None:
    spa = register(app, "SPA", public=True)
    resp = authorize(client, spa)
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"
    query, verifier = code_flow(client, spa)
    assert exchange(client, spa, query["code"], "x" * 43).get_json()["error"] == "invalid_grant"
    query, verifier = code_flow(client, spa)
    assert exchange(client, spa, query["code"], verifier).status_code == 200


def test_unknown_parameters_are_ignored(client: FlaskClient, rp: Rp) -> None:
    query, _ = code_flow(client, rp, foo="bar", ui_locales="fr", login_hint="alice",
                         id_token_hint="")  # fmt: skip
    assert "code" in query


def test_post_to_the_authorization_endpoint(client: FlaskClient, rp: Rp) -> None:
    code_flow(client, rp)
    verifier, challenge = pkce()
    posted = client.post("/t/acme/authorize", data={
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "p", "code_challenge": challenge,
        "code_challenge_method": "S256"})  # fmt: skip
    # A cross-site POST carries no SameSite=Lax cookie: it is read back by a same-site GET.
    assert posted.status_code == 303 and "Set-Cookie" not in posted.headers
    resp = client.get(posted.headers["Location"])
    q = query_of(resp.headers["Location"])
    assert q["state"] == "p" and exchange(client, rp, q["code"], verifier).status_code == 200


def test_form_post_response_mode(client: FlaskClient, rp: Rp) -> None:
    code_flow(client, rp)
    resp = authorize(client, rp, response_mode="form_post", code_challenge=pkce()[1],
                     code_challenge_method="S256")  # fmt: skip
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and f'action="{REDIRECT}"' in html
    assert 'name="code"' in html and 'name="state" value="st-1"' in html
    assert "form-action 'self' https://rp.example" in resp.headers["Content-Security-Policy"]


def test_client_authentication_errors(client: FlaskClient, rp: Rp) -> None:
    wrong = client.post("/t/acme/token", data={"grant_type": "client_credentials"},
                        auth=(rp.client_id, "wrong"))  # fmt: skip
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    garbage = client.post("/t/acme/token", data={"grant_type": "client_credentials"},
                          headers={"Authorization": "Basic %%%"})  # fmt: skip
    assert garbage.status_code == 401
    ok = token(client, rp, grant_type="client_credentials")
    assert ok.status_code == 200 and "refresh_token" not in ok.get_json()
    posted = client.post("/t/acme/token", data={"grant_type": "client_credentials",
                         "client_id": rp.client_id, "client_secret": rp.secret})  # fmt: skip
    assert posted.status_code == 200
    assert verify(client, ok.get_json()["access_token"])["sub"] == rp.client_id


def test_client_credentials_grant_only_the_scopes_the_client_may_have(
    app: Flask, client: FlaskClient, rp: Rp
) -> None:
    """RFC 6749 3.3: a client's own token carries the requested scopes this server knows and
    the client may have, never whatever was asked (the admin scopes only for admin clients)."""
    asked = "profile stepwise:admin stepwise:admin.read made-up %FF"
    resp = token(client, rp, grant_type="client_credentials", scope=asked)
    assert resp.status_code == 200 and resp.get_json()["scope"] == "profile"
    assert verify(client, resp.get_json()["access_token"])["scope"] == "profile"
    admin = register(app, "Automation", admin_api=True)
    resp = token(client, admin, grant_type="client_credentials", scope=asked)
    assert resp.get_json()["scope"] == "profile stepwise:admin stepwise:admin.read"


def test_basic_credentials_are_form_urlencoded(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    """RFC 6749 2.3.1: a secret with ':' or '%' must be sent percent-encoded inside Basic."""
    import base64
    from urllib.parse import quote

    from idp.oidc.clients import hash_secret
    from idp.store.models import Client

    rp = register(app)
    secret = "s3cr:t%+/ü"
    with svc(app).db.session() as s:
        s.query(Client).filter_by(client_id=rp.client_id).one().secret_hash = hash_secret(secret)
    raw = f"{quote(rp.client_id, safe='')}:{quote(secret, safe='')}".encode()
    header = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    resp = client.post("/t/acme/token", data={"grant_type": "client_credentials"}, headers=header)
    assert resp.status_code == 200, resp.get_json()


def test_revocation_and_introspection(client: FlaskClient, rp: Rp) -> None:
    body = tokens_for(client, rp)
    auth = (rp.client_id, rp.secret)
    seen = client.post("/t/acme/introspect", data={"token": body["access_token"]}, auth=auth)
    info = seen.get_json()
    assert info["active"] and info["acr"] == "urn:stepwise:loa:1" and info["auth_time"]
    refresh = client.post("/t/acme/introspect", data={"token": body["refresh_token"]}, auth=auth)
    assert refresh.get_json()["active"]
    assert client.post("/t/acme/revoke", data={"token": body["refresh_token"]},
                       auth=auth).status_code == 200  # fmt: skip
    after = client.post("/t/acme/introspect", data={"token": body["access_token"]}, auth=auth)
    assert after.get_json() == {"active": False}
    unknown = client.post("/t/acme/revoke", data={"token": "nothing"}, auth=auth)
    assert unknown.status_code == 200
    # Introspection is for authenticated clients (RFC 7662 section 2.1): with no credentials the
    # client authentication fails, 401 invalid_client with a challenge (RFC 6749 section 5.2).
    anonymous = client.post("/t/acme/introspect", data={"token": body["access_token"]})
    assert anonymous.status_code == 401 and anonymous.get_json()["error"] == "invalid_client"
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")


def test_third_party_client_asks_for_consent_once(app: Flask, client: FlaskClient,
                                                  tenant: str) -> None:  # fmt: skip
    rp = register(app, "Partner", first_party=False)
    _, challenge = pkce()
    page = sign_in(client, authorize(client, rp, code_challenge=challenge,
                                     code_challenge_method="S256"))  # fmt: skip
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-scope="email"' in html
    action = html.split('action="')[1].split('"')[0].replace("&amp;", "&")
    allowed = client.post(action, data={"csrf_token": csrf_of(html), "action": "allow"})
    assert "code" in query_of(allowed.headers["Location"])
    again, _ = code_flow(client, rp)  # remembered: no page this time
    assert "code" in again
    denied_page = authorize(client, rp, prompt="consent", code_challenge=challenge,
                            code_challenge_method="S256").get_data(as_text=True)  # fmt: skip
    action = denied_page.split('action="')[1].split('"')[0].replace("&amp;", "&")
    denied = client.post(action, data={"csrf_token": csrf_of(denied_page), "action": "deny"})
    assert query_of(denied.headers["Location"])["error"] == "access_denied"


def test_rp_initiated_logout_with_id_token_hint(client: FlaskClient, rp: Rp) -> None:
    body = tokens_for(client, rp)
    resp = client.get("/t/acme/end-session", query_string={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": "https://rp.example/bye",
        "state": "s9"})  # fmt: skip
    assert resp.status_code == 302
    assert resp.headers["Location"] == "https://rp.example/bye?state=s9"
    # the session is gone, and so are the tokens tied to it (no offline_access)
    after = authorize(client, rp, prompt="none", code_challenge=pkce()[1],
                      code_challenge_method="S256")  # fmt: skip
    assert query_of(after.headers["Location"])["error"] == "login_required"
    refreshed = token(client, rp, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert refreshed.status_code == 400


def test_logout_refuses_unregistered_targets_and_bad_hints(client: FlaskClient, rp: Rp) -> None:
    body = tokens_for(client, rp)
    evil = client.get(
        "/t/acme/end-session",
        query_string={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": "https://evil.example/",
        },
    )
    assert evil.status_code == 400 and "Location" not in evil.headers
    forged = client.get("/t/acme/end-session", query_string={"id_token_hint": "a.b.c"})
    assert forged.status_code == 400
    # An access token of this issuer is signed by the same key, but it is no ID token: it
    # must not end the session without asking (it carries the session's sid too).
    access = client.get("/t/acme/end-session", query_string={"id_token_hint": body["access_token"]})
    assert access.status_code == 400
    assert "The id_token_hint is not valid." in access.get_data(as_text=True)
    still = authorize(client, rp, prompt="none", code_challenge=pkce()[1],
                      code_challenge_method="S256")  # fmt: skip
    assert "code" in query_of(still.headers["Location"])
    confirm = client.get("/t/acme/end-session")  # no hint: the user is asked
    assert confirm.status_code == 200 and 'value="logout"' in confirm.get_data(as_text=True)


def test_key_rotation_keeps_earlier_tokens_verifiable(app: Flask, client: FlaskClient,
                                                      rp: Rp) -> None:  # fmt: skip
    from idp.oidc import keys
    from idp.store.models import Tenant

    before = tokens_for(client, rp)
    with svc(app).db.session() as s:
        keys.rotate(s, svc(app).cipher, s.query(Tenant).filter_by(slug="acme").one())
    svc(app).caches.clear()  # another process sees the new key within seconds
    after = tokens_for(client, rp)
    old_kid = jwt.decode(before["id_token"], KeySet.import_key_set(
        client.get("/t/acme/jwks").get_json())).header["kid"]  # fmt: skip
    assert verify(client, after["id_token"])["sub"] == verify(client, before["id_token"])["sub"]
    new_kid = jwt.decode(after["id_token"], KeySet.import_key_set(
        client.get("/t/acme/jwks").get_json())).header["kid"]  # fmt: skip
    assert old_kid != new_kid
    auth = {"Authorization": f"Bearer {before['access_token']}"}
    assert client.get("/t/acme/userinfo", headers=auth).status_code == 200


def test_token_endpoint_bad_input_is_json_errors(client: FlaskClient, rp: Rp) -> None:
    auth = (rp.client_id, rp.secret)
    cases = [
        ({}, "unsupported_grant_type"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x" * 5000}, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
    ]
    for data, error in cases:
        resp = client.post("/t/acme/token", data=data, auth=auth)
        assert resp.status_code == 400 and resp.get_json()["error"] == error, (data, resp.data)
        assert resp.headers["Cache-Control"] == "no-store"
    as_json = client.post("/t/acme/token", json={"grant_type": "client_credentials"}, auth=auth)
    assert as_json.status_code == 400 and as_json.get_json()["error"] == "invalid_request"
    assert client.get("/t/acme/token").status_code == 405


def test_signing_out_ends_the_sessions_tokens_except_offline_access(
    client: FlaskClient, rp: Rp
) -> None:
    online = tokens_for(client, rp)
    offline = tokens_for(client, rp, scope="openid offline_access")
    page = client.get("/t/acme/logout").get_data(as_text=True)
    assert client.post("/t/acme/logout", data={"csrf_token": csrf_of(page)}).status_code == 200
    gone = token(client, rp, grant_type="refresh_token", refresh_token=online["refresh_token"])
    kept = token(client, rp, grant_type="refresh_token", refresh_token=offline["refresh_token"])
    assert gone.status_code == 400 and kept.status_code == 200


def test_cors_preflight_for_browser_clients(client: FlaskClient, rp: Rp) -> None:
    resp = client.options("/t/acme/token", headers={
        "Origin": "https://spa.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]


def test_no_token_or_code_in_logs_even_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from idp import directory
    from tests.conftest import make_app

    app = make_app(tmp_path, log_level="DEBUG")
    with svc(app).db.session() as s:
        t = directory.create_tenant(s, "acme")
        directory.create_user(s, svc(app).passwords, t, "alice", "a@acme.test", "member", PASSWORD)
    rp = register(app)
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        query, verifier = code_flow(client, rp)
        body = exchange(client, rp, query["code"], verifier).get_json()
        token(client, rp, grant_type="refresh_token", refresh_token=body["refresh_token"])
        # authlib logs every issued token at DEBUG ("Issue token %r to %r"): it must be muted
        grant_log = logging.getLogger("authlib.oauth2.rfc6749.grants.authorization_code")
        assert not grant_log.isEnabledFor(logging.DEBUG)
    secrets_seen = [query["code"], body["access_token"], body["refresh_token"], body["id_token"]]
    assert not any(s in caplog.text for s in secrets_seen)


def test_a_redirect_uri_removed_during_sign_in_gets_a_page_not_a_redirect(
    app: Flask, client: FlaskClient, rp: Rp
) -> None:
    """Nothing is sent to a redirect URI that is no longer registered (RFC 6749 4.1.2.1)."""
    from idp.store.models import Client

    resp = authorize(client, rp, code_challenge=pkce()[1], code_challenge_method="S256")
    flow_url = resp.headers["Location"]
    with svc(app).db.session() as s:
        registered = s.query(Client).filter_by(client_id=rp.client_id).one()
        registered.redirect_uris = ["https://rp.example/elsewhere"]
    html = client.get(flow_url).get_data(as_text=True)
    answered = client.post(flow_url, data={"csrf_token": csrf_of(html), "step": "identify",
                                           "username": "alice", "password": PASSWORD})  # fmt: skip
    resumed = client.get(answered.headers["Location"])
    assert resumed.status_code == 400 and "Location" not in resumed.headers
    assert "The client changed; start again." in resumed.get_data(as_text=True)
