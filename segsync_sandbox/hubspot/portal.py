"""The in-memory HubSpot portal: properties, groups, companies, contacts and their links.

Everything goes through one re-entrant lock, so the HTTP server's threads and
a data loader can share a portal. Records keep their values as the canonical
strings HubSpot would return; system properties (``hs_object_id``,
``createdate``, ``hs_lastmodifieddate``, contacts' ``lastmodifieddate``) live
among them so search and sorts treat them like any other property.

Contact → company links are v4 associations: the contact's
``associatedcompanyid`` is its primary company (types 1 "Primary" and 279
unlabeled), indexed both ways.
"""

from __future__ import annotations

import bisect
import copy
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segsync_sandbox.hubspot.errors import (
    AlreadyExists,
    ObjectNotFound,
    PropertyValuesError,
    ValidationError,
)
from segsync_sandbox.hubspot.ratelimit import RateLimits
from segsync_sandbox.hubspot.schema import (
    ALWAYS_RETURNED,
    BOOL_OPTIONS,
    DEFAULT_GROUPS,
    DEFAULT_RETURNED,
    FIELD_TYPES_BY_TYPE,
    LOADED_READ_ONLY,
    MAX_OPTIONS,
    NAME_PATTERN,
    OBJECT_ALIASES,
    OBJECT_TYPES,
    PROPERTY_TYPES,
    coerce_value,
    default_pipelines,
    default_properties,
    format_ms,
    make_property,
    to_epoch_ms,
    value_error,
)

JsonObj = dict[str, Any]

FIRST_IDS = {"companies": 10_000_000_001, "contacts": 20_000_000_001, "deals": 30_000_000_001}
"""The id the first record of each type gets (then +1 each)."""


@dataclass(frozen=True, slots=True)
class Source:
    """Who set a property value, as property history reports it.

    ``type`` is HubSpot's ``sourceType`` (``CRM_UI``, ``IMPORT``,
    ``INTEGRATION``, ``WORKFLOW``, …), ``id`` its ``sourceId`` (``userId:N``
    for a person, the app's id for an integration), ``user_id`` the
    ``updatedByUserId`` (people only).
    """

    type: str
    id: str | None = None
    label: str | None = None
    user_id: int | None = None

    def to_api(self, value: str | None, ms: int) -> JsonObj:
        """One ``propertiesWithHistory`` entry."""
        out: JsonObj = {"value": "" if value is None else value, "timestamp": format_ms(ms)}
        out["sourceType"] = self.type
        if self.id is not None:
            out["sourceId"] = self.id
        if self.label is not None:
            out["sourceLabel"] = self.label
        if self.user_id is not None:
            out["updatedByUserId"] = self.user_id
        return out


IMPORTED = Source("IMPORT", None, None, None)
"""Values loaded with the data (the generator's import): shown as an import."""
UI_USER_ID = 9_586_504
"""The portal user whose edits the direct (non-HTTP) write path stands for."""
UI_EDIT = Source("CRM_UI", f"userId:{UI_USER_ID}", None, UI_USER_ID)
"""A person editing a record in HubSpot's web UI: what :meth:`Portal.update` records by default."""
PRIVATE_APP_ID = "4511707"
"""The id of the private app whose token the sandbox accepts."""
PRIVATE_APP = Source("INTEGRATION", PRIVATE_APP_ID, "segsync")
"""Writes through the API with the private app's token."""
HISTORY_DEPTH = 20
"""Values kept per property (newest first): enough for any audit-trail question."""


def object_type_of(name: str) -> str:
    """The canonical object type for a path segment (``company``, ``0-2`` …); 400 if unknown."""
    canonical = OBJECT_ALIASES.get(name.lower())
    if canonical is None:
        raise ValidationError(f"Unable to infer object type from: {name}")
    return canonical


