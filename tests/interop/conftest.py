"""A live Stepwise (``idp serve``) with tenant ``acme``, user alice and registered clients,
for real relying-party libraries to talk to over HTTP."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests import servers
from tests.conftest import PASSWORD
from tests.mfa_helpers import SECRET, oathtool

CALLBACK = "http://127.0.0.1:9/cb"  # never contacted: the test reads the redirect itself
LOGGED_OUT = "http://127.0.0.1:9/bye"
FORM = re.compile(r'<form method="post" action="([^"]+)"')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


@dataclass(frozen=True)
class Live:
    base: str
    issuer: str
    client_id: str
    client_secret: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = servers.idp_env(tmp_path_factory.mktemp("interop") / "instance")
    servers.seed(env, "acme", "alice", PASSWORD)
    servers.add_user(env, "acme", "bob", PASSWORD)
    assert servers.idp(env, "user", "require-mfa", "acme", "bob").returncode == 0
    with servers.live_idp(env) as base:
        out = servers.idp(
            {**env, "IDP_BASE_URL": base}, "client", "create", "acme", "--name", "Interop RP",
            "--redirect-uri", CALLBACK, "--post-logout-uri", LOGGED_OUT, "--json",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        creds = json.loads(out.stdout)
        yield Live(base, f"{base}/t/acme", creds["client_id"], creds["client_secret"])


@dataclass
class TotpUser:
    """Answers the second-factor steps with an authenticator app (codes from oathtool)."""

    secret: str = ""

    def answer(self, step: str, html: str) -> dict[str, str]:
        if step == "enroll":
            return {"factor": "totp"}
        if step == "enroll_totp":
            found = SECRET.search(html)
            assert found, html[:300]
            self.secret = found.group(1)
            return {"code": oathtool(self.secret), "action": "verify"}
        if step == "verify_totp":  # the next step's code: the current one may be spent
            return {"code": oathtool(self.secret, time.time() + 30), "action": "verify"}
        return {"action": "continue"}  # backup_codes (its "confirm" field is hidden)


def sign_in(
    browser: requests.Session,
    url: str,
    stop_at: str,
    username: str = "alice",
    password: str = PASSWORD,
    totp: TotpUser | None = None,
    seen: list[str] | None = None,
) -> str:
    """Act as the user's browser: follow the IdP's redirects and answer its HTML login forms
    (DESIGN.md "Login pages") until it redirects to ``stop_at``; return that URL."""
    method, data = "GET", None
    for _ in range(20):
        resp = browser.request(method, url, data=data, allow_redirects=False, timeout=10)
        if resp.is_redirect:
            url = urljoin(url, resp.headers["Location"])
            if url.startswith(stop_at):
                return url
            method, data = "GET", None
            continue
        assert resp.status_code == 200, (resp.status_code, resp.text[:500])
        method, url, data = "POST", *answer_form(resp.text, url, username, password, totp, seen)
    raise AssertionError("too many steps")


def answer_form(
    html: str, url: str, username: str, password: str, totp: TotpUser | None, seen: list[str] | None
) -> tuple[str, dict[str, str]]:
    """The login step on this page answered: where to post, and the fields."""
    form = FORM.search(html)
    assert form, html[:500]
    fields = {k: unescape(v) for k, v in HIDDEN.findall(html)}
    step = fields.get("step", "")
    if seen is not None:
        seen.append(step)
    if step in ("identify", "password"):
        fields.setdefault("username", username)
        fields.update(password=password)
    else:
        assert totp is not None, f"unexpected step {step!r}"
        fields.update(totp.answer(step, html))
    return urljoin(url, unescape(form.group(1))), fields


NODE_DIR = Path(__file__).parent / "node"
