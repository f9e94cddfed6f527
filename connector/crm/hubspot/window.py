"""Incremental pulls that do not pay for the known look-back window (connector/sync/window.py).

The window ``start`` ≤ stamp ≤ ``upto`` is the part of the look-back at or
below the last watermark: the last run saw every record there at its stamp,
and any change since lies above ``upto`` (the proof is in
connector/sync/window.py). Everything above ``upto`` is read, page by page:
segsync's own writes of the last run are there, known, and skipped before
planning; a person's edit of one of them, or an unknown record, is read
however deep among them it lies. The window itself is proven by a count.

One search, ``hs_lastmodifieddate >= start`` sorted by the stamp descending,
answers with the newest 200 records and ``total``, the number of records
from ``start`` on. Then:

- everything fits on that page: it is the whole pull (one call);
- the page reaches down into the window: every record above ``upto`` is on
  it, so the window holds ``total`` minus those. When that equals the known
  records still in the window (K − M), and the window's records on the page
  are each known at exactly their stamp, the records above ``upto`` are the
  pull (one call). Otherwise the whole range is walked;
- every record on the page lies above ``upto``: what lies between ``upto``
  and the page is read (one query in stamp order when it fits on a page
  with what the probe showed of its lowest stamp: its ``total`` says so;
  else the rest by ``hs_object_id``, keyset paging, or
  :func:`.partition.window_parts` in parts at once when large, that query's
  page and the probe not read again), the page
  follows, and ``total`` minus the records read up to the page's top stamp
  is the window, proven the same way, or walked on its own (``<= upto``)
  when it differs.

So a quiet run costs one call, and the run after a write phase of N records
about ⌈N/200⌉: each page of our writes is read once, and the watermark then
moves past them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from connector.crm.base import KnownWindow, parse_stamp
from connector.crm.hubspot.partition import _stamped, window_pages, window_parts
from connector.crm.hubspot.raw import Item, next_after, stamp_of
from connector.crm.hubspot.search import (
    _search_page,
    search_by_id,
    search_filter,
    search_since,
)
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import STAMP, epoch_ms

Stamped = tuple[datetime, Item]


def search_known(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    window: KnownWindow,
) -> Iterator[list[Item]]:
    """Pages of raw records from ``window.start`` on, leaving out a window proven known."""
    result = _search_page(
        session,
        object_type,
        properties,
        [search_filter(STAMP, "GTE", epoch_ms(window.start))],
        STAMP,
        0,
        descending=True,
    )
    raw = _stamped(result.get("results") or [])
    total = int(result.get("total") or 0)
    if next_after(result) is None and total <= len(raw):
        # The whole range on one page.
        yield [item for _, item in raw]
        return
    above = [(s, i) for s, i in raw if s > window.upto]
    if len(above) < len(raw):
        # The page reaches into the window: every record above it is here.
        moved = window.moved((str(i["id"]), s) for s, i in above)
        # The window's newest records are on the page too: each must be known
        # at exactly its stamp (cheap, and a late commit among them shows).
        inside = all(window.known(str(i["id"]), s) for s, i in raw if s <= window.upto)
        if inside and total - len(above) == window.expected - moved:
            yield [item for _, item in above]
        else:
            # Walked whole; this page's records are not read again when in parts.
            newest = [item for _, item in raw]
            yield from window_pages(session, object_type, properties, window.start, newest=newest)
        return
    # Every record on the page lies above the window: read what lies between.
    top = raw[-1][0]
    after_window = _next_ms(window.upto)
    counted = moved = 0
    for page in _above(session, object_type, properties, after_window, raw):
        older = [(str(i["id"]), s) for i in page if (s := parse_stamp(stamp_of(i))) <= top]
        counted += len(older)
        moved += window.moved(older)
        yield page
    if total - counted != window.expected - moved:
        yield from search_since(session, object_type, properties, window.start, after_window)


def _above(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    since: datetime,
    probe: list[Stamped],
) -> Iterator[list[Item]]:
    """Every record from ``since`` on, when ``probe`` holds the newest of them (200, by stamp)."""
    low = probe[0][0]
    until = _next_ms(low)
    head = _search_page(
        session,
        object_type,
        properties,
        [search_filter(STAMP, "GTE", epoch_ms(since)), search_filter(STAMP, "LT", epoch_ms(until))],
        STAMP,
        0,
    )
    below = _stamped(head.get("results") or [])
    read = {str(i["id"]) for _, i in below}
    at_low = {str(i["id"]) for s, i in probe if s == low}
    between = int(head.get("total") or 0)
    if between == len(read | at_low):
        # ``since`` up to the probe's lowest stamp holds these and no more:
        # this page and the probe are all of it (the common case: one page of
        # our writes under one page of edits).
        yield [item for _, item in below]
        yield [i for _, i in probe if str(i["id"]) not in read]
        return
    if between + len(probe) >= session.partition_min:
        # Many: read the rest in parts at once; this page and the probe are
        # the window's oldest and newest records, not read again.
        above = sum(1 for stamp, _ in probe if stamp > low)
        yield from window_parts(
            session,
            object_type,
            properties,
            since,
            [item for _, item in below],
            between + above,
            newest=[item for _, item in probe],
        )
        return
    yield [item for _, item in below]
    # The rest lies from the page's top stamp to the probe's lowest: walked
    # by id (keyset on a unique key: our writes share a stamp per batch, and
    # a stamp walk would stop at each batch), the page's top stamp again.
    head_top = below[-1][0] if below else since
    rest = [
        search_filter(STAMP, "GTE", epoch_ms(head_top)),
        search_filter(STAMP, "LT", epoch_ms(until)),
    ]
    seen = {str(i["id"]) for s, i in below if s == head_top}
    yield from search_by_id(session, object_type, properties, rest, skip=seen)
    yield [i for s, i in probe if s > low]


def _next_ms(moment: datetime) -> datetime:
    """The first millisecond after ``moment`` (stamps and filters are whole milliseconds)."""
    return datetime.fromtimestamp((int(epoch_ms(moment)) + 1) / 1000, tz=UTC)
