"""The token endpoint answered before Flask's request cycle (idp.oidc.token_route): the same
answers as the Flask view it stands in for, good requests and bad."""

from __future__ import annotations

import base64
import json
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


def test_the_route_answers_without_a_flask_request(node: Flask) -> None:
    """Flask's request cycle never starts for a token POST; a preflight still goes to Flask."""
    rp = register(node)
    started: list[str] = []

    def seen(sender: Flask, **_: Any) -> None:
        started.append("flask")

    request_started.connect(seen, node)
    try:
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
    finally:
        request_started.disconnect(seen, node)
