"""Helpers for the password change and reset tests: pages read as a person reads them."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from testkit.html import alert_of, csrf_of
from tests.conftest import svc

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
