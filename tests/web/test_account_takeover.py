"""Regression tests of the account-takeover review (commit 5017630): an intruder's session,
pending email-change link or reset link must not outlive the owner taking the account back;
the reset's second factor is never the link's own mailbox, however its address is spelt;
forgot-password by address reaches the account that verified it; a reset flow belongs to its
tenant. Each test failed on the code before that commit, except the upper-case spellings
of the mailbox rule (the old code's casefolded compare already caught those)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import clock, directory
from idp.mfa import credentials
from testkit.html import csrf_of
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, set_policy
from tests.outbox import Outboxes
from tests.password_support import Resetter, change, reaches_account
from tests.signup_support import SignUp, open_signup
from tests.web.devices_support import (
    CHROME,
    FIREFOX,
    age_authentication,
    app_for,
    browser,
    page,
    post,
    reauthenticate,
    rows,
    sign_in,
    signed_in,
)
from tests.web.test_admin_api_users import bearer
from tests.web.test_profile import mailed_link, use_link, user_row
from tests.web.test_profile import post as profile_post

NEW = "a brand new passphrase"
LINK_INVALID = "This link is not valid any more. Ask for a new one on your profile page."
RESET_INVALID = "This link is not valid any more. Ask for a new one."
EXPIRED = "This password reset has expired. Ask for a new link."
ADMIN = "Ask your administrator"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    """The devices tests' app (mail to ``outboxes`` for tests marked ``delivery``)."""
    return app_for(request, tmp_path)


# --- 1. a session that re-authenticated late in its first sign-in's life ------------------


def _reauthenticated_late(app: Flask) -> FlaskClient:
    """A thief's browser, kept alive until ~11.5 h after its sign-in, re-authenticated then,
    and still used past 12 h from that first sign-in (the absolute timeout)."""
    absolute = svc(app).settings.session_absolute_timeout
    idle = svc(app).settings.session_idle_timeout
    step = idle - 300
    thief = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    elapsed = 0
    while elapsed + step < absolute - 1800:
        later(app, step)
        elapsed += step
        assert signed_in(thief)
    age_authentication(app, thief, 600)  # re-authentication is due for "sign out others"
    resp = post(thief, "sessions/end-others")
    assert resp.status_code == 302 and "flow=" in resp.headers["Location"]
    reauthenticate(thief, resp)  # restarts the session's absolute lifetime
    while elapsed < absolute + 600:
        later(app, step)
        elapsed += step
        assert signed_in(thief), elapsed
    return thief


def test_a_late_reauthenticated_session_is_listed_and_ended_by_sign_out_all_others(
    app: Flask, tenant: str
) -> None:
    """Attack: a stolen session re-authenticated at 11.5 h hides from the devices page and
    survives "sign out all others"."""
    thief = _reauthenticated_late(app)
    owner = sign_in(browser(app, CHROME, "198.51.100.20"))
    listed = rows(page(owner), "sessions")
    assert len(listed) == 2 and any("Firefox" in row for row in listed), listed
    assert post(owner, "sessions/end-others").status_code == 302
    assert signed_in(owner)
    assert not signed_in(thief)


def test_a_late_reauthenticated_session_is_ended_by_a_password_change(
    app: Flask, tenant: str
) -> None:
    """Attack: a stolen session re-authenticated at 11.5 h survives the owner's password change."""
    thief = _reauthenticated_late(app)
    owner = sign_in(browser(app, CHROME, "198.51.100.20"))
    assert change(owner, PASSWORD, NEW).status_code == 200
    assert not reaches_account(thief)


# --- 2. a pending email-change link when the owner takes the account back ------------------


def _take_back(app: Flask, how: str, outboxes: Outboxes) -> None:
    """The owner (or an admin) takes alice's account back, the way ``how`` names."""
    if how == "password change":
        owner = app.test_client()
        assert MfaBrowser(owner, "acme").password("alice", PASSWORD) is None
        assert change(owner, PASSWORD, NEW).status_code == 200
    elif how == "password reset":
        rs = Resetter(app.test_client(), outboxes.mail)
        rs.ask("alice")
        rs.open(rs.link("alice@acme.test"))
        rs.new_password(NEW)
        assert rs.status == 200 and 'id="reset-done"' in rs.html, rs.alert
    else:
        api = app.test_client()
        path = "sign-out" if how == "sign out everywhere" else "mfa/reset"
        resp = api.post(f"/t/acme/admin/api/users/alice/{path}", headers=bearer(app, api))
        assert resp.status_code == 200, resp.get_json()


