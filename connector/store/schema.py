"""The state store's tables and column types (SQLAlchemy Core).

This is the schema the code reads and writes; the migrations in
:mod:`connector.store.migrations` create it. When a table changes here, add a
migration that makes the same change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so later migrations can refer to them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY = 255  # length of key columns: connection names, object names, record ids, codes


def encode(value: Any) -> Any:
    """A value as plain JSON, with date-times, dates, decimals and odd floats tagged.

    Tags are one-key objects (``{"$datetime": "2026-11-22T04:00:00+00:00"}``),
    which :func:`decode` turns back into the same Python value.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, set | frozenset):
        return {"$set": sorted((encode(v) for v in value), key=repr)}
    raise TypeError(f"cannot store a {type(value).__name__} value: {value!r}")


_DECODERS: dict[str, Any] = {
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$decimal": Decimal,
    "$float": float,
}


def decode(value: Any) -> Any:
    """The Python value :func:`encode` was given."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, raw),) = value.items()
            if tag in _DECODERS:
                return _DECODERS[tag](raw)
            if tag == "$set":
                return frozenset(decode(v) for v in raw)
        return {k: decode(v) for k, v in value.items()}
    return value


class TaggedJSON(TypeDecorator[Any]):
    """JSON whose date-times (and dates, decimals, non-finite floats) round-trip."""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Encode on the way in."""
        return None if value is None else encode(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """Decode on the way out."""
        return None if value is None else decode(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A date-time stored in UTC and always read back timezone-aware.

    SQLite keeps no zone, so values are converted to UTC before they are
    stored and read back as UTC; PostgreSQL's ``timestamptz`` is read in the
    session's zone and converted too. A naive value is taken to be UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC on the way in."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Attach (or convert to) UTC on the way out."""
        if value is None:
            return None
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere the ledger
# needs 64 bits.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(naming_convention=NAMING)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("connection", sa.String(KEY), nullable=False),
    sa.Column("crm", sa.String(KEY), nullable=False),
    sa.Column("object", sa.String(KEY), nullable=False),
    sa.Column("mapping_version", sa.String(KEY), nullable=False),
    sa.Column("full", sa.Boolean(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("read", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("changed", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("written", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("overrides", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("locked", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("held", sa.Integer(), nullable=False, server_default="0"),
    # Planned writes held back because the record changed between pull and write.
    sa.Column("changed_since_plan", sa.Integer(), nullable=False, server_default="0"),
    # Stored deals a deal run removed (deleted in the CRM, or unlisted by a full pull).
    sa.Column("removed", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("api_calls", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("api_calls_minimum", sa.Integer(), nullable=False, server_default="0"),
    # The floor for what the run chose to read (re-reads included); the
    # minimum above is the floor for what changed in the CRM since the last run.
    sa.Column("api_calls_read_floor", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Index(None, "connection", "object", "id"),
)

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("object", sa.String(KEY), primary_key=True),
    sa.Column("stamp", UTCDateTime(), nullable=False),
    sa.Column("boundary_ids", TaggedJSON(), nullable=False),
    sa.Column("mapping_version", sa.String(KEY), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # [[id, stamp], ...] already processed near the watermark (Watermark.known):
    # the pairs whose ids are not numbers (Salesforce's); before 0015, all.
    sa.Column("known", TaggedJSON(), nullable=True),
    # The pairs with numeric ids (HubSpot's), packed (connector/store/known.py).
    sa.Column("known_packed", sa.LargeBinary(), nullable=True),
    # When the pull that set it began, on the CRM's clock (Watermark.pull_start).
    sa.Column("pull_start", UTCDateTime(), nullable=True),
)

record_state = sa.Table(
    "record_state",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("object", sa.String(KEY), primary_key=True),
    sa.Column("record_id", sa.String(KEY), primary_key=True),
    sa.Column("last_written", TaggedJSON(), nullable=True),
    sa.Column("written_at", UTCDateTime(), nullable=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=True),
    # The record's modification stamp right after segsync's last write, when
    # the CRM returned it: a pull that finds the record still at this stamp
    # reads our own write back (an echo) and skips it.
    sa.Column("echo_stamp", UTCDateTime(), nullable=True),
    sa.Column("pending", TaggedJSON(), nullable=True),
    # When the oldest pending candidate appeared; NULL when nothing is pending.
    # Indexed (a JSON column cannot be) so the runner finds records to re-plan.
    sa.Column("pending_since", UTCDateTime(), nullable=True),
    # When time alone changes the record's assignment (a within_days boundary);
    # NULL when it never does. The runner re-plans records whose due_at has passed.
    sa.Column("due_at", UTCDateTime(), nullable=True),
    sa.Index(None, "connection", "object", "pending_since"),
    sa.Index(None, "connection", "object", "due_at"),
)

# Parent records (accounts) whose inherited outputs changed: their children
# (contacts) are re-planned by the next child run, which then deletes the rows
# it saw. ``run_id`` is the latest run that marked the parent, so a mark made
# again while a child run is under way survives that run's clean-up.
changed_parents = sa.Table(
    "changed_parents",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("object", sa.String(KEY), primary_key=True),
    sa.Column("record_id", sa.String(KEY), primary_key=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("marked_at", UTCDateTime(), nullable=False),
)

# What the CRM holds in a parent's (account's) inheritable outputs (segment,
# tier) as its last account run left them: the values it read, or wrote
# when the write landed. Child (contact) runs take their parents' values
# from here instead of reading the parents again (connector/sync/parents.py).
inherited_values = sa.Table(
    "inherited_values",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("object", sa.String(KEY), primary_key=True),
    sa.Column("record_id", sa.String(KEY), primary_key=True),
    sa.Column("field_values", TaggedJSON(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

transitions = sa.Table(
    "transitions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("connection", sa.String(KEY), nullable=False),
    sa.Column("object", sa.String(KEY), nullable=False),
    sa.Column("record_id", sa.String(KEY), nullable=False),
    sa.Column("field", sa.String(KEY), nullable=False),
    sa.Column("from_value", sa.Text(), nullable=True),
    sa.Column("to_value", sa.Text(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("mapping_version", sa.String(KEY), nullable=False),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index(None, "record_id", "id"),
    sa.Index(None, "run_id"),
)

errors = sa.Table(
    "errors",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("object", sa.String(KEY), primary_key=True),
    sa.Column("record_id", sa.String(KEY), primary_key=True),
    sa.Column("code", sa.String(KEY), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
    sa.Column("resolved", sa.Boolean(), nullable=False),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=True),
    sa.Index(None, "connection", "object", "resolved"),
)

#: Writes about to be sent (one row per record), recorded before the write and
#: removed with its recorded outcome: a row left behind is a write a process
#: died with in flight, whose transitions the next run adopts (see WriteIntent).
write_intents = sa.Table(
    "write_intents",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("object", sa.String(KEY), primary_key=True),
    sa.Column("record_id", sa.String(KEY), primary_key=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    # [[field, old, new], ...] in the ledger's text spelling.
    sa.Column("changes", TaggedJSON(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("mapping_version", sa.String(KEY), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    # {field: value} of every field the write sends; NULL for intents recorded
    # before migration 0018 (and for writes that keep no such map).
    sa.Column("written", TaggedJSON(), nullable=True),
)

#: Bulk write jobs (Salesforce Bulk 2.0 ingest) noted before each step: the
#: job id right after the create and before the upload, so a crash resumes the
#: job instead of writing its rows again (see connector/crm/salesforce/bulk.py).
bulk_jobs = sa.Table(
    "bulk_jobs",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("object", sa.String(KEY), primary_key=True),
    # The adapter's own name for the job, chosen before the create is sent.
    sa.Column("marker", sa.String(KEY), primary_key=True),
    # NULL while the create's answer is awaited.
    sa.Column("job_id", sa.String(KEY), nullable=True),
    # The last step known to have landed: creating, created, uploaded, closed.
    sa.Column("step", sa.String(32), nullable=False),
    # When the create was sent (to find a job whose id was never learned).
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: The output fields segsync provisioned in a CRM (created, or found carrying
#: its mark): the only fields besides adopted ones that a run may write.
owned_fields = sa.Table(
    "owned_fields",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("object", sa.String(KEY), primary_key=True),
    # Case-folded: Salesforce API names are case-insensitive.
    sa.Column("field", sa.String(KEY), primary_key=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

#: Who holds each job (``<connection>.<object>``) and until when: the lease
#: behind the job lock (connector/store/leases.py). ``token`` grows by one at
#: every acquisition, so a holder that lost the lease (stopped, then resumed)
#: sees a newer token and writes nothing more. ``mode`` says how it was taken:
#: ``lock`` with the job lock, ``steal`` from a holder whose lease expired,
#: ``pending`` for the moment between taking the lease and trying the lock.
job_leases = sa.Table(
    "job_leases",
    metadata,
    sa.Column("job", sa.String(KEY), primary_key=True),
    sa.Column("holder", sa.String(KEY), nullable=False),
    sa.Column("token", sa.BigInteger(), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

#: Deals read from the CRM (read-only; segsync never writes one), as far as
#: the outcome analyses need them. Rows that cannot be judged are not kept.
deals = sa.Table(
    "deals",
    metadata,
    sa.Column("connection", sa.String(KEY), primary_key=True),
    sa.Column("id", sa.String(KEY), primary_key=True),
    sa.Column("crm", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(KEY), nullable=False),
    sa.Column("pipeline", sa.String(KEY), nullable=True),
    sa.Column("stage", sa.String(KEY), nullable=True),
    sa.Column("is_closed", sa.Boolean(), nullable=False),
    sa.Column("is_won", sa.Boolean(), nullable=False),
    sa.Column("amount", sa.Float(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.Column("lost_reason", sa.Text(), nullable=True),
    sa.Column("modstamp", UTCDateTime(), nullable=False),
    sa.Column("type", sa.String(KEY), nullable=True),
    sa.Index(None, "connection", "account_id"),
)

#: What a connection learned that is costly to ask again: an OAuth token
#: (encrypted by the adapter before it gets here: the store never sees it in
#: the clear) and describe results. ``key`` names the connection and the kind
#: (``salesforce.token:…``, ``salesforce.describe:…:Account``); ``stamp`` is
#: when the value was last known good (a token's last successful use, a
#: describe's last check against the org).
connector_cache = sa.Table(
    "connector_cache",
    metadata,
    sa.Column("key", sa.String(KEY), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("stamp", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
