"""The demo application's step-up in Chromium: a level-1 sign-in, then the sensitive action's
RFC 9470 challenge sends the user back to Stepwise, which asks only for what is missing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from testkit.servers import ROOT, free_port, idp_env, live_idp, wait_for_port
from testkit.totp import oathtool
from tests.cli_support import idp

pytestmark = pytest.mark.e2e


def test_demo_app_steps_up_from_level_1_to_2(page: Page, tmp_path: Path) -> None:
    env = idp_env(tmp_path / "instance")
    assert idp(env, "init").returncode == 0
    demo = idp(env, "demo")
    password = re.search(r"password\s+(\S+)", demo.stdout)
    assert demo.returncode == 0 and password
    rp_port = free_port()
    with live_idp(env, host="localhost") as base:
        made = idp(
            {**env, "IDP_BASE_URL": base},
            "client",
            "create",
            "demo",
            "--name",
            "Demo",
            "--redirect-uri",
            f"http://127.0.0.1:{rp_port}/callback",
            "--json",
        )
        creds = json.loads(made.stdout)
        rp_env = {
            **os.environ,
            "DEMO_ISSUER": f"{base}/t/demo",
            "DEMO_CLIENT_ID": creds["client_id"],
            "DEMO_CLIENT_SECRET": creds["client_secret"],
        }
        rp = subprocess.Popen(
            [sys.executable, "-m", "demo.rp", "--port", str(rp_port)],
            cwd=ROOT,
            env=rp_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(rp_port, rp)
            app = f"http://127.0.0.1:{rp_port}"
            assert requests.get(app + "/api/sensitive", timeout=10).status_code == 401
            shown: list[str] = []
            page.on(
                "framenavigated", lambda f: shown.append(f.url) if f == page.main_frame else None
            )

            page.goto(app + "/")
            page.get_by_role("link", name="Sign in with Stepwise").click()
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password.group(1))
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.get_by_role("button", name="Skip for now").click()  # the demo's MFA is optional
            expect(page.locator("#claim-acr .now")).to_have_text("urn:stepwise:loa:1")
            expect(page.locator("#claim-amr .now")).to_have_text("pwd")

            # The API answers with the RFC 9470 challenge; the app asks Stepwise for level 2
            # within 5 minutes. The password is recent enough: the first page shown is the
            # second factor's (its enrolment: the admin has none yet), not the password's.
            page.get_by_role("link", name="Sensitive action").click()
            expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
            assert page.locator("input[name=step]").first.get_attribute("value") == "enroll"
            page.get_by_role("button", name="Authenticator app").click()
            secret = page.locator("#totp-secret").inner_text()
            page.get_by_label("Code shown in the app").fill(oathtool(secret))
            page.get_by_role("button", name="Activate").click()
            page.get_by_role("button", name="I have saved them").click()

            expect(page.locator("#done")).to_contain_text("urn:stepwise:loa:2")
            expect(page.locator("#claim-acr .before")).to_have_text("urn:stepwise:loa:1")
            expect(page.locator("#claim-acr .now")).to_have_text("urn:stepwise:loa:2")
            expect(page.locator("#claim-amr .before")).to_have_text("pwd")
            expect(page.locator("#claim-amr .now")).to_have_text("pwd otp mfa")
            assert page.locator("#claim-auth_time .now").inner_text() != "-"
        finally:
            rp.terminate()
            rp.wait(10)
