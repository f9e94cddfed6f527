"""Salesforce list views: one per segment and per tier on each object, reconciled.

Each :class:`~connector.crm.base.NativeView` becomes a ``ListView`` through
the Metadata API (simple-salesforce's ``mdapi``, zeep), like the output
fields in :mod:`.provision`: developer name ``Segsync_Tier_Tier_1``, label
``segsync Tier: Tier 1``, scope ``Everything``, one filter (the segsync
field ``equals`` the value), the columns a seller wants (name, owner, then
segment, tier, persona, scores and reason), shared with the configured
audience (all internal users by default).

segsync finds its views by developer name (``Segsync_…``, through REST
``GET /sobjects/{type}/listviews``) and reads their metadata. A view that is
exactly segsync's is left alone; one whose only differences are the filter's
field or a custom column's (the output was renamed) or its sharing (the
config changed) is updated; any other difference is a person's edit: reported, never
overwritten. A view for a value the definition dropped is deleted unless a
person edited its filters. Member counts come from the view's own query
(``…/listviews/{id}/describe``) as a SOQL ``COUNT()``.

Objects are one row each in :data:`STANDARD_COLUMNS` (Account, Contact, Lead).
See docs/crm-apis.md#salesforce-list-views.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from connector.crm.base import NativeAction, NativeSummary, NativeView, ObjectName
from connector.crm.limits import SF_METADATA_BATCH
from connector.crm.salesforce.session import Client, SalesforceSession
from connector.crm.salesforce.soql import SOBJECTS

PREFIX = "Segsync_"
LABEL_PREFIX = "segsync "
#: Developer names and labels of list views hold at most 40 characters.
NAME_MAX = 40
#: The standard columns a seller sees first, per object: the record's name, then its owner.
STANDARD_COLUMNS: dict[str, tuple[str, ...]] = {
    "Account": ("ACCOUNT.NAME", "CORE.USERS.ALIAS"),
    "Contact": ("FULL_NAME", "ACCOUNT.NAME", "CORE.USERS.ALIAS"),
    "Lead": ("FULL_NAME", "LEAD.COMPANY", "CORE.USERS.ALIAS"),
}

Definition = tuple[str, str, tuple[tuple[str, str, str], ...], tuple[str, ...], tuple[str, ...]]


def developer_name(view: NativeView) -> str:
    """``Segsync_Segment_Enterprise_SaaS``: letters, digits, single underscores, ≤ 40."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", view.value).strip("_") or "blank"
    name = f"{PREFIX}{view.kind.title()}_{slug}"
    if len(name) > NAME_MAX or slug != view.value.replace(" ", "_"):
        # Different values could share a slug: a short hash of the value keeps them apart.
        digest = hashlib.sha1(view.value.encode()).hexdigest()[:6]
        name = f"{name[: NAME_MAX - 7].rstrip('_')}_{digest}"
    return name


def label(view: NativeView) -> str:
    """``segsync Tier: Tier 1`` (clipped to 40 characters)."""
    text = f"{LABEL_PREFIX}{view.kind.title()}: {view.value}"
    return text if len(text) <= NAME_MAX else text[: NAME_MAX - 1] + "…"


def shared_to(audience: str) -> dict[str, Any] | None:
    """The ``sharedTo`` element for a ``[native] list_view_shared_to`` value."""
    if audience == "None":
        return None
    if audience == "AllInternalUsers":
        return {"allInternalUsers": ""}
    kind, _, name = audience.partition(":")
    return {kind[0].lower() + kind[1:]: [name]}


def _sharing_key(shared: Any) -> tuple[str, ...]:
    """A comparable form of a ``sharedTo`` (a zeep object or the dict segsync sends)."""
    if shared is None:
        return ()

    def get(key: str) -> Any:
        return shared.get(key) if isinstance(shared, dict) else getattr(shared, key, None)

    keys: list[str] = []
    if get("allInternalUsers") is not None:
        keys.append("allInternalUsers")
    for kind in ("group", "role", "roleAndSubordinates"):
        names = get(kind) or []
        keys.extend(f"{kind}:{n}" for n in (names if isinstance(names, list) else [names]))
    if not keys:
        # <sharedTo><allInternalUsers/></sharedTo> can read back with the empty value dropped.
        keys.append("allInternalUsers")
    return tuple(sorted(keys))


