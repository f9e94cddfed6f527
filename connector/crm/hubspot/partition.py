"""Large pulls read by several requests at once, the same records exactly once.

One cursor at 80-150 ms a call reads about 7 pages a second: well under
the 19 requests a second a Professional portal allows, and the search
API's 5 a second is a separate allowance. So a large pull is cut into
disjoint parts read at the same time (:func:`~connector.crm.concurrent.merged`):

- **Full pulls** (at least ``partition_min`` records, 5,000 by default, as a
  one-result search counts them): the list endpoint reads the ids up to a
  split point while searches walk the ids above it by ``hs_object_id``
  ranges (keyset paging: each page is a new query from the last id, so
  none nears the 10,000-result cap, and ids are unique, so no tie can
  repeat or hide a record). The split shares the work by the two rates:
  the list cursor's (one page per round trip, measured on its first page)
  and the search allowance. The list keeps only ids up to the split and
  stops once it has read as many as a search counted there; HubSpot's docs
  do not promise the list's order, so if it is not by id the cursor simply
  reads on to its end. The last range has no upper bound: records created
  during the pull (new ids are higher) land in it.
- **Incremental pulls** (a window ``hs_lastmodifieddate >= since`` whose
  first page reports at least ``partition_min`` records): the window is
  closed at the newest stamp it holds now (HubSpot's clock), then cut into
  ``hs_object_id`` ranges at even ranks (one-result searches, ascending, or
  descending from the end past the cap), each walked by keyset paging.
  An edit made while the parts are read carries a later stamp: it is the
  next run's, so none hides behind an id already passed, and segsync's own
  writes made meanwhile (:mod:`connector.sync.pipeline`) shift nothing.
  Smaller windows stay one keyset walk in stamp order (:mod:`.search`).

Both set ``session.expected`` (the count): the runner may then write while
the pull goes on, since no write of its own can disturb these walks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import chain, pairwise

from connector.crm.base import parse_stamp
from connector.crm.concurrent import merged
from connector.crm.hubspot.listing import list_pages
from connector.crm.hubspot.raw import Item, stamp_of
from connector.crm.hubspot.search import (
    ID,
    first_page,
    probe,
    search_by_id,
    search_filter,
    search_since,
)
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import STAMP, epoch_ms
from connector.crm.limits import (
    HS_LIST_PAGE,
    HS_READ_STREAMS,
    HS_SEARCH_MAX_RESULTS,
    HS_SEARCH_PAGE,
)


def full_pages(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    *,
    streams: int = HS_READ_STREAMS,
    minimum: int | None = None,
    associations: Sequence[str] = (),
) -> Iterator[list[Item]]:
    """Every live record, read by a list cursor and ``streams - 1`` id-range searches.

    ``associations``: asked for on the list pages (search pages carry none).
    """
    total, top = probe(session, object_type, [], ID, descending=True)
    session.expected = total
    pages = list_pages(session, object_type, properties, associations)
    if top is None or total < _minimum(session, minimum) or streams < 2:
        yield from pages
        return
    # The list's first page: its round trip sets the cursor's pace, and so the split.
    started = time.monotonic()
    first = next(pages, [])
    round_trip = time.monotonic() - started
    low = min((int(item["id"]) for item in first), default=0)
    high = int(top["id"])
    split = low + int((high - low) * _list_share(session, round_trip))
    listed, _ = probe(session, object_type, [search_filter(ID, "LTE", str(split))], ID)
    parts = streams - 1
    step = max(1, (high - split) // parts)
    bounds: list[int | None] = [split + step * i for i in range(parts)]
    bounds.append(None)
    sources = [_listed_up_to(chain([first], pages), split, listed)]
    for above, upto in pairwise(bounds):
        sources.append(
            search_by_id(session, object_type, properties, [], above=above or 0, upto=upto)
        )
    yield from merged(sources, name="hubspot-read")


def window_pages(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    since: datetime,
    *,
    streams: int = HS_READ_STREAMS,
    minimum: int | None = None,
) -> Iterator[list[Item]]:
    """Records modified at or after ``since``: one walk, or ``streams`` id ranges when large."""
    head = first_page(session, object_type, properties, since)
    total = int(head.get("total") or 0)
    if total < _minimum(session, minimum) or streams < 2:
        # One keyset walk in stamp order (.search): its count is not published
        # (see connector/sync/pipeline.py), so no write runs alongside it.
        yield from search_since(session, object_type, properties, since, first=head)
        return
    session.expected = total
    # Up to the newest stamp now (HubSpot's clock, not ours): an edit made while
    # the parts are read is the next run's, so none can hide behind an id passed.
    opened = [search_filter(STAMP, "GTE", epoch_ms(since))]
    _, newest = probe(session, object_type, opened, STAMP, descending=True)
    top = parse_stamp(stamp_of(newest)) if newest is not None else since
    window = [*opened, search_filter(STAMP, "LTE", epoch_ms(top))]
    cuts = sorted(
        {
            cut
            for part in range(1, streams)
            if (cut := _id_at(session, object_type, window, total, total * part // streams))
            is not None
        }
    )
    bounds: list[int | None] = [0, *cuts, None]
    sources = [
        search_by_id(session, object_type, properties, window, above=above, upto=upto)
        for above, upto in pairwise(bounds)
        if above is not None
    ]
    yield from merged(sources, name="hubspot-read")


def _minimum(session: HubSpotSession, minimum: int | None) -> int:
    """The smallest pull worth cutting: ``minimum`` if given, else the session's."""
    return session.partition_min if minimum is None else minimum


def _listed_up_to(pages: Iterator[list[Item]], split: int, expected: int) -> Iterator[list[Item]]:
    """List pages, only their ids up to ``split``; done once ``expected`` of them are read."""
    kept = 0
    if expected <= 0:
        return
    for page in pages:
        mine = [item for item in page if int(item["id"]) <= split]
        kept += len(mine)
        yield mine
        if kept >= expected:
            return


def _list_share(session: HubSpotSession, round_trip: float) -> float:
    """The share of a full pull the one list cursor should read: its rate over both rates."""
    pages_per_second = min(1 / max(round_trip, 1e-3), session.window_rate())
    list_rate = pages_per_second * HS_LIST_PAGE
    search_rate = session.settings.search_per_second * HS_SEARCH_PAGE
    return list_rate / (list_rate + search_rate)


def _id_at(
    session: HubSpotSession,
    object_type: str,
    window: list[dict[str, str]],
    total: int,
    rank: int,
) -> int | None:
    """The id of the ``rank``-th record of ``window`` by id (None: past the cap both ways)."""
    if rank < HS_SEARCH_MAX_RESULTS:
        _, item = probe(session, object_type, window, ID, rank=rank)
    elif total - 1 - rank < HS_SEARCH_MAX_RESULTS:
        _, item = probe(session, object_type, window, ID, rank=total - 1 - rank, descending=True)
    else:
        return None
    return int(item["id"]) if item is not None else None
