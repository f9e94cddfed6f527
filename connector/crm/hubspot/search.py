"""Incremental pulls: search windows on the stamp that never reach the cap.

HubSpot's search endpoint returns at most 10,000 results for one query, 200
a page. A walk of ``hs_lastmodifieddate >= since`` sorted by the stamp is
therefore cut into windows: before a window reaches the cap, the next one
starts again from the last stamp seen, skipping the ids already yielded at
that stamp. When a whole window shares one stamp (more records modified in
the same millisecond than a window holds), that stamp is walked on its own
by ``hs_object_id`` and the walk goes on one millisecond after it, so no
record is lost and no window repeats forever.

Records that share a stamp (a tie) may come back in another order on every
request: nothing in HubSpot's docs promises more than the sort itself, and
a tie split across two pages of offset paging could then show some of its
records twice and others never. So a stamp seen on both sides of a page
boundary is read whole by ``hs_object_id`` (unique, so its order is total)
and skipped from then on. The sort is sent in the object form the search
guide documents: an ignored sort would break every assumption above.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from hubspot.crm.companies.models import Filter, FilterGroup, PublicObjectSearchRequest

from connector.crm.base import parse_stamp
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import STAMP, epoch_ms
from connector.crm.limits import HS_SEARCH_MAX_RESULTS, HS_SEARCH_PAGE


def search_since(
    session: HubSpotSession, object_type: str, properties: list[str], since: datetime
) -> Iterator[list[Any]]:
    """Pages of raw records with ``hs_lastmodifieddate >= since``, in stamp order."""
    start = since
    seen_at_start: set[str] = set()
    while True:
        offset = 0
        last_stamp: datetime | None = None
        ids_at_last: set[str] = set()
        complete: set[datetime] = set()  # stamps already read whole, by id
        previous: tuple[datetime, set[str]] | None = None  # last page's top stamp, its ids
        window_full = jump = False
        while True:
            result = _search_page(
                session,
                object_type,
                properties,
                [Filter(property_name=STAMP, operator="GTE", value=epoch_ms(start))],
                STAMP,
                offset,
            )
            raw = [(parse_stamp(i.properties.get(STAMP)), i) for i in result.results or []]
            tied = previous[0] if previous is not None else None
            if not raw or tied in complete or min(s for s, _ in raw) != tied:
                tied = None
            # A stamp in both this page and the last one (see the module's
            # docstring) is read whole below, not from this page.
            yield [
                i
                for s, i in raw
                if s not in complete and s != tied and str(i.id) not in seen_at_start
            ]
            if tied is not None and previous is not None:
                shown = previous[1] | (seen_at_start if tied == start else set())
                yield from _search_one_stamp(session, object_type, properties, tied, shown)
                complete.add(tied)
                # A page that ends on that stamp: what follows starts after it.
                jump = max(s for s, _ in raw) == tied
            for stamp, item in raw:
                if last_stamp is None or stamp > last_stamp:
                    last_stamp, ids_at_last = stamp, {str(item.id)}
                elif stamp == last_stamp:
                    ids_at_last.add(str(item.id))
            if raw:
                top = max(s for s, _ in raw)
                previous = (top, {str(i.id) for s, i in raw if s == top})
            nxt = result.paging.next if result.paging is not None else None
            if nxt is None or not nxt.after:
                return
            offset = int(nxt.after)
            if jump:
                break
            if offset + HS_SEARCH_PAGE > HS_SEARCH_MAX_RESULTS:
                window_full = True
                break
        if last_stamp is None or not (window_full or jump):
            return
        if last_stamp == start and last_stamp not in complete:
            # A whole window shares one stamp: walk that stamp by id, then go on after it.
            yield from _search_one_stamp(session, object_type, properties, start, seen_at_start)
            complete.add(start)
        if last_stamp in complete:
            start = datetime.fromtimestamp((int(epoch_ms(last_stamp)) + 1) / 1000, tz=UTC)
            seen_at_start = set()
            continue
        # Restart from the last stamp seen; the ids already yielded there are skipped.
        start, seen_at_start = last_stamp, ids_at_last


def _search_one_stamp(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    stamp: datetime,
    skip: set[str],
) -> Iterator[list[Any]]:
    """Every record modified exactly at ``stamp``, walked by ascending id."""
    last_id = 0
    while True:
        result = _search_page(
            session,
            object_type,
            properties,
            [
                Filter(property_name=STAMP, operator="EQ", value=epoch_ms(stamp)),
                Filter(property_name="hs_object_id", operator="GT", value=str(last_id)),
            ],
            "hs_object_id",
            0,
        )
        items = list(result.results or [])
        if not items:
            return
        yield [i for i in items if str(i.id) not in skip]
        last_id = max(int(i.id) for i in items)
        if len(items) < HS_SEARCH_PAGE:
            return


def _search_page(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    filters: list[Filter],
    sort: str,
    after: int,
) -> Any:
    """One page of a search: ``filters`` all apply, ascending by ``sort``."""
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=filters)],
        # The object form HubSpot's search guide documents. The client types
        # sorts as strings but serializes whatever it is given.
        sorts=[{"propertyName": sort, "direction": "ASCENDING"}],
        properties=properties,
        limit=HS_SEARCH_PAGE,
        after=str(after) if after else None,
    )
    return session.call(
        "search",
        session.search[object_type].do_search_with_http_info,
        public_object_search_request=request,
        search=True,
    )
