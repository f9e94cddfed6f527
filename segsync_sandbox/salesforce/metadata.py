"""Salesforce sandbox: the SOAP Metadata API, as simple-salesforce's ``mdapi`` speaks it.

simple-salesforce sends ``sf.mdapi.CustomField.create([...])`` through zeep to
``POST /services/Soap/m/59.0/``: a document/literal envelope with the session
id only in ``Header/SessionHeader/sessionId`` (no Authorization header), and
each component as ``<metadata xsi:type="ns0:CustomField">``. zeep parses what
comes back against the ``metadata.wsdl`` shipped in the package, so every
answer here follows that WSDL: ``SaveResult`` / ``UpsertResult`` lists,
``ReadResult.records`` with ``xsi:type="CustomField"`` (an empty record,
``fullName`` absent, for a name that does not exist, as Salesforce does), and
SOAP 1.1 faults (HTTP 500, ``faultcode`` ``sf:CODE``) for call-level errors,
which zeep raises as ``zeep.exceptions.Fault``.

Supported: ``createMetadata``, ``readMetadata``, ``updateMetadata`` and
``upsertMetadata`` of ``CustomField`` components on the org's objects (field
types Text, Number, Picklist, LongTextArea, DateTime, Checkbox), at most 10
components per call. Other calls and types answer a fault.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary
from xml.sax.saxutils import escape

from segsync_sandbox.common import Request, Response
from segsync_sandbox.salesforce.host import SalesforceHost
from segsync_sandbox.salesforce.org import (
    CUSTOM_FIELD_TYPES,
    CustomFieldSpec,
    FieldDef,
    Org,
    SchemaError,
)

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
METADATA_NS = "http://soap.sforce.com/2006/04/metadata"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

#: Components per create / read / update / upsert call.
MAX_COMPONENTS = 10
#: Characters of a custom field's API name before ``__c``.
MAX_NAME_LENGTH = 40
#: Values in a restricted picklist.
MAX_PICKLIST_VALUES = 1000
#: Characters of a field label.
MAX_LABEL_LENGTH = 40
#: Characters of the hover help (inlineHelpText) and of the admin description.
MAX_HELP_TEXT_LENGTH = 510
MAX_DESCRIPTION_LENGTH = 1000

#: Every value of the WSDL's FieldType enumeration (other values are a fault, as
#: a schema-validating server answers them).
WSDL_FIELD_TYPES = frozenset(
    {
        "AutoNumber",
        "Lookup",
        "MasterDetail",
        "Checkbox",
        "Currency",
        "Date",
        "DateTime",
        "Email",
        "Number",
        "Percent",
        "Phone",
        "Picklist",
        "MultiselectPicklist",
        "Text",
        "TextArea",
        "LongTextArea",
        "Html",
        "Url",
        "EncryptedText",
        "Summary",
        "Hierarchy",
        "File",
        "MetadataRelationship",
        "Location",
        "ExternalLookup",
        "IndirectLookup",
        "CustomDataType",
        "Time",
        "Address",
        "Array",
    }
)
#: The field types the sandbox can create (the org's, which include the six
#: segsync provisions: Text, Number, Picklist, LongTextArea, DateTime, Checkbox).
SUPPORTED_FIELD_TYPES = tuple(sorted(CUSTOM_FIELD_TYPES))

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

#: How another module serves a component type: save (create / update / upsert)
#: and read. Modules register here (``permissions`` adds PermissionSet), so this
#: module never imports them.
SaveComponents = Callable[[SalesforceHost, str, Sequence[ET.Element], Request], Response]
ReadComponents = Callable[[SalesforceHost, Sequence[str], Request], Response]
COMPONENT_TYPES: dict[str, tuple[SaveComponents, ReadComponents]] = {}
DeleteComponents = Callable[[SalesforceHost, Sequence[str], Request], Response]
#: Types ``deleteMetadata`` serves (``listviews`` adds ListView); fields are never deleted.
DELETE_TYPES: dict[str, DeleteComponents] = {}


def _supported() -> tuple[str, ...]:
    """Metadata types the CRUD calls accept."""
    return ("CustomField", *COMPONENT_TYPES)


_OPERATIONS = (
    "createMetadata",
    "readMetadata",
    "updateMetadata",
    "upsertMetadata",
    "deleteMetadata",
)


# ---------------------------------------------------------------------------
# The wire model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PicklistValue:
    """One value of a picklist's value set (``valueSetDefinition/value``)."""

    full_name: str
    label: str
    default: bool = False


