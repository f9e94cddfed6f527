"""The Salesforce sandbox's HTTP surface: OAuth, REST, and hooks for Bulk 2.0 and Metadata.

REST covers describe, limits, SOQL (query / queryAll / queryMore), sObject rows,
collections and composite.

Every REST response carries ``Sforce-Limit-Info``; every authenticated call
counts against the org's daily allocation (a composite request counts once);
errors are Salesforce's JSON lists ``[{"message","errorCode","fields"?}]``.
Handlers annotate ``request.kind`` / ``records`` / ``fields`` for the request log.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from segsync_sandbox.common import BadJson, HttpError, Request, Response, SandboxApp
from segsync_sandbox.salesforce import bulk, listviews, metadata, permissions, soql
from segsync_sandbox.salesforce.auth import OAuthEndpoint, OAuthSettings, TokenStore
from segsync_sandbox.salesforce.org import (
    ORG_ID,
    USER_ID,
    USERNAME,
    ApiLimitExceeded,
    Org,
    RecordError,
    format_datetime,
    parse_datetime,
)

MIN_API_VERSION = 52.0
# Newest version path accepted (Spring '26); the org itself reports its api_version.
MAX_API_VERSION = 66.0
VERSION_PREFIX = r"/services/data/v(?P<version>\d+\.\d)"
MAX_COLLECTION_RECORDS = 200
# A collection's records are processed in chunks of one object type each (a new
# chunk wherever the type changes); one request takes at most 10 chunks.
MAX_COLLECTION_CHUNKS = 10
# Documented: the URI and headers together may hold 16,384 bytes; a longer URI
# alone answers 414, longer headers 431.
MAX_URI_AND_HEADERS_BYTES = 16_384
MAX_COMPOSITE_SUBREQUESTS = 25
MAX_COMPOSITE_QUERIES_AND_COLLECTIONS = 5
DEFAULT_BATCH_SIZE = 2000
MIN_BATCH_SIZE = 200
LONG_TEXT_BATCH_SIZE = 200
# Salesforce keeps at most 10 open query cursors per user and releases the oldest.
MAX_OPEN_CURSORS = 10
NOT_FOUND_MESSAGE = "The requested resource does not exist"
#: Daily Bulk API allocations reported by ``/limits``; Bulk jobs use them up.
BULK_LIMITS = {
    "DailyBulkApiBatches": 15000,
    "DailyBulkV2QueryFileStorageMB": 976562,
    "DailyBulkV2QueryJobs": 10000,
}
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
LIMIT_EXCEEDED = [
    {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
]
_RELEASES = {
    52: "Summer '21",
    53: "Winter '22",
    54: "Spring '22",
    55: "Summer '22",
    56: "Winter '23",
    57: "Spring '23",
    58: "Summer '23",
    59: "Winter '24",
    60: "Spring '24",
    61: "Summer '24",
    62: "Winter '25",
    63: "Spring '25",
    64: "Summer '25",
    65: "Winter '26",
    66: "Spring '26",
}


def sf_error(status: int, message: str, code: str, fields: Sequence[str] | None = None) -> Response:
    """A Salesforce REST error response: ``[{"message","errorCode","fields"?}]``."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = list(fields)
    return Response.json(status, [item])


def sf_fail(status: int, message: str, code: str, fields: Sequence[str] | None = None) -> HttpError:
    """Build an HttpError carrying :func:`sf_error`, for ``raise`` in a handler."""
    return HttpError(sf_error(status, message, code, fields))


def bearer_token(request: Request) -> str | None:
    """The session id from ``Authorization: Bearer <token>`` (or ``OAuth <token>``)."""
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


_KINDS: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(VERSION_PREFIX + p), k)
    for m, p, k in [
        ("GET", r"/(query|queryAll)/01g[A-Za-z0-9]+-\d+/?", "queryMore"),
        ("GET", r"/query/?", "query"),
        ("GET", r"/queryAll/?", "queryAll"),
        ("PATCH", r"/composite/sobjects/?", "collections.update"),
        ("GET", r"/composite/sobjects/\w+/?", "collections.get"),
        ("POST", r"/composite/?", "composite"),
        ("GET", r"/sobjects(/\w+(/describe)?)?/?", "describe"),
        ("GET", r"/sobjects/\w+/updated/?", "getUpdated"),
        ("GET", r"/sobjects/\w+/deleted/?", "getDeleted"),
        ("POST", r"/sobjects/\w+/?", "sobject.create"),
        ("GET", r"/sobjects/\w+/[^/]+/?", "sobject.get"),
        ("PATCH", r"/sobjects/\w+/[^/]+/?", "sobject.update"),
        ("DELETE", r"/sobjects/\w+/[^/]+/?", "sobject.delete"),
        ("GET", r"/limits/?", "limits"),
    ]
]


def classify(method: str, path: str) -> str:
    """The request-log kind of a REST call, from its method and path ('' when unknown)."""
    return next((k for m, p, k in _KINDS if m == method and p.fullmatch(path)), "")


