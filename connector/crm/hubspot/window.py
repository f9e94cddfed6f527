"""Incremental pulls that do not pay for the known look-back window (connector/sync/window.py).

One search, ``hs_lastmodifieddate >= start`` sorted by the stamp descending,
answers with the newest 200 records and ``total``, the number of records
from ``start`` on. Then:

- everything fits on that page: it is the whole pull (one call);
- the page reaches down into the window (``start`` ≤ stamp ≤ ``upto``): every
  record above ``upto`` is on it, so the window holds ``total`` minus those.
  When that equals the known records still in the window (K − M), and the
  window's records on the page are each known at exactly their stamp, the
  window holds nothing unknown and the records above ``upto`` are the pull
  (one call). Otherwise the whole range is walked, as before;
- more records lie above ``upto`` than a page holds: they are walked in
  stamp order (:func:`.partition.window_pages`: parts at once when many),
  counting those at or below the first page's top stamp; ``total`` minus
  that count is the window, proven the same way, or walked on its own
  (``<= upto``) when it differs.

Records the window holds are skipped by the runner anyway (known, or echoes):
the proof only saves the calls that would read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from connector.crm.base import KnownWindow, parse_stamp
from connector.crm.hubspot.partition import window_pages
from connector.crm.hubspot.raw import Item, next_after, stamp_of
from connector.crm.hubspot.search import _search_page, search_filter, search_since
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import STAMP, epoch_ms


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
    raw = [(parse_stamp(stamp_of(i)), i) for i in result.get("results") or []]
    total = int(result.get("total") or 0)
    if next_after(result) is None and total <= len(raw):
        # The whole range on one page.
        yield [item for _, item in sorted(raw, key=lambda pair: pair[0])]
        return
    above = sorted(((s, i) for s, i in raw if s > window.upto), key=lambda pair: pair[0])
    if len(above) < len(raw):
        # The page reaches into the window: every record above it is here.
        moved = window.moved((str(i["id"]), s) for s, i in above)
        # The window's newest records are on the page too: each must be known
        # at exactly its stamp (a late edit of a known record lands there).
        inside = all(window.known(str(i["id"]), s) for s, i in raw if s <= window.upto)
        if inside and total - len(above) == window.expected - moved:
            yield [item for _, item in above]
        else:
            yield from window_pages(session, object_type, properties, window.start)
        return
    # More records above the window than one page: walk them, then prove the
    # window by its count alone (none of it is on the page).
    top = max(s for s, _ in raw)
    after_window = _next_ms(window.upto)
    counted = moved = 0
    for page in window_pages(session, object_type, properties, after_window):
        older = [(str(i["id"]), s) for i in page if (s := parse_stamp(stamp_of(i))) <= top]
        counted += len(older)
        moved += window.moved(older)
        yield page
    if total - counted != window.expected - moved:
        yield from search_since(session, object_type, properties, window.start, after_window)


def _next_ms(moment: datetime) -> datetime:
    """The first millisecond after ``moment`` (stamps and filters are whole milliseconds)."""
    return datetime.fromtimestamp((int(epoch_ms(moment)) + 1) / 1000, tz=UTC)