@dataclass(frozen=True)
class FieldDefinition:
    """A ``CustomField`` component as sent or read over the Metadata API.

    ``full_name`` is ``Object.Field__c``. Only the attributes the supported
    field types use are kept; absent elements are None.
    """

    full_name: str
    label: str | None = None
    type: str | None = None
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    visible_lines: int | None = None
    default_value: str | None = None
    description: str | None = None
    inline_help_text: str | None = None
    required: bool = False
    unique: bool = False
    external_id: bool = False
    restricted: bool | None = None
    sorted: bool = False
    values: tuple[PicklistValue, ...] = ()
    track_history: bool = False

    @property
    def sobject(self) -> str:
        """The object part of ``full_name``."""
        return self.full_name.partition(".")[0]

    @property
    def field_name(self) -> str:
        """The field part of ``full_name``."""
        return self.full_name.partition(".")[2]


@dataclass
class ComponentError:
    """One entry of a SaveResult's ``errors``."""

    status_code: str
    message: str
    fields: list[str] = field(default_factory=list)


class SoapFault(Exception):
    """A call-level error, answered as a SOAP fault (zeep raises ``Fault``)."""

    def __init__(self, code: str, message: str, *, client: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client = client


# ---------------------------------------------------------------------------
# Parsing requests
# ---------------------------------------------------------------------------


def _q(tag: str, ns: str = METADATA_NS) -> str:
    return f"{{{ns}}}{tag}"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child_text(elem: ET.Element, name: str) -> str | None:
    child = elem.find(_q(name))
    if child is None:
        return None
    return child.text or ""


def _parse_bool(text: str | None, name: str, default: bool = False) -> bool:
    if text is None:
        return default
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise SoapFault(
        "INVALID_TYPE",
        f"'{text}' is not a valid value for the type xsd:boolean ({name})",
        client=True,
    )


def _parse_int(text: str | None, name: str) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise SoapFault(
            "INVALID_TYPE",
            f"'{text}' is not a valid value for the type xsd:int ({name})",
            client=True,
        ) from None


def _xsi_type(elem: ET.Element) -> str | None:
    value = elem.get(_q("type", XSI_NS))
    return value.rpartition(":")[2] if value else None


def parse_field(elem: ET.Element) -> FieldDefinition:
    """Read one ``<metadata xsi:type="CustomField">`` element into a FieldDefinition."""
    type_text = _child_text(elem, "type")
    if type_text is not None and type_text not in WSDL_FIELD_TYPES:
        # A schema-validating server rejects an enumeration value it does not know
        # before it looks at any component.
        raise SoapFault(
            "INVALID_TYPE",
            f"'{type_text}' is not a valid value for the enum 'FieldType'",
            client=True,
        )
    restricted: bool | None = None
    sorted_values = False
    values: list[PicklistValue] = []
    value_set = elem.find(_q("valueSet"))
    if value_set is not None:
        restricted_text = _child_text(value_set, "restricted")
        if restricted_text is not None:
            restricted = _parse_bool(restricted_text, "restricted")
        definition = value_set.find(_q("valueSetDefinition"))
        if definition is not None:
            sorted_values = _parse_bool(_child_text(definition, "sorted"), "sorted")
            for value in definition.findall(_q("value")):
                name = (_child_text(value, "fullName") or "").strip()
                label = _child_text(value, "label")
                values.append(
                    PicklistValue(
                        full_name=name,
                        label=label if label else name,
                        default=_parse_bool(_child_text(value, "default"), "default"),
                    )
                )
    return FieldDefinition(
        full_name=(_child_text(elem, "fullName") or "").strip(),
        label=_child_text(elem, "label"),
        type=type_text,
        length=_parse_int(_child_text(elem, "length"), "length"),
        precision=_parse_int(_child_text(elem, "precision"), "precision"),
        scale=_parse_int(_child_text(elem, "scale"), "scale"),
        visible_lines=_parse_int(_child_text(elem, "visibleLines"), "visibleLines"),
        default_value=_child_text(elem, "defaultValue"),
        description=_child_text(elem, "description"),
        inline_help_text=_child_text(elem, "inlineHelpText"),
        required=_parse_bool(_child_text(elem, "required"), "required"),
        unique=_parse_bool(_child_text(elem, "unique"), "unique"),
        external_id=_parse_bool(_child_text(elem, "externalId"), "externalId"),
        track_history=_parse_bool(_child_text(elem, "trackHistory"), "trackHistory"),
        restricted=restricted,
        sorted=sorted_values,
        values=tuple(values),
    )


# ---------------------------------------------------------------------------
# Validation (independent of the org's current state, except known objects)
# ---------------------------------------------------------------------------


def validate_definition(
    defn: FieldDefinition, known_objects: Iterable[str]
) -> list[ComponentError]:
    """The errors Salesforce reports for a CustomField definition, before touching the org."""
    errors: list[ComponentError] = []
    sobject, dot, name = defn.full_name.partition(".")
    if not defn.full_name:
        return [
            ComponentError(
                "REQUIRED_FIELD_MISSING", "Required field is missing: fullName", ["fullName"]
            )
        ]
    if not dot or not sobject or not name:
        return [
            ComponentError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"The fullName {defn.full_name!r} must be of the form Object.Field__c",
                ["fullName"],
            )
        ]
    objects = {o.lower(): o for o in known_objects}
    if sobject.lower() not in objects:
        return [
            ComponentError(
                "INVALID_CROSS_REFERENCE_KEY",
                f"In field: fullName - no CustomObject named {sobject} found",
                ["fullName"],
            )
        ]
    if not name.endswith("__c"):
        return [
            ComponentError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"Cannot create a custom field without the __c suffix: {name}",
                ["fullName"],
            )
        ]
    stem = name[: -len("__c")]
    if len(stem) > MAX_NAME_LENGTH:
        errors.append(
            ComponentError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"Field name {stem!r} is {len(stem)} characters long; "
                f"the maximum is {MAX_NAME_LENGTH}",
                ["fullName"],
            )
        )
    elif not _NAME_RE.fullmatch(stem) or "__" in stem or stem.endswith("_"):
        errors.append(
            ComponentError(
                "FIELD_INTEGRITY_EXCEPTION",
                "The Field Name must begin with a letter, contain only alphanumeric characters "
                "and underscores, not end with an underscore and not contain two consecutive "
                f"underscores: {stem}",
                ["fullName"],
            )
        )
    if not defn.label:
        errors.append(
            ComponentError("REQUIRED_FIELD_MISSING", "Required field is missing: label", ["label"])
        )
    elif len(defn.label) > MAX_LABEL_LENGTH:
        errors.append(
            ComponentError(
                "STRING_TOO_LONG",
                f"Field label: data value too large (max length={MAX_LABEL_LENGTH})",
                ["label"],
            )
        )
    for text, name, limit in (
        (defn.inline_help_text, "inlineHelpText", MAX_HELP_TEXT_LENGTH),
        (defn.description, "description", MAX_DESCRIPTION_LENGTH),
    ):
        if text is not None and len(text) > limit:
            errors.append(
                ComponentError(
                    "STRING_TOO_LONG", f"{name}: data value too large (max length={limit})", [name]
                )
            )
    if not defn.type:
        errors.append(
            ComponentError("REQUIRED_FIELD_MISSING", "Required field is missing: type", ["type"])
        )
        return errors
    errors.extend(_validate_type(defn))
    return errors


