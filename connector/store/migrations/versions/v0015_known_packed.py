"""watermarks.known_packed: the known pairs with numeric ids, compact.

Migration 0013 kept a watermark's known ``(id, stamp)`` pairs as JSON, at
most 20,000 of them: beyond, the look-back window of a run after a larger
write could not be proven by a count and was read on every run. HubSpot's
pairs (numeric ids) now go into this column, packed (connector/store/known.py:
a few bytes a pair), and as many as the look-back holds are kept; the JSON
column keeps the other ids' pairs. A watermark written before this is read
from the JSON column as before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column (empty: the JSON column still holds the pairs until the next run)."""
    with op.batch_alter_table("watermarks") as batch:
        batch.add_column(sa.Column("known_packed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    """Drop the column: the next run then re-reads its window once, as before 0013."""
    with op.batch_alter_table("watermarks") as batch:
        batch.drop_column("known_packed")
