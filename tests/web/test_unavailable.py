"""Database or Redis down: /readyz fails, pages answer a clear 503, nothing half-written."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from idp import directory
from idp.store.models import AuditEvent
from testkit import servers
from tests.conftest import PASSWORD, Browser, make_app, svc


def test_redis_down_gives_503_and_writes_nothing(tmp_path: Path) -> None:
    with servers.redis_server(tmp_path) as redis_url:
        app = make_app(tmp_path, redis_url=redis_url)
        services = svc(app)
        with services.db.session() as s:
            t = directory.create_tenant(s, "acme")
            directory.create_user(
                s, services.passwords, t, "alice", "a@acme.test", "member", PASSWORD
            )
        b = Browser(app.test_client(), "acme")
        url, html = b.open_login()
        assert app.test_client().get("/readyz").status_code == 200
    with services.db.session() as s:
        events_before = s.scalar(select(func.count()).select_from(AuditEvent))
    resp = b.post(url, html, "identify", username="alice", password=PASSWORD)
    assert resp.status_code == 503 and "cannot reach its storage" in resp.get_data(as_text=True)
    assert "Traceback" not in resp.get_data(as_text=True)
    fresh = app.test_client().get("/t/acme/login")
    assert fresh.status_code == 503
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.get_json() == {
        "status": "unavailable",
        "failed": ["ephemeral"],
    }
    with services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events_before


def test_database_down_gives_503(tmp_path: Path) -> None:
    app = make_app(tmp_path)  # migrations on SQLite, then point the app at a dead PostgreSQL
    from idp.store.db import Database

    svc(app).db = Database(f"postgresql+psycopg://x@127.0.0.1:{servers.free_port()}/x")
    client = app.test_client()
    resp = client.get("/t/acme/login")
    assert resp.status_code == 503 and "try again shortly" in resp.get_data(as_text=True)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["failed"] == ["database"]
    assert client.get("/healthz").status_code == 200  # the process itself is up
    json = client.get("/t/acme/login", headers={"Accept": "application/json"})
    assert json.status_code == 503 and json.get_json()["error"] == "service_unavailable"