def _definition(meta: Any) -> Definition:
    """(label, scope, filters, columns, boolean filter) of a read ListView."""
    filters = tuple(
        (str(f.field), str(f.operation), str(f.value or ""))
        for f in (getattr(meta, "filters", None) or [])
    )
    return (
        str(getattr(meta, "label", "") or ""),
        str(getattr(meta, "filterScope", "") or ""),
        filters,
        tuple(str(c) for c in (getattr(meta, "columns", None) or [])),
        (str(getattr(meta, "booleanFilter", None) or ""),),
    )


def _wanted(view: NativeView, sobject: str) -> Definition:
    columns = (*STANDARD_COLUMNS.get(sobject, ()), *view.columns)
    return (label(view), "Everything", ((view.field, "equals", view.value),), columns, ("",))


def _same_columns(have: Sequence[str], want: Sequence[str]) -> bool:
    """Whether ``have`` are segsync's columns, custom fields possibly renamed since.

    A renamed output changes its column's API name; anything else (a column
    added, removed, moved, or a standard one swapped) is a person's edit.
    """
    return len(have) == len(want) and all(
        h == w or (h.endswith("__c") and w.endswith("__c")) for h, w in zip(have, want, strict=True)
    )


def _segsync_value(meta: Any) -> str | None:
    """The value when the view filters exactly as segsync does (one ``equals``, no logic)."""
    definition = _definition(meta)
    filters = definition[2]
    if (
        len(filters) == 1
        and filters[0][1] == "equals"
        and definition[1] == "Everything"
        and definition[4] == ("",)
    ):
        return filters[0][2]
    return None


class _ListViews:
    """The Metadata and REST calls list views take, on one session."""

    def __init__(self, session: SalesforceSession) -> None:
        self.session = session

    def names(self, sobject: str) -> dict[str, str]:
        """Developer name → id of the object's list views whose name starts with ``Segsync_``."""
        answer = self.session.call(
            "list list views", lambda c: c.sf.restful(f"sobjects/{sobject}/listviews")
        )
        return {
            str(v["developerName"]): str(v["id"])
            for v in (answer or {}).get("listviews", [])
            if str(v.get("developerName", "")).startswith(PREFIX)
        }

    def read(self, full_names: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(full_names), SF_METADATA_BATCH):
            chunk = list(full_names[start : start + SF_METADATA_BATCH])

            def read(client: Client, names: list[str] = chunk) -> Any:
                return self.session.mdapi(client).ListView.read(names)

            result = self.session.call("read list views", read)
            items = result if isinstance(result, list) else [result]
            for name, item in zip(chunk, items, strict=False):
                if item is not None and getattr(item, "fullName", None):
                    found[name] = item
        return found

    def save(
        self, verb: str, views: Sequence[tuple[str, NativeView]], sobject: str, audience: str
    ) -> None:
        for start in range(0, len(views), SF_METADATA_BATCH):
            chunk = views[start : start + SF_METADATA_BATCH]

            def save(client: Client, items: Sequence[tuple[str, NativeView]] = chunk) -> None:
                md = self.session.mdapi(client)
                components = []
                for full_name, view in items:
                    spec: dict[str, Any] = {
                        "fullName": full_name,
                        "label": label(view),
                        "filterScope": "Everything",
                        "filters": [
                            {"field": view.field, "operation": "equals", "value": view.value}
                        ],
                        "columns": list(_wanted(view, sobject)[3]),
                    }
                    sharing = shared_to(audience)
                    if sharing is not None:
                        spec["sharedTo"] = sharing
                    components.append(md.ListView(**spec))
                getattr(md.ListView, verb)(components)

            self.session.call(f"{verb} list views", save)

    def delete(self, full_names: Sequence[str]) -> None:
        for start in range(0, len(full_names), SF_METADATA_BATCH):
            chunk = list(full_names[start : start + SF_METADATA_BATCH])

            def delete(client: Client, names: list[str] = chunk) -> None:
                self.session.mdapi(client).ListView.delete(names)

            self.session.call("delete list views", delete)

    def count(self, sobject: str, view_id: str) -> int:
        """How many records the view selects: its describe's WHERE clause, as ``COUNT()``."""
        described: Any = self.session.call(
            "describe list view",
            lambda c: c.sf.restful(f"sobjects/{sobject}/listviews/{view_id}/describe"),
        )
        query = str(described["query"])
        where = re.search(r"\sWHERE\s(.*?)(\sORDER BY\s.*)?$", query, flags=re.S)
        soql = f"SELECT COUNT() FROM {sobject}" + (f" WHERE {where.group(1)}" if where else "")
        answer = self.session.call("count list view", lambda c: c.sf.query(soql))
        return int(answer["totalSize"])


