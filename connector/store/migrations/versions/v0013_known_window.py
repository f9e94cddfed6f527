"""watermarks.known and runs.api_calls_read_floor: skip what is already known, count honestly.

``watermarks.known`` keeps the ``(id, stamp)`` pairs segsync already processed
near the watermark (read in the look-back window, or written by segsync), so
the next pull skips them and proves the window holds nothing else
(connector/sync/window.py). ``runs.api_calls_read_floor`` keeps the floor for
what a run chose to read, next to ``api_calls_minimum``, which becomes the
floor for what changed in the CRM since the last run.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add both columns (a watermark without ``known`` re-reads its window, as before)."""
    with op.batch_alter_table("watermarks") as batch:
        batch.add_column(sa.Column("known", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("api_calls_read_floor", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    """Drop both columns."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("api_calls_read_floor")
    with op.batch_alter_table("watermarks") as batch:
        batch.drop_column("known")
