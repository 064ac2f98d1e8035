"""The console's applications pages (issue 14): OpenID Connect clients and SAML service
providers are created, edited, re-keyed, refreshed and deleted through the same operations as
the CLI and the admin API, each change audited with the acting admin."""

from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.oidc import clients, keys
from idp.saml import sps
from idp.store.models import AuditEvent, Client, Grant, ServiceProvider
from testkit.html import csrf_of
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import MfaBrowser, logout
from tests.web.oidc_helpers import code_flow, exchange, register
from tests.web.test_saml_idp import SP_METADATA

BASE = "/t/acme/admin"
ENTITY = "https://console.example/sp"


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code)
    return str(resp.get_data(as_text=True))


def post(client: FlaskClient, url: str, data: dict[str, Any], **kw: Any) -> Any:
    """POST ``data`` to ``url`` with the CSRF token of the GET of ``url``."""
    token = csrf_of(page(client, url))
    return client.post(url, data={"csrf_token": token, **data}, **kw)


def text_of(resp: Any) -> str:
    return html.unescape(resp.get_data(as_text=True))


def events(app: Flask, prefix: str) -> list[AuditEvent]:
    with svc(app).db.session() as s:
        return list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.event.like(f"{prefix}%"))
                .order_by(AuditEvent.id)
            )
        )


def olivia_id(app: Flask) -> int:
    with svc(app).db.session() as s:
        return directory.require_user(s, directory.require_tenant(s, "acme"), "olivia").id


def client_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Payroll",
        "redirect_uris": "https://payroll.example/cb\nhttp://127.0.0.1:9000/cb\n",
        "post_logout_redirect_uris": "https://payroll.example/bye",
        "kind": "confidential",
        "party": "first",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "min_level": "1",
        "default_acr_values": "urn:stepwise:loa:2",
        "access_token_lifetime": "900",
        "refresh_lifetime": "86400",
        "refresh_idle_lifetime": "3600",
        "id_token_alg": "ES256",
    }
    form.update(changes)
    return form


def secret_of(text: str) -> str:
    match = re.search(r'id="client-secret">([^<]+)<', text)
    assert match, text[:2000]
    return match.group(1)


def client_credentials(client: FlaskClient, client_id: str, secret: str) -> int:
    resp = client.post(
        "/t/acme/token", auth=(client_id, secret), data={"grant_type": "client_credentials"}
    )
    return int(resp.status_code)


def ensure_keys(app: Flask) -> None:
    with svc(app).db.session() as s:
        keys.ensure_keys(s, svc(app).cipher, directory.require_tenant(s, "acme"))


