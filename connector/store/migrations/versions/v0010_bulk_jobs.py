"""bulk_jobs: Bulk 2.0 ingest jobs noted before each step, so a crash resumes them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the table (empty: no job is in flight while the store is upgraded)."""
    op.create_table(
        "bulk_jobs",
        sa.Column("connection", sa.String(_KEY), nullable=False),
        sa.Column("object", sa.String(_KEY), nullable=False),
        sa.Column("marker", sa.String(_KEY), nullable=False),
        sa.Column("job_id", sa.String(_KEY), nullable=True),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection", "object", "marker", name="pk_bulk_jobs"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_bulk_jobs_run_id_runs"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("bulk_jobs")
