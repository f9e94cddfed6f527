"""changed_parents: accounts whose inherited values changed, until their contacts are re-planned.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the table (one row per parent record)."""
    op.create_table(
        "changed_parents",
        sa.Column("connection", sa.String(_KEY), nullable=False),
        sa.Column("object", sa.String(_KEY), nullable=False),
        sa.Column("record_id", sa.String(_KEY), nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection", "object", "record_id", name="pk_changed_parents"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_changed_parents_run_id_runs"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("changed_parents")
