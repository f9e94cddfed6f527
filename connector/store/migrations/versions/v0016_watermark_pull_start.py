"""watermarks.pull_start: when the pull that set a watermark began, on the CRM's clock.

A pull that runs longer than the look-back reads low stamps early and high
ones late, so a change committed late below the watermark can lie under
``stamp - lookback``. The next pull starts at ``min(stamp, pull_start) -
lookback`` (connector/sync/watermark.py). A watermark kept before this
revision has none and starts at ``stamp - lookback``, as before, until its
next pull records one.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column (null: not known)."""
    with op.batch_alter_table("watermarks") as batch:
        batch.add_column(sa.Column("pull_start", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("watermarks") as batch:
        batch.drop_column("pull_start")
