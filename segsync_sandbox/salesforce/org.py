"""The sandbox org: schema and records of Account, Contact and Lead, in memory, thread-safe.

Everything the REST, Bulk and Metadata surfaces of the sandbox do goes through
:class:`Org`, so validation, modification stamps and soft deletes behave the same
whichever API touches a record.

Record representation (what :meth:`Org.records` yields to the query engine):
a ``dict`` keyed by canonical API field name, holding values in Salesforce's
JSON wire format: ``str`` for text, picklists (multi-select ``;``-joined), ids,
dates (``YYYY-MM-DD``) and datetimes (``2013-05-20T20:49:32.000+0000``, always
UTC, so they sort as strings), ``int`` for int fields, ``int | float`` for
double / currency, ``bool`` for booleans. Null values are simply absent
(``record.get(name)`` is ``None``). Stored dicts are never mutated in place: a
write replaces the whole dict (copy-on-write), so a dict handed out stays a
consistent snapshot and iteration needs no lock.
"""

from __future__ import annotations

import json
import math
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from segsync_sandbox.common import FaultState
from segsync_sandbox.data import SENIORITIES, TECH_STACK
from segsync_sandbox.deals import LOSS_REASONS, SALESFORCE_STAGES
from segsync_sandbox.salesforce.access import (
    MAX_PERMISSION_SET_LABEL,
    MAX_PERMISSION_SET_NAME,
    PERMISSION_SET_NAME,
    FieldAccess,
    FieldPermission,
    PermissionSet,
)

API_VERSION = "59.0"
ORG_ID = "00D5i000000SegSAAA"
USER_ID = "0055i000000SegsAAA"
USERNAME = "integration@segsync.sandbox"
UI_USER_ID = "0055i000000RepsAAA"
"""A sales rep: the user behind the direct (non-API) write path, i.e. edits in the UI."""
UI_USERNAME = "rep@segsync.sandbox"
HISTORY_OBJECTS = {
    "Account": "AccountHistory",
    "Contact": "ContactHistory",
    "Lead": "LeadHistory",
}
"""Field history: the object that records tracked changes of each object, by parent."""
MAX_TRACKED_FIELDS = 20
"""Fields with history tracking per object (Salesforce's limit)."""
HISTORY_SPAN = 36**8
"""History rows an object's history may number (its ids keep apart from the other ones')."""
HISTORY_STRIDE = 1_743_541_808_807
"""History row ids follow no order in time: Salesforce documents none (its
``CreatedDate`` keeps whole seconds, and ``Id`` is only a key), so the
sandbox takes the stricter reading. The n-th row of an object's history is
numbered n × this stride modulo :data:`HISTORY_SPAN` (a golden-ratio step,
coprime to 36: every number once, consecutive rows now up, now down), so
code that breaks a same-second tie by ``Id`` guesses, here as there."""

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "User": "005",
    "PermissionSet": "0PS",
    "PermissionSetAssignment": "0Pa",
    "AccountHistory": "017",
    "ContactHistory": "017",
    "LeadHistory": "017",
}
_PREFIX_TO_SOBJECT = {v: k for k, v in KEY_PREFIXES.items()}

FIELD_TYPES = frozenset(
    {
        "id",
        "string",
        "textarea",
        "picklist",
        "multipicklist",
        "int",
        "double",
        "currency",
        "percent",
        "boolean",
        "date",
        "datetime",
        "reference",
        "phone",
        "url",
        "email",
        "anyType",
    }
)
STRING_TYPES = frozenset(
    {"id", "string", "textarea", "picklist", "multipicklist", "reference", "phone", "url", "email"}
)

_ID_RE = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CUSTOM_NAME_RE = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)__c")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_B36 = string.digits + string.ascii_uppercase
_CHECKSUM_CHARS = string.ascii_uppercase + "012345"


