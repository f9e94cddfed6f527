"""The HubSpot adapter: hubspot-api-client for lists, search, batches and properties.

What shapes it (../shared/crm-api/FACTS.md §4–5):

- The client's own retries are off (``retry=False``): the one retry policy in
  :mod:`connector.crm.retry` decides. Every SDK error is translated here, by
  :func:`_translate`, into the segsync error tree.
- Every call is paced by a rolling ten-second limiter (and search by its own
  per-second one), and stops before the daily share is spent.
- Full pulls walk the list endpoint (100 a page). Incremental pulls walk
  search windows on ``hs_lastmodifieddate``: a window is restarted from the
  last stamp seen before it reaches the 10,000-result cap, and a run of more
  records sharing one stamp than a window holds is walked by ``hs_object_id``,
  so no record is lost and no window repeats forever.
- Values go out as strings: numbers without a useless ``.0``, datetimes as
  epoch milliseconds, blanks as ``""`` (which clears the value).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any, Literal

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.models import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.companies.models import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)
from hubspot.crm.properties.models import (
    OptionInput,
    PropertyCreate,
    PropertyGroupCreate,
    PropertyUpdate,
)

from connector.config import HubSpotConnection
from connector.crm.base import (
    CrmRecord,
    FieldSpec,
    ObjectName,
    OutputField,
    ProvisionAction,
    ProvisionReport,
    RecordUpdate,
    WriteOutcome,
    parse_stamp,
)
from connector.crm.limits import (
    HS_ASSOC_BATCH,
    HS_BATCH,
    HS_LIST_PAGE,
    HS_SEARCH_MAX_RESULTS,
    HS_SEARCH_PAGE,
    DailyBudget,
    RollingWindowLimiter,
)
from connector.crm.retry import RetryPolicy
from connector.errors import FatalSyncError, RetriableError, SegsyncError

OBJECT_TYPES: dict[str, str] = {"account": "companies", "contact": "contacts"}
STAMP = "hs_lastmodifieddate"
GROUP = "segmentation"
# HubSpot's default association from a contact to its primary company.
PRIMARY_COMPANY_TYPE = 1

_KINDS: dict[str, tuple[str, str]] = {
    # OutputField.kind -> (property type, fieldType)
    "picklist": ("enumeration", "select"),
    "number": ("number", "number"),
    "text": ("string", "text"),
    "longtext": ("string", "textarea"),
    "datetime": ("datetime", "date"),
}


def _translate(exc: Exception, what: str) -> SegsyncError:
    """One table from SDK and transport errors to the segsync error tree."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        body = _body(exc)
        message = body.get("message") or str(getattr(exc, "reason", "")) or "no message"
        if status == 429:
            headers = getattr(exc, "headers", None) or {}
            after = headers.get("Retry-After") if hasattr(headers, "get") else None
            policy = body.get("policyName", "")
            if policy == "DAILY":
                return FatalSyncError(f"HubSpot {what}: the portal's daily API limit is spent")
            return RetriableError(
                f"HubSpot {what}: rate limited ({policy or 'RATE_LIMIT'})",
                retry_after=float(after) if after else None,
            )
        if status >= 500:
            return RetriableError(f"HubSpot {what}: HTTP {status}: {message}")
        if status == 401:
            return FatalSyncError(
                f"HubSpot {what}: the access token was refused ({body.get('category', status)})"
            )
        if status == 403:
            return FatalSyncError(f"HubSpot {what}: missing scope or permission: {message}")
        return FatalSyncError(f"HubSpot {what}: HTTP {status}: {message}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return RetriableError(f"HubSpot {what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, SegsyncError):
        return exc
    return FatalSyncError(f"HubSpot {what}: {type(exc).__name__}: {exc}")


def _body(exc: Exception) -> dict[str, Any]:
    raw = getattr(exc, "body", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str) and raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"message": raw[:200]}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def to_wire(value: Any) -> str:
    """A Python value as HubSpot wants it: always a string, ``""`` for blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return str(int(moment.timestamp() * 1000))
    if isinstance(value, date):
        return str(int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _regroup(pages: Iterator[list[Any]], size: int) -> Iterator[list[Any]]:
    """Pages of at least ``size`` items (the last may be smaller), in order."""
    buffer: list[Any] = []
    for page in pages:
        buffer.extend(page)
        if len(buffer) >= size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


class HubSpotAdapter:
    """segsync's view of one HubSpot portal."""

    crm: Literal["hubspot"] = "hubspot"

    def __init__(
        self,
        connection: str,
        settings: HubSpotConnection,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.connection = connection
        self._settings = settings
        token = settings.secret("access_token")
        if not token:
            raise FatalSyncError(
                f"connection {connection!r}: no HubSpot access token "
                f"(set SEGSYNC_CONNECTIONS__{connection.upper()}__ACCESS_TOKEN "
                "or access_token_file)"
            )
        self._client = HubSpot(access_token=token, host=settings.base_url, retry=False)
        self._retry = retry or RetryPolicy()
        pause = sleep or self._retry.sleep
        # 5 % headroom under the published limit: clocks and counting differ a little.
        per_window = max(1, int(settings.requests_per_10s * 0.95))
        self._limiter = RollingWindowLimiter(per_window, sleep=pause)
        self._search_limiter = RollingWindowLimiter(
            settings.search_per_second, window=1.0, margin=0.02, sleep=pause
        )
        self.budget = DailyBudget(share=1.0, total=settings.daily_limit, used=None)
        self._calls = 0
        self._count_lock = threading.Lock()
        self._timeout = settings.timeout_seconds
        # API objects are built once: each attribute access builds a new pool.
        crm = self._client.crm
        self._basic = {"companies": crm.companies.basic_api, "contacts": crm.contacts.basic_api}
        self._batch = {"companies": crm.companies.batch_api, "contacts": crm.contacts.batch_api}
        self._search = {"companies": crm.companies.search_api, "contacts": crm.contacts.search_api}
        self._props = crm.properties.core_api
        self._groups = crm.properties.groups_api
        self._assoc = crm.associations.v4.batch_api

    # -- plumbing --------------------------------------------------------
    @property
    def api_calls(self) -> int:
        """Calls made so far, retries included."""
        return self._calls

    def _call(
        self, what: str, fn: Callable[..., Any], *args: Any, search: bool = False, **kwargs: Any
    ) -> Any:
        """Call an SDK ``*_with_http_info`` method: paced, budgeted, retried, translated."""
        kwargs.setdefault("_request_timeout", self._timeout)

        def attempt() -> Any:
            self.budget.check()
            (self._search_limiter if search else self._limiter).acquire()
            with self._count_lock:
                self._calls += 1
            try:
                data, _status, headers = fn(*args, **kwargs)
            except Exception as exc:
                raise _translate(exc, what) from None
            self._observe(headers)
            return data

        return self._retry.call(attempt)

    def _observe(self, headers: Any) -> None:
        if not headers or not hasattr(headers, "get"):
            return
        daily = headers.get("X-HubSpot-RateLimit-Daily")
        remaining = headers.get("X-HubSpot-RateLimit-Daily-Remaining")
        if daily and remaining:
            total = int(daily)
            self.budget.observe(used=total - int(remaining), total=total)

    # -- describe --------------------------------------------------------
    def _properties(self, object_type: str) -> dict[str, Any]:
        result = self._call(
            "read properties",
            self._props.get_all_with_http_info,
            object_type,
            archived=False,
        )
        return {p.name: p for p in result.results}

    def describe(self, obj: ObjectName, names: Sequence[str]) -> dict[str, FieldSpec]:
        """HubSpot's view of the named properties of companies or contacts."""
        props = self._properties(OBJECT_TYPES[obj])
        out: dict[str, FieldSpec] = {}
        for name in names:
            prop = props.get(name)
            if prop is None:
                out[name] = FieldSpec(name, "", exists=False, updateable=False)
                continue
            meta = prop.modification_metadata
            out[name] = FieldSpec(
                name,
                prop.type,
                updateable=not (meta is not None and meta.read_only_value),
                options=tuple(o.value for o in (prop.options or [])),
            )
        return out

    # -- pull ------------------------------------------------------------
    def pull(
        self,
        obj: ObjectName,
        fields: Sequence[str],
        since: datetime | None,
        parent_fields: Sequence[str] = (),
    ) -> Iterator[list[CrmRecord]]:
        """Pages of records: the list endpoint when full, search windows when incremental."""
        object_type = OBJECT_TYPES[obj]
        properties = sorted({*fields, STAMP})
        pages = (
            self._list(object_type, properties)
            if since is None
            else self._search_since(object_type, properties, since)
        )
        if parent_fields:
            # One association batch read takes 1,000 ids: gather that many
            # records before looking their parents up, not one list page's 100.
            pages = _regroup(pages, HS_ASSOC_BATCH)
        for raw in pages:
            if raw:
                yield self._records(raw, parent_fields)

    def _records(self, items: Sequence[Any], parent_fields: Sequence[str]) -> list[CrmRecord]:
        parents = self._parents(items, parent_fields) if parent_fields else {}
        return [
            CrmRecord(
                str(item.id),
                parse_stamp(item.properties.get(STAMP) or item.updated_at),
                item.properties,
                parents.get(str(item.id)) if parent_fields else None,
            )
            for item in items
        ]

    def fetch(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
    ) -> list[CrmRecord]:
        """Records by id (for retrying earlier failures); unknown ids are left out."""
        object_type = OBJECT_TYPES[obj]
        out: list[CrmRecord] = []
        for start in range(0, len(ids), HS_BATCH):
            chunk = ids[start : start + HS_BATCH]
            request = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in chunk],
                properties=sorted({*fields, STAMP}),
            )
            result = self._call(
                "batch read",
                self._batch[object_type].read_with_http_info,
                request,
                archived=False,
            )
            out.extend(self._records(list(result.results or []), parent_fields))
        return out

    def _list(self, object_type: str, properties: list[str]) -> Iterator[list[Any]]:
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": HS_LIST_PAGE,
                "properties": properties,
                "archived": False,
            }
            if after is not None:
                kwargs["after"] = after
            page = self._call("list", self._basic[object_type].get_page_with_http_info, **kwargs)
            yield list(page.results or [])
            nxt = page.paging.next if page.paging is not None else None
            if nxt is None or not nxt.after:
                return
            after = nxt.after

    def _search_page(
        self,
        object_type: str,
        properties: list[str],
        filters: list[Filter],
        sort: str,
        after: int,
    ) -> Any:
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=filters)],
            sorts=[f"{sort}"],
            properties=properties,
            limit=HS_SEARCH_PAGE,
            after=str(after) if after else None,
        )
        return self._call(
            "search",
            self._search[object_type].do_search_with_http_info,
            public_object_search_request=request,
            search=True,
        )

    def _search_since(
        self, object_type: str, properties: list[str], since: datetime
    ) -> Iterator[list[Any]]:
        """Walk ``hs_lastmodifieddate >= since`` in windows that stay under the result cap."""
        start = since
        seen_at_start: set[str] = set()
        while True:
            offset = 0
            last_stamp: datetime | None = None
            ids_at_last: set[str] = set()
            window_full = False
            while True:
                result = self._search_page(
                    object_type,
                    properties,
                    [Filter(property_name=STAMP, operator="GTE", value=_ms(start))],
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
                yield from self._search_one_stamp(object_type, properties, start, seen_at_start)
                start = datetime.fromtimestamp((int(_ms(start)) + 1) / 1000, tz=UTC)
                seen_at_start = set()
                continue
            # Restart from the last stamp seen; the ids already yielded there are skipped.
            start, seen_at_start = last_stamp, ids_at_last

    def _search_one_stamp(
        self, object_type: str, properties: list[str], stamp: datetime, skip: set[str]
    ) -> Iterator[list[Any]]:
        last_id = 0
        while True:
            result = self._search_page(
                object_type,
                properties,
                [
                    Filter(property_name=STAMP, operator="EQ", value=_ms(stamp)),
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

    def _parents(self, items: Sequence[Any], parent_fields: Sequence[str]) -> dict[str, Any]:
        """Contact id → its primary company's ``parent_fields`` (v4 associations, batched)."""
        company_of: dict[str, str] = {}
        ids = [str(i.id) for i in items]
        for start in range(0, len(ids), HS_ASSOC_BATCH):
            chunk = ids[start : start + HS_ASSOC_BATCH]
            request = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in chunk]
            )
            result = self._call(
                "read associations",
                self._assoc.get_page_with_http_info,
                "contacts",
                "companies",
                request,
            )
            for row in result.results or []:
                links = list(row.to or [])
                if not links:
                    continue
                primary = [
                    link
                    for link in links
                    if any(t.type_id == PRIMARY_COMPANY_TYPE for t in link.association_types or [])
                ]
                chosen = min(primary or links, key=lambda link: int(link.to_object_id))
                company_of[str(row._from.id)] = str(chosen.to_object_id)
        companies = sorted(set(company_of.values()))
        values: dict[str, Mapping[str, Any]] = {}
        for record in self.fetch("account", companies, parent_fields):
            values[record.id] = record.fields
        return {
            contact: values[company] for contact, company in company_of.items() if company in values
        }

    # -- write -----------------------------------------------------------
    def write(self, obj: ObjectName, updates: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        """Batch updates of 100, in parallel up to the connection's concurrency."""
        object_type = OBJECT_TYPES[obj]
        batches = [updates[i : i + HS_BATCH] for i in range(0, len(updates), HS_BATCH)]
        workers = max(1, min(self._settings.max_concurrency, len(batches)))
        outcomes: dict[str, WriteOutcome] = {}
        with ThreadPoolExecutor(workers, thread_name_prefix="hubspot-write") as pool:
            for result in pool.map(lambda b: self._write_batch(object_type, b), batches):
                outcomes.update((o.id, o) for o in result)
        return [outcomes[u.id] for u in updates]

    def write_chunk(self, total: int) -> int:
        """Enough batches of 100 to keep every parallel writer busy for a few rounds."""
        return HS_BATCH * self._settings.max_concurrency * 2

    def _write_batch(self, object_type: str, batch: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        pending = list(batch)
        done: dict[str, WriteOutcome] = {}
        for attempt in range(1, self._retry.attempts + 1):
            failures = self._send(object_type, pending)
            retry_ids = {i for i, o in failures.items() if o.retriable}
            for update in pending:
                if update.id not in retry_ids or attempt == self._retry.attempts:
                    done[update.id] = failures.get(update.id, WriteOutcome(update.id, True))
            pending = [u for u in pending if u.id in retry_ids]
            if not pending or attempt == self._retry.attempts:
                break
            self._retry.sleep(min(self._retry.max_wait, self._retry.initial_wait * 2**attempt))
        return [done[u.id] for u in batch]

    def _send(self, object_type: str, batch: Sequence[RecordUpdate]) -> dict[str, WriteOutcome]:
        request = BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(
                    id=u.id, properties={k: to_wire(v) for k, v in u.fields.items()}
                )
                for u in batch
            ]
        )
        result = self._call(
            "batch update",
            self._batch[object_type].update_with_http_info,
            request,
        )
        failures: dict[str, WriteOutcome] = {}
        for error in getattr(result, "errors", None) or []:
            context = error.context or {}
            category = error.category or "ERROR"
            retriable = category in {"CONFLICT", "LOCKED", "RATE_LIMITS"} or str(
                getattr(error, "status", "")
            ) in {"409", "423", "429"}
            for record_id in context.get("ids", []) or context.get("id", []):
                failures[str(record_id)] = WriteOutcome(
                    str(record_id), False, category, error.message or "", retriable
                )
        return failures

    # -- provision -------------------------------------------------------
    def provision(
        self,
        obj: ObjectName,
        outputs: Sequence[OutputField],
        inputs: Sequence[str],
        dry_run: bool,
    ) -> ProvisionReport:
        """Create the Segmentation group and missing properties; extend enumerations."""
        object_type = OBJECT_TYPES[obj]
        report = ProvisionReport("hubspot")
        props = self._properties(object_type)
        for name in inputs:
            if name not in props:
                report.actions.append(
                    ProvisionAction(obj, name, "missing_access", "input property does not exist")
                )
        groups = self._call(
            "read property groups",
            self._groups.get_all_with_http_info,
            object_type,
        )
        if not any(g.name == GROUP for g in groups.results or []) and not dry_run:
            group = PropertyGroupCreate(name=GROUP, label="Segmentation", display_order=-1)
            self._call(
                "create property group",
                self._groups.create_with_http_info,
                object_type,
                group,
            )
        for out in outputs:
            prop = props.get(out.name)
            if prop is None:
                report.actions.append(ProvisionAction(obj, out.name, "create", out.kind))
                if not dry_run:
                    self._create_property(object_type, out)
                continue
            meta = prop.modification_metadata
            if meta is not None and meta.read_only_value:
                report.actions.append(
                    ProvisionAction(obj, out.name, "missing_access", "property is read-only")
                )
                continue
            if out.kind != "picklist":
                report.actions.append(ProvisionAction(obj, out.name, "ok"))
                continue
            have = [o.value for o in prop.options or []]
            new = [o for o in out.options if o not in have]
            stale = [o for o in have if o not in out.options]
            if new:
                report.actions.append(ProvisionAction(obj, out.name, "add_options", ", ".join(new)))
                if not dry_run:
                    options = [
                        OptionInput(label=o.label, value=o.value, display_order=i, hidden=o.hidden)
                        for i, o in enumerate(prop.options or [])
                    ] + [
                        OptionInput(label=v, value=v, display_order=len(have) + i, hidden=False)
                        for i, v in enumerate(new)
                    ]
                    update = PropertyUpdate(options=options)
                    self._call(
                        "update property",
                        self._props.update_with_http_info,
                        object_type,
                        out.name,
                        update,
                    )
            else:
                report.actions.append(ProvisionAction(obj, out.name, "ok"))
            if stale:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "stale_options",
                        f"no longer defined, kept: {', '.join(stale)}",
                    )
                )
        return report

    def _create_property(self, object_type: str, out: OutputField) -> None:
        type_, field_type = _KINDS[out.kind]
        create = PropertyCreate(
            name=out.name,
            label=out.label,
            type=type_,
            field_type=field_type,
            group_name=GROUP,
            description=out.description,
            options=[
                OptionInput(label=v, value=v, display_order=i, hidden=False)
                for i, v in enumerate(out.options)
            ]
            if out.kind == "picklist"
            else None,
        )
        self._call(
            "create property",
            self._props.create_with_http_info,
            object_type,
            create,
        )

    # -- accounting ------------------------------------------------------
    def minimum_calls(self, read: int, changed: int, *, incremental: bool = False) -> int:
        """Read pages (list, or search when incremental) plus batch updates (FACTS.md §6)."""
        page = HS_SEARCH_PAGE if incremental else HS_LIST_PAGE
        return -(-read // page) + -(-changed // HS_BATCH)

    def close(self) -> None:
        """Nothing to release: urllib3 pools close with the process."""
