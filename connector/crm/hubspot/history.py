"""Who set a value: HubSpot property history (``propertiesWithHistory`` on batch read).

Every property value in HubSpot carries its source: ``sourceType`` (``CRM_UI``
for an edit in the web app, ``IMPORT``, ``INTEGRATION`` for an app such as
segsync's private app, ``WORKFLOW``, ``API``, …), ``sourceId`` and, for
people, ``updatedByUserId``. The newest entry is the current value's.
A value whose newest entry comes from one of :data:`PERSON_SOURCES` was set
by a person; automation and integrations (segsync included) are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hubspot.crm.companies.models import (
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectId,
)

from connector.crm.hubspot.session import HubSpotSession
from connector.crm.limits import HS_HISTORY_BATCH

PERSON_SOURCES = frozenset({"CRM_UI", "IMPORT", "MOBILE_IOS", "MOBILE_ANDROID"})
"""Sources that are a person's hand: the web app, a file import, the mobile apps."""


def set_by_person(
    session: HubSpotSession, object_type: str, current: Mapping[str, Mapping[str, Any]]
) -> dict[str, frozenset[str]]:
    """Record id → the properties of ``current`` whose value a person set (see the module)."""
    ids = list(current)
    names = sorted({name for fields in current.values() for name in fields})
    found: dict[str, frozenset[str]] = {}
    for start in range(0, len(ids), HS_HISTORY_BATCH):
        chunk = ids[start : start + HS_HISTORY_BATCH]
        request = BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in chunk],
            properties=[],
            properties_with_history=names,
        )
        result = session.call(
            "batch read history",
            session.batch[object_type].read_with_http_info,
            request,
            # No ``archived``: false is the default, and the client would send
            # a Python bool as "False" (docs/crm-apis.md#hubspot-strict).
        )
        for item in result.results or []:
            record_id = str(item.id)
            histories = item.properties_with_history or {}
            by_person = frozenset(
                name
                for name, value in current.get(record_id, {}).items()
                if _person_set(histories.get(name) or [], value)
            )
            if by_person:
                found[record_id] = by_person
    return found


def _person_set(history: list[Any], value: Any) -> bool:
    """Whether the newest entry holds ``value`` and came from a person."""
    if not history:
        return False
    newest = max(history, key=lambda h: h.timestamp)
    return str(newest.value or "") == str(value or "") and newest.source_type in PERSON_SOURCES
