"""HubSpot property definitions and value validation, as a fresh portal has them.

A property is a plain JSON-ready dict shaped like the Properties API's
``Property`` model, so the API can answer with it unchanged. Values are
strings both ways: :func:`coerce_value` turns what a client writes into the
canonical string HubSpot would store (or an error dict in HubSpot's
``Property values were not valid`` shape), and :func:`sort_key` /
:func:`to_epoch_ms` give the typed view that search filters and sorts need.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from segsync_sandbox.data import SENIORITIES, TECH_STACK
from segsync_sandbox.deals import DEAL_TYPES, PIPELINES

JsonObj = dict[str, Any]

OBJECT_TYPES = ("companies", "contacts", "deals")
"""Object types the sandbox serves."""

OBJECT_ALIASES = {
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
}
"""Every spelling HubSpot accepts for an object type in a path."""

PROPERTY_TYPES = ("string", "number", "date", "datetime", "enumeration", "bool")
"""The ``type`` values the Properties API accepts."""

FIELD_TYPES_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "phonenumber", "html", "file"}),
    "number": frozenset({"number", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox"}),
    "bool": frozenset({"booleancheckbox"}),
}
"""Which ``fieldType`` goes with which ``type``."""

MAX_STRING_LENGTH = 65_536
"""Longest string value HubSpot stores."""

MAX_OPTIONS = 5_000
"""Most options an enumeration property may have."""

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
"""Internal names of custom properties and groups."""

INDUSTRY_OPTIONS = (
    "ACCOUNTING",
    "AIRLINES_AVIATION",
    "APPAREL_FASHION",
    "AUTOMOTIVE",
    "BANKING",
    "BIOTECHNOLOGY",
    "BROADCAST_MEDIA",
    "BUILDING_MATERIALS",
    "CHEMICALS",
    "COMPUTER_HARDWARE",
    "COMPUTER_NETWORKING",
    "COMPUTER_SOFTWARE",
    "CONSTRUCTION",
    "CONSUMER_ELECTRONICS",
    "CONSUMER_GOODS",
    "E_LEARNING",
    "EDUCATION_MANAGEMENT",
    "ENTERTAINMENT",
    "FINANCIAL_SERVICES",
    "FOOD_BEVERAGES",
    "GOVERNMENT_ADMINISTRATION",
    "HIGHER_EDUCATION",
    "HOSPITAL_HEALTH_CARE",
    "HOSPITALITY",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "INSURANCE",
    "INTERNET",
    "INVESTMENT_BANKING",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "MACHINERY",
    "MANAGEMENT_CONSULTING",
    "MARKETING_AND_ADVERTISING",
    "MECHANICAL_OR_INDUSTRIAL_ENGINEERING",
    "MEDIA_PRODUCTION",
    "MEDICAL_DEVICES",
    "NONPROFIT_ORGANIZATION_MANAGEMENT",
    "OIL_ENERGY",
    "ONLINE_MEDIA",
    "PHARMACEUTICALS",
    "PRIMARY_SECONDARY_EDUCATION",
    "PUBLISHING",
    "REAL_ESTATE",
    "RETAIL",
    "SEMICONDUCTORS",
    "STAFFING_AND_RECRUITING",
    "TELECOMMUNICATIONS",
    "TRANSPORTATION_TRUCKING_RAILROAD",
    "UTILITIES",
    "WHOLESALE",
)
"""Option values of the company ``industry`` property (a subset of HubSpot's list)."""

LIFECYCLE_OPTIONS = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
"""Option values of ``lifecyclestage``."""

SENIORITY_OPTIONS = SENIORITIES
"""Option values of the contact ``seniority`` input property."""

TECH_STACK_OPTIONS = TECH_STACK
"""Option values of the company ``tech_stack`` multi-select input property."""

ALWAYS_RETURNED = {
    "companies": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
    "contacts": ("createdate", "lastmodifieddate", "hs_object_id"),
    "deals": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
}
"""Properties every read returns, whatever was asked for."""

DEFAULT_RETURNED = {
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": (
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ),
    "deals": (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
}
"""Properties a read returns when it names none."""

LOADED_READ_ONLY = frozenset({"createdate", "salesforceaccountid", "salesforcecontactid"})
"""Read-only properties a loaded dataset may set: HubSpot's own creation date and
the ids HubSpot's Salesforce integration stores on the records it synced."""

SEARCHABLE_BY_QUERY = {
    "companies": ("name", "domain", "phone", "website"),
    "contacts": ("firstname", "lastname", "email", "phone", "company"),
    "deals": ("dealname",),
}
"""Properties the free-text ``query`` of a search looks at."""

DEFAULT_GROUPS = {
    "companies": (("companyinformation", "Company information"), ("segsync_inputs", "Inputs")),
    "contacts": (("contactinformation", "Contact information"), ("segsync_inputs", "Inputs")),
    "deals": (("dealinformation", "Deal information"), ("segsync_inputs", "Inputs")),
}
"""Property groups of a fresh portal."""


def _label(value: str) -> str:
    return value.replace("_", " ").title()


def options_for(values: Iterable[str], labels: Mapping[str, str] | None = None) -> list[JsonObj]:
    """Option dicts for an enumeration, in order."""
    return [
        {
            "label": (labels or {}).get(v, _label(v)),
            "value": v,
            "displayOrder": i,
            "hidden": False,
            "description": "",
        }
        for i, v in enumerate(values)
    ]


BOOL_OPTIONS = options_for(("true", "false"), {"true": "Yes", "false": "No"})


def make_property(
    name: str,
    label: str,
    type_: str,
    field_type: str,
    group: str,
    *,
    options: list[JsonObj] | None = None,
    hubspot_defined: bool = True,
    read_only: bool = False,
    unique: bool = False,
    stamp: str = "2020-01-01T00:00:00Z",
) -> JsonObj:
    """A property definition in the Properties API's shape."""
    prop: JsonObj = {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "description": "",
        "groupName": group,
        "options": options if options is not None else [],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": unique,
        "hidden": False,
        "formField": not read_only,
        "archived": False,
        "createdAt": stamp,
        "updatedAt": stamp,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
    }
    if hubspot_defined:
        prop["hubspotDefined"] = True
    return prop


def default_properties(object_type: str) -> list[JsonObj]:
    """The properties of a fresh portal (HubSpot-defined plus the customer's input fields)."""
    if object_type == "deals":
        return _deal_properties()
    g = "companyinformation" if object_type == "companies" else "contactinformation"
    common = [
        make_property("createdate", "Create Date", "datetime", "date", g, read_only=True),
        make_property(
            "hs_lastmodifieddate", "Last Modified Date", "datetime", "date", g, read_only=True
        ),
        make_property("hs_object_id", "Record ID", "number", "number", g, read_only=True),
        make_property("notes_last_updated", "Last Activity Date", "datetime", "date", g),
        make_property("phone", "Phone Number", "string", "phonenumber", g),
        make_property("country", "Country/Region", "string", "text", g),
        make_property("state", "State/Region", "string", "text", g),
        make_property("city", "City", "string", "text", g),
        make_property(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            g,
            options=options_for(LIFECYCLE_OPTIONS),
        ),
        make_property(
            "segsync_lock",
            "Segsync Lock",
            "bool",
            "booleancheckbox",
            "segsync_inputs",
            options=[dict(o) for o in BOOL_OPTIONS],
            hubspot_defined=False,
        ),
    ]
    if object_type == "companies":
        return [
            *common,
            make_property("name", "Company name", "string", "text", g),
            make_property("domain", "Company Domain Name", "string", "text", g),
            make_property("website", "Website URL", "string", "text", g),
            make_property(
                "industry",
                "Industry",
                "enumeration",
                "select",
                g,
                options=options_for(INDUSTRY_OPTIONS),
            ),
            # Set by HubSpot's Salesforce integration on a company it synced
            # with an account (the account's 18-character id); read-only.
            make_property(
                "salesforceaccountid", "Salesforce Account ID", "string", "text", g, read_only=True
            ),
            make_property("numberofemployees", "Number of Employees", "number", "number", g),
            make_property("annualrevenue", "Annual Revenue", "number", "number", g),
            make_property(
                "tech_stack",
                "Tech Stack",
                "enumeration",
                "checkbox",
                "segsync_inputs",
                options=options_for(TECH_STACK_OPTIONS, {v: v for v in TECH_STACK_OPTIONS}),
                hubspot_defined=False,
            ),
            make_property(
                "intent_score",
                "Intent Score",
                "number",
                "number",
                "segsync_inputs",
                hubspot_defined=False,
            ),
        ]
    return [
        *common,
        make_property("firstname", "First Name", "string", "text", g),
        make_property("lastname", "Last Name", "string", "text", g),
        make_property("email", "Email", "string", "text", g, unique=True),
        make_property("jobtitle", "Job Title", "string", "text", g),
        make_property("department", "Department", "string", "text", g),
        make_property("company", "Company Name", "string", "text", g),
        make_property(
            "lastmodifieddate", "Last Modified Date", "datetime", "date", g, read_only=True
        ),
        make_property(
            "associatedcompanyid", "Primary Associated Company ID", "number", "number", g
        ),
        # Set by HubSpot's Salesforce integration on a contact it synced; read-only.
        make_property(
            "salesforcecontactid", "Salesforce Contact ID", "string", "text", g, read_only=True
        ),
        make_property(
            "seniority",
            "Seniority",
            "enumeration",
            "select",
            "segsync_inputs",
            options=options_for(SENIORITY_OPTIONS, {v: v for v in SENIORITY_OPTIONS}),
            hubspot_defined=False,
        ),
    ]


def _deal_properties() -> list[JsonObj]:
    """Deal properties as HubSpot defines them.

    ``dealstage`` and ``pipeline`` options are stage and pipeline ids; whether
    a stage is closed or won lives in the pipelines API, not in the deal.
    """
    g = "dealinformation"
    stages = [s for _, (_, listed) in PIPELINES.items() for s in listed]
    return [
        make_property("createdate", "Create Date", "datetime", "date", g, read_only=True),
        make_property(
            "hs_lastmodifieddate", "Last Modified Date", "datetime", "date", g, read_only=True
        ),
        make_property("hs_object_id", "Record ID", "number", "number", g, read_only=True),
        make_property("dealname", "Deal Name", "string", "text", g),
        make_property("amount", "Amount", "number", "number", g),
        make_property("closedate", "Close Date", "datetime", "date", g),
        make_property(
            "pipeline",
            "Pipeline",
            "enumeration",
            "select",
            g,
            options=options_for(PIPELINES, {k: v[0] for k, v in PIPELINES.items()}),
        ),
        make_property(
            "dealstage",
            "Deal Stage",
            "enumeration",
            "radio",
            g,
            options=options_for([s[0] for s in stages], {s[0]: s[1] for s in stages}),
        ),
        make_property(
            "dealtype",
            "Deal Type",
            "enumeration",
            "radio",
            g,
            options=options_for(DEAL_TYPES, DEAL_TYPES),
        ),
        make_property("closed_lost_reason", "Closed Lost Reason", "string", "textarea", g),
    ]


def default_pipelines() -> dict[str, JsonObj]:
    """The deal pipelines of the sandbox portal, as ``/crm/v3/pipelines/deals`` serves them.

    Stage ``metadata`` values are strings, as HubSpot sends them: ``isClosed``
    ``"true"`` / ``"false"`` and ``probability`` from ``"0.0"`` to ``"1.0"``
    (1.0 is won). The default pipeline's stages carry HubSpot's fixed ids.
    """
    stamp = "2024-01-15T09:00:00Z"
    out: dict[str, JsonObj] = {}
    for order, (pipeline_id, (label, stages)) in enumerate(PIPELINES.items()):
        out[pipeline_id] = {
            "id": pipeline_id,
            "label": label,
            "displayOrder": order,
            "createdAt": "1970-01-01T00:00:00Z" if pipeline_id == "default" else stamp,
            "updatedAt": stamp,
            "archived": False,
            "stages": [
                {
                    "id": stage_id,
                    "label": stage_label,
                    "displayOrder": i,
                    "metadata": {
                        "isClosed": "true" if closed else "false",
                        "probability": repr(float(probability)),
                    },
                    "createdAt": "1970-01-01T00:00:00Z" if pipeline_id == "default" else stamp,
                    "updatedAt": stamp,
                    "archived": False,
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                }
                for i, (stage_id, stage_label, probability, closed) in enumerate(stages)
            ],
        }
    return out


# Values ------------------------------------------------------------------


def value_error(name: str, message: str, code: str) -> JsonObj:
    """One entry of HubSpot's ``Property values were not valid: [...]`` list."""
    return {
        "isValid": False,
        "message": message,
        "error": code,
        "name": name,
        "localizedErrorMessage": message,
    }


@functools.lru_cache(maxsize=4096)
def format_ms(ms: int) -> str:
    """Epoch milliseconds as HubSpot's ISO 8601 datetime string (UTC, millisecond precision)."""
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@functools.lru_cache(maxsize=1 << 18)
def to_epoch_ms(value: str) -> int | None:
    """Epoch milliseconds for an epoch-ms string, an ISO datetime or date; None if neither.

    Memoized: search filters and sorts parse every record's stamps on every query.
    """
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        if _ISO_DATE.fullmatch(text):
            parsed = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    delta = parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def to_decimal(value: str) -> Decimal | None:
    """A finite Decimal for a numeric string, else None."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def format_number(number: Decimal) -> str:
    """A number as HubSpot echoes it: no exponent, no trailing zeros."""
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def option_values(prop: Mapping[str, Any]) -> list[str]:
    """The option values of an enumeration or bool property."""
    return [str(o.get("value")) for o in prop.get("options") or []]


def is_multi(prop: Mapping[str, Any]) -> bool:
    """True for a multi-select enumeration (checkbox): values are ``;``-separated."""
    return prop.get("type") == "enumeration" and prop.get("fieldType") == "checkbox"


def _options_text(prop: Mapping[str, Any]) -> str:
    # HubSpot prints the allowed options in its protobuf-ish text form.
    parts = [
        f'label: "{o.get("label")}"\nvalue: "{o.get("value")}"\n' for o in prop.get("options") or []
    ]
    return "[" + ", ".join(parts) + "]"


def coerce_value(
    prop: Mapping[str, Any], raw: Any, allowed: Collection[str] | None = None
) -> tuple[str | None, JsonObj | None]:
    """Validate one written value: (canonical string or None to clear, None) or (None, error).

    ``allowed`` is the property's option values when the caller has them at hand
    (a set makes bulk loading fast); otherwise they are read from ``prop``.
    """
    name = str(prop["name"])
    if raw is None:
        return None, None
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    elif isinstance(raw, int | float):
        text = format_number(Decimal(str(raw)))
    elif isinstance(raw, str):
        text = raw
    else:
        return None, value_error(name, f"{raw!r} is not a valid value for {name}", "INVALID_TYPE")
    if text == "":
        return None, None
    kind = prop.get("type")
    if kind == "string":
        if len(text) > MAX_STRING_LENGTH:
            return None, value_error(
                name,
                f"Property value for {name} is too long: {len(text)} characters, "
                f"the maximum is {MAX_STRING_LENGTH}",
                "INVALID_STRING_TOO_LONG",
            )
        return text, None
    if kind == "number":
        number = to_decimal(text)
        if number is None:
            return None, value_error(name, f"{text} was not a valid number.", "INVALID_FLOAT")
        return format_number(number), None
    if kind in ("date", "datetime"):
        ms = to_epoch_ms(text)
        if ms is None:
            return None, value_error(
                name, f"{text} was not a valid long or ISO 8601 date.", "INVALID_DATE"
            )
        if kind == "date":
            if ms % 86_400_000:
                return None, value_error(
                    name,
                    f"{text} is at {format_ms(ms)}, which is not midnight UTC",
                    "INVALID_DATE",
                )
            return format_ms(ms)[:10], None
        return format_ms(ms), None
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            return None, value_error(name, f"{text} is not a valid boolean.", "INVALID_BOOLEAN")
        return lowered, None
    if kind == "enumeration":
        if allowed is None:
            allowed = option_values(prop)
        values = text.split(";") if is_multi(prop) else [text]
        for value in values:
            if value not in allowed:
                return None, value_error(
                    name,
                    f"{value} was not one of the allowed options: {_options_text(prop)}",
                    "INVALID_OPTION",
                )
        return ";".join(values), None
    return text, None


def sort_key(prop: Mapping[str, Any] | None, value: str) -> tuple[int, Any]:
    """A typed, mutually comparable key for a stored value (numbers and dates numerically)."""
    kind = prop.get("type") if prop else "string"
    if kind == "number":
        number = to_decimal(value)
        if number is not None:
            return (0, number)
    elif kind in ("date", "datetime"):
        ms = to_epoch_ms(value)
        if ms is not None:
            return (0, Decimal(ms))
    return (1, value.lower())
