"""A forgotten password in Chromium (issue 15): the emailed link, read from a real SMTP
server, then the TOTP code, then the new password; a session in another browser ends, and
the new password signs in with the second factor, as at any login. Each page of the reset,
and the account page's password form, passes axe-core (no serious or critical issue)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from testkit.servers import ServerClock, idp_env, live_idp
from testkit.totp import oathtool
from tests.cli_support import seed
from tests.conftest import PASSWORD
from tests.e2e.axe import violations
from tests.outbox import Inbox, smtp_server

pytestmark = pytest.mark.e2e
LINK = re.compile(r"(https?://\S+/t/acme/reset-password\?token=[A-Za-z0-9_-]+)")
NEW = "a brand new passphrase"


def sign_in(page: Page, base: str, password: str) -> None:
    page.goto(f"{base}/t/acme/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def reset_link(inbox: Inbox) -> str:
    """The link of the first reset mail to alice (notifications are passed over)."""
    for i in range(10):
        found = LINK.search(inbox.wait("alice@acme.test", i)["text"])
        if found:
            return found.group(1)
    raise AssertionError("no reset link mailed")


def test_forgot_password_link_totp_new_password_and_old_sessions_gone(
    chromium: Browser, page: Page, tmp_path: Path
) -> None:
    clock = ServerClock(tmp_path, frozen=True)  # TOTP steps and session times move on cue
    with smtp_server() as (smtp_port, inbox):
        env = idp_env(tmp_path / "instance", IDP_MAIL_SENDER="smtp", IDP_SMTP_HOST="127.0.0.1",
                      IDP_SMTP_PORT=str(smtp_port), IDP_SMTP_SECURITY="none",
                      IDP_MAIL_FROM="Acme <id@acme.test>")  # fmt: skip
        seed(env, "acme", "alice", PASSWORD)
        with live_idp(env, clock=clock) as base:
            now = clock.frozen_at or 0

            # Another browser: alice sets up an authenticator app and stays signed in.
            other = chromium.new_context()
            old = other.new_page()
            old.goto(f"{base}/t/acme/account")
            old.get_by_label("Username").fill("alice")
            old.get_by_label("Password").fill(PASSWORD)
            old.get_by_role("button", name="Sign in", exact=True).click()
            expect(old.locator("#level")).to_have_text("1")
            old.get_by_role("button", name="Authenticator app").first.click()
            secret = old.locator("#totp-secret").inner_text()
            old.get_by_label("Code shown in the app").fill(oathtool(secret, now))
            old.get_by_role("button", name="Activate").click()
            old.get_by_role("button", name="I have saved them").click()
            expect(old.locator("#mfa-state")).to_contain_text("On")
            old.goto(f"{base}/t/acme/account/password")  # the change form, for axe
            expect(old.get_by_label("Current password")).to_be_visible()
            assert violations(old) == []

            # This browser: "Forgot your password?" from the sign-in page.
            page.goto(f"{base}/t/acme/login")
            page.get_by_role("link", name="Forgot your password?").click()
            assert violations(page) == []
            page.get_by_label("Username or email address").fill("alice@acme.test")
            page.get_by_role("button", name="Send me a link").click()
            expect(page.locator("#reset-sent")).to_be_visible()
            assert violations(page) == []
            page.goto(reset_link(inbox))
            assert violations(page) == []
            page.get_by_role("button", name="Continue").click()
            assert "token=" not in page.url  # the token left the address bar

            # The TOTP code first (the next step: the one used at enrolment is spent) ...
            expect(
                page.get_by_role("heading", name="Enter the code from your authenticator app")
            ).to_be_visible()
            assert violations(page) == []
            clock.advance(30)
            page.get_by_label("6-digit code").fill(oathtool(secret, now + 30))
            page.get_by_role("button", name="Verify").click()
            # ... then the new password.
            expect(page.get_by_label("New password", exact=True)).to_be_visible()
            assert violations(page) == []
            page.get_by_label("New password", exact=True).fill(NEW)
            page.get_by_label("New password again").fill(NEW)
            page.get_by_role("button", name="Set password").click()
            expect(page.locator("#reset-done")).to_be_visible()
            assert violations(page) == []

            # The other browser's session is gone.
            clock.advance(2)
            old.goto(f"{base}/t/acme/account")
            expect(old.get_by_label("Password")).to_be_visible()
            other.close()

            # The new password signs in, with the next time step's code.
            clock.advance(30)
            sign_in(page, base, NEW)
            page.get_by_label("6-digit code").fill(oathtool(secret, now + 62))
            page.get_by_role("button", name="Verify").click()
            expect(page.locator("#level")).to_have_text("2")
