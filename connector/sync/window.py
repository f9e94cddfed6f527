"""No re-reads of what is already known: the look-back window, proven by a count.

An incremental pull starts ``lookback_seconds`` before the watermark (before
the last pull's start, when that pull lasted longer: ``sync/watermark.py``), because
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
from array import array
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from connector.state import EMPTY_PAIRS, KnownPairs, Watermark, micros, numeric_id, utc

#: Pairs with numeric ids (HubSpot's) kept with a watermark, 16 bytes each in
#: the arrays of :class:`~connector.state.KnownPairs`. Every pair within the
#: look-back of the new watermark is kept up to this many: more records than
#: HubSpot's rate limits let a run write in the default look-back (300 s at
#: 19 calls a second is about 285,000 records written and re-read). Beyond
#: it the lowest stamps are dropped: the window then counts more records than
#: it knows, and is read as before (never a record missed, only calls spent).
MAX_KNOWN = 1_000_000
#: Pairs with other ids (Salesforce's), kept as strings: its queries leave
#: segsync's own writes out, so what it keeps is only what a run read in the
#: window, and a count (deals) that does not match is read.
MAX_OTHER = 20_000

_MICRO = timedelta(microseconds=1)
K = TypeVar("K", int, str)

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


def read_open(stamp: datetime, read_at: datetime | None) -> bool:
    """Whether a record was read before its stamp's whole second had closed.

    A later save in that second keeps the stamp: the re-read before a write
    cannot tell it by the stamp, so it compares the record's inputs too
    (connector/sync/recheck.py). ``read_at`` None: stamps tell every save apart.
    """
    return read_at is not None and utc(read_at) < utc(stamp).replace(microsecond=0) + SECOND


class Known:
    """The ``(id, stamp)`` pairs the previous runs processed, near the watermark.

    Empty when there is no watermark or the mapping changed (a full pull
    re-plans everything).
    """

    def __init__(self, previous: Watermark | None, mapping_version: str) -> None:
        usable = previous is not None and previous.mapping_version == mapping_version
        self.pairs: KnownPairs = previous.known if usable and previous else EMPTY_PAIRS

    def __len__(self) -> int:
        return len(self.pairs)

    def has(self, record_id: str, stamp: datetime) -> bool:
        """Whether the record was processed at exactly ``stamp`` (a re-read changes nothing)."""
        return self.pairs.micros_of(record_id) == micros(stamp)

    def window(self, start: datetime, watermark: datetime) -> tuple[datetime, int] | None:
        """``(upto, K)``: the part of the window a count may prove, and the known records in it.

        ``upto`` is the watermark: what lies above it (segsync's own writes,
        and any change the last run could not see) is read, not counted.
        ``None`` when nothing is known: then there is nothing to prove, the
        window is read.
        """
        if not self.pairs:
            return None
        upto = utc(watermark)
        return upto, self.pairs.count(start, upto)

    def moved(self, pairs: Iterable[tuple[str, datetime]], start: datetime, upto: datetime) -> int:
        """How many of ``pairs`` (found above ``upto``) were known from ``start`` to ``upto``."""
        low, high = micros(start), micros(upto)
        return sum(
            1
            for record_id, _ in pairs
            if (at := self.pairs.micros_of(record_id)) is not None and low <= at <= high
        )

    def items(self) -> Iterable[tuple[str, datetime]]:
        """Every known pair."""
        return iter(self.pairs)


class Recent:
    """The pairs a run processes that the next run's look-back window will meet again.

    Feed it every pulled record (:meth:`seen`) and every write whose new
    stamp the CRM returned (:meth:`wrote`); :meth:`known` is what to keep with
    the new watermark: the previous run's pairs and this run's, each record
    at its latest stamp, those below ``top - lookback`` dropped. The
    previous pairs stay in their compact arrays; this run's are a dict by
    id until :meth:`known` merges both. Memory stays bounded: this run's
    pairs below the look-back of the highest stamp so far are pruned as the
    top rises (they are below the final one too), and the lowest beyond
    the caps. Thread-safe: the writes of a run may go out while its plan is
    still reading.
    """

    def __init__(
        self,
        previous: Known,
        lookback: timedelta,
        max_known: int = MAX_KNOWN,
        max_other: int = MAX_OTHER,
    ) -> None:
        self._previous = previous.pairs
        self._lookback_delta = lookback
        self._lookback = lookback // _MICRO
        self._max = max_known
        self._max_other = max_other
        # This run's pairs (stamps in microseconds), and the ids whose previous
        # pair no longer holds (forgotten: changed since they were read).
        self._numeric: dict[int, int] = {}
        self._other: dict[str, int] = {}
        self._void: set[int] = set()
        self._void_other: set[str] = set()
        self._top: int | None = None
        self._open: datetime | None = None
        """The highest stamp read before its second closed (:func:`settled`)."""
        self._lock = threading.Lock()

    def seen(self, record_id: str, stamp: datetime, read_at: datetime | None = None) -> None:
        """A record read at ``stamp`` (planned, or skipped as already known).

        ``read_at``: when it was read (the CRM's clock), for stamps that keep
        whole seconds: a pair read before its second closed is not kept, so
        the next run plans the record again (see :func:`settled`).
        """
        if settled(stamp, read_at, self._lookback_delta):
            self._put(record_id, micros(stamp))
            return
        self.forget(record_id)
        stamp = utc(stamp)
        with self._lock:
            if self._open is None or stamp > self._open:
                self._open = stamp

    def wrote(self, record_id: str, stamp: datetime | None) -> None:
        """Segsync's write gave the record ``stamp`` (``None``: the CRM did not say)."""
        if stamp is None:
            # Not known at its new stamp: the window will count it unknown.
            self.forget(record_id)
        else:
            self._put(record_id, micros(stamp))

    def forget(self, record_id: str) -> None:
        """The record is not known at any stamp (it changed since it was read)."""
        key = numeric_id(record_id)
        with self._lock:
            if key is None:
                self._other.pop(record_id, None)
                self._void_other.add(record_id)
            else:
                self._numeric.pop(key, None)
                self._void.add(key)

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
        return replace(watermark, boundary_ids=ids, known=self.known(watermark.reach))

    def known(self, top: datetime) -> KnownPairs:
        """The pairs to keep with a watermark reaching back from ``top``: highest stamps first kept.

        ``top`` is :attr:`~connector.state.Watermark.reach`: after a pull that
        lasted longer than the look-back, the next window starts below the
        watermark's own look-back, and the pairs down to its start keep it cheap.
        """
        floor = micros(top) - self._lookback
        with self._lock:  # merged in place: a copy of a large run would double it
            ids, stamps = _merged(self._previous.numeric, self._numeric, self._void, floor)
            other = dict(self._other)
            void_other = set(self._void_other)
        if len(ids) > self._max:
            ids, stamps = _highest(ids, stamps, self._max)
        for record_id, at in self._previous.other.items():
            if record_id not in void_other and at > other.get(record_id, -1):
                other[record_id] = at
        kept = sorted(((i, at) for i, at in other.items() if at >= floor), key=lambda p: -p[1])
        return KnownPairs.packed(ids, stamps, dict(kept[: self._max_other]))

    def _put(self, record_id: str, at: int) -> None:
        key = numeric_id(record_id)
        with self._lock:
            if self._top is None or at > self._top:
                self._top = at
            if key is None:
                if at >= self._other.get(record_id, at):
                    self._other[record_id] = at
                    if len(self._other) > 2 * self._max_other:
                        floor = self._top - self._lookback
                        self._other = _pruned(self._other, floor, self._max_other)
            elif at >= self._numeric.get(key, at):
                self._numeric[key] = at
                if len(self._numeric) > self._max + self._max // 4:
                    self._numeric = _pruned(self._numeric, self._top - self._lookback, self._max)


def _pruned(pairs: dict[K, int], floor: int, most: int) -> dict[K, int]:
    """``pairs`` at or above ``floor``; the ``most`` highest when still more."""
    kept = {key: at for key, at in pairs.items() if at >= floor}
    if len(kept) > most:
        kept = dict(sorted(kept.items(), key=lambda p: p[1], reverse=True)[:most])
    return kept


def _merged(
    previous: tuple[array[int], array[int]], run: dict[int, int], void: set[int], floor: int
) -> tuple[array[int], array[int]]:
    """The previous pairs (sorted by id) and this run's, each id at its latest stamp ≥ ``floor``."""
    old_ids, old_stamps = previous
    ids, stamps = array("q"), array("q")
    keys = sorted(run)
    i = j = 0
    n, m = len(old_ids), len(keys)
    while i < n or j < m:
        if j >= m or (i < n and old_ids[i] < keys[j]):
            key, at = old_ids[i], old_stamps[i]
            i += 1
            if key in void:
                continue
        elif i >= n or keys[j] < old_ids[i]:
            key = keys[j]
            at = run[key]
            j += 1
        else:  # the same id in both
            key = keys[j]
            at = run[key] if key in void else max(run[key], old_stamps[i])
            i += 1
            j += 1
        if at >= floor:
            ids.append(key)
            stamps.append(at)
    return ids, stamps


def _highest(ids: array[int], stamps: array[int], most: int) -> tuple[array[int], array[int]]:
    """The ``most`` pairs with the highest stamps (ties at the cut: the lowest ids), by id."""
    cut = sorted(stamps, reverse=True)[most - 1]
    above = sum(1 for at in stamps if at > cut)
    room = most - above
    kept_ids, kept_stamps = array("q"), array("q")
    for key, at in zip(ids, stamps, strict=True):
        if at > cut or (at == cut and room > 0):
            if at == cut:
                room -= 1
            kept_ids.append(key)
            kept_stamps.append(at)
    return kept_ids, kept_stamps
