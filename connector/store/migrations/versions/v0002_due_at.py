"""record_state.due_at: when time alone changes a record's assignment (re-plan it then).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the nullable ``due_at`` column and the index the runner's due query uses."""
    op.add_column("record_state", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_record_state_connection_object_due_at",
        "record_state",
        ["connection", "object", "due_at"],
    )


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_record_state_connection_object_due_at", table_name="record_state")
    with op.batch_alter_table("record_state") as batch:
        batch.drop_column("due_at")
