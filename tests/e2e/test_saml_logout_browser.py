"""SAML Single Logout in Chromium: an unsigned LogoutRequest shows a confirmation, and its
Sign out button leads on to the SP's SingleLogoutService (the page's CSP form-action names
it: browsers apply form-action to the redirect that follows a form submission)."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from idp.saml import logout
from idp.saml.metadata import REDIRECT
from testkit.servers import idp_env, live_idp
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD
from tests.e2e.test_saml_browser import ACS, METADATA, SP
from tests.web.test_saml_attacks import authn_request, redirect_value

pytestmark = pytest.mark.e2e
SLO = "http://127.0.0.1:9/slo"


def test_an_unsigned_logout_request_is_confirmed_then_reaches_the_sp(
    page: Page, tmp_path: Path
) -> None:
    env = idp_env(tmp_path / "instance")
    seed(env, "acme", "alice", PASSWORD)
    slo = f'<md:SingleLogoutService Binding="{REDIRECT}" Location="{SLO}"/>'
    (tmp_path / "sp.xml").write_text(
        METADATA.replace("<md:AssertionConsumerService", slo + "<md:AssertionConsumerService")
    )
    assert idp(env, "sp", "add", "acme", "--metadata", str(tmp_path / "sp.xml")).returncode == 0
    reached: list[str] = []

    def sp(route: Route) -> None:  # the SP: its ACS and its SingleLogoutService
        reached.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>SP got it</h1>")

    page.route(ACS, sp)
    page.route(SLO + "?*", sp)
    with live_idp(env, host="localhost") as base:
        sso = authn_request("_b1", acs=ACS)
        page.goto(f"{base}/t/acme/saml/sso?SAMLRequest={quote_plus(redirect_value(sso))}")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.get_by_role("heading", name="SP got it")).to_be_visible()

        request = authn_request("_b2", acs=None).replace("AuthnRequest", "LogoutRequest")
        page.goto(f"{base}/t/acme/saml/slo?SAMLRequest={quote_plus(redirect_value(request))}")
        expect(page.get_by_text(f"{SP} asks to sign you out.")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="SP got it")).to_be_visible()
        sent = parse_qs(urlsplit(reached[-1]).query)["SAMLResponse"][0]
        answer = logout.parse_response(zlib.decompress(base64.b64decode(sent), -15))
        assert answer.in_response_to == "_b2" and answer.success

        page.goto(f"{base}/t/acme/account")
        expect(page.get_by_label("Username")).to_be_visible()  # signed out: the login page
