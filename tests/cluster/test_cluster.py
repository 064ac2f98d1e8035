"""Two Stepwise nodes (two workers each) behind Debian's haproxy, round-robin with no sticky
sessions, sharing one PostgreSQL and one Redis (testkit.cluster). Each flow below is driven
through the proxy, one request at a time, so consecutive steps land on different nodes:
OIDC code + PKCE with TOTP and a refresh, SAML with a step-up asked by the SP, WebAuthn in
Chromium. Then a node is killed (SIGKILL, its whole process group) in the middle of a sign-in,
the sign-in completes on the other node, and the restarted node serves again.

haproxy balances every HTTP request independently and its health checks do not move the
rotation, so with one client at a time the answering node alternates strictly: each test
asserts that no two consecutive requests of its flow were answered by the same node.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from testkit.cluster import Node
from testkit.signin import TotpUser, sign_in, signing_in
from testkit.webauthn_browser import virtual_authenticator
from tests.cluster import saml_sp
from tests.cluster.conftest import CALLBACK, Deployment
from tests.cluster.trail import Trail
from tests.conftest import PASSWORD
from tests.interop.saml_helpers import saml_login

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

NODES = {"node-a", "node-b"}
SLOW = 30_000  # ms: Playwright's waits, for a machine three times slower than this one
LOA2, LOA3 = "urn:stepwise:loa:2", "urn:stepwise:loa:3"


class Rp:
    """authlib's OAuth2Session as the relying party (PKCE S256, client_secret_basic), with
    its token and userinfo calls recorded in ``trail``."""

    def __init__(self, dep: Deployment, trail: Trail) -> None:
        from authlib.integrations.requests_client import OAuth2Session

        self.dep, self.trail = dep, trail
        self.meta = (
            trail.follow(requests.Session())
            .get(dep.issuer + "/.well-known/openid-configuration", timeout=10)
            .json()
        )
        self.session = OAuth2Session(
            dep.client_id, dep.client_secret, scope="openid profile email",
            redirect_uri=CALLBACK, code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )  # fmt: skip
        trail.follow(self.session)

    def authorize_url(self) -> tuple[str, str, str]:
        """The authorization request; with its code_verifier and nonce."""
        from authlib.common.security import generate_token

        verifier, nonce = generate_token(48), generate_token(20)
        url, _ = self.session.create_authorization_url(
            self.meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        return url, verifier, nonce

    def tokens(self, callback: str, verifier: str, nonce: str) -> tuple[dict[str, Any], Any]:
        """The code exchanged, and the id_token's claims, checked against the JWKS."""
        from authlib.jose import JsonWebKey, jwt
        from authlib.oidc.core import CodeIDToken

        token = self.session.fetch_token(
            self.meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
        jwks = self.trail.follow(requests.Session()).get(self.meta["jwks_uri"], timeout=10)
        claims = jwt.decode(
            token["id_token"], JsonWebKey.import_key_set(jwks.json()), claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": self.dep.issuer},
                            "aud": {"essential": True, "value": self.dep.client_id}},
            claims_params={"nonce": nonce, "access_token": token["access_token"]},
        )  # fmt: skip
        claims.validate()
        return dict(token), claims


