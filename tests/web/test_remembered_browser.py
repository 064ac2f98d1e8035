"""The remembered browser through the login forms and OIDC (DESIGN.md "Remembered browser").

It satisfies the tenant policy's "second factor at every login" on that browser, for that
user, and nothing else: the session's level and amr stay what was verified, an application
asking for level 2 (acr_values), a max_age shorter than the last real second factor and
re-authentication still get the second factor.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp import directory, remembered
from idp.mfa import admin as mfa_admin
from idp.saml import sps
from idp.store.models import AuditEvent, Grant, UserSession
from testkit.html import csrf_of
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, logout, set_policy, set_user
from tests.remembered_support import (
    COOKIE,
    DAYS,
    app_now,
    code,
    cookie_value,
    records,
    required_tenant_with_totp,
    rp_code,
    sign_in_remembering,
    user_id,
)
from tests.web.oidc_helpers import register, token
from tests.web.test_saml_attacks import METADATA, authn_request, get_sso

LOA2 = "urn:stepwise:loa:2"
DAY = 86400


@pytest.fixture(autouse=True)
def _frozen(app: Flask) -> None:
    """Times are compared to the second: the app's clock moves only when a test moves it."""
    svc(app).clock.freeze()  # type: ignore[attr-defined]


@pytest.fixture
def secret(app: Flask, mb: MfaBrowser) -> str:
    return required_tenant_with_totp(app, mb)


def remembered_alice(app: Flask, mb: MfaBrowser, secret: str) -> None:
    """Alice signs in with TOTP, ticks the box, and signs out: this browser is remembered."""
    sign_in_remembering(app, mb, secret)
    logout(mb.client)
    later(app, 60)


def account_level(client: FlaskClient) -> tuple[str, str]:
    page = client.get("/t/acme/account")
    assert page.status_code == 200, page.headers.get("Location")
    html = page.get_data(as_text=True)
    level = html.split('id="level">', 1)[1].split("<", 1)[0]
    amr = html.split('id="amr">', 1)[1].split("<", 1)[0]
    return level, amr


def claims_of(client: FlaskClient, jws: str) -> dict[str, Any]:
    keyset = KeySet.import_key_set(client.get("/t/acme/jwks").get_json())
    return dict(jwt.decode(jws, keyset).claims)


def test_the_ticked_box_sets_the_cookie_and_a_record(
    app: Flask, mb: MfaBrowser, secret: str
) -> None:
    assert mb.password("alice", PASSWORD) == "verify_totp"
    assert 'name="remember"' in mb.html
    assert f"Don&#39;t ask again on this browser for {DAYS} days" in mb.html or (
        f"Don't ask again on this browser for {DAYS} days" in mb.html
    )
    assert '<label for="remember">' in mb.html  # a visible label
    resp = mb.submit(code=code(app, secret), action="verify", remember="yes")
    assert mb.finished
    now = app_now(app)
    header = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))
    attributes = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "Path=/t/acme/" in header and "SameSite=Lax" in header
    assert f"Max-Age={DAYS * DAY}" in header
    assert "Secure" not in header  # plain http in tests; Secure behind https (idp.sessions)
    token_ = cookie_value(mb.client)
    assert token_ and len(token_) >= 43  # 256 random bits
    [row] = records(app)
    key = svc(app).cipher.derive("remembered browsers")
    assert row.digest == hmac.new(key, token_.encode(), hashlib.sha256).hexdigest()
    assert token_ not in row.digest
    assert row.user_id == user_id(app, "alice") and row.revoked_at is None
    assert row.verified_at == now and row.created_at == now
    assert row.expires_at == now + DAYS * DAY
    assert row.ip == "127.0.0.1" and row.user_agent.startswith("Werkzeug")
    assert row.last_used_at is None


def test_an_unticked_box_remembers_nothing(app: Flask, mb: MfaBrowser, secret: str) -> None:
    sign_in_remembering(app, mb, secret, tick=False)
    assert cookie_value(mb.client) is None and records(app) == []


def test_next_login_asks_only_the_password_and_the_session_stays_level_one(
    app: Flask, mb: MfaBrowser, secret: str
) -> None:
    remembered_alice(app, mb, secret)
    assert mb.password("alice", PASSWORD) is None and mb.finished
    assert account_level(mb.client) == ("1", "pwd")  # never a factor
    later(app, 600)
    assert account_level(mb.client) == ("1", "pwd")  # still ready: no second factor asked
    [row] = records(app)
    assert row.last_used_at is not None and row.last_used_at == app_now(app) - 600
    with svc(app).db.session() as s:
        seen = s.query(UserSession).filter_by(user_id=user_id(app, "alice")).all()
        assert seen and all(x.level == 1 and x.amr == ["pwd"] for x in seen if not x.ended_at)
        logins = s.scalars(
            select(AuditEvent).where(AuditEvent.event == "login.succeeded").order_by(AuditEvent.id)
        ).all()
        assert [e.details.get("remembered_browser") for e in logins] == [None, None, True]
        assert logins[-1].details["factors"] == ["password"]


