"""Second factors at login through the real HTML forms: enrolment, verification, codes.

TOTP codes come from ``oathtool``; SMS codes are read back from a real local HTTP server that
stands in for the SMS gateway, email from a real local SMTP server.
"""

from __future__ import annotations

import logging
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.store.models import AuditEvent
from testkit.totp import oathtool
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, age_flow_challenge, set_policy
from tests.outbox import Outboxes
from tests.web.oidc_helpers import authorize, exchange, pkce, query_of, register

pytestmark = pytest.mark.delivery


def test_required_mfa_enrols_totp_then_asks_for_it_at_every_login(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required")
    assert mb.password("alice", PASSWORD) == "enroll"
    assert 'value="skip"' not in mb.html
    secret = mb.enroll_totp()
    codes = mb.backup_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert mb.finished
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert '<dd id="level">2</dd>' in page and '<dd id="amr">pwd otp mfa</dd>' in page
    subjects = [m["subject"] for m in outboxes.mail.to("alice@acme.test")]
    assert "Acme Inc: Two-step sign-in is on" in subjects

    _logout(client)
    assert mb.password("alice", PASSWORD) == "verify_totp"
    # The code used to activate cannot be replayed (its own time step, even when the clock
    # has moved on to the next one meanwhile); the next time step's code works.
    mb.submit(code=oathtool(secret, mb.totp_at), action="verify")
    assert mb.step == "verify_totp" and mb.alert == "That code is not correct. Try again."
    mb.submit(code=oathtool(secret, mb.totp_at + 30), action="verify")
    assert mb.finished


def _csrf(client: FlaskClient) -> str:
    from testkit.html import csrf_of

    return csrf_of(client.get("/t/acme/account").get_data(as_text=True))


PHONE, PHONE_E164 = "+1 650-253-0000", "+16502530000"
ALT_EMAIL = "alice.backup@example.org"


def test_sms_enrolment_and_login_with_resend_cool_down_and_lifetime(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    mb.enroll_contact("sms", PHONE, outboxes.sms, PHONE_E164)
    assert outboxes.sms.to(PHONE_E164)[0]["auth"] == "Bearer gateway-token"
    mb.backup_codes()
    assert mb.finished
    _logout(client)

    assert mb.password("alice", PASSWORD) == "verify_sms"
    assert "Send code" in mb.html and "••••••••••00" in mb.html
    mb.submit(action="resend")
    first = outboxes.sms.code(PHONE_E164, 1)
    mb.submit(action="resend")
    assert mb.alert is not None and mb.alert.startswith("A code was just sent.")
    assert len(outboxes.sms.to(PHONE_E164)) == 2  # the cool-down held the second one back
    age_flow_challenge(app, mb.flow_id, 301)
    mb.submit(code=first, action="verify")
    assert mb.alert == "That code has expired or was tried too often. Send a new one."
    mb.submit(action="resend")
    mb.submit(code=outboxes.sms.code(PHONE_E164, 2), action="verify")
    assert mb.finished
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert '<dd id="amr">pwd sms mfa</dd>' in page


def test_a_sent_code_allows_five_attempts(
    app: Flask, mb: MfaBrowser, outboxes: Outboxes, client: FlaskClient
) -> None:
    set_policy(app, mfa_mode="required", mfa_factors=["email"])
    mb.password("alice", PASSWORD)
    mb.enroll_contact("email", ALT_EMAIL, outboxes.mail, ALT_EMAIL)
    mb.backup_codes()
    _logout(client)
    assert mb.password("alice", PASSWORD) == "verify_email"
    mb.submit(action="resend")
    code = outboxes.mail.code(ALT_EMAIL, 1)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        mb.submit(code=wrong, action="verify")
    mb.submit(code=code, action="verify")  # the sixth try: the code is used up
    assert mb.alert == "That code has expired or was tried too often. Send a new one."
    age_flow_challenge(app, mb.flow_id, 31)  # past the resend cool-down
    mb.submit(action="resend")
    later(app, 1.1)  # six failures in a row also shut the account's gate for a second
    mb.submit(code=outboxes.mail.code(ALT_EMAIL, 2), action="verify")
    assert mb.finished


def test_email_code_enrolment_and_login(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    mb.submit(factor="email")
    mb.submit(email="not an address", action="resend")
    assert mb.alert == "That is not a valid email address."
    mb.submit(action="back")
    assert mb.step == "enroll"
    mb.enroll_contact("email", ALT_EMAIL, outboxes.mail, ALT_EMAIL)
    mb.backup_codes()
    _logout(client)
    assert mb.password("alice", PASSWORD) == "verify_email"
    mb.submit(action="resend")
    mb.submit(code=outboxes.mail.code(ALT_EMAIL, 1), action="verify")
    assert mb.finished
    assert '<dd id="amr">pwd otp mfa</dd>' in client.get("/t/acme/account").get_data(as_text=True)


def test_backup_code_fallback_is_single_use_audited_and_notified(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    mb.enroll_totp()
    codes = mb.backup_codes()
    _logout(client)
    assert mb.password("alice", PASSWORD) == "verify_totp"
    mb.submit(factor="backup", action="switch")
    assert mb.step == "verify_backup"
    mb.submit(code=codes[0].upper(), action="verify")
    assert mb.finished
    used = [
        m for m in outboxes.mail.to("alice@acme.test") if "backup code was used" in m["subject"]
    ]
    assert used and "9 remain" in used[0]["text"]
    _logout(client)
    mb.password("alice", PASSWORD)
    mb.submit(factor="backup", action="switch")
    mb.submit(code=codes[0], action="verify")
    assert mb.alert == "That code is not correct. Try again."
    with svc(app).db.session() as s:
        events = s.scalars(select(AuditEvent.event)).all()
    assert "mfa.backup_code_used" in events


def test_several_factors_remember_the_last_one_and_can_switch(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    secret = mb.enroll_totp()
    mb.backup_codes()
    # A second factor from the security page (password just given: no re-confirmation).
    resp = client.post("/t/acme/account/add", data={"csrf_token": _csrf(client), "factor": "sms"})
    mb.url = resp.headers["Location"]
    mb._page(client.get(mb.url))
    assert mb.step == "enroll_sms"
    mb.submit(phone=PHONE, action="resend")
    mb.submit(code=outboxes.sms.code(PHONE_E164), action="verify")
    assert mb.finished
    _logout(client)

    assert mb.password("alice", PASSWORD) == "verify_sms"  # the last one used comes first
    assert 'name="factor" value="totp:' in mb.html and 'value="backup"' in mb.html
    mb.submit(factor="totp:999", action="switch")
    assert mb.alert == "Choose one of the listed methods."
    totp_choice = next(v for v in mb.html.split('value="') if v.startswith("totp:")).split('"')[0]
    mb.submit(factor=totp_choice, action="switch")
    assert mb.step == "verify_totp"
    mb.submit(code=oathtool(secret, time.time() + 30), action="verify")
    assert mb.finished
    _logout(client)
    assert mb.password("alice", PASSWORD) == "verify_totp"


def test_otp_guesses_are_throttled_per_account(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    secret = mb.enroll_totp()
    mb.backup_codes()
    _logout(client)
    mb.password("alice", PASSWORD)
    right = oathtool(secret, time.time() + 30)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):  # the free attempts
        mb.submit(code=wrong, action="verify")
        assert mb.alert == "That code is not correct. Try again."
    mb.submit(code=wrong, action="verify")
    mb.submit(code=right, action="verify")  # the gate is shut now, even for the right code
    assert mb.alert is not None and mb.alert.startswith("Too many attempts.")


def test_no_code_or_secret_reaches_the_log(
    app: Flask,
    mb: MfaBrowser,
    client: FlaskClient,
    outboxes: Outboxes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    secret = mb.enroll_totp()
    codes = mb.backup_codes()
    _logout(client)
    mb.password("alice", PASSWORD)
    mb.submit(factor="backup", action="switch")
    mb.submit(code=codes[1], action="verify")
    outboxes.sms.down = True
    resp = client.post("/t/acme/account/add", data={"csrf_token": _csrf(client), "factor": "sms"})
    mb.url = resp.headers["Location"]
    mb._page(client.get(mb.url))
    mb.submit(phone=PHONE, action="resend")
    assert mb.alert == "The code could not be sent just now. Try again in a moment."
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "sms webhook delivery failed" in logged  # the log does say what went wrong
    for secret_text in [secret, PASSWORD, PHONE_E164, *codes]:
        assert secret_text not in logged


def _logout(client: FlaskClient) -> None:
    client.post("/t/acme/logout", data={"csrf_token": _csrf(client)})


@pytest.mark.parametrize("kind", ["totp", "sms"])
def test_oidc_tokens_carry_the_second_factors_amr(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes, kind: str
) -> None:
    set_policy(app, mfa_mode="required")
    rp = register(app)
    verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256")
    mb.url = resp.headers["Location"]
    mb._page(client.get(mb.url))
    mb.submit(username="alice", password=PASSWORD, action="continue")
    if kind == "totp":
        mb.enroll_totp()
    else:
        mb.enroll_contact("sms", PHONE, outboxes.sms, PHONE_E164)
    mb.backup_codes()
    done = client.get(mb.done_at)  # /authorize/resume hands the code to the application
    tokens = exchange(client, rp, query_of(done.headers["Location"])["code"], verifier).get_json()
    keyset = KeySet.import_key_set(client.get("/t/acme/jwks").get_json())
    want = ["pwd", "otp" if kind == "totp" else "sms", "mfa"]
    for jws in (tokens["id_token"], tokens["access_token"]):
        claims = jwt.decode(jws, keyset).claims
        assert claims["amr"] == want and claims["acr"] == "urn:stepwise:loa:2"


def test_tenant_can_ask_for_two_consecutive_codes_to_activate_totp(
    app: Flask, mb: MfaBrowser
) -> None:
    set_policy(app, mfa_mode="required", totp_two_codes=True)
    mb.password("alice", PASSWORD)
    mb.submit(factor="totp")
    assert 'name="next_code"' in mb.html
    secret = mb.html.split('id="totp-secret">')[1].split("<")[0]
    now = time.time()
    mb.submit(code=oathtool(secret, now), action="verify")
    assert mb.alert == "Enter the code shown in your authenticator app."
    mb.submit(code=oathtool(secret, now), next_code=oathtool(secret, now), action="verify")
    assert mb.alert == "That code is not correct. Try again."
    mb.submit(code=oathtool(secret, now - 30), next_code=oathtool(secret, now), action="verify")
    assert mb.step == "backup_codes"