def provision_list_views(
    session: SalesforceSession,
    obj: ObjectName,
    views: Sequence[NativeView],
    dry_run: bool,
    audience: str,
) -> list[NativeAction]:
    """Make the org's list views for ``obj`` match ``views``; report what was (or would be) done."""
    sobject = SOBJECTS[obj]
    api = _ListViews(session)
    ours = api.names(sobject)
    wanted = {f"{sobject}.{developer_name(v)}": v for v in views}
    existing = api.read(sorted({*wanted, *(f"{sobject}.{n}" for n in ours)}))
    sharing = _sharing_key(shared_to(audience))
    actions: list[NativeAction] = []
    create: list[tuple[str, NativeView]] = []
    update: list[tuple[str, NativeView]] = []
    for full_name, view in wanted.items():
        meta = existing.get(full_name)
        view_id = ours.get(full_name.partition(".")[2], "")
        if meta is None:
            create.append((full_name, view))
            actions.append(
                NativeAction(
                    obj, full_name, "create", f"list view: {view.field} equals {view.value}"
                )
            )
            continue
        have, want = _definition(meta), _wanted(view, sobject)
        same_sharing = _sharing_key(getattr(meta, "sharedTo", None)) == sharing
        if have == want and same_sharing:
            actions.append(NativeAction(obj, full_name, "ok", "", view_id))
        elif (
            _segsync_value(meta) == view.value
            and have[0] == want[0]
            and _same_columns(have[3], want[3])
        ):
            update.append((full_name, view))
            what = ", ".join(
                part
                for part, differs in (
                    ("filter field", have[2] != want[2]),
                    ("columns", have[3] != want[3]),
                    ("sharing", not same_sharing),
                )
                if differs
            )
            actions.append(NativeAction(obj, full_name, "update", what, view_id))
        else:
            actions.append(
                NativeAction(
                    obj,
                    full_name,
                    "edited",
                    "a person changed its filters, columns or label: reported, left as it is",
                    view_id,
                )
            )
    retire: list[str] = []
    for developer, view_id in ours.items():
        full_name = f"{sobject}.{developer}"
        if full_name in wanted:
            continue
        meta = existing.get(full_name)
        if meta is not None and _segsync_value(meta) is not None:
            retire.append(full_name)
            actions.append(
                NativeAction(obj, full_name, "retire", "value no longer defined: deleted", view_id)
            )
        else:
            actions.append(
                NativeAction(
                    obj,
                    full_name,
                    "edited",
                    "value no longer defined, but a person changed the view: kept",
                    view_id,
                )
            )
    if not dry_run:
        if create:
            api.save("create", create, sobject, audience)
        if update:
            api.save("update", update, sobject, audience)
        if retire:
            api.delete(retire)
        if create:
            ids = api.names(sobject)
            actions = [
                NativeAction(
                    a.object, a.name, a.action, a.detail, ids.get(a.name.partition(".")[2], a.id)
                )
                if a.action == "create"
                else a
                for a in actions
            ]
    return actions


def read_list_views(
    session: SalesforceSession, obj: ObjectName, views: Sequence[NativeView]
) -> list[NativeSummary]:
    """The list views ``views`` name that exist, with how many records each selects."""
    sobject = SOBJECTS[obj]
    api = _ListViews(session)
    ours = api.names(sobject)
    out: list[NativeSummary] = []
    for view in views:
        developer = developer_name(view)
        view_id = ours.get(developer)
        if view_id is None:
            continue
        out.append(
            NativeSummary(
                obj,
                f"{sobject}.{developer}",
                view_id,
                api.count(sobject, view_id),
                view.kind,
                view.value,
            )
        )
    return out
