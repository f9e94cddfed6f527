"""HubSpot's JSON as it comes off the wire: records and paging, no SDK models.

List, search and batch-read pages are read raw (``HubSpotSession.call(...,
raw=True)``): building the client's model objects (and parsing every
timestamp with dateutil) costs about ten times the JSON parse itself, and
segsync only needs the ids, the property strings and the stamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.crm.base import CrmRecord, parse_stamp
from connector.crm.hubspot.values import STAMP

Item = dict[str, Any]
"""One record as HubSpot's JSON has it: ``id``, ``properties``, ``updatedAt``, …"""


def next_after(page: Mapping[str, Any]) -> str | None:
    """A raw page's ``paging.next.after``, or None on the last page."""
    nxt = (page.get("paging") or {}).get("next") or {}
    after = nxt.get("after")
    return str(after) if after else None


def record_of(item: Item) -> CrmRecord:
    """One raw JSON object (list, search or batch read) as a :class:`CrmRecord`."""
    properties = item.get("properties") or {}
    stamp = parse_stamp(properties.get(STAMP) or item.get("updatedAt"))
    return CrmRecord(str(item["id"]), stamp, properties)


def stamp_of(item: Item) -> Any:
    """The raw stamp text of ``item`` (``hs_lastmodifieddate``, else ``updatedAt``)."""
    return (item.get("properties") or {}).get(STAMP) or item.get("updatedAt")


def listed_company(item: Mapping[str, Any], primary_type: str) -> tuple[bool, str | None]:
    """The company a list page read with ``associations=companies`` names for ``item``.

    ``(False, None)``: the page cannot tell, so read the item's associations
    through the v4 batch read (which sees all of them and judges odd ids): it
    has no ``associations`` key (found by search, which cannot list them), its
    list carries a ``paging`` cursor (more than one answer holds), or it names
    a company by something other than a record id. ``(True, None)``: listed
    with no company. ``(True, id)``: the company linked by ``primary_type``,
    else the lowest id listed.
    """
    if "associations" not in item:
        return False, None
    listed = (item["associations"] or {}).get("companies")
    if not listed:
        return True, None
    links = list(listed.get("results") or [])
    following = ((listed.get("paging") or {}).get("next") or {}).get("after")
    if following or not all(str(link.get("id")).isdigit() for link in links):
        return False, None
    if not links:
        return True, None
    primary = [link for link in links if link.get("type") == primary_type]
    return True, min((str(link["id"]) for link in primary or links), key=int)
