"""Driving the SAML login in a requests.Session as a browser would, up to the auto-submitting
form that carries the SAMLResponse to the SP's ACS."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin

import requests

from testkit.html import FORM, HIDDEN
from testkit.signin import TotpUser, answer_form
from tests.conftest import PASSWORD

FORM_POST = re.compile(r'<form method="post" action="([^"]+)" id="form-post">')


def saml_login(
    browser: requests.Session,
    url: str,
    username: str = "alice",
    data: dict[str, str] | None = None,
    totp: TotpUser | None = None,
    seen: list[str] | None = None,
) -> tuple[str, dict[str, str]]:
    """GET ``url`` (or POST ``data`` to it), answer the login forms; return the ACS URL and
    the fields (SAMLResponse, RelayState) of the form posted to it."""
    method = "POST" if data is not None else "GET"
    for _ in range(20):
        resp = browser.request(method, url, data=data, allow_redirects=False, timeout=10)
        if resp.is_redirect:
            url, method, data = urljoin(url, resp.headers["Location"]), "GET", None
            continue
        assert resp.status_code == 200, (resp.status_code, resp.text[:500])
        posted = FORM_POST.search(resp.text)
        if posted:
            return unescape(posted.group(1)), {k: unescape(v) for k, v in HIDDEN.findall(resp.text)}
        method, url, data = "POST", *answer_form(resp.text, url, username, PASSWORD, totp, seen)
    raise AssertionError("too many steps")


def confirm_sign_out(
    browser: requests.Session, url: str, page: requests.Response
) -> requests.Response:
    """Answer "<SP> asks to sign you out" (shown for an unsigned LogoutRequest at ``url``)
    with Sign out; return the answer (the logout going on), not followed."""
    assert page.status_code == 200 and "asks to sign you out" in page.text, page.status_code
    action = FORM.search(page.text)
    assert action, "no form on the sign-out page"
    fields = {k: unescape(v) for k, v in HIDDEN.findall(page.text)}
    return browser.post(
        urljoin(url, unescape(action.group(1))),
        data={**fields, "action": "logout"},
        allow_redirects=False,
        timeout=10,
    )
