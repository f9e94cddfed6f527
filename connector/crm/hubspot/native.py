"""HubSpot lists ("segments"): one dynamic list per segment and per tier, reconciled.

Each :class:`~connector.crm.base.NativeView` becomes a DYNAMIC list through
the Lists API (``/crm/v3/lists``), named ``segsync · Companies · Tier: Tier 1``
(list names are unique in a portal, and the name is how a later provision
finds its lists), filtered on the segsync property (``ENUMERATION`` /
``IS_ANY_OF`` the one value, since segment and tier are enumeration
properties), in a folder named after the definition
(``segsync · accounts``).

Reconciling is idempotent: a list whose filters are what segsync would set
is left alone. A list with segsync's name whose filters are segsync's shape
on another property (the mapping renamed its output property) gets its
filters updated. A list whose filters a person changed in any other way is
reported (``edited``) and never overwritten; a list for a value the mapping
no longer defines is retired (deleted: HubSpot keeps it restorable for 90
days) unless a person edited it. See docs/crm-apis.md#hubspot-lists.

hubspot-api-client 12 cannot read a list's filters back into its models (it
deserializes every filter branch as its ASSOCIATION variant and refuses the
others), so these calls ask the client for the raw answer
(``_preload_content=False``) and read the JSON; requests still go out
through the client's list, folder and membership APIs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from connector.crm.base import NativeAction, NativeSummary, NativeView, ObjectName
from connector.crm.hubspot.session import HubSpotSession

JsonObj = dict[str, Any]

PREFIX = "segsync · "
OBJECT_TYPE_IDS = {"companies": "0-2", "contacts": "0-1"}
_LABELS = {"companies": "Companies", "contacts": "Contacts"}
#: Lists per search page (the API's maximum is 500).
SEARCH_COUNT = 500
#: List ids per ``GET /crm/v3/lists?listIds=…`` (keeps the URL short).
READ_IDS = 50
#: Memberships per page (the API's maximum is 250).
MEMBERSHIP_PAGE = 250


def list_name(view: NativeView, object_type: str) -> str:
    """``segsync · Companies · Segment: Enterprise SaaS``."""
    return f"{_prefix(object_type)}{view.kind.title()}: {view.value}"


def folder_name(view: NativeView) -> str:
    """``segsync · accounts``: the folder of a definition's lists."""
    return f"{PREFIX}{view.folder}"


def _prefix(object_type: str) -> str:
    return f"{PREFIX}{_LABELS[object_type]} · "


def list_filter(field: str, value: str) -> JsonObj:
    """The filter segsync sets: one AND branch under the root OR, ``field`` is ``value``."""
    return {
        "filterBranchType": "OR",
        "filterBranchOperator": "OR",
        "filters": [],
        "filterBranches": [
            {
                "filterBranchType": "AND",
                "filterBranchOperator": "AND",
                "filterBranches": [],
                "filters": [
                    {
                        "filterType": "PROPERTY",
                        "property": field,
                        "operation": {
                            "operationType": "ENUMERATION",
                            "operator": "IS_ANY_OF",
                            "values": [value],
                            "includeObjectsWithNoValueSet": False,
                        },
                    }
                ],
            }
        ],
    }


def _normal(branch: Any) -> Any:
    """A filter branch without the parts HubSpot fills in (operators echoing types, defaults)."""
    if isinstance(branch, dict):
        out = {
            k: _normal(v)
            for k, v in branch.items()
            if k != "filterBranchOperator" and v not in (None, [])
        }
        if out.get("operationType") not in (None, "ALL_PROPERTY"):
            out.setdefault("includeObjectsWithNoValueSet", False)
        return out
    if isinstance(branch, list):
        return [_normal(v) for v in branch]
    return branch


def segsync_shape(branch: Any) -> tuple[str, str] | None:
    """(property, value) when ``branch`` is exactly the shape segsync sets, else None."""
    if not isinstance(branch, dict):
        return None
    try:
        only = branch["filterBranches"][0]["filters"][0]
        prop, value = only["property"], only["operation"]["values"][0]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(prop, str) or not isinstance(value, str):
        return None
    return (prop, value) if _normal(branch) == _normal(list_filter(prop, value)) else None


def _raw(fn: Callable[..., Any]) -> Callable[..., tuple[Any, int, Any]]:
    """``fn`` (a client ``*_with_http_info`` method) answering parsed JSON, status, headers."""

    def call(*args: Any, **kwargs: Any) -> tuple[Any, int, Any]:
        response = fn(*args, _preload_content=False, **kwargs)
        data = response.data
        return (json.loads(data) if data else None), response.status, response.headers

    return call


