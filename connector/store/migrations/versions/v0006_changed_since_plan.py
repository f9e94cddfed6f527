"""runs.changed_since_plan: planned writes held back because the record changed meanwhile.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the count, zero for the runs recorded before it."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("changed_since_plan", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    """Drop the count."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("changed_since_plan")
