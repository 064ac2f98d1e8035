"""MFA: tenant policy settings, per-user MFA state, credential counters, backup codes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(
            sa.Column(
                "mfa_apply", sa.String(length=16), nullable=False, server_default="next_login"
            )
        )
        batch_op.add_column(
            sa.Column(
                "mfa_factors",
                sa.JSON(),
                nullable=False,
                server_default='["totp", "webauthn", "sms", "email"]',
            )
        )
        batch_op.add_column(
            sa.Column("mfa_reoffer_days", sa.Integer(), nullable=False, server_default="7")
        )
        batch_op.add_column(
            sa.Column("totp_two_codes", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("mfa_skipped_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("mfa_reset_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("mfa_last_factor", sa.String(length=32), nullable=False, server_default="")
        )
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.add_column(sa.Column("counter", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("clients") as batch_op:
        batch_op.add_column(
            sa.Column("admin_api", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "backup_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_backup_codes_user_id", "backup_codes", ["user_id"])


def downgrade() -> None:
    op.drop_table("backup_codes")
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_column("admin_api")
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.drop_column("counter")
    with op.batch_alter_table("users") as batch_op:
        for name in ("mfa_last_factor", "mfa_reset_at", "mfa_skipped_at"):
            batch_op.drop_column(name)
    with op.batch_alter_table("tenants") as batch_op:
        for name in ("totp_two_codes", "mfa_reoffer_days", "mfa_factors", "mfa_apply"):
            batch_op.drop_column(name)