def _validate_type(defn: FieldDefinition) -> list[ComponentError]:
    t = defn.type
    if t not in SUPPORTED_FIELD_TYPES:
        return [
            ComponentError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"Field type {t} is not supported by the sandbox "
                f"(supported: {', '.join(SUPPORTED_FIELD_TYPES)})",
                ["type"],
            )
        ]
    if t == "Text":
        if defn.length is None:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION", "Length is required for Text fields", ["length"]
                )
            ]
        if not 1 <= defn.length <= 255:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"Length must be between 1 and 255 for Text fields (got {defn.length})",
                    ["length"],
                )
            ]
    if t == "LongTextArea":
        if defn.length is None or not 256 <= defn.length <= 131072:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Length must be between 256 and 131072 for LongTextArea fields",
                    ["length"],
                )
            ]
        if defn.visible_lines is None or not 2 <= defn.visible_lines <= 50:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Visible lines must be between 2 and 50 for LongTextArea fields",
                    ["visibleLines"],
                )
            ]
    if t == "Number":
        precision, scale = defn.precision, defn.scale if defn.scale is not None else 0
        if precision is None or not 1 <= precision <= 18:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Precision must be between 1 and 18 for Number fields",
                    ["precision"],
                )
            ]
        if not 0 <= scale <= precision:
            return [
                ComponentError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Scale must be between 0 and the precision for Number fields",
                    ["scale"],
                )
            ]
    if t == "Checkbox" and (defn.default_value or "").strip().lower() not in ("true", "false"):
        return [
            ComponentError(
                "FIELD_INTEGRITY_EXCEPTION",
                "Checkbox fields require a default value of true or false",
                ["defaultValue"],
            )
        ]
    if t in ("Picklist", "MultiselectPicklist"):
        return _validate_values(defn.values)
    return []


