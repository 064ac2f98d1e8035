"""Changing the password from the account page (issue 15): re-authentication at the account's
level and the current password first; the rules; then every other session, token family and
remembered browser ends, the session id rotates and the user is told by email."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.store.models import AuditEvent
from testkit.html import csrf_of
from testkit.totp import oathtool
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, set_policy
from tests.outbox import Outboxes
from tests.password_support import alert, change, reaches_account, user_row
from tests.web.oidc_helpers import register
from tests.web.test_refresh_lifetime import refreshed, refused, tokens_for

NEW = "a brand new passphrase"
COOKIE = "stepwise_session"


def signed_in(app: Flask, tenant: str, username: str = "alice") -> FlaskClient:
    client = app.test_client()
    mb = MfaBrowser(client, tenant)
    mb.password(username, PASSWORD)
    assert mb.finished, mb.step
    return client


def events(app: Flask) -> list[str]:
    with svc(app).db.session() as s:
        return list(s.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))


def test_the_page_needs_re_authentication_and_a_post_without_it_changes_nothing(
    app: Flask, tenant: str
) -> None:
    client = signed_in(app, tenant)
    assert client.get("/t/acme/account/password").status_code == 200
    page = client.get("/t/acme/account/password").get_data(as_text=True)
    for label in ("Current password", "New password", "New password again"):
        assert f">{label}</label>" in page
    assert "At least 15 characters" in page  # the password is alice's only factor
    later(app, 400)  # past the re-authentication window
    resp = client.get("/t/acme/account/password")
    assert resp.status_code == 302 and "/t/acme/login?flow=" in resp.headers["Location"]
    before = user_row(app, "alice").password_hash
    resp = client.post("/t/acme/account/password", data={"csrf_token": csrf_of(page),
                       "current": PASSWORD, "password": NEW, "confirmation": NEW})  # fmt: skip
    assert resp.status_code == 302 and "/login?flow=" in resp.headers["Location"]
    assert "password" not in resp.headers["Location"].split("?", 1)[1].lower().replace(
        "return_to", ""
    )  # nothing typed travels in the address
    assert user_row(app, "alice").password_hash == before
    # Re-authenticating (the password again) opens the page.
    flow = client.get(resp.headers["Location"])
    html = flow.get_data(as_text=True)
    done = client.post(resp.headers["Location"], data={"csrf_token": csrf_of(html),
                       "step": "password", "password": PASSWORD})  # fmt: skip
    assert done.status_code == 302 and done.headers["Location"] == "/t/acme/account/password"
    assert client.get("/t/acme/account/password").status_code == 200


def test_a_wrong_current_password_is_refused_and_throttled(app: Flask, tenant: str) -> None:
    client = signed_in(app, tenant)
    svc(app).clock.freeze()  # type: ignore[attr-defined]  # the gate's seconds stand still
    before = user_row(app, "alice").password_hash
    resp = change(client, "not my password", NEW)
    assert resp.status_code == 400 and alert(resp) == "Your current password is not correct."
    assert user_row(app, "alice").password_hash == before
    assert events(app)[-1] == "user.password_change_failed"
    messages = [alert(change(client, f"wrong guess {i}", NEW)) for i in range(6)]
    assert messages[:5] == ["Your current password is not correct."] * 5
    assert messages[-1] is not None and messages[-1].startswith("Too many attempts")
    # While the gate is shut, even the right password is not looked at.
    resp = change(client, PASSWORD, NEW)
    assert resp.status_code == 400 and alert(resp).startswith("Too many attempts")  # type: ignore[union-attr]
    assert user_row(app, "alice").password_hash == before
    # The same counters as the login's password step: signing in is held back too.
    mb = MfaBrowser(app.test_client(), tenant)
    mb.password("alice", PASSWORD)
    assert mb.alert and mb.alert.startswith("Too many attempts")


@pytest.mark.parametrize(
    ("new", "again", "message"),
    [
        ("1qaz2wsx3edc4rfv", None, "too common"),
        ("QAZWSXEDCRFVTGB", None, "too common"),
        ("short one", None, "at least 15 characters"),
        ("alice in wonderland", None, "contains your name"),
        ("acme inc forever!", None, "contains your name"),
        (NEW, "something else", "differ"),
        ("x" * 129, None, "at most 128 characters"),
    ],
)
def test_weak_new_passwords_are_refused_with_a_clear_message(
    app: Flask, tenant: str, new: str, again: str | None, message: str
) -> None:
    client = signed_in(app, tenant)
    before = user_row(app, "alice").password_hash
    resp = change(client, PASSWORD, new, again)
    assert resp.status_code == 400
    assert message in (alert(resp) or ""), alert(resp)
    assert user_row(app, "alice").password_hash == before


@pytest.mark.delivery
def test_a_change_ends_every_other_session_token_family_and_tells_the_user(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    rp = register(app, grant_types=["authorization_code", "refresh_token"])
    other = signed_in(app, tenant)  # another browser
    tokens = tokens_for(other, rp, "openid")
    refresh = refreshed(other, rp, tokens["refresh_token"])
    mine = signed_in(app, tenant)
    assert reaches_account(other) and reaches_account(mine)
    cookie_before = mine.get_cookie(COOKIE, path="/t/acme/")
    assert cookie_before is not None
    later(app, 2)
    resp = change(mine, PASSWORD, NEW)
    assert resp.status_code == 200, alert(resp)
    assert "Your password is changed" in resp.get_data(as_text=True)
    assert "1 other session was signed out" in resp.get_data(as_text=True)
    cookie_after = mine.get_cookie(COOKIE, path="/t/acme/")
    assert cookie_after is not None and cookie_after.value != cookie_before.value  # rotated
    assert reaches_account(mine)
    assert not reaches_account(other)
    assert refused(other, rp, refresh)
    row = user_row(app, "alice")
    assert row.password_changed_at is not None
    mail = outboxes.mail.wait("alice@acme.test")
    assert mail["subject"] == "Acme Inc: Your password was changed"
    assert NEW not in mail["text"]
    base = f"{svc(app).settings.base_url.rstrip('/')}/t/acme"
    assert f"{base}/account/password" in mail["text"]  # where to act if it was not them
    assert f"{base}/forgot-password" in mail["text"]
    assert "user.password_changed" in events(app)
    # Only the new password signs in now.
    later(app, 1)
    old = MfaBrowser(app.test_client(), tenant)
    old.password("alice", PASSWORD)
    assert not old.finished and old.alert == "Incorrect username or password."
    new = MfaBrowser(app.test_client(), tenant)
    new.password("alice", NEW)
    assert new.finished


def test_a_user_with_a_second_factor_needs_it_and_may_use_eight_characters(
    app: Flask, tenant: str
) -> None:
    client = app.test_client()
    mb = MfaBrowser(client, tenant)
    set_policy(app, mfa_mode="optional")
    mb.password("alice", PASSWORD)
    assert mb.step == "offer"
    secret = mb.enroll_totp()
    mb.backup_codes()
    assert mb.finished
    later(app, 400)
    resp = client.get("/t/acme/account/password")
    assert resp.status_code == 302
    mb.url = resp.headers["Location"]
    mb._page(resp)
    assert mb.step == "password"  # then the second factor: re-authentication at level 2
    mb.submit(password=PASSWORD, action="continue")
    assert mb.step == "verify_totp"
    later(app, 30)  # the next time step: a step's code works once
    mb.submit(code=oathtool(secret, svc(app).clock.time()), action="verify")
    page = client.get("/t/acme/account/password").get_data(as_text=True)
    assert "At least 8 characters" in page
    resp = change(client, PASSWORD, "zq8-kite")
    assert resp.status_code == 200, alert(resp)
