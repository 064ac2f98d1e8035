"""Redis restarts and failovers are blips (docs/operations/redis.md): with AOF on, a user signed
in before a clean restart or a crash still is afterwards, and an authorization code issued
before it still works; while Redis is down every answer is a prompt 503; Stepwise follows a
Sentinel failover to the promoted replica; ``rediss://`` verifies the server against the CA."""

from __future__ import annotations

import logging
import secrets
import signal
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
from flask import Flask
from prometheus_client import REGISTRY

from idp import directory
from idp.ephemeral import EphemeralUnavailable
from idp.ephemeral.redis_store import RedisStore
from idp.settings import SettingsError, load
from testkit import servers
from testkit.redis_ha import (
    RedisNode,
    SentinelGroup,
    persistent_redis,
    sentinel_group,
    tls_redis,
    write_ca,
)
from testkit.signin import sign_in
from tests.conftest import PASSWORD, Browser, make_app, svc
from tests.web.oidc_helpers import pkce, register

# A request's bound while Redis is down: a refused connection answers at once and
# IDP_REDIS_TIMEOUT (1 s here) bounds a Redis that does not answer. Far above both, so a hang
# fails the test without the test timing anything.
BOUND = 15
REDIRECT = "http://127.0.0.1/cb"
STORAGE_PAGE = "Stepwise cannot reach its storage right now"


@pytest.fixture(scope="module")
def aof_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisNode, str, str]]:
    """A live node (2 workers) on a redis-server with AOF that the tests stop and start; user
    alice and a public client. Yields the Redis node, the base URL and the client id."""
    tmp = tmp_path_factory.mktemp("redis-aof")
    # Seeded in-process (the CLI's start-ups cost seconds), into the instance the node serves.
    seeding = app_with_alice(tmp)
    client_id = register(seeding, public=True, redirect_uris=[REDIRECT]).client_id
    svc(seeding).db.engine.dispose()
    with persistent_redis(tmp) as node:
        env = servers.idp_env(tmp / "instance", IDP_REDIS_URL=node.url, IDP_REDIS_TIMEOUT="1")
        with servers.live_idp(env, workers=2) as base:
            yield node, base, client_id


