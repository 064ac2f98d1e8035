"""Helpers for the remembered-browser tests: a Required tenant that remembers browsers, Alice
with TOTP, and sign-ins that tick (or not) "Don't ask again on this browser"."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.store.models import RememberedBrowser
from testkit.totp import oathtool
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, logout, set_policy
from tests.web.oidc_helpers import Rp, authorize, exchange, pkce, query_of

COOKIE = "stepwise_remember"
DAYS = 30


def app_now(app: Flask) -> int:
    return int(svc(app).clock.time())


def code(app: Flask, secret: str) -> str:
    """A TOTP code for the app's clock; the clock moves on a step first, so a code is never
    the one the last sign-in used (a step is accepted once)."""
    later(app, 30)
    return oathtool(secret, app_now(app))


def required_tenant_with_totp(app: Flask, mb: MfaBrowser, days: int = DAYS) -> str:
    """Required MFA, browsers remembered for ``days``; Alice enrols TOTP (then signs out).
    Returns her TOTP secret."""
    set_policy(app, mfa_mode="required", remember_days=days)
    assert mb.password("alice", PASSWORD) == "enroll"
    secret = mb.enroll_totp()
    mb.backup_codes()
    assert mb.finished
    logout(mb.client)
    return secret


def sign_in_remembering(
    app: Flask, mb: MfaBrowser, secret: str, username: str = "alice", tick: bool = True
) -> Any:
    """Password, then TOTP with the box ticked (or not); the final response."""
    assert mb.password(username, PASSWORD) == "verify_totp", mb.seen
    fields = {"remember": "yes"} if tick else {}
    resp = mb.submit(code=code(app, secret), action="verify", **fields)
    assert mb.finished, mb.alert
    return resp


def cookie_value(client: FlaskClient) -> str | None:
    found = client.get_cookie(COOKIE, path="/t/acme/")
    return found.value if found is not None else None


def records(app: Flask) -> list[RememberedBrowser]:
    with svc(app).db.session() as s:
        rows = list(s.scalars(select(RememberedBrowser).order_by(RememberedBrowser.id)))
        s.expunge_all()
        return rows


def user_id(app: Flask, username: str) -> int:
    with svc(app).db.session() as s:
        return directory.require_user(s, directory.require_tenant(s, "acme"), username).id


def rp_code(client: FlaskClient, rp: Rp, mb: MfaBrowser, answer: dict[str, str],
            **params: str) -> tuple[list[str], Any]:  # fmt: skip
    """Authorize; at the login pages answer each step from ``answer`` (step -> code, or the
    password for ``identify``/``password``); return the steps seen and the token response."""
    verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256",
                     **params)  # fmt: skip
    seen: list[str] = []
    while "/login" in resp.headers.get("Location", ""):
        mb.url = resp.headers["Location"]
        mb._page(client.get(mb.url))
        while mb.html:
            step = mb.step
            assert step in answer, (step, mb.alert)
            seen.append(step)
            if step in ("identify", "password"):
                mb.submit(username="alice", password=answer[step], action="continue")
            else:
                mb.submit(code=answer[step], action="verify")
        resp = client.get(mb.done_at)
    location = resp.headers["Location"]
    return seen, exchange(client, rp, query_of(location)["code"], verifier)