def _validate_values(values: Sequence[PicklistValue]) -> list[ComponentError]:
    if not values:
        return [
            ComponentError(
                "FIELD_INTEGRITY_EXCEPTION",
                "Picklist fields need a valueSet with at least one value",
                ["valueSet"],
            )
        ]
    if len(values) > MAX_PICKLIST_VALUES:
        return [
            ComponentError(
                "LIMIT_EXCEEDED",
                f"A restricted picklist can have at most {MAX_PICKLIST_VALUES} values",
                ["valueSet"],
            )
        ]
    seen: set[str] = set()
    for value in values:
        if not value.full_name:
            return [
                ComponentError(
                    "REQUIRED_FIELD_MISSING", "Picklist value without a fullName", ["valueSet"]
                )
            ]
        if len(value.full_name) > 255:
            return [
                ComponentError(
                    "STRING_TOO_LONG",
                    "Picklist value: data value too large (max length=255)",
                    ["valueSet"],
                )
            ]
        key = value.full_name.lower()
        if key in seen:
            return [
                ComponentError(
                    "DUPLICATE_VALUE",
                    f"Duplicate picklist value: {value.full_name}",
                    ["valueSet"],
                )
            ]
        seen.add(key)
    if sum(v.default for v in values) > 1:
        return [
            ComponentError(
                "FIELD_INTEGRITY_EXCEPTION",
                "Only one picklist value can be the default",
                ["valueSet"],
            )
        ]
    return []


# ---------------------------------------------------------------------------
# Writing responses
# ---------------------------------------------------------------------------


def _envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}" xmlns="{METADATA_NS}" '
        f'xmlns:xsi="{XSI_NS}"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>'
    ).encode()


def _xml_response(body: str, status: int = 200) -> Response:
    return Response(status, _envelope(body), {"Content-Type": "text/xml;charset=UTF-8"})


def fault_response(fault: SoapFault) -> Response:
    """A SOAP 1.1 fault, as Salesforce sends it (HTTP 500)."""
    code = "soapenv:Client" if fault.client else f"sf:{fault.code}"
    text = fault.message if fault.client else f"{fault.code}: {fault.message}"
    body = (
        f'<soapenv:Fault xmlns:sf="{METADATA_NS}"><faultcode>{code}</faultcode>'
        f"<faultstring>{escape(text)}</faultstring></soapenv:Fault>"
    )
    return Response(
        500,
        (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}"><soapenv:Body>{body}'
            "</soapenv:Body></soapenv:Envelope>"
        ).encode(),
        {"Content-Type": "text/xml;charset=UTF-8"},
    )


