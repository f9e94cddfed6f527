"""deals: the CRM's deals as the outcome analyses need them (read-only).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255


def upgrade() -> None:
    """Create the table (empty: the next deal sync fills it)."""
    op.create_table(
        "deals",
        sa.Column("connection", sa.String(_KEY), nullable=False),
        sa.Column("id", sa.String(_KEY), nullable=False),
        sa.Column("crm", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(_KEY), nullable=False),
        sa.Column("pipeline", sa.String(_KEY), nullable=True),
        sa.Column("stage", sa.String(_KEY), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lost_reason", sa.Text(), nullable=True),
        sa.Column("modstamp", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection", "id", name="pk_deals"),
    )
    op.create_index("ix_deals_connection_account_id", "deals", ["connection", "account_id"])


def downgrade() -> None:
    """Drop the table."""
    op.drop_index("ix_deals_connection_account_id", table_name="deals")
    op.drop_table("deals")
