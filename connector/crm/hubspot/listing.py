"""The list endpoint: every live (or every archived) record of an object type, 100 a page."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from connector.crm.hubspot.raw import Item, next_after
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.limits import HS_LIST_PAGE


def list_pages(
    session: HubSpotSession,
    object_type: str,
    properties: list[str],
    associations: Sequence[str] = (),
    *,
    archived: bool = False,
) -> Iterator[list[Item]]:
    """Every live record of ``object_type``, one list page (raw JSON objects) at a time.

    ``associations``: object types whose associated ids each record carries;
    then every record has an ``associations`` key (``{}`` when it has none),
    which tells it from a record read where none can be asked for (search).
    ``archived``: the archived (deleted, restorable) records instead, each with
    its ``archivedAt``; in id order like the live ones, not by when archived.
    """
    after: str | None = None
    while True:
        # ``archived`` is left out for live records: false is its default, and
        # the client would send a Python bool as "False" where the spec wants
        # "false"; for archived ones it is sent as the spec spells it.
        kwargs: dict[str, Any] = {"limit": HS_LIST_PAGE, "properties": properties}
        if archived:
            kwargs["archived"] = "true"
        if associations:
            kwargs["associations"] = list(associations)
        if after is not None:
            kwargs["after"] = after
        page = session.call(
            "list", session.basic[object_type].get_page_with_http_info, raw=True, **kwargs
        )
        results = list(page.get("results") or [])
        if associations:
            for item in results:
                item.setdefault("associations", {})
        yield results
        after = next_after(page)
        if after is None:
            return