def _el(name: str, value: object) -> str:
    if value is None:
        return ""
    text = ("true" if value else "false") if isinstance(value, bool) else escape(str(value))
    return f"<{name}>{text}</{name}>"


def _errors_xml(errors: Sequence[ComponentError]) -> str:
    return "".join(
        "<errors>"
        + "".join(_el("fields", f) for f in e.fields)
        + _el("message", e.message)
        + _el("statusCode", e.status_code)
        + "</errors>"
        for e in errors
    )


def _save_result_xml(full_name: str, errors: Sequence[ComponentError], created: bool | None) -> str:
    # Element order follows the WSDL's sequences (SaveResult: errors, fullName,
    # success; UpsertResult: created first).
    return (
        "<result>"
        + (_el("created", created and not errors) if created is not None else "")
        + _errors_xml(errors)
        + _el("fullName", full_name)
        + _el("success", not errors)
        + "</result>"
    )


def field_xml(defn: FieldDefinition | None) -> str:
    """A ``ReadResult.records`` element for a field (an empty record when it is missing)."""
    if defn is None:
        # What Salesforce answers for a name that does not exist: a record whose
        # fullName is null (zeep: a CustomField with every attribute None).
        return '<records xsi:type="CustomField"/>'
    # Elements in the WSDL's sequence order: fullName (from Metadata), then
    # CustomField's own elements alphabetically.
    default = defn.default_value
    if defn.type == "Checkbox" and default is None:
        default = "false"
    parts = [
        _el("fullName", defn.full_name),
        _el("defaultValue", default),
        _el("description", defn.description),
        _el("externalId", defn.external_id),
        _el("inlineHelpText", defn.inline_help_text),
        _el("label", defn.label),
        _el("length", defn.length),
        _el("precision", defn.precision),
        _el("required", defn.required),
        _el("scale", defn.scale if defn.precision is not None else None),
        _el("trackFeedHistory", False),
        _el("trackHistory", defn.track_history),
        _el("trackTrending", False),
        _el("type", defn.type),
    ]
    if defn.type in ("Text", "Number"):
        parts.append(_el("unique", defn.unique))
    if defn.type in ("Picklist", "MultiselectPicklist"):
        values = "".join(
            "<value>"
            + _el("fullName", v.full_name)
            + _el("default", v.default)
            + _el("label", v.label)
            + "</value>"
            for v in defn.values
        )
        parts.append(
            "<valueSet>"
            + _el("restricted", bool(defn.restricted))
            + f"<valueSetDefinition>{_el('sorted', defn.sorted)}{values}</valueSetDefinition>"
            + "</valueSet>"
        )
    parts.append(_el("visibleLines", defn.visible_lines))
    return '<records xsi:type="CustomField">' + "".join(parts) + "</records>"


# ---------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------


@dataclass
class _Call:
    operation: str
    session_id: str | None
    payload: ET.Element


def parse_envelope(body: bytes) -> _Call:
    """Split a SOAP request into its operation, session id and payload element."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise SoapFault("INVALID_XML", f"Unable to parse the request: {exc}", client=True) from None
    if root.tag != _q("Envelope", SOAP_ENV_NS):
        raise SoapFault("INVALID_XML", "The request is not a SOAP 1.1 envelope", client=True)
    session_id: str | None = None
    header = root.find(_q("Header", SOAP_ENV_NS))
    if header is not None:
        session = header.find(f"{_q('SessionHeader')}/{_q('sessionId')}")
        if session is not None:
            session_id = (session.text or "").strip()
    body_elem = root.find(_q("Body", SOAP_ENV_NS))
    if body_elem is None or len(body_elem) == 0:
        raise SoapFault("INVALID_XML", "The SOAP envelope has no body", client=True)
    payload = body_elem[0]
    if not payload.tag.startswith(f"{{{METADATA_NS}}}"):
        raise SoapFault(
            "INVALID_OPERATION", f"No operation available for request {payload.tag}", client=True
        )
    return _Call(_local(payload.tag), session_id, payload)


@dataclass(frozen=True)
class _Extras:
    """What the org's CustomFieldSpec does not keep: picklist labels, defaults, sorting."""

    values: tuple[PicklistValue, ...]
    sorted: bool


