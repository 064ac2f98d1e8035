"""The tenant console in Chromium (issue 14): an admin with MFA runs the tenant end to end,
and every console page passes axe-core with no serious or critical violation."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from testkit.servers import idp_env, live_idp
from testkit.totp import oathtool
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD
from tests.e2e.axe import violations
from tests.interop.conftest import CALLBACK, LOGGED_OUT, Live
from tests.interop.test_rp_libraries import run_node_rp
from tests.outbox import Inbox, smtp_server
from tests.web.test_saml_idp import SP_METADATA

pytestmark = pytest.mark.e2e

LINK = re.compile(r"(https?://\S+/t/acme/set-password\?token=[A-Za-z0-9_-]+)")


@contextmanager
def console_server(tmp_path: Path) -> Iterator[tuple[str, Inbox, dict[str, str]]]:
    """A live server of tenant acme (MFA off) with member alice and owner olivia, who must
    use two-step sign-in; mail goes to a real local SMTP server."""
    with smtp_server() as (smtp_port, inbox):
        env = idp_env(tmp_path / "instance", IDP_MAIL_SENDER="smtp", IDP_SMTP_HOST="127.0.0.1",
                      IDP_SMTP_PORT=str(smtp_port), IDP_SMTP_SECURITY="none",
                      IDP_MAIL_FROM="Acme <id@acme.test>")  # fmt: skip
        seed(env, "acme", "alice", PASSWORD)
        made = idp(env, "user", "create", "acme", "olivia", "--email", "olivia@acme.test",
                   "--role", "owner", "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert idp(env, "user", "require-mfa", "acme", "olivia").returncode == 0
        with live_idp(env) as base:
            yield base, inbox, {**env, "IDP_BASE_URL": base}


def sign_in_with_totp(page: Page, base: str) -> str:
    """Olivia signs in: password, then she sets up an authenticator app (MFA is required of
    her) and keeps her backup codes. Returns the TOTP secret."""
    page.goto(f"{base}/t/acme/admin/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("button", name="Authenticator app").click()
    secret = page.locator("#totp-secret").inner_text()
    page.get_by_label("Code shown in the app").fill(oathtool(secret))
    page.get_by_role("button", name="Activate").click()
    page.get_by_role("button", name="I have saved them").click()
    expect(page.get_by_role("heading", name="MFA adoption", exact=False)).to_be_visible()
    return secret


def confirm(page: Page, expected: str) -> None:
    """On a confirmation page: it says what will happen; then the admin confirms."""
    expect(page.locator("#consequences")).to_contain_text(expected)
    page.locator("#confirm button[name=confirm]").click()


def test_an_admin_runs_the_tenant_from_the_console(
    page: Page, chromium: Browser, tmp_path: Path
) -> None:
    with console_server(tmp_path) as (base, inbox, _env):
        sign_in_with_totp(page, base)

        # A new user without a password gets an emailed set-password link.
        page.get_by_role("link", name="Users", exact=True).click()
        page.get_by_role("link", name="Add a user").click()
        page.get_by_label("Username").fill("carol")
        page.get_by_label("Email").fill("carol@acme.test")
        page.get_by_role("button", name="Add the user").click()
        expect(page.get_by_role("status")).to_contain_text(
            "a set-password link was emailed to carol@acme.test"
        )
        mail = inbox.wait("carol@acme.test", timeout=10)
        link = LINK.search(mail["text"])
        assert link, mail["text"]
        carol = chromium.new_context().new_page()
        carol.goto(link.group(1))
        carol.get_by_label("New password", exact=True).fill(PASSWORD)
        carol.get_by_label("New password again").fill(PASSWORD)
        carol.get_by_role("button", name="Set password").click()
        expect(carol.get_by_role("status")).to_be_visible()
        carol.context.close()

        # Disable, then enable again, each behind its confirmation page.
        page.goto(f"{base}/t/acme/admin/users/carol")
        expect(page.locator("#password-state")).to_have_text("Set")
        page.get_by_role("link", name="Disable carol").click()
        confirm(page, "carol")
        expect(page.locator("#status-now")).to_have_text("disabled")
        page.get_by_role("link", name="Enable carol").click()
        confirm(page, "carol")
        expect(page.locator("#status-now")).to_have_text("active")

        # Reset MFA (alice's, who has none yet: the page still says what happens) and confirm.
        page.goto(f"{base}/t/acme/admin/users/alice")
        page.get_by_role("link", name="Reset alice's two-step sign-in").click()
        confirm(page, "alice")
        expect(page.get_by_role("status")).to_contain_text("MFA reset for alice")

        # An OIDC client made in the console, used by a real relying party (openid-client).
        page.get_by_role("link", name="Applications").click()
        page.get_by_role("link", name="Add a client").click()
        page.get_by_label("Name", exact=True).fill("Payroll")
        page.get_by_label("Redirect URIs, one per line", exact=True).fill(CALLBACK)
        page.get_by_label("Post-logout redirect URIs, one per line").fill(LOGGED_OUT)
        page.get_by_role("button", name="Add the client").click()
        client_id = page.locator("#client-id").inner_text()
        secret = page.locator("#client-secret").inner_text()
        live = Live(base, f"{base}/t/acme", client_id, secret)
        result, _browser = run_node_rp(live, "openid-client", username="carol")
        claims, userinfo = result["claims"], result["userinfo"]
        assert claims["iss"] == live.issuer and claims["aud"] in (client_id, [client_id])
        assert claims["amr"] == ["pwd"] and userinfo["sub"] == claims["sub"]
        assert (userinfo["preferred_username"], userinfo["email"]) == ("carol", "carol@acme.test")

        # A SAML service provider added from a metadata file.
        sp_file = tmp_path / "sp-metadata.xml"
        sp_file.write_text(SP_METADATA)
        page.goto(f"{base}/t/acme/admin/applications")
        page.get_by_role("link", name="Add a service provider").click()
        page.get_by_label("Or a metadata file").set_input_files(str(sp_file))
        page.get_by_role("button", name="Add the service provider").click()
        expect(page.get_by_role("status")).to_contain_text("https://console.example/sp")

        # The audit log shows each action with the acting admin; its CSV holds the same rows.
        page.get_by_role("link", name="Audit log").click()
        page.get_by_label('Actor (admin username, API client id, or "operator")').fill("olivia")
        page.get_by_role("button", name="Filter", exact=True).click()
        with page.expect_download() as download:
            page.locator("#export-csv").click()
        rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    by_olivia = [(r["event"], r["subject"]) for r in rows]
    assert {r["actor"] for r in rows} == {"olivia"}, rows
    for action in [
        ("user.created", "carol"),
        ("user.disabled", "carol"),
        ("user.enabled", "carol"),
        ("mfa.reset", "alice"),
    ]:
        assert action in by_olivia, (action, by_olivia)
    events = {r["event"] for r in rows}
    assert {"client.created", "saml.sp_added"} <= events, events
    created = next(r for r in rows if r["event"] == "client.created")
    assert client_id in created["details"] and secret not in json.dumps(rows)


def test_every_console_page_passes_axe(page: Page, tmp_path: Path) -> None:
    with console_server(tmp_path) as (base, _inbox, env):
        made = idp(env, "client", "create", "acme", "--name", "RP", "--redirect-uri", CALLBACK,
                   "--json")  # fmt: skip
        client_id = json.loads(made.stdout)["client_id"]
        sp_file = tmp_path / "sp.xml"
        sp_file.write_text(SP_METADATA)
        assert idp(env, "sp", "add", "acme", "--metadata", str(sp_file)).returncode == 0
        sign_in_with_totp(page, base)
        admin = f"{base}/t/acme/admin"
        page.goto(f"{admin}/applications")
        sp_page = page.locator("th a[href*='/admin/sps/']").first.get_attribute("href")
        assert sp_page
        pages = [
            "/", "/users", "/users?q=a&role=member&status=active&mfa=none", "/new-user",
            "/users/alice", "/users/alice/disable", "/users/alice/delete",
            "/users/alice/role?role=member", "/users/alice/sign-out", "/users/alice/reset-mfa",
            "/users/olivia",
            "/applications", "/clients/new", f"/clients/{client_id}",
            f"/clients/{client_id}/secret", f"/clients/{client_id}/delete",
            "/sps/new", sp_page.removeprefix("/t/acme/admin"),
            sp_page.removeprefix("/t/acme/admin") + "/metadata",
            sp_page.removeprefix("/t/acme/admin") + "/delete",
            "/policy", "/assurance", "/keys", "/keys/oidc/rotate?alg=RS256&grace_hours=24",
            "/keys/saml/publish", "/audit", "/audit?result=failure&event=login.",
            "/audit?from=not-a-date",
        ]  # fmt: skip
        found = {}
        for path in pages:
            answer = page.goto(admin + path)
            assert answer and answer.status == (400 if "not-a-date" in path else 200), path
            assert page.locator("h1").count() == 1, path
            found[path] = violations(page)
        assert {p: v for p, v in found.items() if v} == {}

        # The check can fail: an unlabelled input on the same page is a critical violation.
        page.goto(f"{admin}/users")
        page.evaluate("document.querySelector('main').append(document.createElement('input'))")
        assert "label" in {v["id"] for v in violations(page)}
