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