class Record:
    """One company or contact."""

    __slots__ = (
        "archived_ms",
        "created_ms",
        "history",
        "id",
        "props",
        "search_props",
        "search_until",
        "updated_ms",
    )

    def __init__(
        self,
        record_id: str,
        props: dict[str, str],
        created_ms: int,
        updated_ms: int,
        archived_ms: int | None = None,
    ) -> None:
        self.id = record_id
        self.props = props
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.archived_ms = archived_ms
        # What the (lagging) search index shows until ``search_until`` (ms); None = not yet.
        self.search_props: dict[str, str] | None = None
        self.search_until = 0
        # Property → (value, stamp ms, source), newest first: property history.
        self.history: dict[str, list[tuple[str | None, int, Source]]] = {}

    def history_api(self, names: Iterable[str]) -> JsonObj:
        """``propertiesWithHistory`` for the named properties (known ones; newest first).

        A value that predates the recorded history (loaded data) appears as
        one entry at the record's creation, as HubSpot shows an imported value.
        """
        out: JsonObj = {}
        for name in names:
            entries = self.history.get(name)
            if entries:
                out[name] = [source.to_api(value, ms) for value, ms, source in entries]
            elif self.props.get(name) is not None:
                out[name] = [IMPORTED.to_api(self.props[name], self.created_ms)]
            else:
                out[name] = []
        return out

    def to_api(
        self, names: Iterable[str] | None, values: Mapping[str, str] | None = None
    ) -> JsonObj:
        """The API's ``SimplePublicObject`` view with the named properties (all when None).

        ``values`` replaces the current properties (the search index's lagging view).
        """
        source = self.props if values is None else values
        if names is None:
            props: dict[str, str | None] = dict(source)
        else:
            props = {n: source.get(n) for n in names}
        out: JsonObj = {
            "id": self.id,
            "properties": props,
            "createdAt": format_ms(self.created_ms),
            "updatedAt": format_ms(self.updated_ms),
            "archived": self.archived_ms is not None,
        }
        if self.archived_ms is not None:
            out["archivedAt"] = format_ms(self.archived_ms)
        return out

    def to_json(self) -> JsonObj:
        """The persisted form (one JSON Lines row)."""
        out: JsonObj = {
            "id": self.id,
            "properties": self.props,
            "createdAt": self.created_ms,
            "updatedAt": self.updated_ms,
            "archivedAt": self.archived_ms,
        }
        if self.history:
            out["history"] = {
                name: [[v, ms, asdict(source)] for v, ms, source in entries]
                for name, entries in self.history.items()
            }
        return out

    def load_history(self, raw: Mapping[str, Any]) -> None:
        """Restore what :meth:`to_json` saved as ``history``."""
        self.history = {
            name: [(v, int(ms), Source(**source)) for v, ms, source in entries]
            for name, entries in raw.items()
        }


