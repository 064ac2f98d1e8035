"""Issue 12's findings, each through the real pages and protocols: someone who holds only the
password binds no factor, gets no backup codes, and no token, assertion or page claims a level
that was not proved. (The SAML HTTP-Redirect finding is in test_saml_bindings.py; the
Chromium runs with a virtual authenticator are in tests/e2e/test_binding_browser.py.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, update

from idp import directory
from idp.mfa import admin as mfa_admin
from idp.saml import sps
from idp.store.models import BackupCode, Credential
from testkit.html import csrf_of
from testkit.totp import oathtool
from tests.conftest import PASSWORD, delivery_settings, make_app, svc
from tests.mfa_helpers import MfaBrowser, logout, set_policy, set_user
from tests.outbox import Outboxes
from tests.softkey import SoftKey, options_in
from tests.web.oidc_helpers import authorize, exchange, pkce, query_of, register
from tests.web.test_saml_attacks import METADATA, SP, authn_request, get_sso, sign_in_at
from tests.web.test_webauthn import ORIGIN

pytestmark = pytest.mark.delivery
LOA3 = "urn:stepwise:loa:3"


@pytest.fixture
def app(tmp_path: Path, outboxes: Outboxes) -> Flask:
    app = make_app(tmp_path, base_url=ORIGIN, **delivery_settings(outboxes))
    outboxes.attach(svc(app))
    return app


def next_totp_step(app: Flask) -> None:
    """Let a TOTP code be used again, as if 30 seconds had passed (each step is single use)."""
    with svc(app).db.session() as s:
        s.execute(update(Credential).where(Credential.type == "totp").values(counter=0))


def backup_codes_left(app: Flask, username: str = "alice") -> int:
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        query = select(func.count()).select_from(BackupCode)
        return s.scalar(query.where(BackupCode.user_id == user.id, BackupCode.used_at.is_(None)))


def kinds_of(app: Flask, username: str = "alice") -> list[str]:
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        return sorted(c.type for c in user.credentials)


def with_totp(app: Flask, mb: MfaBrowser, client: FlaskClient, username: str = "alice") -> str:
    """``username`` enrols TOTP (with backup codes) and signs out; MFA stays off for them, as
    after a factor set up inside an application's step-up. Returns the secret."""
    set_policy(app, mfa_mode="required", mfa_factors=["totp", "webauthn", "sms", "email"])
    assert mb.password(username, PASSWORD) == "enroll"
    secret = mb.enroll_totp()
    mb.backup_codes()
    assert mb.finished
    logout(client)
    set_policy(app, mfa_mode="off")
    set_user(app, username, mfa_enabled=False)
    next_totp_step(app)
    return secret


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def follow_to_login(mb: MfaBrowser, client: FlaskClient, resp: Any) -> None:
    """From an application's redirect to the login page, show the current step."""
    assert resp.status_code == 302 and "/login" in resp.headers["Location"], resp.status_code
    mb.url = resp.headers["Location"]
    mb._page(client.get(mb.url))


# --- Finding 1: level 3 must not bypass the factor the user already has ----------------------
LEVEL3_REQUESTS = {
    "acr_values loa:3": {"acr_values": LOA3},
    "acr_values phr": {"acr_values": "phr"},
    "essential acr": {
        "claims": json.dumps({"id_token": {"acr": {"essential": True, "values": [LOA3]}}})
    },
}


@pytest.mark.parametrize("params", LEVEL3_REQUESTS.values(), ids=LEVEL3_REQUESTS.keys())
def test_level_three_asks_the_existing_totp_before_a_key_is_enrolled(
    app: Flask, mb: MfaBrowser, client: FlaskClient, params: dict[str, str]
) -> None:
    secret = with_totp(app, mb, client)
    rp = register(app)
    verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256", **params)
    follow_to_login(mb, client, resp)
    mb.submit(username="alice", password=PASSWORD, action="continue")
    # Before the fix the next step was enroll_phishing_resistant: any key, no TOTP asked.
    assert mb.step == "verify_totp", mb.seen
    attacker = SoftKey()
    stale = {"step": "enroll_phishing_resistant", "factor": "passkey"}
    forged = client.post(mb.url, data={"csrf_token": csrf_of(mb.html), **stale})
    assert mb._page(forged) is not None and mb.step == "verify_totp"  # a stale form: no effect
    assert kinds_of(app) == ["totp"]
    mb.submit(code=oathtool(secret), action="verify")
    assert mb.step == "enroll_phishing_resistant"
    mb.submit(factor="passkey")
    assert mb.step == "enroll_webauthn"
    mb.submit(credential=attacker.register(options_in(mb.html), ORIGIN), label="Mine")
    assert mb.finished  # alice's own key now, after her TOTP
    code = query_of(client.get(mb.done_at).headers["Location"])["code"]
    claims = claims_of(exchange(client, rp, code, verifier).get_json()["id_token"])
    assert claims["acr"] in (LOA3, "phr") and "otp" in claims["amr"], claims
    assert kinds_of(app) == ["totp", "webauthn"]


