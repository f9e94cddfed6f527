"""Initial schema: runs, watermarks, record_state, transitions, errors.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _stamp(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _key(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.String(_KEY), nullable=False)


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def upgrade() -> None:
    """Create the five tables."""
    op.create_table(
        "runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        _key("connection"),
        _key("crm"),
        _key("object"),
        _key("mapping_version"),
        sa.Column("full", sa.Boolean(), nullable=False),
        _stamp("started_at"),
        _stamp("finished_at", nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        *(
            _count(name)
            for name in (
                "read",
                "changed",
                "written",
                "failed",
                "skipped",
                "overrides",
                "locked",
                "held",
                "api_calls",
                "api_calls_minimum",
            )
        ),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_connection_object_id", "runs", ["connection", "object", "id"])

    op.create_table(
        "watermarks",
        _key("connection"),
        _key("object"),
        _stamp("stamp"),
        sa.Column("boundary_ids", sa.JSON(none_as_null=True), nullable=False),
        _key("mapping_version"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("connection", "object", name="pk_watermarks"),
    )

    op.create_table(
        "record_state",
        _key("connection"),
        _key("object"),
        _key("record_id"),
        sa.Column("last_written", sa.JSON(none_as_null=True), nullable=True),
        _stamp("written_at", nullable=True),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("pending", sa.JSON(none_as_null=True), nullable=True),
        _stamp("pending_since", nullable=True),
        sa.PrimaryKeyConstraint("connection", "object", "record_id", name="pk_record_state"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_record_state_run_id_runs"),
    )
    op.create_index(
        "ix_record_state_connection_object_pending_since",
        "record_state",
        ["connection", "object", "pending_since"],
    )

    op.create_table(
        "transitions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        _key("connection"),
        _key("object"),
        _key("record_id"),
        _key("field"),
        sa.Column("from_value", sa.Text(), nullable=True),
        sa.Column("to_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        _key("mapping_version"),
        sa.Column("run_id", _ID, nullable=False),
        _stamp("at"),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_transitions_run_id_runs"),
    )
    op.create_index("ix_transitions_record_id_id", "transitions", ["record_id", "id"])
    op.create_index("ix_transitions_run_id", "transitions", ["run_id"])

    op.create_table(
        "errors",
        _key("connection"),
        _key("object"),
        _key("record_id"),
        _key("code"),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _stamp("first_seen"),
        _stamp("last_seen"),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.PrimaryKeyConstraint("connection", "object", "record_id", name="pk_errors"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_errors_run_id_runs"),
    )
    op.create_index(
        "ix_errors_connection_object_resolved", "errors", ["connection", "object", "resolved"]
    )


def downgrade() -> None:
    """Drop the five tables."""
    for table in ("errors", "transitions", "record_state", "watermarks", "runs"):
        op.drop_table(table)
