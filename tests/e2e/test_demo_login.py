"""A newcomer's first minutes: the run command's steps, then a password login in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from testkit.servers import idp_env, live_idp
from tests.cli_support import idp

pytestmark = pytest.mark.e2e


def test_demo_admin_logs_in_with_a_password(page: Page, tmp_path: Path) -> None:
    env = idp_env(tmp_path / "instance")
    assert idp(env, "init").returncode == 0
    demo = idp(env, "demo")
    password = re.search(r"password\s+(\S+)", demo.stdout)
    assert demo.returncode == 0 and password

    with live_idp(env) as base:
        page.goto(f"{base}/t/demo/login")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
        expect(page.get_by_label("Username")).to_have_value("admin")

        page.get_by_label("Password").fill(password.group(1))
        page.get_by_role("button", name="Sign in", exact=True).click()
        # The demo tenant's MFA is optional: the offer comes with a Skip button.
        expect(page.get_by_role("heading", name="Protect your account")).to_be_visible()
        page.get_by_role("button", name="Skip for now").click()
        expect(page).to_have_url(f"{base}/t/demo/account")
        expect(page.locator("#username")).to_have_text("admin")
        expect(page.locator("#level")).to_have_text("1")
        expect(page.locator("#amr")).to_have_text("pwd")
        page.screenshot(path=str(tmp_path / "account.png"))

        cookie = next(c for c in page.context.cookies() if c["name"] == "stepwise_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/t/demo/"

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="You have signed out")).to_be_visible()
        page.goto(f"{base}/t/demo/account")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_pages_load_without_csp_violations(page: Page, tmp_path: Path) -> None:
    env = idp_env(tmp_path / "instance")
    assert idp(env, "init").returncode == 0
    assert idp(env, "demo").returncode == 0
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    with live_idp(env) as base:
        page.goto(f"{base}/t/demo/login")
        expect(page.get_by_label("Password")).to_be_visible()
        # The stylesheet applied: CSP allows 'self' styles and nothing inline is needed.
        assert page.eval_on_selector("button", "b => getComputedStyle(b).borderRadius") == "6px"
    assert errors == []