# --------------------------------------------------------------------------- formats
def format_datetime(value: datetime) -> str:
    """A datetime in Salesforce's record format, ``2013-05-20T20:49:32.000+0000`` (UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def format_epoch_ms(ms: int) -> str:
    """Epoch milliseconds in Salesforce's record format."""
    return format_datetime(datetime.fromtimestamp(ms / 1000, UTC))


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 datetime as Salesforce accepts it (``Z``, ``+00:00``, ``+0000``).

    A value without an offset is read as UTC. Raises ValueError on anything else.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    match = re.fullmatch(r"(.*[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)([+-]\d{2}):?(\d{2})", value)
    if match:
        value = f"{match.group(1)}{match.group(2)}:{match.group(3)}"
    if "T" not in value and " " not in value:
        raise ValueError(f"not a datetime: {text!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _to_wire(value: Any) -> Any:
    """Python date/datetime values as wire strings; everything else unchanged."""
    if value.__class__ in (str, int, float, bool):
        return value
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- ids
def id_checksum(id15: str) -> str:
    """The three-character case-safe suffix Salesforce appends to a 15-character id."""
    suffix = ""
    for start in (0, 5, 10):
        bits = 0
        for i, ch in enumerate(id15[start : start + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += _CHECKSUM_CHARS[bits]
    return suffix


def make_id(sobject_or_prefix: str, number: int) -> str:
    """A deterministic 18-character id: key prefix + zero-padded base-36 number + checksum.

    ``make_id("Account", 1)`` is ``"001000000000001AAA"``.
    """
    prefix = KEY_PREFIXES.get(sobject_or_prefix, sobject_or_prefix)
    if number < 0:
        raise ValueError("record number must be >= 0")
    digits = ""
    n = number
    while True:
        n, rem = divmod(n, 36)
        digits = _B36[rem] + digits
        if n == 0:
            break
    body = prefix + digits.rjust(15 - len(prefix), "0")
    if len(body) != 15:
        raise ValueError(f"record number {number} too large for an id")
    return body + id_checksum(body)


def sobject_for_id(record_id: str) -> str | None:
    """The object an id's key prefix belongs to (None when unknown)."""
    return _PREFIX_TO_SOBJECT.get(record_id[:3])


# --------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class PicklistValue:
    """One picklist entry."""

    value: str
    label: str
    active: bool = True
    default: bool = False


@dataclass(frozen=True)
class FieldDef:
    """One field of an sObject as describe reports it."""

    name: str
    type: str
    label: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    picklist_values: tuple[PicklistValue, ...] = ()
    restricted: bool = False
    updateable: bool = True
    createable: bool = True
    custom: bool = False
    nillable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    description: str = ""
    extra_type_info: str | None = None
    default_value: Any = None
    visible_lines: int | None = None
    name_field: bool = False
    #: Field-level help a user sees on hover (``description`` is for admins only).
    inline_help: str = ""
    track_history: bool = False

    def active_values(self) -> set[str]:
        """The values a write may use."""
        return {p.value for p in self.picklist_values if p.active}

    def to_describe(self) -> dict[str, Any]:
        """The field as in the REST describe ``fields`` list."""
        soap = {
            "id": "tns:ID",
            "reference": "tns:ID",
            "int": "xsd:int",
            "double": "xsd:double",
            "currency": "xsd:double",
            "percent": "xsd:double",
            "boolean": "xsd:boolean",
            "date": "xsd:date",
            "datetime": "xsd:dateTime",
        }.get(self.type, "xsd:string")
        text_like = self.type in STRING_TYPES
        return {
            "aggregatable": self.type not in ("textarea", "multipicklist"),
            "autoNumber": False,
            "byteLength": self.length * 3 if text_like else 0,
            "calculated": False,
            "calculatedFormula": None,
            "caseSensitive": False,
            "compoundFieldName": None,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.type == "boolean" or self.name in ("Id", "OwnerId"),
            "dependentPicklist": False,
            "digits": self.digits,
            "externalId": False,
            "extraTypeInfo": self.extra_type_info,
            "filterable": self.type != "textarea" or self.length <= 255,
            "groupable": self.type not in ("textarea", "multipicklist", "double", "currency"),
            "htmlFormatted": False,
            "idLookup": self.name == "Id",
            "inlineHelpText": self.inline_help or None,
            "label": self.label,
            "length": self.length if text_like else 0,
            "name": self.name,
            "nameField": self.name_field,
            "nillable": self.nillable,
            "permissionable": self.custom and self.nillable,
            "picklistValues": [
                {
                    "active": p.active,
                    "defaultValue": p.default,
                    "label": p.label,
                    "validFor": None,
                    "value": p.value,
                }
                for p in self.picklist_values
            ],
            "precision": self.precision,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted,
            "scale": self.scale,
            "soapType": soap,
            "sortable": self.type not in ("textarea", "multipicklist"),
            "type": self.type,
            "unique": False,
            "updateable": self.updateable,
        }


@dataclass(frozen=True)
class CustomFieldSpec:
    """A CustomField as the Metadata API creates, reads and updates it.

    ``full_name`` is ``"Account.Segsync_Tier__c"``; ``type`` one of
    :data:`CUSTOM_FIELD_TYPES` (Metadata API names such as Text, Number,
    Picklist, LongTextArea, DateTime, Checkbox).
    """

    full_name: str
    type: str
    label: str
    description: str = ""
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    picklist_values: tuple[str, ...] = ()
    restricted: bool = False
    visible_lines: int | None = None
    default_value: str | None = None
    inline_help_text: str | None = None
    required: bool = False
    track_history: bool = False

    @property
    def sobject(self) -> str:
        """The object part of ``full_name``."""
        return self.full_name.split(".", 1)[0]

    @property
    def field_name(self) -> str:
        """The field part of ``full_name``."""
        return self.full_name.split(".", 1)[-1]


CUSTOM_FIELD_TYPES = frozenset(
    {
        "Text",
        "TextArea",
        "LongTextArea",
        "Number",
        "Currency",
        "Percent",
        "Picklist",
        "MultiselectPicklist",
        "Checkbox",
        "Date",
        "DateTime",
        "Email",
        "Phone",
        "Url",
    }
)


class SchemaError(Exception):
    """A metadata change Salesforce would refuse (``status_code`` as in a Metadata SaveResult)."""

    def __init__(self, status_code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.fields = list(fields)


@dataclass(frozen=True)
class SaveError:
    """One error of a SaveResult: ``{"statusCode","message","fields"}``."""

    status_code: str
    message: str
    fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As in a REST SaveResult."""
        return {
            "statusCode": self.status_code,
            "message": self.message,
            "fields": list(self.fields),
        }


class RecordError(Exception):
    """A write Salesforce would refuse for this record; ``errors`` lists every problem found."""

    def __init__(
        self,
        status_code: str,
        message: str,
        fields: Sequence[str] = (),
        *,
        more: Sequence[SaveError] = (),
    ) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.fields = list(fields)
        self.errors = [SaveError(status_code, message, tuple(fields)), *more]

    @classmethod
    def of(cls, errors: Sequence[SaveError]) -> RecordError:
        """One exception carrying several errors (the first gives the main code)."""
        first = errors[0]
        return cls(first.status_code, first.message, first.fields, more=errors[1:])


@dataclass
class SaveResult:
    """The outcome of one record's write, as in a REST SaveResult."""

    id: str | None
    success: bool
    errors: list[SaveError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"id","success","errors"}``; failed results carry no ``id``, as documented.

        Callers match results to records by position (request order), never by id.
        """
        out: dict[str, Any] = {
            "success": self.success,
            "errors": [e.to_json() for e in self.errors],
        }
        if self.success and self.id is not None:
            out = {"id": self.id, **out}
        return out


class ApiLimitExceeded(Exception):
    """The daily API allocation is used up (403 REQUEST_LIMIT_EXCEEDED)."""


ROLLED_BACK = SaveError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone"
    " header",
)


# --------------------------------------------------------------------------- default schema
def _pl(*values: str, default: str | None = None) -> tuple[PicklistValue, ...]:
    return tuple(PicklistValue(v, v, True, v == default) for v in values)


def _system_fields() -> list[FieldDef]:
    def ro(name: str, ftype: str, label: str, length: int = 0) -> FieldDef:
        return FieldDef(
            name, ftype, label, length=length, updateable=False, createable=False, nillable=False
        )

    return [
        ro("Id", "id", "Record ID", 18),
        ro("IsDeleted", "boolean", "Deleted"),
        ro("CreatedDate", "datetime", "Created Date"),
        ro("LastModifiedDate", "datetime", "Last Modified Date"),
        ro("SystemModstamp", "datetime", "System Modstamp"),
        _user_ref("CreatedById", "Created By ID", "CreatedBy"),
        _user_ref("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
    ]


def _user_ref(name: str, label: str, relationship: str) -> FieldDef:
    return FieldDef(
        name,
        "reference",
        label,
        length=18,
        updateable=False,
        createable=False,
        nillable=False,
        reference_to=("User",),
        relationship_name=relationship,
    )


def _history(parent: str) -> list[FieldDef]:
    """A field history object (``AccountHistory``): read-only rows, one per tracked change."""

    def ro(name: str, ftype: str, label: str, **kw: Any) -> FieldDef:
        return FieldDef(name, ftype, label, updateable=False, createable=False, **kw)

    return [
        ro("Id", "id", "History ID", length=18, nillable=False),
        ro("IsDeleted", "boolean", "Deleted", nillable=False),
        ro(
            f"{parent}Id",
            "reference",
            f"{parent} ID",
            length=18,
            nillable=False,
            reference_to=(parent,),
            relationship_name=parent,
        ),
        _user_ref("CreatedById", "Created By ID", "CreatedBy"),
        ro("CreatedDate", "datetime", "Created Date", nillable=False),
        ro("Field", "string", "Changed Field", length=255, nillable=False),
        ro("DataType", "string", "Data Type", length=255),
        ro("OldValue", "anyType", "Old Value"),
        ro("NewValue", "anyType", "New Value"),
    ]


def _owner() -> FieldDef:
    return FieldDef(
        "OwnerId",
        "reference",
        "Owner ID",
        length=18,
        nillable=False,
        reference_to=("User",),
        relationship_name="Owner",
    )


def _audit() -> list[FieldDef]:
    """CreatedById / LastModifiedById: every object has them, set by the platform."""
    return [
        FieldDef(
            name,
            "reference",
            label,
            length=18,
            updateable=False,
            createable=False,
            nillable=False,
            reference_to=("User",),
            relationship_name=name.removesuffix("Id"),
        )
        for name, label in (
            ("CreatedById", "Created By ID"),
            ("LastModifiedById", "Last Modified By ID"),
        )
    ]


def _address(prefix: str, label: str) -> list[FieldDef]:
    """The parts of a standard address (the compound ``...Address`` field is left out)."""
    return [
        FieldDef(f"{prefix}Street", "textarea", f"{label} Street", length=255),
        FieldDef(f"{prefix}City", "string", f"{label} City", length=40),
        FieldDef(f"{prefix}State", "string", f"{label} State/Province", length=80),
        FieldDef(f"{prefix}PostalCode", "string", f"{label} Zip/Postal Code", length=20),
        FieldDef(f"{prefix}Country", "string", f"{label} Country", length=80),
    ]


def _description(label: str) -> FieldDef:
    return FieldDef("Description", "textarea", label, length=32000, extra_type_info="plaintextarea")


def _last_activity() -> FieldDef:
    return FieldDef("LastActivityDate", "date", "Last Activity", updateable=False, createable=False)


def _lock() -> FieldDef:
    return FieldDef(
        "Segsync_Lock__c",
        "boolean",
        "Segsync Lock",
        custom=True,
        nillable=False,
        default_value=False,
        description="Pins the record: segsync leaves it alone.",
    )


LEAD_STATUS_VALUES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
LEAD_SOURCE_VALUES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")


def _lead() -> list[FieldDef]:
    """Lead: a person and the company they named, before qualification (standard fields)."""

    def ro(name: str, ftype: str, label: str, **kw: Any) -> FieldDef:
        return FieldDef(name, ftype, label, updateable=False, createable=False, **kw)

    return [
        *_system_fields()[:2],
        FieldDef("LastName", "string", "Last Name", length=80, nillable=False),
        FieldDef("FirstName", "string", "First Name", length=40),
        FieldDef(
            "Name",
            "string",
            "Full Name",
            length=121,
            updateable=False,
            createable=False,
            nillable=False,
            name_field=True,
        ),
        FieldDef("Title", "string", "Title", length=128),
        FieldDef("Company", "string", "Company", length=255, nillable=False),
        FieldDef("Street", "textarea", "Street", length=255),
        FieldDef("City", "string", "City", length=40),
        FieldDef("State", "string", "State/Province", length=80),
        FieldDef("PostalCode", "string", "Zip/Postal Code", length=20),
        FieldDef("Country", "string", "Country", length=80),
        FieldDef("Phone", "phone", "Phone", length=40),
        FieldDef("Email", "email", "Email", length=80),
        FieldDef("Website", "url", "Website", length=255),
        _description("Description"),
        FieldDef(
            "LeadSource",
            "picklist",
            "Lead Source",
            length=255,
            picklist_values=_pl(*LEAD_SOURCE_VALUES),
        ),
        FieldDef(
            "Status",
            "picklist",
            "Status",
            length=255,
            nillable=False,
            picklist_values=_pl(*LEAD_STATUS_VALUES, default="Open - Not Contacted"),
        ),
        FieldDef(
            "Industry", "picklist", "Industry", length=255, picklist_values=_pl(*INDUSTRY_VALUES)
        ),
        FieldDef(
            "Rating", "picklist", "Rating", length=255, picklist_values=_pl("Hot", "Warm", "Cold")
        ),
        FieldDef("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        FieldDef("NumberOfEmployees", "int", "Employees", digits=8),
        _owner(),
        # Set by lead conversion only, never by an update (the platform's own).
        ro("IsConverted", "boolean", "Converted", nillable=False, default_value=False),
        ro("ConvertedDate", "date", "Converted Date"),
        ro(
            "ConvertedAccountId",
            "reference",
            "Converted Account ID",
            length=18,
            reference_to=("Account",),
            relationship_name="ConvertedAccount",
        ),
        ro(
            "ConvertedContactId",
            "reference",
            "Converted Contact ID",
            length=18,
            reference_to=("Contact",),
            relationship_name="ConvertedContact",
        ),
        *_audit(),
        *_system_fields()[2:],
        _last_activity(),
        _lock(),
    ]


INDUSTRY_VALUES = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
)
TECH_STACK_VALUES = TECH_STACK
SENIORITY_VALUES = SENIORITIES


def default_schema() -> dict[str, list[FieldDef]]:
    """The fields of a fresh org: standard fields plus the customer's own custom inputs."""
    account = [
        *_system_fields()[:2],
        FieldDef("Name", "string", "Account Name", length=255, nillable=False, name_field=True),
        FieldDef(
            "Type",
            "picklist",
            "Account Type",
            length=255,
            picklist_values=_pl(
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Channel Partner / Reseller",
                "Installation Partner",
                "Technology Partner",
                "Other",
            ),
        ),
        FieldDef(
            "ParentId",
            "reference",
            "Parent Account ID",
            length=18,
            reference_to=("Account",),
            relationship_name="Parent",
        ),
        FieldDef("AccountNumber", "string", "Account Number", length=40),
        FieldDef("Site", "string", "Account Site", length=80),
        *_address("Billing", "Billing"),
        *_address("Shipping", "Shipping"),
        FieldDef("Phone", "phone", "Account Phone", length=40),
        FieldDef("Fax", "phone", "Account Fax", length=40),
        FieldDef("Website", "url", "Website", length=255),
        FieldDef(
            "Industry",
            "picklist",
            "Industry",
            length=255,
            picklist_values=_pl(*INDUSTRY_VALUES),
        ),
        FieldDef("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        FieldDef("NumberOfEmployees", "int", "Employees", digits=8),
        _description("Account Description"),
        _owner(),
        *_audit(),
        *_system_fields()[2:],
        _last_activity(),
        FieldDef(
            "Tech_Stack__c",
            "multipicklist",
            "Tech Stack",
            length=4099,
            custom=True,
            picklist_values=_pl(*TECH_STACK_VALUES),
            visible_lines=4,
        ),
        FieldDef("Intent_Score__c", "double", "Intent Score", precision=3, scale=0, custom=True),
        _lock(),
    ]
    contact = [
        *_system_fields()[:2],
        FieldDef(
            "AccountId",
            "reference",
            "Account ID",
            length=18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        FieldDef("LastName", "string", "Last Name", length=80, nillable=False),
        FieldDef("FirstName", "string", "First Name", length=40),
        FieldDef(
            "Name",
            "string",
            "Full Name",
            length=121,
            updateable=False,
            createable=False,
            nillable=False,
            name_field=True,
        ),
        FieldDef("Title", "string", "Title", length=128),
        FieldDef("Department", "string", "Department", length=80),
        FieldDef("Email", "email", "Email", length=80),
        FieldDef("Phone", "phone", "Business Phone", length=40),
        FieldDef("MobilePhone", "phone", "Mobile Phone", length=40),
        *_address("Mailing", "Mailing"),
        _description("Contact Description"),
        FieldDef(
            "LeadSource",
            "picklist",
            "Lead Source",
            length=255,
            picklist_values=_pl(
                "Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"
            ),
        ),
        _owner(),
        *_audit(),
        *_system_fields()[2:],
        _last_activity(),
        FieldDef(
            "Seniority__c",
            "picklist",
            "Seniority",
            length=255,
            custom=True,
            picklist_values=_pl(*SENIORITY_VALUES),
        ),
        _lock(),
    ]
    lead = _lead()
    opportunity = [
        *_system_fields()[:2],
        FieldDef(
            "AccountId",
            "reference",
            "Account ID",
            length=18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        FieldDef("Name", "string", "Name", length=120, nillable=False, name_field=True),
        FieldDef(
            "StageName",
            "picklist",
            "Stage",
            length=255,
            nillable=False,
            picklist_values=_pl(*(name for name, _, _, _ in SALESFORCE_STAGES)),
        ),
        FieldDef("Amount", "currency", "Amount", precision=18, scale=2),
        FieldDef("Probability", "percent", "Probability (%)", precision=3, scale=0),
        FieldDef("CloseDate", "date", "Close Date", nillable=False),
        FieldDef(
            "Type",
            "picklist",
            "Opportunity Type",
            length=255,
            picklist_values=_pl("Existing Business", "New Business"),
        ),
        # Set by the platform from the stage (OpportunityStage): read-only.
        FieldDef("IsClosed", "boolean", "Closed", updateable=False, createable=False),
        FieldDef("IsWon", "boolean", "Won", updateable=False, createable=False),
        _description("Description"),
        _owner(),
        *_audit(),
        *_system_fields()[2:],
        FieldDef(
            "Loss_Reason__c",
            "picklist",
            "Loss Reason",
            length=255,
            custom=True,
            picklist_values=_pl(*LOSS_REASONS),
        ),
    ]
    user = [
        *_system_fields()[:1],
        FieldDef("Username", "string", "Username", length=80, nillable=False),
        FieldDef("Name", "string", "Full Name", length=121, updateable=False, name_field=True),
        FieldDef("Email", "email", "Email", length=128, nillable=False),
        FieldDef("IsActive", "boolean", "Active", nillable=False),
        *_system_fields()[2:],
    ]
    permission_set = [
        *_system_fields()[:1],
        FieldDef(
            "Name",
            "string",
            "Name",
            length=80,
            nillable=False,
            createable=False,
            updateable=False,
            name_field=True,
        ),
        FieldDef(
            "Label",
            "string",
            "Label",
            length=80,
            nillable=False,
            createable=False,
            updateable=False,
        ),
        FieldDef(
            "Description", "string", "Description", length=255, createable=False, updateable=False
        ),
        FieldDef(
            "IsOwnedByProfile",
            "boolean",
            "Is Owned By Profile",
            nillable=False,
            createable=False,
            updateable=False,
            default_value=False,
        ),
        *_system_fields()[2:],
    ]
    assignment = [
        *_system_fields()[:1],
        FieldDef(
            "AssigneeId",
            "reference",
            "Assignee ID",
            length=18,
            nillable=False,
            updateable=False,
            reference_to=("User",),
            relationship_name="Assignee",
        ),
        FieldDef(
            "PermissionSetId",
            "reference",
            "Permission Set ID",
            length=18,
            nillable=False,
            updateable=False,
            reference_to=("PermissionSet",),
            relationship_name="PermissionSet",
        ),
        *_system_fields()[4:],
    ]
    return {
        "Account": account,
        "Contact": contact,
        "Lead": lead,
        "Opportunity": opportunity,
        "User": user,
        "PermissionSet": permission_set,
        "PermissionSetAssignment": assignment,
        "AccountHistory": _history("Account"),
        "ContactHistory": _history("Contact"),
        "LeadHistory": _history("Lead"),
    }


OBJECT_LABELS = {
    "Account": ("Account", "Accounts"),
    "Contact": ("Contact", "Contacts"),
    "Lead": ("Lead", "Leads"),
    "Opportunity": ("Opportunity", "Opportunities"),
    "User": ("User", "Users"),
    "PermissionSet": ("Permission Set", "Permission Sets"),
    "PermissionSetAssignment": ("Permission Set Assignment", "Permission Set Assignments"),
    "AccountHistory": ("Account History", "Account History"),
    "ContactHistory": ("Contact History", "Contact History"),
    "LeadHistory": ("Lead History", "Lead History"),
}


# --------------------------------------------------------------------------- the org
class Org:
    """An in-memory Salesforce org: schema, records, deletes, API usage. Thread-safe (one lock).

    Args:
        daily_api_limit: the DailyApiRequests allocation.
        api_version: the newest API version served.
        faults: where per-record faults (row locks, validation failures) come from;
            the app sets it to its own FaultState.
        clock: seconds since the epoch (tests may pass a fake).
        replication_days: how far back getUpdated reaches (documented: 30 days).
        deleted_days: how far back getDeleted reaches (documented: 15 days).

    """

    def __init__(
        self,
        *,
        daily_api_limit: int = 100_000,
        api_version: str = API_VERSION,
        faults: FaultState | None = None,
        clock: Callable[[], float] = time.time,
        replication_days: int = 30,
        deleted_days: int = 15,
    ) -> None:
        self.api_version = api_version
        self.daily_api_limit = daily_api_limit
        self.faults = faults
        self.clock = clock
        self.replication_days = replication_days
        self.deleted_days = deleted_days
        #: Field-level security of the integration user (see :mod:`.access`).
        self.access = FieldAccess()
        #: Active assignment rules, as the owner each routes a record to, by object
        #: (``{"Lead": user id}``): applied to API writes that ask for them.
        self.assignment_rules: dict[str, str] = {}
        #: Daily counters other than API requests (``/limits`` names), used so far.
        self._limits_used: dict[str, int] = {}
        self._lock = threading.RLock()
        self._fields: dict[str, dict[str, FieldDef]] = {}
        self._field_lookup: dict[str, dict[str, str]] = {}
        for sobject, defs in default_schema().items():
            self._fields[sobject] = {f.name: f for f in defs}
            self._field_lookup[sobject] = {f.name.lower(): f.name for f in defs}
        self._custom_specs: dict[str, CustomFieldSpec] = {}
        #: When each object's metadata last changed (a field created, changed or
        #: deleted): what describe's ``If-Modified-Since`` compares with.
        self._schema_changed: dict[str, float] = dict.fromkeys(self._fields, clock())
        self._records: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in self._fields}
        self._deleted: dict[str, dict[str, str]] = {s: {} for s in self._fields}
        self._next_number: dict[str, int] = {s: 1 for s in self._fields}
        # Both history objects share the 017 key prefix: keep their ids apart.
        self._next_number["ContactHistory"] = 36**8
        self._next_number["LeadHistory"] = 2 * 36**8
        self._last_stamp_ms = 0
        self._api_used = 0
        self._journal = threading.local()
        self._insert_user()

    def _insert_user(self) -> None:
        stamp = self._stamp()
        for user_id, username, name in (
            (USER_ID, USERNAME, "Segsync Integration"),
            (UI_USER_ID, UI_USERNAME, "Riley Rep"),
        ):
            self._records["User"][user_id] = {
                "Id": user_id,
                "Username": username,
                "Name": name,
                "Email": username,
                "IsActive": True,
                "CreatedDate": stamp,
                "LastModifiedDate": stamp,
                "SystemModstamp": stamp,
                "CreatedById": USER_ID,
                "LastModifiedById": USER_ID,
            }

    # ------------------------------------------------------------------ clock / stamps
    def now(self) -> datetime:
        """The org's current time (UTC)."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def _stamp(self) -> str:
        # Whole seconds, as Salesforce keeps SystemModstamp and LastModifiedDate (the
        # milliseconds are always .000): writes in the same second share the stamp.
        # Never behind an earlier stamp, should the clock step back.
        with self._lock:
            now_ms = int(self.clock()) * 1000
            self._last_stamp_ms = max(now_ms, self._last_stamp_ms)
            return format_epoch_ms(self._last_stamp_ms)

    # ------------------------------------------------------------------ schema
    def sobjects(self) -> list[str]:
        """The object names, in describe order."""
        return list(self._fields)

    def has_sobject(self, sobject: str) -> bool:
        """True when the object exists (exact API name)."""
        return sobject in self._fields

    def canonical_sobject(self, name: str) -> str | None:
        """The object's API name for a case-insensitive ``name`` (None when unknown)."""
        for sobject in self._fields:
            if sobject.lower() == name.lower():
                return sobject
        return None

    def fields(self, sobject: str) -> list[FieldDef]:
        """The object's fields, in describe order."""
        with self._lock:
            return list(self._fields[sobject].values())

    def field(self, sobject: str, name: str) -> FieldDef | None:
        """A field by case-insensitive name (None when absent)."""
        with self._lock:
            canonical = self._field_lookup.get(sobject, {}).get(name.lower())
            return self._fields[sobject][canonical] if canonical else None

    def _as_seen(self, sobject: str, f: FieldDef) -> FieldDef | None:
        """``f`` as the integration user sees it: None when hidden, read-only without edit."""
        readable, editable = self.access.access(sobject, f.name)
        if not readable:
            return None
        if not editable and (f.updateable or f.createable):
            return replace(f, updateable=False, createable=False)
        return f

    def visible_fields(self, sobject: str) -> list[FieldDef]:
        """The fields the integration user can see (field-level security), in describe order."""
        with self._lock:
            seen = (self._as_seen(sobject, f) for f in self._fields[sobject].values())
            return [f for f in seen if f is not None]

    def visible_field(self, sobject: str, name: str) -> FieldDef | None:
        """A field the integration user can see, by case-insensitive name (None otherwise)."""
        with self._lock:
            found = self.field(sobject, name)
            return self._as_seen(sobject, found) if found is not None else None

    def describe(self, sobject: str) -> dict[str, Any]:
        """The REST ``/sobjects/{sobject}/describe`` body (fields as the integration user sees)."""
        label, plural = OBJECT_LABELS.get(sobject, (sobject, sobject + "s"))
        base = f"/services/data/v{self.api_version}/sobjects/{sobject}"
        fields = [f.to_describe() for f in self.visible_fields(sobject)]
        child: list[dict[str, Any]] = []
        if sobject == "Account":
            child.extend(
                {
                    "cascadeDelete": False,
                    "childSObject": child_sobject,
                    "deprecatedAndHidden": False,
                    "field": "AccountId",
                    "junctionIdListNames": [],
                    "junctionReferenceTo": [],
                    "relationshipName": relationship,
                    "restrictedDelete": False,
                }
                for child_sobject, relationship in (
                    ("Contact", "Contacts"),
                    ("Opportunity", "Opportunities"),
                )
            )
        return {
            **self._object_summary(sobject),
            "actionOverrides": [],
            "childRelationships": child,
            "compactLayoutable": True,
            "defaultImplementation": None,
            "extendedBy": None,
            "extendsInterfaces": None,
            "fields": fields,
            "implementedBy": None,
            "implementsInterfaces": None,
            "isInterface": False,
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [],
            "searchLayoutable": True,
            "supportedScopes": [{"label": "All " + plural.lower(), "name": "everything"}],
            "urls": {
                "compactLayouts": base + "/describe/compactLayouts",
                "rowTemplate": base + "/{ID}",
                "describe": base + "/describe",
                "sobject": base,
                "uiDetailTemplate": None,
                "uiEditTemplate": None,
                "uiNewRecord": None,
            },
            "label": label,
            "labelPlural": plural,
        }

    def _object_summary(self, sobject: str) -> dict[str, Any]:
        label, plural = OBJECT_LABELS.get(sobject, (sobject, sobject + "s"))
        base = f"/services/data/v{self.api_version}/sobjects/{sobject}"
        return {
            "activateable": False,
            "createable": True,
            "custom": False,
            "customSetting": False,
            "deepCloneable": False,
            "deletable": sobject != "User",
            "deprecatedAndHidden": False,
            "feedEnabled": True,
            "hasSubtypes": False,
            "isSubtype": False,
            "keyPrefix": KEY_PREFIXES.get(sobject),
            "label": label,
            "labelPlural": plural,
            "layoutable": True,
            "mergeable": sobject != "User",
            "mruEnabled": True,
            "name": sobject,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": sobject != "User",
            "updateable": True,
            "urls": {
                "rowTemplate": base + "/{ID}",
                "defaultValues": base + "/defaultValues?recordTypeId&fields",
                "describe": base + "/describe",
                "sobject": base,
            },
        }

    def global_describe(self) -> dict[str, Any]:
        """The REST ``/sobjects/`` body."""
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [self._object_summary(s) for s in self._fields],
        }

    def _field_from_spec(self, spec: CustomFieldSpec) -> FieldDef:
        """Validate a CustomField the way the Metadata API does and build its describe view."""
        name = spec.field_name
        if not _CUSTOM_NAME_RE.fullmatch(name):
            raise SchemaError(
                "INVALID_NAME" if name.endswith("__c") else "INVALID_FIELD",
                f"The API name {name!r} is not valid: it must end in __c, begin with a letter, "
                "use only letters, digits and single underscores, and not end with an underscore.",
                ["fullName"],
            )
        if len(name) - 3 > 40:
            raise SchemaError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"The API name {name} is too long: at most 40 characters before __c.",
                ["fullName"],
            )
        if not spec.label or len(spec.label) > 40:
            raise SchemaError(
                "FIELD_INTEGRITY_EXCEPTION",
                "Field Label: a label of 1 to 40 characters is required",
                ["label"],
            )
        if spec.type not in CUSTOM_FIELD_TYPES:
            raise SchemaError(
                "FIELD_INTEGRITY_EXCEPTION", f"Unsupported field type: {spec.type}", ["type"]
            )

        def mk(ftype: str, **kw: Any) -> FieldDef:
            return FieldDef(
                name,
                ftype,
                spec.label,
                custom=True,
                description=spec.description,
                inline_help=spec.inline_help_text or "",
                track_history=spec.track_history,
                **kw,
            )

        t = spec.type
        if t in ("Text", "Email", "Phone", "Url", "TextArea"):
            fixed = {"Email": 80, "Phone": 40, "Url": 255, "TextArea": 255}
            length = fixed.get(t, spec.length or 0)
            if not 1 <= length <= 255:
                raise SchemaError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Length: the length must be between 1 and 255",
                    ["length"],
                )
            ftype = {"Text": "string", "Email": "email", "Phone": "phone", "Url": "url"}.get(
                t, "textarea"
            )
            return mk(ftype, length=length)
        if t == "LongTextArea":
            length = spec.length or 0
            if not 256 <= length <= 131_072:
                raise SchemaError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Length: a long text area's length must be between 256 and 131,072",
                    ["length"],
                )
            if spec.visible_lines is not None and not 2 <= spec.visible_lines <= 50:
                raise SchemaError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Visible Lines: must be between 2 and 50",
                    ["visibleLines"],
                )
            return mk(
                "textarea",
                length=length,
                extra_type_info="plaintextarea",
                visible_lines=spec.visible_lines or 3,
            )
        if t in ("Number", "Currency", "Percent"):
            precision = spec.precision if spec.precision is not None else 18
            scale = spec.scale if spec.scale is not None else 0
            if not 1 <= precision <= 18 or not 0 <= scale <= precision:
                raise SchemaError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Precision must be between 1 and 18 and scale between 0 and the precision",
                    ["precision", "scale"],
                )
            ftype = {"Number": "double", "Currency": "currency", "Percent": "percent"}[t]
            return mk(ftype, precision=precision, scale=scale)
        if t in ("Picklist", "MultiselectPicklist"):
            values = list(spec.picklist_values)
            if not values:
                raise SchemaError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Picklist: at least one value is required",
                    ["valueSet"],
                )
            if len(set(values)) != len(values):
                dup = next(v for v in values if values.count(v) > 1)
                raise SchemaError(
                    "DUPLICATE_VALUE",
                    f"Duplicate picklist value: {dup}",
                    ["valueSet"],
                )
            if spec.restricted and len(values) > 1000:
                raise SchemaError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "A restricted picklist can have at most 1,000 values",
                    ["valueSet"],
                )
            too_long = [v for v in values if not v or len(v) > 255]
            if too_long:
                raise SchemaError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"Picklist value must be 1 to 255 characters: {too_long[0]!r}",
                    ["valueSet"],
                )
            ftype = "picklist" if t == "Picklist" else "multipicklist"
            return mk(
                ftype,
                length=255 if t == "Picklist" else 4099,
                picklist_values=_pl(*values),
                restricted=spec.restricted,
                visible_lines=spec.visible_lines if t != "Picklist" else None,
            )
        if t == "Checkbox":
            if spec.default_value is None or spec.default_value.lower() not in ("true", "false"):
                raise SchemaError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Checkbox fields require a default value of true or false",
                    ["defaultValue"],
                )
            return mk(
                "boolean",
                nillable=False,
                default_value=spec.default_value.lower() == "true",
            )
        ftype = {"Date": "date", "DateTime": "datetime"}[t]
        return mk(ftype)

    def _check_target(self, sobject: str, spec: CustomFieldSpec) -> str:
        target = spec.sobject if "." in spec.full_name else sobject
        if "." in spec.full_name and sobject and target != sobject:
            raise SchemaError(
                "INVALID_CROSS_REFERENCE_KEY",
                f"fullName {spec.full_name} does not belong to {sobject}",
                ["fullName"],
            )
        if target not in HISTORY_OBJECTS:
            raise SchemaError(
                "INVALID_CROSS_REFERENCE_KEY",
                f"In field: fullName - no CustomObject named {target} found",
                ["fullName"],
            )
        return target

    def _check_tracking(self, target: str, definition: FieldDef) -> None:
        """At most :data:`MAX_TRACKED_FIELDS` fields of an object keep field history."""
        if not definition.track_history:
            return
        tracked = {f.name for f in self._fields[target].values() if f.track_history} | {
            definition.name
        }
        if len(tracked) > MAX_TRACKED_FIELDS:
            raise SchemaError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"You can track the history of at most {MAX_TRACKED_FIELDS} fields on {target}",
                ["trackHistory"],
            )

    def add_custom_field(
        self, sobject: str, spec: CustomFieldSpec, *, restricted: bool = False
    ) -> None:
        """Create a custom field; raises SchemaError.

        ``restricted`` (what the Metadata API's createMetadata does) leaves the field
        invisible to the integration user until a permission set grants it; without
        it the field is visible, as if an admin had created and granted it.
        """
        target = self._check_target(sobject, spec)
        definition = self._field_from_spec(spec)
        with self._lock:
            self._check_tracking(target, definition)
            if definition.name.lower() in self._field_lookup[target]:
                raise SchemaError(
                    "DUPLICATE_DEVELOPER_NAME",
                    f"There is already a field named {definition.name} on {target}.",
                    ["fullName"],
                )
            self._fields[target][definition.name] = definition
            self._field_lookup[target][definition.name.lower()] = definition.name
            self._custom_specs[f"{target}.{definition.name}"] = replace(
                spec, full_name=f"{target}.{definition.name}"
            )
            self._schema_changed[target] = self.clock()
            if restricted:
                self.access.restrict(f"{target}.{definition.name}")

    def delete_custom_field(self, full_name: str) -> None:
        """Delete a custom field and its values (as deleteMetadata does); raises SchemaError."""
        sobject, _, name = full_name.partition(".")
        with self._lock:
            target = self.canonical_sobject(sobject)
            canonical = self._field_lookup.get(target or "", {}).get(name.lower())
            if (
                target is None
                or canonical is None
                or f"{target}.{canonical}" not in self._custom_specs
            ):
                raise SchemaError(
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"In field: fullName - no CustomField named {full_name} found",
                    ["fullName"],
                )
            del self._fields[target][canonical]
            del self._field_lookup[target][canonical.lower()]
            del self._custom_specs[f"{target}.{canonical}"]
            for row in self._records[target].values():
                row.pop(canonical, None)
            self._schema_changed[target] = self.clock()

    def set_field_access(self, full_name: str, readable: bool, editable: bool) -> None:
        """Change the integration user's field-level security of one field (Setup).

        Not a metadata change: describe's ``If-Modified-Since`` still answers 304.
        """
        with self._lock:
            self.access.set_access(full_name, readable, editable)

    def schema_changed(self, sobject: str) -> float:
        """When the object's metadata last changed (epoch seconds)."""
        with self._lock:
            return self._schema_changed[sobject]

    def update_custom_field(self, sobject: str, spec: CustomFieldSpec) -> None:
        """Replace a custom field's definition (Metadata API updateMetadata); raises SchemaError.

        Picklist values left out of the new value set become inactive, as in Salesforce:
        records keep their stored values, new writes must use an active value.
        """
        target = self._check_target(sobject, spec)
        definition = self._field_from_spec(spec)
        with self._lock:
            key = f"{target}.{definition.name}"
            if key not in self._custom_specs:
                raise SchemaError(
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"In field: fullName - no CustomField named {key} found",
                    ["fullName"],
                )
            old = self._fields[target][definition.name]
            self._check_tracking(target, definition)
            if old.type != definition.type and {old.type, definition.type} != {
                "string",
                "textarea",
            }:
                convertible = {"picklist", "multipicklist", "string", "textarea"}
                if not {old.type, definition.type} <= convertible:
                    raise SchemaError(
                        "FIELD_INTEGRITY_EXCEPTION",
                        f"Cannot change the type of {key} from {old.type} to {definition.type}",
                        ["type"],
                    )
            if definition.picklist_values:
                kept = {p.value for p in definition.picklist_values}
                retired = tuple(
                    replace(p, active=False) for p in old.picklist_values if p.value not in kept
                )
                definition = replace(
                    definition, picklist_values=definition.picklist_values + retired
                )
            self._fields[target][definition.name] = definition
            self._custom_specs[key] = replace(spec, full_name=key)
            self._schema_changed[target] = self.clock()

    def read_custom_field(self, full_name: str) -> CustomFieldSpec | None:
        """A custom field's spec as last created / updated (None when it does not exist)."""
        sobject, _, name = full_name.partition(".")
        with self._lock:
            canonical_obj = self.canonical_sobject(sobject)
            if canonical_obj is None:
                return None
            canonical = self._field_lookup[canonical_obj].get(name.lower())
            if canonical is None:
                return None
            return self._custom_specs.get(f"{canonical_obj}.{canonical}")

    def custom_field_specs(self) -> list[CustomFieldSpec]:
        """Every custom field created through the Metadata API."""
        with self._lock:
            return list(self._custom_specs.values())

    # ------------------------------------------------------------------ permission sets
    def upsert_permission_set(
        self,
        name: str,
        label: str,
        description: str,
        permissions: Sequence[FieldPermission],
        *,
        create: bool | None = None,
    ) -> bool:
        """Create or replace a permission set (Metadata API); True when it was created.

        ``create`` True refuses an existing name, False a missing one, None takes
        either (upsert). The field permissions replace the set's previous ones.
        Raises SchemaError as the Metadata API reports problems.
        """
        if not PERMISSION_SET_NAME.fullmatch(name) or len(name) > MAX_PERMISSION_SET_NAME:
            raise SchemaError(
                "INVALID_NAME" if name else "REQUIRED_FIELD_MISSING",
                f"The API name {name!r} is not valid: it must begin with a letter and use only "
                "letters, digits and single underscores (at most 80 characters).",
                ["fullName"],
            )
        if not label or len(label) > MAX_PERMISSION_SET_LABEL:
            raise SchemaError(
                "REQUIRED_FIELD_MISSING" if not label else "STRING_TOO_LONG",
                "Label: a label of 1 to 80 characters is required",
                ["label"],
            )
        checked: dict[str, FieldPermission] = {}
        with self._lock:
            for perm in permissions:
                sobject, _, field_name = perm.field.partition(".")
                target = self.canonical_sobject(sobject)
                found = self.field(target, field_name) if target else None
                if target is None or found is None:
                    raise SchemaError(
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"In field: field - no CustomField named {perm.field} found",
                        ["fieldPermissions"],
                    )
                if perm.editable and not perm.readable:
                    raise SchemaError(
                        "FIELD_INTEGRITY_EXCEPTION",
                        f"Permission Edit depends on permission(s): Read ({perm.field})",
                        ["fieldPermissions"],
                    )
                full = f"{target}.{found.name}"
                checked[full.lower()] = FieldPermission(full, perm.readable, perm.editable)
            existing = self.access.permission_sets.get(name.lower())
            if existing is None and create is False:
                raise SchemaError(
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"In field: fullName - no PermissionSet named {name} found",
                    ["fullName"],
                )
            if existing is not None and create is True:
                raise SchemaError(
                    "DUPLICATE_DEVELOPER_NAME",
                    f"There is already a permission set named {name}.",
                    ["fullName"],
                )
            values = {"Name": name, "Label": label, "Description": description or None}
            if existing is None:
                record_id = self.insert("PermissionSet", values)
                ps = PermissionSet(record_id, name, label, description, checked)
                self.access.permission_sets[name.lower()] = ps
            else:
                existing.label, existing.description = label, description
                existing.field_permissions = checked
                self._apply("PermissionSet", existing.id, values, self._stamp())
            self.access.recompute(USER_ID)
            return existing is None

    def read_permission_set(self, name: str) -> PermissionSet | None:
        """A permission set by API name (case-insensitive), None when there is none."""
        with self._lock:
            return self.access.permission_sets.get(name.lower())

    def _create_assignment(self, fields: Mapping[str, Any]) -> str:
        """Insert a PermissionSetAssignment as the REST API would; returns its Id."""
        values = self.validate("PermissionSetAssignment", fields, create=True)
        missing = [n for n in ("AssigneeId", "PermissionSetId") if not values.get(n)]
        if missing:
            raise RecordError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        if not self.access.can_assign:
            raise RecordError(
                "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                "insufficient access rights on cross-reference id: the user needs the "
                "Assign Permission Sets permission",
            )
        assignee, ps_id = str(values["AssigneeId"]), str(values["PermissionSetId"])
        if self.access.assigned(assignee, ps_id):
            raise RecordError(
                "DUPLICATE_VALUE",
                "duplicate value found: <unknown> duplicates value on record with id: <unknown>",
            )
        record_id = self.insert("PermissionSetAssignment", values)
        self.access.assignments[record_id] = (assignee, ps_id)
        self.access.recompute(USER_ID)
        return record_id

    # ------------------------------------------------------------------ loading
    def insert(self, sobject: str, fields: Mapping[str, Any], *, user: str = UI_USER_ID) -> str:
        """Insert one record without API validation (data generation, tests); returns its Id.

        Assigns ``Id`` (unless given), ``CreatedDate`` (unless given), the modification
        stamps, ``IsDeleted``, ``OwnerId`` and ``CreatedById`` / ``LastModifiedById``
        (``user``: a person in the UI unless the API says otherwise); ``Name`` of a
        Contact is derived from its first and last names. Unknown field names raise
        ValueError.
        """
        with self._lock:
            record = self._prepare_insert(sobject, fields, user=user)
            self._records[sobject][record["Id"]] = record
            return str(record["Id"])

    def _prepare_insert(
        self,
        sobject: str,
        fields: Mapping[str, Any],
        stamp: str | None = None,
        names: dict[str, str] | None = None,
        defaults: list[tuple[str, bool]] | None = None,
        user: str = UI_USER_ID,
    ) -> dict[str, Any]:
        lookup = self._field_lookup[sobject]
        names = {} if names is None else names
        record: dict[str, Any] = {}
        for key, value in fields.items():
            canonical = names.get(key)
            if canonical is None:
                canonical = lookup.get(key.lower())
                if canonical is None:
                    raise ValueError(f"No such column '{key}' on sobject of type {sobject}")
                names[key] = canonical
            # Salesforce stores no empty strings: a blank is a null.
            if value is not None and value != "":
                record[canonical] = _to_wire(value)
        if "Id" not in record:
            table = self._records[sobject]
            while True:
                candidate = make_id(sobject, self._next_number[sobject])
                self._next_number[sobject] += 1
                if candidate not in table:
                    break
            record["Id"] = candidate
        if stamp is None:
            stamp = self._stamp()
        created = record.setdefault("CreatedDate", stamp)
        record.setdefault("LastModifiedDate", stamp if stamp >= created else created)
        record.setdefault("SystemModstamp", record["LastModifiedDate"])
        record.setdefault("IsDeleted", False)
        if "LastModifiedById" in self._fields[sobject]:
            record.setdefault("CreatedById", user)
            record.setdefault("LastModifiedById", user)
        if "OwnerId" in self._fields[sobject]:
            record.setdefault("OwnerId", USER_ID)
        if "CreatedById" in self._fields[sobject]:
            # The platform sets both; the sandbox has one user.
            record.setdefault("CreatedById", USER_ID)
            record.setdefault("LastModifiedById", USER_ID)
        for name, default in self._boolean_defaults(sobject) if defaults is None else defaults:
            record.setdefault(name, default)
        if sobject in ("Contact", "Lead"):
            record["Name"] = _full_name(record)
        return record

    def _boolean_defaults(self, sobject: str) -> list[tuple[str, bool]]:
        return [
            (f.name, bool(f.default_value))
            for f in self._fields[sobject].values()
            if f.type == "boolean" and f.default_value is not None
        ]

    def load_records(self, sobject: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert many records (no API counting, no validation); returns how many.

        Records loaded by one call share one modification stamp (unless the rows carry
        their own), like records saved in one transaction.
        """
        count = 0
        names: dict[str, str] = {}
        with self._lock:
            stamp = self._stamp()
            defaults = self._boolean_defaults(sobject)
            table = self._records[sobject]
            for row in rows:
                record = self._prepare_insert(sobject, row, stamp, names, defaults)
                table[record["Id"]] = record
                count += 1
        return count

    def load_accounts(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Bulk-load Account rows (see :meth:`insert`)."""
        return self.load_records("Account", rows)

    def load_contacts(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Bulk-load Contact rows (see :meth:`insert`)."""
        return self.load_records("Contact", rows)

    # ------------------------------------------------------------------ reading
    def _resolve_id(self, sobject: str, record_id: str) -> str | None:
        table = self._records[sobject]
        if record_id in table:
            return record_id
        if len(record_id) == 15:
            full = record_id + id_checksum(record_id)
            if full in table:
                return full
        if len(record_id) == 18 and record_id[:15] + id_checksum(record_id[:15]) in table:
            return record_id[:15] + id_checksum(record_id[:15])
        return None

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A copy of the record, deleted or not (None when unknown)."""
        with self._lock:
            resolved = self._resolve_id(sobject, record_id)
            return dict(self._records[sobject][resolved]) if resolved else None

    def get_live(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The stored record itself (do not mutate), for the query engine's parent lookups."""
        resolved = self._resolve_id(sobject, record_id)
        return self._records[sobject][resolved] if resolved else None

    def records(self, sobject: str, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Every record of the object in the order made: Id order, but for history rows.

        Stored dicts: do not mutate.

        Takes a snapshot of the record list first, so writes during iteration are safe.
        """
        with self._lock:
            snapshot = list(self._records[sobject].values())
        for record in snapshot:
            if include_deleted or not record.get("IsDeleted"):
                yield record

    def count(self, sobject: str, include_deleted: bool = False) -> int:
        """How many records the object holds."""
        with self._lock:
            if include_deleted:
                return len(self._records[sobject])
            return len(self._records[sobject]) - len(self._deleted[sobject])

    # ------------------------------------------------------------------ writing
    def check_id(self, sobject: str, record_id: Any) -> str:
        """Resolve an id for a write; raise RecordError as Salesforce would."""
        if record_id is None or record_id == "":
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
        if not isinstance(record_id, str) or not _ID_RE.fullmatch(record_id):
            raise RecordError(
                "MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {record_id}", ["Id"]
            )
        if record_id[:3] != KEY_PREFIXES.get(sobject):
            raise RecordError(
                "MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {record_id}", ["Id"]
            )
        resolved = self._resolve_id(sobject, record_id)
        if resolved is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if self._records[sobject][resolved].get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        if sobject == "Lead" and self._records[sobject][resolved].get("IsConverted"):
            # A converted lead is read-only: the API refuses any update of it
            # with this code and message (docs/crm-apis.md, "Leads").
            raise RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        return resolved

    def validate(
        self, sobject: str, fields: Mapping[str, Any], *, create: bool = False
    ) -> dict[str, Any]:
        """Check field names and values for an update; return canonical name -> wire value.

        ``None`` values mean "clear the field". Raises RecordError listing every problem.
        Keys ``attributes`` and ``Id`` / ``id`` are ignored. With ``create``, fields are
        checked for createability and required fields must be present.
        """
        errors: list[SaveError] = []
        out: dict[str, Any] = {}
        defs = self._fields[sobject]
        lookup = self._field_lookup[sobject]
        for key, value in fields.items():
            if key == "attributes" or key.lower() == "id":
                continue
            canonical = lookup.get(key.lower())
            if canonical is None:
                errors.append(
                    SaveError(
                        "INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject}"
                    )
                )
                continue
            readable, editable = self.access.access(sobject, canonical)
            if not readable:
                # Field-level security hides the field: as if it did not exist.
                errors.append(
                    SaveError(
                        "INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject}"
                    )
                )
                continue
            fdef = defs[canonical]
            if not editable or not (fdef.createable if create else fdef.updateable):
                errors.append(
                    SaveError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {canonical}. Please check the security"
                        " settings of this field and verify that it is read/write for your"
                        " profile or permission set.",
                        (canonical,),
                    )
                )
                continue
            try:
                out[canonical] = self._coerce(sobject, fdef, value)
            except RecordError as exc:
                errors.extend(exc.errors)
        if create:
            missing = [
                f.name
                for f in defs.values()
                if f.createable
                and not f.nillable
                and f.type not in ("boolean", "reference")
                and out.get(f.name) is None
            ]
            if missing:
                errors.append(
                    SaveError(
                        "REQUIRED_FIELD_MISSING",
                        f"Required fields are missing: [{', '.join(missing)}]",
                        tuple(missing),
                    )
                )
        if errors:
            raise RecordError.of(errors)
        return out

    def create(self, sobject: str, fields: Mapping[str, Any], *, user: str = UI_USER_ID) -> str:
        """Validate and insert one record as the REST API would; returns its Id."""
        with self._lock:
            if sobject == "PermissionSetAssignment":
                return self._create_assignment(fields)
            if sobject in ("PermissionSet", "User"):
                raise RecordError(
                    "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                    f"The sandbox creates {sobject} records through the Metadata API or not at all",
                )
            values = self.validate(sobject, fields, create=True)
            if sobject == "Opportunity":
                # As on update: the platform derives IsClosed / IsWon from the stage.
                stage = _STAGES.get(str(values.get("StageName")))
                if stage is not None:
                    values["IsClosed"], values["IsWon"] = stage
            return self.insert(
                sobject, {k: v for k, v in values.items() if v is not None}, user=user
            )

    def _coerce(self, sobject: str, f: FieldDef, value: Any) -> Any:
        name = f.name
        wrong_type = RecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{f.label}: value not of required type: {value}",
            [name],
        )
        if value is None or (value == "" and f.type != "boolean"):
            if not f.nillable:
                if f.type == "boolean":
                    return False
                raise RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]
                )
            return None
        t = f.type
        if t in STRING_TYPES:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise wrong_type
            text = str(value)
            if t == "reference":
                target = f.reference_to[0] if f.reference_to else ""
                if not _ID_RE.fullmatch(text) or text[:3] != KEY_PREFIXES.get(target):
                    raise RecordError(
                        "MALFORMED_ID",
                        f"{f.label}: id value of incorrect type: {text}",
                        [name],
                    )
                resolved = self._resolve_id(target, text) if target in self._records else None
                if resolved is None:
                    raise RecordError(
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"{f.label}: id value of incorrect type: {text}",
                        [name],
                    )
                if self._records[target][resolved].get("IsDeleted"):
                    raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [name])
                return resolved
            if t == "picklist" and f.restricted and text not in f.active_values():
                raise RecordError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{f.label}: bad value for restricted picklist field: {text}",
                    [name],
                )
            if t == "multipicklist":
                parts = [p for p in text.split(";")]
                if f.restricted:
                    bad = [p for p in parts if p not in f.active_values()]
                    if bad:
                        raise RecordError(
                            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            f"{f.label}: bad value for restricted picklist field: {bad[0]}",
                            [name],
                        )
                if len(parts) > 100:
                    raise RecordError(
                        "FIELD_INTEGRITY_EXCEPTION",
                        f"{f.label}: more than 100 values selected",
                        [name],
                    )
            if t == "email" and not _EMAIL_RE.fullmatch(text):
                raise RecordError(
                    "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [name]
                )
            if f.length and len(text) > f.length:
                shown = text if len(text) <= 40 else text[:37] + "..."
                raise RecordError(
                    "STRING_TOO_LONG",
                    f"{f.label}: data value too large: {shown} (max length={f.length})",
                    [name],
                )
            return text
        if t == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise wrong_type
        if t in ("int", "double", "currency", "percent"):
            number: float | int
            if isinstance(value, bool):
                raise wrong_type
            if isinstance(value, int | float):
                number = value
            elif isinstance(value, str):
                try:
                    number = float(value) if any(c in value for c in ".eE") else int(value)
                except ValueError:
                    raise wrong_type from None
            else:
                raise wrong_type
            if isinstance(number, float) and not math.isfinite(number):
                raise wrong_type
            if t == "int":
                if isinstance(number, float) and not number.is_integer():
                    raise wrong_type
                number = int(number)
                if abs(number) >= 10 ** (f.digits or 9):
                    raise RecordError(
                        "NUMBER_OUTSIDE_VALID_RANGE",
                        f"{f.label}: value outside of valid range on numeric field: {value}",
                        [name],
                    )
                return number
            rounded = round(float(number), f.scale)
            if abs(rounded) >= 10 ** (f.precision - f.scale):
                raise RecordError(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"{f.label}: value outside of valid range on numeric field: {value}",
                    [name],
                )
            # Number / currency / percent fields read back as JSON doubles (42.0).
            return rounded
        if t == "date":
            if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
                raise wrong_type
            try:
                date.fromisoformat(value)
            except ValueError:
                raise wrong_type from None
            return value
        if t == "datetime":
            if not isinstance(value, str):
                raise wrong_type
            try:
                return format_datetime(parse_datetime(value))
            except ValueError:
                raise wrong_type from None
        raise wrong_type

    def _record_fault(self, record_id: str) -> None:
        if self.faults is None:
            return
        fault = self.faults.record_fault(record_id)
        if fault is None:
            return
        kind, message = fault
        if kind == "lock":
            raise RecordError("UNABLE_TO_LOCK_ROW", f"{message}: {record_id}")
        raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message)

    def _apply(
        self,
        sobject: str,
        record_id: str,
        values: Mapping[str, Any],
        stamp: str,
        user: str = UI_USER_ID,
    ) -> None:
        old = self._records[sobject][record_id]
        journal: dict[tuple[str, str], dict[str, Any] | None] | None = getattr(
            self._journal, "entries", None
        )
        if journal is not None:
            journal.setdefault((sobject, record_id), old)
        new = dict(old)
        for key, value in values.items():
            if value is None:
                new.pop(key, None)
            else:
                new[key] = value
        if sobject in ("Contact", "Lead"):
            new["Name"] = _full_name(new)
        if sobject == "Opportunity" and "StageName" in values:
            # The platform derives IsClosed / IsWon from the stage's OpportunityStage row.
            stage = _STAGES.get(str(new.get("StageName")))
            if stage is not None:
                new["IsClosed"], new["IsWon"] = stage
        new["LastModifiedDate"] = stamp
        new["SystemModstamp"] = stamp
        if "LastModifiedById" in self._fields[sobject]:
            new["LastModifiedById"] = USER_ID
            new["LastModifiedById"] = user
        self._records[sobject][record_id] = new
        self._track(sobject, record_id, old, new, stamp, user, journal)

    def _track(
        self,
        sobject: str,
        record_id: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        stamp: str,
        user: str,
        journal: dict[tuple[str, str], dict[str, Any] | None] | None,
    ) -> None:
        """Field history: one ``<Object>History`` row per tracked field whose value changed."""
        history = HISTORY_OBJECTS.get(sobject)
        if history is None:
            return
        for f in self._fields[sobject].values():
            if not f.track_history or old.get(f.name) == new.get(f.name):
                continue
            number = self._next_number[history]
            self._next_number[history] += 1
            base = number - number % HISTORY_SPAN
            row_id = make_id(history, base + number * HISTORY_STRIDE % HISTORY_SPAN)
            self._records[history][row_id] = {
                "Id": row_id,
                "IsDeleted": False,
                f"{sobject}Id": record_id,
                "CreatedById": user,
                "CreatedDate": stamp,
                "Field": f.name,
                "DataType": _HISTORY_TYPES.get(f.type, "Text"),
                "OldValue": old.get(f.name),
                "NewValue": new.get(f.name),
            }
            if journal is not None:
                journal.setdefault((history, row_id), None)

    def prepare_update(
        self, sobject: str, record_id: Any, fields: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Validate one update without applying it; return (resolved id, canonical values).

        Raises RecordError exactly as :meth:`update` would (including injected lock and
        validation faults).
        """
        with self._lock:
            resolved = self.check_id(sobject, record_id)
            values = self.validate(sobject, fields)
            self._record_fault(resolved)
            return resolved, values

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        user: str = UI_USER_ID,
        assign: bool = False,
    ) -> str:
        """Validate and apply one update, stamping LastModifiedDate / SystemModstamp.

        ``user`` becomes ``LastModifiedById`` (and the author of field history):
        by default a person editing in the UI; the API handlers pass the
        integration user. Returns the record's resolved 18-character id;
        raises RecordError.
        """
        with self._lock:
            resolved, values = self.prepare_update(sobject, record_id, fields)
            self._apply(
                sobject, resolved, self._assigned(sobject, values, assign), self._stamp(), user
            )
            return resolved

    def _assigned(self, sobject: str, values: dict[str, Any], assign: bool) -> dict[str, Any]:
        """``values`` plus the owner the object's active assignment rule gives, if applied.

        The REST API runs the active assignment rules on every created or updated
        lead unless the request says ``Sforce-Auto-Assign: FALSE``.
        """
        owner = self.assignment_rules.get(sobject) if assign else None
        return {**values, "OwnerId": owner} if owner else values

    def update_many(
        self,
        sobject: str | Sequence[str],
        items: Sequence[tuple[Any, Mapping[str, Any]]],
        *,
        all_or_none: bool = False,
        user: str = UI_USER_ID,
        assign: bool = False,
    ) -> list[SaveResult]:
        """Update several records in one transaction; one SaveResult per item, in order.

        ``sobject`` is one name for all items or one name per item. Records saved
        together share one modification stamp (as in a Salesforce transaction). With
        ``all_or_none`` one failure saves nothing: failed items carry their errors, the
        others ``ALL_OR_NONE_OPERATION_ROLLED_BACK``.
        """
        names = [sobject] * len(items) if isinstance(sobject, str) else list(sobject)
        results: list[SaveResult] = []
        staged: list[tuple[int, str, str, dict[str, Any]]] = []
        with self._lock:
            seen: set[tuple[str, str]] = set()
            for index, ((record_id, fields), name) in enumerate(zip(items, names, strict=True)):
                shown = record_id if isinstance(record_id, str) else None
                try:
                    resolved, values = self.prepare_update(name, record_id, fields)
                except RecordError as exc:
                    results.append(SaveResult(shown, False, list(exc.errors)))
                    continue
                if (name, resolved) in seen:
                    results.append(
                        SaveResult(
                            resolved,
                            False,
                            [SaveError("DUPLICATE_VALUE", f"Duplicate id in list: {resolved}")],
                        )
                    )
                    continue
                seen.add((name, resolved))
                results.append(SaveResult(resolved, True))
                staged.append((index, name, resolved, values))
            if all_or_none and len(staged) != len(items):
                for index, _, resolved, _ in staged:
                    results[index] = SaveResult(resolved, False, [ROLLED_BACK])
                return results
            if staged:
                stamp = self._stamp()
                for _, name, resolved, values in staged:
                    self._apply(name, resolved, self._assigned(name, values, assign), stamp, user)
        return results

    def convert_lead(self, record_id: str, *, user: str = UI_USER_ID) -> str:
        """Convert a lead as a rep does in the UI (``convertLead``): it becomes read-only.

        Sets ``IsConverted``, ``Status`` = "Closed - Converted" and ``ConvertedDate``;
        every later update of it answers ``CANNOT_UPDATE_CONVERTED_LEAD``. No account
        or contact is created (the sandbox leaves the converted-to ids blank).
        """
        with self._lock:
            resolved = self.check_id("Lead", record_id)
            values = {
                "IsConverted": True,
                "Status": "Closed - Converted",
                "ConvertedDate": self.now().date().isoformat(),
            }
            self._apply("Lead", resolved, values, self._stamp(), user)
            return resolved

    def delete(self, sobject: str, record_id: str, *, user: str = UI_USER_ID) -> str:
        """Soft-delete a record (IsDeleted, kept for queryAll and getDeleted); returns its id."""
        with self._lock:
            resolved = self.check_id(sobject, record_id)
            self._record_fault(resolved)
            stamp = self._stamp()
            self._apply(sobject, resolved, {"IsDeleted": True}, stamp, user)
            self._deleted[sobject][resolved] = stamp
            if self.access.assignments.pop(resolved, None) is not None:
                self.access.recompute(USER_ID)
            return resolved

    def undelete(self, sobject: str, record_id: str, *, user: str = UI_USER_ID) -> str:
        """Restore a record from the Recycle Bin (the UI's Restore, SOAP ``undelete()``).

        ``IsDeleted`` goes back to false and the stamps move, as on the platform
        (``getUpdated`` reports an undeleted record as updated); a record that is
        not in the Recycle Bin is refused with ``UNDELETE_FAILED``.
        """
        with self._lock:
            if not isinstance(record_id, str) or not _ID_RE.fullmatch(record_id):
                raise RecordError("MALFORMED_ID", f"{sobject} ID: id value of incorrect type")
            resolved = self._resolve_id(sobject, record_id)
            if resolved is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            if not self._records[sobject][resolved].get("IsDeleted"):
                raise RecordError("UNDELETE_FAILED", "Entity is not in the recycle bin")
            self._apply(sobject, resolved, {"IsDeleted": False}, self._stamp(), user)
            self._deleted[sobject].pop(resolved, None)
            return resolved

    # ------------------------------------------------------------------ transactions
    def begin(self) -> None:
        """Start journaling this thread's writes so :meth:`rollback` can undo them."""
        self._journal.entries = {}

    def commit(self) -> None:
        """Stop journaling; keep the writes."""
        self._journal.entries = None

    def rollback(self) -> None:
        """Undo this thread's writes since :meth:`begin` (composite allOrNone)."""
        with self._lock:
            entries: dict[tuple[str, str], dict[str, Any] | None] = (
                getattr(self._journal, "entries", None) or {}
            )
            for (sobject, record_id), old in entries.items():
                if old is None:  # a row the transaction created (field history)
                    self._records[sobject].pop(record_id, None)
                    continue
                self._records[sobject][record_id] = old
                if not old.get("IsDeleted"):
                    self._deleted[sobject].pop(record_id, None)
            self._journal.entries = None

    # ------------------------------------------------------------------ replication
    def replication_window(
        self, start: datetime, end: datetime, *, deleted: bool = False
    ) -> tuple[datetime, datetime]:
        """Check a getUpdated / getDeleted window; return (earliest available, latest covered).

        getUpdated reaches back ``replication_days`` (30), getDeleted ``deleted_days``
        (15); the start must come strictly before the end. Raises ValueError with
        Salesforce's message when the window is invalid.
        """
        now = self.now()
        days = self.deleted_days if deleted else self.replication_days
        earliest = now - timedelta(days=days)
        if end < start:
            raise ValueError("end date cannot be before start date")
        if end == start:
            raise ValueError("startDate must chronologically precede endDate")
        if start < earliest - timedelta(minutes=1):
            raise ValueError(f"startDate cannot be more than {days} days ago")
        latest = min(end, now).replace(second=0, microsecond=0)
        return earliest, latest

    def updated_ids(self, sobject: str, start: datetime, end: datetime) -> list[str]:
        """Ids of live records whose SystemModstamp is in [start, end)."""
        lo, hi = format_datetime(start), format_datetime(end)
        return [r["Id"] for r in self.records(sobject) if lo <= r["SystemModstamp"] < hi]

    def deleted(self, sobject: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
        """(id, deletedDate) of records deleted in [start, end), oldest first."""
        lo, hi = format_datetime(start), format_datetime(end)
        with self._lock:
            items = list(self._deleted[sobject].items())
        return sorted(((i, d) for i, d in items if lo <= d < hi), key=lambda x: x[1])

    # ------------------------------------------------------------------ API usage
    def count_call(self) -> None:
        """Count one API call; raise ApiLimitExceeded when the allocation is used up."""
        with self._lock:
            if self._api_used >= self.daily_api_limit:
                raise ApiLimitExceeded("TotalRequests Limit exceeded.")
            self._api_used += 1

    def use_limit(self, name: str, amount: int = 1) -> None:
        """Count ``amount`` against a daily ``/limits`` counter (Bulk jobs, batches, storage)."""
        with self._lock:
            self._limits_used[name] = self._limits_used.get(name, 0) + amount

    def limit_used(self, name: str) -> int:
        """How much of a daily ``/limits`` counter is used."""
        with self._lock:
            return self._limits_used.get(name, 0)

    def usage(self) -> tuple[int, int]:
        """(used, total) of the daily API allocation."""
        with self._lock:
            return self._api_used, self.daily_api_limit

    def set_usage(self, used: int) -> None:
        """Set how much of the allocation is used (tests, benchmarks)."""
        with self._lock:
            self._api_used = used

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write the org to ``directory``: schema.json plus one JSON Lines file per object.

        Records are streamed line by line; files are written to temporary names and
        renamed so a crash mid-save leaves the previous copy intact.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            snapshots = {s: list(t.values()) for s, t in self._records.items()}
            meta = {
                "format": 1,
                "api_version": self.api_version,
                "daily_api_limit": self.daily_api_limit,
                "api_used": self._api_used,
                "last_stamp_ms": self._last_stamp_ms,
                "next_number": self._next_number,
                "custom_fields": [asdict(s) for s in self._custom_specs.values()],
                "fields": {
                    s: [_field_to_json(f) for f in defs.values()]
                    for s, defs in self._fields.items()
                },
                "deleted": self._deleted,
                "access": self.access.to_json(),
                "limits_used": dict(self._limits_used),
            }
        for sobject, rows in snapshots.items():
            tmp = path / f"{sobject}.jsonl.tmp"
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, separators=(",", ":")))
                    fh.write("\n")
            tmp.replace(path / f"{sobject}.jsonl")
        tmp = path / "schema.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        tmp.replace(path / "schema.json")

    @staticmethod
    def exists(directory: str | Path) -> bool:
        """True when ``directory`` holds a saved org."""
        return (Path(directory) / "schema.json").is_file()

    @classmethod
    def load(cls, directory: str | Path, **kwargs: Any) -> Org:
        """Read an org saved by :meth:`save` (streaming the JSON Lines files)."""
        path = Path(directory)
        meta = json.loads((path / "schema.json").read_text(encoding="utf-8"))
        kwargs.setdefault("daily_api_limit", meta["daily_api_limit"])
        kwargs.setdefault("api_version", meta["api_version"])
        org = cls(**kwargs)
        with org._lock:
            org._api_used = int(meta["api_used"])
            org._last_stamp_ms = max(org._last_stamp_ms, int(meta["last_stamp_ms"]))
            org._next_number.update({k: int(v) for k, v in meta["next_number"].items()})
            for sobject, defs in meta["fields"].items():
                parsed = [_field_from_json(d) for d in defs]
                org._fields[sobject] = {f.name: f for f in parsed}
                org._field_lookup[sobject] = {f.name.lower(): f.name for f in parsed}
                # A loaded schema may differ from what a client saw before: changed now.
                org._schema_changed[sobject] = org.clock()
                org._records.setdefault(sobject, {})
                org._deleted.setdefault(sobject, {})
            org._custom_specs = {
                s["full_name"]: CustomFieldSpec(
                    **{**s, "picklist_values": tuple(s["picklist_values"])}
                )
                for s in meta["custom_fields"]
            }
            org._deleted.update({s: dict(d) for s, d in meta["deleted"].items()})
            org.access.load(meta.get("access"))
            org._limits_used = {k: int(v) for k, v in meta.get("limits_used", {}).items()}
            for sobject in org._fields:
                file = path / f"{sobject}.jsonl"
                if not file.is_file():
                    continue
                table = org._records[sobject] = {}
                with file.open(encoding="utf-8") as fh:
                    for line in fh:
                        if line.strip():
                            row = json.loads(line)
                            table[row["Id"]] = row
        return org


_STAGES = {name: (closed, won) for name, _, closed, won in SALESFORCE_STAGES}

_HISTORY_TYPES = {
    "picklist": "DynamicEnum",
    "multipicklist": "DynamicEnum",
    "double": "Double",
    "int": "Double",
    "currency": "Currency",
    "percent": "Percent",
    "boolean": "Boolean",
    "date": "Date",
    "datetime": "DateTime",
    "reference": "EntityId",
}


def _full_name(record: Mapping[str, Any]) -> str:
    return " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)


def _field_to_json(f: FieldDef) -> dict[str, Any]:
    out = asdict(f)
    out["picklist_values"] = [asdict(p) for p in f.picklist_values]
    out["reference_to"] = list(f.reference_to)
    return out


def _field_from_json(data: Mapping[str, Any]) -> FieldDef:
    values = dict(data)
    values["picklist_values"] = tuple(PicklistValue(**p) for p in values["picklist_values"])
    values["reference_to"] = tuple(values["reference_to"])
    return FieldDef(**values)
