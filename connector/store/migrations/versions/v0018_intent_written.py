"""write_intents.written: every field value a write sends, not only its ledger changes.

An intent kept only the tracked changes (segment, tier, persona), so the next
run could not tell whether the CRM still holds everything a dead run's write
sent (scores, reason, version): it needs all of them to adopt the write as
segsync's. NULL for the intents recorded before (they are checked by their
changes alone).

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column, NULL for the intents recorded before it."""
    with op.batch_alter_table("write_intents") as batch:
        batch.add_column(sa.Column("written", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("write_intents") as batch:
        batch.drop_column("written")
