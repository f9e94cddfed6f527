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

from connector.crm.base import parse_stamp
from connector.crm.hubspot.raw import Item, next_after
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import STAMP, epoch_ms
from connector.crm.limits import HS_SEARCH_MAX_RESULTS, HS_SEARCH_PAGE

ID = "hs_object_id"


def search_since(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    since: datetime,
    until: datetime | None = None,
    *,
    first: dict[str, Any] | None = None,
) -> Iterator[list[Item]]:
    """Pages of raw records with ``since <= hs_lastmodifieddate`` (``< until``), in stamp order.

    ``first``: the walk's first page, already read (by :func:`first_page`).
    """
    below = [search_filter(STAMP, "LT", epoch_ms(until))] if until is not None else []
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
            result = (
                first
                if first is not None
                else _search_page(
                    session,
                    object_type,
                    properties,
                    [search_filter(STAMP, "GTE", epoch_ms(start)), *below],
                    STAMP,
                    offset,
                )
            )
            first = None
            raw = [
                (parse_stamp((i.get("properties") or {}).get(STAMP)), i)
                for i in result.get("results") or []
            ]
            tied = previous[0] if previous is not None else None
            if not raw or tied in complete or min(s for s, _ in raw) != tied:
                tied = None
            # A stamp in both this page and the last one (see the module's
            # docstring) is read whole below, not from this page.
            yield [
                i
                for s, i in raw
                if s not in complete and s != tied and str(i["id"]) not in seen_at_start
            ]
            if tied is not None and previous is not None:
                shown = previous[1] | (seen_at_start if tied == start else set())
                yield from _search_one_stamp(session, object_type, properties, tied, shown)
                complete.add(tied)
                # A page that ends on that stamp: what follows starts after it.
                jump = max(s for s, _ in raw) == tied
            for stamp, item in raw:
                if last_stamp is None or stamp > last_stamp:
                    last_stamp, ids_at_last = stamp, {str(item["id"])}
                elif stamp == last_stamp:
                    ids_at_last.add(str(item["id"]))
            if raw:
                top = max(s for s, _ in raw)
                previous = (top, {str(i["id"]) for s, i in raw if s == top})
            after = next_after(result)
            if after is None:
                return
            offset = int(after)
            if jump:
                break
            if offset + HS_SEARCH_PAGE > HS_SEARCH_MAX_RESULTS:
                window_full = True
                break
        if last_stamp is None or not (window_full or jump):
            return
        if last_stamp == start and last_stamp not in complete:
            # A whole window shares one stamp: walk that stamp by id, then go on after it
            # (skipping what this window and the last one showed of it).
            shown = seen_at_start | ids_at_last
            yield from _search_one_stamp(session, object_type, properties, start, shown)
            complete.add(start)
        if last_stamp in complete:
            start = datetime.fromtimestamp((int(epoch_ms(last_stamp)) + 1) / 1000, tz=UTC)
            seen_at_start = set()
            continue
        # Restart from the last stamp seen; the ids already yielded there are skipped.
        start, seen_at_start = last_stamp, ids_at_last


def first_page(
    session: HubSpotSession, object_type: str, properties: list[str], since: datetime
) -> dict[str, Any]:
    """The first page of :func:`search_since` from ``since`` (its ``total`` says how many)."""
    return _search_page(
        session, object_type, properties, [search_filter(STAMP, "GTE", epoch_ms(since))], STAMP, 0
    )


def probe(
    session: HubSpotSession,
    object_type: str,
    filters: list[dict[str, str]],
    sort: str,
    *,
    rank: int = 0,
    descending: bool = False,
) -> tuple[int, Item | None]:
    """How many records ``filters`` match, and the one at ``rank`` in ``sort`` order.

    One search call of one result; ``rank`` must stay under the 10,000-result cap.
    """
    result = _search_page(
        session, object_type, [sort], filters, sort, rank, limit=1, descending=descending
    )
    items = result.get("results") or []
    return int(result.get("total") or 0), (items[0] if items else None)


def _search_one_stamp(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    stamp: datetime,
    skip: set[str],
) -> Iterator[list[Item]]:
    """Every record modified exactly at ``stamp``, walked by ascending id."""
    yield from search_by_id(
        session, object_type, properties, [search_filter(STAMP, "EQ", epoch_ms(stamp))], skip=skip
    )


def search_by_id(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    filters: list[dict[str, str]],
    *,
    above: int = 0,
    upto: int | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
) -> Iterator[list[Item]]:
    """Every record ``filters`` match with ``above < hs_object_id <= upto``, by ascending id.

    Keyset paging: each page is a new query from the last id seen, so no
    query nears the 10,000-result cap and ties cannot occur (ids are unique).
    """
    last_id = above
    ceiling = [search_filter(ID, "LTE", str(upto))] if upto is not None else []
    while True:
        result = _search_page(
            session,
            object_type,
            properties,
            [*filters, search_filter(ID, "GT", str(last_id)), *ceiling],
            ID,
            0,
        )
        items = list(result.get("results") or [])
        if not items:
            return
        yield [i for i in items if str(i["id"]) not in skip]
        last_id = max(int(i["id"]) for i in items)
        if len(items) < HS_SEARCH_PAGE or next_after(result) is None:
            return


def search_filter(name: str, operator: str, value: str) -> dict[str, str]:
    """One search filter, as the JSON the search endpoint takes."""
    return {"propertyName": name, "operator": operator, "value": value}


def _search_page(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    filters: list[dict[str, str]],
    sort: str,
    after: int,
    *,
    limit: int = HS_SEARCH_PAGE,
    descending: bool = False,
) -> dict[str, Any]:
    """One page of a search (raw JSON): ``filters`` all apply, sorted by ``sort``."""
    request: dict[str, Any] = {
        "filterGroups": [{"filters": filters}] if filters else [],
        # The object form HubSpot's search guide documents.
        "sorts": [{"propertyName": sort, "direction": "DESCENDING" if descending else "ASCENDING"}],
        "properties": properties,
        "limit": limit,
    }
    if after:
        request["after"] = str(after)
    result: dict[str, Any] = session.call(
        "search",
        session.search[object_type].do_search_with_http_info,
        public_object_search_request=request,
        search=True,
        raw=True,
    )
    return result
