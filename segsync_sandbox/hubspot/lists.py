"""HubSpot's Lists API (v3, "segments"): lists, dynamic membership, folders.

What the sandbox serves, after the published spec (Lists v3) and the
list-filters guide (docs/crm-apis.md#hubspot-lists):

- ``POST /crm/v3/lists`` (create), ``POST /crm/v3/lists/search``,
  ``GET /crm/v3/lists`` (by ``listIds``), ``GET /crm/v3/lists/{listId}``,
  ``GET /crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}``,
  ``PUT …/update-list-filters``, ``PUT …/update-list-name``, ``DELETE`` and
  ``PUT …/restore``, ``GET …/memberships`` (after / before / limit ≤ 250);
- folders: ``GET`` / ``POST /crm/v3/lists/folders``, ``PUT …/folders/move-list``.

A DYNAMIC list's members are evaluated from the records' current property
values at every read (HubSpot processes them in the background; here the
answer is always ``COMPLETE``). Where the documentation is loose the sandbox
takes the stricter reading: the root filter branch is an OR of AND branches
(the shape every documented example has), every property operation carries
``includeObjectsWithNoValueSet`` (the spec marks it required), an
enumeration filter names options the property has, and an operation type
must fit the property's type. Only the filters segsync and its tests use are
evaluated (PROPERTY filters of type ENUMERATION, STRING, MULTISTRING,
NUMBER, BOOL and ALL_PROPERTY); any other filter type is refused with 400
rather than silently matching nothing.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from segsync_sandbox.common import Request, Response
from segsync_sandbox.hubspot.errors import ObjectNotFound, PortalError, ValidationError
from segsync_sandbox.hubspot.portal import Portal
from segsync_sandbox.hubspot.schema import format_ms

JsonObj = dict[str, Any]
Handler = Callable[..., Response]

#: HubSpot's object type ids for the objects the sandbox serves.
OBJECT_TYPE_IDS = {"0-1": "contacts", "0-2": "companies"}
PROCESSING_TYPES = ("MANUAL", "DYNAMIC", "SNAPSHOT")
MAX_MEMBERSHIP_LIMIT = 250
DEFAULT_MEMBERSHIP_LIMIT = 100
MAX_SEARCH_COUNT = 500
DEFAULT_SEARCH_COUNT = 20
#: The user id the sandbox stamps on lists changed through the API.
API_USER = "1"

_OPERATORS: dict[str, tuple[str, ...]] = {
    "ENUMERATION": ("IS_ANY_OF", "IS_NONE_OF", "IS_EXACTLY", "IS_NOT_EXACTLY"),
    "STRING": ("IS_EQUAL_TO", "IS_NOT_EQUAL_TO", "CONTAINS", "DOES_NOT_CONTAIN", "STARTS_WITH"),
    "MULTISTRING": ("IS_EQUAL_TO", "IS_NOT_EQUAL_TO", "CONTAINS", "DOES_NOT_CONTAIN"),
    "NUMBER": (
        "IS_EQUAL_TO",
        "IS_NOT_EQUAL_TO",
        "IS_GREATER_THAN",
        "IS_GREATER_THAN_OR_EQUAL_TO",
        "IS_LESS_THAN",
        "IS_LESS_THAN_OR_EQUAL_TO",
    ),
    "BOOL": ("IS_EQUAL_TO", "IS_NOT_EQUAL_TO"),
    "ALL_PROPERTY": ("IS_KNOWN", "IS_UNKNOWN"),
}
# Which property types each operation type may filter.
_FITS: dict[str, tuple[str, ...]] = {
    "ENUMERATION": ("enumeration",),
    "STRING": ("string", "phone_number"),
    "MULTISTRING": ("string", "phone_number"),
    "NUMBER": ("number",),
    "BOOL": ("bool",),
}


class Conflict(PortalError):
    """A 409 CONFLICT: a name another list or folder already has."""

    status = 409
    category = "CONFLICT"


def _list_not_found(list_id: str) -> ObjectNotFound:
    return ObjectNotFound(f"List does not exist with ID {list_id}.", context={"listId": [list_id]})


class HubSpotLists:
    """The lists and folders of one portal, and the routes that serve them."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget every list and folder (the root folder stays)."""
        with self._lock:
            self._lists: dict[str, JsonObj] = {}
            self._next_list = 1001
            self._folders: dict[str, JsonObj] = {
                "0": {"id": "0", "name": "Root", "parentFolderId": "-1", "createdAt": self._now()}
            }
            self._next_folder = 101
            self._folder_of: dict[str, str] = {}

    def _now(self) -> str:
        return format_ms(int(self.portal.clock() * 1000))

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path regex, handler), most specific first."""
        lists = r"/crm/v3/lists"
        one = lists + r"/(?P<list_id>[^/]+)"
        return [
            ("GET", lists + "/folders", self.get_folder),
            ("POST", lists + "/folders", self.create_folder),
            ("PUT", lists + "/folders/move-list", self.move_list),
            ("POST", lists + "/search", self.search),
            (
                "GET",
                lists + r"/object-type-id/(?P<object_type_id>[^/]+)/name/(?P<name>[^/]+)",
                self.get_by_name,
            ),
            # The client spells the collection with a trailing slash, as the spec's
            # server stub does; both forms are served.
            ("GET", lists + "/?", self.get_many),
            ("POST", lists + "/?", self.create),
            ("GET", one + "/memberships", self.memberships),
            ("PUT", one + "/update-list-filters", self.update_filters),
            ("PUT", one + "/update-list-name", self.update_name),
            ("PUT", one + "/restore", self.restore),
            ("GET", one, self.get),
            ("DELETE", one, self.delete),
        ]

    # Views --------------------------------------------------------------
    def _view(self, found: JsonObj, include_filters: bool) -> JsonObj:
        out = {k: copy.deepcopy(v) for k, v in found.items() if not k.startswith("_")}
        if not include_filters:
            out.pop("filterBranch", None)
        out["size"] = len(self.members(found["listId"]))
        return out

    def _live(self, list_id: str) -> JsonObj:
        found = self._lists.get(list_id)
        if found is None or "deletedAt" in found:
            raise _list_not_found(list_id)
        return found

    # Membership ---------------------------------------------------------
    def members(self, list_id: str) -> list[str]:
        """The record ids in a list, ascending: dynamic lists evaluated now."""
        with self._lock:
            found = self._lists[list_id]
            object_type = OBJECT_TYPE_IDS[found["objectTypeId"]]
            if found["processingType"] == "MANUAL" or "filterBranch" not in found:
                return sorted(found["_manual"], key=int)
            branch = found["filterBranch"]
        return [r.id for r in self.portal.snapshot(object_type) if _branch_passes(branch, r.props)]

    # Validation ---------------------------------------------------------
    def _check_branch(self, object_type: str, branch: Any) -> JsonObj:
        """A filter branch in the OR-of-ANDs shape, with operators that fit; normalized."""
        if not isinstance(branch, dict) or branch.get("filterBranchType") != "OR":
            raise ValidationError(
                "filterBranch: the root filter branch must have filterBranchType OR",
                sub_category="INVALID_FILTER_BRANCH",
            )
        if branch.get("filters"):
            raise ValidationError(
                "filterBranch: the root OR branch may hold only AND filter branches, not filters",
                sub_category="INVALID_FILTER_BRANCH",
            )
        subs = branch.get("filterBranches")
        if not isinstance(subs, list) or not subs:
            raise ValidationError(
                "filterBranch: the root OR branch needs at least one AND filter branch",
                sub_category="INVALID_FILTER_BRANCH",
            )
        out_subs = []
        for sub in subs:
            if not isinstance(sub, dict) or sub.get("filterBranchType") != "AND":
                raise ValidationError(
                    "filterBranch: each branch under the root OR must have filterBranchType AND",
                    sub_category="INVALID_FILTER_BRANCH",
                )
            if sub.get("filterBranches"):
                raise ValidationError(
                    "filterBranch: nested branches below AND are not supported by this sandbox",
                    sub_category="INVALID_FILTER_BRANCH",
                )
            filters = sub.get("filters")
            if not isinstance(filters, list) or not filters:
                raise ValidationError(
                    "filterBranch: an AND branch needs at least one filter",
                    sub_category="INVALID_FILTER_BRANCH",
                )
            out_subs.append(
                {
                    "filterBranchType": "AND",
                    "filterBranchOperator": "AND",
                    "filterBranches": [],
                    "filters": [self._check_filter(object_type, f) for f in filters],
                }
            )
        return {
            "filterBranchType": "OR",
            "filterBranchOperator": "OR",
            "filterBranches": out_subs,
            "filters": [],
        }

    def _check_filter(self, object_type: str, item: Any) -> JsonObj:
        if not isinstance(item, dict) or item.get("filterType") != "PROPERTY":
            kind = item.get("filterType") if isinstance(item, dict) else item
            raise ValidationError(
                f"filter type {kind!r} is not supported by this sandbox (PROPERTY only)",
                sub_category="INVALID_FILTER",
            )
        name = item.get("property")
        if not isinstance(name, str) or name not in self.portal.property_names(object_type):
            raise ValidationError(
                f"Property {name!r} does not exist on object type {object_type}",
                context={"property": [str(name)]},
                sub_category="INVALID_FILTER",
            )
        prop = self.portal.get_property(object_type, name)
        op = item.get("operation")
        if not isinstance(op, dict):
            raise ValidationError("filter: operation is required", sub_category="INVALID_FILTER")
        kind = op.get("operationType")
        if kind not in _OPERATORS:
            raise ValidationError(
                f"operationType {kind!r} is not supported by this sandbox",
                sub_category="INVALID_FILTER",
            )
        if op.get("operator") not in _OPERATORS[kind]:
            raise ValidationError(
                f"operator {op.get('operator')!r} is not valid for operationType {kind}",
                sub_category="INVALID_FILTER",
            )
        if kind in _FITS and prop.get("type") not in _FITS[kind]:
            raise ValidationError(
                f"operationType {kind} does not fit property {name} of type {prop.get('type')}",
                sub_category="INVALID_FILTER",
            )
        if kind != "ALL_PROPERTY" and not isinstance(op.get("includeObjectsWithNoValueSet"), bool):
            raise ValidationError(
                f"operation on {name}: includeObjectsWithNoValueSet (boolean) is required",
                sub_category="INVALID_FILTER",
            )
        if kind in ("ENUMERATION", "MULTISTRING"):
            values = op.get("values")
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(v, str) for v in values)
            ):
                raise ValidationError(
                    f"operation on {name}: values must be a non-empty list of strings",
                    sub_category="INVALID_FILTER",
                )
            if kind == "ENUMERATION":
                options = {o.get("value") for o in prop.get("options") or []}
                unknown = [v for v in values if v not in options]
                if unknown:
                    raise ValidationError(
                        f"operation on {name}: {', '.join(unknown)} is not an option of the "
                        "property",
                        context={"values": unknown},
                        sub_category="INVALID_FILTER",
                    )
        elif kind in ("STRING", "BOOL", "NUMBER") and "value" not in op:
            raise ValidationError(
                f"operation on {name}: value is required", sub_category="INVALID_FILTER"
            )
        operation: JsonObj = dict(op)
        operation.setdefault("includeObjectsWithNoValueSet", False)
        return {"filterType": "PROPERTY", "property": name, "operation": operation}

    def _check_name(self, name: Any, *, other_than: str | None = None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name: a non-blank list name is required")
        for found in self._lists.values():
            if (
                "deletedAt" not in found
                and found["listId"] != other_than
                and found["name"].casefold() == name.casefold()
            ):
                raise Conflict(
                    f"A list named {name!r} already exists (list names are unique in a portal).",
                    context={"listId": [found["listId"]]},
                )
        return name

    # Lists --------------------------------------------------------------
    def create(self, request: Request) -> Response:
        """``POST /crm/v3/lists`` → 200 ``{"list": …}``."""
        request.kind = "list.create"
        body = request.json()
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object")
        missing = [k for k in ("name", "objectTypeId", "processingType") if k not in body]
        if missing:
            raise ValidationError(
                f"Missing required field(s): {', '.join(missing)}", context={"fields": missing}
            )
        object_type = OBJECT_TYPE_IDS.get(str(body["objectTypeId"]))
        if object_type is None:
            raise ValidationError(
                f"objectTypeId {body['objectTypeId']!r} is not a list-able object type here "
                f"(one of {', '.join(OBJECT_TYPE_IDS)})"
            )
        kind = body["processingType"]
        if kind not in PROCESSING_TYPES:
            raise ValidationError(
                f"processingType must be one of {', '.join(PROCESSING_TYPES)}; got {kind!r}"
            )
        with self._lock:
            name = self._check_name(body["name"])
            branch = body.get("filterBranch")
            if kind == "MANUAL" and branch is not None:
                raise ValidationError("A MANUAL list takes no filterBranch")
            if kind != "MANUAL" and branch is None:
                raise ValidationError(f"A {kind} list needs a filterBranch")
            folder = body.get("listFolderId")
            if folder is not None:
                if isinstance(folder, bool) or not isinstance(folder, int):
                    raise ValidationError("listFolderId must be an integer")
                if str(folder) not in self._folders:
                    raise ObjectNotFound(f"Folder does not exist with ID {folder}.")
            now = self._now()
            list_id = str(self._next_list)
            found: JsonObj = {
                "listId": list_id,
                "listVersion": 1,
                "name": name,
                "objectTypeId": str(body["objectTypeId"]),
                "processingType": kind,
                "processingStatus": "COMPLETE",
                "createdAt": now,
                "updatedAt": now,
                "filtersUpdatedAt": now,
                "createdById": API_USER,
                "updatedById": API_USER,
                "_manual": [],
            }
            if branch is not None:
                found["filterBranch"] = self._check_branch(object_type, branch)
            self._next_list += 1
            self._lists[list_id] = found
            self._folder_of[list_id] = str(folder) if folder is not None else "0"
            request.records = [list_id]
            return Response.json(200, {"list": self._view(found, True)})

    def _include_filters(self, request: Request) -> bool:
        raw = request.arg("includeFilters")
        if raw not in (None, "true", "false"):
            raise ValidationError(
                f"Invalid value for query parameter includeFilters: {raw!r}; expected true or false"
            )
        return raw == "true"

    def get(self, request: Request, list_id: str) -> Response:
        """``GET /crm/v3/lists/{listId}`` → ``{"list": …}`` (filters with ``includeFilters``)."""
        request.kind = "list.get"
        include = self._include_filters(request)
        with self._lock:
            return Response.json(200, {"list": self._view(self._live(list_id), include)})

    def get_many(self, request: Request) -> Response:
        """``GET /crm/v3/lists?listIds=…`` → ``{"lists": […]}`` (unknown ids left out)."""
        request.kind = "list.get"
        include = self._include_filters(request)
        ids = [p for v in request.query.get("listIds", []) for p in v.split(",") if p]
        with self._lock:
            live = [i for i in ids if i in self._lists and "deletedAt" not in self._lists[i]]
            found = [self._lists[i] for i in live]
            return Response.json(200, {"lists": [self._view(f, include) for f in found]})

    def get_by_name(self, request: Request, object_type_id: str, name: str) -> Response:
        """``GET /crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}``."""
        request.kind = "list.get"
        include = self._include_filters(request)
        if object_type_id not in OBJECT_TYPE_IDS:
            raise ValidationError(f"Unknown objectTypeId {object_type_id!r}")
        with self._lock:
            for found in self._lists.values():
                if (
                    "deletedAt" not in found
                    and found["objectTypeId"] == object_type_id
                    and found["name"].casefold() == name.casefold()
                ):
                    return Response.json(200, {"list": self._view(found, include)})
        raise ObjectNotFound(f"List does not exist with name {name}.")

    def search(self, request: Request) -> Response:
        """``POST /crm/v3/lists/search``: by name (``query``), type, ids; offset paging."""
        request.kind = "list.search"
        body = request.json()
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object")
        missing = [k for k in ("additionalProperties", "offset") if k not in body]
        if missing:
            raise ValidationError(
                f"Missing required field(s): {', '.join(missing)}", context={"fields": missing}
            )
        offset, count = body["offset"], body.get("count", DEFAULT_SEARCH_COUNT)
        for key, value in (("offset", offset), ("count", count)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(f"{key} must be a non-negative integer")
        if count > MAX_SEARCH_COUNT:
            raise ValidationError(f"count must be at most {MAX_SEARCH_COUNT}; got {count}")
        query = str(body.get("query") or "").casefold()
        kinds = body.get("processingTypes")
        ids = body.get("listIds")
        wanted_type = body.get("objectTypeId")
        with self._lock:
            hits = [
                f
                for f in self._lists.values()
                if "deletedAt" not in f
                and query in f["name"].casefold()
                and (not kinds or f["processingType"] in kinds)
                and (not ids or f["listId"] in ids)
                and (wanted_type in (None, "") or f["objectTypeId"] == wanted_type)
            ]
            hits.sort(key=lambda f: int(f["listId"]))
            page = hits[offset : offset + count]
            out = []
            for found in page:
                view = self._view(found, False)
                size = view.pop("size")
                view["additionalProperties"] = {
                    "hs_list_size": str(size),
                    "hs_folder_name": self._folders[self._folder_of[found["listId"]]]["name"],
                }
                out.append(view)
        request.records = [f["listId"] for f in page]
        return Response.json(
            200,
            {
                "lists": out,
                "offset": offset + len(page),
                "hasMore": offset + len(page) < len(hits),
                "total": len(hits),
            },
        )

    def update_filters(self, request: Request, list_id: str) -> Response:
        """``PUT /crm/v3/lists/{listId}/update-list-filters`` (DYNAMIC lists only)."""
        request.kind = "list.update_filters"
        raw = request.arg("enrollObjectsInWorkflows")
        if raw not in (None, "true", "false"):
            raise ValidationError(f"Invalid value for enrollObjectsInWorkflows: {raw!r}")
        body = request.json()
        if not isinstance(body, dict) or "filterBranch" not in body:
            raise ValidationError("Missing required field(s): filterBranch")
        with self._lock:
            found = self._live(list_id)
            if found["processingType"] != "DYNAMIC":
                raise ValidationError(
                    f"List {list_id} is {found['processingType']}: only DYNAMIC lists' filters "
                    "can be updated"
                )
            object_type = OBJECT_TYPE_IDS[found["objectTypeId"]]
            found["filterBranch"] = self._check_branch(object_type, body["filterBranch"])
            found["listVersion"] += 1
            found["filtersUpdatedAt"] = found["updatedAt"] = self._now()
            request.records = [list_id]
            return Response.json(200, {"updatedList": self._view(found, True)})

    def update_name(self, request: Request, list_id: str) -> Response:
        """``PUT /crm/v3/lists/{listId}/update-list-name?listName=…``."""
        request.kind = "list.update_name"
        include = self._include_filters(request)
        with self._lock:
            found = self._live(list_id)
            found["name"] = self._check_name(request.arg("listName"), other_than=list_id)
            found["listVersion"] += 1
            found["updatedAt"] = self._now()
            request.records = [list_id]
            return Response.json(200, {"updatedList": self._view(found, include)})

    def delete(self, request: Request, list_id: str) -> Response:
        """``DELETE /crm/v3/lists/{listId}`` → 204 (restorable for 90 days)."""
        request.kind = "list.delete"
        with self._lock:
            found = self._live(list_id)
            found["deletedAt"] = self._now()
        request.records = [list_id]
        return Response(204)

    def restore(self, request: Request, list_id: str) -> Response:
        """``PUT /crm/v3/lists/{listId}/restore`` → 204; 400 when the list is not deleted."""
        request.kind = "list.restore"
        with self._lock:
            found = self._lists.get(list_id)
            if found is None:
                raise _list_not_found(list_id)
            if "deletedAt" not in found:
                raise ValidationError(f"List {list_id} is not deleted")
            self._check_name(found["name"], other_than=list_id)
            del found["deletedAt"]
        request.records = [list_id]
        return Response(204)

    def memberships(self, request: Request, list_id: str) -> Response:
        """``GET /crm/v3/lists/{listId}/memberships``: record ids ascending, paged."""
        request.kind = "list.memberships"
        raw = request.arg("limit")
        try:
            limit = DEFAULT_MEMBERSHIP_LIMIT if raw in (None, "") else int(str(raw))
        except ValueError:
            raise ValidationError(f"Invalid value for limit: {raw!r}") from None
        if not 1 <= limit <= MAX_MEMBERSHIP_LIMIT:
            raise ValidationError(
                f"limit must be between 1 and {MAX_MEMBERSHIP_LIMIT}; got {limit}",
                context={"limit": [str(limit)]},
            )
        with self._lock:
            found = self._live(list_id)
            joined = found["filtersUpdatedAt"]
        ids = self.members(list_id)
        after, before = request.arg("after"), request.arg("before")
        for token in (after, before):
            if token is not None and not token.isdigit():
                raise ValidationError(f"Invalid paging token: {token!r}")
        if after is not None or before is None:
            rest = [i for i in ids if after is None or int(i) > int(after)]
            page, more = rest[:limit], len(rest) > limit
            paging = {"next": {"after": page[-1]}} if more else None
        else:
            rest = [i for i in reversed(ids) if int(i) < int(str(before))]
            page, more = rest[:limit], len(rest) > limit
            paging = {"prev": {"before": page[-1]}} if more else None
        body: JsonObj = {
            "results": [{"recordId": i, "membershipTimestamp": joined} for i in page],
            "total": len(ids),
        }
        if paging:
            body["paging"] = paging
        request.records = page
        return Response.json(200, body)

    # Folders ------------------------------------------------------------
    def _folder_view(self, folder_id: str, top: bool) -> JsonObj:
        folder = self._folders[folder_id]
        return {
            **folder,
            "childNodes": [
                self._folder_view(f["id"], False)
                for f in self._folders.values()
                if f["parentFolderId"] == folder_id
            ],
            "childLists": [
                int(i)
                for i, where in self._folder_of.items()
                if top and where == folder_id and "deletedAt" not in self._lists[i]
            ],
        }

    def get_folder(self, request: Request) -> Response:
        """``GET /crm/v3/lists/folders?folderId=…`` (the root by default), its tree below."""
        request.kind = "list.folder.get"
        folder_id = request.arg("folderId", "0") or "0"
        with self._lock:
            if folder_id not in self._folders:
                raise ObjectNotFound(f"Folder does not exist with ID {folder_id}.")
            return Response.json(200, {"folder": self._folder_view(folder_id, True)})

    def create_folder(self, request: Request) -> Response:
        """``POST /crm/v3/lists/folders`` → ``{"folder": …}``; 409 on a name its parent has."""
        request.kind = "list.folder.create"
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise ValidationError("Missing required field(s): name")
        name = body["name"].strip()
        if not name:
            raise ValidationError("name: a non-blank folder name is required")
        parent = str(body.get("parentFolderId") or "0")
        with self._lock:
            if parent not in self._folders:
                raise ObjectNotFound(f"Folder does not exist with ID {parent}.")
            for f in self._folders.values():
                if f["parentFolderId"] == parent and f["name"].casefold() == name.casefold():
                    raise Conflict(f"A folder named {name!r} already exists in folder {parent}.")
            folder_id = str(self._next_folder)
            self._next_folder += 1
            now = self._now()
            self._folders[folder_id] = {
                "id": folder_id,
                "name": name,
                "parentFolderId": parent,
                "createdAt": now,
                "updatedAt": now,
            }
            return Response.json(200, {"folder": self._folder_view(folder_id, True)})

    def move_list(self, request: Request) -> Response:
        """``PUT /crm/v3/lists/folders/move-list`` → 204."""
        request.kind = "list.folder.move"
        body = request.json()
        if not isinstance(body, dict) or not {"listId", "newFolderId"} <= set(body):
            raise ValidationError("Missing required field(s): listId, newFolderId")
        list_id, folder_id = str(body["listId"]), str(body["newFolderId"])
        with self._lock:
            self._live(list_id)
            if folder_id not in self._folders:
                raise ObjectNotFound(f"Folder does not exist with ID {folder_id}.")
            self._folder_of[list_id] = folder_id
        request.records = [list_id]
        return Response(204)

    def folder_of(self, list_id: str) -> str:
        """The name of the folder a list is in (for tests and the demo)."""
        with self._lock:
            return str(self._folders[self._folder_of[list_id]]["name"])


# Evaluation --------------------------------------------------------------


def _branch_passes(branch: JsonObj, props: dict[str, str]) -> bool:
    """OR over AND branches, each AND over its filters."""
    return any(
        all(_filter_passes(f, props) for f in sub["filters"]) for sub in branch["filterBranches"]
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _filter_passes(item: JsonObj, props: dict[str, str]) -> bool:
    op = item["operation"]
    raw = props.get(item["property"])
    value = raw if raw not in (None, "") else None
    kind, operator = op["operationType"], op["operator"]
    if kind == "ALL_PROPERTY":
        return bool((value is not None) == (operator == "IS_KNOWN"))
    if value is None:
        return bool(op.get("includeObjectsWithNoValueSet"))
    if kind == "ENUMERATION":
        have = set(value.split(";"))
        values = set(op["values"])
        verdicts: dict[str, bool] = {
            "IS_ANY_OF": bool(have & values),
            "IS_NONE_OF": not (have & values),
            "IS_EXACTLY": have == values,
            "IS_NOT_EXACTLY": have != values,
        }
        return verdicts[operator]
    if kind in ("STRING", "MULTISTRING"):
        targets = [op["value"]] if kind == "STRING" else op["values"]
        low = value.casefold()
        tests: dict[str, Callable[[str], bool]] = {
            "IS_EQUAL_TO": lambda t: low == t.casefold(),
            "IS_NOT_EQUAL_TO": lambda t: low != t.casefold(),
            "CONTAINS": lambda t: t.casefold() in low,
            "DOES_NOT_CONTAIN": lambda t: t.casefold() not in low,
            "STARTS_WITH": lambda t: low.startswith(t.casefold()),
        }
        test = tests[operator]
        hits = [test(str(t)) for t in targets]
        return all(hits) if operator.startswith(("IS_NOT", "DOES_NOT")) else any(hits)
    if kind == "BOOL":
        equal = value.lower() == str(op["value"]).lower()
        return equal if operator == "IS_EQUAL_TO" else not equal
    number, target = _number(value), _number(str(op["value"]))
    if number is None or target is None:
        return False
    return {
        "IS_EQUAL_TO": number == target,
        "IS_NOT_EQUAL_TO": number != target,
        "IS_GREATER_THAN": number > target,
        "IS_GREATER_THAN_OR_EQUAL_TO": number >= target,
        "IS_LESS_THAN": number < target,
        "IS_LESS_THAN_OR_EQUAL_TO": number <= target,
    }[operator]
