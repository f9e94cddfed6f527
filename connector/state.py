"""The sync state that outlives a run, as plain values.

Two things carry over from one run to the next: where the next incremental
pull starts (:class:`Watermark`) and the values hysteresis is holding back
(:class:`Pending`, one :class:`Candidate` per field). The sync computes them
(``connector.sync.watermark``, ``connector.sync.planner``) and the store
persists them (``connector.store``); both import them from here, so the store
needs nothing from the sync and the planner nothing from the store.

Pure: frozen dataclasses, no I/O; imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive value is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Watermark:
    """Where the next incremental pull starts.

    Attributes:
        stamp: the largest recorded modstamp (UTC).
        boundary_ids: ids of the recorded records whose modstamp is exactly ``stamp``.
        mapping_version: the mapping version the records were planned with; a
            different version means a full pull.
        known: ``(id, stamp)`` of records segsync has already processed at
            exactly that stamp, near and above ``stamp``: read in the
            look-back window, or written by segsync (the stamp its write
            gave them). The next pull skips them, and proves with one count
            that nothing else lies among them (``connector/sync/window.py``).
            Not part of equality: it is a cache of what the store knows.

    """

    stamp: datetime
    boundary_ids: frozenset[str]
    mapping_version: str
    known: tuple[tuple[str, datetime], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp", utc(self.stamp))
        object.__setattr__(self, "boundary_ids", frozenset(self.boundary_ids))
        object.__setattr__(self, "known", tuple((i, utc(s)) for i, s in self.known))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A new value a record qualifies for but has not moved to yet.

    Attributes:
        value: the value it qualifies for.
        count: consecutive plans in which it qualified for exactly this value.
        first_seen: when it first qualified (the ``now`` of that plan).

    """

    value: Any
    count: int
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class Pending:
    """A record's hysteresis state: field → the candidate it is waiting on."""

    candidates: Mapping[str, Candidate]

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", MappingProxyType(dict(self.candidates)))


@dataclass(frozen=True, slots=True)
class DealRecord:
    """One deal as the analyses need it, in the same terms for both CRMs.

    ``is_closed`` / ``is_won`` come from the record (Salesforce ``IsClosed`` /
    ``IsWon``) or from the stage's metadata in the pipelines API (HubSpot).
    ``amount`` is None when blank or not a number; ``closed_at`` is the close
    date of a closed deal (a planned one for an open deal, as the CRM holds it).
    ``pipeline`` is HubSpot's pipeline id (Salesforce has no pipeline on an
    Opportunity: None); ``type`` is the deal type, Salesforce ``Type`` (its
    picklist value) or HubSpot ``dealtype`` (its internal option value).
    """

    id: str
    account_id: str
    pipeline: str | None
    stage: str | None
    is_closed: bool
    is_won: bool
    amount: float | None
    created_at: datetime
    closed_at: datetime | None
    lost_reason: str | None
    stamp: datetime
    type: str | None = None


@dataclass(frozen=True, slots=True)
class DealProblem:
    """A deal row that could not be read as it should (reported, never fatal).

    ``kept``: the deal is still stored (an amount that is not a number: the
    deal counts, without an amount); otherwise it is skipped (no account, an
    unknown stage, a deleted pipeline: it cannot be attributed or judged).
    """

    id: str
    code: str
    message: str
    kept: bool = False
