"""The security page: the user's own factors, with password re-confirmation and emails."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from testkit.html import csrf_of
from testkit.totp import oathtool
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import BACKUP, MfaBrowser, set_policy
from tests.outbox import Outboxes
from tests.web.test_login import session_id

PHONES = {"+1 650-253-0000": "+16502530000", "+44 20 7946 0018": "+442079460018"}


pytestmark = pytest.mark.delivery


def page(client: FlaskClient) -> str:
    resp = client.get("/t/acme/account")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def post(client: FlaskClient, path: str, **form: str) -> object:
    return client.post(f"/t/acme/account{path}", data={"csrf_token": csrf_of(page(client)), **form})


def age_session(app: Flask, client: FlaskClient, seconds: int) -> None:
    """Make every factor of the session ``seconds`` older (the password is no longer recent)."""
    key = f"session:{session_id(client)}"
    data = json.loads(svc(app).store.get(key) or b"{}")
    for factor in data["auth"]["factors"]:
        factor["at"] -= seconds
    svc(app).store.set(key, json.dumps(data).encode(), 600)


def follow_flow(mb: MfaBrowser, client: FlaskClient, resp: object) -> None:
    location = resp.headers["Location"]  # type: ignore[attr-defined]
    assert "/t/acme/login?flow=" in location, location
    mb.url = location
    mb._page(client.get(location))


def factor_value(html: str, label: str) -> str:
    """The ``factor`` value of the remove button in the row of the factor named ``label``."""
    row = html.split(f"<td>{label}</td>")[1]
    return row.split('name="factor" value="')[1].split('"')[0]


def subjects(outboxes: Outboxes) -> list[str]:
    return [m["subject"].removeprefix("Acme Inc: ") for m in outboxes.mail.to("alice@acme.test")]


def test_add_totp_asks_the_password_again_when_it_is_not_recent(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("alice", PASSWORD)
    age_session(app, client, 600)
    follow_flow(mb, client, post(client, "/add", factor="totp"))
    assert mb.step == "password"
    mb.submit(password="wrong password", action="continue")
    assert mb.step == "password" and mb.alert == "Incorrect username or password."
    mb.submit(password=PASSWORD, action="continue")
    assert mb.step == "enroll_totp"
    secret = mb.html.split('id="totp-secret">')[1].split("<")[0]
    mb.submit(code=oathtool(secret), action="verify")
    assert len(mb.backup_codes()) == 10
    html = page(client)
    assert "Authenticator app" in html and '<p id="mfa-state">On</p>' in html
    assert "10 unused backup codes left." in html
    assert {"A sign-in method was added", "Two-step sign-in is on"} <= set(subjects(outboxes))


def test_several_phone_numbers_added_and_one_removed(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("alice", PASSWORD)
    for n, (typed, e164) in enumerate(PHONES.items()):
        follow_flow(mb, client, post(client, "/add", factor="sms"))
        assert mb.step == "enroll_sms"
        mb.submit(phone=typed, action="resend")
        mb.submit(code=outboxes.sms.code(e164), action="verify")
        if n == 0:
            mb.backup_codes()  # only the first factor brings backup codes
        assert mb.finished
    html = page(client)
    assert "Text message to ••••••••••00" in html and "Text message to •••••••••••18" in html
    follow_flow(mb, client, post(client, "/add", factor="sms"))
    mb.submit(phone="+1 (650) 253 0000", action="resend")
    assert mb.alert == "That one is already set up."
    first = factor_value(html, "Text message to ••••••••••00")
    age_session(app, client, 600)
    confirm = post(client, "/factors/remove", factor=first)
    follow_flow(mb, client, confirm)
    assert mb.step == "password"  # removal needs the password again
    mb.submit(password=PASSWORD, action="continue")
    assert mb.step == "verify_sms"  # and the second factor: the password alone is not enough
    mb.submit(action="resend")
    e164 = "+442079460018" if "•••••••••••18" in mb.html else "+16502530000"
    mb.submit(code=outboxes.sms.code(e164, len(outboxes.sms.to(e164)) - 1), action="verify")
    assert mb.finished
    post(client, "/factors/remove", factor=first)
    html = page(client)
    assert "Text message to ••••••••••00" not in html and "•••••••••••18" in html
    assert "A sign-in method was removed" in subjects(outboxes)
    bogus = post(client, "/factors/remove", factor="sms:99999")
    assert bogus.status_code == 404  # type: ignore[attr-defined]


def test_secondary_email_is_verified_by_a_code(
    mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("alice", PASSWORD)
    follow_flow(mb, client, post(client, "/add", factor="email"))
    mb.submit(email="alice.home@example.org", action="resend")
    wrong = "000000" if outboxes.mail.code("alice.home@example.org") != "000000" else "111111"
    mb.submit(code=wrong, action="verify")
    assert mb.alert == "That code is not correct. Try again."
    mb.submit(code=outboxes.mail.code("alice.home@example.org"), action="verify")
    mb.backup_codes()
    assert "Email to a•••@example.org" in page(client)


def test_regenerating_backup_codes_replaces_the_old_set(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    mb.enroll_totp()
    old = mb.backup_codes()
    resp = post(client, "/backup-codes", action="regenerate")
    new = BACKUP.findall(resp.get_data(as_text=True))  # type: ignore[attr-defined]
    assert len(new) == 10 and not set(new) & set(old)
    assert "New backup codes" in subjects(outboxes)
    page_html = page(client)
    assert "10 unused backup codes left." in page_html
    client.post("/t/acme/logout", data={"csrf_token": csrf_of(page_html)})
    mb.password("alice", PASSWORD)
    mb.submit(factor="backup", action="switch")
    mb.submit(code=old[0], action="verify")
    assert mb.alert == "That code is not correct. Try again."
    mb.submit(code=new[0], action="verify")
    assert mb.finished
    assert "9 unused backup codes left." in page(client)


def test_turning_mfa_off_while_required_warns_ends_the_session_and_enrols_again(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    mb.enroll_totp()
    mb.backup_codes()
    warning = post(client, "/mfa/off", action="off")
    text = warning.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Your organisation requires two-step sign-in" in text
    sid = session_id(client)
    done = client.post(
        "/t/acme/account/mfa/off", data={"csrf_token": csrf_of(text), "action": "confirm"}
    )
    assert "You have been signed out." in done.get_data(as_text=True)
    assert svc(app).store.get(f"session:{sid}") is None
    assert client.get("/t/acme/account").status_code == 302
    assert "Two-step sign-in is off" in subjects(outboxes)
    assert mb.password("alice", PASSWORD) == "enroll"  # nothing else until enrolled again


def test_turning_mfa_off_when_not_required_means_password_only(
    mb: MfaBrowser, client: FlaskClient
) -> None:
    mb.password("alice", PASSWORD)
    follow_flow(mb, client, post(client, "/add", factor="totp"))
    secret = mb.html.split('id="totp-secret">')[1].split("<")[0]
    mb.submit(code=oathtool(secret), action="verify")
    mb.backup_codes()
    warning = post(client, "/mfa/off", action="off").get_data(as_text=True)  # type: ignore[attr-defined]
    assert "requires" not in warning
    client.post(
        "/t/acme/account/mfa/off", data={"csrf_token": csrf_of(warning), "action": "confirm"}
    )
    assert mb.password("alice", PASSWORD) is None and mb.finished
    assert '<p id="mfa-state">Off</p>' in page(client)


def test_removing_the_last_factor_is_turning_mfa_off(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    mb.enroll_totp()
    mb.backup_codes()
    only = page(client).split('name="factor" value="')[1].split('"')[0]
    resp = post(client, "/factors/remove", factor=only)
    assert "Turn off two-step sign-in?" in resp.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Authenticator app" in page(client)  # nothing removed without the confirmation


def test_a_disallowed_method_cannot_be_added(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    set_policy(app, mfa_factors=["totp"])
    mb.password("alice", PASSWORD)
    assert "Add a phone number" not in page(client)
    assert post(client, "/add", factor="sms").status_code == 400  # type: ignore[attr-defined]
