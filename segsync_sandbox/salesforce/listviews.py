"""Salesforce sandbox: ``ListView`` metadata and the REST list-view endpoints.

Metadata API (``sf.mdapi.ListView.create / read / update / upsert / delete``):
``fullName`` ``Object.DeveloperName``, ``label``, ``filterScope``,
``filters`` (``field``, ``operation``, ``value``), ``booleanFilter``,
``columns`` and ``sharedTo``, in the WSDL's element order. Checked as
Salesforce does before saving: a developer name of letters, digits and
single underscores (at most 40, starting with a letter, not ending in
``_``), a label of at most 40 characters, a known filter scope, filters on
fields the object has (a picklist filter naming one of its values), and
columns the object's list views offer. Only ``Everything`` and ``Mine``
scopes and AND-ed filters are evaluated; a ``booleanFilter`` is refused
rather than ignored.

REST (docs/crm-apis.md#salesforce-list-views):
``GET /sobjects/{type}/listviews`` (the object's list views),
``GET /sobjects/{type}/listviews/{id}/describe`` (columns, the SOQL query,
scope), ``GET /sobjects/{type}/listviews/{id}/results`` (``limit`` 1–2000,
default 25, ``offset`` up to 2000), evaluated on the org's current data.
"""

from __future__ import annotations

import itertools
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from segsync_sandbox.common import HttpError, Request, Response
from segsync_sandbox.salesforce.host import SalesforceHost
from segsync_sandbox.salesforce.metadata import (
    COMPONENT_TYPES,
    DELETE_TYPES,
    ComponentError,
    _child_text,
    _el,
    _q,
    _save_result_xml,
    _xml_response,
)
from segsync_sandbox.salesforce.org import USER_ID, Org

SCOPES = ("Everything", "Mine")
ALL_SCOPES = (
    "Everything",
    "Mine",
    "Queue",
    "Delegated",
    "MyTerritory",
    "MyTeamTerritory",
    "Team",
    "SalesTeam",
    "AssignedToMe",
    "MineAndMyGroups",
    "ScopingRule",
)
OPERATIONS = ("equals", "notEqual", "contains", "notContain", "startsWith")
ALL_OPERATIONS = (
    *OPERATIONS,
    "lessThan",
    "greaterThan",
    "lessOrEqual",
    "greaterOrEqual",
    "includes",
    "excludes",
    "within",
)
SHARED_KINDS = ("group", "role", "roleAndSubordinates")
MAX_RESULTS_LIMIT = 2000
DEFAULT_RESULTS_LIMIT = 25
MAX_OFFSET = 2000
_DEVELOPER_NAME = re.compile(r"[A-Za-z](?!.*__)[A-Za-z0-9_]{0,39}")

#: Standard columns each object's list views offer: column name → (path, label).
STANDARD_COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "Account": {
        "ACCOUNT.NAME": ("Name", "Account Name"),
        "CORE.USERS.ALIAS": ("Owner.Alias", "Account Owner Alias"),
        "ACCOUNT.ADDRESS1_STATE": ("BillingState", "Billing State/Province"),
        "ACCOUNT.INDUSTRY": ("Industry", "Industry"),
    },
    "Contact": {
        "FULL_NAME": ("Name", "Name"),
        "ACCOUNT.NAME": ("Account.Name", "Account Name"),
        "CONTACT.TITLE": ("Title", "Title"),
        "CONTACT.EMAIL": ("Email", "Email"),
        "CORE.USERS.ALIAS": ("Owner.Alias", "Contact Owner Alias"),
    },
    "Lead": {
        "FULL_NAME": ("Name", "Name"),
        "LEAD.COMPANY": ("Company", "Company"),
        "LEAD.TITLE": ("Title", "Title"),
        "LEAD.EMAIL": ("Email", "Email"),
        "LEAD.STATUS": ("Status", "Lead Status"),
        "CORE.USERS.ALIAS": ("Owner.Alias", "Owner Alias"),
    },
}


