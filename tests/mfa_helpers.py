"""Helpers for the MFA tests: a browser that answers the login steps through the Flask test
client (TOTP codes from ``testkit.totp.oathtool``), and page readers."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from testkit.html import SECRET, alert_of, csrf_of
from testkit.totp import oathtool
from tests.conftest import Browser, svc
from tests.outbox import Inbox

STEP = re.compile(r'name="step" value="([a-z_]+)"')
BACKUP = re.compile(r"<li><code>([a-z0-9-]+)</code></li>")


def step_of(html: str) -> str | None:
    match = STEP.search(html)
    return match.group(1) if match else None


def set_user(app: Flask, username: str, **fields: Any) -> None:
    """Set columns of a user of tenant ``acme`` directly (the state a test starts from)."""
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        for name, value in fields.items():
            setattr(user, name, value)


def logout(client: FlaskClient) -> None:
    """Sign out of tenant ``acme`` with the account page's form."""
    page = client.get("/t/acme/account").get_data(as_text=True)
    client.post("/t/acme/logout", data={"csrf_token": csrf_of(page)})


def set_policy(app: Flask, tenant: str = "acme", **fields: Any) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, tenant)
        for name, value in fields.items():
            setattr(t, name, value)


class MfaBrowser(Browser):
    """A browser that remembers the current page and answers whatever step it shows."""

    def __init__(self, client: FlaskClient, tenant: str) -> None:
        super().__init__(client, tenant)
        self.url, self.html, self.status = "", "", 0
        self.seen: list[str] = []
        self.totp_at = 0.0  # when enroll_totp computed its code

    def _page(self, resp: Any) -> Any:
        while resp.status_code == 302 and "/login" in resp.headers["Location"]:
            resp = self.client.get(resp.headers["Location"])
        self.status = resp.status_code
        if resp.status_code == 302:
            self.html, self.done_at = "", resp.headers["Location"]
        else:
            self.html = resp.get_data(as_text=True)
            step = step_of(self.html)
            if step and (not self.seen or self.seen[-1] != step):
                self.seen.append(step)
        return resp

    def start(self, **params: str) -> str | None:
        self.url, html = self.open_login(**params)
        self.html, self.seen = html, [s for s in [step_of(html)] if s]
        return self.step

    @property
    def step(self) -> str | None:
        return step_of(self.html) if self.html else None

    @property
    def alert(self) -> str | None:
        return alert_of(self.html)

    def submit(self, **fields: str) -> Any:
        step = self.step
        assert step, f"no form on the page (status {self.status})"
        resp = self.client.post(
            self.url, data={"csrf_token": csrf_of(self.html), "step": step, **fields}
        )
        return self._page(resp)

    def password(self, username: str, password: str, **params: str) -> str | None:
        self.start(**params)
        self.submit(username=username, password=password, action="continue")
        return self.step

    @property
    def finished(self) -> bool:
        return self.status == 302 and not self.html

    def enroll_totp(self) -> str:
        """From the enrol/offer page: set up TOTP with oathtool, keep the codes; the secret."""
        self.submit(factor="totp")
        assert self.step == "enroll_totp", self.step
        secret = SECRET.search(self.html)
        assert secret
        self.totp_at = time.time()  # the time step of the enrolling code (see its replay)
        self.submit(code=oathtool(secret.group(1), self.totp_at), action="verify")
        return secret.group(1)

    def backup_codes(self) -> list[str]:
        assert self.step == "backup_codes", self.step
        codes = BACKUP.findall(self.html)
        self.submit(confirm="saved", action="continue")
        return codes

    def enroll_contact(self, kind: str, value: str, inbox: Inbox, to: str) -> None:
        """From the enrol/offer page: add a phone (``sms``) or address (``email``) by its code."""
        self.submit(factor=kind)
        assert self.step == f"enroll_{kind}", self.step
        before = len(inbox.to(to))
        self.submit(**{"phone" if kind == "sms" else "email": value, "action": "resend"})
        assert self.alert and self.alert.startswith("We sent a code to"), self.alert
        self.submit(code=inbox.code(to, before), action="verify")

    @property
    def flow_id(self) -> str:
        return self.url.rsplit("flow=", 1)[1]


def age_flow_challenge(app: Flask, flow_id: str, seconds: int) -> None:
    """Make the code sent in a flow ``seconds`` older (as if that much time had passed)."""
    store = svc(app).store
    raw = store.get(f"flow:{flow_id}")
    assert raw is not None
    data = json.loads(raw)
    data["sent_code"]["s"] -= seconds
    store.set(f"flow:{flow_id}", json.dumps(data).encode(), 600)