def test_create_edit_rotate_and_delete_a_client(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    ensure_keys(app)
    mb.password("olivia", PASSWORD)
    created = post(client, f"{BASE}/clients/new", client_form())
    assert created.status_code == 200, text_of(created)[:2000]
    assert created.headers["Cache-Control"] == "no-store"
    first = secret_of(created.get_data(as_text=True))
    with svc(app).db.session() as s:
        row = s.scalars(select(Client).where(Client.name == "Payroll")).one()
        cid = row.client_id
        assert row.redirect_uris == ["https://payroll.example/cb", "http://127.0.0.1:9000/cb"]
        assert row.post_logout_redirect_uris == ["https://payroll.example/bye"]
        assert (row.min_level, row.access_token_ttl, row.id_token_alg) == (1, 900, "ES256")
        assert (row.refresh_token_ttl, row.refresh_idle_ttl) == (86400, 3600)
        assert row.default_acr_values == ["urn:stepwise:loa:2"]
        assert first not in str(row.secret_hash)
    assert client_credentials(client, cid, first) == 200
    # The client's page shows its settings but never the secret again.
    shown = page(client, f"{BASE}/clients/{cid}")
    assert first not in shown and cid in shown and "https://payroll.example/cb" in shown
    listed = page(client, f"{BASE}/applications")
    assert f"{BASE}/clients/{cid}" in listed and 'id="idp-metadata"' in listed

    edited = post(
        client,
        f"{BASE}/clients/{cid}",
        client_form(
            name="Payroll 2",
            redirect_uris="https://payroll.example/new",
            grant_types=["authorization_code", "client_credentials"],
            party="third",
            min_level="2",
            access_token_lifetime="300",
            id_token_alg="RS256",
        ),
        follow_redirects=True,
    )
    assert "Client Payroll 2 saved." in text_of(edited)
    with svc(app).db.session() as s:
        row = s.scalars(select(Client).where(Client.client_id == cid)).one()
        assert row.redirect_uris == ["https://payroll.example/new"]
        assert row.grant_types == ["authorization_code", "client_credentials"]
        assert (row.first_party, row.min_level, row.access_token_ttl) == (False, 2, 300)
    (updated,) = events(app, "client.updated")
    assert updated.actor_id == olivia_id(app)
    assert set(updated.details["changed"]) == {
        "name",
        "redirect_uris",
        "grant_types",
        "first_party",
        "min_level",
        "access_token_lifetime",
        "id_token_alg",
    }

    confirm = page(client, f"{BASE}/clients/{cid}/secret")
    assert "The old secret stops working at once" in confirm
    rotated = post(client, f"{BASE}/clients/{cid}/secret", {"confirm": "yes"})
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    second = secret_of(rotated.get_data(as_text=True))
    assert second != first
    assert client_credentials(client, cid, first) == 401  # the old secret: refused at once
    assert client_credentials(client, cid, second) == 200
    assert second not in page(client, f"{BASE}/clients/{cid}")

    warning = page(client, f"{BASE}/clients/{cid}/delete")
    assert "Its refresh tokens stop working" in warning
    assert "Users signed in through it stay signed in here." in warning
    deleted = post(
        client, f"{BASE}/clients/{cid}/delete", {"confirm": "yes"}, follow_redirects=True
    )
    assert "Client Payroll 2 deleted." in text_of(deleted)
    assert page(client, f"{BASE}/clients/{cid}", 404)
    assert client_credentials(client, cid, second) == 401
    audited = {e.event: e for e in events(app, "client.")}
    assert set(audited) == {"client.created", "client.updated", "client.secret_rotated",
                            "client.deleted"}  # fmt: skip
    for event in audited.values():
        assert event.actor_id == olivia_id(app), event.event
        assert first not in str(event.details) and second not in str(event.details)


def test_deleting_a_client_ends_its_token_families(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    rp = register(app)
    query, verifier = code_flow(client, rp, scope="openid offline_access")
    tokens = exchange(client, rp, query["code"], verifier).get_json()
    assert "refresh_token" in tokens, tokens
    logout(client)  # alice; the admin signs in next
    mb.password("olivia", PASSWORD)
    post(client, f"{BASE}/clients/{rp.client_id}/delete", {"confirm": "yes"})
    with svc(app).db.session() as s:
        grants = list(s.scalars(select(Grant).where(Grant.client_id == rp.client_id)))
        assert grants and all(g.revoked_at is not None for g in grants)
    (event,) = events(app, "client.deleted")
    assert event.details["grants_revoked"] == len(grants)


def test_client_form_messages_and_the_form_kept(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    mb.password("olivia", PASSWORD)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"redirect_uris": "http://rp.example/cb"}, "redirect URI must be https"),
        ({"redirect_uris": "https://rp.example/cb#x"}, "must not have a fragment"),
        ({"redirect_uris": "/relative"}, "redirect URI must be https"),
        ({"grant_types": ["authorization_code", "password"]}, "unknown grant type(s): password"),
        ({"grant_types": []}, "at least one grant type"),
        ({"access_token_lifetime": "5"}, "access-token lifetime must be 60 to 86400 seconds"),
        ({"access_token_lifetime": "ten"}, "must be a whole number of seconds"),
        ({"refresh_lifetime": str(400 * 86400)}, "--refresh-lifetime must be 1 to"),
        ({"refresh_idle_lifetime": "90000"}, "at most --refresh-lifetime"),
        ({"min_level": "7"}, "The minimum level must be 0, 1, 2 or 3."),
        ({"id_token_alg": "HS256"}, "RS256 or ES256"),
        ({"default_acr_values": "urn:nope"}, "unknown acr value(s)"),
        ({"kind": "public"}, "a public client cannot use client_credentials"),
        ({"name": "   "}, "client name must be 1-200 characters"),
    ]
    for change, message in cases:
        resp = post(client, f"{BASE}/clients/new", client_form(**change))
        assert resp.status_code == 400, change
        body = text_of(resp)
        assert message in body, (change, body[:3000])
        assert 'id="form-error"' in body
    nul = post(client, f"{BASE}/clients/new", client_form(name="a\x00b"))  # refused app-wide
    assert nul.status_code == 400 and "no text may hold" in text_of(nul)
    # The form comes back as sent.
    assert "https://payroll.example/bye" in body
    with svc(app).db.session() as s:
        assert s.scalars(select(Client)).all() == []