def test_re_authentication_for_a_sensitive_action_still_asks_the_second_factor(
    app: Flask, mb: MfaBrowser, secret: str
) -> None:
    remembered_alice(app, mb, secret)
    mb.password("alice", PASSWORD)
    assert mb.finished
    page = mb.client.get("/t/acme/account").get_data(as_text=True)
    resp = mb.client.post(
        "/t/acme/account/factors/remove", data={"csrf_token": csrf_of(page), "factor": "x"}
    )
    assert resp.status_code == 302 and "/login?flow=" in resp.headers["Location"]
    mb.url = resp.headers["Location"]
    mb._page(mb.client.get(mb.url))
    assert mb.step == "verify_totp"
    assert 'name="remember"' not in mb.html  # re-authentication is never waived


def test_oidc_plain_request_gets_honest_tokens_and_acr_loa2_asks_the_second_factor(
    app: Flask, mb: MfaBrowser, client: FlaskClient, secret: str
) -> None:
    remembered_alice(app, mb, secret)
    rp = register(app)
    seen, resp = rp_code(client, rp, mb, {"identify": PASSWORD})
    assert seen == ["identify"] and resp.status_code == 200
    claims = claims_of(client, resp.get_json()["id_token"])
    assert claims["acr"] == "urn:stepwise:loa:1" and claims["amr"] == ["pwd"]
    # the application asks for level 2: the remembered browser does not stand in for it
    seen, resp = rp_code(client, rp, mb, {"verify_totp": code(app, secret)}, acr_values=LOA2)
    assert seen == ["verify_totp"]
    claims = claims_of(client, resp.get_json()["id_token"])
    assert claims["acr"] == LOA2 and set(claims["amr"]) == {"pwd", "otp", "mfa"}


def test_oidc_max_age_shorter_than_the_last_real_second_factor_asks_it(
    app: Flask, mb: MfaBrowser, client: FlaskClient, secret: str
) -> None:
    remembered_alice(app, mb, secret)
    later(app, 2 * DAY)
    rp = register(app)
    answers = {"identify": PASSWORD, "password": PASSWORD}
    seen, resp = rp_code(client, rp, mb, answers, max_age=str(3 * DAY))
    assert seen == ["identify"]  # two days since the TOTP: a three-day max_age is met
    later(app, 60)
    answers["verify_totp"] = code(app, secret)
    seen, resp = rp_code(client, rp, mb, answers, max_age=str(DAY))
    assert seen[-1] == "verify_totp", seen
    claims = claims_of(client, resp.get_json()["id_token"])
    assert "otp" in claims["amr"]


@pytest.mark.parametrize(
    "case",
    ["other_user", "tampered", "expired", "forgotten", "off", "password_changed", "mfa_reset"],
)
def test_a_cookie_that_does_not_count_means_the_second_factor(
    app: Flask, mb: MfaBrowser, secret: str, case: str
) -> None:
    if case == "other_user":
        # Olivia (owner) is remembered on this browser; Alice signs in on it after her
        olivia = _enrol_olivia(app, mb)
        sign_in_remembering(app, mb, olivia, username="olivia")
        logout(mb.client)
    else:
        remembered_alice(app, mb, secret)
    token_ = cookie_value(mb.client)
    assert token_
    if case == "tampered":
        flipped = ("A" if token_[0] != "A" else "B") + token_[1:]
        mb.client.set_cookie(COOKIE, flipped, path="/t/acme/")
    elif case == "expired":
        later(app, DAYS * DAY + 1)
    elif case == "forgotten":
        with svc(app).db.session() as s:
            t = directory.require_tenant(s, "acme")
            assert remembered.forget_all(s, directory.require_user(s, t, "alice"), app_now(app))
    elif case == "off":
        set_policy(app, remember_days=0)
    elif case in ("password_changed", "mfa_reset"):
        # what ends remembered browsers, even had forgetting them been missed
        column = "password_changed_at" if case == "password_changed" else "mfa_reset_at"
        set_user(app, "alice", **{column: app_now(app)})
    assert mb.password("alice", PASSWORD) == "verify_totp", case
    mb.submit(code=code(app, secret), action="verify")
    assert mb.finished
    assert account_level(mb.client)[0] == "2"


def _enrol_olivia(app: Flask, mb: MfaBrowser) -> str:
    assert mb.password("olivia", PASSWORD) == "enroll"
    olivia = mb.enroll_totp()
    mb.backup_codes()
    logout(mb.client)
    return olivia


def test_shorter_days_setting_shortens_existing_records(
    app: Flask, mb: MfaBrowser, secret: str
) -> None:
    remembered_alice(app, mb, secret)
    later(app, 3 * DAY)
    set_policy(app, remember_days=2)  # the tenant lowers its setting: three days is too old
    assert mb.password("alice", PASSWORD) == "verify_totp"


