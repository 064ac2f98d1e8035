"""Helpers for the password change and reset tests: pages read as a person reads them."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from testkit.html import alert_of, csrf_of
from tests.conftest import svc
from tests.mfa_helpers import step_of
from tests.outbox import Inbox

RESET_LINK = re.compile(r"(https?://\S+/t/acme/reset-password\?token=[A-Za-z0-9_-]+)")


def user_row(app: Flask, username: str) -> Any:
    """A detached copy of the user's columns (read in its own transaction)."""
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        s.expunge(user)
        return user


def change(client: FlaskClient, current: str, new: str, again: str | None = None) -> Any:
    """Post the account page's password form (read first for its CSRF token)."""
    page = client.get("/t/acme/account/password")
    assert page.status_code == 200, page.status_code
    data = {"csrf_token": csrf_of(page.get_data(as_text=True)), "current": current,
            "password": new, "confirmation": new if again is None else again}  # fmt: skip
    return client.post("/t/acme/account/password", data=data)


def alert(resp: Any) -> str | None:
    return alert_of(resp.get_data(as_text=True))


def reaches_account(client: FlaskClient) -> bool:
    """Whether this client's session still opens the account page (not sent to sign in)."""
    return client.get("/t/acme/account").status_code == 200


class Resetter:
    """A browser going through "Forgot your password?" with the Flask test client."""

    def __init__(self, client: FlaskClient, inbox: Inbox) -> None:
        self.client, self.inbox = client, inbox
        self.html, self.status = "", 0

    def ask(self, entry: str, ip: str = "127.0.0.1") -> Any:
        env = {"REMOTE_ADDR": ip}
        page = self.client.get("/t/acme/forgot-password", environ_base=env)
        assert page.status_code == 200
        data = {"csrf_token": csrf_of(page.get_data(as_text=True)), "username": entry}
        return self.client.post("/t/acme/forgot-password", data=data, environ_base=env)

    def link(self, to: str, nth: int = 0) -> str:
        """The reset link of the ``nth`` reset mail to ``to`` (other mail is passed over)."""
        seen, i = 0, 0
        while True:
            found = RESET_LINK.search(self.inbox.wait(to, i)["text"])
            i += 1
            if found and seen == nth:
                return found.group(1).split("/t/acme/", 1)[1]
            seen += bool(found)

    def _keep(self, resp: Any) -> Any:
        while resp.status_code == 302 and "/reset-password" in resp.headers["Location"]:
            resp = self.client.get(resp.headers["Location"])
        self.status, self.html = resp.status_code, resp.get_data(as_text=True)
        return resp

    def open(self, link: str) -> Any:
        """Open the emailed link and press Continue: the reset flow's first page."""
        page = self.client.get(f"/t/acme/{link}")
        if page.status_code != 200:
            return self._keep(page)
        html = page.get_data(as_text=True)
        token = link.rsplit("token=", 1)[1]
        resp = self.client.post("/t/acme/reset-password",
                                data={"csrf_token": csrf_of(html), "token": token})  # fmt: skip
        return self._keep(resp)

    @property
    def step(self) -> str | None:
        return step_of(self.html)

    @property
    def alert(self) -> str | None:
        return alert_of(self.html)

    def submit(self, **fields: str) -> Any:
        """Answer the second-factor step shown."""
        data = {"csrf_token": csrf_of(self.html), "step": self.step or "", **fields}
        return self._keep(self.client.post("/t/acme/reset-password/flow", data=data))

    def new_password(self, password: str, again: str | None = None) -> Any:
        data = {"csrf_token": csrf_of(self.html), "password": password,
                "confirmation": password if again is None else again}  # fmt: skip
        return self._keep(self.client.post("/t/acme/reset-password/new", data=data))
