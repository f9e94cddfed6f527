"""REST pulls and fetches by id: SOQL pages of up to 2,000 records.

A pull whose first page's ``totalSize`` reaches ``bulk_read_threshold`` hands
over to Bulk API 2.0 (:class:`.bulk.Bulk`) without an extra call.

A pull that selects two or more long text areas (Salesforce caps such a
query's pages at 200 rows) splits its columns over queries of one long text
area each, sent together as one Composite call a page and paged by keyset
(:meth:`Puller._split_pull`; docs/crm-apis.md, "Long text areas split across
one Composite call").
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote_plus, urlsplit

from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_soql

from connector.crm.base import (
    CrmRecord,
    Current,
    ObjectName,
    ReadClock,
    TimedPages,
    parse_stamp,
)
from connector.crm.limits import SF_QUERY_PAGE
from connector.crm.salesforce.bulk import Bulk
from connector.crm.salesforce.describe import Describer, Fields, lookup
from connector.crm.salesforce.session import NEVER, Client, SalesforceSession
from connector.crm.salesforce.soql import (
    EDITED_BY,
    PARENT,
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
from connector.errors import FatalSyncError

# A query travels in the GET URL: Salesforce answers 414 when the URI passes 16,384
# bytes (431 when URI and headers together do). Fetches by id size each
# ``WHERE Id IN (...)`` to this many bytes of encoded query string, leaving room
# for the path and the headers.
FETCH_QUERY_BYTES = 12_000
# And never more ids than one page of results holds.
FETCH_CHUNK = 2_000
# What simple-salesforce raises for each status (its exception_handler's table).
_SUBREQUEST_ERRORS: dict[int, type[SalesforceError]] = {
    400: SalesforceMalformedRequest,
    401: SalesforceExpiredSession,
    403: SalesforceRefusedRequest,
    404: SalesforceResourceNotFound,
}
# Composite runs up to 25 subrequests as one API call, at most 5 of them queries.
COMPOSITE_QUERIES = 5
# Ids a re-read query that selects output values names: Salesforce's smallest
# query batch (200 rows, where long text areas are selected) holds their answer.
VALUES_CHUNK = 200
# Fresh records one re-read call covers (five queries of 200, one Composite call).
RECHECK_CALL = COMPOSITE_QUERIES * VALUES_CHUNK
# A text area longer than this is a long (or rich) text area: two of them in
# one SELECT list cap its query pages at 200 rows.
TEXT_AREA_LENGTH = 255
# Rows a keyset page of a split pull asks each of its queries for (``LIMIT``).
KEYSET_PAGE = SF_QUERY_PAGE

Key = tuple[datetime, str]


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


def _recheck_columns(fields: Sequence[str]) -> list[str]:
    """The SELECT list of a re-read: id, stamp, last editor and ``fields``, once each."""
    return list({c.lower(): c for c in ("Id", STAMP, EDITED_BY, *fields)}.values())


def _composite_queries(client: Client, queries: Sequence[str]) -> list[dict[str, Any]]:
    """The first page of each of ``queries`` (at most 5), through one Composite request.

    A subrequest that failed raises what simple-salesforce raises for the same
    status on its own (so errors translate, retry and re-authenticate alike).
    Each subrequest URL stays within the budget of a plain query's
    (:data:`FETCH_QUERY_BYTES`): Salesforce documents no other bound for it.
    """
    base = urlsplit(client.sf.base_url).path
    refs = [f"q{n}" for n in range(len(queries))]
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {"method": "GET", "url": f"{base}query/?q={quote_plus(q)}", "referenceId": ref}
            for ref, q in zip(refs, queries, strict=True)
        ],
    }
    answer = client.sf.restful("composite", method="POST", json=body)
    subs = {
        str(sub.get("referenceId")): sub
        for sub in (answer or {}).get("compositeResponse") or []
        if isinstance(sub, dict)
    }
    out: list[dict[str, Any]] = []
    for ref in refs:
        sub = subs.get(ref)
        if sub is None:
            raise FatalSyncError(f"Salesforce query: the Composite answer has no {ref}")
        status = int(sub.get("httpStatusCode") or 0)
        if status >= 300:
            error = _SUBREQUEST_ERRORS.get(status, SalesforceGeneralError)
            content: Any = sub.get("body")  # parsed JSON, as simple-salesforce passes it
            raise error(client.sf.base_url + "composite", status, "composite", content)
        result = sub.get("body")
        if not isinstance(result, dict):
            raise FatalSyncError(f"Salesforce query: {ref} answered no query result")
        out.append(result)
    return out


def long_text(entry: Mapping[str, Any] | None) -> bool:
    """Whether a describe entry is a long or rich text area (``textarea`` over 255 characters).

    A plain text area is ``textarea`` of length 255; long and rich text areas
    (``extraTypeInfo`` ``plaintextarea`` / ``richtextarea``) are longer.
    """
    if entry is None or entry.get("type") != "textarea":
        return False
    return int(entry.get("length") or 0) > TEXT_AREA_LENGTH


def split_columns(
    selected: Sequence[str], own: Fields | None, parent: Fields | None = None
) -> list[list[str]] | None:
    """The SELECT lists of a split pull, or None to keep one query.

    With two to four long text areas among ``selected`` (described in
    ``own``; a fifth query is the count's): the first list holds every other
    column and the first long text area, each further list ``Id``,
    ``SystemModstamp`` and one more. None when the describe is unknown, a
    column is missing from it, a parent column (``Account.X``, described in
    ``parent``) is unknown or long text itself, or there are fewer than two
    or more than four long text areas.
    """
    if own is None:
        return None
    plain = [c for c in selected if "." not in c]
    if any(lookup(own, c) is None for c in plain):
        return None
    long = [c for c in plain if long_text(lookup(own, c))]
    if len(long) < 2 or len(long) + 1 > COMPOSITE_QUERIES:
        return None
    related = [c.split(".", 1)[1] for c in selected if "." in c]
    if related and (
        parent is None
        or any(lookup(parent, n) is None or long_text(lookup(parent, n)) for n in related)
    ):
        return None
    first = [c for c in selected if c not in long[1:]]
    return [first, *(["Id", STAMP, c] for c in long[1:])]


def keyset(where: str, args: Sequence[Any], after: Key | None) -> tuple[str, list[Any]]:
    """``where`` narrowed to the rows ordered after ``after`` (``SystemModstamp, Id``)."""
    if after is None:
        return where, list(args)
    above = f"({STAMP} > {{}} OR ({STAMP} = {{}} AND Id > {{}}))"
    return (f"{where} AND {above}" if where else above), [*args, after[0], after[0], after[1]]


def _key(row: Mapping[str, Any]) -> Key:
    return parse_stamp(row.get(STAMP)), str(row.get("Id"))


def _order(key: Key) -> tuple[datetime, str]:
    # Ids compare (and sort) on their case-sensitive 15-character form; its
    # alphabet (0-9, A-Z, a-z) sorts as the characters' codes do.
    return key[0], key[1][:15]


def join_page(
    answers: Sequence[Mapping[str, Any]], page: int = KEYSET_PAGE
) -> tuple[list[dict[str, Any]], Key | None]:
    """One keyset page of a split pull: the first query's rows completed by the others'.

    ``answers``: the first page of each query, all over the same rows in the
    same order. The page reaches as far as every query answered: to the last
    key of the lowest query that may have more (a full page, or not done),
    or everything when none may. A row of the first query is kept only when
    every other query has it at the same ``SystemModstamp``; otherwise it was
    changed or deleted between the subrequests, and is left for where its new
    stamp puts it (docs/crm-apis.md, "Long text areas split across one
    Composite call"). Returns the rows and the key the next page starts
    after (None: the walk is done).
    """
    rows = [list(a.get("records") or []) for a in answers]
    ends = [
        _key(r[-1])
        for a, r in zip(answers, rows, strict=True)
        if r and (len(r) >= page or not a.get("done", True))
    ]
    end = min(ends, key=_order) if ends else None
    others = [{str(r.get("Id")): r for r in more} for more in rows[1:]]
    out: list[dict[str, Any]] = []
    for row in rows[0] if rows else []:
        key = _key(row)
        if end is not None and _order(key) > _order(end):
            break
        parts = [o.get(key[1]) for o in others]
        if any(p is None or parse_stamp(p.get(STAMP)) != key[0] for p in parts):
            continue
        joined = dict(row)
        for part in parts:
            joined.update((k, v) for k, v in (part or {}).items() if k != "attributes")
        out.append(joined)
    return out, end


class Puller:
    """Reads records of one org: incremental pulls and fetches by id."""

    def __init__(
        self,
        session: SalesforceSession,
        bulk: Bulk,
        parents: ParentMemory,
        describer: Describer | None = None,
    ) -> None:
        self._session = session
        self._bulk = bulk
        self._parents = parents
        self._describer = describer

    def pull(
        self,
        obj: ObjectName,
        fields: Sequence[str],
        since: datetime | None,
        parent_fields: Sequence[str] = (),
    ) -> TimedPages[list[CrmRecord]]:
        """Pages of records with ``SystemModstamp >= since`` (all when None), oldest first.

        The pull began (:meth:`~connector.crm.base.TimedPages.began`) when its
        first query was served: every later read, a Bulk job restarted from a
        stamp included, comes after it.
        """
        clock = ReadClock()
        return TimedPages(self._pull(obj, fields, since, parent_fields, clock), clock)

    def _pull(
        self,
        obj: ObjectName,
        fields: Sequence[str],
        since: datetime | None,
        parent_fields: Sequence[str],
        clock: ReadClock,
    ) -> Iterator[list[CrmRecord]]:
        sobject = SOBJECTS[obj]
        selected, parents = columns(obj, fields, parent_fields)
        since = parse_stamp(since) if since is not None else None
        own_user = None
        if since is not None:
            # The integration user's id comes with the login: log in first.
            self._session.authenticate()
            own_user = self._session.user_id
        where, args = window(since, own_user)
        splits = self._split(obj, selected)
        if splits is not None:
            resume = Resume(since, own_user=own_user)
            context = (obj, selected, fields, parents, resume)
            yield from self._split_pull(context, splits, where, args, clock)
            return
        query = format_soql(soql(selected, sobject, where), *args)
        first = self._session.call("query", lambda c: c.sf.query(query))
        # Every record this pull reads, it reads after this query was sent (a
        # Bulk job's snapshot comes later still): the stamps' seconds closed by
        # then are the ones its records may be known at (sync/window.py).
        read_at = self._session.answered_at()
        clock.note(None if read_at == NEVER else read_at)
        total = int(first.get("totalSize") or 0)
        if total == 0:
            return
        resume = Resume(since, own_user=own_user)
        if total >= self._session.settings.bulk_read_threshold:
            yield from self._bulk.query(obj, selected, fields, parents, resume, read_at)
            return
        contact = obj == "contact"
        for raw_page in self._rest_pages(query, first):
            page = [
                rest_record(r, fields, parents, contact, self._parents, read_at) for r in raw_page
            ]
            # format_soql drops sub-second precision from the watermark, so the query
            # may return a few records from just before it: drop them here.
            page = [r for r in page if resume.keep(r)]
            if page:
                yield page

    def _split(self, obj: ObjectName, selected: Sequence[str]) -> list[list[str]] | None:
        """:func:`split_columns` by the kept describes (no call: unknown keeps one query)."""
        if self._describer is None:
            return None
        own = self._describer.kept(SOBJECTS[obj])
        related = any("." in c for c in selected)
        parent = self._describer.kept(PARENT) if related and own is not None else None
        return split_columns(selected, own, parent)

    def _split_pull(
        self,
        context: tuple[ObjectName, list[str], Sequence[str], list[str], Resume],
        splits: Sequence[Sequence[str]],
        where: str,
        args: Sequence[Any],
        clock: ReadClock,
    ) -> Iterator[list[CrmRecord]]:
        """A pull over ``splits``: one Composite call a keyset page of up to 2,000 rows.

        Each call also counts what is left of the window (``SELECT COUNT()``
        of the same keyset part, one more query subrequest): on the first
        call that count decides REST or Bulk, as the first page's
        ``totalSize`` does for one query; on any call, a first query that
        read at least as many rows as were counted before it, all of them
        judged (:func:`join_page`), ends the walk without asking for an empty
        page. Each page starts after the key the previous one reached; no
        query locator is left open.
        """
        obj, selected, fields, parents, resume = context
        sobject = SOBJECTS[obj]
        after: Key | None = None
        read_at: datetime | None = None
        contact = obj == "contact"
        while True:
            part, part_args = keyset(where, args, after)
            count = format_soql(soql(["COUNT()"], sobject, part, order=False), *part_args)
            queries = [
                format_soql(f"{soql(cols, sobject, part)} LIMIT {KEYSET_PAGE}", *part_args)
                for cols in splits
            ]
            counted, *answers = self._session.call(
                "query", partial(_composite_queries, queries=[count, *queries])
            )
            left = int(counted.get("totalSize") or 0)
            if read_at is None:
                # As for one query: every record the pull reads, it reads after this.
                read_at = self._session.answered_at()
                clock.note(None if read_at == NEVER else read_at)
                if left == 0:
                    return
                if left >= self._session.settings.bulk_read_threshold:
                    # A Bulk pull of any length keeps nothing of this answer.
                    del counted, answers
                    yield from self._bulk.query(obj, selected, fields, parents, resume, read_at)
                    return
            before = after
            rows, after = join_page(answers)
            if before is not None and after is not None and _order(after) <= _order(before):
                # The keyset's literal keeps whole seconds (format_soql), as Salesforce's
                # stamps do: a stamp with sub-second digits would be read again for ever.
                raise FatalSyncError(
                    f"Salesforce pull of {sobject}: the keyset walk did not move past "
                    f"{after[0].isoformat()} {after[1]} (a SystemModstamp with sub-second "
                    "digits, which Salesforce does not keep?)"
                )
            page = [rest_record(r, fields, parents, contact, self._parents, read_at) for r in rows]
            # format_soql drops sub-second precision from the watermark: as for one query.
            page = [r for r in page if resume.keep(r)]
            if page:
                yield page
            first = list(answers[0].get("records") or [])
            if after is None or (first and _key(first[-1]) == after and len(first) >= left):
                # Whatever the count did not see was committed after this call
                # began: later than the pull's start, read by the next pull.
                return

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

    def _read_pages(self, query: str) -> Iterator[tuple[datetime | None, list[dict[str, Any]]]]:
        """:meth:`_rest_pages` of ``query``, each page with when the query was read.

        The first answer's read time (the org's clock, a lower bound:
        :meth:`~.session.SalesforceSession.answered_at`; None without a
        ``Date``) stands for every page: the earliest is the safe side of both
        rules that use it (connector/sync/window.py: a pair counts as settled
        later, a record counts as read in its own second sooner).
        """
        first = self._session.call("query", lambda c: c.sf.query(query))
        answered = self._session.answered_at()
        read_at = None if answered == NEVER else answered
        for page in self._rest_pages(query, first):
            yield read_at, page

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
            for read_at, raw_page in self._read_pages(query):
                out.extend(
                    rest_record(r, fields, parents, contact, self._parents, read_at)
                    for r in raw_page
                )
        return out

    def current(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        settled: Collection[str] = frozenset(),
        keep: Sequence[str] = (),
    ) -> dict[str, Current]:
        """``ids`` as they stand: ``SystemModstamp``, ``fields``, and whether we edited last.

        ``WHERE Id IN (...)`` queries, up to five in one Composite request (one
        API call, :data:`COMPOSITE_QUERIES`), unordered, no parent columns:

        - ids not in ``settled``: every one of ``fields``, 200 ids a query, so
          the answer is one page whatever the columns (long text areas shrink
          pages to 200 rows; 200 is Salesforce's smallest query batch);
        - ids in ``settled``: only ``keep`` of ``fields`` (the stamp stands for
          the others, see :mod:`connector.sync.recheck`), as many ids as the
          URL budget holds (about 440, one 2,000-row page); their
          :class:`Current` is ``partial``.

        A query whose answer is not done is followed with ``queryMore`` (not
        expected at these sizes). ``own`` compares ``LastModifiedById`` with the
        integration user, who logs in first.
        """
        if not ids:
            return {}
        sobject = SOBJECTS[obj]
        check_names(fields, "re-read")
        lean_fields = [f for f in fields if f.lower() in {k.lower() for k in keep}]
        self._session.authenticate()
        own_user = self._session.user_id
        queries: list[tuple[str, list[str]]] = []
        full = [i for i in ids if i not in settled]
        lean = [i for i in ids if i in settled]
        for start in range(0, len(full), VALUES_CHUNK):
            template = soql(_recheck_columns(fields), sobject, "Id IN {}", order=False)
            chunk = full[start : start + VALUES_CHUNK]
            queries += [(q, list(fields)) for q in id_chunks(template, chunk)]
        if lean:
            template = soql(_recheck_columns(lean_fields), sobject, "Id IN {}", order=False)
            queries += [(q, lean_fields) for q in id_chunks(template, lean)]
        out: dict[str, Current] = {}
        for start in range(0, len(queries), COMPOSITE_QUERIES):
            group = queries[start : start + COMPOSITE_QUERIES]
            firsts = self._first_pages([q for q, _ in group])
            for (query, selected), first in zip(group, firsts, strict=True):
                wanted = {f.lower(): f for f in selected}
                lean_read = len(selected) < len(fields)
                for raw_page in self._rest_pages(query, first):
                    for raw in raw_page:
                        values = {k.lower(): v for k, v in raw.items() if k != "attributes"}
                        record_id = str(values["id"])
                        out[record_id] = Current(
                            record_id,
                            parse_stamp(values.get(STAMP.lower())),
                            {name: values.get(low) for low, name in wanted.items()},
                            own=own_user is not None and values.get(EDITED_BY.lower()) == own_user,
                            partial=lean_read,
                        )
        return out

    def _first_pages(self, queries: Sequence[str]) -> list[dict[str, Any]]:
        """The first page of each query: one plain query, or one Composite call for up to 5."""
        if len(queries) == 1:
            (query,) = queries
            return [self._session.call("query", lambda c: c.sf.query(query))]
        return self._session.call("re-read", partial(_composite_queries, queries=queries))

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
            for read_at, raw_page in self._read_pages(query):
                page = [
                    rest_record(r, fields, parents, True, self._parents, read_at)
                    for r in raw_page
                    if str(r.get("Id")) not in exclude
                ]
                if page:
                    yield page