def test_a_client_minimum_of_three_asks_the_existing_totp_first(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with_totp(app, mb, client)
    rp = register(app, min_level=3)
    _verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256")
    follow_to_login(mb, client, resp)
    mb.submit(username="alice", password=PASSWORD, action="continue")
    assert mb.step == "verify_totp", mb.seen


def test_admins_phishing_resistant_asks_the_owners_totp_before_a_key(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with_totp(app, mb, client, "olivia")
    set_policy(app, admins_phishing_resistant=True)
    assert mb.password("olivia", PASSWORD) == "verify_totp", mb.seen


def test_saml_requested_context_three_asks_the_existing_totp_first(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with_totp(app, mb, client)
    with svc(app).db.session() as s:
        sps.add_sp(s, directory.require_tenant(s, "acme"), METADATA.encode())
    context = (
        '<samlp:RequestedAuthnContext Comparison="minimum"><saml:AuthnContextClassRef>'
        f"{LOA3}</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>"
    )
    xml = authn_request("_l3").replace("</saml:Issuer>", "</saml:Issuer>" + context)
    follow_to_login(mb, client, get_sso(client, xml))
    mb.submit(username="alice", password=PASSWORD, action="continue")
    assert mb.step == "verify_totp", mb.seen


# --- Finding 2: the account page needs the account's level, not the password alone ---------
ACCOUNT_ACTIONS = {
    "new backup codes": ("/backup-codes", {}),
    "add TOTP": ("/add", {"factor": "totp"}),
    "add passkey": ("/add", {"factor": "passkey"}),
    "remove": ("/factors/remove", {"factor": "FACTOR"}),
    "rename": ("/factors/rename", {"factor": "FACTOR", "label": "x"}),
    "MFA off": ("/mfa/off", {"action": "confirm"}),
}


def account_post(client: FlaskClient, path: str, form: dict[str, str]) -> Any:
    page = client.get("/t/acme/account").get_data(as_text=True)
    if form.get("factor") == "FACTOR":
        form = {**form, "factor": page.split('name="factor" value="')[1].split('"')[0]}
    return client.post(f"/t/acme/account{path}", data={"csrf_token": csrf_of(page), **form})


@pytest.mark.parametrize("action", ACCOUNT_ACTIONS.values(), ids=ACCOUNT_ACTIONS.keys())
def test_a_password_only_session_changes_nothing_on_the_account_page(
    app: Flask, mb: MfaBrowser, client: FlaskClient, action: tuple[str, dict[str, str]]
) -> None:
    with_totp(app, mb, client)
    assert mb.password("alice", PASSWORD) is None and mb.finished  # level 1: MFA is off
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert '<dd id="level">1</dd>' in page
    path, form = action
    resp = account_post(client, path, form)
    # Before the fix: done (or, for "add", straight to the enrolment) after the password alone.
    follow_to_login(mb, client, resp)
    assert mb.step == "verify_totp", mb.seen
    assert backup_codes_left(app) == 10 and kinds_of(app) == ["totp"]
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        assert user.credentials[0].label != "x"


def test_after_the_totp_the_backup_codes_can_be_renewed(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    secret = with_totp(app, mb, client)
    mb.password("alice", PASSWORD)
    follow_to_login(mb, client, account_post(client, "/backup-codes", {}))
    mb.submit(code=oathtool(secret), action="verify")
    assert mb.finished
    renewed = account_post(client, "/backup-codes", {})
    assert renewed.status_code == 200 and "<code>" in renewed.get_data(as_text=True)


# --- Finding 3: factors of kinds the tenant no longer allows still count ---------------------
def test_a_phone_of_a_kind_no_longer_allowed_is_still_asked_for(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required", mfa_factors=["totp", "sms"])
    assert mb.password("alice", PASSWORD) == "enroll"
    mb.enroll_contact("sms", "+1 650-253-0000", outboxes.sms, "+16502530000")
    mb.backup_codes()
    logout(client)
    set_policy(app, mfa_factors=["totp"])
    # Before the fix: "enroll", whose TOTP would have replaced the phone and its backup codes.
    assert mb.password("alice", PASSWORD) == "verify_sms", mb.seen
    assert kinds_of(app) == ["sms"] and backup_codes_left(app) == 10


def test_with_no_sender_and_no_backup_codes_the_user_is_sent_to_the_admin(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes, tmp_path: Path
) -> None:
    set_policy(app, mfa_mode="required", mfa_factors=["totp", "sms"])
    assert mb.password("alice", PASSWORD) == "enroll"
    mb.enroll_contact("sms", "+1 650-253-0000", outboxes.sms, "+16502530000")
    mb.backup_codes()
    # The same instance served without an SMS sender: the phone cannot be verified.
    mail_only = {k: v for k, v in delivery_settings(outboxes).items() if not k.startswith("sms")}
    other = make_app(tmp_path, base_url=ORIGIN, **mail_only)
    browser = MfaBrowser(other.test_client(), "acme")
    assert browser.password("alice", PASSWORD) == "choose"  # a backup code still works
    assert 'value="backup"' in browser.html and 'value="totp"' not in browser.html
    with svc(app).db.session() as s:
        s.execute(delete(BackupCode))
    browser = MfaBrowser(other.test_client(), "acme")
    browser.password("alice", PASSWORD)
    assert browser.status == 403 and "Contact your administrator" in browser.html
    assert browser.step is None  # no enrolment is offered after the password alone
    assert kinds_of(app) == ["sms"]


# --- Finding 4: disabled users get nothing, from any protocol --------------------------------
def saml_response_of(resp: Any) -> bytes:
    page = resp.get_data(as_text=True)
    return base64.b64decode(page.split('name="SAMLResponse" value="')[1].split('"')[0])


def test_a_disabled_user_gets_no_assertion_and_no_code_from_the_open_session(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    with svc(app).db.session() as s:
        sps.add_sp(s, directory.require_tenant(s, "acme"), METADATA.encode())
    done = sign_in_at(client, get_sso(client, authn_request("_d1")))
    assert b"Assertion" in saml_response_of(client.get(done.headers["Location"]))
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        directory.set_status(s, t, directory.require_user(s, t, "alice"), "disabled")
    again = get_sso(client, authn_request("_d2"))
    assert again.status_code == 302 and "/login" in again.headers["Location"]
    passive = saml_response_of(get_sso(client, authn_request("_d3", extra=' IsPassive="true"')))
    assert b"Assertion" not in passive and b"RequestDenied" in passive
    unsolicited = client.get("/t/acme/saml/idp-init", query_string={"sp": SP})
    assert unsolicited.status_code == 302 and "/login" in unsolicited.headers["Location"]
    rp = register(app)
    _v, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256")
    assert "/login" in resp.headers["Location"]
    none = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256",
                     prompt="none")  # fmt: skip
    assert query_of(none.headers["Location"])["error"] == "login_required"
    # Enabled again, the old session stays ended: disabling ended every session.
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        directory.set_status(s, t, directory.require_user(s, t, "alice"), "active")
    assert "/login" in get_sso(client, authn_request("_d4")).headers["Location"]
    assert "/login" in client.get("/t/acme/account").headers["Location"]


# --- Finding 5: an "immediate" MFA reset ends the second factor everywhere -------------------
def test_after_an_immediate_reset_tokens_and_the_account_page_say_password_only(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    secret = with_totp(app, mb, client)
    set_user(app, "alice", mfa_enabled=True)
    set_policy(app, mfa_apply="immediate")
    assert mb.password("alice", PASSWORD) == "verify_totp"
    mb.submit(code=oathtool(secret), action="verify")
    assert mb.finished
    rp = register(app)
    verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256")
    before = claims_of(exchange(client, rp, query_of(resp.headers["Location"])["code"],
                                verifier).get_json()["id_token"])  # fmt: skip
    assert before["acr"] == "urn:stepwise:loa:2" and "otp" in before["amr"]
    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.require_tenant(s, "acme")
        mfa_admin.reset_user(s, s_, t, directory.require_user(s, t, "alice"), directory.Actor())
    verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256")
    # Before the fix: acr loa:2 and amr otp, from a factor the admin had just removed.
    after = claims_of(exchange(client, rp, query_of(resp.headers["Location"])["code"],
                               verifier).get_json()["id_token"])  # fmt: skip
    assert after["acr"] == "urn:stepwise:loa:1" and after["amr"] == ["pwd"], after
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert '<dd id="level">1</dd>' in page and '<dd id="amr">pwd</dd>' in page


def test_a_locked_user_is_refused_by_refresh_introspection_and_userinfo(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    """Locking (too many failures) revokes nothing, yet every protocol refuses the user."""
    from tests.web.oidc_helpers import code_flow, token

    rp = register(app)
    query, verifier = code_flow(client, rp, scope="openid offline_access")
    issued = exchange(client, rp, query["code"], verifier).get_json()
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        directory.set_status(s, t, directory.require_user(s, t, "alice"), "locked")
    refreshed = token(client, rp, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    for kind in ("access_token", "refresh_token"):
        found = client.post("/t/acme/introspect", data={"token": issued[kind]},
                            auth=(rp.client_id, rp.secret))  # fmt: skip
        assert found.get_json() == {"active": False}, kind
    info = client.get(
        "/t/acme/userinfo", headers={"Authorization": "Bearer " + issued["access_token"]}
    )
    assert info.status_code == 401
    # A lock is not a disable: anyone can cause one by failing the password, so the family is
    # kept and works again after the admin's unlock.
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        directory.unlock_user(s, t, directory.require_user(s, t, "alice"))
    again = token(client, rp, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert again.status_code == 200, again.get_json()


def test_console_writes_need_the_admins_own_level(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    secret = with_totp(app, mb, client, "olivia")
    assert mb.password("olivia", PASSWORD) is None and mb.finished  # level 1
    page = client.get("/t/acme/admin/policy").get_data(as_text=True)
    form = {"csrf_token": csrf_of(page), "mode": "required", "scope": "all", "apply": "immediate",
            "factors": "totp", "reoffer_days": "7"}  # fmt: skip
    follow_to_login(mb, client, client.post("/t/acme/admin/policy", data=form))
    assert mb.step == "verify_totp", mb.seen
    with svc(app).db.session() as s:
        assert directory.require_tenant(s, "acme").mfa_mode == "off"
    mb.submit(code=oathtool(secret), action="verify")
    assert mb.finished
    assert client.post("/t/acme/admin/policy", data=form).status_code == 303
    with svc(app).db.session() as s:
        assert directory.require_tenant(s, "acme").mfa_mode == "required"


def test_an_old_session_asked_for_level_three_gives_password_totp_then_key(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    """Binding needs fresh factors at the level held, password included: an SSO session
    older than the window is asked for the password, then the TOTP, then the key (before,
    the TOTP was asked again and again: found in review)."""
    from tests.web.test_account_mfa import age_session

    secret = with_totp(app, mb, client)
    assert mb.password("alice", PASSWORD) is None and mb.finished
    age_session(app, client, 600)
    rp = register(app)
    _verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256",
                     acr_values=LOA3)  # fmt: skip
    follow_to_login(mb, client, resp)
    assert mb.step == "password", mb.seen
    mb.submit(password=PASSWORD, action="continue")
    assert mb.step == "verify_totp"
    mb.submit(code=oathtool(secret), action="verify")
    assert mb.step == "enroll_phishing_resistant", mb.seen


def test_the_code_that_verified_is_not_handed_on_to_the_enrolment(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    secret = with_totp(app, mb, client)
    mb.password("alice", PASSWORD)
    follow_to_login(mb, client, account_post(client, "/add", {"factor": "totp"}))
    mb.submit(code=oathtool(secret), action="verify")
    assert mb.step == "enroll_totp" and mb.alert is None, mb.alert
