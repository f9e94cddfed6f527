"""The HubSpot sandbox's HTTP surface: CRM objects, search, batch, properties, associations.

Routes answer in HubSpot's wire formats (docs/crm-apis.md#hubspot) with the status codes
hubspot-api-client picks its response models by (200 / 201 / 207). Every
non-admin request is authenticated with a private-app bearer token, then
counted by the :class:`RateLimiter` before any injected fault is drawn.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields
from typing import Any
from urllib.parse import quote, unquote, urlencode

import urllib3

from segsync_sandbox.common import Request, Response, SandboxApp, SandboxServer
from segsync_sandbox.hubspot.errors import (
    ObjectNotFound,
    PortalError,
    PropertyValuesError,
    ValidationError,
)
from segsync_sandbox.hubspot.lists import HubSpotLists
from segsync_sandbox.hubspot.portal import PRIVATE_APP, Portal, object_type_of
from segsync_sandbox.hubspot.ratelimit import RateLimiter
from segsync_sandbox.hubspot.schema import ALWAYS_RETURNED, format_ms
from segsync_sandbox.hubspot.search import Searcher, SearchLimits

JsonObj = dict[str, Any]

DEFAULT_TOKEN = "pat-na1-sandbox-0123456789abcdef"
"""The private-app token a sandbox accepts unless told otherwise."""

MAX_LIST_LIMIT = 100
MAX_BATCH_INPUTS = 100
MAX_ASSOC_BATCH_INPUTS = 1_000
MAX_ASSOC_LIMIT = 500
#: Associations a record read through the objects API carries per associated
#: type; past that, a ``paging.next.after`` cursor (docs/crm-apis.md#hubspot-list).
MAX_INLINE_ASSOCIATIONS = 100

_OBJ = r"/crm/v3/objects/(?P<type>[^/]+)"
_PROPS = r"/crm/v3/properties/(?P<type>[^/]+)"

_ASSOCIATION_TYPES = {
    ("contacts", "companies"): (1, 279),
    ("companies", "contacts"): (2, 280),
    ("deals", "companies"): (5, 341),
    ("companies", "deals"): (6, 342),
}
_SINGULAR = {"companies": "company", "contacts": "contact", "deals": "deal"}
_UPPER = {"companies": "COMPANY", "contacts": "CONTACT", "deals": "DEAL"}

_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_CATEGORY_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "RATE_LIMITS",
}
# Documented "wait and retry" statuses a test can script (message, category).
_SCRIPTED = {
    423: ("The resource is locked; wait at least 2 seconds before retrying.", "LOCKED"),
    477: ("This portal is being migrated; retry after the Retry-After delay.", "MIGRATION"),
}
_SERVER_ERRORS = (
    (502, "Bad Gateway", "INTERNAL_ERROR"),
    (503, "Service Unavailable", "SERVICE_UNAVAILABLE"),
    (500, "An internal error occurred.", "INTERNAL_ERROR"),
)


def correlation_id() -> str:
    """A fresh correlation id, as every HubSpot error carries."""
    return str(uuid.uuid4())


def hubspot_error(status: int, message: str, category: str, **extra: Any) -> Response:
    """An error response in HubSpot's shape."""
    body: JsonObj = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
    }
    body.update(extra)
    return Response.json(status, body)


def _now_iso() -> str:
    return format_ms(int(time.time() * 1000))


def _multi(request: Request, name: str) -> list[str] | None:
    """A repeated and/or comma-separated query parameter (the client repeats it)."""
    values = request.query.get(name)
    if values is None:
        return None
    return [part for value in values for part in value.split(",") if part]


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter: ``true`` or ``false`` as the spec types it.

    Python's spelling (``True`` / ``False``, what hubspot-api-client sends for
    a bool) is refused with 400, as a server validating against the spec would.
    """
    raw = request.arg(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise ValidationError(
            f"Invalid value for query parameter {name}: {raw!r}; expected true or false",
            context={name: [raw]},
        )
    return raw == "true"


def _int_arg(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise ValidationError(f"Invalid value for {name}: {raw!r}") from None


def _inputs(body: Any, maximum: int) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise ValidationError("The request body needs an inputs list")
    inputs: list[Any] = body["inputs"]
    if len(inputs) > maximum:
        raise ValidationError(
            f"Too many inputs: {len(inputs)}; a batch takes at most {maximum}",
            context={"maxInputs": [str(maximum)]},
        )
    return inputs


def _error_details(problems: list[JsonObj]) -> list[JsonObj]:
    """HubSpot's ``errors`` list for property-value problems: one detail per property."""
    return [
        {
            "message": str(p.get("message", "")),
            "code": str(p.get("error", "")),
            "in": str(p.get("name", "")),
            "context": {"propertyName": [str(p.get("name", ""))]},
        }
        for p in problems
    ]