def authorization_code(browser: requests.Session, base: str, client_id: str) -> dict[str, str]:
    """A code for the signed-in browser; returns the token request that redeems it."""
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    r = browser.get(f"{base}/t/acme/authorize", params=params, timeout=BOUND, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(REDIRECT), r.text[:300]
    code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    return {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }


@pytest.mark.parametrize("crash", [False, True], ids=["clean-shutdown", "crash"])
def test_a_redis_restart_signs_nobody_out(
    aof_node: tuple[RedisNode, str, str], crash: bool
) -> None:
    node, base, client_id = aof_node
    browser = requests.Session()
    sign_in(browser, f"{base}/t/acme/account", f"{base}/t/acme/account", "alice", PASSWORD)
    redeem = authorization_code(browser, base, client_id)
    if crash:
        node.fsync()  # what everysec does within a second: the crash then loses nothing
        node.stop(signal.SIGKILL)
    else:
        node.stop(signal.SIGTERM)
    try:
        page = browser.get(f"{base}/t/acme/account", timeout=BOUND, allow_redirects=False)
        token = requests.post(f"{base}/t/acme/token", data=redeem, timeout=BOUND)
        ready = requests.get(f"{base}/readyz", timeout=BOUND)
    finally:
        node.start()
    assert page.status_code == 503 and STORAGE_PAGE in page.text
    assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
    assert ready.status_code == 503 and ready.json()["failed"] == ["ephemeral"]
    # Back, without restarting Stepwise: both workers' pooled connections died with Redis.
    answers = [browser.get(f"{base}/t/acme/account", timeout=BOUND) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 6
    assert "alice" in answers[-1].text and answers[-1].url == f"{base}/t/acme/account"
    # The code outlived the restart, and the refused attempt did not spend it.
    token = requests.post(f"{base}/t/acme/token", data=redeem, timeout=BOUND)
    assert token.status_code == 200 and "access_token" in token.json()
    again = requests.post(f"{base}/t/acme/token", data=redeem, timeout=BOUND)
    assert again.json()["error"] == "invalid_grant"  # still single-use
    # New writes: another browser signs in.
    other = requests.Session()
    sign_in(other, f"{base}/t/acme/account", f"{base}/t/acme/account", "alice", PASSWORD)
    assert other.get(f"{base}/t/acme/account", timeout=BOUND).status_code == 200


def app_with_alice(tmp_path: Path, **settings: Any) -> Flask:
    app = make_app(tmp_path, redis_timeout=1, **settings)
    services = svc(app)
    with services.db.session() as s:
        t = directory.create_tenant(s, "acme")
        directory.create_user(s, services.passwords, t, "alice", "a@acme.test", "member", PASSWORD)
    return app


def signed_in(app: Flask) -> Browser:
    b = Browser(app.test_client(), "acme")
    assert b.login("alice", PASSWORD).headers["Location"] == "/t/acme/account"
    assert b.client.get("/t/acme/account").status_code == 200
    return b


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """Sentinels and nodes over TLS: the failover test covers Sentinel and rediss:// at once."""
    with sentinel_group(tmp_path_factory.mktemp("sentinel"), tls=True) as g:
        yield g


def test_stepwise_follows_a_sentinel_failover(group: SentinelGroup, tmp_path: Path) -> None:
    # The URL gives TLS (to the sentinels and the nodes) and the database number, and would
    # give the password; the sentinels name the host.
    app = app_with_alice(
        tmp_path,
        redis_sentinels=group.sentinels,
        redis_url="rediss://ignored:1/2",
        redis_tls_ca=str(group.tls_ca),
    )
    b = signed_in(app)
    group.wait_replicated()
    old = group.kill_master()
    new = group.wait_for_failover(old)
    page = b.client.get("/t/acme/account")
    assert page.status_code == 200 and "alice" in page.get_data(as_text=True)
    # A new write lands on the promoted replica, in database 2.
    before = _keys(new, 2)
    signed_in(app)
    assert _keys(new, 2) > before > 0


def _keys(node: RedisNode, db: int) -> int:
    with redis.Redis.from_url(
        node.url.replace("/0", f"/{db}"), ssl_ca_certs=str(node.tls_ca)
    ) as raw:
        return sum(1 for _ in raw.scan_iter(RedisStore.PREFIX + "*"))


def test_rediss_verifies_the_server_against_the_ca(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tls_redis(tmp_path / "redis") as (url, ca):
        app = app_with_alice(tmp_path / "good", redis_url=url, redis_tls_ca=str(ca))
        signed_in(app)
        # A valid CA file that did not sign the server's certificate: a node still starts
        # (Redis may be the one being fixed), answers 503 and says why in its log.
        other_ca, _, _ = write_ca(tmp_path / "other")
        wrong = make_app(tmp_path / "wrong", redis_url=url, redis_tls_ca=str(other_ca))
        with caplog.at_level(logging.WARNING, logger="idp.ephemeral"):
            ready = wrong.test_client().get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["failed"] == ["ephemeral"]
        assert "certificate verify failed" in caplog.text


def test_settings_that_cannot_work_are_refused_at_start(tmp_path: Path) -> None:
    port = servers.free_port()
    cases = {
        "IDP_REDIS_TLS_CA": {"redis_url": f"rediss://localhost:{port}/0", "redis_tls_ca": "/no"},
        "is not rediss://": {
            "redis_url": f"redis://localhost:{port}/0",
            "redis_tls_ca": __file__,
        },
        "IDP_REDIS_SENTINELS": {"redis_sentinels": "127.0.0.1"},
        "redis:// or rediss://": {"redis_url": f"http://localhost:{port}/0"},
    }
    for said, overrides in cases.items():
        with pytest.raises(SettingsError, match=said):
            RedisStore.for_settings(load(overrides))


def test_store_errors_are_counted_by_operation() -> None:
    store = RedisStore.for_settings(
        load({"redis_url": f"redis://127.0.0.1:{servers.free_port()}/0", "redis_timeout": 1})
    )
    name, labels = "stepwise_ephemeral_store_errors_total", {"operation": "take"}
    before = REGISTRY.get_sample_value(name, labels) or 0.0
    with pytest.raises(EphemeralUnavailable):
        store.take("test:x")
    assert REGISTRY.get_sample_value(name, labels) == before + 1


class HungRedis(socketserver.ThreadingTCPServer):
    """A stand-in for a Redis that takes commands and never answers (``hang``), or drops the
    connection on receipt (``drop``). It answers the connection's set-up (CLIENT SETINFO,
    SELECT, PING) and counts every other command it receives."""

    daemon_threads = allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _HungHandler)
        self.mode, self.received = mode, 0


class _HungHandler(socketserver.StreamRequestHandler):
    server: HungRedis

    def handle(self) -> None:
        while line := self.rfile.readline():
            if not line.startswith(b"*"):
                continue
            args = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                args.append(self.rfile.read(size + 2)[:-2])
            if args[0].upper() in (b"CLIENT", b"SELECT", b"PING", b"HELLO"):
                self.wfile.write(b"+OK\r\n")
                continue
            self.server.received += 1
            if self.server.mode == "drop":
                return  # closes the connection: the client sees it break mid-command
            # hang: read on; the client gives up after its timeout and closes


@pytest.mark.parametrize(("mode", "sent"), [("hang", 1), ("drop", 2)])
def test_a_timeout_is_never_retried_a_broken_connection_once(mode: str, sent: int) -> None:
    """A command that timed out may have run: sending it again could count a throttle's attempt
    twice or lose a single-use code. A connection that broke is retried once, at once."""
    with HungRedis(mode) as fake:
        threading.Thread(target=fake.serve_forever, args=(0.05,), daemon=True).start()
        url = f"redis://127.0.0.1:{fake.server_address[1]}/0"
        store = RedisStore.for_settings(load({"redis_url": url, "redis_timeout": 1}))
        for call in (lambda: store.incr("test:throttle", 60), lambda: store.take("test:code")):
            fake.received = 0
            with pytest.raises(EphemeralUnavailable):
                call()
            assert fake.received == sent
        fake.shutdown()
