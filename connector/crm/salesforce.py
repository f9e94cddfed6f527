"""The Salesforce adapter: simple-salesforce for REST, SOQL, Bulk API 2.0 and the Metadata API.

What shapes it (../shared/crm-api/FACTS.md §1–3, §6):

- Sessions come from :mod:`connector.crm.salesforce_auth` (JWT bearer,
  client credentials, refresh token, or a given session id); the client is
  built from instance URL + access token on a ``requests.Session`` that
  trusts ``ca_file`` and ignores the environment's CA settings. A call that
  fails with 401 ``INVALID_SESSION_ID`` re-authenticates once and is repeated.
- Every SDK call goes through :meth:`SalesforceAdapter._call`: the daily
  budget is checked first, errors are translated by :func:`_translate`, and
  :class:`~connector.errors.RetriableError` is retried by the one
  :class:`~connector.crm.retry.RetryPolicy`. The HTTP sessions never retry.
  Usage is read back from ``Sforce-Limit-Info`` (``sf.api_usage``).
- Pulls are SOQL ordered by ``SystemModstamp, Id`` with an inclusive
  ``>=`` watermark, REST pages of up to 2,000 records, or Bulk API 2.0 when a
  ``COUNT()`` reaches ``bulk_read_threshold`` (CSV values converted back to
  what REST returns). A bulk query that fails mid-stream restarts from the
  last stamp it yielded, skipping the ids already yielded there.
- Writes are sObject Collections of 200 (allOrNone false) on a thread pool,
  one client per thread; row-lock failures are re-sent alone with back-off.
  Above ``bulk_write_threshold`` updates, one Bulk API 2.0 ingest job.
- Provisioning creates custom fields through the Metadata API (zeep) and
  only ever adds picklist values.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_soql
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault as ZeepFault
from zeep.exceptions import TransportError as ZeepTransportError

from connector.config import SalesforceConnection
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
    SF_COLLECTION_BATCH,
    SF_CUSTOM_NAME_MAX,
    SF_METADATA_BATCH,
    SF_QUERY_PAGE,
    BudgetExhausted,
    DailyBudget,
)
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce_auth import Token, TokenSource, scrub
from connector.errors import FatalSyncError, RetriableError, SegsyncError

log = logging.getLogger(__name__)

T = TypeVar("T")

SOBJECTS: dict[str, str] = {"account": "Account", "contact": "Contact"}
#: Updates per Bulk 2.0 ingest job when the bulk path is taken.
BULK_WRITE_CHUNK = 50_000
STAMP = "SystemModstamp"
PARENT = "Account"
PARENT_ID = "AccountId"
# Ids per ``WHERE Id IN (...)`` query: 300 ids of 18 characters keep the GET URL
# well under the 16 KB Salesforce accepts.
FETCH_CHUNK = 300
# Rows per Bulk 2.0 result page; each is re-cut into CrmRecord pages of 2,000.
BULK_RESULT_PAGE = 10_000
# A Bulk 2.0 ingest cell with this value sets the field to null (blank leaves it unchanged).
BULK_NULL = "#N/A"
LOCK_ERROR = "UNABLE_TO_LOCK_ROW"
# Contacts remembered with their account, so writes can group batch-mates by parent.
PARENT_MEMORY = 500_000

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NO_COLUMN = re.compile(r"No such column '([^']+)' on entity '([^']+)'")
_NUMBER_TYPES = {"double", "currency", "percent"}

_KINDS: dict[str, str] = {
    # OutputField.kind -> Metadata API field type
    "picklist": "Picklist",
    "number": "Number",
    "text": "Text",
    "longtext": "LongTextArea",
    "datetime": "DateTime",
}
_DESCRIBE_TYPES: dict[str, set[str]] = {
    # OutputField.kind -> describe types an existing field may have
    "picklist": {"picklist"},
    "number": {"double", "int", "currency", "percent"},
    "text": {"string"},
    "longtext": {"textarea"},
    "datetime": {"datetime"},
}


# ---------------------------------------------------------------------------
# Error table
# ---------------------------------------------------------------------------


def _errors(content: Any) -> list[dict[str, Any]]:
    """The ``[{"errorCode","message"}]`` list of a simple-salesforce exception's ``.content``."""
    if isinstance(content, bytes | str):
        return [{"message": str(content)[:300]}] if content else []
    if isinstance(content, Mapping):
        return [dict(content)]
    if isinstance(content, list):
        return [dict(e) for e in content if isinstance(e, Mapping)]
    return []


def _first(content: Any) -> tuple[str, str]:
    errors = _errors(content)
    if not errors:
        return "", ""
    first = errors[0]
    return str(first.get("errorCode") or ""), str(first.get("message") or "").strip()


def _is_expired(exc: BaseException) -> bool:
    """True for a 401 INVALID_SESSION_ID (REST, Bulk) or the Metadata API's fault of it."""
    if isinstance(exc, SalesforceExpiredSession):
        return True
    if isinstance(exc, ZeepFault):
        return "INVALID_SESSION_ID" in str(exc.code or "") + str(exc.message or "")
    return False