def _batch_refusal(invalid: list[JsonObj]) -> ValidationError:
    """The 400 refusing a whole batch: the first invalid input's message, every detail.

    It names properties, never records: which input was at fault is only
    told per input, when the inputs carry ``objectWriteTraceId``.
    """
    details = [d for verdict in invalid for d in verdict.get("errors", [])]
    unique = list({json.dumps(d, sort_keys=True): d for d in details}.values())
    return ValidationError(str(invalid[0]["message"]), errors=unique)


def _not_found(object_type: str, *ids: str) -> JsonObj:
    """The per-input error for ids that name no live record."""
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"Could not get some {_UPPER[object_type]} objects, they may be "
        "deleted or not exist. Check that ids are valid.",
        "context": {"ids": list(ids)},
    }


class HubSpotApp(SandboxApp):
    """The HubSpot API over a :class:`Portal`.

    Args:
        portal: the data.
        tokens: the private-app tokens accepted.
        clock: monotonic seconds for the rate limiter (inject a fake one in tests).
        search_limits: search limits (filter groups, page size, the 10,000-result cap).

    """

    name = "hubspot"

    def __init__(
        self,
        portal: Portal,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        *,
        clock: Callable[[], float] = time.monotonic,
        search_limits: SearchLimits | None = None,
    ) -> None:
        super().__init__()
        self.portal = portal
        self.tokens = set(tokens)
        self.limiter = RateLimiter(portal.limits, clock)
        self.searcher = Searcher(portal, search_limits)
        self._counter_lock = threading.Lock()
        self._authenticated_calls = 0
        self._faults_seen: object = None
        self._error_turn = 0
        #: Associations per input in one batch-read answer; more are paged with
        #: ``paging.next.after`` (lower it in tests to exercise the paging).
        self.assoc_batch_page = MAX_ASSOC_LIMIT
        self.inline_assoc_limit = MAX_INLINE_ASSOCIATIONS
        """Associations a listed record carries per type before a ``paging`` cursor."""
        self.honor_trace_ids = True
        """False answers batch writes as if no input carried an objectWriteTraceId
        (a bad value refuses the whole batch with 400): the case a client must
        survive should HubSpot ever do so."""
        self._scripted: deque[tuple[int, float | None]] = deque()
        self.malformed_associations: set[str] = set()
        """Record ids whose associations name their targets by an id that is not a
        number (the v4 spec types ``toObjectId`` as a string)."""
        self.lists = HubSpotLists(portal)
        """The Lists API (segments) and its folders."""
        self._register()

    def now(self) -> float:
        """The portal's clock: each answer's ``Date`` agrees with the stamps it hands out."""
        return self.portal.clock()

    # Routes ------------------------------------------------------------
    def _add(self, method: str, pattern: str, handler: Callable[..., Response]) -> None:
        def guarded(request: Request, match: Any) -> Response:
            try:
                # The client percent-encodes path parameters (an email as an id).
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                return handler(request, **params)
            except PortalError as exc:
                return Response.json(exc.status, exc.body(correlation_id()))

        self.route(method, pattern, guarded)

    def _register(self) -> None:
        self._add("GET", _OBJ, self.list_objects)
        self._add("POST", _OBJ, self.create_object)
        self._add("POST", _OBJ + "/search", self.search)
        self._add("POST", _OBJ + "/batch/read", self.batch_read)
        self._add("POST", _OBJ + "/batch/update", self.batch_update)
        self._add("GET", _OBJ + r"/(?P<record_id>[^/]+)", self.get_object)
        self._add("PATCH", _OBJ + r"/(?P<record_id>[^/]+)", self.update_object)
        self._add("DELETE", _OBJ + r"/(?P<record_id>[^/]+)", self.archive_object)
        # Group routes first: ".../groups" would otherwise read as a property name.
        self._add("GET", _PROPS + "/groups", self.list_groups)
        self._add("POST", _PROPS + "/groups", self.create_group)
        self._add("GET", _PROPS + r"/groups/(?P<name>[^/]+)", self.get_group)
        self._add("PATCH", _PROPS + r"/groups/(?P<name>[^/]+)", self.update_group)
        self._add("GET", _PROPS, self.list_properties)
        self._add("POST", _PROPS, self.create_property)
        self._add("GET", _PROPS + r"/(?P<name>[^/]+)", self.get_property)
        self._add("PATCH", _PROPS + r"/(?P<name>[^/]+)", self.update_property)
        self._add("GET", r"/crm/v3/pipelines/(?P<type>[^/]+)", self.list_pipelines)
        self._add(
            "GET", r"/crm/v3/pipelines/(?P<type>[^/]+)/(?P<pipeline_id>[^/]+)", self.get_pipeline
        )
        self._add(
            "DELETE",
            r"/crm/v3/pipelines/(?P<type>[^/]+)/(?P<pipeline_id>[^/]+)",
            self.delete_pipeline,
        )
        self._add(
            "GET",
            r"/crm/v4/objects/(?P<from_type>[^/]+)/(?P<record_id>[^/]+)/associations/(?P<to_type>[^/]+)",
            self.list_associations,
        )
        self._add(
            "POST",
            r"/crm/v4/associations/(?P<from_type>[^/]+)/(?P<to_type>[^/]+)/batch/read",
            self.batch_read_associations,
        )
        for method, pattern, handler in self.lists.routes():
            self._add(method, pattern, handler)

    # Hooks -------------------------------------------------------------
    @staticmethod
    def _token(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def authenticate(self, request: Request) -> Response | None:
        """401 without a configured token; 429 when a rate limit is hit; else None."""
        token = self._token(request)
        if token is None or token not in self.tokens:
            return hubspot_error(401, _AUTH_MESSAGE, "INVALID_AUTHENTICATION")
        with self._counter_lock:
            scripted = self._scripted.popleft() if self._scripted else None
        if scripted is not None:
            return self._scripted_response(*scripted)
        faults = self.faults.faults
        expiry = faults.session_expiry_after
        with self._counter_lock:
            # "Expire after N calls" counts from when the faults were set.
            if faults is not self._faults_seen:
                self._faults_seen = faults
                self._authenticated_calls = 0
            self._authenticated_calls += 1
            calls = self._authenticated_calls
        if expiry is not None and calls > expiry:
            return hubspot_error(
                401,
                "The OAuth token used to make this call expired 0 second(s) ago.",
                "EXPIRED_AUTHENTICATION",
            )
        decision = self.limiter.check(token, search=self._is_search(request))
        if decision.allowed:
            return None
        return self._rate_limited(str(decision.policy), decision.retry_after)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``times`` authenticated requests with ``status`` (423 or 477).

        423 Locked: HubSpot's answer to a burst of writes on the same records
        (wait two seconds or more). 477 Migration in Progress: the portal is
        moving between data centers; Retry-After says for how long.
        """
        if status not in _SCRIPTED:
            raise ValueError(f"can script {sorted(_SCRIPTED)}, not {status}")
        with self._counter_lock:
            self._scripted.extend([(status, retry_after)] * times)

    @staticmethod
    def _scripted_response(status: int, retry_after: float | None) -> Response:
        message, category = _SCRIPTED[status]
        response = hubspot_error(status, message, category)
        if retry_after is not None:
            response.headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
        return response

    @staticmethod
    def _is_search(request: Request) -> bool:
        # CRM object search has its own per-second limit; list search does not.
        return (
            request.method == "POST"
            and request.path.endswith("/search")
            and not request.path.startswith("/crm/v3/lists")
        )

    def _rate_limited(self, policy: str, retry_after: float) -> Response:
        names = {
            "TEN_SECONDLY_ROLLING": "ten_secondly_rolling",
            "DAILY": "daily",
            "SECONDLY": "secondly",
        }
        # HubSpot's 429 body has errorType + policyName and no category.
        response = Response.json(
            429,
            {
                "status": "error",
                "message": f"You have reached your {names.get(policy, policy.lower())} limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": correlation_id(),
                "policyName": policy,
            },
        )
        if self.portal.limits.send_retry_after:
            response.headers["Retry-After"] = RateLimiter.retry_after_header(retry_after)
        return response

    def fault_response(self, fault: str, request: Request) -> Response:
        """An injected 429 (the search or ten-secondly policy) or 5xx in HubSpot's shape."""
        if fault == "rate_limit":
            policy = "SECONDLY" if self._is_search(request) else "TEN_SECONDLY_ROLLING"
            response = self._rate_limited(policy, 1.0)
            forced = self.faults.faults.retry_after
            if forced is not None:
                # Exactly as set (0 allowed), so tests can show urllib3 honoring it.
                response.headers["Retry-After"] = str(max(0, math.ceil(forced)))
            return response
        with self._counter_lock:
            turn = self._error_turn
            self._error_turn += 1
        status, message, category = _SERVER_ERRORS[turn % len(_SERVER_ERRORS)]
        return hubspot_error(status, message, category)

    def error_response(self, status: int, message: str, code: str) -> Response:
        """Routing and malformed-JSON errors in HubSpot's shape."""
        if code == "JSON_PARSER_ERROR":
            return hubspot_error(400, f"Invalid input JSON: {message}", "VALIDATION_ERROR")
        return hubspot_error(status, message, _CATEGORY_BY_STATUS.get(status, "ERROR"))

    @staticmethod
    def _correlation_of(response: Response) -> str:
        # An error's header and body carry the same id, as HubSpot's do.
        if response.status >= 400 and response.body:
            try:
                found = json.loads(response.body).get("correlationId")
            except (ValueError, AttributeError):
                found = None
            if isinstance(found, str):
                return found
        return correlation_id()

    def decorate(self, request: Request, response: Response) -> None:
        """Add the correlation id header, and rate-limit headers on non-search responses."""
        response.headers.setdefault("X-HubSpot-Correlation-Id", self._correlation_of(response))
        token = self._token(request)
        if token is None or token not in self.tokens or self._is_search(request):
            return
        if response.status == 401:
            return
        response.headers.update(self.limiter.headers(token))

    def _admin(self, request: Request) -> Response:
        op = request.path.removeprefix("/__admin/").rstrip("/")
        if op == "hubspot/limits":
            if request.method in ("PUT", "POST", "PATCH"):
                changes = request.json() or {}
                known = {f.name for f in fields(self.portal.limits)} | {"search_lag_ms"}
                if not isinstance(changes, dict) or set(changes) - known:
                    return Response.json(400, {"message": f"settable limits: {sorted(known)}"})
                for key, value in changes.items():
                    target = self.portal if key == "search_lag_ms" else self.portal.limits
                    setattr(target, key, value)
            return Response.json(
                200, {**asdict(self.portal.limits), "search_lag_ms": self.portal.search_lag_ms}
            )
        if op == "reset" and request.method == "POST":
            self.limiter.reset()
        return super()._admin(request)

    # Objects -----------------------------------------------------------
    @staticmethod
    def _url(request: Request, path: str) -> str:
        """An absolute URL on this sandbox for ``path``."""
        host = request.headers.get("host", "127.0.0.1")
        return f"http://{host}{quote(path)}"

    def _link(self, request: Request, params: list[tuple[str, str]]) -> str:
        host = request.headers.get("host", "127.0.0.1")
        return f"http://{host}{request.path}?{urlencode(params)}"

    def list_objects(self, request: Request, type: str) -> Response:
        """``GET /crm/v3/objects/{type}``: a page in id order."""
        object_type = object_type_of(type)
        request.kind = "list"
        limit = _int_arg(request, "limit", 10)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValidationError(
                f"limit must be between 1 and {MAX_LIST_LIMIT}; got {limit}",
                context={"limit": [str(limit)]},
            )
        after = _int_arg(request, "after", 0)
        archived = _flag(request, "archived")
        names = self.portal.returned_names(object_type, _multi(request, "properties"))
        records, following = self.portal.page(object_type, after, limit, archived=archived)
        request.records = [r.id for r in records]
        body: JsonObj = {"results": [r.to_api(names) for r in records]}
        wanted = _multi(request, "associations") or []
        if wanted:
            for record, out in zip(records, body["results"], strict=True):
                associations = self._inline_associations(request, object_type, record.id, wanted)
                if associations:
                    out["associations"] = associations
        if following is not None:
            params = [(k, v) for k, values in request.query.items() for v in values if k != "after"]
            params.append(("after", str(following)))
            body["paging"] = {
                "next": {"after": str(following), "link": self._link(request, params)}
            }
        return Response.json(200, body)

    def get_object(self, request: Request, type: str, record_id: str) -> Response:
        """``GET /crm/v3/objects/{type}/{id}``."""
        object_type = object_type_of(type)
        request.kind = "get"
        found = self.portal.read(
            object_type,
            record_id,
            _multi(request, "properties"),
            archived=_flag(request, "archived"),
            id_property=request.arg("idProperty"),
        )
        if found is None:
            raise ObjectNotFound(
                "Object not found.  objectId are usually numeric.", context={"id": [record_id]}
            )
        with_history = _multi(request, "propertiesWithHistory")
        if with_history:
            found["propertiesWithHistory"] = self.portal.history(
                object_type, found["id"], with_history
            )
        request.records = [found["id"]]
        return Response.json(200, found)

    def create_object(self, request: Request, type: str) -> Response:
        """``POST /crm/v3/objects/{type}`` → 201."""
        object_type = object_type_of(type)
        request.kind = "create"
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise ValidationError("The request body needs a properties object")
        props: dict[str, Any] = body["properties"]
        if object_type == "companies":
            new_id = self.portal.add_company(props)
        elif object_type == "deals":
            new_id = self.portal.add_deal(props)
        else:
            new_id = self.portal.add_contact(props)
        request.records = [new_id]
        request.fields = set(props)
        return Response.json(201, self.portal.get(object_type, new_id))

    def update_object(self, request: Request, type: str, record_id: str) -> Response:
        """``PATCH /crm/v3/objects/{type}/{id}``."""
        object_type = object_type_of(type)
        request.kind = "update"
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise ValidationError("The request body needs a properties object")
        if not self.portal.exists(object_type, record_id):
            raise ObjectNotFound(
                "Object not found.  objectId are usually numeric.", context={"id": [record_id]}
            )
        fault = self.faults.record_fault(record_id)
        if fault is not None:
            kind, message = fault
            if kind == "lock":
                return hubspot_error(409, message, "CONFLICT", context={"ids": [record_id]})
            raise ValidationError(message, context={"ids": [record_id]})
        updated = self.portal.update(object_type, record_id, body["properties"], source=PRIVATE_APP)
        request.records = [record_id]
        request.fields = set(body["properties"])
        return Response.json(200, updated)

    def archive_object(self, request: Request, type: str, record_id: str) -> Response:
        """``DELETE /crm/v3/objects/{type}/{id}`` → 204."""
        object_type = object_type_of(type)
        request.kind = "archive"
        self.portal.archive(object_type, record_id)
        request.records = [record_id]
        return Response(204)

    def search(self, request: Request, type: str) -> Response:
        """``POST /crm/v3/objects/{type}/search``."""
        object_type = object_type_of(type)
        request.kind = "search"
        body = self.searcher.search(object_type, request.json())
        request.records = [r["id"] for r in body["results"]]
        return Response.json(200, body)

    @staticmethod
    def _batch_body(results: list[JsonObj], errors: list[JsonObj], started: str) -> Response:
        body: JsonObj = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now_iso(),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return Response.json(207, body)
        return Response.json(200, body)

    def batch_read(self, request: Request, type: str) -> Response:
        """``POST .../batch/read``: 200, or 207 with OBJECT_NOT_FOUND for missing ids."""
        object_type = object_type_of(type)
        request.kind = "batch.read"
        started = _now_iso()
        body = request.json()
        inputs = _inputs(body, MAX_BATCH_INPUTS)
        properties = body.get("properties")
        if properties is not None and not isinstance(properties, list):
            raise ValidationError("properties must be a list of property names")
        with_history = body.get("propertiesWithHistory")
        if with_history is not None and not isinstance(with_history, list):
            raise ValidationError("propertiesWithHistory must be a list of property names")
        id_property = body.get("idProperty")
        archived = _flag(request, "archived")
        results: list[JsonObj] = []
        missing: list[str] = []
        for item in inputs:
            if not isinstance(item, dict) or item.get("id") in (None, ""):
                raise ValidationError("Each input needs an id")
            wanted = str(item["id"])
            found = self.portal.read(
                object_type, wanted, properties, archived=archived, id_property=id_property
            )
            if found is None:
                missing.append(wanted)
            else:
                if with_history:
                    found["propertiesWithHistory"] = self.portal.history(
                        object_type, found["id"], with_history
                    )
                results.append(found)
        request.records = [r["id"] for r in results]
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {_UPPER[object_type]} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            )
        return self._batch_body(results, errors, started)

    def batch_update(self, request: Request, type: str) -> Response:
        """``POST .../batch/update``, answered in HubSpot's two modes.

        Without an ``objectWriteTraceId`` on every input, a validation error in
        any input (an unknown or read-only property, an undefined option, a bad
        number) refuses the whole request with 400 and applies nothing. With
        one on every input, each input stands alone: the valid ones are
        applied and the others are reported in a 207, each error carrying its
        input's trace id in ``context.objectWriteTraceId``. Ids that do not
        exist are reported per input (``OBJECT_NOT_FOUND``) in both modes.
        """
        object_type = object_type_of(type)
        request.kind = "batch.update"
        started = _now_iso()
        inputs = _inputs(request.json(), MAX_BATCH_INPUTS)
        seen: set[str] = set()
        duplicates: list[str] = []
        for item in inputs:
            if not isinstance(item, dict) or item.get("id") in (None, ""):
                raise ValidationError("Each input needs an id")
            if not isinstance(item.get("properties"), dict):
                raise ValidationError(f"Input {item.get('id')} needs a properties object")
            trace = item.get("objectWriteTraceId")
            if trace is not None and not isinstance(trace, str):
                raise ValidationError("objectWriteTraceId must be a string")
            key = str(item["id"])
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        if duplicates:
            raise ValidationError(
                f"Duplicate IDs found in batch input: {sorted(set(duplicates))}. "
                "IDs must be unique",
                context={"ids": sorted(set(duplicates))},
            )
        traced = (
            self.honor_trace_ids
            and bool(inputs)
            and all(item.get("objectWriteTraceId") for item in inputs)
        )
        # Phase 1: judge every input, applying nothing.
        verdicts: list[JsonObj | None] = []
        for item in inputs:
            verdicts.append(self._judge_input(object_type, str(item["id"]), item["properties"]))
        invalid = [v for v in verdicts if v is not None and v["category"] == "VALIDATION_ERROR"]
        if invalid and not traced:
            raise _batch_refusal(invalid)
        # Phase 2: apply the inputs that passed.
        stamp = self.portal.next_stamp()
        results: list[JsonObj] = []
        errors: list[JsonObj] = []
        missing: list[str] = []
        for item, verdict in zip(inputs, verdicts, strict=True):
            record_id = str(item["id"])
            trace = item.get("objectWriteTraceId")
            props: dict[str, Any] = item["properties"]
            if verdict is None:
                try:
                    updated = self.portal.update(
                        object_type, record_id, props, stamp=stamp, source=PRIVATE_APP
                    )
                except ObjectNotFound:  # archived between the two phases
                    verdict = _not_found(object_type, record_id)
                else:
                    names = [*props, *ALWAYS_RETURNED[object_type]]
                    updated["properties"] = {
                        n: updated["properties"].get(n) for n in dict.fromkeys(names)
                    }
                    if traced:
                        updated["objectWriteTraceId"] = trace
                    results.append(updated)
                    request.records.append(record_id)
                    request.fields.update(props)
                    continue
            if traced:
                verdict["context"] = {**verdict["context"], "objectWriteTraceId": [str(trace)]}
                errors.append(verdict)
            elif verdict["category"] == "OBJECT_NOT_FOUND":
                missing.append(record_id)
            else:
                errors.append(verdict)
        if missing:
            errors.append(_not_found(object_type, *missing))
        return self._batch_body(results, errors, started)

    def _judge_input(
        self, object_type: str, record_id: str, props: dict[str, Any]
    ) -> JsonObj | None:
        """None when this input can be applied, else its error (HubSpot's batch error shape)."""
        if not self.portal.exists(object_type, record_id):
            return _not_found(object_type, record_id)
        fault = self.faults.record_fault(record_id)
        if fault is not None:
            kind, message = fault
            category = "CONFLICT" if kind == "lock" else "VALIDATION_ERROR"
            return {
                "status": "error",
                "category": category,
                "message": message,
                "context": {"ids": [record_id]} if kind == "lock" else {},
                "errors": [] if kind == "lock" else [{"message": message}],
            }
        try:
            self.portal.validate(object_type, props, record_id=record_id)
        except PropertyValuesError as exc:
            return {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": exc.message,
                "context": {},
                "errors": _error_details(exc.problems),
            }
        return None

    # Properties --------------------------------------------------------
    def list_properties(self, request: Request, type: str) -> Response:
        """``GET /crm/v3/properties/{type}``."""
        request.kind = "property.list"
        object_type = object_type_of(type)
        # The sandbox never archives a property: asking for archived ones finds none.
        archived = _flag(request, "archived")
        results = [] if archived else self.portal.properties(object_type)
        return Response.json(200, {"results": results})

    def get_property(self, request: Request, type: str, name: str) -> Response:
        """``GET /crm/v3/properties/{type}/{name}``."""
        request.kind = "property.get"
        if _flag(request, "archived"):
            raise ObjectNotFound(f"Unable to find archived property {name}")
        return Response.json(200, self.portal.get_property(object_type_of(type), name))

    def create_property(self, request: Request, type: str) -> Response:
        """``POST /crm/v3/properties/{type}`` → 201 (409 on a duplicate name)."""
        request.kind = "property.create"
        body = request.json()
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object")
        created = self.portal.create_property(object_type_of(type), body)
        request.fields = {created["name"]}
        # The spec gives 201 a Location header: the new property's URL.
        location = self._url(request, f"/crm/v3/properties/{type}/{created['name']}")
        return Response.json(201, created, {"Location": location})

    def update_property(self, request: Request, type: str, name: str) -> Response:
        """``PATCH /crm/v3/properties/{type}/{name}``."""
        request.kind = "property.update"
        body = request.json()
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object")
        request.fields = {name}
        return Response.json(200, self.portal.update_property(object_type_of(type), name, body))

    def list_groups(self, request: Request, type: str) -> Response:
        """``GET /crm/v3/properties/{type}/groups``."""
        request.kind = "group.list"
        return Response.json(200, {"results": self.portal.groups(object_type_of(type))})

    def get_group(self, request: Request, type: str, name: str) -> Response:
        """``GET /crm/v3/properties/{type}/groups/{name}``."""
        request.kind = "group.get"
        return Response.json(200, self.portal.get_group(object_type_of(type), name))

    def create_group(self, request: Request, type: str) -> Response:
        """``POST /crm/v3/properties/{type}/groups`` → 201."""
        request.kind = "group.create"
        body = request.json()
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object")
        created = self.portal.create_group(object_type_of(type), body)
        location = self._url(request, f"/crm/v3/properties/{type}/groups/{created['name']}")
        return Response.json(201, created, {"Location": location})

    def update_group(self, request: Request, type: str, name: str) -> Response:
        """``PATCH /crm/v3/properties/{type}/groups/{name}``."""
        request.kind = "group.update"
        body = request.json()
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object")
        return Response.json(200, self.portal.update_group(object_type_of(type), name, body))

    # Pipelines ---------------------------------------------------------
    @staticmethod
    def _deals_only(type: str) -> None:
        if object_type_of(type) != "deals":
            # Companies and contacts have no pipelines (tickets do; the sandbox has none).
            raise ValidationError(f"Pipelines are not supported for object type {type}")

    def list_pipelines(self, request: Request, type: str) -> Response:
        """``GET /crm/v3/pipelines/{objectType}``: every pipeline with its stages, no paging."""
        self._deals_only(type)
        request.kind = "pipelines.list"
        return Response.json(200, {"results": self.portal.pipeline_list()})

    def get_pipeline(self, request: Request, type: str, pipeline_id: str) -> Response:
        """``GET /crm/v3/pipelines/{objectType}/{pipelineId}``; 404 for a deleted one."""
        self._deals_only(type)
        request.kind = "pipelines.get"
        found = self.portal.pipeline(pipeline_id)
        if found is None:
            raise ObjectNotFound(f"Unable to find pipeline {pipeline_id}")
        return Response.json(200, found)

    def delete_pipeline(self, request: Request, type: str, pipeline_id: str) -> Response:
        """``DELETE /crm/v3/pipelines/{objectType}/{pipelineId}`` → 204.

        ``validateReferencesBeforeDelete`` defaults to false (the spec), so the
        deals in the pipeline keep its id and stage ids: a reader meets
        pipelines the API no longer knows.
        """
        self._deals_only(type)
        request.kind = "pipelines.delete"
        if not self.portal.delete_pipeline(pipeline_id):
            raise ObjectNotFound(f"Unable to find pipeline {pipeline_id}")
        return Response(204, b"")

    # Associations ------------------------------------------------------
    def _association_types(self, from_type: str, to_type: str) -> list[JsonObj]:
        primary, unlabeled = _ASSOCIATION_TYPES[(from_type, to_type)]
        return [
            {"category": "HUBSPOT_DEFINED", "typeId": primary, "label": "Primary"},
            {"category": "HUBSPOT_DEFINED", "typeId": unlabeled, "label": None},
        ]

    def _pair(self, from_type: str, to_type: str) -> tuple[str, str]:
        pair = (object_type_of(from_type), object_type_of(to_type))
        if pair not in _ASSOCIATION_TYPES:
            raise ValidationError(f"No associations between {pair[0]} and {pair[1]}")
        return pair

    def _targets(
        self, from_type: str, to_type: str, ids: list[str], source: str
    ) -> Iterator[JsonObj]:
        types = self._association_types(from_type, to_type)
        for target in ids:
            # v4 answers toObjectId as a JSON number; the client's model turns it into str.
            to: int | str = int(target)
            if source in self.malformed_associations:
                # The spec types toObjectId as a string: nothing promises digits.
                to = f"{target}-legacy"
            yield {"toObjectId": to, "associationTypes": [dict(t) for t in types]}

    def _inline_associations(
        self, request: Request, from_type: str, record_id: str, wanted: list[str]
    ) -> JsonObj:
        """A listed record's ``associations``: per type asked for, its first entries.

        Each associated record comes once per association type, as v3 names
        them (``contact_to_company`` for the primary label,
        ``contact_to_company_unlabeled``); types with nothing associated, and
        types that do not exist, are left out. Past :attr:`inline_assoc_limit`
        entries a type carries ``paging.next`` (``after``, ``link``).
        """
        out: JsonObj = {}
        for name in dict.fromkeys(w for item in wanted for w in item.split(",") if w):
            try:
                src, dst = self._pair(from_type, name)
            except ValidationError:
                continue  # the docs: associations that do not exist "will be ignored"
            ids = self.portal.associated(src, record_id, dst) or []
            if not ids:
                continue
            base = f"{_SINGULAR[src]}_to_{_SINGULAR[dst]}"
            entries = [
                {
                    "id": f"{target}-legacy"
                    if record_id in self.malformed_associations
                    else target,
                    "type": kind,
                }
                for target in ids
                for kind in (base, f"{base}_unlabeled")
            ]
            limit = self.inline_assoc_limit
            block: JsonObj = {"results": entries[:limit]}
            if len(entries) > limit:
                path = f"/crm/v3/objects/{src}/{record_id}/associations/{dst}"
                host = request.headers.get("host", "127.0.0.1")
                block["paging"] = {
                    "next": {"after": str(limit), "link": f"http://{host}{path}?after={limit}"}
                }
            out[name] = block
        return out

    def list_associations(
        self, request: Request, from_type: str, record_id: str, to_type: str
    ) -> Response:
        """``GET /crm/v4/objects/{from}/{id}/associations/{to}`` (limit ≤ 500, offset paging)."""
        src, dst = self._pair(from_type, to_type)
        request.kind = "assoc.list"
        limit = _int_arg(request, "limit", MAX_ASSOC_LIMIT)
        if not 1 <= limit <= MAX_ASSOC_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_ASSOC_LIMIT}; got {limit}")
        after = _int_arg(request, "after", 0)
        ids = self.portal.associated(src, record_id, dst) or []
        page = ids[after : after + limit]
        request.records = [record_id]
        body: JsonObj = {"results": list(self._targets(src, dst, page, record_id))}
        if after + limit < len(ids):
            nxt = str(after + limit)
            params = [("limit", str(limit)), ("after", nxt)]
            body["paging"] = {"next": {"after": nxt, "link": self._link(request, params)}}
        return Response.json(200, body)

    def batch_read_associations(self, request: Request, from_type: str, to_type: str) -> Response:
        """``POST /crm/v4/associations/{from}/{to}/batch/read``.

        At most 1,000 inputs, each ``{"id", "after"?}``; inputs without
        associations make it a 207. An input's associations come a page at a
        time: the result carries ``paging.next.after`` while more remain, and
        the same id sent back with that ``after`` gets the next page.
        """
        src, dst = self._pair(from_type, to_type)
        request.kind = "assoc.batch.read"
        started = _now_iso()
        inputs = _inputs(request.json(), MAX_ASSOC_BATCH_INPUTS)
        results: list[JsonObj] = []
        errors: list[JsonObj] = []
        wanted: dict[tuple[str, str], None] = {}
        for i in inputs:
            if not isinstance(i, dict) or str(i.get("id")) in ("", "None"):
                raise ValidationError("Each input needs an id")
            wanted[(str(i["id"]), str(i.get("after") or ""))] = None
        size = self.assoc_batch_page
        for item, after in wanted:
            if after and not after.isdigit():
                raise ValidationError(f"Invalid after token {after!r} for {item}")
            offset = int(after or 0)
            ids = self.portal.associated(src, item, dst)
            if not ids:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No {_SINGULAR[dst]} is associated with {_SINGULAR[src]} "
                        f"{item}.",
                        "context": {"fromObjectId": [item], "toObjectType": [dst]},
                    }
                )
                continue
            to = list(self._targets(src, dst, ids[offset : offset + size], item))
            result: JsonObj = {"from": {"id": item}, "to": to}
            if offset + size < len(ids):
                # The link is deprecated in the docs; only ``after`` is meant to be used.
                result["paging"] = {"next": {"after": str(offset + size), "link": None}}
            results.append(result)
            request.records.append(item)
        return self._batch_body(results, errors, started)


