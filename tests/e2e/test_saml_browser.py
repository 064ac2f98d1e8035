"""SAML in Chromium: an SP on another site posts an AuthnRequest (HTTP-POST binding) to a
Stepwise where the user is already signed in; SameSite=Lax keeps the cookie off that POST,
yet single sign-on works and the session survives."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from testkit.servers import idp_env, live_idp
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e
SP, ACS = "https://sp.example/saml", "http://127.0.0.1:9/acs"
METADATA = f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
 entityID="{SP}"><md:SPSSODescriptor
 protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
 <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
  Location="{ACS}" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"""


def test_post_binding_sso_uses_the_existing_session(page: Page, tmp_path: Path) -> None:
    env = idp_env(tmp_path / "instance")
    seed(env, "acme", "alice", PASSWORD)
    (tmp_path / "sp.xml").write_text(METADATA)
    assert idp(env, "sp", "add", "acme", "--metadata", str(tmp_path / "sp.xml")).returncode == 0
    received: list[str] = []

    def acs(route: Route) -> None:  # the SP's ACS: record what the browser posts to it
        received.append(route.request.post_data or "")
        route.fulfill(status=200, content_type="text/html", body="<h1>SP got it</h1>")

    page.route(ACS, acs)
    with live_idp(env, host="localhost") as base:
        page.route(
            "https://sp.example/start",
            lambda route: route.fulfill(status=200, content_type="text/html", body=sp_page(base)),
        )
        page.goto(f"{base}/t/acme/login")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.locator("#level")).to_have_text("1")

        page.goto("https://sp.example/start")  # another site, posting to Stepwise
        page.get_by_role("button", name="Sign in with SAML").click()
        expect(page.get_by_role("heading", name="SP got it")).to_be_visible()
        assert received and "SAMLResponse=" in received[0]  # no login page on the way

        page.goto(f"{base}/t/acme/account")
        expect(page.locator("#username")).to_have_text("alice")  # the session survived


def sp_page(base: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    xml = (
        f'<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_e2e" Version="2.0" '
        f'IssueInstant="{now}"><saml:Issuer>{SP}</saml:Issuer></samlp:AuthnRequest>'
    )
    value = base64.b64encode(xml.encode()).decode()
    return (
        f'<form method="post" action="{base}/t/acme/saml/sso">'
        f'<input type="hidden" name="SAMLRequest" value="{value}">'
        f'<button type="submit">Sign in with SAML</button></form>'
    )