def test_oidc_code_pkce_with_totp_then_refresh_crosses_nodes_at_every_step(
    deployment: Deployment,
) -> None:
    trail = Trail()
    rp = Rp(deployment, trail)
    url, verifier, nonce = rp.authorize_url()
    browser, seen = trail.follow(requests.Session()), list[str]()
    callback = sign_in(browser, url, CALLBACK, "olga", PASSWORD, TotpUser(), seen)
    assert seen == ["identify", "enroll", "enroll_totp", "backup_codes"]
    token, claims = rp.tokens(callback, verifier, nonce)
    assert claims["acr"] == LOA2 and claims["amr"] == ["pwd", "otp", "mfa"]
    info = rp.session.get(rp.meta["userinfo_endpoint"], timeout=10)
    assert info.status_code == 200 and info.json()["preferred_username"] == "olga"
    refreshed = rp.session.refresh_token(rp.meta["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["access_token"] != token["access_token"]

    # The spent code and the rotated refresh token are refused by the node that did not
    # spend them: single-use markers are shared.
    code = parse_qs(urlsplit(callback).query)["code"][0]
    auth = (deployment.client_id, deployment.client_secret)
    replays = [
        {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
         "code_verifier": verifier},
        {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    ]  # fmt: skip
    for form in replays:
        again = browser.post(rp.meta["token_endpoint"], data=form, auth=auth, timeout=10)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert [hop.path.rsplit("/", 1)[-1] for hop in trail.hops[-2:]] == ["token", "token"]
    assert trail.hops[-2].node != trail.hops[-1].node
    trail.assert_crosses_nodes(NODES)


def test_saml_login_then_step_up_asked_by_the_sp_crosses_nodes(deployment: Deployment) -> None:
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    base, trail = deployment.cluster.base_url, Trail()
    browser, totp = trail.follow(requests.Session()), TotpUser()
    meta = browser.get(f"{base}/t/acme/saml/metadata", timeout=10)
    assert meta.status_code == 200
    cert = saml_sp.idp_certificate(meta.text)

    def login(contexts: list[str] | None) -> tuple[OneLogin_Saml2_Auth, list[str]]:
        settings = saml_sp.settings(base, cert, contexts)
        request = OneLogin_Saml2_Auth(saml_sp.request_data(), settings)
        seen: list[str] = []
        acs, fields = saml_login(browser, request.login(), "sam", totp=totp, seen=seen)
        assert acs == saml_sp.ACS
        sp = OneLogin_Saml2_Auth(saml_sp.request_data(fields), settings)
        sp.process_response(request_id=request.get_last_request_id())
        assert sp.get_errors() == [], sp.get_last_error_reason()
        return sp, seen

    plain, seen = login(None)
    assert seen == ["identify"]
    assert plain.get_last_authn_contexts() == [saml_sp.PASSWORD_CONTEXT]
    # REFEDS MFA asked by the SP in the same browser: only the missing second factor runs
    # (its enrolment: sam has none), on whichever node, never the password again.
    strong, seen = login([saml_sp.REFEDS_MFA])
    assert seen == ["enroll", "enroll_totp", "backup_codes"]
    assert strong.get_last_authn_contexts() == [saml_sp.REFEDS_MFA]
    assert strong.get_nameid() == plain.get_nameid()
    trail.assert_crosses_nodes(NODES)


def webauthn_in_chromium(base: str, trail: Trail) -> list[str]:
    """Enrol a security key after the password, sign out, sign in with password and key;
    returns the browser's console errors."""
    from tests.e2e.conftest import ARGS, CHROMIUM

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = chromium.new_context().new_page()
            page.set_default_timeout(SLOW)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            virtual_authenticator(page)
            trail.watch(page)

            def password_login() -> None:
                page.goto(f"{base}/t/acme/login")
                page.get_by_label("Username").fill("walt")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in", exact=True).click()

            password_login()
            page.get_by_role("button", name="Security key").click()
            page.get_by_label("Name it, to tell your keys apart").fill("Blue key")
            page.get_by_role("button", name="Register").click()
            saved = page.get_by_role("heading", name="Save your backup codes")
            expect(saved).to_be_visible(timeout=SLOW)
            page.get_by_role("button", name="I have saved them").click()
            expect(page.locator("#level")).to_have_text("3", timeout=SLOW)
            page.get_by_role("button", name="Sign out", exact=True).click()
            out = page.get_by_role("heading", name="You have signed out")
            expect(out).to_be_visible(timeout=SLOW)

            password_login()
            key = page.get_by_role("heading", name="Use your security key or passkey")
            expect(key).to_be_visible(timeout=SLOW)
            page.get_by_role("button", name="Continue").click()
            expect(page.locator("#level")).to_have_text("3", timeout=SLOW)
            expect(page.locator("#amr")).to_have_text("pwd hwk user pin mfa", timeout=SLOW)
            return errors
        finally:
            chromium.close()


@pytest.mark.e2e
def test_webauthn_in_chromium_crosses_nodes(deployment: Deployment) -> None:
    trail = Trail()
    # Its own thread: Playwright's sync API refuses to start in a thread where another
    # sync Playwright is open (the e2e tests' session-wide Chromium, in the same worker).
    with ThreadPoolExecutor(1) as thread:
        errors = thread.submit(webauthn_in_chromium, deployment.cluster.base_url, trail).result()
    assert errors == []
    # Password, factor choice, key registration, backup codes, sign-out; password, key.
    assert [hop.method for hop in trail.hops].count("POST") == 7, trail.report()
    trail.assert_crosses_nodes(NODES)


def test_a_node_killed_mid_sign_in_the_sign_in_completes_on_the_other(
    deployment: Deployment,
) -> None:
    cluster, trail = deployment.cluster, Trail()
    rp = Rp(deployment, trail)
    url, verifier, nonce = rp.authorize_url()
    browser = trail.follow(requests.Session())
    steps = signing_in(browser, url, CALLBACK, "kim", PASSWORD, TotpUser())
    assert next(steps) == "identify"
    assert next(steps) == "enroll"  # the password was accepted; the second factor is next
    victim = cluster.node(trail.hops[-1].node)  # the node that showed the enrolment page
    (survivor,) = [n for n in cluster.nodes if n is not victim]
    assert len(victim.worker_pids()) == 2
    before = len(trail.hops)
    victim.kill(signal.SIGKILL)  # granian's main process, its workers: the whole group
    assert not victim.running and victim.worker_pids() == []
    try:
        token = finish_on_the_survivor(rp, steps, (verifier, nonce), trail, before)
        assert {hop.node for hop in trail.hops[before:]} == {survivor.name}, trail.report()
        cluster.wait_out_of_rotation(victim)
    finally:
        if not victim.running:
            victim.start()
    # Back: the restarted node serves the user whose sign-in it never saw finish.
    cluster.wait_in_rotation(victim)
    nodes = set()
    for _ in range(2):
        info = rp.session.get(rp.meta["userinfo_endpoint"], timeout=10)
        assert info.status_code == 200 and info.json()["preferred_username"] == "kim"
        nodes.add(info.headers["X-Stepwise-Node"])
    assert nodes == NODES
    again = rp.session.refresh_token(rp.meta["token_endpoint"])
    assert again["refresh_token"] != token["refresh_token"]


def finish_on_the_survivor(
    rp: Rp,
    steps: Generator[str, None, str],
    pkce: tuple[str, str],
    trail: Trail,
    before: int,
) -> dict[str, Any]:
    """The rest of the sign-in, the code exchange and a refresh, through the proxy with one
    node dead: whatever the rotation says, haproxy retries a refused connection on the
    other node, so every step succeeds there. Returns the refreshed tokens."""
    answered = []
    try:
        while True:
            answered.append(next(steps))
    except StopIteration as done:
        callback = str(done.value)
    assert answered == ["enroll_totp", "backup_codes"]
    token, claims = rp.tokens(callback, *pkce)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    refreshed = rp.session.refresh_token(rp.meta["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert len(trail.hops) - before >= 6, trail.report()  # 4 steps, token, JWKS, refresh
    Trail(trail.hops[:before]).assert_crosses_nodes(NODES)  # before the kill: both, in turn
    return dict(refreshed)


def test_configuration_changes_apply_at_once_on_both_nodes(deployment: Deployment) -> None:
    """Each node caches tenants, clients and keys in memory (idp.config_cache). A change
    made anywhere (here the real ``idp`` command, a third process) applies from the very
    next request on every node: an "immediate" MFA policy sends a signed-in level-1 session
    to enrolment, a rotated client secret stops working, a rotated key is published."""
    dep = deployment
    nodes = [dep.cluster.node(name) for name in sorted(NODES)]
    for node in nodes:
        node.wait_healthy()
    browser = requests.Session()
    account = f"{dep.issuer}/account"
    sign_in(browser, account, account, "sam", PASSWORD)
    made = dep.cluster.idp("client", "create", "acme", "--name", "Cached", "--redirect-uri",
                           CALLBACK, "--json")  # fmt: skip
    rp = json.loads(made.stdout)
    grant = {"grant_type": "client_credentials"}

    def at(node: Node) -> str:
        return f"http://localhost:{node.port}"  # the proxy's host name: the cookie goes too

    def warm() -> dict[str, set[str]]:
        """Fill both nodes' caches: the account page, a token grant and the JWKS on each."""
        kids = {}
        for node in nodes:
            page = browser.get(f"{at(node)}/t/acme/account", allow_redirects=False, timeout=10)
            assert page.status_code == 200, (node.name, page.status_code)
            token = requests.post(f"{at(node)}/t/acme/token", data=grant, timeout=10,
                                  auth=(rp["client_id"], rp["client_secret"]))  # fmt: skip
            assert token.status_code == 200, (node.name, token.text)
            jwks = requests.get(f"{at(node)}/t/acme/jwks", timeout=10).json()
            kids[node.name] = {k["kid"] for k in jwks["keys"]}
        return kids

    before = warm()
    dep.cluster.idp("tenant", "set-mfa", "acme", "--mode", "required", "--apply", "immediate")
    try:
        rotated = json.loads(
            dep.cluster.idp("client", "rotate-secret", "acme", rp["client_id"], "--json").stdout
        )
        new_kid = dep.cluster.idp("keys", "rotate", "acme").stdout.split()[3]
        for node in nodes:  # no pause: the next request on each node
            page = browser.get(f"{at(node)}/t/acme/account", allow_redirects=False, timeout=10)
            assert page.status_code == 302, (node.name, page.status_code)
            assert "/t/acme/login?flow=" in page.headers["Location"], node.name
            old = requests.post(f"{at(node)}/t/acme/token", data=grant, timeout=10,
                                auth=(rp["client_id"], rp["client_secret"]))  # fmt: skip
            assert old.status_code == 401 and old.json()["error"] == "invalid_client", node.name
            new = requests.post(f"{at(node)}/t/acme/token", data=grant, timeout=10,
                                auth=(rp["client_id"], rotated["client_secret"]))  # fmt: skip
            assert new.status_code == 200, (node.name, new.text)
            jwks = requests.get(f"{at(node)}/t/acme/jwks", timeout=10).json()
            assert {k["kid"] for k in jwks["keys"]} == before[node.name] | {new_kid}, node.name
    finally:
        dep.cluster.idp("tenant", "set-mfa", "acme", "--mode", "off", "--apply", "next-login")
