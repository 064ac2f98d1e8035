"""The profile page (issue 15, "Profiles and claims"): names and language, the email address
changed only through a link sent to the new address, sign-in by email, the contact number."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.clock import SettableClock
from idp.store.models import AuditEvent, User
from testkit.html import alert_of, csrf_of
from tests.conftest import PASSWORD, Browser, later, make_app, svc
from tests.mfa_helpers import MfaBrowser, set_policy, set_user
from tests.outbox import Outboxes
from tests.web.test_account_mfa import age_session, follow_flow

LINK = re.compile(r"(https?://\S+/t/acme/account/verify-email\?token=[A-Za-z0-9_-]+)")
INVALID = "This link is not valid any more. Ask for a new one on your profile page."
DONE = "Thank you. The link is used: we sent the result to the address it was sent to."
WRONG = "Incorrect username or password."


def profile_page(client: FlaskClient) -> str:
    resp = client.get("/t/acme/account/profile")
    assert resp.status_code == 200, resp.status_code
    return resp.get_data(as_text=True)


def post(client: FlaskClient, path: str, **form: str) -> Any:
    csrf = csrf_of(profile_page(client))
    return client.post(f"/t/acme/account/profile{path}", data={"csrf_token": csrf, **form})


def names(client: FlaskClient, **fields: str) -> Any:
    form = {"display_name": "", "given_name": "", "family_name": "", "locale": ""} | fields
    return post(client, "", **form)


def user_row(app: Flask, username: str = "alice") -> User:
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        s.expunge(user)
        return user


def events(app: Flask, name: str) -> list[AuditEvent]:
    with svc(app).db.session() as s:
        found = list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))
        s.expunge_all()
        return found


def mailed_link(outboxes: Outboxes, to: str, after: int = 0) -> str:
    mail = outboxes.mail.wait(to, after)
    found = LINK.search(mail["text"])
    assert found, mail["text"]
    url = urlsplit(found.group(1))  # the test client's requests all go to one host
    return f"{url.path}?{url.query}"


def use_link(client: FlaskClient, link: str) -> tuple[int, str]:
    """Open the link's page, then press Confirm; the answer's status and text."""
    page = client.get(link)
    html = page.get_data(as_text=True)
    if page.status_code != 200:
        return page.status_code, html
    token = link.rsplit("=", 1)[1]
    resp = client.post("/t/acme/account/verify-email",
                       data={"csrf_token": csrf_of(html), "token": token})  # fmt: skip
    return resp.status_code, resp.get_data(as_text=True)


# --- names and language ------------------------------------------------------------------------


def test_names_and_language_are_saved_in_canonical_form_and_audited_without_values(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    mb.password("alice", PASSWORD)
    before = user_row(app).updated_at
    later(app, 60)
    resp = names(client, display_name="  Alice   Liddell ", given_name="Alice",
                 family_name="Liddell", locale="en-gb")  # fmt: skip
    assert resp.status_code == 302 and resp.headers["Location"].endswith("saved=names")
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Your profile is saved." in html and 'value="en-GB"' in html
    user = user_row(app)
    assert (user.display_name, user.given_name, user.family_name, user.locale) == (
        "Alice Liddell", "Alice", "Liddell", "en-GB")  # fmt: skip
    assert user.updated_at >= before + 60
    (event,) = events(app, "user.profile_changed")
    assert event.details == {"fields": ["display_name", "given_name", "family_name", "locale"]}
    later(app, 60)
    names(client, display_name="Alice Liddell", given_name="Alice", family_name="Liddell",
          locale="en-GB")  # fmt: skip
    assert user_row(app).updated_at == user.updated_at  # nothing changed: no bump, no event
    assert len(events(app, "user.profile_changed")) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"display_name": "A" * 201}, "Display name: at most 200 characters."),
        ({"given_name": "B" * 101}, "Given name: at most 100 characters."),
        ({"family_name": "x" * 5000}, "Family name: too long."),
        ({"given_name": "Al\x1bice"}, "Given name: remove the control or invisible characters."),
        ({"family_name": "evil\u202etxt.exe"}, "Family name: remove the control or invisible"),
        ({"locale": "xx-??"}, "Language: use a language tag such as en"),
        ({"locale": "english"}, "Language: use a language tag such as en"),
    ],
)
def test_bad_input_gets_a_form_message_and_nothing_is_stored(
    app: Flask, mb: MfaBrowser, client: FlaskClient, fields: dict[str, str], message: str
) -> None:
    mb.password("alice", PASSWORD)
    resp = names(client, **({"display_name": "Kept Name"} | fields))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert (alert_of(html) or "").startswith(message), alert_of(html)
    if "display_name" not in fields:
        assert 'value="Kept Name"' in html  # what was typed is shown again
    assert user_row(app).display_name == ""


def test_the_profile_page_needs_a_signed_in_user(client: FlaskClient, tenant: str) -> None:
    resp = client.get("/t/acme/account/profile")
    assert resp.status_code == 302 and "/t/acme/login" in resp.headers["Location"]
    resp = client.post("/t/acme/account/profile", data={"display_name": "x"})
    assert resp.status_code in (302, 400)  # no CSRF token, or sent to sign in
    assert user_row(client.application).display_name == ""


# --- email address -------------------------------------------------------------------------------


@pytest.mark.delivery
def test_email_change_asks_to_sign_in_again_then_changes_only_through_the_link(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("alice", PASSWORD)
    age_session(app, client, 600)  # the password is no longer recent
    asked = post(client, "/email", email="Alice.New@Example.org")
    follow_flow(mb, client, asked)
    assert mb.step == "password"
    mb.submit(password=PASSWORD, action="continue")
    assert mb.finished and mb.done_at.endswith("/account/profile#email")
    html = profile_page(client)
    assert 'value="Alice.New@example.org"' in html  # typed before: send it now
    assert not outboxes.mail.to("Alice.New@example.org")
    sent = post(client, "/email", email="Alice.New@Example.org")
    assert sent.status_code == 302 and sent.headers["Location"].endswith("saved=email")
    link = mailed_link(outboxes, "Alice.New@example.org")
    notice = outboxes.mail.wait("alice@acme.test")
    assert notice["subject"] == "Acme Inc: a change of your email address was asked"
    assert "A•••@example.org" in notice["text"] and "Alice.New" not in notice["text"]
    assert user_row(app).email == "alice@acme.test"  # nothing changes before the link

    reader = app.test_client()  # the link works signed out, on another device
    page = reader.get(link).get_data(as_text=True)
    assert "A•••@example.org" in page and "Confirm" in page
    assert user_row(app).email == "alice@acme.test"  # opening the page uses nothing
    status, html = use_link(reader, link)
    assert status == 200 and DONE in html
    user = user_row(app)
    assert (user.email, user.email_norm, user.email_verified) == (
        "Alice.New@example.org", "alice.new@example.org", True)  # fmt: skip
    changed = outboxes.mail.wait("alice@acme.test", 1)
    assert changed["subject"] == "Acme Inc: your email address was changed"
    assert [e.details for e in events(app, "user.email_changed")] == [{}]
    again, html = use_link(reader, link)
    assert again == 400 and INVALID in html  # single use
    assert "(verified)" in profile_page(client)


@pytest.mark.delivery
def test_a_link_expired_or_tampered_with_does_nothing(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("alice", PASSWORD)
    post(client, "/email", email="first@example.org")
    first = mailed_link(outboxes, "first@example.org")
    tampered = first[:-3] + ("aaa" if not first.endswith("aaa") else "bbb")  # one token off
    assert use_link(client, tampered)[0] == 400
    assert use_link(client, "/t/acme/account/verify-email?token=short")[0] == 400
    token = first.rsplit("=", 1)[1]
    csrf = csrf_of(profile_page(client))
    forged = client.post("/t/acme/account/verify-email",
                         data={"csrf_token": csrf, "token": token + "x"})  # fmt: skip
    assert forged.status_code == 400 and INVALID in forged.get_data(as_text=True)
    later(app, 24 * 3600)
    status, html = use_link(client, first)
    assert status == 400 and INVALID in html
    assert user_row(app).email == "alice@acme.test"


@pytest.mark.delivery
def test_a_new_link_ends_the_last_one_and_links_are_limited(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("alice", PASSWORD)
    post(client, "/email", email="one@example.org")
    post(client, "/email", email="two@example.org")
    assert use_link(client, mailed_link(outboxes, "one@example.org"))[0] == 400
    bad = post(client, "/email", email="not an address")
    assert bad.status_code == 400
    assert alert_of(bad.get_data(as_text=True)) == (
        "New email address: that is not a valid email address.")  # fmt: skip
    set_user(app, "alice", email="alice@example.org", email_norm="alice@example.org")
    same = post(client, "/email", email="ALICE@example.org")
    assert same.status_code == 400
    assert alert_of(same.get_data(as_text=True)) == (
        "New email address: that is already your address.")  # fmt: skip
    for n in range(2):
        assert post(client, "/email", email=f"x{n}@example.org").status_code == 302
    limited = post(client, "/email", email="six@example.org")
    assert limited.status_code == 429
    assert "Too many links" in (alert_of(limited.get_data(as_text=True)) or "")
    assert not outboxes.mail.to("six@example.org")


@pytest.mark.delivery
def test_verify_this_address_proves_the_current_one(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("alice", PASSWORD)
    assert "(not verified)" in profile_page(client)
    assert post(client, "/verify-email").headers["Location"].endswith("saved=verify")
    link = mailed_link(outboxes, "alice@acme.test")
    status, html = use_link(app.test_client(), link)
    assert status == 200 and DONE in html
    user = user_row(app)
    assert user.email == "alice@acme.test" and user.email_verified
    assert len(events(app, "user.email_verified")) == 1 and not events(app, "user.email_changed")
    html = profile_page(client)
    assert "(verified)" in html and "Verify this address" not in html


@pytest.mark.delivery
def test_an_address_another_user_verified_is_refused_by_email_only(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    set_policy(app, login_by_email=True)
    set_user(app, "olivia", email="shared@example.org", email_norm="shared@example.org",
             email_verified=True)  # fmt: skip
    mb.password("alice", PASSWORD)
    asked = post(client, "/email", email="Shared@example.org")
    assert asked.status_code == 302  # the form tells nothing
    status, html = use_link(client, mailed_link(outboxes, "Shared@example.org"))
    assert status == 200 and DONE in html  # nor does the link's page
    assert user_row(app).email == "alice@acme.test"
    refused = outboxes.mail.wait("Shared@example.org", 1)
    assert refused["subject"] == "Acme Inc: email address not changed"
    assert [e.details for e in events(app, "user.email_change_refused")] == [
        {"reason": "address_in_use"}
    ]


# --- sign in by email ----------------------------------------------------------------------------


def alert_after_login(app: Flask, username: str) -> tuple[int, str | None]:
    b = Browser(app.test_client(), "acme")
    resp = b.login(username, PASSWORD)
    if resp.status_code == 302:
        return 302, resp.headers["Location"]
    return resp.status_code, alert_of(resp.get_data(as_text=True))


def test_sign_in_by_verified_unique_email_only(app: Flask, tenant: str) -> None:
    set_user(app, "alice", email_verified=True)
    assert alert_after_login(app, "alice@acme.test") == (200, WRONG)  # the setting is off
    set_policy(app, login_by_email=True)
    assert alert_after_login(app, "ALICE@acme.test") == (302, "/t/acme/account")
    unknown = alert_after_login(app, "nobody@acme.test")
    assert unknown == alert_after_login(app, "nobody") == (200, WRONG)
    set_user(app, "alice", email_verified=False)
    assert alert_after_login(app, "alice@acme.test") == (200, WRONG)
    set_user(app, "alice", email_verified=True)
    set_user(app, "olivia", email="Alice@acme.test", email_norm="alice@acme.test",
             email_verified=True)  # fmt: skip
    assert alert_after_login(app, "alice@acme.test") == (200, WRONG)  # two users: nobody
    assert alert_after_login(app, "alice") == (302, "/t/acme/account")  # usernames still work


def test_failures_by_email_count_against_the_account(tmp_path: Path) -> None:
    """The throttle's key is the account's, whichever name was typed (a wrong password by
    email and then the username meet the same back-off)."""
    app = make_app(tmp_path, throttle_free_attempts=2, throttle_lock_after=4, throttle_max_delay=5)
    clock = svc(app).clock
    assert isinstance(clock, SettableClock)
    clock.freeze()  # the back-off gate opens only when the test moves time
    with svc(app).db.session() as s:
        t = directory.create_tenant(s, "acme")
        t.login_by_email = True
        user = directory.create_user(s, svc(app).passwords, t, "alice", "a@acme.test", "member",
                                     PASSWORD)  # fmt: skip
        user.email_verified = True
    b = Browser(app.test_client(), "acme")
    for n in range(3):
        alert = alert_of(b.login("A@acme.test", f"bad-{n}").get_data(as_text=True))
        assert alert == WRONG
    throttled = alert_of(b.login("alice", PASSWORD).get_data(as_text=True))
    assert throttled and throttled.startswith("Too many attempts")


def test_the_login_form_names_the_email_when_it_may_be_used(app: Flask, tenant: str) -> None:
    page = Browser(app.test_client(), "acme").open_login()[1]
    assert '<label for="username">Username</label>' in page
    set_policy(app, login_by_email=True)
    page = Browser(app.test_client(), "acme").open_login()[1]
    assert '<label for="username">Username or email</label>' in page


# --- contact number ------------------------------------------------------------------------------


@pytest.mark.delivery
def test_an_sms_factor_is_marked_as_contact_number(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("alice", PASSWORD)
    assert 'id="no-phone"' in profile_page(client)
    csrf = csrf_of(client.get("/t/acme/account").get_data(as_text=True))
    follow_flow(mb, client, client.post("/t/acme/account/add",
                                        data={"csrf_token": csrf, "factor": "sms"}))  # fmt: skip
    mb.submit(phone="+1 650-253-0000", action="resend")
    mb.submit(code=outboxes.sms.code("+16502530000"), action="verify")
    mb.backup_codes()
    html = profile_page(client)
    choice = re.search(r'name="phone" value="(sms:\d+)"', html)
    assert choice and "Text message to ••••••••••00" in html and "+16502530000" not in html
    assert post(client, "/phone", phone=choice.group(1)).status_code == 302
    assert user_row(app).contact_phone_id == int(choice.group(1).split(":")[1])
    assert f'value="{choice.group(1)}" checked' in profile_page(client)
    other = post(client, "/phone", phone="sms:99999")
    assert other.status_code == 400
    assert alert_of(other.get_data(as_text=True)) == (
        "Contact number: choose one of your phone numbers.")  # fmt: skip
    assert post(client, "/phone", phone="").status_code == 302
    assert user_row(app).contact_phone_id is None
    assert events(app, "user.profile_changed")[-1].details == {"fields": ["contact_phone"]}


# --- what administrators see -------------------------------------------------------------------


def test_the_admin_api_and_console_show_the_profile(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    from idp.mfa import credentials
    from tests.web.test_admin_api_users import bearer

    s_ = svc(app)
    with s_.db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        cred = credentials.add(s, s_.cipher, user, "sms", "+16502530000", None, 1)
        user.contact_phone_id = cred.id
    set_user(app, "alice", display_name="Alice L.", given_name="Alice", locale="fr-CA",
             email_verified=True)  # fmt: skip
    detail = app.test_client().get("/t/acme/admin/api/users/alice", headers=bearer(app, client))
    assert detail.status_code == 200
    assert detail.get_json()["profile"] == {
        "display_name": "Alice L.", "given_name": "Alice", "family_name": "", "locale": "fr-CA",
        "email_verified": True, "contact_phone": "Text message to ••••••••••00",
    }  # fmt: skip
    mb.password("olivia", PASSWORD)
    html = client.get("/t/acme/admin/users/alice").get_data(as_text=True)
    assert '<dd id="email-verified">Yes</dd>' in html
    assert '<dd id="display-name">Alice L.</dd>' in html and '<dd id="locale">fr-CA</dd>' in html
    assert '<dd id="contact-phone">Text message to ••••••••••00</dd>' in html
