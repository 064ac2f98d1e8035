"""The admin API's applications (issue 14): the console's client and SP operations over JSON,
with ETag/If-Match on reads and changes, cursor pagination, and never a secret hash."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.oidc import clients, keys
from idp.saml import sps
from idp.store.models import AuditEvent, Client, ServiceProvider
from tests.conftest import svc
from tests.web.test_mfa_policy import admin_token
from tests.web.test_saml_idp import SP_METADATA

API = "/t/acme/admin/api"
ENTITY = "https://console.example/sp"
NEW = {
    "name": "Payroll",
    "redirect_uris": ["https://payroll.example/cb"],
    "grant_types": ["authorization_code", "client_credentials"],
    "min_level": 1,
    "access_token_lifetime": 900,
}


def bearer(app: Flask, client: FlaskClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token(app, client)}"}


def read_only(app: Flask, client: FlaskClient) -> dict[str, str]:
    with svc(app).db.session() as s:
        reg = clients.create_client(s, directory.require_tenant(s, "acme"), "ro", [],
                                    admin_api=True)  # fmt: skip
    resp = client.post(
        "/t/acme/token",
        auth=(reg.client.client_id, reg.client_secret),
        data={"grant_type": "client_credentials", "scope": "stepwise:admin.read"},
    )
    return {"Authorization": f"Bearer {resp.get_json()['access_token']}"}


def events(app: Flask, prefix: str) -> list[AuditEvent]:
    with svc(app).db.session() as s:
        stmt = select(AuditEvent).where(AuditEvent.event.like(f"{prefix}%"))
        return list(s.scalars(stmt.order_by(AuditEvent.id)))


def no_secret_material(body: Any) -> None:
    text = str(body)
    assert "secret_hash" not in text and "PRIVATE KEY" not in text


def test_clients_create_read_change_rotate_and_delete(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    auth = bearer(app, client)
    created = client.post(f"{API}/clients", headers=auth, json=NEW)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    cid, first = body["client_id"], body["client_secret"]
    assert body["grant_types"] == ["authorization_code", "client_credentials"]
    assert (body["min_level"], body["access_token_lifetime"]) == (1, 900)
    no_secret_material(body)
    assert client.post("/t/acme/token", auth=(cid, first),
                       data={"grant_type": "client_credentials"}).status_code == 200  # fmt: skip

    got = client.get(f"{API}/clients/{cid}", headers=auth)
    assert got.status_code == 200 and "client_secret" not in got.get_json()
    etag = got.headers["ETag"]
    changed = client.patch(
        f"{API}/clients/{cid}",
        headers={**auth, "If-Match": etag},
        json={"name": "Payroll 2", "redirect_uris": ["https://payroll.example/new"]},
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["name"] == "Payroll 2" and "client_secret" not in changed.get_json()
    assert changed.headers["ETag"] != etag
    assert (
        changed.headers["ETag"] == client.get(f"{API}/clients/{cid}", headers=auth).headers["ETag"]
    )
    stale = client.patch(
        f"{API}/clients/{cid}", headers={**auth, "If-Match": etag}, json={"name": "Lost update"}
    )
    assert stale.status_code == 412 and stale.mimetype == "application/problem+json"
    (updated,) = events(app, "client.updated")
    assert updated.details["changed"] == ["name", "redirect_uris"]
    assert updated.actor_client and updated.actor_id is None

    rotated = client.post(f"{API}/clients/{cid}/secret", headers=auth)
    assert rotated.status_code == 200
    second = rotated.get_json()["client_secret"]
    assert second != first
    old = client.post("/t/acme/token", auth=(cid, first), data={"grant_type": "client_credentials"})
    assert old.status_code == 401
    assert client.post("/t/acme/token", auth=(cid, second),
                       data={"grant_type": "client_credentials"}).status_code == 200  # fmt: skip

    listed = client.get(f"{API}/clients", headers=auth).get_json()
    assert cid in [c["client_id"] for c in listed["items"]]
    no_secret_material(listed)

    assert client.delete(f"{API}/clients/{cid}", headers=auth).status_code == 204
    assert client.get(f"{API}/clients/{cid}", headers=auth).status_code == 404
    assert client.delete(f"{API}/clients/{cid}", headers=auth).status_code == 404
    audited = [e.event for e in events(app, "client.") if e.details.get("client_id") == cid]
    assert audited == ["client.created", "client.updated", "client.secret_rotated",
                       "client.deleted"]  # fmt: skip
    for e in events(app, "client."):
        assert first not in str(e.details) and second not in str(e.details)


def test_client_changes_are_validated_like_the_console(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    auth = bearer(app, client)
    # 400: the body does not match the documented schema; 422: a rule refuses a value.
    for body, message, status in [
        ({**NEW, "redirect_uris": ["http://rp.example/cb"]}, "redirect URI must be https", 422),
        ({**NEW, "redirect_uris": ["https://rp.example/cb#f"]}, "must not have a fragment", 422),
        ({**NEW, "grant_types": ["password"]}, "grant_types.0", 400),
        ({**NEW, "access_token_lifetime": 10}, "access_token_lifetime", 400),
        ({**NEW, "public": True}, "a public client cannot use client_credentials", 422),
        ({**NEW, "name": "a\u0000b"}, "client name", 422),
        ({**NEW, "secret_hash": "x"}, "secret_hash", 400),
        ({**NEW, "refresh_lifetime": 3600, "refresh_idle_lifetime": 7200}, "at most", 422),
    ]:
        resp = client.post(f"{API}/clients", headers=auth, json=body)
        assert resp.status_code == status, (body, resp.get_json())
        assert message in resp.get_json()["detail"], (message, resp.get_json())
    with svc(app).db.session() as s:
        assert [c.name for c in s.scalars(select(Client))] == ["ops"]
    cid = client.post(f"{API}/clients", headers=auth, json=NEW).get_json()["client_id"]
    bad = client.patch(f"{API}/clients/{cid}", headers=auth,
                       json={"redirect_uris": ["https://ok.example/", "ftp://x"]})  # fmt: skip
    assert bad.status_code == 422 and "redirect URI must be" in bad.get_json()["detail"]
    assert client.get(f"{API}/clients/{cid}", headers=auth).get_json()["redirect_uris"] == [
        "https://payroll.example/cb"
    ]
    # Made public: the secret goes; made confidential again: a new one, shown once.
    public = client.patch(f"{API}/clients/{cid}", headers=auth,
                          json={"public": True, "grant_types": ["authorization_code"]})  # fmt: skip
    assert public.status_code == 200 and public.get_json()["public"] is True
    assert client.post(f"{API}/clients/{cid}/secret", headers=auth).status_code == 422
    again = client.patch(f"{API}/clients/{cid}", headers=auth, json={"public": False})
    assert again.status_code == 200 and len(again.get_json()["client_secret"]) >= 43


def test_saml_sps_add_read_change_refresh_and_delete(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    auth = bearer(app, client)
    added = client.post(
        f"{API}/saml-sps",
        headers=auth,
        json={"metadata": SP_METADATA, "name": "Console", "nameid": "email", "min_level": 2},
    )
    assert added.status_code == 201, added.get_json()
    sp = added.get_json()
    assert (sp["entity_id"], sp["nameid"], sp["min_level"]) == (ENTITY, "email", 2)
    assert sp["acs"][0]["location"] == "https://console.example/acs"
    no_secret_material(sp)
    again = client.post(f"{API}/saml-sps", headers=auth, json={"metadata": SP_METADATA})
    assert again.status_code == 422 and "already exists" in again.get_json()["detail"]

    url = f"{API}/saml-sps/{sp['id']}"
    got = client.get(url, headers=auth)
    etag = got.headers["ETag"]
    encrypt = client.patch(url, headers=auth, json={"encrypt_assertion": True})
    assert encrypt.status_code == 422
    assert "needs an encryption certificate" in encrypt.get_json()["detail"]
    changed = client.patch(url, headers={**auth, "If-Match": etag},
                           json={"attributes": ["username"], "sign_response": True})  # fmt: skip
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["attributes"] == ["username"]
    stale = client.patch(url, headers={**auth, "If-Match": etag}, json={"min_level": 0})
    assert stale.status_code == 412

    other = SP_METADATA.replace(ENTITY, "https://other.example/sp")
    refused = client.post(f"{url}/metadata", headers=auth, json={"metadata": other})
    assert (
        refused.status_code == 422
        and "not 'https://console.example/sp'" in (refused.get_json()["detail"])
    )
    moved = SP_METADATA.replace("console.example/acs", "console.example/acs2")
    refreshed = client.post(f"{url}/metadata", headers=auth, json={"metadata": moved})
    assert refreshed.status_code == 200
    assert refreshed.get_json()["acs"][0]["location"] == "https://console.example/acs2"
    assert refreshed.get_json()["attributes"] == ["username"]  # settings stay

    listed = client.get(f"{API}/saml-sps", headers=auth).get_json()
    assert [s["id"] for s in listed["items"]] == [sp["id"]] and listed["next_cursor"] is None
    assert client.delete(url, headers=auth).status_code == 204
    assert client.get(url, headers=auth).status_code == 404
    for junk in ("abc", "-1", "99999999999999999999", "%E2%91%A0"):
        assert client.get(f"{API}/saml-sps/{junk}", headers=auth).status_code == 404, junk
    assert [e.event for e in events(app, "saml.sp_")] == [
        "saml.sp_added",
        "saml.sp_updated",
        "saml.sp_refreshed",
        "saml.sp_deleted",
    ]
    assert all(e.actor_client for e in events(app, "saml.sp_"))
    bad = client.post(f"{API}/saml-sps", headers=auth, json={"metadata": "<oops"})
    assert bad.status_code == 422 and "not well-formed" in bad.get_json()["detail"]
    surrogate = client.post(
        f"{API}/saml-sps",
        headers={**auth, "Content-Type": "application/json"},
        data='{"metadata": "<x>\\ud800</x>"}',
    )
    assert surrogate.status_code == 400


def test_lists_are_paginated_with_a_cursor(app: Flask, client: FlaskClient, tenant: str) -> None:
    auth = bearer(app, client)
    for n in range(3):
        body = {**NEW, "name": f"App {n}"}
        assert client.post(f"{API}/clients", headers=auth, json=body).status_code == 201
    first = client.get(f"{API}/clients?limit=2", headers=auth).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get(f"{API}/clients?limit=2&cursor={first['next_cursor']}", headers=auth)
    names = [c["name"] for c in first["items"] + rest.get_json()["items"]]
    assert names == ["ops", "App 0", "App 1", "App 2"] and rest.get_json()["next_cursor"] is None


def test_read_only_tokens_read_and_other_tenants_are_not_found(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    auth = bearer(app, client)
    ro = read_only(app, client)
    assert client.get(f"{API}/clients", headers=ro).status_code == 200
    assert client.post(f"{API}/clients", headers=ro, json=NEW).status_code == 403
    with svc(app).db.session() as s:
        other = directory.create_tenant(s, "other")
        keys.ensure_keys(s, svc(app).cipher, other)
        theirs = clients.create_client(s, other, "Theirs", ["https://theirs.example/cb"]).client
        their_sp = sps.add_sp(s, other, SP_METADATA.encode()).id
        their_id = theirs.client_id
    for method, url in [
        ("GET", f"/clients/{their_id}"),
        ("PATCH", f"/clients/{their_id}"),
        ("DELETE", f"/clients/{their_id}"),
        ("POST", f"/clients/{their_id}/secret"),
        ("GET", f"/saml-sps/{their_sp}"),
        ("DELETE", f"/saml-sps/{their_sp}"),
    ]:
        kw: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        resp = client.open(API + url, method=method, headers=auth, **kw)
        assert resp.status_code == 404, (method, url, resp.get_json())
    with svc(app).db.session() as s:
        assert s.scalars(select(Client).where(Client.client_id == their_id)).one()
        assert s.get(ServiceProvider, their_sp) is not None
    # The other tenant's listing is not ours either.
    ours = client.get(f"{API}/clients", headers=auth).get_json()["items"]
    assert their_id not in [c["client_id"] for c in ours]
