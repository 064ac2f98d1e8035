"""The token, revocation, introspection and UserInfo endpoints answered before Flask's
request cycle (idp.oidc.api_routes): the same answers as the Flask views they stand in for,
good requests and bad."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request_started
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.conftest import PASSWORD, make_app, svc
from tests.web.oidc_helpers import Rp, code_flow, exchange, register

# Headers that differ between the two by design: the request id and ``Connection: close``
# after an unread body are added outside both (idp.request_telemetry, idp.unread_body), and a
# token's length varies.
PER_ANSWER = {"x-request-id", "connection", "content-length"}


@pytest.fixture
def node(tmp_path: Path) -> Flask:
    app = make_app(tmp_path, node_name="node-a")
    from idp import directory

    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        directory.create_user(s, s_.passwords, t, "alice", "alice@acme.test", "member", PASSWORD)
    return app


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def answer(app: Flask, bare: bool, **builder: Any) -> tuple[str, dict[str, str], bytes]:
    """One request through the whole app (the route), or through Flask alone (the view)."""
    builder.setdefault("method", "POST")
    builder.setdefault("path", "/t/acme/token")
    environ = EnvironBuilder(**builder).get_environ()
    wsgi = (lambda e, s: Flask.wsgi_app(app, e, s)) if bare else app.wsgi_app
    body, status, headers = run_wsgi_app(wsgi, environ, buffered=True)
    return status, {k.lower(): v for k, v in headers.items()}, b"".join(body)


def both(app: Flask, **builder: Any) -> tuple[Any, Any]:
    route, view = answer(app, False, **builder), answer(app, True, **builder)
    assert route[0] == view[0]
    assert {k: v for k, v in route[1].items() if k not in PER_ANSWER} == {
        k: v for k, v in view[1].items() if k not in PER_ANSWER
    }
    return route, view


def refresh_token(app: Flask, rp: Rp) -> str:
    q, verifier = code_flow(app.test_client(), rp, scope="openid offline_access")
    token: str = exchange(app.test_client(), rp, q["code"], verifier).get_json()["refresh_token"]
    return token


def claims_of(app: Flask, body: bytes, name: str) -> dict[str, Any]:
    keyset = KeySet.import_key_set(app.test_client().get("/t/acme/jwks").get_json())
    claims = dict(jwt.decode(json.loads(body)[name], keyset).claims)
    for per_token in ("jti", "iat", "exp", "auth_time", "at_hash", "nonce"):
        claims.pop(per_token, None)
    return claims


def test_client_credentials_gets_the_answer_the_view_gives(node: Flask) -> None:
    rp = register(node)
    (status, headers, body), (_, _, view_body) = both(
        node,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(rp.client_id, rp.secret or "")},
    )
    assert status == "200 OK" and headers["x-stepwise-node"] == "node-a"
    assert headers["cache-control"] == "no-store" and headers["access-control-allow-origin"] == "*"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    route, view = json.loads(body), json.loads(view_body)
    assert route.keys() == view.keys() and route["access_token"] != view["access_token"]
    assert claims_of(node, body, "access_token") == claims_of(node, view_body, "access_token")


def test_a_refresh_gets_the_answer_the_view_gives(node: Flask) -> None:
    rp = register(node)
    auth = {"Authorization": basic(rp.client_id, rp.secret or "")}
    route, view = (
        answer(node, bare, headers=auth,
               data={"grant_type": "refresh_token", "refresh_token": refresh_token(node, rp)})
        for bare in (False, True)
    )  # fmt: skip
    assert route[0] == view[0] == "200 OK"
    assert json.loads(route[2]).keys() == json.loads(view[2]).keys()
    for name in ("access_token", "id_token"):
        route_claims, view_claims = claims_of(node, route[2], name), claims_of(node, view[2], name)
        route_claims.pop("sid"), view_claims.pop("sid")  # two sign-ins
        assert route_claims == view_claims


BAD: dict[str, dict[str, Any]] = {
    "wrong secret": {"data": {"grant_type": "client_credentials"}, "secret": "wrong"},
    "no client": {"data": {"grant_type": "client_credentials"}, "secret": None},
    "unknown grant": {"data": {"grant_type": "password"}},
    "no grant": {"data": {"scope": "x"}},
    "a JSON body": {"json": {"grant_type": "client_credentials"}},
    "a NUL": {"data": {"grant_type": "client_credentials", "scope": "a\x00b"}},
    "not UTF-8": {"data": b"grant_type=%ff%fe&scope=openid",
                  "content_type": "application/x-www-form-urlencoded"},
    "too many fields": {"data": {f"f{i}": "x" for i in range(60)}},
    "too large": {"data": {"grant_type": "client_credentials", "scope": "x" * 70_000}},
    "no such tenant": {"data": {"grant_type": "client_credentials"}, "path": "/t/nobody/token"},
    "a reused refresh token": {"data": {"grant_type": "refresh_token", "refresh_token": "nope"}},
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_requests_get_the_error_the_view_gives(node: Flask, case: str) -> None:
    rp = register(node)
    spec = dict(BAD[case])
    secret = spec.pop("secret", rp.secret)
    if secret is not None:
        spec["headers"] = {"Authorization": basic(rp.client_id, secret)}
    (status, headers, body), (_, _, view_body) = both(node, **spec)
    assert status[0] == "4", (status, body)
    assert json.loads(body) == json.loads(view_body) and "error" in json.loads(body)
    assert headers["content-type"] == "application/json"


@contextmanager
def flask_requests(app: Flask) -> Iterator[list[str]]:
    """One entry for each request Flask's request cycle starts while the block runs."""
    started: list[str] = []

    def seen(sender: Flask, **_: Any) -> None:
        started.append("flask")

    request_started.connect(seen, app)
    try:
        yield started
    finally:
        request_started.disconnect(seen, app)


