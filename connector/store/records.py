"""The values the state store takes and returns: plain frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

RunStatus = Literal["running", "succeeded", "partial", "failed", "aborted", "interrupted"]
#: ``running`` while a run is under way; ``succeeded`` (every change written),
#: ``partial`` (some records failed and were recorded as errors), ``failed``
#: (the run stopped on an error), ``aborted`` (refused, e.g. by the
#: mass-change guard, or stopped by a signal), ``interrupted`` (the process
#: died: found still running when the next run of the same job started).
RUN_STATUSES: tuple[RunStatus, ...] = (
    "running",
    "succeeded",
    "partial",
    "failed",
    "aborted",
    "interrupted",
)


@dataclass(frozen=True, slots=True)
class RunCounts:
    """What a run did, in records; ``api_calls`` are counted apart."""

    read: int = 0
    changed: int = 0
    written: int = 0
    failed: int = 0
    skipped: int = 0
    overrides: int = 0
    locked: int = 0
    held: int = 0
    changed_since_plan: int = 0
    """Planned writes held back: changed in the CRM between the pull and the write."""
    removed: int = 0
    """Stored deals a deal run removed: deleted in the CRM, or unlisted by a full pull."""


@dataclass(frozen=True, slots=True)
class WrittenRecord:
    """A record whose write succeeded.

    Attributes:
        record_id: the record.
        values: its last-written values from now on: the whole baseline the
            planner computed (the write's baseline), not only the fields sent.
        stamp: the record's modification stamp after the write, when the CRM
            returned it (``None`` otherwise, and for values adopted without a
            write): the next pull skips the record while it still has it.

    """

    record_id: str
    values: Mapping[str, Any]
    stamp: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """A record whose write failed; it stays an open error until a later write succeeds."""

    record_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Transition:
    """One ledger entry: a tracked field of a record moved.

    Values are text, in the one spelling the sync gives them
    (``connector.sync.values.as_text``); ``None`` is blank.
    """

    record_id: str
    field: str
    from_value: str | None
    to_value: str | None
    reason: str
    mapping_version: str
    run_id: int | None = None
    """The run that wrote the change, when not the run recording it (a write a
    crashed run made, adopted by the next one: see :class:`WriteIntent`)."""


@dataclass(frozen=True, slots=True)
class WriteIntent:
    """A write about to be sent, recorded before it is: who sends it and the changes it makes.

    Kept from just before a chunk is written until its outcome is recorded
    (the same transaction that records the outcome removes it). One left
    behind means the process died with the write in flight: the next run
    reads the record again, and if the CRM holds the intended values, the
    ledger gets the intent's transitions, attributed to the run that wrote them.

    ``changes`` are (field, old, new) in the ledger's text spelling: the
    tracked fields' transitions, the write's ledger rows. ``written`` is every
    field the write sends (field → value as sent), so the next run can tell
    whether the CRM holds exactly what the write sent (then it was segsync's
    write, adopted) or something else (a person's edit); ``None`` for an
    intent recorded without it (before migration 0018; a rollback's), whose
    ``changes`` alone are checked.
    """

    record_id: str
    run_id: int
    changes: tuple[tuple[str, str | None, str | None], ...]
    reason: str
    mapping_version: str
    written: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.written is not None:
            object.__setattr__(self, "written", MappingProxyType(dict(self.written)))


@dataclass(frozen=True, slots=True)
class LandedWrite:
    """A dead run's write the CRM shows landed, adopted by the next run (``adopt_landed``).

    Args:
        intent: the write intent the dead run left behind, as the next run read it.
        values: the record's last-written values from now on: what the store
            held, with every field the write sent (what the dead run would
            have recorded had it lived).

    """

    intent: WriteIntent
    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as stored."""

    id: int
    connection: str
    crm: str
    object: str
    mapping_version: str
    full: bool
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: RunCounts
    api_calls: int
    api_calls_minimum: int
    message: str | None = None
    api_calls_read_floor: int = 0
    """The floor for what the run read, re-reads included (``api_calls_minimum``:
    the floor for what changed in the CRM since the last run)."""


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One ledger entry as stored."""

    id: int
    connection: str
    object: str
    record_id: str
    field: str
    from_value: str | None
    to_value: str | None
    reason: str
    mapping_version: str
    run_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """A record's error as stored: the latest failure and how often it failed."""

    connection: str
    object: str
    record_id: str
    code: str
    message: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    resolved: bool
    run_id: int | None = field(default=None)