def _translate(exc: BaseException, what: str) -> SegsyncError:
    """One table from simple-salesforce, zeep and transport errors to the segsync error tree."""
    if isinstance(exc, SegsyncError):
        return exc
    where = f"Salesforce {what}"
    if isinstance(exc, SalesforceError):
        code, message = _first(exc.content)
        status = exc.status
        if isinstance(exc, SalesforceRefusedRequest):
            if code == "REQUEST_LIMIT_EXCEEDED":
                # The same code covers the daily allocation ("TotalRequests Limit
                # exceeded.") and too many concurrent long requests
                # ("ConcurrentPerOrgLongTxn Limit exceeded."): only the latter passes.
                if "concurrent" in message.lower():
                    return RetriableError(f"{where}: too many concurrent requests ({message})")
                return BudgetExhausted(
                    f"{where}: the org's daily API allocation is spent ({message}); "
                    "the run stops here and resumes when the allocation recovers"
                )
            return FatalSyncError(
                f"{where}: refused ({code or status}: {message}); check the integration "
                "user's permissions"
            )
        if isinstance(exc, SalesforceExpiredSession):
            return FatalSyncError(f"{where}: the session was refused ({code or status}: {message})")
        if isinstance(exc, SalesforceMalformedRequest):
            missing = _NO_COLUMN.search(message)
            if missing:
                return FatalSyncError(
                    f"{where}: the field {missing.group(1)!r} does not exist on "
                    f"{missing.group(2)} or the integration user cannot see it: fix the "
                    "mapping, run `segsync provision`, or grant field-level security"
                )
            return FatalSyncError(f"{where}: {code or 'HTTP 400'}: {message}")
        if isinstance(exc, SalesforceResourceNotFound):
            return FatalSyncError(f"{where}: not found ({code or status}: {message})")
        if isinstance(exc, SalesforceGeneralError) and (status == 429 or status >= 500):
            return RetriableError(f"{where}: HTTP {status}: {code or message or 'server error'}")
        return FatalSyncError(f"{where}: HTTP {status}: {code} {message}".rstrip())
    if isinstance(exc, requests.exceptions.SSLError):
        return FatalSyncError(
            f"{where}: TLS verification failed; set ca_file if the org uses a private "
            "certificate authority"
        )
    if isinstance(exc, requests.RequestException):
        return RetriableError(f"{where}: {type(exc).__name__}")
    if isinstance(exc, ZeepFault):
        code = str(exc.code or "").rpartition(":")[2]
        if code == "REQUEST_LIMIT_EXCEEDED":
            return BudgetExhausted(f"{where}: the org's daily API allocation is spent")
        return FatalSyncError(f"{where}: SOAP fault {code}: {exc.message}")
    if isinstance(exc, ZeepTransportError):
        if exc.status_code == 429 or exc.status_code >= 500:
            return RetriableError(f"{where}: HTTP {exc.status_code}")
        return FatalSyncError(f"{where}: HTTP {exc.status_code}")
    if isinstance(exc, ZeepError):
        return FatalSyncError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, SalesforceOperationError):
        return FatalSyncError(f"{where}: {exc}")
    if type(exc) is Exception:
        # simple-salesforce's mdapi reports failed SaveResults as a bare Exception.
        return FatalSyncError(f"{where}: {' '.join(str(exc).split()).rstrip(', ')}")
    return FatalSyncError(f"{where}: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """A Python value as the REST API takes it: datetimes in Salesforce's format, None → null."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ";".join(str(v) for v in value)
    return value


def to_cell(value: Any) -> str:
    """A Python value as a Bulk 2.0 ingest CSV cell (``#N/A`` clears the field)."""
    if value is None:
        return BULK_NULL
    wire = to_json(value)
    if isinstance(wire, bool):
        return "true" if wire else "false"
    if isinstance(wire, float) and wire.is_integer():
        return str(int(wire))
    return str(wire)


def from_cell(text: str, ftype: str | None) -> Any:
    """A Bulk 2.0 result CSV cell as REST would give it, by the field's describe type."""
    if text == "":
        return None
    if ftype == "boolean":
        return text.lower() == "true"
    if ftype == "int":
        try:
            return int(text)
        except ValueError:
            return int(float(text))
    if ftype in _NUMBER_TYPES:
        return float(text)
    if ftype == "datetime":
        # Bulk prints UTC with a Z; REST with +0000.
        if text.endswith("Z") and len(text) == 24:
            return text[:-1] + "+0000"
        return text
    return text


def _query_more(client: _Client, url: str) -> Any:
    return client.sf.query_more(url, identifier_is_url=True)


# ---------------------------------------------------------------------------
# Transport
# ---------------------------------------------------------------------------


class _TimeoutAdapter(HTTPAdapter):
    """An adapter with a default timeout and no retries (the RetryPolicy owns retrying)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)
        self._timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send with the default timeout unless the caller gave one."""
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


@dataclass
class _Client:
    """One thread's simple-salesforce client, built for one session generation."""

    sf: Salesforce
    generation: int
    types: dict[str, Any] = field(default_factory=dict)
    md: Any = None

    def sobject(self, name: str) -> Any:
        """The SFType for ``name``, kept: ``sf.Account`` builds a new one at each access."""
        if name not in self.types:
            self.types[name] = getattr(self.sf, name)
        return self.types[name]

    def bulk(self, name: str) -> Any:
        """The Bulk 2.0 type for ``name`` (built fresh: it captures the session id)."""
        return getattr(self.sf.bulk2, name)


@dataclass
class _Resume:
    """Where a pull stands: the last stamp yielded and the ids yielded at it."""

    floor: datetime | None
    ids_at_floor: set[str] = field(default_factory=set)

    def keep(self, record: CrmRecord) -> bool:
        if self.floor is None:
            return True
        if record.stamp != self.floor:
            return record.stamp > self.floor
        return record.id not in self.ids_at_floor

    def advance(self, page: Sequence[CrmRecord]) -> None:
        for record in page:
            if self.floor is None or record.stamp > self.floor:
                self.floor, self.ids_at_floor = record.stamp, {record.id}
            elif record.stamp == self.floor:
                self.ids_at_floor.add(record.id)


# ---------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------


class SalesforceAdapter:
    """segsync's view of one Salesforce org.

    Args:
        connection: the connection's name in the config (for messages).
        settings: the connection's settings.
        retry: the retry policy (the default one when None).
        bulk_wait: seconds simple-salesforce waits before polling a Bulk 2.0 job.

    """

    crm = "salesforce"

    def __init__(
        self,
        connection: str,
        settings: SalesforceConnection,
        retry: RetryPolicy | None = None,
        bulk_wait: int = 2,
    ) -> None:
        self.connection = connection
        self._settings = settings
        self._retry = retry or RetryPolicy()
        self._bulk_wait = bulk_wait
        self._tokens = TokenSource(connection, settings)
        self.budget = DailyBudget(share=settings.daily_api_share)
        self._calls = 0
        self._count_lock = threading.Lock()
        self._auth_lock = threading.Lock()
        self._token: Token | None = None
        self._generation = 0
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._describes: dict[str, dict[str, dict[str, Any]]] = {}
        self._describe_lock = threading.Lock()
        self._parent_of: dict[str, str] = {}
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        instance = self._token.instance_url if self._token else self._settings.instance_url
        return (
            f"SalesforceAdapter(connection={self.connection!r}, auth={self._settings.auth!r}, "
            f"instance_url={instance!r})"
        )

    # -- plumbing --------------------------------------------------------
    @property
    def api_calls(self) -> int:
        """HTTP calls made so far: token requests, retries, bulk polls and SOAP included."""
        return self._calls

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        with self._count_lock:
            self._calls += 1
        return response

    def _count_unanswered(self) -> None:
        """Count a request that got no response (the response hook never saw it)."""
        with self._count_lock:
            self._calls += 1

    def _http(self) -> requests.Session:
        """The calling thread's HTTP session: trusts ``ca_file``, ignores the environment."""
        session: requests.Session | None = getattr(self._local, "http", None)
        if session is None:
            session = requests.Session()
            # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would silently override `verify` otherwise.
            session.trust_env = False
            session.verify = str(self._settings.ca_file) if self._settings.ca_file else True
            adapter = _TimeoutAdapter(self._settings.timeout_seconds)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.hooks["response"].append(self._count)
            self._local.http = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def authenticate(self) -> None:
        """Obtain a session now (else the first call does); FatalSyncError when refused."""
        with self._auth_lock:
            if self._token is None:
                self._login()

    def _login(self) -> None:
        """Fetch a token (caller holds the auth lock) and start a new client generation."""
        http = self._http()

        def fetch() -> Token:
            return self._tokens.fetch(http, on_no_response=self._count_unanswered)

        self._token = self._retry.call(fetch)
        self._generation += 1
        log.info(
            "salesforce session obtained",
            extra={"connection": self.connection, "auth": self._settings.auth},
        )

    def _reauthenticate(self, seen: int, what: str) -> None:
        if not self._tokens.renewable:
            raise FatalSyncError(
                f"Salesforce {what}: the session id was refused (expired or revoked). "
                f"Connection {self.connection!r} uses auth = 'session', which cannot "
                "re-authenticate: give a fresh session_id, or configure jwt, "
                "client_credentials or refresh_token"
            )
        with self._auth_lock:
            # Another thread may have renewed the session already.
            if self._generation == seen:
                log.info(
                    "salesforce session expired; re-authenticating",
                    extra={"connection": self.connection},
                )
                self._login()

    def _client(self) -> _Client:
        """The calling thread's client for the current session (rebuilt after a re-login)."""
        if self._token is None:
            self.authenticate()
        with self._auth_lock:
            token, generation = self._token, self._generation
        if token is None:  # pragma: no cover - authenticate() sets it or raises
            raise FatalSyncError(f"Salesforce connection {self.connection!r}: no session")
        client: _Client | None = getattr(self._local, "client", None)
        if client is None or client.generation != generation:
            sf = Salesforce(
                instance_url=token.instance_url,
                session_id=token.access_token,
                session=self._http(),
                version=self._settings.api_version,
            )
            client = _Client(sf, generation)
            self._local.client = client
        return client

    def _mdapi(self, client: _Client) -> Any:
        """``sf.mdapi`` with zeep's own HTTP session made to trust ``ca_file`` and count calls."""
        if client.md is None:
            md = client.sf.mdapi
            transport = md._client.transport
            session: requests.Session = transport.session
            session.trust_env = False
            session.verify = str(self._settings.ca_file) if self._settings.ca_file else True
            session.hooks["response"].append(self._count)
            transport.operation_timeout = self._settings.timeout_seconds
            client.md = md
        return client.md

    def _observe(self, client: _Client) -> None:
        """Feed the latest ``Sforce-Limit-Info`` reading into the daily budget."""
        best: tuple[int, int] | None = None
        for usage_map in (client.sf.api_usage, *(t.api_usage for t in client.types.values())):
            usage = usage_map.get("api-usage") if usage_map else None
            if usage is not None and (best is None or usage.used > best[0]):
                best = (usage.used, usage.total)
        if best is not None:
            self.budget.observe(*best)

    def _attempt(self, what: str, fn: Callable[[_Client], T]) -> T:
        """One try of ``fn``: budget check, one re-login on an expired session, translation."""
        self.budget.check()
        client = self._client()
        try:
            result = fn(client)
        except Exception as exc:
            if not _is_expired(exc):
                if isinstance(exc, requests.RequestException) and exc.response is None:
                    self._count_unanswered()
                raise _translate(exc, what) from None
            self._reauthenticate(client.generation, what)
            client = self._client()
            try:
                result = fn(client)
            except Exception as again:
                if _is_expired(again):
                    raise FatalSyncError(
                        f"Salesforce {what}: a freshly issued session was refused too; "
                        "check the connected app's session policies"
                    ) from None
                raise _translate(again, what) from None
        self._observe(client)
        return result

    def _call(self, what: str, fn: Callable[[_Client], T]) -> T:
        """Run one SDK call: budgeted, re-authenticated once, retried, translated."""
        return self._retry.call(lambda: self._attempt(what, fn))

    # -- describe --------------------------------------------------------
    def _describe(self, sobject: str, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """Field name → describe entry (cached; ``fresh`` asks the org again)."""
        with self._describe_lock:
            cached = self._describes.get(sobject)
        if cached is not None and not fresh:
            return cached
        result = self._call(f"describe {sobject}", lambda c: c.sobject(sobject).describe())
        fields = {str(f["name"]): dict(f) for f in result.get("fields", [])}
        with self._describe_lock:
            self._describes[sobject] = fields
        return fields

    @staticmethod
    def _lookup(fields: Mapping[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
        found = fields.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        return next((f for n, f in fields.items() if n.lower() == lowered), None)

    def describe(self, obj: ObjectName, names: Sequence[str]) -> dict[str, FieldSpec]:
        """The org's view of ``names`` on the object (``Account.X`` names a contact's parent)."""
        sobject = SOBJECTS[obj]
        own = self._describe(sobject, fresh=True)
        parent: Mapping[str, dict[str, Any]] | None = None
        out: dict[str, FieldSpec] = {}
        for name in names:
            fields: Mapping[str, dict[str, Any]] = own
            short = name
            if obj == "contact" and name.startswith(PARENT + "."):
                if parent is None:
                    parent = self._describe(PARENT, fresh=True)
                fields, short = parent, name[len(PARENT) + 1 :]
            entry = self._lookup(fields, short)
            if entry is None:
                out[name] = FieldSpec(name, "", exists=False, updateable=False)
                continue
            out[name] = FieldSpec(
                name,
                str(entry.get("type") or ""),
                updateable=bool(entry.get("updateable")) and "." not in name,
                options=tuple(
                    str(p["value"]) for p in entry.get("picklistValues") or [] if p.get("active")
                ),
                length=int(entry["length"]) if entry.get("length") else None,
            )
        return out

    # -- pull ------------------------------------------------------------
    @staticmethod
    def _check_names(names: Sequence[str], what: str) -> None:
        bad = [n for n in names if not _IDENT.fullmatch(n)]
        if bad:
            raise FatalSyncError(f"Salesforce {what}: not valid field names: {', '.join(bad)}")

    def _columns(
        self, obj: ObjectName, fields: Sequence[str], parent_fields: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        """The SELECT list and the bare parent field names."""
        if parent_fields and obj != "contact":
            raise FatalSyncError("Salesforce: parent fields are only pulled for contacts")
        parents = [p.removeprefix(PARENT + ".") for p in parent_fields]
        self._check_names(fields, "pull")
        self._check_names(parents, "pull")
        columns = ["Id", STAMP, *fields]
        if obj == "contact":
            columns.append(PARENT_ID)
        if parents:
            columns += [f"{PARENT}.{p}" for p in ["Id", *parents]]
        seen: set[str] = set()
        unique = []
        for column in columns:
            if column.lower() not in seen:
                seen.add(column.lower())
                unique.append(column)
        return unique, list(dict.fromkeys(parents))

    @staticmethod
    def _soql(columns: Sequence[str], sobject: str, where: str, order: bool = True) -> str:
        """A query template: identifiers are checked names; values go through format_soql."""
        text = f"SELECT {', '.join(columns)} FROM {sobject}"
        if where:
            text += f" WHERE {where}"
        if order:
            text += f" ORDER BY {STAMP}, Id"
        return text

    def _record(
        self,
        raw: Mapping[str, Any],
        fields: Sequence[str],
        parents: Sequence[str],
        contact: bool,
    ) -> CrmRecord:
        """A REST record as a CrmRecord: relationship removed from fields, parent attached."""
        relation = raw.get(PARENT) if contact else None
        # Keys as the caller spelled them (the API answers in the org's casing).
        wanted = {f.lower(): f for f in ("Id", STAMP, PARENT_ID, *fields)}
        values = {
            wanted.get(k.lower(), k): v
            for k, v in raw.items()
            if k != "attributes" and not (contact and k == PARENT)
        }
        record_id = str(values["Id"])
        parent_id = values.get(PARENT_ID)
        if contact:
            self._remember_parent(record_id, parent_id)
            if not any(f.lower() == PARENT_ID.lower() for f in fields):
                values.pop(PARENT_ID, None)
        parent: dict[str, Any] | None = None
        if parents and isinstance(relation, Mapping):
            # The API answers in the org's casing; the mapping may have used another.
            lowered = {str(k).lower(): v for k, v in relation.items()}
            parent = {p: lowered.get(p.lower()) for p in parents}
        return CrmRecord(record_id, parse_stamp(values.get(STAMP)), values, parent)

    def _remember_parent(self, record_id: str, parent_id: Any) -> None:
        if not parent_id:
            return
        if len(self._parent_of) >= PARENT_MEMORY:
            # Only an ordering hint for writes: forgetting costs nothing but contention.
            self._parent_of.clear()
        self._parent_of[record_id] = str(parent_id)

    def pull(
        self,
        obj: ObjectName,
        fields: Sequence[str],
        since: datetime | None,
        parent_fields: Sequence[str] = (),
    ) -> Iterator[list[CrmRecord]]:
        """Pages of records with ``SystemModstamp >= since`` (all when None), oldest first.

        REST pages of up to 2,000 records, or Bulk API 2.0 when the query's
        ``totalSize`` (on its first REST page: no extra call) reaches
        ``bulk_read_threshold``.
        """
        sobject = SOBJECTS[obj]
        columns, parents = self._columns(obj, fields, parent_fields)
        since = parse_stamp(since) if since is not None else None
        where = f"{STAMP} >= {{}}" if since is not None else ""
        args = [since] if since is not None else []
        query = format_soql(self._soql(columns, sobject, where), *args)
        first = self._call("query", lambda c: c.sf.query(query))
        total = int(first.get("totalSize") or 0)
        if total == 0:
            return
        resume = _Resume(since)
        if total >= self._settings.bulk_read_threshold:
            yield from self._bulk_pull(obj, columns, fields, parents, resume)
            return
        for raw_page in self._rest_pages(query, first):
            page = [self._record(r, fields, parents, obj == "contact") for r in raw_page]
            # format_soql drops sub-second precision from the watermark, so the query
            # may return a few records from just before it: drop them here.
            page = [r for r in page if resume.keep(r)]
            if page:
                yield page

    def _rest_pages(
        self, query: str, first: dict[str, Any] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """The records of a SOQL query, one REST page at a time (``first``: page 1, if read)."""
        result = first if first is not None else self._call("query", lambda c: c.sf.query(query))
        while True:
            yield list(result.get("records") or [])
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = self._call("query more", partial(_query_more, url=str(next_url)))

    def fetch(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
    ) -> list[CrmRecord]:
        """Records by id (for retrying earlier failures); unknown or deleted ids are left out."""
        sobject = SOBJECTS[obj]
        columns, parents = self._columns(obj, fields, parent_fields)
        out: list[CrmRecord] = []
        for start in range(0, len(ids), FETCH_CHUNK):
            chunk = list(ids[start : start + FETCH_CHUNK])
            query = format_soql(self._soql(columns, sobject, "Id IN {}"), chunk)
            for raw_page in self._rest_pages(query):
                out.extend(self._record(r, fields, parents, obj == "contact") for r in raw_page)
        return out

    # -- bulk pull -------------------------------------------------------
    def _bulk_pull(
        self,
        obj: ObjectName,
        columns: Sequence[str],
        fields: Sequence[str],
        parents: Sequence[str],
        resume: _Resume,
    ) -> Iterator[list[CrmRecord]]:
        sobject = SOBJECTS[obj]
        described = self._describe(sobject)
        types = {n.lower(): str(f.get("type")) for n, f in described.items()}
        # Keys as the caller spelled them, else in the org's casing (as REST does).
        names = {n.lower(): n for n in described}
        names.update({f.lower(): f for f in ("Id", STAMP, PARENT_ID, *fields)})
        if parents:
            for name, f in self._describe(PARENT).items():
                types[f"{PARENT}.{name}".lower()] = str(f.get("type"))
        state: dict[str, Any] = {"pages": None, "generation": -1}

        def next_csv() -> str | None:
            """The next CSV page; after a failure, a new job resumes where the pull stands."""
            self.budget.check()
            client = self._client()
            if state["pages"] is None or state["generation"] != client.generation:
                where = f"{STAMP} >= {{}}" if resume.floor is not None else ""
                args = [resume.floor] if resume.floor is not None else []
                query = format_soql(self._soql(columns, sobject, where), *args)
                state["pages"] = client.bulk(sobject).query(
                    query, max_records=BULK_RESULT_PAGE, wait=self._bulk_wait
                )
                state["generation"] = client.generation
            try:
                return str(next(state["pages"]))
            except StopIteration:
                return None
            except Exception as exc:
                state["pages"] = None
                if _is_expired(exc):
                    self._reauthenticate(client.generation, "bulk query")
                    raise RetriableError("Salesforce bulk query: session renewed") from None
                if isinstance(exc, requests.RequestException) and exc.response is None:
                    self._count_unanswered()
                raise _translate(exc, "bulk query") from None

        while True:
            text = self._retry.call(next_csv)
            if text is None:
                return
            reader = csv.reader(io.StringIO(text, newline=""))
            header = next(reader, None)
            if header is None:
                continue
            batch: list[CrmRecord] = []
            for row in reader:
                if not row:
                    continue
                record = self._bulk_record(header, row, types, names, fields, parents, obj)
                if resume.keep(record):
                    batch.append(record)
                if len(batch) >= SF_QUERY_PAGE:
                    resume.advance(batch)
                    yield batch
                    batch = []
            if batch:
                resume.advance(batch)
                yield batch

    def _bulk_record(
        self,
        header: Sequence[str],
        row: Sequence[str],
        types: Mapping[str, str],
        names: Mapping[str, str],
        fields: Sequence[str],
        parents: Sequence[str],
        obj: ObjectName,
    ) -> CrmRecord:
        """A Bulk CSV row as the CrmRecord REST would have produced."""
        values: dict[str, Any] = {}
        relation: dict[str, Any] = {}
        for column, cell in zip(header, row, strict=False):
            value = from_cell(cell, types.get(column.lower()))
            if column.lower().startswith(PARENT.lower() + "."):
                relation[column.split(".", 1)[1].lower()] = value
            else:
                values[names.get(column.lower(), column)] = value
        record_id = str(values["Id"])
        if obj == "contact":
            self._remember_parent(record_id, values.get(PARENT_ID))
            if not any(f.lower() == PARENT_ID.lower() for f in fields):
                values.pop(PARENT_ID, None)
        parent: dict[str, Any] | None = None
        if parents and relation.get("id"):
            parent = {p: relation.get(p.lower()) for p in parents}
        return CrmRecord(record_id, parse_stamp(values.get(STAMP)), values, parent)

    # -- write -----------------------------------------------------------
    def _check_writable(self, sobject: str, updates: Sequence[RecordUpdate]) -> None:
        described = self._describe(sobject)
        names = {n for u in updates for n in u.fields}
        bad = []
        for name in sorted(names):
            entry = self._lookup(described, name)
            if entry is None or not entry.get("updateable"):
                bad.append(name)
        if bad:
            # The describe may predate a provisioning run: ask once more before refusing.
            described = self._describe(sobject, fresh=True)
            bad = [
                n for n in bad if not (e := self._lookup(described, n)) or not e.get("updateable")
            ]
        if bad:
            raise FatalSyncError(
                f"Salesforce write {sobject}: refusing to write {', '.join(bad)}: not "
                "updateable fields for the integration user (run `segsync provision`, or "
                "grant edit access through a permission set)"
            )

    def write_chunk(self, total: int) -> int:
        """One Bulk 2.0 job's worth above the bulk threshold, else rounds of 200-record calls."""
        if total > self._settings.bulk_write_threshold:
            return max(self._settings.bulk_write_threshold + 1, BULK_WRITE_CHUNK)
        return SF_COLLECTION_BATCH * self._settings.max_concurrency * 2

    def write(self, obj: ObjectName, updates: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        """Write the updates; one outcome per update, in order.

        sObject Collections of 200 on up to ``max_concurrency`` threads, or one Bulk
        API 2.0 ingest job above ``bulk_write_threshold`` updates.
        """
        if not updates:
            return []
        sobject = SOBJECTS[obj]
        self._check_writable(sobject, updates)
        if len(updates) > self._settings.bulk_write_threshold:
            outcomes = self._bulk_write(sobject, updates)
        else:
            outcomes = self._rest_write(sobject, updates)
        return [outcomes[u.id] for u in updates]

    def _rest_write(self, sobject: str, updates: Sequence[RecordUpdate]) -> dict[str, WriteOutcome]:
        ordered = self._by_parent(sobject, updates)
        batches = [
            ordered[i : i + SF_COLLECTION_BATCH]
            for i in range(0, len(ordered), SF_COLLECTION_BATCH)
        ]
        outcomes: dict[str, WriteOutcome] = {}
        if len(batches) == 1 or self._settings.max_concurrency == 1:
            for batch in batches:
                outcomes.update((o.id, o) for o in self._write_batch(sobject, batch))
            return outcomes
        for result in self._writers().map(lambda b: self._write_batch(sobject, b), batches):
            outcomes.update((o.id, o) for o in result)
        return outcomes

    def _by_parent(self, sobject: str, updates: Sequence[RecordUpdate]) -> list[RecordUpdate]:
        """Contacts grouped by account (as last pulled); other objects as given."""
        ordered = list(updates)
        if sobject == "Contact":
            # Updating a contact locks its account: batch-mates that share accounts
            # contend inside one transaction instead of across parallel ones.
            ordered.sort(key=lambda u: (self._parent_of.get(u.id, ""), u.id))
        return ordered

    def _writers(self) -> ThreadPoolExecutor:
        """The write pool, kept between calls so its threads keep their clients and connections."""
        with self._sessions_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._settings.max_concurrency, thread_name_prefix="salesforce-write"
                )
            return self._pool

    def _write_batch(self, sobject: str, batch: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        """One collection of up to 200; row-lock failures are re-sent alone with back-off."""
        pending = list(batch)
        done: dict[str, WriteOutcome] = {}
        for attempt in range(1, self._retry.attempts + 1):
            results = self._send(sobject, pending)
            retry = [u for u in pending if results[u.id].retriable]
            last = attempt == self._retry.attempts
            for update in pending:
                if not results[update.id].retriable or last:
                    done[update.id] = results[update.id]
            pending = retry
            if not pending or last:
                break
            self._retry.sleep(min(self._retry.max_wait, self._retry.initial_wait * 2**attempt))
        return [done[u.id] for u in batch]

    def _send(self, sobject: str, batch: Sequence[RecordUpdate]) -> dict[str, WriteOutcome]:
        body = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": sobject},
                    "id": u.id,
                    **{k: to_json(v) for k, v in u.fields.items()},
                }
                for u in batch
            ],
        }
        results = self._call(
            f"update {sobject}",
            lambda c: c.sf.restful("composite/sobjects", method="PATCH", json=body),
        )
        if not isinstance(results, list) or len(results) != len(batch):
            raise FatalSyncError(
                f"Salesforce update {sobject}: expected {len(batch)} save results, "
                f"got {len(results) if isinstance(results, list) else 'none'}"
            )
        out: dict[str, WriteOutcome] = {}
        for update, result in zip(batch, results, strict=True):
            if result.get("success"):
                out[update.id] = WriteOutcome(update.id, True)
                continue
            errors = list(result.get("errors") or [])
            code = str(errors[0].get("statusCode") or "ERROR") if errors else "ERROR"
            message = "; ".join(str(e.get("message") or "") for e in errors)
            out[update.id] = WriteOutcome(update.id, False, code, message, code == LOCK_ERROR)
        return out

    def _bulk_write(self, sobject: str, updates: Sequence[RecordUpdate]) -> dict[str, WriteOutcome]:
        rows = [
            {"Id": u.id, **{k: to_cell(v) for k, v in u.fields.items()}}
            for u in self._by_parent(sobject, updates)
        ]
        jobs = self._call(
            f"bulk update {sobject}",
            lambda c: c.bulk(sobject).update(records=rows, wait=self._bulk_wait),
        )
        outcomes: dict[str, WriteOutcome] = {}
        for job in jobs or []:
            job_id = str(job["job_id"])
            outcomes.update(self._ingest_results(sobject, job_id))
        # Row locks and rows the job never reached get the REST path, which retries them.
        again = [u for u in updates if u.id not in outcomes or outcomes[u.id].retriable]
        if again:
            outcomes.update(self._rest_write(sobject, again))
        return outcomes

    def _ingest_results(self, sobject: str, job_id: str) -> dict[str, WriteOutcome]:
        out: dict[str, WriteOutcome] = {}
        ok_text = self._call(
            "bulk results", lambda c: c.bulk(sobject).get_successful_records(job_id)
        )
        for row in csv.DictReader(io.StringIO(str(ok_text), newline="")):
            record_id = row.get("sf__Id") or row.get("Id") or ""
            out[record_id] = WriteOutcome(record_id, True)
        failed_text = self._call(
            "bulk results", lambda c: c.bulk(sobject).get_failed_records(job_id)
        )
        for row in csv.DictReader(io.StringIO(str(failed_text), newline="")):
            record_id = row.get("Id") or row.get("sf__Id") or ""
            code, _, message = (row.get("sf__Error") or "ERROR:").partition(":")
            out[record_id] = WriteOutcome(record_id, False, code, message, code == LOCK_ERROR)
        # Unprocessed rows are simply absent: the caller re-sends them.
        return out

    # -- provision -------------------------------------------------------
    def _read_metadata(self, names: Sequence[str]) -> dict[str, Any]:
        """Full name → CustomField metadata, for those that exist."""
        found: dict[str, Any] = {}
        for start in range(0, len(names), SF_METADATA_BATCH):
            chunk = list(names[start : start + SF_METADATA_BATCH])
            result = self._call("read custom fields", partial(self._md_read, names=chunk))
            items = result if isinstance(result, list) else [result]
            for name, item in zip(chunk, items, strict=False):
                if item is not None and getattr(item, "fullName", None):
                    found[name] = item
        return found

    def _new_field(self, client: _Client, sobject: str, out: OutputField) -> Any:
        md = self._mdapi(client)
        spec: dict[str, Any] = {
            "fullName": f"{sobject}.{out.name}",
            "label": out.label[:40],
            "description": out.description,
            "type": _KINDS[out.kind],
        }
        if out.kind == "picklist":
            spec["valueSet"] = self._value_set(out.options)
        elif out.kind == "number":
            # Scores are whole numbers from 0 to 100 (FACTS / shared vocabulary: Number(3,0)).
            spec.update(precision=3, scale=0)
        elif out.kind == "text":
            spec["length"] = 255
        elif out.kind == "longtext":
            spec.update(length=32768, visibleLines=3)
        return md.CustomField(**spec)

    @staticmethod
    def _value_set(values: Sequence[str]) -> dict[str, Any]:
        return {
            "restricted": True,
            "valueSetDefinition": {
                "sorted": False,
                "value": [{"fullName": v, "label": v, "default": False} for v in values],
            },
        }

    @staticmethod
    def _picklist_values(meta: Any) -> list[tuple[str, str]]:
        value_set = getattr(meta, "valueSet", None)
        definition = getattr(value_set, "valueSetDefinition", None) if value_set else None
        values = getattr(definition, "value", None) or []
        return [(str(v.fullName), str(getattr(v, "label", None) or v.fullName)) for v in values]

    def provision(
        self,
        obj: ObjectName,
        outputs: Sequence[OutputField],
        inputs: Sequence[str],
        dry_run: bool,
    ) -> ProvisionReport:
        """Create missing output fields, add new picklist values, check access to every field.

        Nothing is ever deleted: picklist values no longer defined are reported as
        ``stale_options``. A dry run reads but changes nothing.
        """
        sobject = SOBJECTS[obj]
        report = ProvisionReport("salesforce")
        too_long = [o.name for o in outputs if len(o.name.removesuffix("__c")) > SF_CUSTOM_NAME_MAX]
        if too_long or any(not o.name.endswith("__c") for o in outputs):
            raise FatalSyncError(
                f"Salesforce provision {sobject}: output names must end in __c with at most "
                f"{SF_CUSTOM_NAME_MAX} characters before it: "
                + ", ".join(o.name for o in outputs if o.name in too_long or "__c" not in o.name)
            )
        described = self._describe(sobject, fresh=True)
        parent_described: dict[str, dict[str, Any]] | None = None
        for name in inputs:
            fields, short = described, name
            if obj == "contact" and name.startswith(PARENT + "."):
                if parent_described is None:
                    parent_described = self._describe(PARENT, fresh=True)
                fields, short = parent_described, name[len(PARENT) + 1 :]
            if self._lookup(fields, short) is None:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        name,
                        "missing_access",
                        "input field does not exist or the integration user cannot read it "
                        "(field-level security)",
                    )
                )
        full = {o.name: f"{sobject}.{o.name}" for o in outputs}
        existing = self._read_metadata(list(full.values()))
        to_create: list[OutputField] = []
        to_update: list[tuple[OutputField, Any, list[str]]] = []
        for out in outputs:
            meta = existing.get(full[out.name])
            entry = self._lookup(described, out.name)
            if meta is None and entry is None:
                report.actions.append(ProvisionAction(obj, out.name, "create", _KINDS[out.kind]))
                to_create.append(out)
                continue
            if entry is None:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        "the field exists but the integration user cannot see it: grant "
                        "read and edit field-level security through a permission set",
                    )
                )
                continue
            if str(entry.get("type")) not in _DESCRIBE_TYPES[out.kind]:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        f"the field exists as {entry.get('type')}, not {_KINDS[out.kind]}: "
                        "rename one of them",
                    )
                )
                continue
            if not entry.get("updateable"):
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        "the integration user cannot edit the field (field-level security)",
                    )
                )
                continue
            if out.kind != "picklist":
                report.actions.append(ProvisionAction(obj, out.name, "ok"))
                continue
            have = (
                [v for v, _ in self._picklist_values(meta)]
                if meta is not None
                else [str(p["value"]) for p in entry.get("picklistValues") or []]
            )
            new = [v for v in out.options if v not in have]
            stale = [v for v in have if v not in out.options]
            if new:
                report.actions.append(ProvisionAction(obj, out.name, "add_options", ", ".join(new)))
                if meta is not None:
                    to_update.append((out, meta, new))
                else:
                    report.actions.append(
                        ProvisionAction(
                            obj,
                            out.name,
                            "missing_access",
                            "cannot read the field's metadata to extend its values "
                            "(the user needs Customize Application)",
                        )
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
        if dry_run or not (to_create or to_update):
            return report
        for start in range(0, len(to_create), SF_METADATA_BATCH):
            chunk = to_create[start : start + SF_METADATA_BATCH]
            self._call(
                f"create fields on {sobject}",
                partial(self._md_create, sobject=sobject, outputs=chunk),
            )
        for start in range(0, len(to_update), SF_METADATA_BATCH):
            batch = to_update[start : start + SF_METADATA_BATCH]
            self._call(
                f"update fields on {sobject}",
                partial(self._md_update, sobject=sobject, changes=batch),
            )
        # New fields need field-level security before the integration user sees them
        # (real orgs: a permission set); check what the describe shows now.
        after = self._describe(sobject, fresh=True)
        for out in to_create:
            entry = self._lookup(after, out.name)
            if entry is None or not entry.get("updateable"):
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        "created, but the integration user cannot "
                        + ("see" if entry is None else "edit")
                        + " it yet: grant field-level security through a permission set",
                    )
                )
        return report

    def _md_read(self, client: _Client, names: list[str]) -> Any:
        return self._mdapi(client).CustomField.read(names)

    def _md_create(self, client: _Client, sobject: str, outputs: Sequence[OutputField]) -> None:
        fields = [self._new_field(client, sobject, o) for o in outputs]
        self._mdapi(client).CustomField.create(fields)

    def _md_update(
        self,
        client: _Client,
        sobject: str,
        changes: Sequence[tuple[OutputField, Any, list[str]]],
    ) -> None:
        fields = [self._extended(client, sobject, o, meta, new) for o, meta, new in changes]
        self._mdapi(client).CustomField.update(fields)

    def _extended(
        self, client: _Client, sobject: str, out: OutputField, meta: Any, new: Sequence[str]
    ) -> Any:
        """The field's definition with ``new`` values appended (updates replace the whole set)."""
        md = self._mdapi(client)
        current = self._picklist_values(meta)
        value_set = self._value_set([v for v, _ in current] + list(new))
        labels = dict(current)
        for value in value_set["valueSetDefinition"]["value"]:
            value["label"] = labels.get(value["fullName"], value["fullName"])
        restricted = getattr(getattr(meta, "valueSet", None), "restricted", True)
        value_set["restricted"] = True if restricted is None else bool(restricted)
        return md.CustomField(
            fullName=f"{sobject}.{out.name}",
            label=getattr(meta, "label", None) or out.label[:40],
            description=getattr(meta, "description", None) or out.description,
            type="Picklist",
            valueSet=value_set,
        )

    # -- accounting ------------------------------------------------------
    def minimum_calls(self, read: int, changed: int, *, incremental: bool = False) -> int:
        """Query pages plus collection calls: the REST floor FACTS.md §6 gives."""
        return math.ceil(read / SF_QUERY_PAGE) + math.ceil(changed / SF_COLLECTION_BATCH)

    def close(self) -> None:
        """Stop the write threads and close every HTTP session this adapter opened."""
        with self._sessions_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


__all__ = ["SalesforceAdapter", "from_cell", "parse_stamp", "scrub", "to_cell", "to_json"]
