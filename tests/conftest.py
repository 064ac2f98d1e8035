"""Fixtures shared by every test: real servers are started once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.app import create_app
from idp.clock import SettableClock
from idp.services import Services
from idp.store.migrate import upgrade
from testkit import servers
from testkit.html import csrf_of
from tests.outbox import Outboxes, sms_gateway, smtp_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with servers.postgres_server() as url:
        yield url


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "env": "development",
        "instance_path": str(tmp_path / "instance"),
        "argon2_memory_kib": 8192,
        "argon2_time_cost": 1,
        "TESTING": True,
        "clock": SettableClock(),
    }
    config.update(overrides)
    app = create_app(config)
    upgrade(svc(app).db.engine)
    return app


def svc(app: Flask) -> Services:
    services: Services = app.extensions["stepwise"]
    return services


def later(app: Flask, seconds: float) -> None:
    """Let ``seconds`` pass for the app (its settable clock) instead of sleeping."""
    clock = svc(app).clock
    assert isinstance(clock, SettableClock)
    clock.advance(seconds)


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    """The app; tests marked ``delivery`` get one that sends mail and SMS to ``outboxes``,
    whose reads first deliver the app's outbox with the real worker (tests.outbox)."""
    if request.node.get_closest_marker("delivery"):
        boxes: Outboxes = request.getfixturevalue("outboxes")
        app = make_app(tmp_path, **delivery_settings(boxes))
        boxes.attach(svc(app))
        return app
    return make_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


PASSWORD = "correct horse battery"


@pytest.fixture
def tenant(app: Flask) -> str:
    """Tenant ``acme`` with users alice (member) and olivia (owner), password PASSWORD."""
    from idp import directory

    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        directory.create_user(s, s_.passwords, t, "alice", "alice@acme.test", "member", PASSWORD)
        directory.create_user(s, s_.passwords, t, "olivia", "olivia@acme.test", "owner", PASSWORD)
    return "acme"


class Browser:
    """Drives the login pages through the Flask test client, as a browser would."""

    def __init__(self, client: FlaskClient, tenant: str) -> None:
        self.client, self.tenant = client, tenant

    def open_login(self, **params: str) -> tuple[str, str]:
        resp = self.client.get(f"/t/{self.tenant}/login", query_string=params)
        assert resp.status_code == 302, resp.status_code
        page = self.client.get(resp.headers["Location"])
        assert page.status_code == 200
        return resp.headers["Location"], page.get_data(as_text=True)

    def post(self, url: str, html: str, step: str, **fields: str) -> Any:
        return self.client.post(url, data={"csrf_token": csrf_of(html), "step": step, **fields})

    def login(self, username: str, password: str, **params: str) -> Any:
        url, html = self.open_login(**params)
        return self.post(url, html, "identify", username=username, password=password)


@pytest.fixture
def browser(client: FlaskClient, tenant: str) -> Browser:
    return Browser(client, tenant)


@pytest.fixture
def mb(client: FlaskClient, tenant: str) -> Any:
    """A browser that answers whichever login step is shown (tests.mfa_helpers.MfaBrowser)."""
    from tests.mfa_helpers import MfaBrowser

    return MfaBrowser(client, tenant)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for the real ``idp`` command: schema ready, tenant ``acme`` with its keys
    (made by the command's code in this process: tests.cli_support)."""
    from tests.cli_support import idp

    env = servers.idp_env(tmp_path / "instance")
    for args in (["init"], ["tenant", "create", "acme"]):
        result = idp(env, *args)
        assert result.returncode == 0, result.stderr
    return env


def services_for(env: dict[str, str]) -> Services:
    """The services of an app over the same instance as the ``idp`` command in ``env``."""
    return svc(create_app({"env": "development", "instance_path": env["IDP_INSTANCE_PATH"]}))


@pytest.fixture
def outboxes() -> Iterator[Outboxes]:
    """A real SMTP server and a real SMS-webhook server, started for one test."""
    with smtp_server() as (smtp_port, mail), sms_gateway() as (sms_url, sms):
        yield Outboxes(mail, sms, smtp_port, sms_url)


def delivery_settings(boxes: Outboxes) -> dict[str, Any]:
    """Settings that send mail and SMS to the local servers of ``boxes``."""
    return {
        "mail_sender": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": boxes.smtp_port,
        "smtp_security": "none",
        "mail_from": "Acme <id@acme.test>",
        "sms_sender": "webhook",
        "sms_webhook_url": boxes.sms_url,
        "sms_webhook_token": "gateway-token",
    }