@pytest.mark.delivery
@pytest.mark.parametrize(
    "how", ["password change", "password reset", "sign out everywhere", "MFA reset"]
)
def test_a_pending_email_change_link_dies_when_the_owner_takes_the_account_back(
    app: Flask, tenant: str, outboxes: Outboxes, how: str
) -> None:
    """Attack: an intruder's pending email-change link moves the address after the owner
    took the account back (then a reset to the new address finishes the takeover)."""
    intruder = app.test_client()
    assert MfaBrowser(intruder, "acme").password("alice", PASSWORD) is None
    assert profile_post(intruder, "/email", email="mallory@evil.example").status_code == 302
    link = mailed_link(outboxes, "mallory@evil.example")
    later(app, 1)
    _take_back(app, how, outboxes)
    status, html = use_link(app.test_client(), link)
    assert status == 400 and LINK_INVALID in html, status
    assert user_row(app).email == "alice@acme.test"


# --- 3. a reset link mailed to the old address, after an email change ---------------------


@pytest.mark.delivery
def test_a_reset_link_to_the_old_address_is_refused_after_an_email_change(
    app: Flask, tenant: str, client: FlaskClient, outboxes: Outboxes
) -> None:
    """Attack: whoever keeps the old mailbox resets the password after the owner moved the
    account to a new address."""
    old_box = Resetter(app.test_client(), outboxes.mail)
    old_box.ask("alice")
    link = old_box.link("alice@acme.test")
    assert MfaBrowser(client, "acme").password("alice", PASSWORD) is None
    assert profile_post(client, "/email", email="alice@new.example").status_code == 302
    assert use_link(app.test_client(), mailed_link(outboxes, "alice@new.example"))[0] == 200
    assert user_row(app).email == "alice@new.example"
    before = user_row(app).password_hash
    resp = old_box.open(link)
    assert old_box.status == 400 and old_box.alert == RESET_INVALID
    tampered = app.test_client().get("/t/acme/reset-password?token=" + "x" * 43)
    assert resp.get_data(as_text=True) == tampered.get_data(as_text=True)  # one page for all
    assert user_row(app).password_hash == before


# --- 4. the reset's second factor is not the link's own mailbox, however it is spelt ------


def _user_with_email_factor(app: Flask, account: str, factor: str, totp: bool = False) -> None:
    """Carol, whose account address is ``account`` and whose email factor is ``factor``
    (the same mailbox spelt another way); with ``totp``, a TOTP factor as well."""
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        carol = directory.create_user(s, svc(app).passwords, t, "carol", account, "member",
                                      PASSWORD)  # fmt: skip
        credentials.add(s, svc(app).cipher, carol, "email", factor, None, clock.now())
        if totp:
            credentials.add(s, svc(app).cipher, carol, "totp", TOTP_SECRET, None, clock.now())
        carol.mfa_enabled = True


SPELLINGS = pytest.mark.parametrize(
    ("account", "factor"),
    [
        ("carol@xn--bcher-kva.ch", "carol@bücher.ch"),  # IDN: A-label account, U-label factor
        ("CAROL@Acme.test", "carol@acme.test"),  # upper case (the old code caught it too)
    ],
    ids=["idn", "upper-case"],
)


@pytest.mark.delivery
@SPELLINGS
def test_the_links_own_mailbox_is_no_second_factor_the_user_goes_to_the_admin(
    app: Flask, tenant: str, outboxes: Outboxes, account: str, factor: str
) -> None:
    """Attack: the reset link's mailbox answers the reset's second factor too (an email
    factor at the same address spelt differently), so one mailbox resets an MFA account."""
    _user_with_email_factor(app, account, factor)
    rs = Resetter(app.test_client(), outboxes.mail)
    rs.ask("carol")
    rs.open(rs.link(account))
    assert rs.status == 403 and ADMIN in rs.html, (rs.status, rs.step)
    before = user_row(app, "carol").password_hash
    rs.html = rs.client.get("/t/acme/forgot-password").get_data(as_text=True)  # a CSRF token
    rs.new_password(NEW)
    assert rs.status == 400 and user_row(app, "carol").password_hash == before


