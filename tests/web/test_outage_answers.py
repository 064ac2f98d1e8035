"""A backend that goes down in the middle of a request still gets the outage answer (503),
never a bare 500 (issue 16's fault tests found both cases under load).

Each test adds a probe route to its own app that takes the real backend down at the exact
point where the race happens under load, so the case runs every time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, g, session
from sqlalchemy import text

from idp import directory
from idp.ephemeral import EphemeralUnavailable
from idp.services import services
from testkit.pg_control import PgServer, restartable_postgres
from testkit.redis_ha import RedisNode, persistent_redis
from tests.conftest import PASSWORD, Browser, make_app, svc

OUTAGE_PAGE = "Stepwise cannot reach its storage right now"


def _seed(app: Flask) -> None:
    with svc(app).db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        directory.create_user(
            s, svc(app).passwords, t, "alice", "alice@acme.test", "member", PASSWORD
        )


@pytest.fixture
def redis_node(tmp_path: Path) -> Iterator[RedisNode]:
    with persistent_redis(tmp_path / "redis") as node:
        yield node


def test_redis_lost_after_the_view_ran_is_a_503(tmp_path: Path, redis_node: RedisNode) -> None:
    """The session is saved after the view: when Redis goes away in between, the save fails,
    and the error answer must neither try to save again nor turn into a 500."""
    # As in production: an exception that escapes the response goes to the error handlers.
    app = make_app(tmp_path, redis_url=redis_node.url, PROPAGATE_EXCEPTIONS=False)

    @app.get("/probe/session-write")
    def probe() -> str:
        session["probe"] = 1  # the save after this view is the first write to Redis
        redis_node.stop()
        return "the view ran"

    resp = app.test_client().get("/probe/session-write")
    assert resp.status_code == 503, resp.get_data(as_text=True)[:300]
    assert OUTAGE_PAGE in resp.get_data(as_text=True)
    assert "Set-Cookie" not in resp.headers  # the lost save signed nobody in
    redis_node.start()
    assert app.test_client().get("/healthz").status_code == 200


@pytest.fixture(scope="module")
def postgres() -> Iterator[PgServer]:
    with restartable_postgres() as pg:
        yield pg


def test_database_lost_mid_request_for_a_signed_in_user_is_a_503(
    tmp_path: Path, postgres: PgServer
) -> None:
    """The tenant was read, then PostgreSQL went down: the outage page must not read the
    signed-in user from the database that is down (the base template shows who is signed
    in)."""
    app = make_app(
        tmp_path, database_url=postgres.create_database("outage_page"), PROPAGATE_EXCEPTIONS=False
    )
    _seed(app)

    @app.get("/t/<slug:tenant>/probe/database")
    def probe(tenant: str) -> str:
        with services().db.session() as s:
            g.tenant = directory.get_tenant(s, tenant)
        postgres.stop("fast")
        with services().db.session() as s:
            s.execute(text("SELECT 1"))
        return "unreachable"

    client = app.test_client()
    Browser(client, "acme").login("alice", PASSWORD)
    assert client.get("/t/acme/account").status_code == 200  # signed in
    svc(app).db.engine.dispose()  # no pooled connection survives the stop
    try:
        resp = client.get("/t/acme/probe/database")
    finally:
        postgres.start()
    assert resp.status_code == 503, resp.get_data(as_text=True)[:300]
    assert OUTAGE_PAGE in resp.get_data(as_text=True)
    assert client.get("/t/acme/account").status_code == 200  # back, and still signed in
    svc(app).db.engine.dispose()


def test_a_failed_request_keeps_nothing_its_view_put_in_the_session(tmp_path: Path) -> None:
    """A view that changed the session (e.g. a sign-in) and then failed on storage answers
    503 without saving the change: no sign-in that the database never recorded."""
    app = make_app(tmp_path, PROPAGATE_EXCEPTIONS=False)

    @app.get("/probe/fail-after-session-change")
    def probe() -> str:
        session["auth"] = {"user_id": 1}
        raise EphemeralUnavailable("down after the change")

    client = app.test_client()
    resp = client.get("/probe/fail-after-session-change")
    assert resp.status_code == 503
    assert "Set-Cookie" not in resp.headers
