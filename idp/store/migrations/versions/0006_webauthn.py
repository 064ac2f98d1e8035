"""WebAuthn: user handles, credential ids unique per tenant, tenant WebAuthn settings

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(
            sa.Column(
                "webauthn_block_cloned", sa.Boolean(), nullable=False, server_default=sa.true()
            )
        )
        batch_op.add_column(
            sa.Column(
                "admins_phishing_resistant",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("webauthn_handle", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_users_webauthn_handle", ["webauthn_handle"])
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.add_column(sa.Column("tenant_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("external_id", sa.String(length=1400), nullable=True))
        batch_op.create_foreign_key(
            "fk_credentials_tenant_id", "tenants", ["tenant_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_unique_constraint(
            "uq_credentials_tenant_external", ["tenant_id", "external_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.drop_constraint("uq_credentials_tenant_external", type_="unique")
        batch_op.drop_constraint("fk_credentials_tenant_id", type_="foreignkey")
        batch_op.drop_column("external_id")
        batch_op.drop_column("tenant_id")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("uq_users_webauthn_handle", type_="unique")
        batch_op.drop_column("webauthn_handle")
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("admins_phishing_resistant")
        batch_op.drop_column("webauthn_block_cloned")