@pytest.mark.delivery
@SPELLINGS
def test_the_links_own_mailbox_is_no_second_factor_another_factor_is_asked_for(
    app: Flask, tenant: str, outboxes: Outboxes, account: str, factor: str
) -> None:
    """Attack: the reset link's mailbox is offered as the second factor beside TOTP."""
    _user_with_email_factor(app, account, factor, totp=True)
    rs = Resetter(app.test_client(), outboxes.mail)
    rs.ask("carol")
    rs.open(rs.link(account))
    assert rs.status == 200 and rs.step == "verify_totp", (rs.status, rs.step)
    assert 'value="email"' not in rs.html  # no switch to the mailbox's code
    rs.submit(action="switch", factor="email")
    assert rs.step == "verify_totp"


# --- 5. forgot-password by address, and usernames spelt like addresses ---------------------


@pytest.mark.delivery
def test_forgot_password_by_address_goes_to_the_account_that_verified_it(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    """Attack: a username spelt like alice's address captures her "forgot password"."""
    set_policy(app, login_by_email=True)
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        directory.require_user(s, t, "alice").email_verified = True
        squatter = ("alice@acme.test", "mallory@evil.example", "member", "purple elephants")
        directory.create_user(s, svc(app).passwords, t, *squatter)
    rs = Resetter(app.test_client(), outboxes.mail)
    rs.ask("alice@acme.test")
    link = rs.link("alice@acme.test")
    rs.ask("olivia", ip="10.0.0.9")  # the mail thread sends in order: once olivia's is in,
    outboxes.mail.wait("olivia@acme.test")  # any mail for mallory would be in as well
    assert outboxes.mail.to("mallory@evil.example") == []
    assert 'id="username">alice<' in rs.client.get(f"/t/acme/{link}").get_data(as_text=True)


@pytest.mark.delivery
def test_sign_up_refuses_a_username_with_an_at_sign(
    app: Flask, tenant: str, client: FlaskClient
) -> None:
    """Attack: signing up with a username spelt like someone's email address."""
    open_signup(app)
    su = SignUp(client)
    su.start("mallory@evil.example", "alice@acme.test")
    assert su.status == 400 and su.alert and "without @" in su.alert, (su.status, su.alert)


# --- 6. a reset flow driven through another tenant's URL -----------------------------------


@pytest.mark.delivery
def test_a_reset_flow_from_another_tenant_is_a_clean_400(
    app: Flask, tenant: str, client: FlaskClient, outboxes: Outboxes
) -> None:
    """Attack: a reset flow of tenant acme driven through tenant beta's URLs (was a 500)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash is answered as the 500 a user sees
    with svc(app).db.session() as s:
        directory.create_tenant(s, "beta", "Beta")
    rs = Resetter(client, outboxes.mail)
    rs.ask("alice")
    rs.open(rs.link("alice@acme.test"))
    assert "Choose a new password" in rs.html
    cookie = client.get_cookie("stepwise_session", path="/t/acme/")
    assert cookie is not None
    other = app.test_client()
    other.set_cookie("stepwise_session", cookie.value, path="/t/beta/")
    before = user_row(app).password_hash
    shown = other.get("/t/beta/reset-password/flow")
    assert shown.status_code == 400 and EXPIRED in shown.get_data(as_text=True)
    form = {"csrf_token": csrf_of(rs.html), "password": NEW, "confirmation": NEW}
    posted = other.post("/t/beta/reset-password/new", data=form)
    assert posted.status_code == 400 and EXPIRED in posted.get_data(as_text=True)
    answered = other.post("/t/beta/reset-password/flow", data={**form, "step": "x"})
    assert answered.status_code == 400 and EXPIRED in answered.get_data(as_text=True)
    assert user_row(app).password_hash == before
