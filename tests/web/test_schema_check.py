"""``idp serve`` refuses a database that is behind the code, and serves one that is ahead
(a newer release's expand migrations keep this one working: docs/operations/migrations.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from idp.services import Services
from idp.store.db import SchemaOutdated
from idp.store.migrate import check_schema
from tests.conftest import make_app


def _stamp(svc: Services, revision: str) -> None:
    with svc.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    services: Services = make_app(tmp_path).extensions["stepwise"]
    return services


def test_a_database_at_the_newest_revision_is_served(svc: Services) -> None:
    check_schema(svc.db.engine)  # raises when it refuses


def test_a_database_behind_the_code_is_refused(svc: Services) -> None:
    _stamp(svc, "0011")
    with pytest.raises(SchemaOutdated, match="idp init"):
        check_schema(svc.db.engine)


def test_a_database_ahead_of_the_code_is_served(
    svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    _stamp(svc, "9999_from_a_newer_release")
    check_schema(svc.db.engine)
    assert "newer than this release" in caplog.text
