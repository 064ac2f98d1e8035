"""Audit events reach the log stream only once their transaction commits."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from idp import directory
from tests.conftest import make_app, svc


class Boom(Exception):
    pass


def test_an_audit_line_is_logged_at_commit_and_never_for_a_rollback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    services = svc(make_app(tmp_path))
    caplog.set_level(logging.INFO, logger="idp.audit")
    with pytest.raises(Boom), services.db.session() as s:
        tenant = directory.create_tenant(s, "acme", "Acme")
        directory.audit(s, tenant, "probe.rolled_back")
        raise Boom
    assert not [r for r in caplog.records if getattr(r, "event", "") == "probe.rolled_back"]
    with services.db.session() as s:
        tenant = directory.create_tenant(s, "acme", "Acme")
        directory.audit(s, tenant, "probe.committed")
        assert not [r for r in caplog.records if getattr(r, "event", "") == "probe.committed"]
    committed = [r for r in caplog.records if getattr(r, "event", "") == "probe.committed"]
    assert len(committed) == 1 and committed[0].tenant == "acme"