class _Lists:
    """The client's Lists API objects for one session, and the calls segsync makes."""

    def __init__(self, session: HubSpotSession) -> None:
        self.session = session
        lists = session.client.crm.lists
        self.lists = lists.lists_api
        self.folders = lists.folders_api
        self.memberships = lists.memberships_api

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.session.call(what, _raw(fn), *args, **kwargs)

    def folder_id(self, name: str) -> str | None:
        """The id of the top-level folder ``name``, or None."""
        root = self.call("read list folders", self.folders.get_all_with_http_info)
        for node in (root or {}).get("folder", {}).get("childNodes", []):
            if node.get("name") == name:
                return str(node["id"])
        return None

    def create_folder(self, name: str) -> str:
        answer = self.call("create list folder", self.folders.create_with_http_info, {"name": name})
        return str(answer["folder"]["id"])

    def segsync_lists(self, object_type: str) -> dict[str, JsonObj]:
        """Our lists of ``object_type`` (by name prefix), with filters, keyed by folded name."""
        prefix = _prefix(object_type)
        ids: list[str] = []
        offset = 0
        while True:
            page = self.call(
                "search lists",
                self.lists.do_search_with_http_info,
                {
                    "query": prefix,
                    "objectTypeId": OBJECT_TYPE_IDS[object_type],
                    "additionalProperties": [],
                    "offset": offset,
                    "count": SEARCH_COUNT,
                },
            )
            ids.extend(
                str(item["listId"])
                for item in page.get("lists", [])
                if str(item.get("name", "")).startswith(prefix)
            )
            if not page.get("hasMore"):
                break
            offset = int(page["offset"])
        found: dict[str, JsonObj] = {}
        for start in range(0, len(ids), READ_IDS):
            answer = self.call(
                "read lists",
                self.lists.get_all_with_http_info,
                list_ids=ids[start : start + READ_IDS],
                # The client would send Python's "True"; the spec's boolean is "true".
                include_filters="true",
            )
            for item in answer.get("lists", []):
                found[str(item["name"]).casefold()] = item
        return found

    def create(self, name: str, object_type: str, branch: JsonObj, folder: str | None) -> str:
        body: JsonObj = {
            "name": name,
            "objectTypeId": OBJECT_TYPE_IDS[object_type],
            "processingType": "DYNAMIC",
            "filterBranch": branch,
        }
        if folder is not None:
            body["listFolderId"] = int(folder)
        answer = self.call("create list", self.lists.create_with_http_info, body)
        return str(answer["list"]["listId"])

    def update_filters(self, list_id: str, branch: JsonObj) -> None:
        self.call(
            "update list filters",
            self.lists.update_list_filters_with_http_info,
            list_id,
            {"filterBranch": branch},
        )

    def delete(self, list_id: str) -> None:
        self.call("delete list", self.lists.remove_with_http_info, list_id)

    def member_ids(self, list_id: str) -> Iterator[str]:
        """Every record id in the list, paging by ``after``."""
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": MEMBERSHIP_PAGE}
            if after is not None:
                kwargs["after"] = after
            page = self.call(
                "read list memberships",
                self.memberships.get_page_with_http_info,
                list_id,
                **kwargs,
            )
            for item in page.get("results", []):
                yield str(item["recordId"])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return


def provision_lists(
    session: HubSpotSession,
    obj: ObjectName,
    object_type: str,
    views: Sequence[NativeView],
    dry_run: bool,
) -> list[NativeAction]:
    """Make the portal's lists for ``obj`` match ``views``; report what was (or would be) done."""
    api = _Lists(session)
    actions: list[NativeAction] = []
    existing = api.segsync_lists(object_type)
    wanted = {list_name(v, object_type).casefold(): v for v in views}
    folder: str | None = None
    if views:
        name = folder_name(views[0])
        folder = api.folder_id(name)
        if folder is None:
            actions.append(NativeAction(obj, name, "create", "list folder"))
            if not dry_run:
                folder = api.create_folder(name)
    for key, view in wanted.items():
        name = list_name(view, object_type)
        branch = list_filter(view.field, view.value)
        found = existing.get(key)
        if found is None:
            list_id = "" if dry_run else api.create(name, object_type, branch, folder)
            actions.append(
                NativeAction(
                    obj, name, "create", f"dynamic list: {view.field} is {view.value}", list_id
                )
            )
            continue
        list_id = str(found["listId"])
        have = found.get("filterBranch")
        shape = segsync_shape(have)
        if found.get("processingType") == "DYNAMIC" and _normal(have) == _normal(branch):
            actions.append(NativeAction(obj, name, "ok", "", list_id))
        elif found.get("processingType") == "DYNAMIC" and shape and shape[1] == view.value:
            actions.append(
                NativeAction(
                    obj, name, "update", f"filter on {view.field} (was {shape[0]})", list_id
                )
            )
            if not dry_run:
                api.update_filters(list_id, branch)
        else:
            actions.append(
                NativeAction(
                    obj,
                    name,
                    "edited",
                    "a person changed its filters or type: reported, left as it is",
                    list_id,
                )
            )
    for key, found in existing.items():
        if key in wanted:
            continue
        name, list_id = str(found["name"]), str(found["listId"])
        shape = segsync_shape(found.get("filterBranch"))
        if found.get("processingType") == "DYNAMIC" and shape and name.endswith(f": {shape[1]}"):
            actions.append(
                NativeAction(
                    obj, name, "retire", "value no longer defined: deleted, restorable", list_id
                )
            )
            if not dry_run:
                api.delete(list_id)
        else:
            actions.append(
                NativeAction(
                    obj,
                    name,
                    "edited",
                    "value no longer defined, but a person changed the list: kept",
                    list_id,
                )
            )
    return actions


def read_lists(
    session: HubSpotSession, obj: ObjectName, object_type: str, views: Sequence[NativeView]
) -> list[NativeSummary]:
    """The lists ``views`` name, as the portal has them, with their member counts."""
    api = _Lists(session)
    existing = api.segsync_lists(object_type)
    out: list[NativeSummary] = []
    for view in views:
        name = list_name(view, object_type)
        found = existing.get(name.casefold())
        if found is None:
            continue
        list_id = str(found["listId"])
        members = sum(1 for _ in api.member_ids(list_id))
        out.append(NativeSummary(obj, name, list_id, members, view.kind, view.value))
    return out


def list_members(session: HubSpotSession, list_id: str) -> list[str]:
    """Every record id in one list (memberships, paged)."""
    return list(_Lists(session).member_ids(list_id))
