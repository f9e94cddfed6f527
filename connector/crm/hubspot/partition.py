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
  first page reports at least ``partition_min`` records): that first page
  (the oldest 200, sorted by the stamp) and the newest page (sorted
  descending, read at the same time as the cut probes, or handed over by
  the caller that already read it) are kept; the rest, from the first
  page's top stamp to the newest page's lowest (HubSpot's clock), is cut
  into ``hs_object_id`` ranges at ranks that end whole pages (one-result
  searches, ascending, or descending from the end past the cap, sent
  together), each walked by keyset paging, without the ids either page
  showed at those two stamps. An edit made while the parts are read
  carries a later stamp: it is the next run's, so none hides behind an id
  already passed, and segsync's own writes made meanwhile
  (:mod:`connector.sync.pipeline`) shift nothing.
  Smaller windows stay one keyset walk in stamp order (:mod:`.search`).

Both set ``session.expected`` (the count): the runner may then write while
the pull goes on, since no write of its own can disturb these walks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from functools import partial
from itertools import chain, pairwise
from typing import cast

from connector.crm.base import parse_stamp
from connector.crm.concurrent import at_once, merged
from connector.crm.hubspot.listing import list_pages
from connector.crm.hubspot.raw import Item, stamp_of
from connector.crm.hubspot.search import (
    ID,
    _search_page,
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
    newest: list[Item] | None = None,
) -> Iterator[list[Item]]:
    """Records modified at or after ``since``: one walk, or ``streams`` id ranges when large.

    ``newest``: the window's newest records, already read (a page of a
    search from ``since`` on, sorted by the stamp descending); a partitioned
    read does not read them again (:func:`window_parts`).
    """
    head = first_page(session, object_type, properties, since)
    total = int(head.get("total") or 0)
    if total < _minimum(session, minimum) or streams < 2:
        # One keyset walk in stamp order (.search): its count is not published
        # (see connector/sync/pipeline.py), so no write runs alongside it.
        yield from search_since(session, object_type, properties, since, first=head)
        return
    yield from window_parts(
        session,
        object_type,
        properties,
        since,
        list(head.get("results") or []),
        total,
        newest=newest,
        streams=streams,
    )


def window_parts(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    since: datetime,
    head: list[Item],
    total: int,
    *,
    newest: list[Item] | None = None,
    streams: int = HS_READ_STREAMS,
) -> Iterator[list[Item]]:
    """The ``total`` records modified at or after ``since``, read as ``streams`` id ranges at once.

    ``head`` is the window's oldest page (a search sorted by the stamp
    ascending): every record below its top stamp is on it. ``newest``, when
    the caller has it, is its newest page (sorted descending): every record
    above its lowest stamp is on it; else that page is read here, at the
    same time as the probes that cut the rest. Neither page is read again:
    the parts cover the stamps from the head's top to the newest page's
    lowest, and leave out the ids either page showed at those two stamps.
    The parts are closed at that lowest stamp (HubSpot's clock, not ours):
    an edit made while they are read is the next run's, so none can hide
    behind an id already passed.
    """
    session.expected = total
    oldest = _stamped(head)
    if len(oldest) >= total:
        yield [item for _, item in oldest]  # the whole window on one page
        return
    bottom = oldest[-1][0] if oldest else since
    rest = total - sum(1 for stamp, _ in oldest if stamp < bottom)  # from the head's top on
    opened = [search_filter(STAMP, "GTE", epoch_ms(bottom))]
    cuts: list[int | None] | None = None
    if newest is None:
        # The newest page and the cuts at once; the cuts then count the newest
        # page's records too (the last part comes out shorter by those).
        calls: list[Callable[[], object]] = [
            partial(_newest_page, session, object_type, properties, opened)
        ]
        calls += [
            partial(_id_at, session, object_type, opened, rest, r) for r in _ranks(rest, streams)
        ]
        answers = at_once(calls, name="hubspot-probe")
        newest = cast(list[Item], answers[0])
        cuts = cast(list[int | None], answers[1:])
    latest = _stamped(newest)
    read = {str(item["id"]) for _, item in oldest}
    yield [item for _, item in oldest]
    fresh = [item for _, item in latest if str(item["id"]) not in read]
    if fresh:
        yield fresh
    if not latest:
        return  # nothing from the head's top on any more
    low = latest[0][0]
    if low <= bottom:
        # The pages meet: every stamp lies below the head's top or above the
        # newest page's lowest, but the one stamp both may share.
        if low == bottom:
            seen = read | {str(item["id"]) for _, item in latest}
            at_low = [search_filter(STAMP, "EQ", epoch_ms(low))]
            yield from search_by_id(session, object_type, properties, at_low, skip=seen)
        return
    window = [*opened, search_filter(STAMP, "LTE", epoch_ms(low))]
    skip = {str(i["id"]) for s, i in oldest if s == bottom}
    skip |= {str(i["id"]) for s, i in latest if s == low}
    if cuts is None:
        # The parts' own count is known: the cuts can fall on whole pages.
        inside = rest - sum(1 for stamp, _ in latest if stamp > low)
        cuts = at_once(
            [
                partial(_id_at, session, object_type, window, inside, r)
                for r in _ranks(inside, streams)
            ],
            name="hubspot-probe",
        )
    bounds: list[int | None] = [0, *sorted({cut for cut in cuts if cut is not None}), None]
    sources = [
        search_by_id(session, object_type, properties, window, above=above, upto=upto, skip=skip)
        for above, upto in pairwise(bounds)
        if above is not None
    ]
    yield from merged(sources, name="hubspot-read")


def _ranks(count: int, streams: int) -> list[int]:
    """Where to cut ``count`` records into ``streams`` parts: ranks ending whole search pages.

    A part of k × 200 records is k pages; cut at even shares, a part of
    1,000 records was 5 pages and one of 1,001 was 6.
    """
    ranks = set()
    for part in range(1, streams):
        share = count * part / streams
        pages = max(1, round(share / HS_SEARCH_PAGE))
        rank = pages * HS_SEARCH_PAGE - 1
        if rank < count - 1:
            ranks.add(rank)
    return sorted(ranks)


def _newest_page(
    session: HubSpotSession, object_type: str, properties: list[str], filters: list[dict[str, str]]
) -> list[Item]:
    """The newest page of records ``filters`` match (sorted by the stamp, descending)."""
    result = _search_page(session, object_type, properties, filters, STAMP, 0, descending=True)
    return list(result.get("results") or [])


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


def _stamped(items: Iterable[Item]) -> list[tuple[datetime, Item]]:
    """Raw records with their stamps, oldest first."""
    return sorted(((parse_stamp(stamp_of(i)), i) for i in items), key=lambda pair: pair[0])
