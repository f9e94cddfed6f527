"""Incremental pulls: search windows on the stamp that never reach the cap.

HubSpot's search endpoint returns at most 10,000 results for one query, 200
a page. A walk of ``hs_lastmodifieddate >= since`` sorted by the stamp is
therefore cut into windows: before a window reaches the cap, the next one
starts again from the last stamp seen, skipping the ids already yielded at
that stamp. When a whole window shares one stamp (more records modified in
the same millisecond than a window holds), that stamp is walked on its own
by ``hs_object_id`` and the walk goes on one millisecond after it, so no
record is lost and no window repeats forever.
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
        window_full = False
        while True:
            result = _search_page(
                session,
                object_type,
                properties,
                [Filter(property_name=STAMP, operator="GTE", value=epoch_ms(start))],
                STAMP,
                offset,
            )
            items = [i for i in (result.results or []) if str(i.id) not in seen_at_start]
            yield items
            for item in result.results or []:
                stamp = parse_stamp(item.properties.get(STAMP))
                if last_stamp is None or stamp > last_stamp:
                    last_stamp, ids_at_last = stamp, {str(item.id)}
                elif stamp == last_stamp:
                    ids_at_last.add(str(item.id))
            nxt = result.paging.next if result.paging is not None else None
            if nxt is None or not nxt.after:
                return
            offset = int(nxt.after)
            if offset + HS_SEARCH_PAGE > HS_SEARCH_MAX_RESULTS:
                window_full = True
                break
        if not window_full or last_stamp is None:
            return
        if last_stamp == start:
            # A whole window shares one stamp: walk that stamp by id, then go on after it.
            yield from _search_one_stamp(session, object_type, properties, start, seen_at_start)
            start = datetime.fromtimestamp((int(epoch_ms(start)) + 1) / 1000, tz=UTC)
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
        sorts=[f"{sort}"],
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
