"""WebAuthn on the server: registration and assertions from a software authenticator, and
the checks that must hold: single-use challenges, origin, rp.id, sign count, user handle."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.store.models import AuditEvent, Credential
from testkit.html import csrf_of
from tests.conftest import PASSWORD, delivery_settings, make_app, svc
from tests.mfa_helpers import MfaBrowser, logout, set_policy
from tests.outbox import Outboxes
from tests.softkey import SoftKey, b64, options_in

ORIGIN = "http://localhost:8000"
REJECTED = "That security key or passkey could not be verified. Try again."
CLONED = "This security key may have been copied, so it was blocked. Use another method."
pytestmark = pytest.mark.delivery


@pytest.fixture
def app(tmp_path: Path, outboxes: Outboxes) -> Flask:
    app = make_app(tmp_path, base_url=ORIGIN, **delivery_settings(outboxes))
    outboxes.attach(svc(app))
    return app


def audited(app: Flask, event: str) -> list[dict[str, object]]:
    with svc(app).db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.event == event))
        return [dict(r.details) for r in rows]


def enrol(mb: MfaBrowser, key: SoftKey, kind: str = "webauthn", uv: bool = True) -> None:
    """Password, then register ``key`` in the enrolment step and see the backup codes."""
    assert mb.password("alice", PASSWORD) == "enroll"
    mb.submit(factor=kind)
    assert mb.step == "enroll_webauthn"
    options = options_in(mb.html)
    assert options["rp"] == {"id": "localhost", "name": "Acme Inc"}
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -257]
    assert options["attestation"] == "none"
    mb.submit(credential=key.register(options, ORIGIN, uv), label="Soft key")
    mb.backup_codes()
    assert mb.finished


def at_second_factor(mb: MfaBrowser) -> dict[str, object]:
    assert mb.password("alice", PASSWORD) == "verify_webauthn"
    return options_in(mb.html)


@pytest.fixture
def key(app: Flask, mb: MfaBrowser, client: FlaskClient) -> SoftKey:
    """Alice with a registered security key (MFA required), signed out again."""
    set_policy(app, mfa_mode="required")
    soft = SoftKey()
    enrol(mb, soft)
    logout(client)
    return soft


def test_security_key_without_uv_after_the_password_is_level_3(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    set_policy(app, mfa_mode="required")
    soft = SoftKey()
    enrol(mb, soft, uv=False)
    logout(client)
    options = at_second_factor(mb)
    assert options["userVerification"] == "preferred"
    assert [c["id"] for c in options["allowCredentials"]] == [b64(soft.credential_id)]  # type: ignore[attr-defined]
    mb.submit(credential=soft.sign(options, ORIGIN, uv=False))
    assert mb.finished
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert '<dd id="level">3</dd>' in page and '<dd id="amr">pwd hwk user mfa</dd>' in page


def test_a_replayed_response_is_refused_and_audited(
    app: Flask, mb: MfaBrowser, client: FlaskClient, key: SoftKey
) -> None:
    response = key.sign(at_second_factor(mb), ORIGIN)
    mb.submit(credential=response)
    assert mb.finished
    logout(client)
    at_second_factor(mb)
    mb.submit(credential=response)  # the old challenge: not this flow's
    assert mb.step == "verify_webauthn" and mb.alert == REJECTED
    options = options_in(mb.html)  # a new challenge for the next try
    url, html = mb.url, mb.html
    mb.submit(credential=key.sign(options, ORIGIN))
    assert mb.finished
    # The same (valid) response posted again to the finished flow's page does not sign in.
    # The page's CSRF token ended with the login (the session is renewed), so the form check
    # refuses it first; with a current token, the flow is gone (a finished flow is deleted).
    resp = client.post(
        url, data={"csrf_token": csrf_of(html), "step": "verify_webauthn", "credential": response}
    )
    assert resp.status_code == 400 and "Your account" not in resp.get_data(as_text=True)
    assert "<h1>Form expired</h1>" in resp.get_data(as_text=True)
    current = csrf_of(client.get("/t/acme/account").get_data(as_text=True))
    resp = client.post(
        url, data={"csrf_token": current, "step": "verify_webauthn", "credential": response}
    )
    assert resp.status_code == 400 and "<h1>This sign-in has expired</h1>" in resp.get_data(
        as_text=True
    )
    assert any("challenge" in str(r["reason"]) for r in audited(app, "webauthn.rejected"))


@pytest.mark.parametrize(
    ("lie", "reason"),
    [({"origin": "http://evil.example"}, "origin"), ({"rp_id": "evil.example"}, "RP ID")],
)
def test_wrong_origin_or_rp_id_is_refused_and_audited(
    app: Flask, mb: MfaBrowser, key: SoftKey, lie: dict[str, str], reason: str
) -> None:
    options = at_second_factor(mb)
    origin = lie.get("origin", ORIGIN)
    mb.submit(credential=key.sign(options, origin, rp_id=lie.get("rp_id")))
    assert mb.step == "verify_webauthn" and mb.alert == REJECTED
    reasons = [str(r["reason"]) for r in audited(app, "webauthn.rejected")]
    assert any(reason.lower() in r.lower() for r in reasons), reasons


def test_sign_count_regression_is_refused_or_only_flagged_per_tenant(
    app: Flask, mb: MfaBrowser, client: FlaskClient, key: SoftKey, outboxes: Outboxes
) -> None:
    mb.submit(credential=key.sign(at_second_factor(mb), ORIGIN, count=10))
    assert mb.finished
    logout(client)
    mb.submit(credential=key.sign(at_second_factor(mb), ORIGIN, count=5))  # a copy answers
    assert mb.step == "verify_webauthn"
    assert mb.alert == CLONED
    blocked = audited(app, "webauthn.clone_suspected")
    assert blocked and blocked[0]["blocked"] is True
    mail = [m["subject"] for m in outboxes.mail.to("alice@acme.test")]
    assert "Acme Inc: A security key may have been copied" in mail
    with svc(app).db.session() as s:
        stored = s.scalar(select(Credential).where(Credential.type == "webauthn"))
        assert stored is not None and stored.counter == 10  # a regression never lowers it

    set_policy(app, webauthn_block_cloned=False)  # this tenant only wants to know
    mb.submit(credential=key.sign(options_in(mb.html), ORIGIN, count=7))
    assert mb.finished
    assert audited(app, "webauthn.clone_suspected")[1]["blocked"] is False
    assert "may have been copied" in client.get("/t/acme/account").get_data(as_text=True)


def test_passkey_signs_in_without_password_only_with_user_verification(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    set_policy(app, mfa_mode="required")
    passkey = SoftKey()
    enrol(mb, passkey, kind="passkey")
    logout(client)
    mb.start()
    options = options_in(mb.html)  # the first page offers a discoverable login
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    mb.submit(credential=passkey.sign(options, ORIGIN, uv=False))
    assert mb.step == "identify" and mb.alert == REJECTED
    mb.submit(credential=passkey.sign(options_in(mb.html), ORIGIN))
    assert mb.finished
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert '<dd id="level">3</dd>' in page and '<dd id="amr">hwk user pin mfa</dd>' in page


def test_a_passkey_with_someone_elses_user_handle_is_refused(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    passkey = SoftKey()
    set_policy(app, mfa_mode="required")
    enrol(mb, passkey, kind="passkey")
    logout(client)
    passkey.user_handle = b"\x01" * 32
    mb.start()
    mb.submit(credential=passkey.sign(options_in(mb.html), ORIGIN))
    assert mb.alert == REJECTED
    assert any("user handle" in str(r["reason"]) for r in audited(app, "webauthn.rejected"))


def test_the_same_key_cannot_be_registered_twice(
    app: Flask, mb: MfaBrowser, client: FlaskClient, key: SoftKey
) -> None:
    mb.submit(credential=key.sign(at_second_factor(mb), ORIGIN))
    page = client.get("/t/acme/account").get_data(as_text=True)
    resp = client.post(
        "/t/acme/account/add", data={"csrf_token": csrf_of(page), "factor": "webauthn"}
    )
    mb.url = resp.headers["Location"]
    mb._page(client.get(mb.url))
    options = options_in(mb.html)
    assert [c["id"] for c in options["excludeCredentials"]] == [b64(key.credential_id)]
    mb.submit(credential=key.register(options, ORIGIN), label="Again")
    assert mb.alert == "That security key is already registered."


def test_admins_can_be_required_to_use_phishing_resistant_mfa(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    set_policy(app, admins_phishing_resistant=True)
    assert mb.password("alice", PASSWORD) is None  # a member: unaffected
    logout(client)
    assert mb.password("olivia", PASSWORD) == "enroll_phishing_resistant"
    assert 'value="totp"' not in mb.html and 'value="passkey"' in mb.html
    mb.submit(factor="totp")
    assert mb.alert == "Choose one of the listed methods."
    mb.submit(factor="webauthn")
    mb.submit(credential=SoftKey().register(options_in(mb.html), ORIGIN), label="Admin key")
    mb.backup_codes()
    assert '<dd id="level">3</dd>' in client.get("/t/acme/account").get_data(as_text=True)


def test_garbage_credentials_get_a_form_error(mb: MfaBrowser, app: Flask, key: SoftKey) -> None:
    at_second_factor(mb)
    # Text that is no credential is a failed verification: the step again, with its alert.
    for junk in ["{", "[]", '{"id": 5}', '{"rawId": "' + "A" * 2000 + '"}']:
        resp = mb.submit(credential=junk)
        assert resp.status_code == 200, junk[:20]
        assert mb.alert == REJECTED and mb.step == "verify_webauthn", junk[:20]
    # Over the field's length limit, the form reader refuses it before the step runs
    # (idp.security.form_fields: HttpError, 400) and the page shows the form again.
    resp = mb.submit(credential="x" * 20000)
    assert resp.status_code == 400
    assert mb.alert == "That input is too long." and mb.step == "verify_webauthn"


def test_keys_are_renamed_on_the_security_page_with_a_notification(
    app: Flask, mb: MfaBrowser, client: FlaskClient, key: SoftKey, outboxes: Outboxes
) -> None:
    mb.submit(credential=key.sign(at_second_factor(mb), ORIGIN))
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert (
        "Soft key" in page and "security key, AAGUID 00000000-0000-0000-0000-000000000000" in page
    )
    choice = page.split('name="factor" value="')[1].split('"')[0]
    client.post(
        "/t/acme/account/factors/rename",
        data={"csrf_token": csrf_of(page), "factor": choice, "label": "  Desk   key "},
    )
    assert "<td>Desk key<br>" in client.get("/t/acme/account").get_data(as_text=True)
    mail = [m["text"] for m in outboxes.mail.to("alice@acme.test")]
    assert any("renamed from Soft key to Desk key" in m for m in mail)
    bogus = client.post(
        "/t/acme/account/factors/rename",
        data={"csrf_token": csrf_of(page), "factor": "webauthn:999", "label": "x"},
    )
    assert bogus.status_code == 404


def test_a_tenant_without_webauthn_offers_no_passkey_and_refuses_one(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    passkey = SoftKey()
    set_policy(app, mfa_mode="required")
    enrol(mb, passkey, kind="passkey")
    logout(client)
    mb.start()
    options = options_in(mb.html)
    set_policy(app, mfa_factors=["totp"])
    mb.submit(credential=passkey.sign(options, ORIGIN))
    assert mb.alert == REJECTED
    assert "Sign in with a passkey" not in mb.html
    assert any("not allowed" in str(r["reason"]) for r in audited(app, "webauthn.rejected"))
    # The key still counts as a second factor (issue 12): after the password it is asked for,
    # never replaced by a fresh enrolment that someone with only the password could make.
    assert mb.password("alice", PASSWORD) == "verify_webauthn"
