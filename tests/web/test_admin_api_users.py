"""The admin API's users: the console's user actions, one endpoint each (issue 14: Users)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.oidc import clients, keys
from idp.store.models import AuditEvent, BackupCode, Credential, UserSession
from tests.conftest import PASSWORD, svc

API = "/t/acme/admin/api/users"


def bearer(app: Flask, client: FlaskClient, scope: str = "stepwise:admin") -> dict[str, str]:
    """An admin API client's bearer token with ``scope``."""
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        keys.ensure_keys(s, svc(app).cipher, t)
        reg = clients.create_client(s, t, f"ops-{scope}", [], admin_api=True)
        cid, secret = reg.client.client_id, reg.client_secret
    resp = client.post("/t/acme/token", auth=(cid, secret),
                       data={"grant_type": "client_credentials", "scope": scope})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["scope"] == scope
    return {"Authorization": f"Bearer {resp.get_json()['access_token']}"}


def problem(resp: Any, status: int, text: str = "") -> None:
    body = resp.get_json()
    assert resp.status_code == status, (resp.status_code, body)
    assert resp.mimetype == "application/problem+json"
    assert text in body["error_description"], body


def test_list_pages_and_filters(app: Flask, client: FlaskClient, tenant: str) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        for i in range(25):
            u = directory.create_user(s, svc(app).passwords, t, f"u{i:02d}", f"u{i:02d}@x.test")
            u.mfa_required = i < 3
    h = bearer(app, client, "stepwise:admin.read")
    seen: list[str] = []
    cursor = None
    while True:
        query: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = client.get(API, headers=h, query_string=query).get_json()
        seen += [u["username"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["alice", "olivia", *[f"u{i:02d}" for i in range(25)]]
    first = client.get(API, headers=h, query_string={"q": "OLIV"}).get_json()["items"]
    assert [u["username"] for u in first] == ["olivia"]
    assert first[0]["role"] == "owner" and first[0]["mfa"] == "none"
    assert first[0]["has_password"] is True and "password_hash" not in first[0]
    on = client.get(API, headers=h, query_string={"mfa": "on"}).get_json()["items"]
    assert [u["username"] for u in on] == ["u00", "u01", "u02"]
    owners = client.get(API, headers=h, query_string={"role": "owner", "status": "active"})
    assert [u["username"] for u in owners.get_json()["items"]] == ["olivia"]
    problem(client.get(API, headers=h, query_string={"role": "king"}), 400, "role")
    problem(client.get(API, headers=h, query_string={"limit": 0}), 400, "limit")
    problem(client.get(API, headers=h, query_string={"cursor": "nonsense"}), 400, "cursor")
    problem(client.get(API, headers=h, query_string={"color": "red"}), 400, "color")
    problem(client.get(API, headers=h, query_string={"q": "x" * 255}), 400, "q")


def test_read_a_user_with_sessions_and_no_secret(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        alice = directory.require_user(s, t, "alice")
        s.add(Credential(user_id=alice.id, type="totp", label="Phone", created_at=5,
                         secret=b"sealed", data={}))  # fmt: skip
        s.add(BackupCode(user_id=alice.id, digest="d" * 64, created_at=5))
        now = directory.now()
        s.add(UserSession(tenant_id=t.id, user_id=alice.id, sid="sid-secret", ip="203.0.113.9",
                          user_agent="Safari", level=2, amr=["pwd", "otp"], created_at=now,
                          last_seen_at=now))  # fmt: skip
    h = bearer(app, client, "stepwise:admin.read")
    resp = client.get(f"{API}/alice", headers=h)
    body = resp.get_json()
    assert resp.status_code == 200
    assert body["factors"] == [{"kind": "totp", "label": "Phone", "created_at": 5,
                                "last_used_at": None}]  # fmt: skip
    assert body["backup_codes_left"] == 1 and body["mfa"] == "enrolled"
    assert body["sessions"][0]["ip"] == "203.0.113.9" and body["sessions"][0]["amr"] == [
        "pwd",
        "otp",
    ]
    created = body["recent_events"][0]
    assert (created["event"], created["actor"]) == ("user.created", "operator")  # the fixture
    raw = resp.get_data(as_text=True)
    for secret in ("sid-secret", "sealed", "d" * 64, "argon2"):
        assert secret not in raw
    problem(client.get(f"{API}/nobody", headers=h), 404, "nobody")


def test_create_update_unlock_sign_out_link_and_delete(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    h = bearer(app, client)
    made = client.post(API, headers=h, json={"username": "bob", "email": "bob@acme.test"})
    body = made.get_json()
    assert made.status_code == 201 and body["username"] == "bob" and body["has_password"] is False
    assert "/t/acme/set-password?token=" in body["set_password_link"]  # no mail configured
    cy = {"username": "cy", "email": "cy@acme.test", "role": "admin", "password": "a long pw 12345"}
    with_pw = client.post(API, headers=h, json=cy)
    assert with_pw.status_code == 201 and with_pw.get_json()["set_password_link"] is None
    problem(client.post(API, headers=h, json={"username": "BOB", "email": "b@acme.test"}), 409,
            "already exists")  # fmt: skip
    problem(client.post(API, headers=h, json={"username": "dee", "email": "nope"}), 400, "email")
    problem(client.post(API, headers=h, json={"username": "dee", "email": "d@acme.test",
                                              "password": "short"}), 400, "at least 8")  # fmt: skip
    problem(client.post(API, headers=h, json={"username": "dee", "email": "d@acme.test",
                                              "admin": True}), 400, "admin")  # fmt: skip
    problem(client.post(API, headers=h, json={"username": "o", "email": "o@acme.test",
                                              "role": "owner"}), 403, "only an owner")  # fmt: skip

    link = client.post(f"{API}/bob/set-password-link", headers=h).get_json()
    assert link["emailed"] is False and link["set_password_link"] != body["set_password_link"]
    problem(client.post(f"{API}/cy/set-password-link", headers=h), 409, "already has a password")

    changed = client.patch(f"{API}/bob", headers=h, json={"role": "admin", "status": "disabled"})
    assert changed.status_code == 200
    assert (changed.get_json()["role"], changed.get_json()["status"]) == ("admin", "disabled")
    back = client.patch(f"{API}/bob", headers=h, json={"status": "active"})
    assert back.get_json()["status"] == "active"
    problem(client.patch(f"{API}/bob", headers=h, json={"status": "locked"}), 400, "status")
    problem(client.patch(f"{API}/bob", headers=h, json={"role": "owner"}), 403, "only an owner")
    problem(client.patch(f"{API}/olivia", headers=h, json={"role": "admin"}), 403, "only an owner")

    with svc(app).db.session() as s:
        directory.require_user(s, directory.require_tenant(s, "acme"), "bob").status = "locked"
    unlocked = client.post(f"{API}/bob/unlock", headers=h)
    assert unlocked.status_code == 200 and unlocked.get_json()["status"] == "active"
    problem(client.post(f"{API}/olivia/unlock", headers=h), 403, "only an owner")
    client.patch(f"{API}/cy", headers=h, json={"status": "disabled"})
    problem(client.post(f"{API}/cy/unlock", headers=h), 409, "disabled, not locked")
    problem(client.post(API, headers=h, json={"username": "a/b", "email": "x@acme.test"}), 400,
            "username")  # fmt: skip

    out = client.post(f"{API}/alice/sign-out", headers=h)
    assert out.status_code == 200 and out.get_json() == {"sessions_ended": 0}
    problem(client.post(f"{API}/olivia/sign-out", headers=h), 403, "only an owner")

    gone = client.delete(f"{API}/bob", headers=h)
    assert gone.status_code == 204 and gone.get_data() == b""
    problem(client.get(f"{API}/bob", headers=h), 404)
    problem(client.delete(f"{API}/bob", headers=h), 404)
    problem(client.delete(f"{API}/olivia", headers=h), 403, "only an owner")
    with svc(app).db.session() as s:
        rows = s.execute(select(AuditEvent.event, AuditEvent.actor_client, AuditEvent.details)
                         .where(AuditEvent.event == "user.deleted")).all()  # fmt: skip
    assert len(rows) == 1 and rows[0][1]  # the acting API client is recorded
    assert rows[0][2]["username"] == "bob"


def test_read_only_tokens_read_but_do_not_write(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    h = bearer(app, client, "stepwise:admin.read")
    assert client.get(API, headers=h).status_code == 200
    assert client.get(f"{API}/alice", headers=h).status_code == 200
    for method, path, body in (
        ("POST", API, {"username": "x", "email": "x@acme.test"}),
        ("PATCH", f"{API}/alice", {"status": "disabled"}),
        ("DELETE", f"{API}/alice", None),
        ("POST", f"{API}/alice/unlock", None),
        ("POST", f"{API}/alice/sign-out", None),
        ("POST", f"{API}/alice/set-password-link", None),
    ):
        resp = client.open(path, method=method, headers=h, json=body)
        problem(resp, 403, "stepwise:admin")
    with svc(app).db.session() as s:
        alice = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        assert alice.status == "active" and directory.find_user(s, alice.tenant, "x") is None
    assert client.get(API).status_code == 401


def test_another_tenants_users_are_not_found(app: Flask, client: FlaskClient, tenant: str) -> None:
    with svc(app).db.session() as s:
        other = directory.create_tenant(s, "globex")
        keys.ensure_keys(s, svc(app).cipher, other)  # as `idp tenant create` does
        directory.create_user(s, svc(app).passwords, other, "gina", "g@globex.test", "member",
                              PASSWORD)  # fmt: skip
    h = bearer(app, client)
    problem(client.get(f"{API}/gina", headers=h), 404)
    problem(client.delete(f"{API}/gina", headers=h), 404)
    problem(client.patch(f"{API}/gina", headers=h, json={"status": "disabled"}), 404)
    names = [u["username"] for u in client.get(API, headers=h).get_json()["items"]]
    assert "gina" not in names
    assert client.get("/t/globex/admin/api/users", headers=h).status_code == 401  # acme's token
