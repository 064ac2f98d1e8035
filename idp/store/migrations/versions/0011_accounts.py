"""Accounts: profiles, email verification, sign-up and remembered-browser settings

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 21:10:00
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(
            sa.Column("signup_enabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("signup_domains", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column("login_by_email", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("password_min_alone", sa.Integer(), nullable=False, server_default="15")
        )
        batch_op.add_column(
            sa.Column("remember_days", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("users") as batch_op:
        for name, size in (("display_name", 200), ("given_name", 100), ("family_name", 100),
                           ("locale", 35), ("email_norm", 254)):  # fmt: skip
            batch_op.add_column(sa.Column(name, sa.String(size), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("contact_phone_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("password_changed_at", sa.BigInteger(), nullable=True))
    _fill_email_norm()
    op.create_index("ix_users_email_norm", "users", ["email_norm"])
    with op.batch_alter_table("oauth_grants") as batch_op:
        batch_op.add_column(
            sa.Column("remembered", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("user_links") as batch_op:
        batch_op.add_column(sa.Column("target", sa.String(254), nullable=True))
    op.create_table(
        "remembered_browsers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("user_agent", sa.String(400), nullable=False, server_default=""),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("verified_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
    )


def _email_key(address: str) -> str:
    """factors.contact.email_key as of this revision (a migration keeps its own copy)."""
    local, at, domain = unicodedata.normalize("NFC", address.strip()).rpartition("@")
    if not at:
        return domain.casefold()
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        ascii_domain = domain
    return f"{local.casefold()}@{ascii_domain.lower()}"


def _fill_email_norm() -> None:
    """Every existing address keyed the way the code compares addresses."""
    conn = op.get_bind()
    users = sa.table("users", sa.column("id", sa.Integer()), sa.column("email", sa.String()),
                     sa.column("email_norm", sa.String()))  # fmt: skip
    for uid, email in conn.execute(sa.select(users.c.id, users.c.email)).all():
        conn.execute(
            users.update().where(users.c.id == uid).values(email_norm=_email_key(email or ""))
        )


def downgrade() -> None:
    op.drop_table("remembered_browsers")
    with op.batch_alter_table("user_links") as batch_op:
        batch_op.drop_column("target")
    with op.batch_alter_table("oauth_grants") as batch_op:
        batch_op.drop_column("remembered")
    op.drop_index("ix_users_email_norm", "users")
    with op.batch_alter_table("users") as batch_op:
        for name in ("password_changed_at", "contact_phone_id", "email_verified", "email_norm",
                     "locale", "family_name", "given_name", "display_name"):  # fmt: skip
            batch_op.drop_column(name)
    with op.batch_alter_table("tenants") as batch_op:
        for name in ("remember_days", "password_min_alone", "login_by_email", "signup_domains",
                     "signup_enabled"):  # fmt: skip
            batch_op.drop_column(name)