class MetadataService:
    """The Metadata API over one app's org.

    Calls are serialized with a lock: Salesforce deploys metadata one change at
    a time per org, and the org's schema is shared with every REST handler.
    """

    def __init__(self, app: SalesforceHost) -> None:
        self.app = app
        self._lock = threading.Lock()
        # Per org, so a sandbox that swaps in a fresh org (between tests) starts clean.
        self._extras: WeakKeyDictionary[Org, dict[str, _Extras]] = WeakKeyDictionary()

    def _org_extras(self) -> dict[str, _Extras]:
        return self._extras.setdefault(self.app.org, {})

    def handle(self, request: Request, match: re.Match[str]) -> Response:
        """Serve one SOAP call."""
        del match
        request.kind = "metadata"
        try:
            call = parse_envelope(request.body)
            request.kind = f"metadata.{call.operation}"
            if not call.session_id or not _session_valid(self.app, call.session_id):
                raise SoapFault(
                    "INVALID_SESSION_ID",
                    "Invalid Session ID found in SessionHeader: Illegal Session",
                )
            _count_call(self.app)
            if call.operation not in _OPERATIONS:
                raise SoapFault(
                    "INVALID_OPERATION",
                    f"The sandbox does not implement {call.operation}",
                )
            with self._lock:
                if call.operation == "readMetadata":
                    return self._read(call.payload, request)
                if call.operation == "deleteMetadata":
                    return self._delete(call.payload, request)
                return self._save(call.operation, call.payload, request)
        except SoapFault as fault:
            return fault_response(fault)

    def _components(self, payload: ET.Element) -> tuple[str, list[ET.Element]]:
        """The call's components and their one type (CRUD calls take one type at a time)."""
        components = payload.findall(_q("metadata"))
        if len(components) > MAX_COMPONENTS:
            raise SoapFault(
                "LIMIT_EXCEEDED",
                f"Exceeded max size limit of {MAX_COMPONENTS} with request size {len(components)}",
            )
        kinds = {_xsi_type(c) for c in components}
        if len(kinds) > 1:
            raise SoapFault(
                "INVALID_TYPE", "All components in a CRUD call must be of the same type"
            )
        kind = next(iter(kinds), "CustomField") or ""
        if kind not in _supported():
            raise SoapFault(
                "INVALID_TYPE",
                f"The sandbox's Metadata API handles {' and '.join(_supported())} only, not {kind}",
            )
        return kind, components

    def _save(self, operation: str, payload: ET.Element, request: Request) -> Response:
        kind, components = self._components(payload)
        if kind in COMPONENT_TYPES:
            return COMPONENT_TYPES[kind][0](self.app, operation, components, request)
        definitions = [parse_field(c) for c in components]
        upsert = operation == "upsertMetadata"
        results: list[str] = []
        seen: set[str] = set()
        for defn in definitions:
            request.fields.add(defn.full_name)
            errors = validate_definition(defn, _known_objects(self.app))
            created = False
            if not errors and defn.full_name.lower() in seen:
                errors = [_duplicate(defn)]
            if not errors:
                seen.add(defn.full_name.lower())
                found = _canonical(self.app, defn.full_name)
                if operation == "createMetadata" or (upsert and found is None):
                    errors = [_duplicate(defn)] if found else _create_field(self.app, defn)
                    created = True
                elif found is None:
                    errors = [_not_found(defn)]
                else:
                    errors = _update_field(self.app, defn)
                if not errors:
                    canonical = _canonical(self.app, defn.full_name)
                    if canonical is not None:
                        self._org_extras()[f"{canonical[0]}.{canonical[1]}"] = _Extras(
                            defn.values, defn.sorted
                        )
            results.append(_save_result_xml(defn.full_name, errors, created if upsert else None))
        return _xml_response(f"<{operation}Response>{''.join(results)}</{operation}Response>")

    def _delete(self, payload: ET.Element, request: Request) -> Response:
        kind = (_child_text(payload, "type") or "").strip()
        names = [(e.text or "").strip() for e in payload.findall(_q("fullNames"))]
        if len(names) > MAX_COMPONENTS:
            raise SoapFault(
                "LIMIT_EXCEEDED",
                f"Exceeded max size limit of {MAX_COMPONENTS} with request size {len(names)}",
            )
        if kind not in DELETE_TYPES:
            raise SoapFault(
                "INVALID_TYPE",
                f"The sandbox's deleteMetadata handles {', '.join(DELETE_TYPES)} only, not {kind}",
            )
        return DELETE_TYPES[kind](self.app, names, request)

    def _read(self, payload: ET.Element, request: Request) -> Response:
        kind = (_child_text(payload, "type") or "").strip()
        names = [(e.text or "").strip() for e in payload.findall(_q("fullNames"))]
        if len(names) > MAX_COMPONENTS:
            raise SoapFault(
                "LIMIT_EXCEEDED",
                f"Exceeded max size limit of {MAX_COMPONENTS} with request size {len(names)}",
            )
        if kind in COMPONENT_TYPES:
            return COMPONENT_TYPES[kind][1](self.app, names, request)
        if kind != "CustomField":
            raise SoapFault(
                "INVALID_TYPE",
                f"The sandbox's Metadata API handles {' and '.join(_supported())} only, not {kind}",
            )
        records = []
        for name in names:
            request.fields.add(name)
            records.append(field_xml(_read_field(self.app, name, self._org_extras())))
        return _xml_response(
            f"<readMetadataResponse><result>{''.join(records)}</result></readMetadataResponse>"
        )


