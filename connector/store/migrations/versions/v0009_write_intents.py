"""write_intents: the writes a chunk is about to send, recorded before they are sent.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table (empty: no write is in flight while the store is upgraded)."""
    op.create_table(
        "write_intents",
        sa.Column("connection", sa.String(255), nullable=False),
        sa.Column("object", sa.String(255), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("changes", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("mapping_version", sa.String(255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_write_intents_run_id_runs"),
        sa.PrimaryKeyConstraint("connection", "object", "record_id", name="pk_write_intents"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("write_intents")
