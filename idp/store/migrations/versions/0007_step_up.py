"""Step-up: tenant acr tables, client default acr values

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(sa.Column("acr_levels", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("clients") as batch_op:
        batch_op.add_column(
            sa.Column("default_acr_values", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_column("default_acr_values")
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("acr_levels")