def test_the_route_answers_without_a_flask_request(node: Flask) -> None:
    """Flask's request cycle never starts for a token POST; a preflight still goes to Flask."""
    rp = register(node)
    with flask_requests(node) as started:
        client = node.test_client()
        posted = client.post("/t/acme/token", data={"grant_type": "client_credentials"},
                             auth=(rp.client_id, rp.secret or ""))  # fmt: skip
        assert posted.status_code == 200 and started == []
        lower = client.open("/t/acme/token", method="post", auth=(rp.client_id, rp.secret or ""),
                            data={"grant_type": "client_credentials"})  # fmt: skip
        assert lower.status_code == 200 and started == []  # werkzeug reads "post" as POST
        preflight = client.options("/t/acme/token")
        assert preflight.headers["Access-Control-Allow-Methods"] == "GET, POST"
        assert started == ["flask"]
        assert client.get("/t/acme/token").status_code == 405


def access_token(app: Flask, rp: Rp, scope: str = "openid profile email") -> str:
    q, verifier = code_flow(app.test_client(), rp, scope=scope)
    token: str = exchange(app.test_client(), rp, q["code"], verifier).get_json()["access_token"]
    return token


def test_userinfo_and_introspection_get_the_answers_the_views_give(node: Flask) -> None:
    rp = register(node)
    access = access_token(node, rp)
    bearer = {"Authorization": f"Bearer {access}"}
    client_auth = {"Authorization": basic(rp.client_id, rp.secret or "")}
    for spec in (
        {"method": "GET", "path": "/t/acme/userinfo", "headers": bearer},
        {"path": "/t/acme/userinfo", "data": {"access_token": access}},
        {"path": "/t/acme/introspect", "headers": client_auth, "data": {"token": access}},
        {"path": "/t/acme/revoke", "headers": client_auth, "data": {"token": "not-a-token"}},
    ):
        (status, headers, body), (_, _, view_body) = both(node, **spec)
        assert status == "200 OK" and json.loads(body) == json.loads(view_body), spec
        assert headers["cache-control"] == "no-store" and headers["x-stepwise-node"] == "node-a"
        assert headers["access-control-allow-origin"] == "*"
    userinfo = json.loads(answer(node, False, method="GET", path="/t/acme/userinfo",
                                 headers=bearer)[2])  # fmt: skip
    assert userinfo["preferred_username"] == "alice"
    introspected = json.loads(answer(node, False, path="/t/acme/introspect", headers=client_auth,
                                     data={"token": access})[2])  # fmt: skip
    assert introspected["active"] is True and introspected["client_id"] == rp.client_id


