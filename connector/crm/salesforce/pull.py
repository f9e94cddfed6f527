"""REST pulls and fetches by id: SOQL pages of up to 2,000 records.

A pull whose first page's ``totalSize`` reaches ``bulk_read_threshold`` hands
over to Bulk API 2.0 (:class:`.bulk.Bulk`) without an extra call.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote_plus

from simple_salesforce.format import format_soql

from connector.crm.base import CrmRecord, Current, ObjectName, parse_stamp
from connector.crm.salesforce.bulk import Bulk
from connector.crm.salesforce.session import Client, SalesforceSession
from connector.crm.salesforce.soql import (
    EDITED_BY,
    PARENT_ID,
    SOBJECTS,
    STAMP,
    ParentMemory,
    Resume,
    check_names,
    columns,
    rest_record,
    soql,
    window,
)

# A query travels in the GET URL: Salesforce answers 414 when the URI passes 16,384
# bytes (431 when URI and headers together do). Fetches by id size each
# ``WHERE Id IN (...)`` to this many bytes of encoded query string, leaving room
# for the path and the headers.
FETCH_QUERY_BYTES = 12_000
# And never more ids than one page of results holds.
FETCH_CHUNK = 2_000


def id_chunks(template: str, ids: Sequence[str], budget: int = FETCH_QUERY_BYTES) -> Iterator[str]:
    """``template`` (one ``{}`` for the ids) filled in chunks each encoding within ``budget``."""
    base = len(quote_plus(format_soql(template, ["x"]))) - len(quote_plus("'x'"))
    chunk: list[str] = []
    size = base
    for record_id in ids:
        # Each id costs its quoted, URL-encoded form plus an encoded comma.
        cost = len(quote_plus(format_soql("{}", record_id))) + len(quote_plus(","))
        if chunk and (size + cost > budget or len(chunk) >= FETCH_CHUNK):
            yield format_soql(template, chunk)
            chunk, size = [], base
        chunk.append(record_id)
        size += cost
    if chunk:
        yield format_soql(template, chunk)


def _query_more(client: Client, url: str) -> Any:
    return client.sf.query_more(url, identifier_is_url=True)


class Puller:
    """Reads records of one org: incremental pulls and fetches by id."""

    def __init__(self, session: SalesforceSession, bulk: Bulk, parents: ParentMemory) -> None:
        self._session = session
        self._bulk = bulk
        self._parents = parents

    def pull(
        self,
        obj: ObjectName,
        fields: Sequence[str],
        since: datetime | None,
        parent_fields: Sequence[str] = (),
    ) -> Iterator[list[CrmRecord]]:
        """Pages of records with ``SystemModstamp >= since`` (all when None), oldest first."""
        sobject = SOBJECTS[obj]
        selected, parents = columns(obj, fields, parent_fields)
        since = parse_stamp(since) if since is not None else None
        own_user = None
        if since is not None:
            # The integration user's id comes with the login: log in first.
            self._session.authenticate()
            own_user = self._session.user_id
        where, args = window(since, own_user)
        query = format_soql(soql(selected, sobject, where), *args)
        first = self._session.call("query", lambda c: c.sf.query(query))
        total = int(first.get("totalSize") or 0)
        if total == 0:
            return
        resume = Resume(since, own_user=own_user)
        if total >= self._session.settings.bulk_read_threshold:
            yield from self._bulk.query(obj, selected, fields, parents, resume)
            return
        contact = obj == "contact"
        for raw_page in self._rest_pages(query, first):
            page = [rest_record(r, fields, parents, contact, self._parents) for r in raw_page]
            # format_soql drops sub-second precision from the watermark, so the query
            # may return a few records from just before it: drop them here.
            page = [r for r in page if resume.keep(r)]
            if page:
                yield page

    def _rest_pages(
        self, query: str, first: dict[str, Any] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """The records of a SOQL query, one REST page at a time (``first``: page 1, if read)."""
        call = self._session.call
        result = first if first is not None else call("query", lambda c: c.sf.query(query))
        while True:
            yield list(result.get("records") or [])
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = call("query more", partial(_query_more, url=str(next_url)))

    def fetch(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
    ) -> list[CrmRecord]:
        """Records by id (for retrying earlier failures); unknown or deleted ids are left out."""
        sobject = SOBJECTS[obj]
        selected, parents = columns(obj, fields, parent_fields)
        contact = obj == "contact"
        out: list[CrmRecord] = []
        for query in id_chunks(soql(selected, sobject, "Id IN {}"), ids):
            for raw_page in self._rest_pages(query):
                out.extend(
                    rest_record(r, fields, parents, contact, self._parents) for r in raw_page
                )
        return out

    def current(
        self, obj: ObjectName, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, Current]:
        """``ids`` as they stand: ``SystemModstamp``, ``fields``, and whether we edited last.

        One ``WHERE Id IN (...)`` query per URL-sized chunk of ids (about 500
        18-character ids: :data:`FETCH_QUERY_BYTES`), unordered, no parent
        columns. ``own`` compares ``LastModifiedById`` with the integration
        user, who logs in first.
        """
        if not ids:
            return {}
        sobject = SOBJECTS[obj]
        check_names(fields, "re-read")
        selected = list({c.lower(): c for c in ("Id", STAMP, EDITED_BY, *fields)}.values())
        self._session.authenticate()
        own_user = self._session.user_id
        wanted = {f.lower(): f for f in fields}
        out: dict[str, Current] = {}
        template = soql(selected, sobject, "Id IN {}", order=False)
        for query in id_chunks(template, ids):
            for raw_page in self._rest_pages(query):
                for raw in raw_page:
                    values = {k.lower(): v for k, v in raw.items() if k != "attributes"}
                    record_id = str(values["id"])
                    out[record_id] = Current(
                        record_id,
                        parse_stamp(values.get(STAMP.lower())),
                        {name: values.get(low) for low, name in wanted.items()},
                        own=own_user is not None and values.get(EDITED_BY.lower()) == own_user,
                    )
        return out

    def children(
        self,
        parent_ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
        exclude: Collection[str] = frozenset(),
    ) -> Iterator[list[CrmRecord]]:
        """Pages of the contacts whose ``AccountId`` is one of ``parent_ids``.

        One SOQL query per ``FETCH_CHUNK`` accounts (the same URL bound as a
        fetch by id), each followed through its REST pages. Contacts in
        ``exclude`` come in the answer anyway (naming them in the query would
        cost URL length) and are dropped here.
        """
        selected, parents = columns("contact", fields, parent_fields)
        for start in range(0, len(parent_ids), FETCH_CHUNK):
            chunk = list(parent_ids[start : start + FETCH_CHUNK])
            query = format_soql(soql(selected, SOBJECTS["contact"], f"{PARENT_ID} IN {{}}"), chunk)
            for raw_page in self._rest_pages(query):
                page = [
                    rest_record(r, fields, parents, True, self._parents)
                    for r in raw_page
                    if str(r.get("Id")) not in exclude
                ]
                if page:
                    yield page
