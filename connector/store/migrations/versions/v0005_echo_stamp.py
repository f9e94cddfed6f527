"""record_state.echo_stamp: the modification stamp segsync's own last write gave a record.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the nullable column (rows written before it simply have no echo to skip)."""
    with op.batch_alter_table("record_state") as batch:
        batch.add_column(sa.Column("echo_stamp", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("record_state") as batch:
        batch.drop_column("echo_stamp")