def _duplicate(defn: FieldDefinition) -> ComponentError:
    return ComponentError(
        "DUPLICATE_DEVELOPER_NAME",
        f"There is already a field named {defn.field_name.removesuffix('__c')} on {defn.sobject}.",
        ["fullName"],
    )


def _not_found(defn: FieldDefinition) -> ComponentError:
    return ComponentError(
        "INVALID_CROSS_REFERENCE_KEY",
        f"In field: fullName - no CustomField named {defn.full_name} found",
        ["fullName"],
    )


# ---------------------------------------------------------------------------
# Org adapter (the only code that knows the Org's interface)
# ---------------------------------------------------------------------------


# Metadata API type -> describe type, for custom fields that exist in the org
# without having been created through this API (the customer's own inputs).
_DESCRIBE_TO_METADATA = {
    "string": "Text",
    "double": "Number",
    "int": "Number",
    "currency": "Currency",
    "percent": "Percent",
    "picklist": "Picklist",
    "multipicklist": "MultiselectPicklist",
    "boolean": "Checkbox",
    "date": "Date",
    "datetime": "DateTime",
    "email": "Email",
    "phone": "Phone",
    "url": "Url",
}


def _session_valid(app: SalesforceHost, session_id: str) -> bool:
    return app.use_session(session_id)


