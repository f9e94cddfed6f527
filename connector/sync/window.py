"""No re-reads of what is already known: the look-back window, proven by a count.

An incremental pull starts ``lookback_seconds`` before the watermark, because
CRMs make a change visible a little after the stamp it carries (a commit, a
search index catching up): a record stamped inside that window may appear
only after the run that set the watermark read past it. Re-reading the window
every run is what makes it safe, and what made quiet runs cost pages: the
window holds the records the last run read, and every record segsync wrote
(its write moved the stamp past the watermark).

Segsync knows those records by ``(id, stamp)``: the ones a run read with
stamps in the look-back window of the new watermark, and the ones it wrote
(HubSpot answers each write with the record's new stamp). They are kept with
the watermark (:attr:`connector.state.Watermark.known`, at most
:data:`MAX_KNOWN`). The next pull

- skips a record found at exactly a known stamp before planning (it is a
  re-read, not a change: :class:`Known`);
- and, where the CRM can count a stamp range without reading it (HubSpot
  search's ``total``), proves that the part of the window up to the last
  watermark, ``start`` ≤ stamp ≤ ``upto`` = the watermark, holds nothing
  else, and reads only what lies above it.

Why the proof stops at the watermark, not at the highest known stamp: the
run that set the watermark read every record at or below it at its stamp
then, and a change it could not see (made after its reads, while it wrote,
or since) carries a later stamp, so it lies above the watermark, where it
is read. Above the watermark a count proves nothing: a person's edit of a
record segsync had written earlier in the same write phase keeps that
record among our writes at a new stamp, and a known record deleted while an
unknown one appears keeps the count; both are read there, whatever their
depth. Below it the window can only lose records (a known record edited
moves above, a deleted one is gone) or gain one committed late (with a stamp
already passed): it counts T, the known ones still there are K − M (K known
there, M of them found above, where stamps only ever move up), and T = K − M
means every record there is a known one at the stamp segsync processed, so
it is not read. A late commit adds one to T: the window is read.

What that costs: the records segsync wrote lie above the watermark, so the
run after a write phase reads them once (one search page per 200 written,
skipped before planning) and moves the watermark past them; the runs after
it are one call again.

What a count still cannot tell: a known record deleted while, in the same
part below the watermark, a record is committed late with a stamp already
passed (HubSpot's search shows writes seconds late). A full pull
(``full_every_hours``) reads it.

**A pair is known only once its second has closed.** Salesforce's stamps
keep whole seconds, so two changes of one record in the same second carry
the same stamp: a read between them saw ``(id, stamp)``, and the second
change leaves that pair as it was. A change becomes visible when it
commits, up to the look-back after its stamp. So a pair read at ``read_at``
(the org's clock, a lower bound: :attr:`~connector.crm.base.CrmRecord.read_at`)
counts as processed only when ``floor(stamp) + 1 s + lookback <= read_at``
(:func:`settled`); otherwise it is not kept (:meth:`Recent.seen`), and when
the watermark's own second was read open its boundary ids are not kept
either (:meth:`Recent.mark`): the next run reads and plans the record again.
A watermark without boundary ids proves no window by a count (the run that
set it may have missed a change in its last second: :func:`known_window` in
``connector/sync/echo.py``). HubSpot's stamps (milliseconds) tell every
change apart: its records carry no ``read_at`` and are kept as read.

Pure: values in, values out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from connector.state import Watermark, utc

#: ``(id, stamp)`` pairs kept with a watermark. Beyond it the lowest stamps
#: are dropped: the window then counts more records than it knows, and is
#: read as before (never a record missed, only calls spent).
MAX_KNOWN = 20_000

SECOND = timedelta(seconds=1)


def settled(stamp: datetime, read_at: datetime | None, lag: timedelta) -> bool:
    """Whether a record read at ``read_at`` at ``stamp`` counts as processed at that stamp.

    True when ``stamp``'s whole second had closed, plus ``lag`` (the commit
    lag the look-back allows), by ``read_at``: no change carrying the same
    stamp can become visible after that read. ``read_at`` None: the CRM's
    stamps tell every change apart, so every read pair counts.
    """
    if read_at is None:
        return True
    return utc(stamp).replace(microsecond=0) + SECOND + lag <= utc(read_at)


class Known:
    """The ``(id, stamp)`` pairs the previous runs processed, near the watermark.

    Empty when there is no watermark or the mapping changed (a full pull
    re-plans everything).
    """

    def __init__(self, previous: Watermark | None, mapping_version: str) -> None:
        usable = previous is not None and previous.mapping_version == mapping_version
        self._at: dict[str, datetime] = dict(previous.known) if usable and previous else {}

    def __len__(self) -> int:
        return len(self._at)

    def has(self, record_id: str, stamp: datetime) -> bool:
        """Whether the record was processed at exactly ``stamp`` (a re-read changes nothing)."""
        return self._at.get(record_id) == utc(stamp)

    def window(self, start: datetime, watermark: datetime) -> tuple[datetime, int] | None:
        """``(upto, K)``: the part of the window a count may prove, and the known records in it.

        ``upto`` is the watermark: what lies above it (segsync's own writes,
        and any change the last run could not see) is read, not counted.
        ``None`` when nothing is known: then there is nothing to prove, the
        window is read.
        """
        if not self._at:
            return None
        upto = utc(watermark)
        start = utc(start)
        return upto, sum(1 for stamp in self._at.values() if start <= stamp <= upto)

    def moved(self, pairs: Iterable[tuple[str, datetime]], start: datetime, upto: datetime) -> int:
        """How many of ``pairs`` (found above ``upto``) were known from ``start`` to ``upto``."""
        start, upto = utc(start), utc(upto)
        return sum(
            1
            for record_id, _ in pairs
            if (stamp := self._at.get(record_id)) is not None and start <= stamp <= upto
        )

    def items(self) -> Iterable[tuple[str, datetime]]:
        """Every known pair."""
        return self._at.items()


class Recent:
    """The pairs a run processes that the next run's look-back window will meet again.

    Feed it every pulled record (:meth:`seen`) and every write whose new
    stamp the CRM returned (:meth:`wrote`); :meth:`known` is what to keep with
    the new watermark: the previous run's pairs and this run's, each record
    at its latest stamp, those below ``top - lookback`` dropped. Memory stays
    bounded: pairs below the look-back of the highest stamp so far are
    pruned as the top rises (they are below the final one too). Thread-safe:
    the writes of a run may go out while its plan is still reading.
    """

    def __init__(self, previous: Known, lookback: timedelta, max_known: int = MAX_KNOWN) -> None:
        self._at: dict[str, datetime] = dict(previous.items())
        self._lookback = lookback
        self._max = max_known
        self._top: datetime | None = None
        self._open: datetime | None = None
        """The highest stamp read before its second closed (:func:`settled`)."""
        self._lock = threading.Lock()

    def seen(self, record_id: str, stamp: datetime, read_at: datetime | None = None) -> None:
        """A record read at ``stamp`` (planned, or skipped as already known).

        ``read_at``: when it was read (the CRM's clock), for stamps that keep
        whole seconds: a pair read before its second closed is not kept, so
        the next run plans the record again (see :func:`settled`).
        """
        stamp = utc(stamp)
        if settled(stamp, read_at, self._lookback):
            self._put(record_id, stamp)
            return
        with self._lock:
            self._at.pop(record_id, None)
            if self._open is None or stamp > self._open:
                self._open = stamp

    def wrote(self, record_id: str, stamp: datetime | None) -> None:
        """Segsync's write gave the record ``stamp`` (``None``: the CRM did not say)."""
        if stamp is None:
            # Not known at its new stamp: the window will count it unknown.
            self.forget(record_id)
        else:
            self._put(record_id, utc(stamp))

    def forget(self, record_id: str) -> None:
        """The record is not known at any stamp (it changed since it was read)."""
        with self._lock:
            self._at.pop(record_id, None)

    def mark(self, watermark: Watermark) -> Watermark:
        """``watermark`` as it is kept: with :meth:`known`, and boundary ids only if final.

        When a record at the watermark's second was read before that second
        closed, a later change in the same second carries the watermark's
        stamp: the next run must plan the records at it again, so no
        boundary id is kept (and no window is proven below it).
        """
        ids = watermark.boundary_ids
        with self._lock:
            top_open = self._open
        if top_open is not None and top_open.replace(microsecond=0) >= utc(watermark.stamp).replace(
            microsecond=0
        ):
            ids = frozenset()
        return replace(watermark, boundary_ids=ids, known=self.known(watermark.stamp))

    def known(self, top: datetime) -> tuple[tuple[str, datetime], ...]:
        """The pairs to keep with a watermark at ``top``: highest stamps first kept."""
        floor = utc(top) - self._lookback
        with self._lock:
            pairs = [(i, s) for i, s in self._at.items() if s >= floor]
        kept = sorted(pairs, key=lambda p: p[1], reverse=True)
        return tuple(kept[: self._max])

    def _put(self, record_id: str, stamp: datetime) -> None:
        with self._lock:
            self._put_locked(record_id, stamp)

    def _put_locked(self, record_id: str, stamp: datetime) -> None:
        old = self._at.get(record_id)
        if old is None or stamp >= old:
            self._at[record_id] = stamp
        if self._top is None or stamp > self._top:
            self._top = stamp
        if len(self._at) > 2 * self._max:
            floor = self._top - self._lookback
            self._at = {i: s for i, s in self._at.items() if s >= floor}
            if len(self._at) > 2 * self._max:
                kept = sorted(self._at.items(), key=lambda p: p[1], reverse=True)
                self._at = dict(kept[: self._max])
