"""Helpers for the sign-up tests: a browser that walks the three sign-up pages through the
Flask test client, and the tenant settings that open sign-up."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from testkit.html import alert_of, csrf_of
from tests.conftest import svc

NEW_PASSWORD = "plum orchard lantern 42"  # 23 characters, on no list


def open_signup(app: Flask, tenant: str = "acme", **fields: Any) -> None:
    """Turn sign-up on for ``tenant`` (and set any other tenant columns given)."""
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, tenant)
        t.signup_enabled = True
        for name, value in fields.items():
            setattr(t, name, value)


class SignUp:
    """One browser going through /signup, /signup/code and /signup/password."""

    def __init__(self, client: FlaskClient, tenant: str = "acme") -> None:
        self.client, self.base = client, f"/t/{tenant}/signup"
        self.html, self.status = "", 0
        self.location = ""

    def _read(self, resp: Any) -> Any:
        self.status = resp.status_code
        self.location = resp.headers.get("Location", "")
        self.html = resp.get_data(as_text=True)
        return resp

    @property
    def alert(self) -> str | None:
        return alert_of(self.html)

    def _post(self, path: str, **data: str) -> Any:
        page = self.client.get(self.base + path)
        assert page.status_code == 200, (path, page.status_code)
        form = {"csrf_token": csrf_of(page.get_data(as_text=True)), **data}
        return self._read(self.client.post(self.base + path, data=form))

    def start(self, email: str, username: str, flow: str = "") -> Any:
        """Page 1; on success the answer is a 303 to the code page."""
        page = self.client.get(self.base, query_string={"flow": flow} if flow else None)
        assert page.status_code == 200, page.status_code
        form = {"csrf_token": csrf_of(page.get_data(as_text=True)), "email": email,
                "username": username, "flow": flow}  # fmt: skip
        return self._read(self.client.post(self.base, data=form))

    def code_page(self) -> Any:
        return self._read(self.client.get(self.base + "/code"))

    def code(self, code: str) -> Any:
        return self._post("/code", code=code, action="verify")

    def resend(self) -> Any:
        return self._post("/code", action="resend")

    def password(
        self, password: str = NEW_PASSWORD, confirmation: str | None = None, username: str = ""
    ) -> Any:
        again = password if confirmation is None else confirmation
        return self._post("/password", password=password, username=username, confirmation=again)

    def through(self, email: str, username: str, code_of: Any, password: str = NEW_PASSWORD,
                flow: str = "") -> Any:  # fmt: skip
        """All three pages; ``code_of(email)`` reads the code from the mailbox. Returns the
        last answer (a 303 to the login flow when the account was made)."""
        self.start(email, username, flow)
        assert self.status == 303, (self.status, self.alert)
        self.code(code_of(email))
        assert self.status == 303, (self.status, self.alert)
        return self.password(password)
