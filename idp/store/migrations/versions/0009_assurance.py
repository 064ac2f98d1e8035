"""Assurance: users.sessions_revoked_at, clients.refresh_idle_ttl

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("sessions_revoked_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("clients") as batch_op:
        batch_op.add_column(
            sa.Column(
                "refresh_idle_ttl", sa.Integer(), nullable=False, server_default=str(14 * 86400)
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_column("refresh_idle_ttl")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("sessions_revoked_at")
