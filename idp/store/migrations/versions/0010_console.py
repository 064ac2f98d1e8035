"""Console: audit result and API actor, audit retention, sign-in sessions, one-time links

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(
            sa.Column("audit_retention_days", sa.Integer(), nullable=False, server_default="365")
        )
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("last_login_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.add_column(
            sa.Column("result", sa.String(16), nullable=False, server_default="success")
        )
        batch_op.add_column(sa.Column("actor_client", sa.String(64), nullable=True))
    op.create_index("ix_audit_tenant_subject", "audit_events", ["tenant_id", "subject_id"])
    op.create_index("ix_audit_tenant_event", "audit_events", ["tenant_id", "event"])
    op.create_table(
        "user_sessions",
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
        sa.Column("sid", sa.String(64), nullable=False, unique=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(400), nullable=False, server_default=""),
        sa.Column("level", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "user_links",
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
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("user_links")
    op.drop_table("user_sessions")
    op.drop_index("ix_audit_tenant_event", "audit_events")
    op.drop_index("ix_audit_tenant_subject", "audit_events")
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_column("actor_client")
        batch_op.drop_column("result")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("last_login_at")
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("audit_retention_days")