def _http_date(value: str | None) -> float | None:
    """An ``If-Modified-Since`` value as epoch seconds (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _parse_window_date(request: Request, name: str) -> datetime:
    raw = request.arg(name)
    if not raw:
        raise sf_fail(400, f"Missing required parameter: {name}", "MISSING_ARGUMENT")
    try:
        return parse_datetime(raw).replace(second=0, microsecond=0)
    except ValueError:
        raise sf_fail(
            400, f"{name}: invalid date/time: {raw}", "INVALID_REPLICATION_DATE"
        ) from None


@dataclass
class QueryCursor:
    """An open query locator: the bound query, its record snapshot and where paging stands.

    Keeps references to the stored records (no projected copies); a page is
    projected when it is served. Re-requesting the last page served (a client
    retry) answers it again; any other offset restarts the iteration there.
    """

    id: str
    endpoint: str
    bound: soql.BoundQuery
    snapshot: list[Mapping[str, Any]]
    total: int
    batch_size: int
    resolve: soql.ParentResolver
    position: int = 0
    touched: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_page: tuple[int, list[dict[str, Any]]] | None = None
    _iterator: Iterator[Mapping[str, Any]] | None = None

    def page(self, offset: int, batch_size: int) -> list[dict[str, Any]]:
        """The records from ``offset``, at most ``batch_size`` of them."""
        if self.last_page is not None and self.last_page[0] == offset:
            return self.last_page[1]
        if self._iterator is None or offset != self.position:
            self._iterator = itertools.islice(
                self.bound.select(self.snapshot, self.resolve), offset, None
            )
            self.position = offset
        rows = [
            self.bound.project(r, self.resolve)
            for r in itertools.islice(self._iterator, batch_size)
        ]
        self.position += len(rows)
        self.last_page = (offset, rows)
        return rows


class SalesforceApp(SandboxApp):
    """The local Salesforce: an :class:`Org` behind OAuth and the REST API.

    Args:
        org: the org to serve (a fresh one when None).
        oauth: the connected app and user recognized by the token endpoint.
        token_lifetime_seconds: how long issued access tokens live (None: forever).
        session_id: a fixed access token accepted from the start (never times out,
            but the session-expiry fault applies to it too).
        cursor_ttl_seconds: how long an unused query locator stays valid.

    Other modules add routes with :meth:`route` / :meth:`rest` (``register(app)``),
    make paths public with :attr:`open_prefixes`, and give paths their own fault
    and error bodies with :attr:`error_styles`.

    """

    name = "salesforce"

    def __init__(
        self,
        org: Org | None = None,
        *,
        oauth: OAuthSettings | None = None,
        token_lifetime_seconds: float | None = 7200.0,
        session_id: str | None = None,
        cursor_ttl_seconds: float = 900.0,
        register_extensions: bool = True,
    ) -> None:
        super().__init__()
        self.org = org if org is not None else Org()
        if self.org.faults is None:
            self.org.faults = self.faults
        else:
            self.faults = self.org.faults
        self.base_url = "https://127.0.0.1"
        self.tokens = TokenStore(self.faults, lifetime_seconds=token_lifetime_seconds)
        self.oauth = oauth or OAuthSettings(client_id="sandbox-client", client_secret="sandbox")
        self.oauth_endpoint = OAuthEndpoint(self.oauth, self.tokens, lambda: self.base_url)
        self.session_id = session_id
        if session_id is not None:
            self.tokens.issue("session", session_id, expires=False)
        self.cursor_ttl_seconds = cursor_ttl_seconds
        #: Test hook: called with a Composite subrequest's ``referenceId`` once
        #: it has been served, before the next one runs (a change between the
        #: subrequests of one call, as real concurrent traffic would make one).
        self.after_subrequest: Callable[[str], None] | None = None
        self._cursors: OrderedDict[str, QueryCursor] = OrderedDict()
        self._cursor_lock = threading.Lock()
        self._cursor_seq = itertools.count(1)
        self._error_seq = itertools.count()
        self.open_prefixes: list[str] = []
        self.error_styles: list[tuple[str, Callable[[int, str, str], Response]]] = []
        #: List views (Metadata API ``ListView`` and REST); None without extensions.
        self.listviews: listviews.ListViews | None = None
        if register_extensions:
            # Before the record routes, which would read "listviews" as a record id.
            self.listviews = listviews.register(self)
        self._register_core()
        if register_extensions:
            bulk.register(self)
            metadata.register(self)
            permissions.register()

    # ------------------------------------------------------------------ plumbing
    @property
    def api_version(self) -> str:
        """The newest API version served (``"59.0"``)."""
        return self.org.api_version

    def rest(
        self, method: str, suffix: str, handler: Callable[[Request, re.Match[str]], Response]
    ) -> None:
        """Register a handler under ``/services/data/vXX.X``; ``suffix`` is a regex.

        The match carries a ``version`` group; unsupported versions answer 404.
        """

        def versioned(request: Request, match: re.Match[str]) -> Response:
            self.check_version(match.group("version"))
            return handler(request, match)

        self.route(method, VERSION_PREFIX + suffix, versioned)

    def check_version(self, version: str) -> None:
        """Raise a 404 HttpError unless ``version`` is served (52.0 to 66.0)."""
        try:
            number = float(version)
        except ValueError:
            number = 0.0
        if not MIN_API_VERSION <= number <= MAX_API_VERSION:
            raise sf_fail(404, NOT_FOUND_MESSAGE, "NOT_FOUND")

    def data_url(self, suffix: str = "") -> str:
        """A host-relative REST path: ``/services/data/v59.0`` + suffix."""
        return f"/services/data/v{self.api_version}{suffix}"

    def use_session(self, token: str | None) -> bool:
        """Validate a session id for one call (and count it against the token's budget).

        For APIs that carry the session elsewhere (the SOAP header of the Metadata API).
        """
        return self.tokens.use(token)

    def count_api_call(self) -> bool:
        """Count one call against the daily allocation; False when it is used up."""
        try:
            self.org.count_call()
        except ApiLimitExceeded:
            return False
        return True

    def limit_info(self) -> str:
        """The ``Sforce-Limit-Info`` header value."""
        used, total = self.org.usage()
        return f"api-usage={used}/{total}"

    # ------------------------------------------------------------------ hooks
    def is_open(self, request: Request) -> bool:
        """The token endpoint, the version list and registered open prefixes need no session."""
        path = request.path
        if path in (
            "/services/oauth2/token",
            "/services/oauth2/revoke",
            "/services/data",
            "/services/data/",
        ):
            return True
        return any(path.startswith(p) for p in self.open_prefixes)

    def authenticate(self, request: Request) -> Response | None:
        """Check the bearer session, then count the call against the daily allocation.

        The request's ``kind`` is set first, so refused and faulted calls are logged
        under the kind they would have had.
        """
        request.kind = request.kind or classify(request.method, request.path)
        if not self.tokens.use(bearer_token(request)):
            return Response.json(401, INVALID_SESSION)
        if not self.count_api_call():
            return Response.json(403, LIMIT_EXCEEDED)
        return None

    def _style(self, path: str) -> Callable[[int, str, str], Response] | None:
        return next((f for prefix, f in self.error_styles if path.startswith(prefix)), None)

    def fault_response(self, fault: str, request: Request) -> Response:
        """REQUEST_LIMIT_EXCEEDED for 'rate_limit'; 500 / 503 alternately for 'error'."""
        retry_after = self.faults.faults.retry_after
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        style = self._style(request.path)
        if fault == "rate_limit":
            response = (
                style(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
                if style
                else Response.json(403, LIMIT_EXCEEDED)
            )
        elif next(self._error_seq) % 2 == 0:
            message = (
                "An unexpected error occurred. Please include this ErrorId if you contact "
                f"support: {secrets.randbelow(10**9)}-{secrets.randbelow(10**5)} (-1234567)"
            )
            response = (
                style(500, message, "UNKNOWN_EXCEPTION")
                if style
                else sf_error(500, message, "UNKNOWN_EXCEPTION")
            )
        else:
            message = "Server temporarily unavailable, please retry"
            response = (
                style(503, message, "SERVER_UNAVAILABLE")
                if style
                else sf_error(503, message, "SERVER_UNAVAILABLE")
            )
        response.headers.update(headers)
        return response

    def error_response(self, status: int, message: str, code: str) -> Response:
        """Routing errors as Salesforce error lists."""
        if code == "NOT_FOUND":
            message = NOT_FOUND_MESSAGE
        return sf_error(status, message, code)

    def now(self) -> float:
        """The org's clock: the ``Date`` of each answer agrees with the stamps it hands out."""
        return self.org.clock()

    def decorate(self, request: Request, response: Response) -> None:
        """``Sforce-Limit-Info`` on every REST response."""
        if request.path.startswith("/services/data"):
            response.headers.setdefault("Sforce-Limit-Info", self.limit_info())

    def handle(self, request: Request) -> Response | None:
        """Serve one request (admin paths included)."""
        if request.path.startswith("/__admin/salesforce/"):
            return self._sf_admin(request)
        too_long = self._too_long(request)
        if too_long is not None:
            self.log.add(request, too_long.status)
            return too_long
        return super().handle(request)

    @staticmethod
    def _too_long(request: Request) -> Response | None:
        """414 for a URI over 16,384 bytes, 431 when URI and headers together exceed it."""
        uri = len(request.target.encode())
        if uri > MAX_URI_AND_HEADERS_BYTES:
            return sf_error(414, "URI Too Long", "URI_TOO_LONG")
        headers = sum(len(k) + len(v) + 4 for k, v in request.headers.items())
        if uri + headers > MAX_URI_AND_HEADERS_BYTES:
            return sf_error(431, "Request Header Fields Too Large", "REQUEST_HEADERS_TOO_LARGE")
        return None

    def _sf_admin(self, request: Request) -> Response:
        op = request.path.removeprefix("/__admin/salesforce/").rstrip("/")
        if op == "expire-sessions" and request.method == "POST":
            self.tokens.expire_all()
            return Response.json(200, {"expired": True})
        if op == "usage" and request.method == "GET":
            used, total = self.org.usage()
            return Response.json(200, {"used": used, "total": total})
        if op == "permissions" and request.method in ("PUT", "POST"):
            # Whether the integration user holds "Assign Permission Sets".
            body = request.json() or {}
            self.org.access.can_assign = bool(body.get("assign_permission_sets", True))
            return Response.json(200, {"assign_permission_sets": self.org.access.can_assign})
        if op == "usage" and request.method in ("PUT", "POST"):
            body = request.json() or {}
            self.org.set_usage(int(body.get("used", 0)))
            used, total = self.org.usage()
            return Response.json(200, {"used": used, "total": total})
        return Response.json(404, {"message": f"no admin operation {op!r}"})

    # ------------------------------------------------------------------ routes
    def _register_core(self) -> None:
        self.route("POST", r"/services/oauth2/token", lambda r, m: self.oauth_endpoint.handle(r))
        self.route("POST", r"/services/oauth2/revoke", lambda r, m: self.oauth_endpoint.revoke(r))
        self.route("GET", r"/services/oauth2/userinfo/?", self._userinfo)
        self.route("GET", r"/id/(?P<org>00D\w+)/(?P<user>005\w+)/?", self._identity)
        self.route("GET", r"/services/data/?", self._versions)
        self.rest("GET", r"/?", self._resources)
        self.rest("GET", r"/limits/?", self._limits)
        self.rest("GET", r"/sobjects/?", self._global_describe)
        self.rest("GET", r"/sobjects/(?P<sobject>\w+)/describe/?", self._describe)
        self.rest("GET", r"/sobjects/(?P<sobject>\w+)/updated/?", self._updated)
        self.rest("GET", r"/sobjects/(?P<sobject>\w+)/deleted/?", self._deleted)
        self.rest("GET", r"/sobjects/(?P<sobject>\w+)/?", self._sobject_info)
        self.rest("POST", r"/sobjects/(?P<sobject>\w+)/?", self._create_record)
        self.rest("GET", r"/sobjects/(?P<sobject>\w+)/(?P<id>[^/]+)/?", self._get_record)
        self.rest("PATCH", r"/sobjects/(?P<sobject>\w+)/(?P<id>[^/]+)/?", self._patch_record)
        self.rest("DELETE", r"/sobjects/(?P<sobject>\w+)/(?P<id>[^/]+)/?", self._delete_record)
        self.rest("GET", r"/(?P<endpoint>query|queryAll)/?", self._query)
        self.rest(
            "GET",
            r"/(?P<endpoint>query|queryAll)/(?P<cursor>01g[A-Za-z0-9]+)-(?P<offset>\d+)/?",
            self._query_more,
        )
        self.rest("PATCH", r"/composite/sobjects/?", self._collections_update)
        self.rest("GET", r"/composite/sobjects/(?P<sobject>\w+)/?", self._collections_get)
        self.rest("POST", r"/composite/?", self._composite)

    def _sobject(self, match: re.Match[str]) -> str:
        sobject = self.org.canonical_sobject(match.group("sobject"))
        if sobject is None:
            raise sf_fail(404, NOT_FOUND_MESSAGE, "NOT_FOUND")
        return sobject

    def _user(self) -> dict[str, Any]:
        user = self.org.get("User", USER_ID) or {}
        return {
            "user_id": USER_ID,
            "organization_id": ORG_ID,
            "username": user.get("Username", USERNAME),
            "email": user.get("Email", USERNAME),
            "display_name": user.get("Name", ""),
            "active": True,
            "user_type": "STANDARD",
        }

    def _identity(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /id/{org}/{user}`` (the token response's ``id``): who the session is."""
        request.kind = "identity"
        if match.group("org") != ORG_ID or match.group("user") != USER_ID:
            raise sf_fail(403, "Bad_Id", "BAD_ID")
        identity = f"{self.base_url}/id/{ORG_ID}/{USER_ID}"
        return Response.json(200, {"id": identity, "asserted_user": True, **self._user()})

    def _userinfo(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /services/oauth2/userinfo``: the OpenID Connect view of the same user."""
        request.kind = "userinfo"
        user = self._user()
        return Response.json(
            200,
            {
                "sub": f"{self.base_url}/id/{ORG_ID}/{USER_ID}",
                "user_id": USER_ID,
                "organization_id": ORG_ID,
                "preferred_username": user["username"],
                "name": user["display_name"],
                "email": user["email"],
                "active": True,
            },
        )

    def _versions(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "versions"
        top = int(MAX_API_VERSION)
        return Response.json(
            200,
            [
                {
                    "label": _RELEASES.get(v, f"v{v}.0"),
                    "url": f"/services/data/v{v}.0",
                    "version": f"{v}.0",
                }
                for v in range(int(MIN_API_VERSION), top + 1)
            ],
        )

    def _resources(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "resources"
        base = f"/services/data/v{match.group('version')}"
        names = ["sobjects", "query", "queryAll", "limits", "composite", "jobs"]
        return Response.json(200, {n: f"{base}/{n}" for n in names})

    def _limits(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "limits"
        used, total = self.org.usage()
        return Response.json(
            200,
            {
                "DailyApiRequests": {"Max": total, "Remaining": max(0, total - used)},
                **{
                    name: {"Max": top, "Remaining": max(0, top - self.org.limit_used(name))}
                    for name, top in BULK_LIMITS.items()
                },
                "DataStorageMB": {"Max": 1024, "Remaining": 1024},
                "FileStorageMB": {"Max": 1024, "Remaining": 1024},
                "SingleEmail": {"Max": 5000, "Remaining": 5000},
            },
        )

    def _global_describe(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "describe"
        return Response.json(200, self.org.global_describe())

    def _describe(self, request: Request, match: re.Match[str]) -> Response:
        """The describe; 304 without a body when unchanged since ``If-Modified-Since``.

        Only metadata changes (fields created, changed, deleted) count, not
        field-level security: the documentation speaks of the object's
        metadata, so a client must not rely on a 304 to learn of access changes.
        """
        request.kind = "describe"
        sobject = self._sobject(match)
        since = _http_date(request.headers.get("if-modified-since"))
        # HTTP dates have whole seconds: a change within the second counts as after.
        if since is not None and self.org.schema_changed(sobject) < since:
            return Response(304)
        return Response.json(200, self.org.describe(sobject))

    def _sobject_info(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "describe"
        sobject = self._sobject(match)
        summary = self.org.global_describe()["sobjects"]
        info = next(s for s in summary if s["name"] == sobject)
        return Response.json(200, {"objectDescribe": info, "recentItems": []})

    # ------------------------------------------------------------------ sObject rows
    def record_json(
        self,
        sobject: str,
        record: Mapping[str, Any],
        fields: Sequence[str] | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """A stored record as the REST API returns it (every field, nulls included)."""
        names = fields if fields is not None else [f.name for f in self.org.visible_fields(sobject)]
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v{version or self.api_version}/sobjects/{sobject}/"
                f"{record['Id']}",
            }
        }
        for name in names:
            value = record.get(name)
            out[name] = None if value == "" else value
        return out

    def _field_list(self, sobject: str, raw: str | None) -> list[str] | None:
        if raw is None:
            return None
        names = []
        for part in raw.split(","):
            f = self.org.visible_field(sobject, part.strip())
            if f is None:
                raise sf_fail(
                    400,
                    f"No such column '{part.strip()}' on entity '{sobject}'. If you are attempting"
                    " to use a custom field, be sure to append the '__c' after the custom field"
                    " name.",
                    "INVALID_FIELD",
                )
            names.append(f.name)
        return names

    def _lookup_for_rest(self, sobject: str, record_id: str) -> str:
        """Resolve the id in a /sobjects/{obj}/{id} URL, or raise the REST error."""
        try:
            return self.org.check_id(sobject, record_id)
        except RecordError as exc:
            if exc.status_code == "MALFORMED_ID":
                if not re.fullmatch(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?", record_id):
                    raise sf_fail(
                        404,
                        "Provided external ID field does not exist or is not accessible: "
                        + record_id,
                        "NOT_FOUND",
                    ) from None
                raise sf_fail(400, exc.message, "MALFORMED_ID", exc.fields) from None
            if exc.status_code == "ENTITY_IS_DELETED":
                raise sf_fail(404, "entity is deleted", "ENTITY_IS_DELETED", []) from None
            raise sf_fail(404, NOT_FOUND_MESSAGE, "NOT_FOUND") from None

    def _get_record(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "sobject.get"
        sobject = self._sobject(match)
        resolved = self._lookup_for_rest(sobject, match.group("id"))
        request.records.append(resolved)
        record = self.org.get(sobject, resolved)
        if record is None:
            raise sf_fail(404, NOT_FOUND_MESSAGE, "NOT_FOUND")
        fields = self._field_list(sobject, request.arg("fields"))
        return Response.json(200, self.record_json(sobject, record, fields, match.group("version")))

    def _patch_record(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "sobject.update"
        sobject = self._sobject(match)
        body = request.json()
        if not isinstance(body, dict):
            raise sf_fail(
                400,
                "Json Deserialization failed on token 'null' and has left off in the middle of "
                "parsing a row. Will go to end of row to begin parsing the next row",
                "INVALID_FIELD",
            )
        request.records.append(match.group("id"))
        request.fields.update(self._written_fields(sobject, body))
        resolved = self._lookup_for_rest(sobject, match.group("id"))
        try:
            self.org.update(sobject, resolved, body, user=USER_ID, assign=_auto_assign(request))
        except RecordError as exc:
            return Response.json(
                400,
                [
                    {"message": e.message, "errorCode": e.status_code, "fields": list(e.fields)}
                    for e in exc.errors
                ],
            )
        return Response(204)

    def _create_record(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "sobject.create"
        sobject = self._sobject(match)
        body = request.json()
        if not isinstance(body, dict):
            raise sf_fail(400, "The request body must be a JSON object", "JSON_PARSER_ERROR")
        request.fields.update(self._written_fields(sobject, body))
        try:
            record_id = self.org.create(sobject, body, user=USER_ID)
        except RecordError as exc:
            return Response.json(
                400,
                [
                    {"message": e.message, "errorCode": e.status_code, "fields": list(e.fields)}
                    for e in exc.errors
                ],
            )
        request.records.append(record_id)
        return Response.json(201, {"id": record_id, "success": True, "errors": []})

    def _delete_record(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "sobject.delete"
        sobject = self._sobject(match)
        request.records.append(match.group("id"))
        resolved = self._lookup_for_rest(sobject, match.group("id"))
        try:
            self.org.delete(sobject, resolved, user=USER_ID)
        except RecordError as exc:
            raise sf_fail(400, exc.message, exc.status_code, exc.fields) from None
        return Response(204)

    def _written_fields(self, sobject: str | None, body: Mapping[str, Any]) -> set[str]:
        out = set()
        for key in body:
            if key == "attributes" or key.lower() == "id":
                continue
            f = self.org.field(sobject, key) if sobject else None
            out.add(f.name if f else key)
        return out

    # ------------------------------------------------------------------ replication
    def _updated(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "getUpdated"
        sobject = self._sobject(match)
        start = _parse_window_date(request, "start")
        end = _parse_window_date(request, "end")
        try:
            _, latest = self.org.replication_window(start, end, deleted=False)
        except ValueError as exc:
            raise sf_fail(400, str(exc), "INVALID_REPLICATION_DATE") from None
        ids = self.org.updated_ids(sobject, start, latest)
        if len(ids) > 600_000:
            raise sf_fail(
                400, "The requested date range returned more than 600000 ids", "EXCEEDED_ID_LIMIT"
            )
        return Response.json(200, {"ids": ids, "latestDateCovered": format_datetime(latest)})

    def _deleted(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "getDeleted"
        sobject = self._sobject(match)
        start = _parse_window_date(request, "start")
        end = _parse_window_date(request, "end")
        try:
            earliest, latest = self.org.replication_window(start, end, deleted=True)
        except ValueError as exc:
            raise sf_fail(400, str(exc), "INVALID_REPLICATION_DATE") from None
        deleted = self.org.deleted(sobject, start, latest)
        return Response.json(
            200,
            {
                "deletedRecords": [{"id": i, "deletedDate": d} for i, d in deleted],
                "earliestDateAvailable": format_datetime(earliest.replace(second=0, microsecond=0)),
                "latestDateCovered": format_datetime(latest),
            },
        )

    # ------------------------------------------------------------------ SOQL
    def soql_schema(self) -> dict[str, soql.SoqlObject]:
        """The org's schema as the SOQL engine sees it."""
        schema = {}
        for sobject in self.org.sobjects():
            fields = [
                soql.SoqlField(
                    f.name,
                    f.type,
                    f.reference_to[0] if f.reference_to else None,
                    f.relationship_name,
                    f.type != "textarea" or f.length <= 255,
                    f.type not in ("textarea", "multipicklist"),
                )
                # Field-level security: a field the user cannot read is "No such column".
                for f in self.org.visible_fields(sobject)
            ]
            schema[sobject] = soql.SoqlObject(sobject, fields)
        return schema

    def resolve_parent(self, sobject: str, record_id: str) -> Mapping[str, Any] | None:
        """A live parent record for relationship fields (None when absent or deleted)."""
        record = self.org.get_live(sobject, record_id) if self.org.has_sobject(sobject) else None
        if record is None or record.get("IsDeleted"):
            return None
        return record

    def bind_query(self, text: str, version: str | None = None) -> soql.BoundQuery:
        """Parse and bind a SOQL query against the org (raises soql.SoqlError).

        ``version`` is the API version the record ``attributes.url`` paths name.
        """
        parsed = soql.parse(text)
        return soql.bind(
            parsed,
            self.soql_schema(),
            today=self.org.now().date(),
            api_version=version or self.api_version,
        )

    def _long_text_columns(self, bound: soql.BoundQuery) -> int:
        count = 0
        for column in bound.columns:
            sobject: str | None = bound.object
            *hops, name = column.split(".")
            for hop in hops:
                ref = (
                    next(
                        (
                            f
                            for f in self.org.fields(sobject)
                            if f.relationship_name == hop and f.reference_to
                        ),
                        None,
                    )
                    if sobject
                    else None
                )
                sobject = ref.reference_to[0] if ref else None
            f = self.org.field(sobject, name) if sobject else None
            if f is not None and f.custom and f.type == "textarea" and f.length > 255:
                count += 1
        return count

    def _batch_size(self, request: Request) -> int:
        options = request.headers.get("sforce-query-options", "")
        m = re.search(r"batchSize\s*=\s*(\d+)", options, re.IGNORECASE)
        if not m:
            return DEFAULT_BATCH_SIZE
        return max(MIN_BATCH_SIZE, min(DEFAULT_BATCH_SIZE, int(m.group(1))))

    def _expire_cursors(self) -> None:
        deadline = time.monotonic() - self.cursor_ttl_seconds
        with self._cursor_lock:
            for key in [k for k, c in self._cursors.items() if c.touched < deadline]:
                del self._cursors[key]
            while len(self._cursors) > MAX_OPEN_CURSORS:
                self._cursors.popitem(last=False)

    def _query(self, request: Request, match: re.Match[str]) -> Response:
        endpoint = match.group("endpoint")
        request.kind = endpoint
        text = request.arg("q")
        if not text:
            raise sf_fail(400, "A query string has to be specified", "MALFORMED_QUERY")
        try:
            bound = self.bind_query(text, match.group("version"))
        except soql.SoqlError as exc:
            return Response.json(400, exc.to_json())
        include_deleted = endpoint == "queryAll"
        snapshot: list[Mapping[str, Any]] = list(self.org.records(bound.object, include_deleted))
        resolve = self.resolve_parent
        total = bound.count(snapshot, resolve)
        if bound.is_count:
            return Response.json(200, {"totalSize": total, "done": True, "records": []})
        self._expire_cursors()
        batch_size = self._batch_size(request)
        if self._long_text_columns(bound) >= 2:
            # Documented: two or more long text fields selected cap a page at 200 records.
            batch_size = min(batch_size, LONG_TEXT_BATCH_SIZE)
        cursor_id = f"01g{secrets.token_hex(4).upper()}{next(self._cursor_seq):08d}"[:18]
        cursor = QueryCursor(
            cursor_id,
            endpoint,
            bound,
            snapshot,
            total,
            batch_size,
            resolve,
        )
        with cursor.lock:
            return self._serve_page(cursor, 0, cursor.batch_size, match.group("version"))

    def _serve_page(
        self, cursor: QueryCursor, offset: int, batch_size: int, version: str
    ) -> Response:
        rows = cursor.page(offset, batch_size)
        next_offset = offset + len(rows)
        done = next_offset >= cursor.total or not rows
        body: dict[str, Any] = {"totalSize": cursor.total, "done": done}
        with self._cursor_lock:
            if done:
                self._cursors.pop(cursor.id, None)
            else:
                cursor.touched = time.monotonic()
                self._cursors[cursor.id] = cursor
                self._cursors.move_to_end(cursor.id)
                body["nextRecordsUrl"] = (
                    f"/services/data/v{version}/{cursor.endpoint}/{cursor.id}-{next_offset}"
                )
        body["records"] = rows
        return Response.json(200, body)

    def _query_more(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "queryMore"
        self._expire_cursors()
        with self._cursor_lock:
            cursor = self._cursors.get(match.group("cursor"))
        offset = int(match.group("offset"))
        if cursor is None or offset > cursor.total:
            raise sf_fail(400, "invalid query locator", "INVALID_QUERY_LOCATOR")
        batch = (
            min(self._batch_size(request), cursor.batch_size)
            if "sforce-query-options" in request.headers
            else cursor.batch_size
        )
        with cursor.lock:
            return self._serve_page(cursor, offset, batch, match.group("version"))

    def clear_cursors(self) -> None:
        """Forget every open query locator."""
        with self._cursor_lock:
            self._cursors.clear()

    def open_cursors(self) -> int:
        """How many query locators are open (tests: cursors are released when done)."""
        with self._cursor_lock:
            return len(self._cursors)

    # ------------------------------------------------------------------ collections
    def _collections_update(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "collections.update"
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise sf_fail(400, "The request body must contain a records array", "JSON_PARSER_ERROR")
        records: list[Any] = body["records"]
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise sf_fail(400, "allOrNone must be a boolean", "JSON_PARSER_ERROR")
        if len(records) > MAX_COLLECTION_RECORDS:
            raise sf_fail(
                400,
                "record limit reached. cannot submit more than 200 records into this call",
                "EXCEEDED_ID_LIMIT",
            )
        names: list[str] = []
        items: list[tuple[Any, Mapping[str, Any]]] = []
        for index, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise sf_fail(400, f"Record {index} is not an object", "JSON_PARSER_ERROR")
            attributes = rec.get("attributes")
            raw_type = attributes.get("type") if isinstance(attributes, dict) else None
            if not isinstance(raw_type, str) or not raw_type:
                raise sf_fail(
                    400,
                    "When the collection is of sObjects, each record must specify its type in "
                    "attributes.type",
                    "INVALID_TYPE",
                )
            sobject = self.org.canonical_sobject(raw_type)
            if sobject is None:
                raise sf_fail(400, f"sObject type '{raw_type}' is not supported.", "INVALID_TYPE")
            record_id = rec.get("id", rec.get("Id"))
            names.append(sobject)
            items.append((record_id, rec))
            if isinstance(record_id, str):
                request.records.append(record_id)
            request.fields.update(self._written_fields(sobject, rec))
        chunks = sum(1 for i, name in enumerate(names) if i == 0 or name != names[i - 1])
        if chunks > MAX_COLLECTION_CHUNKS:
            raise sf_fail(
                400,
                f"Cannot have more than {MAX_COLLECTION_CHUNKS} chunks in a single operation. "
                "Please rearrange the data to reduce chunking.",
                "INVALID_BATCH_REQUEST",
            )
        results = self.org.update_many(
            names, items, all_or_none=all_or_none, user=USER_ID, assign=_auto_assign(request)
        )
        return Response.json(200, [r.to_json() for r in results])

    def _collections_get(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "collections.get"
        sobject = self._sobject(match)
        ids = [i for i in (request.arg("ids") or "").split(",") if i]
        if not ids:
            raise sf_fail(400, "ids: required parameter missing", "MISSING_ARGUMENT")
        if len(ids) > 2000:
            raise sf_fail(400, "Too many ids: at most 2000", "EXCEEDED_ID_LIMIT")
        fields = self._field_list(sobject, request.arg("fields"))
        if not fields:
            raise sf_fail(400, "fields: required parameter missing", "MISSING_ARGUMENT")
        out: list[dict[str, Any] | None] = []
        for record_id in ids:
            record = self.org.get(sobject, record_id)
            if record is None or record.get("IsDeleted"):
                out.append(None)
            else:
                request.records.append(record["Id"])
                out.append(self.record_json(sobject, record, fields, match.group("version")))
        return Response.json(200, out)

    # ------------------------------------------------------------------ composite
    def _composite(self, request: Request, match: re.Match[str]) -> Response:
        request.kind = "composite"
        body = request.json()
        subs = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subs, list) or not subs:
            raise sf_fail(
                400, "compositeRequest: a non-empty array is required", "JSON_PARSER_ERROR"
            )
        if len(subs) > MAX_COMPOSITE_SUBREQUESTS:
            raise sf_fail(
                400,
                f"Composite requests cannot have more than {MAX_COMPOSITE_SUBREQUESTS} subrequests",
                "INVALID_INPUT",
            )
        all_or_none = bool(body.get("allOrNone", False))
        heavy = 0
        seen_refs: set[str] = set()
        for sub in subs:
            if not isinstance(sub, dict) or not all(
                isinstance(sub.get(k), str) for k in ("method", "url", "referenceId")
            ):
                raise sf_fail(
                    400, "Each subrequest needs method, url and referenceId", "INVALID_INPUT"
                )
            ref = sub["referenceId"]
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", ref) or ref in seen_refs:
                raise sf_fail(400, f"Invalid or duplicate referenceId: {ref}", "INVALID_INPUT")
            seen_refs.add(ref)
            path = urlsplit(sub["url"]).path
            if not path.startswith("/services/data/v"):
                raise sf_fail(400, f"Invalid subrequest url: {sub['url']}", "INVALID_INPUT")
            if re.search(r"/(query|queryAll)/?$|/composite/sobjects", path):
                heavy += 1
            if re.search(r"/composite/?$", path):
                raise sf_fail(400, "Composite requests cannot be nested", "INVALID_INPUT")
        if heavy > MAX_COMPOSITE_QUERIES_AND_COLLECTIONS:
            raise sf_fail(
                400,
                "A composite request can contain at most 5 query or sObject Collections "
                "subrequests",
                "INVALID_INPUT",
            )
        results: dict[str, tuple[int, Any]] = {}
        responses: list[dict[str, Any]] = []
        failed = False
        if all_or_none:
            self.org.begin()
        try:
            for sub in subs:
                ref = sub["referenceId"]
                if failed and all_or_none:
                    responses.append(_halted(ref))
                    continue
                try:
                    url = _substitute(sub["url"], results, url=True)
                    sub_body = _substitute(sub.get("body"), results, url=False)
                except _BadReference as exc:
                    responses.append(_halted(ref, str(exc)))
                    results[ref] = (400, None)
                    failed = True
                    continue
                response = self._subrequest(request, sub["method"].upper(), url, sub_body, sub)
                try:
                    parsed = json.loads(response.body) if response.body else None
                except ValueError:
                    parsed = response.body.decode(errors="replace")
                results[ref] = (response.status, parsed)
                headers = {
                    k: v
                    for k, v in response.headers.items()
                    if k.lower() not in ("content-type", "sforce-limit-info")
                }
                responses.append(
                    {
                        "body": parsed,
                        "httpHeaders": headers,
                        "httpStatusCode": response.status,
                        "referenceId": ref,
                    }
                )
                if response.status >= 400:
                    failed = True
                if self.after_subrequest is not None:
                    self.after_subrequest(ref)
            if all_or_none and failed:
                self.org.rollback()
                failing = {r["referenceId"] for r in responses if r["httpStatusCode"] >= 400}
                responses = [
                    r
                    if r["referenceId"] in failing and "PROCESSING_HALTED" not in str(r["body"])
                    else _halted(r["referenceId"])
                    for r in responses
                ]
        finally:
            if all_or_none:
                self.org.commit()
        return Response.json(200, {"compositeResponse": responses})

    def _subrequest(
        self,
        outer: Request,
        method: str,
        url: str,
        body: Any,
        sub: Mapping[str, Any],
    ) -> Response:
        if len(url.encode()) > MAX_URI_AND_HEADERS_BYTES:
            # The docs give subrequest URLs no bound of their own: the stricter
            # reading holds them to the one a plain request's URI has.
            return sf_error(414, "URI Too Long", "URI_TOO_LONG")
        parts = urlsplit(url)
        extra = sub.get("httpHeaders") if isinstance(sub.get("httpHeaders"), dict) else {}
        headers = {**outer.headers, **{str(k).lower(): str(v) for k, v in (extra or {}).items()}}
        inner = Request(
            method,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            headers,
            json.dumps(body).encode() if body is not None else b"",
        )
        matches = [
            (m, h)
            for verb, pattern, h in self._routes
            if verb == method and (m := pattern.fullmatch(parts.path))
        ]
        if not matches:
            return sf_error(404, NOT_FOUND_MESSAGE, "NOT_FOUND")
        match, handler = matches[0]
        try:
            response = handler(inner, match)
        except HttpError as exc:
            response = exc.response
        except BadJson as exc:
            response = sf_error(400, f"malformed JSON: {exc}", "JSON_PARSER_ERROR")
        outer.records.extend(inner.records)
        outer.fields.update(inner.fields)
        return response


class _BadReference(ValueError):
    """A composite subrequest refers to a result that does not exist."""


_REF_RE = re.compile(r"@\{([A-Za-z][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


def _lookup_reference(results: Mapping[str, tuple[int, Any]], ref: str, path: str) -> Any:
    if ref not in results:
        raise _BadReference(f"Invalid reference specified. No value for {ref} found.")
    status, value = results[ref]
    if status >= 400:
        raise _BadReference(
            f"Invalid reference specified. No value for {ref}{path} found in {ref}."
        )
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        key, index = step
        try:
            value = value[int(index)] if index else value[key]
        except (KeyError, IndexError, TypeError):
            raise _BadReference(
                f"Invalid reference specified. No value for {ref}{path} found in {ref}."
            ) from None
    return value


def _substitute(value: Any, results: Mapping[str, tuple[int, Any]], *, url: bool) -> Any:
    if isinstance(value, str):
        whole = _REF_RE.fullmatch(value)
        if whole and not url:
            return _lookup_reference(results, whole.group(1), whole.group(2))
        return _REF_RE.sub(lambda m: str(_lookup_reference(results, m.group(1), m.group(2))), value)
    if isinstance(value, list):
        return [_substitute(v, results, url=url) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, results, url=url) for k, v in value.items()}
    return value


def _halted(ref: str, message: str | None = None) -> dict[str, Any]:
    return {
        "body": [
            {
                "errorCode": "PROCESSING_HALTED",
                "message": message
                or "The transaction was rolled back since another operation in the same "
                "transaction failed.",
            }
        ],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": ref,
    }


def _auto_assign(request: Request) -> bool:
    """Whether a REST write runs the active assignment rules (``Sforce-Auto-Assign``).

    The header defaults to TRUE when absent; FALSE (any case) turns the rules
    off; an AssignmentRule id applies that rule (here: the active one).
    """
    value = request.headers.get("sforce-auto-assign")
    return value is None or value.strip().lower() != "false"
