"""runs.removed: the stored deals a deal run removed (deleted, or unlisted by a full pull).

Counted by the deal sync since deletions were followed, but not kept, so
``segsync status`` could not show it. Zero for the runs recorded before.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the count, zero for the runs recorded before it."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("removed", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop the count."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("removed")
