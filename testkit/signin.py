"""A browser made of ``requests``: it follows the IdP's redirects and answers its login pages
(DESIGN.md "Login pages") with a password and, when asked, a TOTP app's codes."""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from html import unescape
from urllib.parse import urljoin

import requests

from testkit.html import FORM, HIDDEN, SECRET
from testkit.totp import oathtool


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
    username: str,
    password: str,
    totp: TotpUser | None = None,
    seen: list[str] | None = None,
) -> str:
    """Act as the user's browser: follow the IdP's redirects and answer its HTML login forms
    (DESIGN.md "Login pages") until it redirects to ``stop_at``; return that URL."""
    steps = signing_in(browser, url, stop_at, username, password, totp, seen)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return str(done.value)


def signing_in(
    browser: requests.Session,
    url: str,
    stop_at: str,
    username: str,
    password: str,
    totp: TotpUser | None = None,
    seen: list[str] | None = None,
) -> Generator[str, None, str]:
    """:func:`sign_in` one step at a time: yields the name of each login step after its page
    came and before it is answered (a test can act there, e.g. kill a node); returns the URL
    redirected to at ``stop_at``."""
    seen = [] if seen is None else seen
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
        yield seen[-1]
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
