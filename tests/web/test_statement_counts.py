"""The SQL statements of the hot requests, counted (issue 17): a client_credentials grant
reads nothing from the database, a refresh takes three statements, and a login POST reads
its user once. A change that adds round trips to these shows up here, not only in bench/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from tests.conftest import PASSWORD, Browser, svc
from tests.web.oidc_helpers import code_flow, exchange, register, token


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL sent to the database while the block runs, first words only."""
    seen: list[str] = []
    engine = svc(app).db.engine

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()[:4]))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_a_client_credentials_grant_sends_no_sql(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    rp = register(app)
    assert token(client, rp, grant_type="client_credentials").status_code == 200  # warm caches
    with statements(app) as seen:
        assert token(client, rp, grant_type="client_credentials").status_code == 200
    assert seen == []


def test_a_refresh_takes_three_statements(app: Flask, client: FlaskClient, tenant: str) -> None:
    rp = register(app)
    q, verifier = code_flow(client, rp, scope="openid offline_access")
    refresh = exchange(client, rp, q["code"], verifier).get_json()["refresh_token"]
    with statements(app) as seen:
        resp = token(client, rp, grant_type="refresh_token", refresh_token=refresh)
    assert resp.status_code == 200, resp.get_json()
    assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE", "INSERT"], seen


def test_a_login_post_reads_its_user_once(app: Flask, browser: Browser) -> None:
    url, html = browser.open_login()
    with statements(app) as seen:
        resp = browser.post(url, html, "identify", username="alice", password=PASSWORD)
    assert resp.status_code == 302
    users = [s for s in seen if s.startswith("SELECT users.id")]
    assert len(users) == 1, seen


def test_userinfo_and_introspection_read_the_token_family_once(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    """An access token's family (is it revoked?) and its user (may it still sign in?) come
    back in one SELECT; both endpoints read them twice each before."""
    rp = register(app)
    assert rp.secret is not None
    basic = (rp.client_id, rp.secret)
    q, verifier = code_flow(client, rp, scope="openid profile")
    access = exchange(client, rp, q["code"], verifier).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert client.get("/t/acme/userinfo", headers=bearer).status_code == 200  # warm the keys
    with statements(app) as seen:
        resp = client.get("/t/acme/userinfo", headers=bearer)
    assert resp.status_code == 200 and resp.get_json()["sub"], resp.get_json()
    assert [s.split()[0] for s in seen] == ["SELECT"], seen
    with statements(app) as seen:
        resp = client.post("/t/acme/introspect", data={"token": access}, auth=basic)
    assert resp.status_code == 200 and resp.get_json()["active"] is True, resp.get_json()
    assert [s.split()[0] for s in seen] == ["SELECT"], seen
