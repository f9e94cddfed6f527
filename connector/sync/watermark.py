"""Incremental-pull cursors: inclusive, de-duplicated, committed last.

A watermark is the largest modstamp whose records are all durably recorded,
plus the ids of the records that carry exactly that stamp, and when the pull
that set it began. The next pull asks for ``stamp >= min(watermark.stamp,
pull_start) - lookback`` (inclusive, so a record modified at the boundary's
own stamp is never lost) and drops only the boundary ids
at exactly the boundary stamp (so they are not planned twice). Salesforce's
stamps keep whole seconds: a watermark whose second was read before it
closed keeps no boundary ids (``connector/sync/window.py``).
The look-back re-reads a short window on purpose: CRMs commit modstamps a
little out of order, and re-planning an unchanged record writes nothing.

**A pull that lasts longer than the look-back.** A change gets its stamp
when written and becomes visible at commit, up to the look-back later. A
pull reads the low stamps early and the high ones late: a change stamped T
that a pull could not see when it read T's region (at R, the CRM's clock)
has T > R - lookback >= P - lookback, P being the pull's start. When the
pull lasted longer than the look-back, T can lie far below
``stamp - lookback``. So the watermark keeps P (``pull_start``: the
earliest the CRM's clock showed at any answer of the pull, never this
host's clock) and the next pull starts at ``min(stamp, pull_start) -
lookback``. A quick pull (P at or above the stamp) reads nothing more.

The runner stores a new watermark only after every record up to it is
recorded. Pages pulled in modstamp order (SOQL ``ORDER BY SystemModstamp``,
a HubSpot search sorted on ``hs_lastmodifieddate``) can be committed page by
page; an unordered full pull commits once, at its end.

Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.state import Watermark, utc


@dataclass(frozen=True, slots=True)
class WatermarkStep:
    """The outcome of one page: which records are new, and the watermark after them."""

    new_ids: tuple[str, ...]
    watermark: Watermark | None


def needs_full(previous: Watermark | None, mapping_version: str) -> bool:
    """Whether the next pull must be full: no watermark yet, or the mapping changed."""
    return previous is None or previous.mapping_version != mapping_version


def query_start(previous: Watermark | None, lookback: timedelta) -> datetime | None:
    """The inclusive lower bound (``>=``) of the next incremental pull; ``None``: pull all.

    ``min(stamp, pull_start) - lookback``: see the module docstring.
    """
    if previous is None:
        return None
    if lookback < timedelta(0):
        raise ValueError(f"look-back must not be negative, not {lookback}")
    return previous.reach - lookback


def is_new(previous: Watermark | None, record_id: str, stamp: datetime) -> bool:
    """Whether a pulled record still needs planning (it is not an already recorded boundary id)."""
    return not (
        previous is not None and utc(stamp) == previous.stamp and record_id in previous.boundary_ids
    )


#: Ids remembered at the watermark's stamp. Beyond it, records on that stamp
#: are simply planned again next run: they compare equal and are not written.
MAX_BOUNDARY_IDS = 10_000


class WatermarkTracker:
    """The watermark of a pull in progress: O(1) per record, one set however many pages.

    Feed every pulled record to :meth:`see` (it answers whether the record
    still needs planning); :meth:`watermark` is the watermark after them. Ids
    repeated within the pull count once. With a different mapping version the
    previous boundary ids are ignored: a new mapping re-plans every record.
    Both id sets hold at most ``max_ids`` ids, so memory stays flat however
    many records share the top stamp.
    """

    def __init__(
        self,
        previous: Watermark | None,
        mapping_version: str,
        max_ids: int = MAX_BOUNDARY_IDS,
    ) -> None:
        if previous is not None and previous.mapping_version != mapping_version:
            previous = Watermark(previous.stamp, frozenset(), mapping_version)
        self._previous = previous
        self._version = mapping_version
        self._max_ids = max_ids
        self._top: datetime | None = previous.stamp if previous is not None else None
        self._at_top: set[str] = set(previous.boundary_ids) if previous is not None else set()
        self._seen_at_top: set[str] = set()
        self._lowest: datetime | None = None
        """The lowest stamp this pull read (stands in for its start when no answer had a Date)."""

    def see(self, record_id: str, stamp: datetime) -> bool:
        """Take one pulled record into account; True when it still needs planning."""
        moment = utc(stamp)
        if self._lowest is None or moment < self._lowest:
            self._lowest = moment
        if self._top is None or moment > self._top:
            self._top, self._at_top, self._seen_at_top = moment, {record_id}, {record_id}
        elif moment == self._top:
            if record_id in self._seen_at_top:
                return False
            if len(self._seen_at_top) < self._max_ids:
                # Past the cap a repeat is not caught here: the adapters do
                # not repeat a record within a pull (search windows and Bulk
                # resumes drop what they yielded), this is a guard only.
                self._seen_at_top.add(record_id)
            if len(self._at_top) < self._max_ids:
                self._at_top.add(record_id)
        return is_new(self._previous, record_id, moment)

    def watermark(self, began: datetime | None = None) -> Watermark | None:
        """The watermark after every record seen (the previous one when none moved it).

        ``began``: when this pull began on the CRM's clock (the earliest its
        answers' ``Date`` allows: :class:`~connector.crm.base.TimedPages`),
        kept as its ``pull_start``. None when no answer carried a ``Date``:
        then the stricter stand-in is the lowest stamp this pull read (each
        record was stamped before it was read, so the first answer's records
        carry stamps no later than that answer), and when it read nothing,
        the previous watermark's (an earlier pull's start is earlier still).
        Never a clock of this host.
        """
        if self._top is None:
            return None
        start = began if began is not None else self._lowest
        if start is None and self._previous is not None:
            start = self._previous.pull_start
        return Watermark(self._top, frozenset(self._at_top), self._version, pull_start=start)


def advance(
    previous: Watermark | None,
    page: Iterable[tuple[str, datetime]],
    mapping_version: str,
    began: datetime | None = None,
) -> WatermarkStep:
    """The new records of a page of ``(id, modstamp)`` pairs, and the watermark after them.

    Ids recorded at exactly the previous boundary stamp are dropped, as is a
    repeat of an id within the page (the first one counts). The next watermark
    is the largest stamp seen (never less than the previous one) with the ids
    at that stamp, including the previous boundary ids when the stamp did not
    move. With a different mapping version nothing is dropped.

    Pass ``previous=None`` for a full pull. ``began``: when the pull began on
    the CRM's clock (:meth:`WatermarkTracker.watermark`).
    """
    tracker = WatermarkTracker(previous, mapping_version)
    seen: set[str] = set()
    new_ids: list[str] = []
    for record_id, stamp in page:
        if record_id in seen:
            continue
        seen.add(record_id)
        if tracker.see(record_id, stamp):
            new_ids.append(record_id)
    return WatermarkStep(tuple(new_ids), tracker.watermark(began))