def test_a_revocation_through_the_route_ends_the_family(node: Flask) -> None:
    """Revocation writes: through the route, the grant ends and its access token goes
    inactive for the view and the route alike."""
    rp = register(node)
    access = access_token(node, rp)
    client_auth = {"Authorization": basic(rp.client_id, rp.secret or "")}
    revoked = answer(node, False, path="/t/acme/revoke", headers=client_auth,
                     data={"token": access})  # fmt: skip
    assert revoked[0] == "200 OK" and json.loads(revoked[2]) == {}
    (status, _, body), _ = both(node, path="/t/acme/introspect", headers=client_auth,
                                data={"token": access})  # fmt: skip
    assert status == "200 OK" and json.loads(body) == {"active": False}
    (status, headers, _), _ = both(node, method="GET", path="/t/acme/userinfo",
                                   headers={"Authorization": f"Bearer {access}"})  # fmt: skip
    assert status.startswith("401") and 'error="invalid_token"' in headers["www-authenticate"]


BAD_API: dict[str, dict[str, Any]] = {
    "introspect: no token": {"path": "/t/acme/introspect", "data": {"token_type_hint": "x"}},
    "introspect: wrong secret": {"path": "/t/acme/introspect", "data": {"token": "x"},
                                 "secret": "wrong"},
    "introspect: a public client": {"path": "/t/acme/introspect", "data": {"token": "x"},
                                    "public": True},
    "introspect: a JSON body": {"path": "/t/acme/introspect", "json": {"token": "x"}},
    "introspect: a NUL": {"path": "/t/acme/introspect", "data": {"token": "a\x00b"}},
    "revoke: no client": {"path": "/t/acme/revoke", "data": {"token": "x"}, "secret": None},
    "revoke: too many fields": {"path": "/t/acme/revoke",
                                "data": {f"f{i}": "x" for i in range(60)}},
    "userinfo: no token": {"method": "GET", "path": "/t/acme/userinfo", "secret": None},
    "userinfo: a bad token": {"method": "GET", "path": "/t/acme/userinfo", "secret": None,
                              "bearer": "a.b.c"},
    "userinfo: two tokens": {"path": "/t/acme/userinfo", "secret": None, "bearer": "a.b.c",
                             "data": {"access_token": "a.b.c"}},
    "userinfo: a client's own token": {"method": "GET", "path": "/t/acme/userinfo",
                                       "secret": None, "bearer": "client_credentials"},
    "userinfo: a NUL in the address": {"method": "GET", "path": "/t/acme/userinfo",
                                       "query_string": "x=a%00b", "secret": None},
    "userinfo: no such tenant": {"method": "GET", "path": "/t/nobody/userinfo", "secret": None,
                                 "bearer": "a.b.c"},
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_API)
def test_bad_api_requests_get_the_error_the_view_gives(node: Flask, case: str) -> None:
    spec = dict(BAD_API[case])
    rp = register(node, public=True) if spec.pop("public", False) else register(node)
    secret = spec.pop("secret", rp.secret)
    headers = {"Authorization": basic(rp.client_id, secret)} if secret is not None else {}
    bearer = spec.pop("bearer", None)
    if bearer == "client_credentials":
        own = node.test_client().post("/t/acme/token", data={"grant_type": "client_credentials"},
                                      auth=(rp.client_id, rp.secret or ""))  # fmt: skip
        bearer = own.get_json()["access_token"]
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if rp.public and "data" in spec:
        spec["data"] = {**spec["data"], "client_id": rp.client_id}
    (status, got, body), (_, _, view_body) = both(node, headers=headers, **spec)
    assert status[0] == "4", (status, body)
    assert json.loads(body) == json.loads(view_body) and "error" in json.loads(body)
    assert got["content-type"] == "application/json"