def test_remember_days_zero_shows_no_box_and_ignores_a_ticked_value(
    app: Flask, mb: MfaBrowser, secret: str
) -> None:
    set_policy(app, remember_days=0)
    assert mb.password("alice", PASSWORD) == "verify_totp"
    assert 'name="remember"' not in mb.html
    resp = mb.submit(code=code(app, secret), action="verify", remember="yes")
    assert mb.finished
    assert not any(h.startswith(COOKIE) for h in resp.headers.getlist("Set-Cookie"))
    assert records(app) == []


def test_a_new_real_second_factor_refreshes_the_record(
    app: Flask, mb: MfaBrowser, client: FlaskClient, secret: str
) -> None:
    remembered_alice(app, mb, secret)
    [before] = records(app)
    later(app, DAY)
    rp = register(app)
    seen, _ = rp_code(client, rp, mb, {"identify": PASSWORD, "verify_totp": code(app, secret)},
                      acr_values=LOA2)  # fmt: skip
    assert seen == ["identify", "verify_totp"]
    [after] = records(app)
    assert after.id == before.id and after.verified_at == app_now(app)
    assert after.verified_at > before.verified_at and after.expires_at == before.expires_at


def test_refresh_under_immediate_keeps_working_for_a_remembered_login_until_a_reset(
    app: Flask, mb: MfaBrowser, client: FlaskClient, secret: str
) -> None:
    set_policy(app, mfa_apply="immediate")
    remembered_alice(app, mb, secret)
    rp = register(app)
    seen, resp = rp_code(client, rp, mb, {"identify": PASSWORD}, scope="openid offline_access")
    assert seen == ["identify"]
    body = resp.get_json()
    assert claims_of(client, body["id_token"])["amr"] == ["pwd"]
    with svc(app).db.session() as s:
        assert s.query(Grant).one().remembered is True
    refreshed = token(client, rp, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()
    # the access token still counts too (userinfo asks the same authority)
    info = client.get(
        "/t/acme/userinfo",
        headers={"Authorization": f"Bearer {refreshed.get_json()['access_token']}"},
    )
    assert info.status_code == 200
    later(app, 5)
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        mfa_admin.reset_user(s, svc(app), t, directory.require_user(s, t, "alice"),
                             directory.Actor())  # fmt: skip
    again = token(
        client, rp, grant_type="refresh_token", refresh_token=refreshed.get_json()["refresh_token"]
    )
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


def test_a_remembered_family_is_not_ended_by_the_level_rule_alone(
    app: Flask, mb: MfaBrowser, client: FlaskClient, secret: str
) -> None:
    """The family survives refreshes under immediate, but the same level-1 family without the
    remembered mark is ended as below the policy (what the mark changes)."""
    set_policy(app, mfa_apply="immediate")
    remembered_alice(app, mb, secret)
    rp = register(app)
    _, resp = rp_code(client, rp, mb, {"identify": PASSWORD}, scope="openid offline_access")
    body = resp.get_json()
    with svc(app).db.session() as s:
        s.query(Grant).one().remembered = False
    refreshed = token(client, rp, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("extra", "context", "second_factor"),
    [
        ("", "", False),
        ("", "https://refeds.org/profile/mfa", True),  # RequestedAuthnContext: level 2
        (' ForceAuthn="true"', "", True),  # a fresh login: newer than the last real TOTP
    ],
    ids=["plain", "requested-context-loa2", "force-authn"],
)
def test_saml_requested_context_and_force_authn_still_ask_the_second_factor(
    app: Flask, mb: MfaBrowser, client: FlaskClient, secret: str,
    extra: str, context: str, second_factor: bool,
) -> None:  # fmt: skip
    remembered_alice(app, mb, secret)
    with svc(app).db.session() as s:
        sps.add_sp(s, directory.require_tenant(s, "acme"), METADATA.encode())
    xml = authn_request("_rb", extra=extra)
    # issued now by the app's clock (moved on past the TOTP), not the test machine's
    issued = datetime.fromtimestamp(app_now(app), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    xml = re.sub(r'IssueInstant="[^"]+"', f'IssueInstant="{issued}"', xml)
    if context:
        wanted = (
            '<samlp:RequestedAuthnContext Comparison="minimum"><saml:AuthnContextClassRef>'
            f"{context}</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>"
        )
        xml = xml.replace("</saml:Issuer>", "</saml:Issuer>" + wanted)
    resp = get_sso(client, xml)
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]  # type: ignore[attr-defined]
    mb.url = resp.headers["Location"]  # type: ignore[attr-defined]
    mb._page(client.get(mb.url))
    mb.seen = []
    mb.submit(username="alice", password=PASSWORD, action="continue")
    if second_factor:
        assert mb.step == "verify_totp", mb.seen
        mb.submit(code=code(app, secret), action="verify")
    assert mb.finished, mb.seen
    posted = client.get(mb.done_at).get_data(as_text=True)
    assert 'name="SAMLResponse"' in posted