def _count_call(app: SalesforceHost) -> None:
    if not app.count_api_call():
        raise SoapFault("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def _known_objects(app: SalesforceHost) -> list[str]:
    return list(app.org.sobjects())


def _canonical(app: SalesforceHost, full_name: str) -> tuple[str, str] | None:
    """(object, field) in their canonical casing, or None when the field does not exist."""
    org = app.org
    sobject, _, name = full_name.partition(".")
    canonical_obj = org.canonical_sobject(sobject)
    if canonical_obj is None or not name:
        return None
    field_def = org.field(canonical_obj, name)
    if field_def is None:
        return None
    return canonical_obj, field_def.name


def _from_spec(spec: CustomFieldSpec, extras: _Extras | None) -> FieldDefinition:
    values = tuple(PicklistValue(v, v) for v in spec.picklist_values)
    if extras is not None:
        known = {v.full_name: v for v in extras.values}
        values = tuple(known.get(v.full_name, v) for v in values)
    return FieldDefinition(
        full_name=spec.full_name,
        label=spec.label,
        type=spec.type,
        length=spec.length,
        precision=spec.precision,
        scale=spec.scale,
        visible_lines=spec.visible_lines,
        default_value=spec.default_value,
        description=spec.description or None,
        inline_help_text=spec.inline_help_text,
        required=spec.required,
        restricted=spec.restricted,
        sorted=extras.sorted if extras is not None else False,
        values=values,
        track_history=spec.track_history,
    )


def _from_field_def(sobject: str, f: FieldDef) -> FieldDefinition:
    kind = _DESCRIBE_TO_METADATA.get(f.type)
    if f.type == "textarea":
        kind = "LongTextArea" if f.extra_type_info == "plaintextarea" else "TextArea"
    numeric = kind in ("Number", "Currency", "Percent")
    return FieldDefinition(
        full_name=f"{sobject}.{f.name}",
        label=f.label,
        type=kind,
        length=f.length if kind in ("Text", "LongTextArea") else None,
        precision=(f.precision or f.digits) if numeric else None,
        scale=f.scale if numeric else None,
        visible_lines=f.visible_lines if kind == "LongTextArea" else None,
        default_value=(("true" if f.default_value else "false") if kind == "Checkbox" else None),
        description=f.description or None,
        restricted=f.restricted if kind in ("Picklist", "MultiselectPicklist") else None,
        values=tuple(
            PicklistValue(p.value, p.label, p.default) for p in f.picklist_values if p.active
        ),
    )


def _read_field(
    app: SalesforceHost, full_name: str, extras: Mapping[str, _Extras]
) -> FieldDefinition | None:
    found = _canonical(app, full_name)
    if found is None or not found[1].endswith("__c"):
        # Standard fields are not CustomField components.
        return None
    key = f"{found[0]}.{found[1]}"
    spec = app.org.read_custom_field(key)
    if spec is not None:
        return _from_spec(spec, extras.get(key))
    field_def = app.org.field(*found)
    return _from_field_def(found[0], field_def) if field_def is not None else None


def _to_spec(app: SalesforceHost, defn: FieldDefinition) -> CustomFieldSpec:
    sobject = app.org.canonical_sobject(defn.sobject) or defn.sobject
    return CustomFieldSpec(
        full_name=f"{sobject}.{defn.field_name}",
        type=defn.type or "",
        label=defn.label or "",
        description=defn.description or "",
        length=defn.length,
        precision=defn.precision,
        scale=defn.scale,
        picklist_values=tuple(v.full_name for v in defn.values),
        restricted=bool(defn.restricted),
        visible_lines=defn.visible_lines,
        default_value=defn.default_value,
        inline_help_text=defn.inline_help_text,
        required=defn.required,
        track_history=defn.track_history,
    )


def _schema_errors(exc: SchemaError) -> list[ComponentError]:
    return [ComponentError(exc.status_code, exc.message, list(exc.fields))]


def _create_field(app: SalesforceHost, defn: FieldDefinition) -> list[ComponentError]:
    spec = _to_spec(app, defn)
    try:
        # Created through the Metadata API: no profile sees the field until granted.
        app.org.add_custom_field(spec.sobject, spec, restricted=True)
    except SchemaError as exc:
        return _schema_errors(exc)
    return []


def _update_field(app: SalesforceHost, defn: FieldDefinition) -> list[ComponentError]:
    spec = _to_spec(app, defn)
    try:
        app.org.update_custom_field(spec.sobject, spec)
    except SchemaError as exc:
        return _schema_errors(exc)
    return []


def register(app: SalesforceHost) -> None:
    """Serve the Metadata API at ``/services/Soap/m/{version}`` (with or without a slash)."""
    service = MetadataService(app)
    # The session travels in the SOAP header, not in an Authorization header:
    # the app lets the path through and the service checks the session itself.
    app.open_prefixes.append("/services/Soap/m/")
    app.route("POST", r"/services/Soap/m/(\d+\.\d+)/?", service.handle)