class Portal:
    """An in-memory HubSpot portal; thread-safe.

    Args:
        requests_per_10s: the rolling ten-second limit per token (100, 190 or 250).
        daily_limit: requests per UTC day.
        search_per_second: search requests per second for the account.
        send_retry_after: whether 429 answers carry Retry-After.
        search_lag_ms: how long a write takes to show in search results (HubSpot's
            index lags by seconds; 0 makes search see every write at once).
        clock: epoch seconds; stamps (``createdate``, ``hs_lastmodifieddate``) come from it.

    """

    def __init__(
        self,
        *,
        requests_per_10s: int = 190,
        daily_limit: int = 1_000_000,
        search_per_second: int = 5,
        send_retry_after: bool = False,
        search_lag_ms: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = RateLimits(
            requests_per_10s=requests_per_10s,
            daily_limit=daily_limit,
            search_per_second=search_per_second,
            send_retry_after=send_retry_after,
        )
        self.clock = clock
        self.search_lag_ms = search_lag_ms
        self._lock = threading.RLock()
        self.version = 0
        """Bumped on every data write; search caches key on it."""
        self._last_stamp = 0
        self._next_id = dict(FIRST_IDS)
        self._records: dict[str, dict[str, Record]] = {t: {} for t in OBJECT_TYPES}
        self._active: dict[str, list[int]] = {t: [] for t in OBJECT_TYPES}
        self._archived: dict[str, list[int]] = {t: [] for t in OBJECT_TYPES}
        self._company_contacts: dict[str, list[str]] = {}
        #: Deal → its company (the v4 deal-to-company association), and back.
        self._deal_company: dict[str, str] = {}
        self._company_deals: dict[str, list[str]] = {}
        #: Deal pipelines as the pipelines API serves them (deleted ones are absent).
        self.pipelines: dict[str, JsonObj] = default_pipelines()
        self._properties: dict[str, dict[str, JsonObj]] = {}
        self._option_sets: dict[tuple[str, str], tuple[JsonObj, frozenset[str]]] = {}
        self._groups: dict[str, dict[str, JsonObj]] = {}
        for object_type in OBJECT_TYPES:
            self._properties[object_type] = {p["name"]: p for p in default_properties(object_type)}
            self._groups[object_type] = {
                name: {"name": name, "label": label, "displayOrder": i, "archived": False}
                for i, (name, label) in enumerate(DEFAULT_GROUPS[object_type])
            }

    # Stamps ------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def next_stamp(self) -> int:
        """A write stamp in ms, strictly above every stamp handed out before."""
        with self._lock:
            self._last_stamp = max(self._now_ms(), self._last_stamp + 1)
            return self._last_stamp

    # Properties --------------------------------------------------------
    def properties(self, object_type: str) -> list[JsonObj]:
        """Every property definition of an object type (copies)."""
        with self._lock:
            return copy.deepcopy(list(self._properties[object_type].values()))

    def property_names(self, object_type: str) -> set[str]:
        """The names of every property of an object type."""
        with self._lock:
            return set(self._properties[object_type])

    def get_property(self, object_type: str, name: str) -> JsonObj:
        """One property definition (a copy); 404 if there is none."""
        with self._lock:
            prop = self._properties[object_type].get(name)
            if prop is None:
                raise ObjectNotFound(f"Unable to find property {name} on object type {object_type}")
            return copy.deepcopy(prop)

    def _check_options(self, name: str, options: Any) -> list[JsonObj]:
        if not isinstance(options, list):
            raise ValidationError(f"options of {name} must be a list")
        if len(options) > MAX_OPTIONS:
            raise ValidationError(
                f"Property {name} has {len(options)} options; the maximum is {MAX_OPTIONS}"
            )
        seen: set[str] = set()
        out: list[JsonObj] = []
        for i, option in enumerate(options):
            if not isinstance(option, dict) or not option.get("label") or "value" not in option:
                raise ValidationError(f"Option {i} of {name} needs a label and a value")
            value = str(option["value"])
            if value in seen:
                raise ValidationError(f"Duplicate option value {value!r} in {name}")
            seen.add(value)
            out.append(
                {
                    "label": str(option["label"]),
                    "value": value,
                    "displayOrder": int(option.get("displayOrder", i)),
                    "hidden": bool(option.get("hidden", False)),
                    "description": str(option.get("description") or ""),
                }
            )
        return out

    def _check_type(self, name: str, type_: Any, field_type: Any) -> None:
        if type_ not in PROPERTY_TYPES:
            raise ValidationError(
                f"Invalid type {type_!r} for property {name}; "
                f"expected one of {list(PROPERTY_TYPES)}"
            )
        if field_type not in FIELD_TYPES_BY_TYPE[type_]:
            raise ValidationError(
                f"fieldType {field_type!r} is not valid for a property of type {type_!r} ({name}); "
                f"expected one of {sorted(FIELD_TYPES_BY_TYPE[type_])}"
            )

    def create_property(self, object_type: str, spec: Mapping[str, Any]) -> JsonObj:
        """Create a custom property, validated like HubSpot; 409 if the name exists."""
        for key in ("name", "label", "type", "fieldType", "groupName"):
            if not spec.get(key):
                raise ValidationError(f"Missing required field: {key}")
        name = str(spec["name"])
        if not NAME_PATTERN.fullmatch(name):
            raise ValidationError(
                f"Property name {name!r} is invalid: use lowercase letters, digits and "
                "underscores, starting with a letter"
            )
        self._check_type(name, spec["type"], spec["fieldType"])
        options = self._check_options(name, spec.get("options") or [])
        if spec["type"] == "enumeration" and not options:
            raise ValidationError(f"Enumeration property {name} needs at least one option")
        if spec["type"] == "bool" and not options:
            options = [dict(o) for o in BOOL_OPTIONS]
        with self._lock:
            if name in self._properties[object_type]:
                raise AlreadyExists(
                    f"Property named '{name}' already exists.",
                    sub_category="PropertyValidationError.PROPERTY_EXISTS",
                )
            group = str(spec["groupName"])
            if group not in self._groups[object_type]:
                raise ValidationError(f"Property group {group} does not exist")
            prop = make_property(
                name,
                str(spec["label"]),
                str(spec["type"]),
                str(spec["fieldType"]),
                group,
                options=options,
                hubspot_defined=False,
                unique=bool(spec.get("hasUniqueValue", False)),
                stamp=format_ms(self._now_ms()),
            )
            prop["description"] = str(spec.get("description") or "")
            prop["hidden"] = bool(spec.get("hidden", False))
            prop["formField"] = bool(spec.get("formField", False))
            prop["displayOrder"] = int(spec.get("displayOrder", -1))
            self._properties[object_type][name] = prop
            return copy.deepcopy(prop)

    def update_property(self, object_type: str, name: str, changes: Mapping[str, Any]) -> JsonObj:
        """Update a custom property's label, description, group, options or type.

        Replacing the options never touches stored values: a record keeps a value
        whose option was removed, as in HubSpot.
        """
        with self._lock:
            prop = self._properties[object_type].get(name)
            if prop is None:
                raise ObjectNotFound(f"Unable to find property {name} on object type {object_type}")
            if prop["modificationMetadata"]["readOnlyDefinition"]:
                raise ValidationError(
                    f"Property {name} is a HubSpot-defined property whose definition is read-only"
                )
            updated = copy.deepcopy(prop)
            type_ = changes.get("type", prop["type"])
            field_type = changes.get("fieldType", prop["fieldType"])
            self._check_type(name, type_, field_type)
            updated["type"], updated["fieldType"] = type_, field_type
            if "options" in changes:
                updated["options"] = self._check_options(name, changes["options"])
            if updated["type"] == "enumeration" and not updated["options"]:
                raise ValidationError(f"Enumeration property {name} needs at least one option")
            if "groupName" in changes:
                if changes["groupName"] not in self._groups[object_type]:
                    raise ValidationError(f"Property group {changes['groupName']} does not exist")
                updated["groupName"] = str(changes["groupName"])
            for key in ("label", "description"):
                if key in changes:
                    updated[key] = str(changes[key] or "")
            for key in ("hidden", "formField"):
                if key in changes:
                    updated[key] = bool(changes[key])
            if "displayOrder" in changes:
                updated["displayOrder"] = int(changes["displayOrder"])
            updated["updatedAt"] = format_ms(self._now_ms())
            self._properties[object_type][name] = updated
            return copy.deepcopy(updated)

    def groups(self, object_type: str) -> list[JsonObj]:
        """Every property group of an object type."""
        with self._lock:
            return copy.deepcopy(list(self._groups[object_type].values()))

    def get_group(self, object_type: str, name: str) -> JsonObj:
        """One property group; 404 if there is none."""
        with self._lock:
            group = self._groups[object_type].get(name)
            if group is None:
                raise ObjectNotFound(f"Unable to find property group {name}")
            return dict(group)

    def create_group(self, object_type: str, spec: Mapping[str, Any]) -> JsonObj:
        """Create a property group; 409 if the name exists."""
        name, label = spec.get("name"), spec.get("label")
        if not name or not label:
            raise ValidationError("Missing required field: name and label")
        if not NAME_PATTERN.fullmatch(str(name)):
            raise ValidationError(f"Property group name {name!r} is invalid")
        with self._lock:
            if name in self._groups[object_type]:
                raise AlreadyExists(f"Property group named '{name}' already exists.")
            group = {
                "name": str(name),
                "label": str(label),
                "displayOrder": int(spec.get("displayOrder", -1)),
                "archived": False,
            }
            self._groups[object_type][str(name)] = group
            return dict(group)

    def update_group(self, object_type: str, name: str, changes: Mapping[str, Any]) -> JsonObj:
        """Change a group's label or display order."""
        with self._lock:
            group = self._groups[object_type].get(name)
            if group is None:
                raise ObjectNotFound(f"Unable to find property group {name}")
            if "label" in changes:
                group["label"] = str(changes["label"])
            if "displayOrder" in changes:
                group["displayOrder"] = int(changes["displayOrder"])
            return dict(group)

    # Values ------------------------------------------------------------
    def _allowed(self, object_type: str, prop: JsonObj) -> frozenset[str] | None:
        if prop.get("type") != "enumeration":
            return None
        key = (object_type, str(prop["name"]))
        cached = self._option_sets.get(key)
        # Keyed by the definition's identity: create/update replace the dict.
        if cached is None or cached[0] is not prop:
            cached = (prop, frozenset(str(o.get("value")) for o in prop.get("options") or []))
            self._option_sets[key] = cached
        return cached[1]

    def validate(
        self, object_type: str, props: Mapping[str, Any], *, record_id: str | None = None
    ) -> dict[str, str | None]:
        """Canonical values for a write (None clears); PropertyValuesError listing every problem."""
        problems: list[JsonObj] = []
        out: dict[str, str | None] = {}
        with self._lock:
            defs = self._properties[object_type]
            for name, raw in props.items():
                prop = defs.get(name)
                if prop is None:
                    problems.append(
                        value_error(
                            name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"
                        )
                    )
                    continue
                if prop["modificationMetadata"]["readOnlyValue"]:
                    problems.append(
                        value_error(
                            name,
                            f'"{name}" is a read only property; its value cannot be set.',
                            "READ_ONLY_VALUE",
                        )
                    )
                    continue
                value, problem = coerce_value(prop, raw, self._allowed(object_type, prop))
                if (
                    problem is None
                    and name == "associatedcompanyid"
                    and value is not None
                    and value not in self._records["companies"]
                ):
                    problem = value_error(
                        name, f"No company with id {value} exists", "INVALID_OBJECT_ID"
                    )
                if problem is not None:
                    problems.append(problem)
                else:
                    out[name] = value
        if problems:
            raise PropertyValuesError(problems, record_id)
        return out

    # Records -----------------------------------------------------------
    def _insert(self, object_type: str, values: Mapping[str, str | None], now: int) -> str:
        record_id = str(self._next_id[object_type])
        self._next_id[object_type] += 1
        props = {k: v for k, v in values.items() if v is not None}
        created = now
        if "createdate" in props:
            created = self._ms_of(props["createdate"], now)
        props["createdate"] = format_ms(created)
        props["hs_object_id"] = record_id
        stamp = format_ms(now)
        props["hs_lastmodifieddate"] = stamp
        if object_type == "contacts":
            props["lastmodifieddate"] = stamp
        record = Record(record_id, props, created, now)
        record.search_until = now + self.search_lag_ms
        self._records[object_type][record_id] = record
        self._active[object_type].append(int(record_id))
        company = props.get("associatedcompanyid")
        if object_type == "contacts" and company:
            self._company_contacts.setdefault(company, []).append(record_id)
        self._last_stamp = max(self._last_stamp, now)
        self.version += 1
        return record_id

    @staticmethod
    def _ms_of(value: str, default: int) -> int:
        ms = to_epoch_ms(value)
        return default if ms is None else ms

    def _add(self, object_type: str, props: Mapping[str, Any], now: int) -> str:
        # Values HubSpot itself or an integration sets (read-only through the
        # API) come with the loaded data, as they would from the integration.
        given = {k: str(v) for k, v in props.items() if k in LOADED_READ_ONLY and v}
        writable = {k: v for k, v in props.items() if k not in LOADED_READ_ONLY}
        values = self.validate(object_type, writable)
        values.update(given)
        return self._insert(object_type, values, now)

    def add_company(self, props: Mapping[str, Any], *, stamp: int | None = None) -> str:
        """Create a company from property values (validated; ``createdate`` may be given).

        ``stamp`` (epoch ms) simulates a late commit: a create whose
        transaction carried an earlier stamp than it becomes visible at.
        """
        with self._lock:
            return self._add("companies", props, self.next_stamp() if stamp is None else stamp)

    def add_contact(self, props: Mapping[str, Any], company_id: str | None = None) -> str:
        """Create a contact, associated with ``company_id`` (its primary company) when given."""
        values = dict(props)
        if company_id is not None:
            values["associatedcompanyid"] = company_id
        with self._lock:
            return self._add("contacts", values, self.next_stamp())

    def load_companies(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create many companies (one stamp for the lot); their ids in order."""
        return self._load("companies", rows)

    def load_contacts(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create many contacts; a row's ``associatedcompanyid`` links its company."""
        return self._load("contacts", rows)

    def load_deals(self, rows: Iterable[tuple[Mapping[str, str], str | None]]) -> list[str]:
        """Import deals, each with the company it is associated with (or None); their ids.

        Values are stored as given, unvalidated, as an import from another
        system leaves them: a stage or pipeline that no longer exists, an
        amount typed as ``"$12,500"``.
        """
        ids: list[str] = []
        with self._lock:
            now = self.next_stamp()
            for props, company in rows:
                deal_id = self._insert("deals", dict(props), now)
                if company is not None:
                    self._link_deal(deal_id, company)
                ids.append(deal_id)
        return ids

    def import_history(
        self,
        object_type: str,
        record_id: str,
        name: str,
        values: Sequence[tuple[str | None, int]],
    ) -> None:
        """Set a property's history to ``values`` ((value, epoch ms), oldest first), as imported.

        The last value must be the property's current one; property history
        then shows the record's past (a deal's stage moves) as HubSpot does.
        """
        with self._lock:
            record = self._record(object_type, record_id)
            if values and values[-1][0] != record.props.get(name):
                raise ValueError(f"the last value of {name}'s history must be its current value")
            record.history[name] = [(v, ms, IMPORTED) for v, ms in reversed(values)][:HISTORY_DEPTH]

    def add_deal(self, props: Mapping[str, Any], company_id: str | None = None) -> str:
        """Create a deal (validated), associated with ``company_id`` when given."""
        with self._lock:
            deal_id = self._add("deals", props, self.next_stamp())
            if company_id is not None:
                self._link_deal(deal_id, company_id)
            return deal_id

    def _link_deal(self, deal_id: str, company_id: str) -> None:
        self._deal_company[deal_id] = company_id
        self._company_deals.setdefault(company_id, []).append(deal_id)

    def _load(self, object_type: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        ids: list[str] = []
        with self._lock:
            now = self.next_stamp()
            for row in rows:
                ids.append(self._add(object_type, row, now))
        return ids

    def _record(self, object_type: str, record_id: str, *, archived: bool = False) -> Record:
        record = self._records[object_type].get(str(record_id))
        if record is None or (record.archived_ms is not None) != archived:
            raise ObjectNotFound(
                "Object not found.  objectId are usually numeric.",
                context={"id": [str(record_id)]},
            )
        return record

    def exists(self, object_type: str, record_id: str) -> bool:
        """True when an unarchived record has this id."""
        with self._lock:
            record = self._records[object_type].get(str(record_id))
            return record is not None and record.archived_ms is None

    def get(self, object_type: str, record_id: str, *, archived: bool = False) -> JsonObj:
        """A record with every stored property; 404 if there is none."""
        with self._lock:
            return self._record(object_type, record_id, archived=archived).to_api(None)

    def read(
        self,
        object_type: str,
        record_id: str,
        properties: Sequence[str] | None,
        *,
        archived: bool = False,
        id_property: str | None = None,
    ) -> JsonObj | None:
        """The API view of one record with the properties a read returns, or None if missing."""
        with self._lock:
            if id_property and id_property != "hs_object_id":
                record = self._find_by(object_type, id_property, record_id)
                if record is None or (record.archived_ms is not None) != archived:
                    return None
            else:
                found = self._records[object_type].get(str(record_id))
                if found is None or (found.archived_ms is not None) != archived:
                    return None
                record = found
            return record.to_api(self.returned_names(object_type, properties))

    def _find_by(self, object_type: str, name: str, value: str) -> Record | None:
        prop = self._properties[object_type].get(name)
        if prop is None or not prop.get("hasUniqueValue"):
            raise ValidationError(f"{name} is not a unique identifier property for {object_type}")
        wanted = value.lower() if name == "email" else value
        for record in self._records[object_type].values():
            stored = record.props.get(name)
            if stored is not None and (stored.lower() if name == "email" else stored) == wanted:
                return record
        return None

    def history(self, object_type: str, record_id: str, names: Sequence[str]) -> JsonObj:
        """``propertiesWithHistory`` of a record for the named properties that exist."""
        with self._lock:
            record = self._records[object_type][str(record_id)]
            known = self._properties[object_type]
            return record.history_api(n for n in dict.fromkeys(names) if n in known)

    def returned_names(self, object_type: str, requested: Sequence[str] | None) -> list[str]:
        """The properties a read returns.

        The defaults when none are requested, else the requested ones that exist
        plus the always-returned ones (unknown names are ignored, as HubSpot does).
        """
        if not requested:
            return list(DEFAULT_RETURNED[object_type])
        known = self._properties[object_type]
        names = [n for n in dict.fromkeys(requested) if n in known]
        return list(dict.fromkeys([*names, *ALWAYS_RETURNED[object_type]]))

    def update(
        self,
        object_type: str,
        record_id: str,
        props: Mapping[str, Any],
        *,
        stamp: int | None = None,
        source: Source = UI_EDIT,
    ) -> JsonObj:
        """Validate and write values; the record with every property. 404 / 400 as HubSpot.

        ``source`` is who writes, for property history: a person in the UI
        unless the API handlers say it is the private app.
        """
        with self._lock:
            record = self._record(object_type, record_id)
            values = self.validate(object_type, props, record_id=record.id)
            self._apply(object_type, record, values, stamp, source)
            return record.to_api(None)

    def _apply(
        self,
        object_type: str,
        record: Record,
        values: Mapping[str, str | None],
        stamp: int | None,
        source: Source = UI_EDIT,
    ) -> None:
        # Strictly after the record's previous stamp, whatever the clock says.
        now = max(self.next_stamp() if stamp is None else stamp, record.updated_ms + 1)
        if self.search_lag_ms:
            # The index keeps showing the last state it caught up with.
            if self._now_ms() >= record.search_until:
                record.search_props = dict(record.props)
            record.search_until = self._now_ms() + self.search_lag_ms
        old_company = record.props.get("associatedcompanyid")
        for name, value in values.items():
            if record.props.get(name) != value:
                entries = record.history.setdefault(name, [])
                entries.insert(0, (value, now, source))
                del entries[HISTORY_DEPTH:]
            if value is None:
                record.props.pop(name, None)
            else:
                record.props[name] = value
        text = format_ms(now)
        record.props["hs_lastmodifieddate"] = text
        if object_type == "contacts":
            record.props["lastmodifieddate"] = text
            new_company = record.props.get("associatedcompanyid")
            if new_company != old_company:
                if old_company:
                    linked = self._company_contacts.get(old_company, [])
                    if record.id in linked:
                        linked.remove(record.id)
                if new_company:
                    self._company_contacts.setdefault(new_company, []).append(record.id)
        record.updated_ms = now
        self._last_stamp = max(self._last_stamp, now)
        self.version += 1

    def archive(self, object_type: str, record_id: str) -> None:
        """Archive (soft-delete) a record; 404 if there is none."""
        with self._lock:
            record = self._record(object_type, record_id)
            record.archived_ms = self.next_stamp()
            active = self._active[object_type]
            key = int(record.id)
            index = bisect.bisect_left(active, key)
            if index < len(active) and active[index] == key:
                del active[index]
            bisect.insort(self._archived[object_type], key)
            self.version += 1

    def page(
        self, object_type: str, after: int, limit: int, *, archived: bool = False
    ) -> tuple[list[Record], int | None]:
        """Records with id ≥ ``after`` in id order, and the next ``after`` (None at the end)."""
        with self._lock:
            ids = self._archived[object_type] if archived else self._active[object_type]
            start = bisect.bisect_left(ids, after)
            chunk = ids[start : start + limit + 1]
            records = [self._records[object_type][str(i)] for i in chunk[:limit]]
            following = chunk[limit] if len(chunk) > limit else None
            return records, following

    def snapshot(self, object_type: str) -> list[Record]:
        """Every unarchived record, in id order (the records themselves: treat as read-only)."""
        with self._lock:
            records = self._records[object_type]
            return [records[str(i)] for i in self._active[object_type]]

    def search_view(
        self, object_type: str, above: int | None = None, upto: int | None = None
    ) -> list[tuple[Record, dict[str, str]]]:
        """Unarchived records with the values search sees (lagging writes by ``search_lag_ms``).

        In id order; only ids with ``above < id <= upto`` when those are given.
        """
        with self._lock:
            records = self._records[object_type]
            ids = self._active[object_type]
            start = 0 if above is None else bisect.bisect_right(ids, above)
            end = len(ids) if upto is None else bisect.bisect_right(ids, upto)
            active = [records[str(i)] for i in ids[start:end]]
            if not self.search_lag_ms:
                return [(r, r.props) for r in active]
            now = self._now_ms()
            out: list[tuple[Record, dict[str, str]]] = []
            for record in active:
                if now >= record.search_until:
                    out.append((record, record.props))
                elif record.search_props is not None:
                    out.append((record, record.search_props))
            return out

    def id_slice(
        self, object_type: str, above: int | None, upto: int | None, offset: int, limit: int
    ) -> tuple[int, list[tuple[Record, dict[str, str]]]]:
        """How many unarchived ids lie in ``above < id <= upto``, and a page of them.

        ``limit`` records from ``offset`` in id order, with their current values
        (no search lag).
        """
        with self._lock:
            ids = self._active[object_type]
            start = 0 if above is None else bisect.bisect_right(ids, above)
            end = len(ids) if upto is None else bisect.bisect_right(ids, upto)
            records = self._records[object_type]
            page = ids[start + offset : min(end, start + offset + limit)]
            return max(0, end - start), [(r, r.props) for r in (records[str(i)] for i in page)]

    def count(self, object_type: str) -> int:
        """How many unarchived records there are."""
        with self._lock:
            return len(self._active[object_type])

    # Pipelines ---------------------------------------------------------
    def pipeline_list(self) -> list[JsonObj]:
        """The deal pipelines with their stages (copies)."""
        with self._lock:
            return copy.deepcopy(list(self.pipelines.values()))

    def pipeline(self, pipeline_id: str) -> JsonObj | None:
        """One deal pipeline (a copy), None when there is none (or it was deleted)."""
        with self._lock:
            found = self.pipelines.get(pipeline_id)
            return None if found is None else copy.deepcopy(found)

    def delete_pipeline(self, pipeline_id: str) -> bool:
        """Delete a pipeline, leaving its deals as they are; False if there was none."""
        with self._lock:
            if self.pipelines.pop(pipeline_id, None) is None:
                return False
            self.version += 1
            return True

    # Associations ------------------------------------------------------
    def associated(self, from_type: str, record_id: str, to_type: str) -> list[str] | None:
        """Ids associated with a record (None if the record does not exist)."""
        with self._lock:
            record = self._records[from_type].get(str(record_id))
            if record is None or record.archived_ms is not None:
                return None
            if from_type == "contacts" and to_type == "companies":
                company = record.props.get("associatedcompanyid")
                return [company] if company and self.exists("companies", company) else []
            if from_type == "deals" and to_type == "companies":
                company = self._deal_company.get(record.id)
                return [company] if company and self.exists("companies", company) else []
            if from_type == "companies" and to_type == "deals":
                return [
                    d for d in self._company_deals.get(record.id, []) if self.exists("deals", d)
                ]
            if from_type == "companies" and to_type == "contacts":
                return [
                    c
                    for c in self._company_contacts.get(record.id, [])
                    if self.exists("contacts", c)
                ]
            return []

    # Persistence -------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the portal to ``directory`` as JSON Lines (records) and JSON (schema, counters)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for object_type in OBJECT_TYPES:
                tmp = path / f"{object_type}.jsonl.tmp"
                with tmp.open("w", encoding="utf-8") as out:
                    for record in self._iter_all(object_type):
                        out.write(json.dumps(record.to_json(), separators=(",", ":")))
                        out.write("\n")
                tmp.replace(path / f"{object_type}.jsonl")
            meta = {
                "format": 1,
                "next_id": self._next_id,
                "last_stamp": self._last_stamp,
                "properties": {t: list(self._properties[t].values()) for t in OBJECT_TYPES},
                "groups": {t: list(self._groups[t].values()) for t in OBJECT_TYPES},
                "deal_companies": self._deal_company,
                "pipelines": self.pipelines,
            }
            tmp = path / "portal.json.tmp"
            tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
            tmp.replace(path / "portal.json")

    def _iter_all(self, object_type: str) -> Iterator[Record]:
        records = self._records[object_type]
        for key in sorted(map(int, records)):
            yield records[str(key)]

    def load(self, directory: str | Path) -> None:
        """Replace this portal's schema and data with what :meth:`save` wrote to ``directory``."""
        path = Path(directory)
        meta = json.loads((path / "portal.json").read_text(encoding="utf-8"))
        with self._lock:
            # A portal saved before deals existed loads with none.
            self._next_id = {t: int(meta["next_id"].get(t, FIRST_IDS[t])) for t in OBJECT_TYPES}
            self._last_stamp = int(meta["last_stamp"])
            self._properties = {
                t: {p["name"]: p for p in meta["properties"].get(t) or default_properties(t)}
                for t in OBJECT_TYPES
            }
            self._groups = {
                t: {
                    g["name"]: g
                    for g in meta["groups"].get(t)
                    or [
                        {"name": n, "label": label, "displayOrder": i, "archived": False}
                        for i, (n, label) in enumerate(DEFAULT_GROUPS[t])
                    ]
                }
                for t in OBJECT_TYPES
            }
            self.pipelines = dict(meta.get("pipelines") or default_pipelines())
            self._deal_company = {}
            self._company_deals = {}
            for deal_id, company_id in (meta.get("deal_companies") or {}).items():
                self._link_deal(str(deal_id), str(company_id))
            self._company_contacts = {}
            for object_type in OBJECT_TYPES:
                records: dict[str, Record] = {}
                active: list[int] = []
                archived: list[int] = []
                file = path / f"{object_type}.jsonl"
                if not file.is_file():
                    self._records[object_type] = {}
                    self._active[object_type] = []
                    self._archived[object_type] = []
                    continue
                with file.open(encoding="utf-8") as lines:
                    for line in lines:
                        if not line.strip():
                            continue
                        row = json.loads(line)
                        record = Record(
                            str(row["id"]),
                            dict(row["properties"]),
                            int(row["createdAt"]),
                            int(row["updatedAt"]),
                            None if row.get("archivedAt") is None else int(row["archivedAt"]),
                        )
                        if row.get("history"):
                            record.load_history(row["history"])
                        records[record.id] = record
                        (active if record.archived_ms is None else archived).append(int(record.id))
                        company = record.props.get("associatedcompanyid")
                        if object_type == "contacts" and company:
                            self._company_contacts.setdefault(company, []).append(record.id)
                active.sort()
                archived.sort()
                self._records[object_type] = records
                self._active[object_type] = active
                self._archived[object_type] = archived
            self.version += 1

    @classmethod
    def from_dir(cls, directory: str | Path, **kwargs: Any) -> Portal:
        """A new portal loaded from ``directory`` (kwargs as for the constructor)."""
        portal = cls(**kwargs)
        portal.load(directory)
        return portal
