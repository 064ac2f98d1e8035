"""SAML 2.0: tenant signing certificates, service providers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saml_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_saml_keys_tenant_id", "saml_keys", ["tenant_id"])
    op.create_table(
        "saml_sps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("acs", sa.JSON(), nullable=False),
        sa.Column("slo", sa.JSON(), nullable=False),
        sa.Column("signing_certs", sa.JSON(), nullable=False),
        sa.Column("encryption_cert", sa.Text(), nullable=True),
        sa.Column("authn_requests_signed", sa.Boolean(), nullable=False),
        sa.Column("want_assertions_signed", sa.Boolean(), nullable=False),
        sa.Column("sign_response", sa.Boolean(), nullable=False),
        sa.Column("encrypt_assertion", sa.Boolean(), nullable=False),
        sa.Column("nameid_format", sa.String(length=200), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("min_level", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "entity_id", name="uq_saml_sps_entity"),
    )
    op.create_index("ix_saml_sps_tenant_id", "saml_sps", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("saml_sps")
    op.drop_table("saml_keys")
