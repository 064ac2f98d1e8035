"""Every console route, not a sample (issue 14 "Permissions"): members get 403 on each page
and each write; no write goes through without its CSRF token; each URL a form posts to also
answers GET (so re-authentication can return to it); and what a console action sets off
(token families ended, a SAML key made) names the admin too."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp import directory
from idp.oidc import clients, keys
from idp.saml import sps
from idp.store.models import AuditEvent, Grant, User
from testkit.html import csrf_of
from testkit.servers import create_database
from tests.conftest import PASSWORD, make_app, svc
from tests.mfa_helpers import MfaBrowser
from tests.web.test_mfa_policy import admin_token
from tests.web.test_saml_idp import SP_METADATA


def seeded(app: Flask) -> dict[str, str]:
    """Values for the console's path arguments: a client and an SP of tenant acme."""
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        keys.ensure_keys(s, svc(app).cipher, t)
        cid = clients.create_client(s, t, "RP", ["https://rp.example/cb"]).client.client_id
        sp = sps.add_sp(s, t, SP_METADATA.encode())
        s.flush()
        return {"username": "alice", "client_id": cid, "sp_id": str(sp.id), "tenant": "acme"}


def console_routes(app: Flask, values: dict[str, str]) -> list[tuple[str, str]]:
    """(method, path) of every console route, its arguments filled in."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", lambda m: values[m[1]], rule.rule)
        out += [(m, path) for m in sorted(rule.methods or ()) if m in ("GET", "POST")]
    return out


def audit_count(app: Flask) -> int:
    with svc(app).db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_members_get_403_on_every_console_page_and_write(
    app: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser
) -> None:
    routes = console_routes(app, seeded(app))
    assert len(routes) > 40
    mb.password("alice", PASSWORD)
    assert mb.finished
    csrf = csrf_of(client.get("/t/acme/account").get_data(as_text=True))
    before = audit_count(app)
    for method, path in routes:
        resp = client.open(path, method=method, data={"csrf_token": csrf, "confirm": "yes"})
        assert resp.status_code == 403, (method, path, resp.status_code)
    assert audit_count(app) == before  # not one change was made


def test_no_console_write_goes_through_without_its_csrf_token(
    app: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser
) -> None:
    routes = console_routes(app, seeded(app))
    mb.password("olivia", PASSWORD)  # an owner, just signed in: re-authenticated
    assert mb.finished
    writes = [path for method, path in routes if method == "POST"]
    gets = {path for method, path in routes if method == "GET"}
    assert len(writes) > 20 and set(writes) <= gets  # each form's URL answers GET too
    before = audit_count(app)
    for path in writes:
        resp = client.post(path, data={"confirm": "yes", "role": "owner", "mode": "off"})
        assert resp.status_code == 400, (path, resp.status_code)
        assert "form" in resp.get_data(as_text=True).lower(), path
    assert audit_count(app) == before
    with svc(app).db.session() as s:
        assert s.scalar(select(User.status).where(User.username == "alice")) == "active"


def test_what_a_console_action_sets_off_names_the_admin(
    app: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser
) -> None:
    values = seeded(app)
    with svc(app).db.session() as s:
        alice = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        s.add(Grant(gid="g" * 43, tenant_id=alice.tenant_id, client_id=values["client_id"],
                    user_id=alice.id, scope="openid", acr="", amr=["pwd"], auth_time=1,
                    sid="sid-1", created_at=1))  # fmt: skip
    mb.password("olivia", PASSWORD)
    page = client.get("/t/acme/admin/users/alice/disable").get_data(as_text=True)
    done = client.post("/t/acme/admin/users/alice/disable",
                       data={"csrf_token": csrf_of(page), "confirm": "yes"})  # fmt: skip
    assert done.status_code == 303
    with svc(app).db.session() as s:
        olivia = directory.require_user(s, directory.require_tenant(s, "acme"), "olivia")
        found = {
            e.event: e.actor_id
            for e in s.scalars(select(AuditEvent).where(AuditEvent.subject_id == alice.id))
        }
    assert found["user.disabled"] == olivia.id
    assert found["oauth.grants_revoked"] == olivia.id


def test_hostile_addresses_are_refused_not_errors(tmp_path: Path, postgres_url: str) -> None:
    """On PostgreSQL (which refuses NUL in text): a NUL in a path, a query or a form, and ids
    larger than the database's integers, are a 400 or a 404, never a 500 (review findings)."""
    app = make_app(tmp_path, database_url=create_database(postgres_url, f"t_{uuid.uuid4().hex}"))
    with svc(app).db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme")
        keys.ensure_keys(s, svc(app).cipher, t)
        directory.create_user(s, svc(app).passwords, t, "olivia", "o@acme.test", "owner",
                              PASSWORD)  # fmt: skip
    client = app.test_client()
    MfaBrowser(client, "acme").password("olivia", PASSWORD)
    page = client.get("/t/acme/admin/new-user").get_data(as_text=True)
    for path, status in [
        ("/t/acme/admin/users?q=%00", 400),
        ("/t/acme/admin/users?after=%00", 400),
        ("/t/acme/admin/users/a%00b", 400),
        ("/t/acme/admin/clients/a%00", 400),
        ("/t/acme/admin/sps/99999999999999999999999", 404),
        ("/t/acme/admin/sps/2147483648/delete", 404),
        ("/t/acme/admin/api/users?q=%00", 400),
        ("/t/acme/admin/api/users/a%00", 400),
        ("/t/acme/admin/audit?before=1099511627776", 200),  # past every id: the first page
    ]:
        assert client.get(path).status_code == status, path
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    for path in (
        "/t/acme/admin/api/saml-sps/99999999999",
        "/t/acme/admin/api/users?cursor=" + "9" * 18,
    ):
        assert client.get(path, headers=bearer).status_code in (200, 404), path
    multipart = client.post("/t/acme/admin/new-user", content_type="multipart/form-data",
                            data={"csrf_token": csrf_of(page), "username": "eve",
                                  "email": "eve\x00@acme.test"})  # fmt: skip
    assert multipart.status_code == 400
    sent = client.post("/t/acme/admin/new-user", data={"csrf_token": csrf_of(page),
                       "username": "eve", "email": "eve\x00@acme.test"})  # fmt: skip
    assert sent.status_code == 400
    with svc(app).db.session() as s:
        assert directory.find_user(s, directory.require_tenant(s, "acme"), "eve") is None
    svc(app).db.engine.dispose()


def test_re_authentication_returns_to_a_username_with_a_question_mark(
    app: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser
) -> None:
    from urllib.parse import unquote, urlsplit

    from idp.admin.console import _resend_url

    with app.test_request_context("/t/acme/admin/users/a%3Fb%23c/disable", method="POST",
                                  data={"confirm": "yes", "role": "admin"}):  # fmt: skip
        back = urlsplit(_resend_url())
    assert unquote(back.path) == "/t/acme/admin/users/a?b#c/disable"
    assert back.query == "role=admin"