# Server ----------------------------------------------------------------


def disabled_retries() -> urllib3.Retry:
    """A urllib3 Retry that never retries.

    No retry on connection errors, and none on a 429 / 503 with Retry-After
    (which urllib3 retries for GETs by default), so the connector's tenacity
    policy is the only one.
    """
    return urllib3.Retry(total=0, redirect=0, raise_on_status=False)


class HubSpotSandbox:
    """A running HubSpot sandbox.

    Has ``.server``, ``.app``, ``.portal``, ``.base_url`` and ``.access_token``;
    stop it with :meth:`stop` or use it as a context manager.
    """

    def __init__(self, server: SandboxServer, app: HubSpotApp, access_token: str) -> None:
        self.server = server
        self.app = app
        self.portal = app.portal
        self.access_token = access_token

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (pass as the client's ``host``)."""
        return self.server.url

    def client(self) -> Any:
        """A ``hubspot.HubSpot`` client for this sandbox, with urllib3's retries disabled."""
        from hubspot import HubSpot

        return HubSpot(access_token=self.access_token, host=self.base_url, retry=disabled_retries())

    def stop(self) -> None:
        """Stop serving."""
        self.server.stop()

    def __enter__(self) -> HubSpotSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_hubspot(
    *,
    port: int = 0,
    portal: Portal | None = None,
    access_token: str = DEFAULT_TOKEN,
    host: str = "127.0.0.1",
    clock: Callable[[], float] | None = None,
    search_limits: SearchLimits | None = None,
    **limits: Any,
) -> HubSpotSandbox:
    """Start a HubSpot sandbox on a background thread (``port=0`` picks a free port).

    ``limits`` are :class:`Portal` settings (``requests_per_10s``, ``daily_limit``,
    ``search_per_second``, ``send_retry_after``, ``search_lag_ms``): they build the
    portal when none is given, or override the given portal's settings.
    """
    if portal is None:
        portal = Portal(**limits)
    else:
        for key, value in limits.items():
            if key == "search_lag_ms":
                portal.search_lag_ms = int(value)
                continue
            if not hasattr(portal.limits, key):
                raise TypeError(f"unknown rate-limit setting {key!r}")
            setattr(portal.limits, key, value)
    app = HubSpotApp(
        portal,
        (access_token,),
        clock=clock or time.monotonic,
        search_limits=search_limits,
    )
    server = SandboxServer(app, host=host, port=port)
    server.start()
    return HubSpotSandbox(server, app, access_token)
