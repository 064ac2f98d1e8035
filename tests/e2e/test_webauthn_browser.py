"""WebAuthn in Chromium with a CDP virtual authenticator (ctap2, internal transport, resident
keys, user verification): a security key after the password, a passkey, passwordless login."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from testkit.servers import idp_env, live_idp
from testkit.webauthn_browser import virtual_authenticator
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


@pytest.fixture
def base(tmp_path: Path) -> Iterator[str]:
    env = idp_env(tmp_path / "instance")
    seed(env, "acme", "alice", PASSWORD)
    assert idp(env, "tenant", "set-mfa", "acme", "--mode", "required").returncode == 0
    with live_idp(env, host="localhost") as url:
        yield url


def password_login(page: Page, base: str) -> None:
    page.goto(f"{base}/t/acme/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page: Page) -> None:
    page.goto(page.url.split("/t/acme/")[0] + "/t/acme/account")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You have signed out")).to_be_visible()


def test_security_key_passkey_and_passwordless_login(page: Page, base: str) -> None:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    auth = virtual_authenticator(page)

    # A security key, registered in the login flow's enrolment step after the password.
    password_login(page, base)
    page.get_by_role("button", name="Security key").click()
    page.get_by_label("Name it, to tell your keys apart").fill("Blue key")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Save your backup codes")).to_be_visible()
    page.get_by_role("button", name="I have saved them").click()
    expect(page.locator("#level")).to_have_text("3")
    expect(page.locator("#amr")).to_have_text("pwd hwk user pin mfa")
    sign_out(page)

    # The key as the second factor.
    password_login(page, base)
    expect(page.get_by_role("heading", name="Use your security key or passkey")).to_be_visible()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#level")).to_have_text("3")

    # A passkey from the security page (the password was just given: no re-confirmation).
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("heading", name="Create a passkey")).to_be_visible()
    page.get_by_role("button", name="Register").click()
    # excludeCredentials lists the key already on this authenticator, so it declines.
    expect(page.locator("#webauthn-status")).to_contain_text("InvalidStateError")
    cdp = auth["cdp"]
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": auth["id"]})  # type: ignore[attr-defined]
    auth = virtual_authenticator(page)  # another device: a phone or laptop holding the passkey
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#factors")).to_contain_text("Passkey")
    sign_out(page)

    # Passwordless: the passkey alone, with user verification, is level 3. Chromium supports
    # conditional mediation, and the virtual authenticator answers the autofill request at
    # once, so opening the login page signs in.
    page.goto(f"{base}/t/acme/login")
    expect(page.locator("#level")).to_have_text("3")
    expect(page.locator("#amr")).to_have_text("hwk user pin mfa")
    sign_out(page)
    # Without conditional mediation, the "Sign in with a passkey" button does it.
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = async () => false;")
    page.goto(f"{base}/t/acme/login")
    expect(page.get_by_label("Username")).to_be_visible()
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("#level")).to_have_text("3")
    expect(page.locator("#amr")).to_have_text("hwk user pin mfa")

    # Remove the security key: the passkey sign-in a moment ago is re-authentication at the
    # account's level (3), so nothing more is asked (issue 12: the level, not the password).
    row = page.locator("#factors tr", has_text="Blue key")
    row.get_by_role("button", name="Remove").click()
    expect(page.locator("#factors")).not_to_contain_text("Blue key")
    expect(page.locator("#factors")).to_contain_text("Passkey")
    creds = auth["cdp"].send("WebAuthn.getCredentials", {"authenticatorId": auth["id"]})  # type: ignore[attr-defined]
    assert len(creds["credentials"]) == 1 and creds["credentials"][0]["isResidentCredential"]
    assert errors == []