def test_api_routes_answer_without_a_flask_request(node: Flask) -> None:
    """UserInfo, introspection and revocation skip Flask's request cycle as the token POST
    does; HEAD, a preflight and a multipart body go to Flask."""
    rp = register(node)
    access = access_token(node, rp)
    with flask_requests(node) as started:
        client = node.test_client()
        bearer = {"Authorization": f"Bearer {access}"}
        assert client.get("/t/acme/userinfo", headers=bearer).status_code == 200
        assert client.post("/t/acme/userinfo", headers=bearer).status_code == 200
        creds = (rp.client_id, rp.secret or "")
        introspected = client.post("/t/acme/introspect", data={"token": access}, auth=creds)
        assert introspected.json is not None and introspected.json["active"] is True
        assert client.post("/t/acme/revoke", data={"token": "x"}, auth=creds).status_code == 200
        assert started == []
        assert client.head("/t/acme/userinfo", headers=bearer).status_code == 200
        assert started == ["flask"]
        multipart = client.post("/t/acme/introspect", data={"token": (io.BytesIO(b"x"), "t")},
                                auth=creds)  # fmt: skip
        assert multipart.status_code == 400 and started == ["flask", "flask"]
        assert multipart.json is not None and multipart.json["error"] == "invalid_request"


def refused_by_both(app: Flask, rp: Rp, access: str) -> None:
    """UserInfo answers 401 ``invalid_token`` and introspection ``active: false``, through the
    route and through the view alike."""
    bearer = {"Authorization": f"Bearer {access}"}
    (status, headers, _), _ = both(app, method="GET", path="/t/acme/userinfo", headers=bearer)
    assert status.startswith("401") and 'error="invalid_token"' in headers["www-authenticate"]
    client_auth = {"Authorization": basic(rp.client_id, rp.secret or "")}
    (status, _, body), _ = both(app, path="/t/acme/introspect", headers=client_auth,
                                data={"token": access})  # fmt: skip
    assert status == "200 OK" and json.loads(body) == {"active": False}


def test_a_token_whose_subject_is_not_its_familys_user_is_refused(node: Flask) -> None:
    """The claims UserInfo releases are the family's user's. A token of alice's family that
    names bob (as only a holder of the signing key could make) names nobody: before, the
    user was found by the token's ``sub`` alone, across tenants."""
    from idp import directory
    from idp.oidc import tokens
    from idp.oidc.current import context_for

    rp = register(node)
    access = access_token(node, rp)
    s_ = svc(node)
    with node.app_context(), s_.db.session() as s:
        tenant = directory.require_tenant(s, "acme")
        bob = directory.create_user(s, s_.passwords, tenant, "bob", "bob@acme.test", "member",
                                    PASSWORD)  # fmt: skip
        ctx = context_for(s, tenant, "-")
        claims = tokens.verify(access, ctx.verifier(), ctx.issuer, ctx.now,
                               typ=tokens.ACCESS_TOKEN_TYP)  # fmt: skip
        forged = tokens.sign(ctx.signer(), {**claims, "sub": bob.sub}, tokens.ACCESS_TOKEN_TYP)
    refused_by_both(node, rp, forged)


def test_another_tenants_token_and_a_token_in_the_query_are_refused(node: Flask) -> None:
    """A token of tenant beta (its key, its issuer, the claims of an acme token) is nothing
    at acme; nor is a token in the query string (RFC 6750 2.3, not supported here)."""
    from idp import directory
    from idp.oidc import keys, tokens
    from idp.oidc.current import context_for

    rp = register(node)
    access = access_token(node, rp)
    s_ = svc(node)
    with node.app_context(), s_.db.session() as s:
        acme = directory.require_tenant(s, "acme")
        here = context_for(s, acme, "-")
        claims = tokens.verify(access, here.verifier(), here.issuer, here.now,
                               typ=tokens.ACCESS_TOKEN_TYP)  # fmt: skip
        beta = directory.create_tenant(s, "beta", "Beta Inc")
        keys.ensure_keys(s, s_.cipher, beta)
        there = context_for(s, beta, "-")
        foreign = tokens.sign(there.signer(), {**claims, "iss": there.issuer},
                              tokens.ACCESS_TOKEN_TYP)  # fmt: skip
    refused_by_both(node, rp, foreign)
    (status, headers, _), _ = both(node, method="GET", path="/t/acme/userinfo",
                                   query_string={"access_token": access})  # fmt: skip
    assert status.startswith("401") and 'error="invalid_token"' in headers["www-authenticate"]
