"""A user's sessions and remembered browsers in the admin API and the console (issue 15):
listed, and ended by "sign out everywhere" so that the browser really loses its session, with
the in-process store and with Redis; an MFA reset forgets remembered browsers too."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser
from tests.web.devices_support import (
    BOTH_STORES,
    CHROME,
    FIREFOX,
    SAFARI,
    app_for,
    browser,
    events,
    remember,
    sign_in,
    signed_in,
)
from tests.web.oidc_helpers import code_flow, exchange, register, token
from tests.web.test_admin_api_users import bearer, problem

API = "/t/acme/admin/api/users"


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    return app_for(request, tmp_path)


def now(app: Flask) -> int:
    return int(svc(app).clock.time())


def test_a_users_sessions_and_remembered_browsers_are_listed(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    sign_in(browser(app, FIREFOX, "203.0.113.7"))
    later(app, 60)
    sign_in(browser(app, CHROME, "198.51.100.20"))
    sign_in(browser(app, SAFARI, "198.51.100.40"), "olivia")
    remember(app, "alice", SAFARI, now(app) - 3600)
    remember(app, "alice", CHROME, now(app) - 40 * 86400)  # expired: not listed
    h = bearer(app, client, "stepwise:admin.read")  # a read
    resp = client.get(f"{API}/alice/sessions", headers=h)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert [x["device"] for x in body["sessions"]] == [
        "Chrome 131 on Windows 10",
        "Firefox 133 on Linux",
    ]  # newest first, alice's only
    first = body["sessions"][1]
    assert first["ip"] == "203.0.113.7" and first["user_agent"] == FIREFOX
    assert first["level"] == 1 and first["amr"] == ["pwd"]
    assert first["last_seen_at"] >= first["signed_in_at"] > 0
    assert set(first) == {"signed_in_at", "last_seen_at", "ip", "user_agent", "device",
                          "level", "amr"}  # fmt: skip
    [known] = body["remembered_browsers"]
    assert known["device"] == "Mobile Safari 17 on iOS 17" and known["ip"] == "198.51.100.4"
    assert known["expires_at"] > now(app) and "digest" not in known
    problem(client.get(f"{API}/nobody/sessions", headers=h), 404, "nobody")


@BOTH_STORES
def test_sign_out_everywhere_ends_the_browsers_session_and_forgets_remembered_browsers(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    rp = register(app)
    laptop = browser(app, FIREFOX, "203.0.113.7")
    query, verifier = code_flow(laptop, rp)  # signs in through the application
    tokens = exchange(laptop, rp, query["code"], verifier).get_json()
    phone = sign_in(browser(app, SAFARI, "198.51.100.40"))
    olivia = sign_in(browser(app, CHROME, "198.51.100.50"), "olivia")
    remember(app, "alice", SAFARI, now(app) - 3600)
    remember(app, "olivia", CHROME, now(app) - 3600)
    assert signed_in(laptop) and signed_in(phone)
    h = bearer(app, client)
    out = client.post(f"{API}/alice/sign-out", headers=h)
    assert out.status_code == 200 and out.get_json() == {"sessions_ended": 2}
    assert not signed_in(laptop) and not signed_in(phone)
    refreshed = token(laptop, rp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400
    listed = client.get(f"{API}/alice/sessions", headers=h).get_json()
    assert listed == {"sessions": [], "remembered_browsers": []}
    theirs = client.get(f"{API}/olivia/sessions", headers=h).get_json()
    assert len(theirs["sessions"]) == 1 and len(theirs["remembered_browsers"]) == 1
    assert signed_in(olivia)
    [event] = events(app, "user.signed_out_everywhere")
    assert event["sessions"] == 2 and event["browsers"] == 1
    # Signing in again (a second later: times are whole seconds) works, and is listed again.
    later(app, 1)
    sign_in(phone)
    assert signed_in(phone)
    assert len(client.get(f"{API}/alice/sessions", headers=h).get_json()["sessions"]) == 1


def test_an_mfa_reset_forgets_remembered_browsers(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    remember(app, "alice", SAFARI, now(app) - 3600)
    remember(app, "alice", FIREFOX, now(app) - 7200)
    remember(app, "olivia", CHROME, now(app) - 3600)
    h = bearer(app, client)
    assert client.post(f"{API}/alice/mfa/reset", headers=h).status_code == 200
    assert client.get(f"{API}/alice/sessions", headers=h).get_json()["remembered_browsers"] == []
    theirs = client.get(f"{API}/olivia/sessions", headers=h).get_json()
    assert len(theirs["remembered_browsers"]) == 1
    [event] = events(app, "mfa.reset")
    assert event["browsers"] == 2


def test_the_console_user_page_lists_remembered_browsers(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    sign_in(browser(app, FIREFOX, "203.0.113.7"))
    remember(app, "alice", SAFARI, now(app) - 3600)
    mb.password("olivia", PASSWORD)
    html = client.get("/t/acme/admin/users/alice").get_data(as_text=True)
    table = html.split('<table id="remembered-browsers">')[1].split("</table>")[0]
    assert "Mobile Safari 17 on iOS 17" in table and "198.51.100.4" in table
    sessions = html.split('<table id="sessions">')[1].split("</table>")[0]
    assert "Firefox 133 on Linux" in sessions and "203.0.113.7" in sessions
    confirm = client.get("/t/acme/admin/users/alice/sign-out").get_data(as_text=True)
    assert "Their remembered browsers are forgotten" in confirm
