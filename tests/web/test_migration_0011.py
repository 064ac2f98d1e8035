"""Migration 0011 keys every existing email address the way the code compares addresses."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from factors.contact import email_key
from idp.store.migrate import alembic_config
from testkit.servers import create_database

INSERT_TENANT = (
    "INSERT INTO tenants (slug, name, mfa_mode, mfa_scope, mfa_apply, mfa_factors, "
    "mfa_reoffer_days, totp_two_codes, webauthn_block_cloned, admins_phishing_resistant, "
    "acr_levels, audit_retention_days, created_at) "
    "VALUES ('mig', 'Mig', 'off', 'all', 'next_login', '[]', 7, false, true, false, '{}', 365, 0)"
)
INSERT_USER = (
    "INSERT INTO users (tenant_id, username, username_norm, sub, email, role, status, "
    "mfa_required, mfa_enabled, mfa_last_factor, created_at, updated_at) "
    "VALUES (:t, :u, :u, :s, :e, 'member', 'active', false, false, '', 0, 0)"
)
ADDRESSES = ["Carol@Bücher.example", "STRASSE@Example.org", "dan@xn--bcher-kva.example"]


@pytest.mark.parametrize("engine_url", ["sqlite", "postgres"])
def test_existing_addresses_get_the_codes_key(
    engine_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine_url == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = create_database(request.getfixturevalue("postgres_url"), f"t_{uuid.uuid4().hex[:12]}")
    engine = create_engine(url)
    cfg = alembic_config(engine)
    command.upgrade(cfg, "0010")
    with engine.begin() as conn:
        conn.execute(text(INSERT_TENANT))
        tenant = conn.execute(text("SELECT id FROM tenants WHERE slug = 'mig'")).scalar_one()
        for i, address in enumerate(ADDRESSES):
            user = {"t": tenant, "u": f"u{i}", "s": f"sub-mig-{i}", "e": address}
            conn.execute(text(INSERT_USER), user)
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        rows: dict[str, str] = dict(conn.execute(text("SELECT email, email_norm FROM users")).all())
    engine.dispose()
    assert rows == {a: email_key(a) for a in ADDRESSES}
    assert rows["Carol@Bücher.example"] == "carol@xn--bcher-kva.example"
