"""A remembered browser in Chromium: after "Don't ask again on this browser", the tenant
policy's second factor is skipped at the next sign-in (the session stays level 1, amr pwd),
but an application asking for ``acr_values`` loa:2 still gets the second-factor step."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import Page, expect

from idp import directory
from testkit.servers import ServerClock, idp_env, live_idp
from testkit.totp import oathtool
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD, services_for
from tests.e2e.remembered_rp import callback_server, id_token_claims
from tests.web.oidc_helpers import pkce

pytestmark = pytest.mark.e2e
LOA2 = "urn:stepwise:loa:2"


@pytest.fixture
def rp_server() -> Iterator[str]:
    with callback_server() as url:
        yield url


def sign_in(page: Page, base: str, path: str = "/t/acme/login") -> None:
    page.goto(base + path)
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_remembered_browser_skips_the_policy_second_factor_not_an_apps_loa2(
    page: Page, tmp_path: Path, rp_server: str
) -> None:
    env = idp_env(tmp_path / "instance")
    seed(env, "acme", "alice", PASSWORD)
    assert idp(env, "tenant", "set-mfa", "acme", "--mode", "required").returncode == 0
    with services_for(env).db.session() as s:  # the console's setting (another change)
        directory.require_tenant(s, "acme").remember_days = 30
    out = idp(env, "client", "create", "acme", "--name", "RP", "--redirect-uri", rp_server,
              "--json")  # fmt: skip
    creds = json.loads(out.stdout)
    clock = ServerClock(tmp_path)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    def code() -> str:
        clock.advance(30)  # a TOTP step is accepted once: each code is a new step
        return oathtool(secret, time.time() + clock.offset)

    with live_idp(env, clock=clock) as base:
        # First sign-in: Required, so Alice enrols TOTP.
        sign_in(page, base)
        page.get_by_role("button", name="Authenticator app").click()
        secret = page.locator("#totp-secret").inner_text()
        page.get_by_label("Code shown in the app").fill(code())
        page.get_by_role("button", name="Activate").click()
        page.get_by_role("button", name="I have saved them").click()
        expect(page.locator("#level")).to_have_text("2")
        page.get_by_role("button", name="Sign out").click()

        # Second: TOTP, with "Don't ask again on this browser" ticked.
        sign_in(page, base)
        page.get_by_label("6-digit code").fill(code())
        page.get_by_label("Don't ask again on this browser for 30 days").check()
        page.get_by_role("button", name="Verify").click()
        expect(page.locator("#level")).to_have_text("2")
        [cookie] = [c for c in page.context.cookies() if c["name"] == "stepwise_remember"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/t/acme/"
        assert cookie["expires"] > time.time() + 29 * 86400
        page.get_by_role("button", name="Sign out").click()

        # Third: the password alone meets the policy; the session says what was verified.
        sign_in(page, base)
        expect(page.locator("#level")).to_have_text("1")
        expect(page.locator("#amr")).to_have_text("pwd")
        page.get_by_role("button", name="Sign out").click()

        def authorize(**extra: str) -> tuple[str, str]:
            verifier, challenge = pkce()
            query = urlencode({
                "response_type": "code", "client_id": creds["client_id"], "state": "r-1",
                "redirect_uri": rp_server, "scope": "openid", "nonce": "n",
                "code_challenge": challenge, "code_challenge_method": "S256", **extra})  # fmt: skip
            return f"{base}/t/acme/authorize?{query}", verifier

        def tokens(verifier: str) -> dict[str, object]:
            expect(page.locator("#got")).to_contain_text("code=")
            got = dict(p.split("=", 1) for p in page.locator("#got").inner_text().split("&"))
            resp = requests.post(f"{base}/t/acme/token", auth=(creds["client_id"],
                                 creds["client_secret"]), timeout=10, data={
                "grant_type": "authorization_code", "code": requests.utils.unquote(got["code"]),
                "redirect_uri": rp_server, "code_verifier": verifier})  # fmt: skip
            assert resp.status_code == 200, resp.text
            return id_token_claims(base, resp.json()["id_token"])

        # An application asking nothing special: the password alone, as at the login page.
        url, verifier = authorize()
        sign_in(page, base, url.removeprefix(base))
        claims = tokens(verifier)
        assert claims["acr"] == "urn:stepwise:loa:1" and claims["amr"] == ["pwd"]

        # An application asking for level 2: the second factor is asked all the same.
        url, verifier = authorize(acr_values=LOA2)
        page.goto(url)
        expect(page.get_by_label("6-digit code")).to_be_visible()
        page.get_by_label("6-digit code").fill(code())
        page.get_by_role("button", name="Verify").click()
        claims = tokens(verifier)
        assert claims["acr"] == LOA2 and "otp" in claims["amr"]  # type: ignore[operator]
    assert errors == []
