"""The account page's sessions and remembered browsers (issue 15, "Sessions and devices"):
what is listed, signing out one session or all others (with the in-process store and with
Redis, the other browser really loses its session), re-authentication, CSRF, other users'
rows, and "last seen"."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.clock import SettableClock
from idp.store.models import Grant, UserSession
from testkit.totp import oathtool
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, set_policy
from tests.outbox import Outboxes
from tests.web.devices_support import (
    BOTH_STORES,
    CHROME,
    DEVICES,
    FIREFOX,
    SAFARI,
    age_authentication,
    app_for,
    browser,
    events,
    page,
    post,
    reauthenticate,
    remember,
    row_of,
    rows,
    session_row_id,
    sign_in,
    signed_in,
)
from tests.web.oidc_helpers import Rp, code_flow, exchange, register, token


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    return app_for(request, tmp_path)


@pytest.fixture
def rp(app: Flask, tenant: str) -> Rp:
    return register(app)


def tokens(client: FlaskClient, rp: Rp) -> dict[str, str]:
    """Sign in through the application (authorization code) and get its tokens."""
    query, verifier = code_flow(client, rp)
    resp = exchange(client, rp, query["code"], verifier)
    assert resp.status_code == 200, resp.get_json()
    body: dict[str, str] = resp.get_json()
    return body


def refreshes(client: FlaskClient, rp: Rp, refresh_token: str) -> bool:
    resp = token(client, rp, grant_type="refresh_token", refresh_token=refresh_token)
    assert resp.status_code in (200, 400), resp.status_code
    return resp.status_code == 200


def test_the_list_shows_device_ip_times_level_and_amr_and_marks_this_session(
    app: Flask, tenant: str
) -> None:
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    later(app, 90)
    sign_in(browser(app, CHROME, "198.51.100.20"))
    html = page(laptop)
    assert len(rows(html, "sessions")) == 2
    mine = row_of(html, "sessions", "Firefox 133 on Linux")
    assert "(this session)" in mine and "203.0.113.7" in mine
    assert "<td>1</td>" in mine and "<td>pwd</td>" in mine
    other = row_of(html, "sessions", "Chrome 131 on Windows 10")
    assert "(this session)" not in other and "198.51.100.20" in other
    assert rows(html, "sessions")[0] == other  # newest first
    assert 'aria-current="page">Sessions and devices' in html
    assert "Sign out all other sessions" in html
    assert 'id="consents"' in html and "You have not allowed any application." in html


@BOTH_STORES
def test_signing_out_one_session_ends_it_in_the_other_browser(
    app: Flask, tenant: str, rp: Rp
) -> None:
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    phone = browser(app, SAFARI, "198.51.100.30")
    phone_tokens = tokens(phone, rp)  # signs in through the application: a session and a grant
    assert signed_in(phone) and refreshes(phone, rp, phone_tokens["refresh_token"])
    ended = post(laptop, "sessions/end", session=session_row_id(page(laptop), "Mobile Safari"))
    assert ended.status_code == 302 and ended.headers["Location"] == DEVICES
    assert not signed_in(phone)  # its next request finds no session, whichever process
    assert not refreshes(phone, rp, phone_tokens["refresh_token"])  # its grant ended with it
    assert signed_in(laptop)
    html = page(laptop)
    assert "Mobile Safari" not in html and "(this session)" in html
    assert events(app, "user.session_ended") == [
        {"device": "Mobile Safari 17 on iOS 17", "current": False}
    ]
    with svc(app).db.session() as s:
        assert all(g.revoked_at is not None for g in s.scalars(select(Grant)))
        ended_rows = s.scalars(select(UserSession).where(UserSession.ended_at.is_not(None)))
        assert [r.user_agent for r in ended_rows] == [SAFARI]


@BOTH_STORES
@pytest.mark.delivery
def test_signing_out_all_others_keeps_this_one_and_emails_the_user(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    others = [sign_in(browser(app, ua, "198.51.100.30")) for ua in (CHROME, SAFARI)]
    olivia = sign_in(browser(app, CHROME, "198.51.100.40"), "olivia")
    resp = post(laptop, "sessions/end-others", action="end-others")
    assert resp.status_code == 302 and resp.headers["Location"] == DEVICES
    assert [signed_in(b) for b in others] == [False, False]
    assert signed_in(laptop) and signed_in(olivia)  # another user's sessions go on
    assert len(rows(page(laptop), "sessions")) == 1
    assert events(app, "user.other_sessions_ended") == [{"count": 2}]
    mail = outboxes.mail.to("alice@acme.test")
    assert [m["subject"] for m in mail] == ["Acme Inc: Your other sessions were signed out"]


def test_signing_out_this_session_signs_this_browser_out(app: Flask, tenant: str) -> None:
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    other = sign_in(browser(app, CHROME, "198.51.100.30"))
    resp = post(laptop, "sessions/end", session=session_row_id(page(laptop), "Firefox"))
    assert resp.status_code == 302 and "/t/acme/login" in resp.headers["Location"]
    assert not signed_in(laptop) and signed_in(other)
    assert events(app, "user.session_ended") == [
        {"device": "Firefox 133 on Linux", "current": True}
    ]
    assert [e["reason"] for e in events(app, "logout")] == ["session_ended"]


@BOTH_STORES
def test_changes_ask_to_sign_in_again_when_it_is_not_recent(app: Flask, tenant: str) -> None:
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    other = sign_in(browser(app, CHROME, "198.51.100.30"))
    age_authentication(app, laptop, 600)
    html = page(laptop)
    assert "Changes ask you to sign in again first" in html
    row = session_row_id(html, "Chrome")
    for action, form in (("sessions/end", {"session": row}), ("sessions/end-others", {}),
                         ("browsers/forget", {"browser": "1"}), ("browsers/forget-all", {}),
                         ("applications/revoke", {"client_id": "x"})):  # fmt: skip
        resp = post(laptop, action, **form)
        assert resp.status_code == 302 and "/t/acme/login?flow=" in resp.headers["Location"]
    assert signed_in(other)  # nothing happened
    assert reauthenticate(laptop, post(laptop, "sessions/end", session=row)) == DEVICES
    assert signed_in(other)  # re-authenticating did not do it either: the user asks again
    post(laptop, "sessions/end", session=row)
    assert not signed_in(other) and signed_in(laptop)


@BOTH_STORES
def test_another_users_rows_are_404_and_nothing_happens(app: Flask, tenant: str) -> None:
    olivia = sign_in(browser(app, CHROME, "198.51.100.40"), "olivia")
    theirs = session_row_id(page(olivia), "Chrome")
    browser_id = remember(app, "olivia", CHROME, int(svc(app).clock.time()))
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    assert post(laptop, "sessions/end", session=theirs).status_code == 404
    assert post(laptop, "browsers/forget", browser=str(browser_id)).status_code == 404
    for bogus in ("", "abc", "-1", "1e3", "9" * 40):
        assert post(laptop, "sessions/end", session=bogus).status_code == 404
        assert post(laptop, "browsers/forget", browser=bogus).status_code == 404
    assert signed_in(olivia) and signed_in(laptop)
    assert "Chrome 131 on Windows 10" in row_of(page(olivia), "browsers", "Chrome")
    assert events(app, "user.session_ended") == events(app, "user.browser_forgotten") == []


@BOTH_STORES
def test_a_post_without_its_csrf_token_is_refused(app: Flask, tenant: str) -> None:
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    other = sign_in(browser(app, CHROME, "198.51.100.30"))
    row = session_row_id(page(laptop), "Chrome")
    for action, form in (("sessions/end", {"session": row}), ("sessions/end-others", {})):
        assert laptop.post(f"{DEVICES}/{action}", data=form).status_code == 400
        bad = {**form, "csrf_token": "forged"}
        assert laptop.post(f"{DEVICES}/{action}", data=bad).status_code == 400
    assert signed_in(other)


def test_the_page_needs_a_signed_in_user(app: Flask, tenant: str) -> None:
    anonymous = browser(app, FIREFOX, "203.0.113.7")
    resp = anonymous.get(DEVICES)
    assert resp.status_code == 302 and "/t/acme/login" in resp.headers["Location"]
    assert anonymous.post(f"{DEVICES}/sessions/end-others").status_code == 400  # no CSRF


def test_remembered_browsers_are_listed_and_forgotten(app: Flask, tenant: str) -> None:
    now = int(svc(app).clock.time())
    old = remember(app, "alice", CHROME, now - 86400, days=30)
    remember(app, "alice", SAFARI, now - 3600, days=30)
    remember(app, "alice", FIREFOX, now - 40 * 86400, days=30)  # expired: not listed
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    html = page(laptop)
    assert [r.split("<td>")[1].split("<")[0] for r in rows(html, "browsers")] == [
        "Mobile Safari 17 on iOS 17",
        "Chrome 131 on Windows 10",
    ]
    assert post(laptop, "browsers/forget", browser=str(old)).status_code == 302
    assert [r.split("<td>")[1].split("<")[0] for r in rows(page(laptop), "browsers")] == [
        "Mobile Safari 17 on iOS 17"
    ]
    assert post(laptop, "browsers/forget", browser=str(old)).status_code == 404  # once
    assert post(laptop, "browsers/forget-all", action="forget-all").status_code == 302
    assert 'id="browsers"' not in page(laptop)  # none, and the tenant does not remember any
    set_policy(app, remember_days=30)
    assert "No remembered browser." in page(laptop)
    assert len(events(app, "user.browser_forgotten")) == 1
    assert events(app, "user.browsers_forgotten") == [{"count": 1}]


def test_last_seen_moves_with_use_at_most_once_a_minute(app: Flask, tenant: str) -> None:
    clock = svc(app).clock
    assert isinstance(clock, SettableClock)
    clock.freeze()
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))

    def last_seen() -> int:
        with svc(app).db.session() as s:
            return s.scalars(select(UserSession.last_seen_at)).one()

    signed_at = last_seen()
    later(app, 30)
    assert signed_in(laptop) and last_seen() == signed_at  # within the minute: no write
    later(app, 45)
    assert signed_in(laptop) and last_seen() == signed_at + 75
    later(app, 200)
    page(laptop)
    assert last_seen() == signed_at + 275
    html = page(laptop)
    assert html.count("UTC</td>") == 2  # signed in, last seen


def test_sessions_idle_past_the_timeout_are_not_listed(app: Flask, tenant: str) -> None:
    laptop = sign_in(browser(app, FIREFOX, "203.0.113.7"))
    sign_in(browser(app, CHROME, "198.51.100.30"))  # then left alone
    idle = svc(app).settings.session_idle_timeout
    later(app, idle // 2)
    assert signed_in(laptop)
    later(app, idle // 2 + 120)
    html = page(laptop)
    assert len(rows(html, "sessions")) == 1 and "Firefox" in html and "Chrome" not in html


def test_with_a_second_factor_re_authentication_asks_for_it_too(app: Flask, tenant: str) -> None:
    set_policy(app, mfa_mode="required")
    laptop = browser(app, FIREFOX, "203.0.113.7")
    mb = MfaBrowser(laptop, "acme")
    assert mb.password("alice", PASSWORD) == "enroll"
    secret = mb.enroll_totp()
    mb.backup_codes()
    other = browser(app, CHROME, "198.51.100.30")
    on_other = MfaBrowser(other, "acme")
    assert on_other.password("alice", PASSWORD) == "verify_totp"
    on_other.submit(code=oathtool(secret, svc(app).clock.time() + 30), action="verify")
    assert signed_in(other)
    later(app, 600)  # the sign-in is no longer recent
    resp = post(laptop, "sessions/end-others", action="end-others")
    location = resp.headers["Location"]
    assert "/t/acme/login?flow=" in location
    mb.url = location
    mb._page(laptop.get(location))
    mb.submit(password=PASSWORD, action="continue")
    assert mb.step == "verify_totp"  # the password alone is not the account's level
    mb.submit(code=oathtool(secret, svc(app).clock.time()), action="verify")
    assert mb.finished and mb.done_at == DEVICES
    post(laptop, "sessions/end-others", action="end-others")
    assert events(app, "user.other_sessions_ended") == [{"count": 1}]
    assert not signed_in(other) and signed_in(laptop)
