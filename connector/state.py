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

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive value is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
#: The longest id kept as a number: 18 digits always fit in 64 bits.
_MAX_DIGITS = 18


def micros(moment: datetime) -> int:
    """``moment`` as whole microseconds since the epoch (exact: no float)."""
    return (utc(moment) - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    """The UTC moment ``value`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=value)


def numeric_id(record_id: str) -> int | None:
    """``record_id`` as an int when it is a plain decimal number (HubSpot's ids), else None.

    Only the canonical spelling (no sign, no leading zero): ``str`` of the
    int gives the id back.
    """
    if (
        record_id.isascii()
        and record_id.isdigit()
        and len(record_id) <= _MAX_DIGITS
        and (record_id[0] != "0" or record_id == "0")
    ):
        return int(record_id)
    return None


class KnownPairs:
    """``(id, stamp)`` pairs, one stamp per id, kept compact.

    Numeric ids (HubSpot's) live in two 64-bit arrays sorted by id, the
    stamps as microseconds since the epoch: 16 bytes a pair, where a dict of
    strings and datetimes took about 200, so hundreds of thousands of pairs
    cost a few megabytes. Other ids (Salesforce's) are kept in a dict.
    Immutable once built: :meth:`of` builds from pairs, :meth:`packed` from
    arrays already in order (the store's and :class:`connector.sync.window.Recent`'s).
    """

    __slots__ = ("_ids", "_other", "_stamps")

    def __init__(self, ids: array[int], stamps: array[int], other: Mapping[str, int]) -> None:
        self._ids = ids
        self._stamps = stamps
        self._other = dict(other)

    @classmethod
    def packed(
        cls, ids: array[int], stamps: array[int], other: Mapping[str, int] | None = None
    ) -> KnownPairs:
        """From ids sorted ascending, each once, and their stamps (microseconds), in that order."""
        if len(ids) != len(stamps):
            raise ValueError("known pairs: as many stamps as ids are needed")
        return cls(ids, stamps, other or {})

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, datetime]]) -> KnownPairs:
        """From ``(id, stamp)`` pairs; an id given twice keeps its latest stamp."""
        numeric: dict[int, int] = {}
        other: dict[str, int] = {}
        for record_id, stamp in pairs:
            at = micros(stamp)
            key = numeric_id(record_id)
            if key is None:
                if at >= other.get(record_id, at):
                    other[record_id] = at
            elif at >= numeric.get(key, at):
                numeric[key] = at
        ids = array("q", sorted(numeric))
        return cls(ids, array("q", (numeric[i] for i in ids)), other)

    @property
    def numeric(self) -> tuple[array[int], array[int]]:
        """The numeric ids (ascending) and their stamps in microseconds; not to be changed."""
        return self._ids, self._stamps

    @property
    def other(self) -> Mapping[str, int]:
        """The other ids and their stamps in microseconds."""
        return MappingProxyType(self._other)

    def __len__(self) -> int:
        return len(self._ids) + len(self._other)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[tuple[str, datetime]]:
        for key, at in zip(self._ids, self._stamps, strict=True):
            yield str(key), from_micros(at)
        for record_id, at in self._other.items():
            yield record_id, from_micros(at)

    def __repr__(self) -> str:
        return f"KnownPairs({len(self)} pairs)"

    def micros_of(self, record_id: str) -> int | None:
        """The stamp known for ``record_id``, in microseconds (None: not known)."""
        key = numeric_id(record_id)
        if key is None:
            return self._other.get(record_id)
        at = bisect_left(self._ids, key)
        if at < len(self._ids) and self._ids[at] == key:
            return self._stamps[at]
        return None

    def count(self, start: datetime, upto: datetime) -> int:
        """How many pairs have ``start`` ≤ stamp ≤ ``upto``."""
        low, high = micros(start), micros(upto)
        return sum(1 for at in self._stamps if low <= at <= high) + sum(
            1 for at in self._other.values() if low <= at <= high
        )


EMPTY_PAIRS = KnownPairs(array("q"), array("q"), {})


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
            Compact (:class:`KnownPairs`); any iterable of pairs is taken.
            Not part of equality: it is a cache of what the store knows.
        pull_start: when the pull that set it began, on the CRM's clock (a
            lower bound: no read of that pull came earlier). A pull that
            runs longer than the look-back reads low stamps early and high
            ones late, so a change committed late below ``stamp`` can lie
            far under ``stamp - lookback``; the next pull starts at
            ``min(stamp, pull_start) - lookback``
            (:func:`connector.sync.watermark.query_start`). None: not known
            (a watermark kept before segsync recorded it). Not part of
            equality, as ``known``.

    """

    stamp: datetime
    boundary_ids: frozenset[str]
    mapping_version: str
    known: KnownPairs = field(default=EMPTY_PAIRS, compare=False)
    pull_start: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp", utc(self.stamp))
        object.__setattr__(self, "boundary_ids", frozenset(self.boundary_ids))
        if not isinstance(self.known, KnownPairs):
            # Pairs as ``(id, stamp)`` tuples (tests, older callers): made compact.
            object.__setattr__(self, "known", KnownPairs.of(self.known))
        if self.pull_start is not None:
            object.__setattr__(self, "pull_start", utc(self.pull_start))

    @property
    def reach(self) -> datetime:
        """The stamp the next pull's look-back counts back from: ``min(stamp, pull_start)``."""
        if self.pull_start is None or self.pull_start >= self.stamp:
            return self.stamp
        return self.pull_start


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
