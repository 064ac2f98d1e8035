"""Issue 12 in Chromium: an attacker who knows only alice's password, with a virtual
authenticator of their own, cannot bind it, neither through an application's level-3 request
nor from the account page. Alice, who also has her TOTP, can: TOTP first, then the key."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from testkit.servers import idp_env, live_idp
from testkit.totp import oathtool
from testkit.webauthn_browser import virtual_authenticator
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD
from tests.e2e.test_oidc_browser import rp_server  # noqa: F401 (a fixture)
from tests.e2e.test_webauthn_browser import password_login
from tests.web.oidc_helpers import pkce

pytestmark = pytest.mark.e2e
LOA2, LOA3 = "urn:stepwise:loa:2", "urn:stepwise:loa:3"
TOTP_PAGE = "Enter the code from your authenticator app"


@pytest.fixture
def live(tmp_path: Path, rp_server: str) -> Iterator[dict[str, Any]]:  # noqa: F811
    env = idp_env(tmp_path / "instance")
    seed(env, "acme", "alice", PASSWORD)
    policy = ["tenant", "set-mfa", "acme", "--mode", "off", "--factors", "totp,webauthn"]
    assert idp(env, *policy).returncode == 0
    out = idp(env, "client", "create", "acme", "--name", "RP", "--redirect-uri", rp_server,
              "--json")  # fmt: skip
    with live_idp(env, host="localhost") as base:
        yield {"base": base, "rp": rp_server, **json.loads(out.stdout)}


def authorize(page: Page, live: dict[str, Any], acr: str) -> str:
    """Open the application's authorization request; returns the PKCE verifier."""
    verifier, challenge = pkce()
    query = urlencode({
        "response_type": "code", "client_id": live["client_id"], "redirect_uri": live["rp"],
        "scope": "openid", "state": "s", "nonce": "n", "acr_values": acr,
        "code_challenge": challenge, "code_challenge_method": "S256"})  # fmt: skip
    page.goto(f"{live['base']}/t/acme/authorize?{query}")
    return verifier


def id_token_claims(page: Page, live: dict[str, Any], verifier: str) -> dict[str, Any]:
    expect(page.locator("#got")).to_contain_text("code=")
    got = dict(p.split("=", 1) for p in page.locator("#got").inner_text().split("&"))
    tokens = requests.post(f"{live['base']}/t/acme/token", timeout=10,
                           auth=(live["client_id"], live["client_secret"]), data={
        "grant_type": "authorization_code", "code": requests.utils.unquote(got["code"]),
        "redirect_uri": live["rp"], "code_verifier": verifier}).json()  # fmt: skip
    payload = tokens["id_token"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def sign_in_with_password(page: Page) -> None:
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def credentials_on(auth: dict[str, Any]) -> int:
    found = auth["cdp"].send("WebAuthn.getCredentials", {"authenticatorId": auth["id"]})
    return len(found["credentials"])


def test_the_password_alone_binds_no_key(chromium: Browser, live: dict[str, Any]) -> None:
    # Alice sets up TOTP inside an application's level-2 request (MFA stays off for her).
    alice = chromium.new_context().new_page()
    verifier = authorize(alice, live, LOA2)
    sign_in_with_password(alice)
    alice.get_by_role("button", name="Authenticator app").click()
    secret = alice.locator("#totp-secret").inner_text().strip()
    alice.get_by_label("Code shown in the app").fill(oathtool(secret))
    alice.get_by_role("button", name="Activate").click()
    alice.get_by_role("button", name="I have saved them").click()
    assert "otp" in id_token_claims(alice, live, verifier)["amr"]

    # The attacker: her password, a browser and an authenticator of their own.
    attacker = chromium.new_context().new_page()
    theirs = virtual_authenticator(attacker)
    authorize(attacker, live, LOA3)
    sign_in_with_password(attacker)
    # Before the fix: "A security key or passkey is needed", and any key registered.
    expect(attacker.get_by_role("heading", name=TOTP_PAGE)).to_be_visible()
    expect(
        attacker.get_by_role("heading", name="A security key or passkey is needed")
    ).to_have_count(0)
    # A password-only sign-in (level 1: MFA is off), then "Add a passkey" on the account page.
    password_login(attacker, live["base"])
    expect(attacker.locator("#level")).to_have_text("1")
    attacker.get_by_role("button", name="Add a passkey").click()
    expect(attacker.get_by_role("heading", name=TOTP_PAGE)).to_be_visible()
    attacker.get_by_label("6-digit code").fill("000000")
    attacker.get_by_role("button", name="Verify").click()
    expect(attacker.get_by_role("heading", name=TOTP_PAGE)).to_be_visible()
    attacker.goto(f"{live['base']}/t/acme/account")
    attacker.get_by_role("button", name="Create new backup codes").click()
    expect(attacker.get_by_role("heading", name=TOTP_PAGE)).to_be_visible()
    assert credentials_on(theirs) == 0
    attacker.goto(f"{live['base']}/t/acme/account")
    expect(attacker.locator("#factors")).not_to_contain_text("Passkey")

    # Alice herself, in a new browser with her authenticator app: the password, her TOTP,
    # then her own passkey, at level 3.
    alice = chromium.new_context().new_page()
    mine = virtual_authenticator(alice)
    verifier = authorize(alice, live, LOA3)
    sign_in_with_password(alice)
    expect(alice.get_by_role("heading", name=TOTP_PAGE)).to_be_visible()
    alice.get_by_label("6-digit code").fill(oathtool(secret, time.time() + 30))  # a new step
    alice.get_by_role("button", name="Verify").click()
    expect(alice.get_by_role("heading", name="A security key or passkey is needed")).to_be_visible()
    alice.get_by_role("button", name="Passkey").click()
    alice.get_by_role("button", name="Register").click()
    claims = id_token_claims(alice, live, verifier)
    assert claims["acr"] == LOA3 and "otp" in claims["amr"] and "hwk" in claims["amr"], claims
    assert credentials_on(mine) == 1
