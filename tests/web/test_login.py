"""Password login through the real HTML forms (Flask test client)."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from factors.password import Argon2Params, PasswordFactor
from idp import directory
from idp.clock import SettableClock
from idp.sessions import COOKIE
from idp.store.models import AuditEvent
from testkit.html import alert_of, csrf_of
from tests.conftest import PASSWORD, Browser, later, make_app, svc

GENERIC = "Incorrect username or password."


def session_id(client: FlaskClient, tenant: str = "acme") -> str | None:
    cookie = client.get_cookie(COOKIE, path=f"/t/{tenant}/")
    return cookie.value if cookie else None


def test_login_success_lands_on_the_account_page(browser: Browser, client: FlaskClient) -> None:
    resp = browser.login("alice", PASSWORD)
    assert resp.status_code == 302 and resp.headers["Location"] == "/t/acme/account"
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert '<dd id="username">alice</dd>' in page
    assert '<dd id="level">1</dd>' in page and '<dd id="amr">pwd</dd>' in page


def test_username_is_case_and_space_insensitive(browser: Browser) -> None:
    assert browser.login("  ALICE ", PASSWORD).status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_answer(browser: Browser) -> None:
    wrong = browser.login("alice", "not the password")
    unknown = browser.login("mallory", "not the password")
    assert wrong.status_code == unknown.status_code == 200
    assert (
        alert_of(wrong.get_data(as_text=True))
        == alert_of(unknown.get_data(as_text=True))
        == GENERIC
    )
    # The same form comes back, with the username kept, so a typo can be fixed.
    assert 'id="username" name="username" type="text"' in wrong.get_data(as_text=True)
    assert 'value="alice"' in wrong.get_data(as_text=True)


def test_empty_fields_are_form_errors(browser: Browser) -> None:
    url, html = browser.open_login()
    resp = browser.post(url, html, "identify", username="", password="")
    assert alert_of(resp.get_data(as_text=True)) == "Enter your username."


def test_session_id_rotates_at_login_and_old_id_is_dead(
    app: Flask, browser: Browser, client: FlaskClient
) -> None:
    url, html = browser.open_login()
    before = session_id(client)
    assert before
    browser.post(url, html, "identify", username="alice", password=PASSWORD)
    after = session_id(client)
    assert after and after != before
    assert svc(app).store.get(f"session:{before}") is None
    assert svc(app).store.get(f"session:{after}") is not None


def test_logout_destroys_server_side_state(
    app: Flask, browser: Browser, client: FlaskClient
) -> None:
    browser.login("alice", PASSWORD)
    sid = session_id(client)
    account = client.get("/t/acme/account")
    resp = client.post(
        "/t/acme/logout", data={"csrf_token": csrf_of(account.get_data(as_text=True))}
    )
    assert resp.status_code == 200 and "signed out" in resp.get_data(as_text=True)
    assert svc(app).store.get(f"session:{sid}") is None
    assert session_id(client) is None
    assert client.get("/t/acme/account").status_code == 302


def test_account_needs_login_and_comes_back_after(browser: Browser, client: FlaskClient) -> None:
    resp = client.get("/t/acme/account")
    assert resp.status_code == 302 and "return_to=/t/acme/account" in resp.headers["Location"]
    assert browser.client.get(resp.headers["Location"]).status_code == 302  # into a new flow
    login = browser.login("alice", PASSWORD, return_to="/t/acme/account")
    assert login.headers["Location"] == "/t/acme/account"


def test_return_to_outside_the_tenant_is_ignored(app: Flask, tenant: str) -> None:
    for target in [
        "https://evil.example/",
        "//evil.example/x",
        "/t/other/account",
        "/\\evil.example",
        "/t/acme//evil.example",
    ]:
        resp = Browser(app.test_client(), tenant).login("alice", PASSWORD, return_to=target)
        assert resp.headers["Location"] == "/t/acme/account", target


def test_csrf_missing_or_wrong_is_rejected(browser: Browser, client: FlaskClient) -> None:
    url, _ = browser.open_login()
    for token in (None, "forged"):
        data = {"step": "identify", "username": "alice", "password": PASSWORD}
        if token:
            data["csrf_token"] = token
        resp = client.post(url, data=data)
        assert resp.status_code == 400 and "expired" in resp.get_data(as_text=True)
    assert client.get("/t/acme/account").status_code == 302  # not signed in


def test_csrf_token_of_another_session_is_rejected(app: Flask, browser: Browser) -> None:
    other = Browser(app.test_client(), "acme")
    _, other_html = other.open_login()
    url, _ = browser.open_login()
    resp = browser.client.post(
        url,
        data={
            "csrf_token": csrf_of(other_html),
            "step": "identify",
            "username": "alice",
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 400


def test_flow_of_another_browser_is_not_found(app: Flask, browser: Browser) -> None:
    url, _ = browser.open_login()
    thief = Browser(app.test_client(), "acme")
    _, thief_html = thief.open_login()
    resp = thief.post(url, thief_html, "identify", username="alice", password=PASSWORD)
    assert resp.status_code == 400 and "expired" in resp.get_data(as_text=True)


def test_overlong_and_malformed_input_are_form_errors(
    browser: Browser, client: FlaskClient
) -> None:
    url, html = browser.open_login()
    long = browser.post(url, html, "identify", username="a" * 5000, password="x")
    assert (
        long.status_code == 400
        and alert_of(long.get_data(as_text=True)) == "That input is too long."
    )
    long_user = browser.post(url, html, "identify", username="a" * 900, password="x")
    assert alert_of(long_user.get_data(as_text=True)) == GENERIC
    body = (
        b"csrf_token=" + csrf_of(html).encode() + b"&step=identify&username=al%FF%FEice&password=x"
    )
    bad = client.post(url, data=body, content_type="application/x-www-form-urlencoded")
    assert bad.status_code == 400 and "not allowed" in (alert_of(bad.get_data(as_text=True)) or "")
    huge = client.post(
        url, data=b"a=" + b"x" * 70000, content_type="application/x-www-form-urlencoded"
    )
    assert huge.status_code == 413
    nul = browser.post(url, html, "identify", username="al\x00ice", password="x")
    assert nul.status_code == 400
    garbage = client.post(url, data="%%%garbage", content_type="application/x-www-form-urlencoded")
    assert garbage.status_code == 400


def test_unknown_tenant_is_404(client: FlaskClient) -> None:
    for path in ["/t/nope/login", "/t/nope/account", "/t/BAD_SLUG/login", "/t/-x/login"]:
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert "not found" in resp.get_data(as_text=True).lower()


def test_disabled_user_is_told_only_after_the_right_password(app: Flask, browser: Browser) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        directory.set_status(s, t, directory.require_user(s, t, "alice"), "disabled")
    assert alert_of(browser.login("alice", "wrong password").get_data(as_text=True)) == GENERIC
    resp = browser.login("alice", PASSWORD)
    assert resp.status_code == 403 and "disabled" in resp.get_data(as_text=True)


def test_password_is_rehashed_when_parameters_change(app: Flask, browser: Browser) -> None:
    services = svc(app)
    services.passwords = PasswordFactor(Argon2Params(memory_kib=9216, time_cost=2))
    assert browser.login("alice", PASSWORD).status_code == 302
    with services.db.session() as s:
        stored = directory.require_user(
            s, directory.require_tenant(s, "acme"), "alice"
        ).password_hash
    assert stored and "$m=9216,t=2,p=1$" in stored
    browser.client.post(
        "/t/acme/logout",
        data={"csrf_token": csrf_of(browser.client.get("/t/acme/account").get_data(as_text=True))},
    )
    assert browser.login("alice", PASSWORD).status_code == 302


def test_back_off_then_lock_then_admin_unlock(tmp_path: Path) -> None:
    app = make_app(tmp_path, throttle_free_attempts=2, throttle_lock_after=4, throttle_max_delay=1)
    services = svc(app)
    clock = services.clock
    assert isinstance(clock, SettableClock)
    clock.freeze()  # the back-off gate opens only when the test moves time (later)
    with services.db.session() as s:
        t = directory.create_tenant(s, "acme")
        directory.create_user(s, services.passwords, t, "alice", "a@acme.test", "member", PASSWORD)
    b = Browser(app.test_client(), "acme")
    assert alert_of(b.login("alice", "bad-1").get_data(as_text=True)) == GENERIC
    assert alert_of(b.login("alice", "bad-2").get_data(as_text=True)) == GENERIC
    assert alert_of(b.login("alice", "bad-3").get_data(as_text=True)) == GENERIC
    throttled = alert_of(b.login("alice", PASSWORD).get_data(as_text=True))
    assert throttled and throttled.startswith("Too many attempts")
    later(app, 1.1)
    assert alert_of(b.login("alice", "bad-4").get_data(as_text=True)) == GENERIC
    later(app, 1.1)
    locked = alert_of(b.login("alice", PASSWORD).get_data(as_text=True))
    assert locked and "administrator" in locked
    with services.db.session() as s:
        t = directory.require_tenant(s, "acme")
        assert directory.require_user(s, t, "alice").status == "locked"
        assert "user.locked" in [e.event for e in s.scalars(select(AuditEvent))]
        directory.unlock_user(s, t, directory.require_user(s, t, "alice"))
    assert b.login("alice", PASSWORD).status_code == 302  # no wait: the counters start afresh


def test_security_headers_on_pages(client: FlaskClient, tenant: str) -> None:
    resp = client.get("/t/acme/login", follow_redirects=True)
    csp = resp.headers["Content-Security-Policy"]
    assert (
        "frame-ancestors 'none'" in csp
        and "default-src 'none'" in csp
        and "script-src 'self'" in csp
    )
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers.getlist("X-Frame-Options") == ["DENY"]  # added once, never twice
    assert "Strict-Transport-Security" not in resp.headers  # http base URL in tests
    static = client.get("/static/style.css")
    assert static.status_code == 200 and static.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in static.headers.get("Cache-Control", "")  # static files are cached
    static.close()
    jwks = client.get("/t/acme/jwks")  # a view's own Cache-Control is kept
    assert jwks.headers.getlist("Cache-Control") == ["public, max-age=300"]


def test_session_cookie_flags(browser: Browser) -> None:
    resp = browser.client.get("/t/acme/login")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/t/acme/" in cookie
    assert "Secure" not in cookie  # http base URL in tests


def test_secure_cookie_behind_https(tmp_path: Path) -> None:
    app = make_app(tmp_path, base_url="https://id.example.test")
    with svc(app).db.session() as s:
        directory.create_tenant(s, "acme")
    resp = app.test_client().get("/t/acme/login", base_url="https://id.example.test")
    assert "Secure" in resp.headers["Set-Cookie"]
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


def test_successful_login_is_audited_without_secrets(app: Flask, browser: Browser) -> None:
    browser.login("alice", PASSWORD)
    with svc(app).db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.succeeded")).all()
    assert len(events) == 1 and events[0].details == {"factors": ["password"]}
    assert PASSWORD not in str(events[0].details)


def test_no_password_or_username_in_logs(app: Flask, browser: Browser, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG")
    browser.login("alice", "wrong secret here")
    browser.login("alice", PASSWORD)
    assert PASSWORD not in caplog.text and "wrong secret here" not in caplog.text


def test_absolute_timeout_ends_the_session(
    app: Flask, browser: Browser, client: FlaskClient
) -> None:
    browser.login("alice", PASSWORD)
    sid = session_id(client)
    store = svc(app).store
    data = json.loads(store.get(f"session:{sid}") or b"{}")
    data["_created"] -= svc(app).settings.session_absolute_timeout + 1
    store.set(f"session:{sid}", json.dumps(data).encode(), 60)
    assert client.get("/t/acme/account").status_code == 302  # back to sign-in
    assert store.get(f"session:{sid}") is None


def test_idle_timeout_is_the_server_side_ttl(
    app: Flask, browser: Browser, client: FlaskClient
) -> None:
    browser.login("alice", PASSWORD)
    sid = session_id(client)
    store = svc(app).store
    store.set(f"session:{sid}", store.get(f"session:{sid}") or b"", 1)  # as if idle for long
    later(app, 1.1)
    assert client.get("/t/acme/account").status_code == 302


def test_each_tenant_has_its_own_session(app: Flask, browser: Browser, client: FlaskClient) -> None:
    services = svc(app)
    with services.db.session() as s:
        t = directory.create_tenant(s, "other")
        directory.create_user(s, services.passwords, t, "alice", "a@other.test", "member", PASSWORD)
    browser.login("alice", PASSWORD)
    assert client.get("/t/acme/account").status_code == 200
    assert client.get("/t/other/account").status_code == 302  # acme's session does not sign in here
