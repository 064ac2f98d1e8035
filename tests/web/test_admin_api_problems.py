"""The admin API answers errors as RFC 9457 problem documents, keeping OAuth's ``error`` and
``error_description`` members (issue 13: one renderer per surface)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from tests.conftest import svc


def test_a_missing_token_is_a_problem_document(client: FlaskClient, tenant: str) -> None:
    resp = client.get(f"/t/{tenant}/admin/api/mfa-policy")
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    body = resp.get_json()
    assert body == {
        "type": "urn:stepwise:error:invalid_token",
        "title": "Unauthorized",
        "status": 401,
        "detail": "A bearer access token is required.",
        "error": "invalid_token",
        "error_description": "A bearer access token is required.",
    }


def test_a_tenant_without_signing_keys_answers_401_not_500(app: Flask) -> None:
    """A tenant made without keys (directory.create_tenant alone) has signed nothing: any
    bearer token is invalid, and the answer is a problem document, not a server error."""
    with svc(app).db.session() as s:
        directory.create_tenant(s, "bare")
    client = app.test_client()
    resp = client.get("/t/bare/admin/api/mfa-policy", headers={"Authorization": "Bearer a.b.c"})
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_token"
    assert client.get("/t/bare/jwks").get_json() == {"keys": []}


def test_an_unknown_tenants_console_is_404(client: FlaskClient) -> None:
    for path in ("/t/nosuch/admin/", "/t/nosuch/admin/users", "/t/nosuch/admin/audit"):
        assert client.get(path).status_code == 404, path
