"""Reading records: full pulls by the list endpoint, reads by id, parent fields.

Full pulls walk the list endpoint (100 a page); incremental ones walk search
windows (:mod:`.search`); large ones of either kind are read in parts at once
(:mod:`.partition`). Contacts that need their company's fields are
gathered 1,000 at a time, one association batch read's worth, before their
companies are looked up (:mod:`.parents`; list pages ask for the contacts'
company associations themselves).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from connector.crm.base import (
    CrmRecord,
    EchoTest,
    KnownParents,
    KnownWindow,
    ReadClock,
    TimedPages,
)
from connector.crm.hubspot.associations import company_contacts
from connector.crm.hubspot.parents import Parents
from connector.crm.hubspot.partition import full_pages, window_pages
from connector.crm.hubspot.raw import Item, record_of
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import OBJECT_TYPES, STAMP
from connector.crm.hubspot.window import search_known
from connector.crm.limits import HS_ASSOC_BATCH, HS_BATCH
from connector.crm.tally import carried

T = TypeVar("T")


def pull(
    session: HubSpotSession,
    object_type: str,
    fields: Sequence[str],
    since: datetime | None,
    parent_fields: Sequence[str] = (),
    echo: EchoTest | None = None,
    known: KnownParents | None = None,
    window: KnownWindow | None = None,
) -> TimedPages[list[CrmRecord]]:
    """Pages of records: the list endpoint when full, search windows when incremental.

    Records ``echo`` names (segsync's own writes read back) are yielded
    without their parent: the runner skips them, so their association and
    company reads would be wasted calls. With ``window`` (from ``since``)
    the window is left unread when a count proves it known (:mod:`.window`).
    The pull began (:meth:`~connector.crm.base.TimedPages.began`) at the
    earliest serving time its answers' ``Date`` allows.
    """
    clock = ReadClock()
    pages = _pages(session, object_type, fields, since, parent_fields, echo, known, window)
    return TimedPages(_timed(session, clock, pages), clock)


def _timed(
    session: HubSpotSession, clock: ReadClock, pages: Iterator[list[CrmRecord]]
) -> Iterator[list[CrmRecord]]:
    """``pages`` read with ``clock`` noting every answer (a generator: nothing runs until read)."""
    with session.reads(clock):
        yield from pages


def _pages(
    session: HubSpotSession,
    object_type: str,
    fields: Sequence[str],
    since: datetime | None,
    parent_fields: Sequence[str],
    echo: EchoTest | None,
    known: KnownParents | None,
    window: KnownWindow | None,
) -> Iterator[list[CrmRecord]]:
    properties = sorted({*fields, STAMP})
    listed_with = ["companies"] if parent_fields else []
    if since is None:
        pages = full_pages(session, object_type, properties, associations=listed_with)
    elif window is not None:
        pages = search_known(session, object_type, properties, window)
    else:
        pages = window_pages(session, object_type, properties, since)
    if parent_fields:
        # One association batch read takes 1,000 ids: gather that many
        # records before looking their parents up, not one list page's 100.
        pages = regroup(pages, HS_ASSOC_BATCH)
    parents = _parents(session, parent_fields, known)
    for raw in pages:
        if raw:
            yield records(raw, parents, echo)


def fetch(
    session: HubSpotSession,
    object_type: str,
    ids: Sequence[str],
    fields: Sequence[str],
    parent_fields: Sequence[str] = (),
    known: KnownParents | None = None,
    parents: Parents | None = None,
) -> list[CrmRecord]:
    """Records by id, 100 a batch read, up to ``max_concurrency`` at once; unknown ids left out.

    Parent fields are looked up once for all of them (an association read per
    1,000 contacts, then the companies: see :mod:`.parents`), not per batch read.
    """
    properties = sorted({*fields, STAMP})

    def read(chunk: Sequence[str]) -> list[Item]:
        # A plain dict: the client serializes it as it is, no model per id.
        request: dict[str, Any] = {"inputs": [{"id": i} for i in chunk], "properties": properties}
        result = session.call(
            "batch read",
            session.batch[object_type].read_with_http_info,
            request,
            raw=True,
            # No ``archived``: see list_pages.
        )
        return list(result.get("results") or [])

    chunks = [ids[start : start + HS_BATCH] for start in range(0, len(ids), HS_BATCH)]
    workers = max(1, min(session.settings.max_concurrency, len(chunks)))
    items: list[Item] = []
    if workers == 1:
        for chunk in chunks:
            items.extend(read(chunk))
    else:
        # Several batch reads in flight (the re-read before each write chunk is one of these).
        with ThreadPoolExecutor(workers, thread_name_prefix="hubspot-fetch") as pool:
            for found in pool.map(carried(read), chunks):
                items.extend(found)
    if not items:
        return []
    return records(items, parents or _parents(session, parent_fields, known))


def children(
    session: HubSpotSession,
    company_ids: Sequence[str],
    fields: Sequence[str],
    parent_fields: Sequence[str] = (),
    exclude: Collection[str] = frozenset(),
    known: KnownParents | None = None,
) -> Iterator[list[CrmRecord]]:
    """Pages of the contacts associated with ``company_ids``, with their own company's fields.

    The v4 association batch read lists the contacts (1,000 companies a
    call), then they are read by id, 1,000 a page: ten batch reads, one
    association read and a company read per 100 of their companies.
    Contacts in ``exclude`` are not read.
    """
    ids = [i for i in company_contacts(session, company_ids) if i not in exclude]
    parents = _parents(session, parent_fields, known)
    for start in range(0, len(ids), HS_ASSOC_BATCH):
        page = fetch(
            session,
            OBJECT_TYPES["contact"],
            ids[start : start + HS_ASSOC_BATCH],
            fields,
            parents=parents,
        )
        if page:
            yield page


def records(
    items: Sequence[Item],
    parents: Parents | None,
    echo: EchoTest | None = None,
) -> list[CrmRecord]:
    """Raw JSON objects as :class:`CrmRecord`, with their company's fields when asked.

    Records ``echo`` names get no parent (and cost no association read).
    """
    bare = [record_of(item) for item in items]
    if parents is None:
        return bare
    skipped = echo(bare) if echo is not None else set()
    wanted = [item for item in items if str(item["id"]) not in skipped]
    found = parents.of(wanted) if wanted else {}
    return [
        CrmRecord(r.id, r.stamp, r.fields, None if r.id in skipped else found.get(r.id))
        for r in bare
    ]


def regroup(pages: Iterator[list[T]], size: int) -> Iterator[list[T]]:
    """Pages of at least ``size`` items (the last may be smaller), in order."""
    buffer: list[T] = []
    for page in pages:
        buffer.extend(page)
        if len(buffer) >= size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def _parents(
    session: HubSpotSession, parent_fields: Sequence[str], known: KnownParents | None
) -> Parents | None:
    """The parent lookup of one pull (none when no parent field is asked for)."""
    if not parent_fields:
        return None

    def read(ids: Sequence[str], wanted: Sequence[str]) -> list[CrmRecord]:
        return fetch(session, OBJECT_TYPES["account"], ids, wanted)

    return Parents(session, parent_fields, read, known)
