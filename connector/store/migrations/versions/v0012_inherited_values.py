"""inherited_values: parents' segment and tier as the CRM holds them after their last run.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255


def upgrade() -> None:
    """Create the table, empty: the next account run fills it, until then parents are read."""
    op.create_table(
        "inherited_values",
        sa.Column("connection", sa.String(_KEY), nullable=False),
        sa.Column("object", sa.String(_KEY), nullable=False),
        sa.Column("record_id", sa.String(_KEY), nullable=False),
        sa.Column("field_values", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection", "object", "record_id", name="pk_inherited_values"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("inherited_values")
