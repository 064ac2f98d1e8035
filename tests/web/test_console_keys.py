"""The console's Keys page and the admin API's ``/keys`` (issue 14): both kinds of signing key
listed without private material, OIDC rotation behind a confirmation page (the JWKS then lists
both kids, the old one until its grace ends), SAML rotation in two confirmed steps (metadata
lists the next certificate first), audited with the acting admin or API client."""

from __future__ import annotations

import html

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import clock, directory
from idp.oidc import keys
from idp.saml import keys as saml_keys
from idp.store.models import AuditEvent, SamlKey, SigningKey
from testkit.html import HIDDEN, alert_of, csrf_of
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, logout
from tests.web.test_mfa_policy import admin_token
from tests.web.test_saml_idp import certs_in

PAGE = "/t/acme/admin/keys"


def setup_keys(app: Flask) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        keys.ensure_keys(s, svc(app).cipher, t)
        saml_keys.ensure_key(s, svc(app).cipher, t)


def signed_in_owner(app: Flask, mb: MfaBrowser) -> int:
    setup_keys(app)
    mb.password("olivia", PASSWORD)
    assert mb.finished
    with svc(app).db.session() as s:
        return directory.require_user(s, directory.require_tenant(s, "acme"), "olivia").id


def kids(client: FlaskClient) -> list[str]:
    return [k["kid"] for k in client.get("/t/acme/jwks").get_json()["keys"]]


def active(app: Flask, alg: str) -> str:
    with svc(app).db.session() as s:
        row = keys.active_key(s, directory.require_tenant(s, "acme"), alg)
        assert row is not None
        return row.kid


def events(app: Flask, name: str) -> list[AuditEvent]:
    with svc(app).db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def saml_states(app: Flask) -> list[str]:
    with svc(app).db.session() as s:
        return list(s.scalars(select(SamlKey.state).order_by(SamlKey.id)))


def metadata_certs(client: FlaskClient) -> list[str]:
    return certs_in(client.get("/t/acme/saml/metadata").data)


