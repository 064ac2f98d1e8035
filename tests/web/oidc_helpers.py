"""Helpers for OpenID Provider tests over the Flask test client (a browser and an RP)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from idp.oidc import clients, keys
from idp.store.models import Tenant
from testkit.html import csrf_of
from tests.conftest import PASSWORD, svc

ISSUER = "http://127.0.0.1:8000/t/acme"
REDIRECT = "https://rp.example/cb"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


@dataclass
class Rp:
    client_id: str
    secret: str | None
    public: bool = False


def register(app: Flask, name: str = "Web", **options: Any) -> Rp:
    s_ = svc(app)
    with s_.db.session() as s:
        tenant = s.query(Tenant).filter_by(slug="acme").one()
        keys.ensure_keys(s, s_.cipher, tenant)
        options.setdefault("redirect_uris", [REDIRECT])
        reg = clients.create_client(s, tenant, name, **options)
        return Rp(reg.client.client_id, reg.client_secret, reg.client.public)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(client: FlaskClient, rp: Rp, **params: str) -> Any:
    base = {
        "response_type": "code",
        "client_id": rp.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": "n-1",
    }
    base.update(params)
    return client.get("/t/acme/authorize", query_string={k: v for k, v in base.items() if v})


def sign_in(client: FlaskClient, resp: Any, username: str = "alice") -> Any:
    """Follow a redirect to the login page and answer it; returns the final response."""
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    flow_url = resp.headers["Location"]
    assert "/login" in flow_url, flow_url
    page = client.get(flow_url)
    html = page.get_data(as_text=True)
    step = "password" if 'name="step" value="password"' in html else "identify"
    answered = client.post(
        flow_url,
        data={
            "csrf_token": csrf_of(html),
            "step": step,
            "username": username,
            "password": PASSWORD,
        },
    )
    assert answered.status_code == 302, answered.get_data(as_text=True)[:500]
    return client.get(answered.headers["Location"])


def code_flow(client: FlaskClient, rp: Rp, **params: str) -> tuple[dict[str, str], str]:
    """Authorize (signing in when asked) and return the redirect's query and the verifier."""
    verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256", **params)
    if "/login" in resp.headers.get("Location", ""):
        resp = sign_in(client, resp)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT), location
    return query_of(location), verifier


def token(client: FlaskClient, rp: Rp, **form: str) -> Any:
    auth = None
    data = dict(form)
    if rp.secret is None:
        data["client_id"] = rp.client_id
    else:
        auth = (rp.client_id, rp.secret)
    return client.post("/t/acme/token", data=data, auth=auth)


def exchange(client: FlaskClient, rp: Rp, code: str, verifier: str) -> Any:
    return token(
        client, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
        code_verifier=verifier,
    )  # fmt: skip
