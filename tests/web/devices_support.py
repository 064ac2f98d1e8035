"""Helpers for the sessions-and-devices tests: apps over the in-process store or Redis,
browsers with their own user agent and address, and the account page's devices section."""

from __future__ import annotations

import json
import re
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.ephemeral.redis_store import RedisStore
from idp.store.models import AuditEvent, RememberedBrowser
from testkit.html import csrf_of
from tests.conftest import PASSWORD, Browser, delivery_settings, make_app, svc
from tests.mfa_helpers import MfaBrowser
from tests.outbox import Outboxes
from tests.web.test_login import session_id

DEVICES = "/t/acme/account/devices"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
# Where Redis-backed apps of these tests keep their keys (other tests use 0 to 2).
REDIS_DB = 6
# Both stores: ``@BOTH_STORES`` on a test runs it with the in-process store and with Redis.
BOTH_STORES = pytest.mark.parametrize("app", ["memory", "redis"], indirect=True)


def app_for(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    """The app of one test: the in-process store, or Redis when parametrized ``"redis"``
    (an emptied database of its own); tests marked ``delivery`` send mail to ``outboxes``."""
    extra: dict[str, Any] = {}
    boxes: Outboxes | None = None
    if request.node.get_closest_marker("delivery"):
        boxes = request.getfixturevalue("outboxes")
        extra.update(delivery_settings(boxes))
    store = getattr(request, "param", "memory")
    if store == "redis":
        url = request.getfixturevalue("redis_url").replace("/0", f"/{REDIS_DB}")
        redis.Redis.from_url(url).flushdb()
        extra["redis_url"] = url
    app = make_app(tmp_path, **extra)
    assert isinstance(svc(app).store, RedisStore) == (store == "redis")
    if boxes is not None:
        boxes.attach(svc(app))  # reads deliver the outbox first (tests.outbox)
    return app


def browser(app: Flask, user_agent: str, ip: str) -> FlaskClient:
    """A browser of its own (cookies, user agent, address) on ``app``."""
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": ip})
    return client


def sign_in(client: FlaskClient, username: str = "alice") -> FlaskClient:
    """Sign ``username`` in with the password alone (no second factor set up)."""
    resp = Browser(client, "acme").login(username, PASSWORD)
    assert resp.status_code == 302 and resp.headers["Location"] == "/t/acme/account", resp
    return client


def signed_in(client: FlaskClient) -> bool:
    """Whether the browser's session still works: the account page opens, not the login."""
    resp = client.get("/t/acme/account")
    if resp.status_code == 302:
        assert "/t/acme/login" in resp.headers["Location"], resp.headers["Location"]
        return False
    assert resp.status_code == 200, resp.status_code
    return True


def page(client: FlaskClient) -> str:
    resp = client.get(DEVICES)
    assert resp.status_code == 200, resp.status_code
    return resp.get_data(as_text=True)


def post(client: FlaskClient, path: str, **form: str) -> Any:
    """Post one of the devices page's forms (``path``: what follows /account/devices/)."""
    return client.post(f"{DEVICES}/{path}", data={"csrf_token": csrf_of(page(client)), **form})


def rows(html: str, table: str) -> list[str]:
    """The body rows of the page's table ``table`` (its id), as HTML."""
    body = html.split(f'<table id="{table}">')[1].split("</tbody>")[0].split("<tbody>")[1]
    return [r for r in body.split("</tr>") if "<td" in r]


def row_of(html: str, table: str, text: str) -> str:
    found = [r for r in rows(html, table) if text in r]
    assert len(found) == 1, (text, found)
    return found[0]


def session_row_id(html: str, device: str) -> str:
    """The ``session`` value of the sign-out button in the row of ``device``."""
    match = re.search(r'name="session" value="(\d+)"', row_of(html, "sessions", device))
    assert match
    return match.group(1)


def age_authentication(app: Flask, client: FlaskClient, seconds: int) -> None:
    """Make every factor of the browser's session ``seconds`` older: re-authentication is due."""
    key = f"session:{session_id(client)}"
    data = json.loads(svc(app).store.get(key) or b"{}")
    for factor in data["auth"]["factors"]:
        factor["at"] -= seconds
    svc(app).store.set(key, json.dumps(data).encode(), 600)


def reauthenticate(client: FlaskClient, resp: Any) -> str:
    """Answer the re-authentication flow ``resp`` leads to (the password); where it returns."""
    location = resp.headers["Location"]
    assert "/t/acme/login?flow=" in location, location
    mb = MfaBrowser(client, "acme")
    mb.url = location
    mb._page(client.get(location))
    assert mb.step == "password", mb.step
    mb.submit(password=PASSWORD, action="continue")
    assert mb.finished
    return str(mb.done_at)


def remember(app: Flask, username: str, user_agent: str, now: int, days: int = 30) -> int:
    """A remembered-browser record of ``username`` (as ticking "Don't ask again" leaves one)."""
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        row = RememberedBrowser(tenant_id=user.tenant_id, user_id=user.id,
                                digest=sha256(f"{username}{user_agent}{now}".encode()).hexdigest(),
                                user_agent=user_agent, ip="198.51.100.4", created_at=now,
                                verified_at=now, last_used_at=now,
                                expires_at=now + days * 86400)  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def events(app: Flask, name: str) -> list[dict[str, Any]]:
    """The details of every audit event ``name``, oldest first."""
    with svc(app).db.session() as s:
        found = s.scalars(
            select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)
        )
        return [dict(e.details) for e in found]
