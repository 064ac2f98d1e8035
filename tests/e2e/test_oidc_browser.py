"""OpenID Connect sign-in in a real browser: the login form's POST ends in a redirect (or a
form_post) to the application's origin, which the CSP ``form-action`` must allow."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import Page, expect

from testkit.servers import free_port, idp_env, live_idp
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD
from tests.web.oidc_helpers import pkce

pytestmark = pytest.mark.e2e


class _Callback(BaseHTTPRequestHandler):
    received: list[str] = []

    def _answer(self, text: str) -> None:
        self.received.append(text)
        body = f"<!doctype html><title>RP</title><pre id=got>{text}</pre>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(self.path.partition("?")[2])

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers["Content-Length"])).decode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rp_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/cb"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode", ["query", "form_post"])
def test_browser_sign_in_returns_a_code_to_the_application(
    page: Page, tmp_path: Path, rp_server: str, mode: str
) -> None:
    env = idp_env(tmp_path / "instance")
    seed(env, "acme", "alice", PASSWORD)
    out = idp(env, "client", "create", "acme", "--name", "RP", "--redirect-uri", rp_server,
              "--json")  # fmt: skip
    creds = json.loads(out.stdout)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    verifier, challenge = pkce()
    with live_idp(env) as base:
        query = urlencode({
            "response_type": "code", "client_id": creds["client_id"], "redirect_uri": rp_server,
            "scope": "openid email", "state": "b-1", "nonce": "n", "response_mode": mode,
            "code_challenge": challenge, "code_challenge_method": "S256"})  # fmt: skip
        page.goto(f"{base}/t/acme/authorize?{query}")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.locator("#got")).to_contain_text("code=")
        assert page.url.startswith(rp_server)
        got = dict(p.split("=", 1) for p in page.locator("#got").inner_text().split("&"))
        assert got["state"] == "b-1"
        tokens = requests.post(f"{base}/t/acme/token", auth=(creds["client_id"],
                               creds["client_secret"]), timeout=10, data={
            "grant_type": "authorization_code", "code": requests.utils.unquote(got["code"]),
            "redirect_uri": rp_server, "code_verifier": verifier})  # fmt: skip
        assert tokens.status_code == 200 and "id_token" in tokens.json()
    assert not [e for e in errors if "Content Security Policy" in e], errors