@dataclass
class ListView:
    """One list view: its metadata and the id REST knows it by."""

    id: str
    sobject: str
    developer_name: str
    label: str
    filter_scope: str
    filters: list[tuple[str, str, str]]
    columns: list[str]
    shared_to: dict[str, list[str]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """``Object.DeveloperName``."""
        return f"{self.sobject}.{self.developer_name}"


class ListViews:
    """Every org's list views (kept per org: a fresh org starts with none)."""

    def __init__(self, app: SalesforceHost) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._by_org: WeakKeyDictionary[Org, dict[str, ListView]] = WeakKeyDictionary()
        self._ids = itertools.count(1)

    def views(self) -> dict[str, ListView]:
        """The current org's views, by lower-cased full name."""
        return self._by_org.setdefault(self.app.org, {})

    def by_id(self, sobject: str, view_id: str) -> ListView:
        """The view ``view_id`` of ``sobject``; 404 NOT_FOUND when there is none."""
        for view in self.views().values():
            if view.id == view_id and view.sobject == sobject:
                return view
        raise HttpError(
            Response.json(
                404,
                [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
            )
        )

    # Metadata --------------------------------------------------------------
    def _parse(self, elem: ET.Element) -> tuple[ListView | None, list[ComponentError], str]:
        full_name = (_child_text(elem, "fullName") or "").strip()
        sobject_name, _, developer = full_name.partition(".")
        org = self.app.org
        sobject = org.canonical_sobject(sobject_name) if sobject_name else None
        errors: list[ComponentError] = []
        if sobject is None or not developer:
            errors.append(
                ComponentError(
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"In field: fullName - no object named {sobject_name!r} for list view "
                    f"{full_name!r} (expected Object.DeveloperName)",
                    ["fullName"],
                )
            )
            return None, errors, full_name
        if not _DEVELOPER_NAME.fullmatch(developer) or developer.endswith("_"):
            errors.append(
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "The list view's developer name can only contain underscores and "
                    "alphanumeric characters, must be unique, begin with a letter, not include "
                    "spaces, not end with an underscore, not contain two consecutive "
                    "underscores, and be at most 40 characters",
                    ["fullName"],
                )
            )
        label = _child_text(elem, "label") or ""
        if not label.strip() or len(label) > 40:
            errors.append(
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "label: required, at most 40 characters",
                    ["label"],
                )
            )
        scope = (_child_text(elem, "filterScope") or "").strip()
        if scope not in ALL_SCOPES:
            errors.append(
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"filterScope: bad value {scope!r}",
                    ["filterScope"],
                )
            )
        elif scope not in SCOPES:
            errors.append(
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"filterScope {scope} is not evaluated by this sandbox ({', '.join(SCOPES)})",
                    ["filterScope"],
                )
            )
        if (_child_text(elem, "booleanFilter") or "").strip():
            errors.append(
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "booleanFilter is not evaluated by this sandbox (filters are AND-ed)",
                    ["booleanFilter"],
                )
            )
        filters = []
        for f in elem.findall(_q("filters")):
            name = (_child_text(f, "field") or "").strip()
            op = (_child_text(f, "operation") or "").strip()
            value = _child_text(f, "value") or ""
            errors.extend(self._check_filter(sobject, name, op, value))
            filters.append((name, op, value))
        columns = [(c.text or "").strip() for c in elem.findall(_q("columns"))]
        for column in columns:
            if (
                column not in STANDARD_COLUMNS.get(sobject, {})
                and org.field(sobject, column) is None
            ):
                errors.append(
                    ComponentError(
                        "FIELD_INTEGRITY_EXCEPTION",
                        f"columns: {column} is not a column of {sobject} list views",
                        ["columns"],
                    )
                )
        shared: dict[str, list[str]] = {}
        node = elem.find(_q("sharedTo"))
        if node is not None:
            # The element's presence shares the view (its text is empty in Salesforce's files).
            if node.find(_q("allInternalUsers")) is not None:
                shared["allInternalUsers"] = ["true"]
            for kind in SHARED_KINDS:
                names = [(n.text or "").strip() for n in node.findall(_q(kind))]
                if names:
                    shared[kind] = names
        view = ListView("", sobject, developer, label, scope, filters, columns, shared)
        return view, errors, full_name

    def _check_filter(self, sobject: str, name: str, op: str, value: str) -> list[ComponentError]:
        fdef = self.app.org.field(sobject, name)
        if fdef is None:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"filters: no field {name!r} on {sobject}",
                    ["filters"],
                )
            ]
        if op not in ALL_OPERATIONS:
            return [
                ComponentError("FIELD_INTEGRITY_EXCEPTION", f"filters: bad operation {op!r}", [])
            ]
        if op not in OPERATIONS:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"filters: operation {op} is not evaluated by this sandbox",
                    ["filters"],
                )
            ]
        values = {v.value for v in fdef.picklist_values}
        if fdef.type == "picklist" and op == "equals" and value not in values:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"filters: {value!r} is not a value of the picklist {name}",
                    ["filters"],
                )
            ]
        return []

    def save(self, operation: str, components: Sequence[ET.Element], request: Request) -> Response:
        """Serve createMetadata, updateMetadata and upsertMetadata of ListView components."""
        results = []
        with self._lock:
            views = self.views()
            for component in components:
                view, errors, full_name = self._parse(component)
                request.fields.add(full_name)
                created = False
                key = full_name.lower()
                if view is not None and not errors:
                    existing = views.get(key)
                    if operation == "createMetadata" and existing is not None:
                        errors = [
                            ComponentError(
                                "DUPLICATE_DEVELOPER_NAME",
                                f"There is already a list view named {full_name}",
                                ["fullName"],
                            )
                        ]
                    elif operation == "updateMetadata" and existing is None:
                        errors = [
                            ComponentError(
                                "INVALID_CROSS_REFERENCE_KEY",
                                f"In field: fullName - no ListView named {full_name} found",
                                ["fullName"],
                            )
                        ]
                    else:
                        created = existing is None
                        view.id = existing.id if existing else f"00B5i{next(self._ids):010d}AAA"
                        views[key] = view
                        request.records.append(view.id)
                upsert = operation == "upsertMetadata"
                results.append(_save_result_xml(full_name, errors, created if upsert else None))
        return _xml_response(f"<{operation}Response>{''.join(results)}</{operation}Response>")

    def read(self, names: Sequence[str], request: Request) -> Response:
        """Serve readMetadata of ListView components (an empty record for a missing one)."""
        request.fields.update(names)
        with self._lock:
            views = self.views()
            records = "".join(_view_xml(views.get(n.lower())) for n in names)
        return _xml_response(
            f"<readMetadataResponse><result>{records}</result></readMetadataResponse>"
        )

    def delete(self, names: Sequence[str], request: Request) -> Response:
        """Serve deleteMetadata of ListView components."""
        results = []
        with self._lock:
            views = self.views()
            for name in names:
                request.fields.add(name)
                gone = views.pop(name.lower(), None)
                errors = (
                    []
                    if gone is not None
                    else [
                        ComponentError(
                            "INVALID_CROSS_REFERENCE_KEY",
                            f"In field: fullName - no ListView named {name} found",
                            ["fullName"],
                        )
                    ]
                )
                if gone is not None:
                    request.records.append(gone.id)
                results.append(
                    "<result>"
                    + "".join(
                        "<errors>"
                        + "".join(_el("fields", f) for f in e.fields)
                        + _el("message", e.message)
                        + _el("statusCode", e.status_code)
                        + "</errors>"
                        for e in errors
                    )
                    + _el("fullName", name)
                    + _el("success", not errors)
                    + "</result>"
                )
        return _xml_response(f"<deleteMetadataResponse>{''.join(results)}</deleteMetadataResponse>")

    # REST ------------------------------------------------------------------
    def _sobject(self, match: re.Match[str]) -> str:
        sobject = self.app.org.canonical_sobject(match.group("sobject"))
        if sobject is None:
            raise HttpError(
                Response.json(
                    404,
                    [
                        {
                            "message": "The requested resource does not exist",
                            "errorCode": "NOT_FOUND",
                        }
                    ],
                )
            )
        return sobject

    def index(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /sobjects/{type}/listviews``."""
        request.kind = "listview.list"
        sobject = self._sobject(match)
        base = f"/services/data/v{match.group('version')}/sobjects/{sobject}/listviews"
        with self._lock:
            mine = sorted(
                (v for v in self.views().values() if v.sobject == sobject), key=lambda v: v.id
            )
        items = [
            {
                "id": v.id,
                "developerName": v.developer_name,
                "label": v.label,
                "describeUrl": f"{base}/{v.id}/describe",
                "resultsUrl": f"{base}/{v.id}/results",
                "soqlCompatible": True,
                "url": f"{base}/{v.id}",
            }
            for v in mine
        ]
        return Response.json(
            200,
            {
                "done": True,
                "listviews": items,
                "nextRecordsUrl": None,
                "size": len(items),
                "sobjectType": sobject,
            },
        )

    def _columns(self, view: ListView) -> list[dict[str, Any]]:
        out = []
        standard = STANDARD_COLUMNS.get(view.sobject, {})
        for column in view.columns:
            if column in standard:
                path, label = standard[column]
                kind = "string"
            else:
                fdef = self.app.org.field(view.sobject, column)
                path = column
                label = fdef.label if fdef is not None else column
                kind = fdef.type if fdef is not None else "string"
            out.append(
                {
                    "fieldNameOrPath": path,
                    "hidden": False,
                    "label": label,
                    "selectListItem": path,
                    "sortable": True,
                    "type": kind,
                }
            )
        return out

    def describe(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /sobjects/{type}/listviews/{id}/describe``: columns, query, scope."""
        request.kind = "listview.describe"
        view = self.by_id(self._sobject(match), match.group("id"))
        columns = self._columns(view)
        where = " AND ".join(_soql_condition(f) for f in view.filters)
        if view.filter_scope == "Mine":
            where = " AND ".join(p for p in (where, f"OwnerId = '{USER_ID}'") if p)
        query = (
            f"SELECT {', '.join(c['selectListItem'] for c in columns) or 'Id'}, Id FROM "
            f"{view.sobject}" + (f" WHERE {where}" if where else "") + " ORDER BY Id ASC"
        )
        return Response.json(
            200,
            {
                "columns": columns,
                "id": view.id,
                "orderBy": [
                    {
                        "fieldNameOrPath": "Id",
                        "nullsPosition": "first",
                        "sortDirection": "ascending",
                    }
                ],
                "query": query,
                "scope": view.filter_scope.lower(),
                "sobjectType": view.sobject,
                "whereCondition": {
                    "conditions": [
                        {"field": f, "operator": op, "values": [v]} for f, op, v in view.filters
                    ],
                    "conjunction": "and",
                },
            },
        )

    def members(self, view: ListView) -> list[dict[str, Any]]:
        """The records the view selects now, in Id order."""
        out = []
        for record in self.app.org.records(view.sobject):
            if view.filter_scope == "Mine" and record.get("OwnerId") != USER_ID:
                continue
            if view.sobject == "Lead" and record.get("IsConverted"):
                # Converted leads show in lead reports and "Recently Viewed",
                # never in a filtered lead list view (docs/crm-apis.md, "Leads").
                continue
            if all(_passes(record.get(f), op, v) for f, op, v in view.filters):
                out.append(record)
        return out

    def _value(self, view: ListView, record: dict[str, Any], path: str) -> Any:
        if path == "Owner.Alias":
            owner = self.app.org.get("User", str(record.get("OwnerId") or "")) or {}
            return owner.get("Alias")
        if path == "Account.Name":
            parent = self.app.resolve_parent("Account", str(record.get("AccountId") or ""))
            return parent.get("Name") if parent else None
        return record.get(path)

    def results(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /sobjects/{type}/listviews/{id}/results?limit=&offset=``."""
        request.kind = "listview.results"
        view = self.by_id(self._sobject(match), match.group("id"))
        limit = _bounded(request, "limit", DEFAULT_RESULTS_LIMIT, 1, MAX_RESULTS_LIMIT)
        offset = _bounded(request, "offset", 0, 0, MAX_OFFSET)
        members = self.members(view)
        page = members[offset : offset + limit]
        columns = self._columns(view)
        request.records = [str(r["Id"]) for r in page]
        return Response.json(
            200,
            {
                "columns": columns,
                "developerName": view.developer_name,
                "done": offset + len(page) >= len(members),
                "id": view.id,
                "label": view.label,
                "records": [
                    {
                        "columns": [
                            {
                                "fieldNameOrPath": c["fieldNameOrPath"],
                                "value": _text(self._value(view, r, c["fieldNameOrPath"])),
                            }
                            for c in columns
                        ]
                        + [{"fieldNameOrPath": "Id", "value": r["Id"]}]
                    }
                    for r in page
                ],
                "size": len(page),
            },
        )


def _bounded(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.arg(name)
    try:
        value = default if raw in (None, "") else int(str(raw))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise HttpError(
            Response.json(
                400,
                [
                    {
                        "message": f"{name} must be between {low} and {high}; got {raw}",
                        "errorCode": "INVALID_QUERY_FILTER_OPERATOR"
                        if name == "offset"
                        else "MALFORMED_QUERY",
                    }
                ],
            )
        )
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _soql_condition(item: tuple[str, str, str]) -> str:
    name, op, value = item
    quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return {
        "equals": f"{name} = {quoted}",
        "notEqual": f"{name} != {quoted}",
        "contains": f"{name} LIKE '%{value}%'",
        "notContain": f"(NOT {name} LIKE '%{value}%')",
        "startsWith": f"{name} LIKE '{value}%'",
    }[op]


def _passes(raw: Any, op: str, value: str) -> bool:
    have = "" if raw is None else str(raw)
    if op == "equals":
        return have.casefold() == value.casefold()
    if op == "notEqual":
        return have.casefold() != value.casefold()
    if op == "contains":
        return value.casefold() in have.casefold()
    if op == "notContain":
        return value.casefold() not in have.casefold()
    return have.casefold().startswith(value.casefold())


def _view_xml(view: ListView | None) -> str:
    if view is None:
        return '<records xsi:type="ListView"/>'
    shared = ""
    if view.shared_to:
        shared = (
            "<sharedTo>"
            + (
                "<allInternalUsers></allInternalUsers>"
                if "allInternalUsers" in view.shared_to
                else ""
            )
            + "".join(_el(kind, n) for kind in SHARED_KINDS for n in view.shared_to.get(kind, []))
            + "</sharedTo>"
        )
    # Elements in the WSDL's sequence order: fullName, then ListView's own.
    return (
        '<records xsi:type="ListView">'
        + _el("fullName", view.full_name)
        + "".join(_el("columns", c) for c in view.columns)
        + _el("filterScope", view.filter_scope)
        + "".join(
            "<filters>" + _el("field", f) + _el("operation", op) + _el("value", v) + "</filters>"
            for f, op, v in view.filters
        )
        + _el("label", view.label)
        + shared
        + "</records>"
    )


# Every running app's list views: the Metadata API's registry of component types is
# one per process, and several sandboxes (each its own org) can share a process.
_BY_APP: WeakKeyDictionary[Any, ListViews] = WeakKeyDictionary()


def _save(
    app: SalesforceHost, operation: str, components: Sequence[ET.Element], request: Request
) -> Response:
    return _BY_APP[app].save(operation, components, request)


def _read(app: SalesforceHost, names: Sequence[str], request: Request) -> Response:
    return _BY_APP[app].read(names, request)


def _delete(app: SalesforceHost, names: Sequence[str], request: Request) -> Response:
    return _BY_APP[app].delete(names, request)


def register(app: SalesforceHost) -> ListViews:
    """Serve ListView metadata and the REST list-view endpoints (register before record routes)."""
    views = ListViews(app)
    _BY_APP[app] = views
    COMPONENT_TYPES["ListView"] = (_save, _read)
    DELETE_TYPES["ListView"] = _delete
    base = r"/sobjects/(?P<sobject>\w+)/listviews"
    app.rest("GET", base + r"/?", views.index)
    app.rest("GET", base + r"/(?P<id>00B\w+)/describe/?", views.describe)
    app.rest("GET", base + r"/(?P<id>00B\w+)/results/?", views.results)
    return views
