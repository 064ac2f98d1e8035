"""The admin API answers errors as RFC 9457 problem documents, keeping OAuth's ``error`` and
``error_description`` members (issue 13: one renderer per surface)."""

from __future__ import annotations

from flask.testing import FlaskClient


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
