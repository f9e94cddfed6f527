"""deals.type: the deal type, which rollups can filter on in live runs.

Before, a Salesforce Opportunity's ``Type`` was kept as the deal's
``pipeline`` and HubSpot's ``dealtype`` was not read, so a rollup filtered
on ``type`` could not run live. The Salesforce values move to ``type``
(an Opportunity has no pipeline); HubSpot deals get theirs at the next deal
sync, which is full (``connector/sync/deals.py``: ``DEALS_VERSION``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255


def upgrade() -> None:
    """Add the column; move Salesforce's ``Type`` out of ``pipeline`` into it."""
    with op.batch_alter_table("deals") as batch:
        batch.add_column(sa.Column("type", sa.String(_KEY), nullable=True))
    op.execute("UPDATE deals SET type = pipeline, pipeline = NULL WHERE crm = 'salesforce'")


def downgrade() -> None:
    """Put Salesforce's ``Type`` back in ``pipeline``; drop the column."""
    op.execute("UPDATE deals SET pipeline = type WHERE crm = 'salesforce'")
    with op.batch_alter_table("deals") as batch:
        batch.drop_column("type")
