"""Incremental pulls: keyset walks on the stamp, which an edit during the walk cannot shift.

HubSpot's search pages a query by offset (``after``), and an offset counts
records in the order the query has *now*: a record already passed that is
edited during the walk moves to the end (its stamp is the newest), every
later record shifts one place left, and the record at the page boundary is
never read. So no walk here sends ``after``. Every page is a new query that
starts from the last stamp seen (keyset paging, the way HubSpot's docs say
to get past the 10,000-result cap): ``hs_lastmodifieddate > t`` OR
(``hs_lastmodifieddate = t`` AND ``hs_object_id`` ≠ each id already read at
``t``), sorted by the stamp. A record edited meanwhile moves above ``t`` and
is read again at its new stamp; nothing at or above ``t`` is passed over.

Ties: search sorts by one property only, and records sharing a stamp may
come back in any order on every request. The ids already read at the last
stamp are left out by ``NEQ`` filters, a few at most
(:data:`MAX_EXCLUDED`); when more records share the page's last stamp, or a
whole page is one stamp (more records modified in the same millisecond than
a page holds), that stamp is read whole by ``hs_object_id`` (keyset again:
ids are unique, so their order is total) and the walk goes on one
millisecond after it. No query ever pages, so none nears the cap. The sort
is sent in the object form the search guide documents: an ignored sort would
break every assumption above.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from connector.crm.base import parse_stamp
from connector.crm.hubspot.raw import Item, next_after, stamp_of
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import STAMP, epoch_ms
from connector.crm.limits import HS_SEARCH_PAGE

ID = "hs_object_id"

#: Ids already read at the last stamp that the next query leaves out by
#: ``NEQ`` filters: with the stamp filter, at most 5 in a group (HubSpot
#: documents 6 filters a group). More than that at one stamp: read by id.
MAX_EXCLUDED = 4


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
    groups: list[list[dict[str, str]]] = [[search_filter(STAMP, "GTE", epoch_ms(since)), *below]]
    while True:
        result = (
            first
            if first is not None
            else _search_groups(session, object_type, properties, groups, STAMP)
        )
        first = None
        raw = sorted(
            ((parse_stamp(stamp_of(i)), i) for i in result.get("results") or []),
            key=lambda pair: pair[0],
        )
        yield [item for _, item in raw]
        if not raw or next_after(result) is None:
            return  # the query's every match was on this page
        top = raw[-1][0]
        at_top = {str(i["id"]) for s, i in raw if s == top}
        if groups[-1][0]["operator"] == "EQ" and top == _ms(groups[-1][0]["value"]):
            # Still on the last page's stamp: what it showed there is read too.
            at_top |= {f["value"] for f in groups[-1][1:]}
        if raw[0][0] == top or len(at_top) > MAX_EXCLUDED:
            # A page of one stamp, or many ids on it: read that stamp whole by id.
            yield from _search_one_stamp(session, object_type, properties, top, at_top)
            after = [search_filter(STAMP, "GT", epoch_ms(top)), *below]
            groups = [after]
            continue
        rest = [search_filter(ID, "NEQ", record_id) for record_id in sorted(at_top)]
        groups = [
            [search_filter(STAMP, "GT", epoch_ms(top)), *below],
            [search_filter(STAMP, "EQ", epoch_ms(top)), *rest],
        ]


def _ms(value: str) -> datetime:
    """An epoch-millisecond filter value as a datetime."""
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


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
    groups = [filters] if filters else []
    return _search_groups(
        session, object_type, properties, groups, sort, after, limit=limit, descending=descending
    )


def _search_groups(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    groups: list[list[dict[str, str]]],
    sort: str,
    after: int = 0,
    *,
    limit: int = HS_SEARCH_PAGE,
    descending: bool = False,
) -> dict[str, Any]:
    """One page of a search (raw JSON): records any of ``groups`` matches, sorted by ``sort``."""
    request: dict[str, Any] = {
        "filterGroups": [{"filters": filters} for filters in groups],
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
