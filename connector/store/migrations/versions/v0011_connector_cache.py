"""connector_cache: tokens (encrypted) and describe results kept between processes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255


def upgrade() -> None:
    """Create the table (empty: the next run fills it)."""
    op.create_table(
        "connector_cache",
        sa.Column("key", sa.String(_KEY), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("stamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_connector_cache"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("connector_cache")
