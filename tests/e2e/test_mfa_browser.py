"""Two-step sign-in in Chromium: the QR code renders under the CSP, and TOTP from oathtool works."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from testkit.servers import idp_env, live_idp
from testkit.totp import oathtool
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


def test_required_mfa_enrolment_and_login_in_a_browser(page: Page, tmp_path: Path) -> None:
    env = idp_env(tmp_path / "instance")
    seed(env, "acme", "alice", PASSWORD)
    assert idp(env, "tenant", "set-mfa", "acme", "--mode", "required").returncode == 0
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    with live_idp(env) as base:
        page.goto(f"{base}/t/acme/login")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
        expect(page.get_by_role("button", name="Skip for now")).to_have_count(0)
        page.get_by_role("button", name="Authenticator app").click()

        qr = page.locator("#totp-qr")
        expect(qr).to_be_visible()
        assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # allowed by the CSP
        uri = qr.get_attribute("data-otpauth-uri") or ""
        secret = page.locator("#totp-secret").inner_text()
        assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
        page.get_by_label("Code shown in the app").fill(oathtool(secret))
        page.get_by_role("button", name="Activate").click()

        expect(page.get_by_role("heading", name="Save your backup codes")).to_be_visible()
        expect(page.locator("#backup-codes li")).to_have_count(10)
        page.get_by_role("button", name="I have saved them").click()
        expect(page.locator("#amr")).to_have_text("pwd otp mfa")

        page.get_by_role("button", name="Sign out").click()
        page.goto(f"{base}/t/acme/login")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_label("6-digit code").fill(oathtool(secret, time.time() + 30))
        page.get_by_role("button", name="Verify").click()
        expect(page.locator("#level")).to_have_text("2")
    assert errors == []
