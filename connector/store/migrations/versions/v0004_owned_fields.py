"""owned_fields: the output fields segsync provisioned, per connection and object.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255


def upgrade() -> None:
    """Create the table (empty: the next provision or run fills it)."""
    op.create_table(
        "owned_fields",
        sa.Column("connection", sa.String(_KEY), nullable=False),
        sa.Column("object", sa.String(_KEY), nullable=False),
        sa.Column("field", sa.String(_KEY), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection", "object", "field", name="pk_owned_fields"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("owned_fields")
