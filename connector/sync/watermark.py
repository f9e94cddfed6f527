"""Incremental-pull cursors: inclusive, de-duplicated, committed last.

A watermark is the largest modstamp whose records are all durably recorded,
plus the ids of the records that carry exactly that stamp. The next pull asks
for ``stamp >= watermark.stamp - lookback`` (inclusive, so a record modified
in the same millisecond as the boundary is never lost) and drops only the
boundary ids at exactly the boundary stamp (so they are not planned twice).
The look-back re-reads a short window on purpose: CRMs commit modstamps a
little out of order, and re-planning an unchanged record writes nothing.

The runner stores a new watermark only after every record up to it is
recorded. Pages pulled in modstamp order (SOQL ``ORDER BY SystemModstamp``,
a HubSpot search sorted on ``hs_lastmodifieddate``) can be committed page by
page; an unordered full pull commits once, at its end.

Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Watermark:
    """Where the next incremental pull starts.

    Attributes:
        stamp: the largest recorded modstamp (UTC).
        boundary_ids: ids of the recorded records whose modstamp is exactly ``stamp``.
        mapping_version: the mapping version the records were planned with; a
            different version means a full pull.

    """

    stamp: datetime
    boundary_ids: frozenset[str]
    mapping_version: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp", utc(self.stamp))
        object.__setattr__(self, "boundary_ids", frozenset(self.boundary_ids))


@dataclass(frozen=True, slots=True)
class WatermarkStep:
    """The outcome of one page: which records are new, and the watermark after them."""

    new_ids: tuple[str, ...]
    watermark: Watermark | None


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive value is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def needs_full(previous: Watermark | None, mapping_version: str) -> bool:
    """Whether the next pull must be full: no watermark yet, or the mapping changed."""
    return previous is None or previous.mapping_version != mapping_version


def query_start(previous: Watermark | None, lookback: timedelta) -> datetime | None:
    """The inclusive lower bound (``>=``) of the next incremental pull; ``None``: pull all."""
    if previous is None:
        return None
    if lookback < timedelta(0):
        raise ValueError(f"look-back must not be negative, not {lookback}")
    return previous.stamp - lookback


def is_new(previous: Watermark | None, record_id: str, stamp: datetime) -> bool:
    """Whether a pulled record still needs planning (it is not an already recorded boundary id)."""
    return not (
        previous is not None and utc(stamp) == previous.stamp and record_id in previous.boundary_ids
    )


def advance(
    previous: Watermark | None,
    page: Iterable[tuple[str, datetime]],
    mapping_version: str,
) -> WatermarkStep:
    """The new records of a page of ``(id, modstamp)`` pairs, and the watermark after them.

    Ids recorded at exactly the previous boundary stamp are dropped, as is a
    repeat of an id within the page (the first one counts). The next watermark
    is the largest stamp seen (never less than the previous one) with every id
    at that stamp, including the previous boundary ids when the stamp did not
    move. With a different mapping version nothing is dropped: a new mapping
    re-plans every record.

    Pass ``previous=None`` for a full pull.
    """
    if previous is not None and previous.mapping_version != mapping_version:
        previous = Watermark(previous.stamp, frozenset(), mapping_version)
    seen: set[str] = set()
    new_ids: list[str] = []
    top: datetime | None = previous.stamp if previous is not None else None
    at_top: set[str] = set(previous.boundary_ids) if previous is not None else set()
    for record_id, raw_stamp in page:
        stamp = utc(raw_stamp)
        if record_id in seen:
            continue
        seen.add(record_id)
        if is_new(previous, record_id, stamp):
            new_ids.append(record_id)
        if top is None or stamp > top:
            top, at_top = stamp, {record_id}
        elif stamp == top:
            at_top.add(record_id)
    watermark = None if top is None else Watermark(top, frozenset(at_top), mapping_version)
    return WatermarkStep(tuple(new_ids), watermark)