def test_edit_validates_like_create_and_changes_nothing_when_refused(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    rp = register(app)
    mb.password("olivia", PASSWORD)
    resp = post(
        client,
        f"{BASE}/clients/{rp.client_id}",
        client_form(redirect_uris="https://ok.example/cb\nhttp://evil.example/cb"),
    )
    assert resp.status_code == 400 and "redirect URI must be https" in text_of(resp)
    with svc(app).db.session() as s:
        row = s.scalars(select(Client).where(Client.client_id == rp.client_id)).one()
        assert row.redirect_uris == ["https://rp.example/cb"] and row.name == "Web"
    assert events(app, "client.updated") == []


def test_making_a_public_client_confidential_shows_its_first_secret(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    ensure_keys(app)
    rp = register(app, public=True)
    mb.password("olivia", PASSWORD)
    assert "Rotate the secret" not in page(client, f"{BASE}/clients/{rp.client_id}")
    resp = post(client, f"{BASE}/clients/{rp.client_id}", client_form())
    assert resp.status_code == 200 and "is now confidential" in text_of(resp)
    secret = secret_of(resp.get_data(as_text=True))
    assert client_credentials(client, rp.client_id, secret) == 200


def test_add_an_sp_by_file_upload_and_by_paste_edit_refresh_and_delete(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    import io

    mb.password("olivia", PASSWORD)
    form = page(client, f"{BASE}/sps/new")
    assert 'enctype="multipart/form-data"' in form and 'type="file"' in form
    uploaded = client.post(
        f"{BASE}/sps/new",
        data={
            "csrf_token": csrf_of(form),
            "metadata_file": (io.BytesIO(SP_METADATA.encode()), "sp.xml"),
            "name": "Console SP",
            "nameid": "email",
            "attributes": ["email", "role"],
            "min_level": "2",
            "sign_response": "on",
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    text = text_of(uploaded)
    assert f"Service provider {ENTITY} added." in text, text[:3000]
    assert "https://console.example/acs" in text  # the SP's page: its endpoints
    with svc(app).db.session() as s:
        sp = s.scalars(select(ServiceProvider)).one()
        sp_id = sp.id
        assert (sp.name, sp.min_level, sp.sign_response) == ("Console SP", 2, True)
        assert sp.attributes == ["email", "role"] and sp.nameid_format.endswith("emailAddress")
    listed = page(client, f"{BASE}/applications")
    assert f"{BASE}/sps/{sp_id}" in listed and "Console SP" in listed

    # Encryption needs the SP's encryption certificate: refused with the reason.
    refused = post(
        client,
        f"{BASE}/sps/{sp_id}",
        {"name": "Console SP", "nameid": "email", "min_level": "2", "encrypt_assertion": "on"},
    )
    assert refused.status_code == 400
    assert "needs an encryption certificate in the metadata" in text_of(refused)
    edited = post(
        client,
        f"{BASE}/sps/{sp_id}",
        {"name": "Renamed", "nameid": "persistent", "attributes": ["username"], "min_level": "3"},
        follow_redirects=True,
    )
    assert "Service provider Renamed saved." in text_of(edited)
    with svc(app).db.session() as s:
        edited_sp = s.get(ServiceProvider, sp_id)
        assert edited_sp is not None
        assert (
            edited_sp.name,
            edited_sp.min_level,
            edited_sp.sign_response,
            edited_sp.attributes,
        ) == (
            "Renamed",
            3,
            False,
            ["username"],
        )

    other = SP_METADATA.replace(ENTITY, "https://other.example/sp")
    mismatch = post(client, f"{BASE}/sps/{sp_id}/metadata", {"metadata": other},
                    follow_redirects=True)  # fmt: skip
    assert "not 'https://console.example/sp'" in text_of(mismatch)
    moved = SP_METADATA.replace("https://console.example/acs", "https://console.example/acs2")
    refreshed = post(client, f"{BASE}/sps/{sp_id}/metadata", {"metadata": moved},
                     follow_redirects=True)  # fmt: skip
    assert "refreshed from its new metadata" in text_of(refreshed)
    with svc(app).db.session() as s:
        moved_sp = s.get(ServiceProvider, sp_id)
        assert (
            moved_sp is not None and moved_sp.acs[0]["location"] == "https://console.example/acs2"
        )
        assert moved_sp.name == "Renamed"  # settings stay

    assert "Users signed in through it stay signed in here" in page(
        client, f"{BASE}/sps/{sp_id}/delete"
    )
    gone = post(client, f"{BASE}/sps/{sp_id}/delete", {"confirm": "yes"}, follow_redirects=True)
    assert f"Service provider {ENTITY} deleted." in text_of(gone)
    page(client, f"{BASE}/sps/{sp_id}", 404)

    # Pasted this time.
    pasted = post(client, f"{BASE}/sps/new", {"metadata": SP_METADATA, "nameid": "persistent",
                                             "min_level": "0"}, follow_redirects=True)  # fmt: skip
    assert f"Service provider {ENTITY} added." in text_of(pasted)
    audited = [e.event for e in events(app, "saml.sp_")]
    assert audited == [
        "saml.sp_added",
        "saml.sp_updated",
        "saml.sp_refreshed",
        "saml.sp_deleted",
        "saml.sp_added",
    ]
    assert all(e.actor_id == olivia_id(app) for e in events(app, "saml.sp_"))


def test_sp_metadata_errors_are_clear(app: Flask, client: FlaskClient, mb: MfaBrowser) -> None:
    import io

    mb.password("olivia", PASSWORD)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "Paste the service provider's SAML metadata or choose its file."),
        ({"metadata": "<oops"}, "The XML document is not well-formed."),
        (
            {"metadata": SP_METADATA, "metadata_file": (io.BytesIO(b"<x/>"), "sp.xml")},
            "not both",
        ),
        (
            {"metadata_file": (io.BytesIO(b" " * (256 * 1024 + 1)), "big.xml")},
            "The metadata is larger than 256 KiB.",
        ),
        ({"metadata": SP_METADATA, "attributes": ["salary"]}, "--attributes must be among"),
    ]
    for data, message in cases:
        form = page(client, f"{BASE}/sps/new")
        resp = client.post(
            f"{BASE}/sps/new",
            data={"csrf_token": csrf_of(form), "nameid": "persistent", "min_level": "0", **data},
            content_type="multipart/form-data",
        )
        assert resp.status_code == 400 and message in text_of(resp), (message, text_of(resp)[:2000])
    with svc(app).db.session() as s:
        assert s.scalars(select(ServiceProvider)).all() == []


def test_members_are_refused_and_forms_need_csrf(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    rp = register(app)
    mb.password("alice", PASSWORD)
    for url in ("/applications", "/clients/new", f"/clients/{rp.client_id}", "/sps/new"):
        assert client.get(BASE + url).status_code == 403, url
    token = csrf_of(page(client, "/t/acme/account"))
    for url in (f"/clients/{rp.client_id}/delete", f"/clients/{rp.client_id}/secret"):
        assert client.post(BASE + url, data={"csrf_token": token}).status_code == 403, url
    logout(client)
    mb.password("olivia", PASSWORD)
    for url in (f"/clients/{rp.client_id}/delete", "/clients/new", "/sps/new"):
        resp = client.post(BASE + url, data={"confirm": "yes"})
        assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True), url
    with svc(app).db.session() as s:
        assert s.scalars(select(Client).where(Client.client_id == rp.client_id)).one()


def test_another_tenants_applications_are_not_found(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    with svc(app).db.session() as s:
        other = directory.create_tenant(s, "other")
        cid = clients.create_client(s, other, "Theirs", ["https://theirs.example/cb"]).client
        sp_id = sps.add_sp(s, other, SP_METADATA.encode()).id
        their_client = cid.client_id
    mb.password("olivia", PASSWORD)
    for url in (
        f"/clients/{their_client}",
        f"/clients/{their_client}/secret",
        f"/clients/{their_client}/delete",
        f"/sps/{sp_id}",
        f"/sps/{sp_id}/metadata",
        f"/sps/{sp_id}/delete",
    ):
        page(client, BASE + url, 404)
    token = csrf_of(page(client, f"{BASE}/clients/new"))
    resp = client.post(f"{BASE}/clients/{their_client}/delete", data={"csrf_token": token})
    assert resp.status_code == 404
    with svc(app).db.session() as s:
        assert s.scalars(select(Client).where(Client.client_id == their_client)).one()


def test_an_sp_with_an_encryption_certificate_shows_it_and_may_encrypt(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.interop.test_saml_sps import self_signed

    cert = self_signed(rsa.generate_private_key(public_exponent=65537, key_size=2048), "Enc SP")
    body = "".join(cert.public_bytes(serialization.Encoding.PEM).decode().splitlines()[1:-1])
    metadata = SP_METADATA.replace(
        "<md:AssertionConsumerService",
        '<md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/'
        f'xmldsig#"><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data>'
        "</ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService",
    )
    with svc(app).db.session() as s:
        sp_id = sps.add_sp(s, directory.require_tenant(s, "acme"), metadata.encode()).id
    mb.password("olivia", PASSWORD)
    shown = page(client, f"{BASE}/sps/{sp_id}")
    assert "CN=Enc SP" in shown and 'id="sp-certificates"' in shown
    saved = post(client, f"{BASE}/sps/{sp_id}", {"name": "Enc", "nameid": "persistent",
                 "min_level": "0", "encrypt_assertion": "on"}, follow_redirects=True)  # fmt: skip
    assert "Service provider Enc saved." in text_of(saved)
    # New metadata without the certificate would leave encryption impossible: refused.
    refused = post(client, f"{BASE}/sps/{sp_id}/metadata", {"metadata": SP_METADATA},
                   follow_redirects=True)  # fmt: skip
    assert "needs an encryption certificate in the metadata" in text_of(refused)
    with svc(app).db.session() as s:
        sp = s.get(ServiceProvider, sp_id)
        assert sp is not None and sp.encrypt_assertion and sp.encryption_cert