def test_the_page_lists_both_kinds_of_key_and_no_private_key(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    signed_in_owner(app, mb)
    page = client.get(PAGE)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for alg in keys.ALGORITHMS:
        kid = active(app, alg)
        row = text.split(f'<tr data-kid="{kid}">', 1)[1].split("</tr>", 1)[0]
        assert alg in row and "active (signs)" in row
    with svc(app).db.session() as s:
        (row,) = s.scalars(select(SamlKey)).all()
        facts = saml_keys.cert_facts(row.cert_pem)
    assert facts.sha256[:23] in text and "active (signs)" in text
    assert clock_year(facts.not_after) in text  # the certificate's expiry date
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    assert 'id="saml-publish"' in text and 'id="saml-activate"' not in text


def clock_year(seconds: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d")


def test_oidc_rotation_through_the_confirmation_page(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    olivia = signed_in_owner(app, mb)
    old = active(app, "ES256")
    confirm = client.get(f"{PAGE}/oidc/rotate", query_string={"alg": "ES256", "grace_hours": "2"})
    assert confirm.status_code == 200
    text = html.unescape(confirm.get_data(as_text=True))
    until = clock.now() + 2 * 3600
    assert "A new ES256 key is made; it signs every ES256 token from now." in text
    assert f"The current ES256 key {old} stops signing." in text
    assert "so tokens it signed still verify until then" in text
    assert set(HIDDEN.findall(text)) >= {("alg", "ES256"), ("grace_hours", "2")}
    assert active(app, "ES256") == old  # nothing changed by looking
    done = client.post(
        f"{PAGE}/oidc/rotate",
        data={"csrf_token": csrf_of(text), "alg": "ES256", "grace_hours": "2"},
        follow_redirects=True,
    )
    new = active(app, "ES256")
    assert new != old and f"The new ES256 key {new} signs from now." in done.get_data(as_text=True)
    assert old in kids(client) and new in kids(client)
    with svc(app).db.session() as s:
        retired = s.scalar(select(SigningKey).where(SigningKey.kid == old))
        assert retired is not None and not retired.active
        assert retired.publish_until is not None and abs(retired.publish_until - until) <= 5
    page = client.get(PAGE).get_data(as_text=True)
    row = page.split(f'<tr data-kid="{old}">', 1)[1].split("</tr>", 1)[0]
    assert "retired, still published" in row
    (event,) = events(app, "keys.rotated")
    assert event.actor_id == olivia and event.details["retired"] == old
    assert event.details["grace"] == 7200
    later(app, 2 * 3600 + 1)
    assert old not in kids(client) and new in kids(client)


def test_oidc_rotation_refuses_bad_input(app: Flask, mb: MfaBrowser, client: FlaskClient) -> None:
    signed_in_owner(app, mb)
    before = {alg: active(app, alg) for alg in keys.ALGORITHMS}
    page = client.get(f"{PAGE}/oidc/rotate").get_data(as_text=True)  # the confirmation page
    for alg, hours, message in [
        ("HS256", "24", "the algorithm must be one of RS256, ES256"),
        ("RS256", "-1", "the grace period must be a whole number of hours"),
        ("RS256", "9000", "the grace period must be a whole number of hours"),
        ("RS256", "x", "the grace period must be a whole number of hours"),
    ]:
        for method in ("get", "post"):
            if method == "get":
                q = {"alg": alg, "grace_hours": hours}
                resp = client.get(f"{PAGE}/oidc/rotate", query_string=q, follow_redirects=True)
            else:
                data = {"csrf_token": csrf_of(page), "alg": alg, "grace_hours": hours}
                resp = client.post(f"{PAGE}/oidc/rotate", data=data, follow_redirects=True)
            assert resp.status_code == 200
            assert message in (alert_of(resp.get_data(as_text=True)) or ""), (alg, hours)
    assert {alg: active(app, alg) for alg in keys.ALGORITHMS} == before
    assert events(app, "keys.rotated") == []


def test_saml_rotation_in_two_confirmed_steps(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    olivia = signed_in_owner(app, mb)
    (current,) = metadata_certs(client)
    first = client.get(f"{PAGE}/saml/publish")
    text = first.get_data(as_text=True)
    assert first.status_code == 200 and "must fetch the new metadata" in text
    assert "/t/acme/saml/metadata" in text and saml_states(app) == ["active"]
    client.post(f"{PAGE}/saml/publish", data={"csrf_token": csrf_of(text)})
    assert saml_states(app) == ["active", "next"]
    listed = metadata_certs(client)
    assert listed[0] == current and len(listed) == 2  # the next one is announced, not signing
    page = client.get(PAGE).get_data(as_text=True)
    assert "next (published, not signing yet)" in page and 'id="saml-activate"' in page
    # Publishing twice is refused: the step that lets SPs catch up is never skipped.
    again = client.post(
        f"{PAGE}/saml/publish", data={"csrf_token": csrf_of(text)}, follow_redirects=True
    )
    assert "already published" in (alert_of(again.get_data(as_text=True)) or "")
    second = client.get(f"{PAGE}/saml/activate")
    text = second.get_data(as_text=True)
    assert "will reject sign-ins until they do" in text
    client.post(f"{PAGE}/saml/activate", data={"csrf_token": csrf_of(text)})
    assert saml_states(app) == ["retired", "active"]
    assert metadata_certs(client) == [listed[1]]
    (created,) = [e for e in events(app, "saml.key_created") if e.details["state"] == "next"]
    (activated,) = events(app, "saml.key_activated")
    assert created.actor_id == olivia and activated.actor_id == olivia
    nothing = client.post(
        f"{PAGE}/saml/activate", data={"csrf_token": csrf_of(text)}, follow_redirects=True
    )
    assert "no next SAML certificate is published" in (
        alert_of(nothing.get_data(as_text=True)) or ""
    )
    assert saml_states(app) == ["retired", "active"]


def test_members_get_403_and_writes_need_the_csrf_token(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    setup_keys(app)
    mb.password("alice", PASSWORD)
    for url in (PAGE, f"{PAGE}/oidc/rotate", f"{PAGE}/saml/publish", f"{PAGE}/saml/activate"):
        assert client.get(url).status_code == 403, url
    token = csrf_of(client.get("/t/acme/account").get_data(as_text=True))
    for url in (f"{PAGE}/oidc/rotate", f"{PAGE}/saml/publish", f"{PAGE}/saml/activate"):
        assert client.post(url, data={"csrf_token": token}).status_code == 403, url
    logout(client)
    signed_in_owner(app, mb)
    before = active(app, "RS256")
    for url in (f"{PAGE}/oidc/rotate", f"{PAGE}/saml/publish", f"{PAGE}/saml/activate"):
        resp = client.post(url, data={"alg": "RS256", "grace_hours": "1"})
        assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True), url
    assert active(app, "RS256") == before and saml_states(app) == ["active"]


# --- JSON admin API -------------------------------------------------------------------------
def test_api_lists_keys_without_private_material(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    setup_keys(app)
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    resp = client.get("/t/acme/admin/api/keys", headers=bearer)
    assert resp.status_code == 200
    body = resp.get_json()
    assert sorted(k["alg"] for k in body["oidc"]) == ["ES256", "RS256"]
    assert all(k["state"] == "active" and k["published"] for k in body["oidc"])
    (saml,) = body["saml"]
    assert saml["state"] == "active" and len(saml["sha256_fingerprint"]) == 95
    assert "PRIVATE" not in resp.get_data(as_text=True)
    assert "private_key" not in resp.get_data(as_text=True)


def test_api_rotates_oidc_and_saml_keys(app: Flask, client: FlaskClient, tenant: str) -> None:
    setup_keys(app)
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    old = active(app, "RS256")
    resp = client.post(
        "/t/acme/admin/api/keys/oidc/rotate",
        headers=bearer,
        json={"alg": "RS256", "grace_seconds": 600},
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    new = body["active"]["kid"]
    assert new == active(app, "RS256") and body["retired"]["kid"] == old
    assert body["retired"]["publish_until"] >= clock.now() + 590
    assert old in kids(client) and new in kids(client)
    (event,) = events(app, "keys.rotated")
    assert event.actor_client and event.actor_id is None
    published = client.post("/t/acme/admin/api/keys/saml/publish-next", headers=bearer)
    assert published.status_code == 201 and published.get_json()["state"] == "next"
    assert len(metadata_certs(client)) == 2
    twice = client.post("/t/acme/admin/api/keys/saml/publish-next", headers=bearer)
    assert twice.status_code == 409 and "already published" in twice.get_json()["detail"]
    activated = client.post("/t/acme/admin/api/keys/saml/activate-next", headers=bearer)
    assert activated.status_code == 200 and activated.get_json()["state"] == "active"
    assert activated.get_json()["id"] == published.get_json()["id"]
    assert saml_states(app) == ["retired", "active"]
    none = client.post("/t/acme/admin/api/keys/saml/activate-next", headers=bearer)
    assert none.status_code == 409 and "no next SAML certificate" in none.get_json()["detail"]


def test_api_refuses_bad_rotation_input(app: Flask, client: FlaskClient, tenant: str) -> None:
    setup_keys(app)
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    before = active(app, "RS256")
    for body in [
        {"alg": "HS256"},
        {"grace_seconds": -1},
        {"grace_seconds": keys.MAX_GRACE + 1},
        {"grace_seconds": "60"},
        {"alg": "RS256", "kid": "mine"},
    ]:
        resp = client.post("/t/acme/admin/api/keys/oidc/rotate", headers=bearer, json=body)
        assert resp.status_code == 400 and resp.mimetype == "application/problem+json", body
    assert active(app, "RS256") == before and events(app, "keys.rotated") == []
