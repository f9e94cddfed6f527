"""Salesforce sandbox: ``PermissionSet`` components over the SOAP Metadata API.

``sf.mdapi.PermissionSet.create / read / update / upsert`` with ``fullName``,
``label``, ``description`` and ``fieldPermissions`` (``field``, ``readable``,
``editable``). Other parts of a permission set (object, user, tab permissions)
are not modeled. Field permissions replace the set's previous ones on update,
so a client that wants to keep existing grants reads the set first and sends
the union.

The org keeps the state (:meth:`Org.upsert_permission_set`); the grants take
effect for the integration user once a ``PermissionSetAssignment`` record
assigns the set (REST ``POST /sobjects/PermissionSetAssignment``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from segsync_sandbox.common import Request, Response
from segsync_sandbox.salesforce.access import FieldPermission, PermissionSet
from segsync_sandbox.salesforce.host import SalesforceHost
from segsync_sandbox.salesforce.metadata import (
    COMPONENT_TYPES,
    ComponentError,
    _child_text,
    _el,
    _parse_bool,
    _q,
    _save_result_xml,
    _xml_response,
)
from segsync_sandbox.salesforce.org import SchemaError


def _parse(elem: ET.Element) -> tuple[str, str, str, list[FieldPermission]]:
    perms = [
        FieldPermission(
            (_child_text(p, "field") or "").strip(),
            _parse_bool(_child_text(p, "readable"), "readable"),
            _parse_bool(_child_text(p, "editable"), "editable"),
        )
        for p in elem.findall(_q("fieldPermissions"))
    ]
    return (
        (_child_text(elem, "fullName") or "").strip(),
        _child_text(elem, "label") or "",
        _child_text(elem, "description") or "",
        perms,
    )


def save(
    app: SalesforceHost, operation: str, components: Sequence[ET.Element], request: Request
) -> Response:
    """Serve create / update / upsert of PermissionSet components."""
    mode = {"createMetadata": True, "updateMetadata": False}.get(operation)
    upsert = operation == "upsertMetadata"
    results = []
    for component in components:
        name, label, description, perms = _parse(component)
        request.fields.update(p.field for p in perms)
        errors: list[ComponentError] = []
        created = False
        try:
            created = app.org.upsert_permission_set(name, label, description, perms, create=mode)
        except SchemaError as exc:
            errors = [ComponentError(exc.status_code, exc.message, list(exc.fields))]
        results.append(_save_result_xml(name, errors, created if upsert else None))
    return _xml_response(f"<{operation}Response>{''.join(results)}</{operation}Response>")


def permission_set_xml(ps: PermissionSet | None) -> str:
    """A ``ReadResult.records`` element (empty when the set does not exist)."""
    if ps is None:
        return '<records xsi:type="PermissionSet"/>'
    # Elements in the WSDL's sequence order: fullName, then PermissionSet's own.
    perms = "".join(
        "<fieldPermissions>"
        + _el("editable", p.editable)
        + _el("field", p.field)
        + _el("readable", p.readable)
        + "</fieldPermissions>"
        for p in ps.field_permissions.values()
    )
    return (
        '<records xsi:type="PermissionSet">'
        + _el("fullName", ps.name)
        + _el("description", ps.description or None)
        + perms
        + _el("hasActivationRequired", False)
        + _el("label", ps.label)
        + "</records>"
    )


def read(app: SalesforceHost, names: Sequence[str], request: Request) -> Response:
    """Serve readMetadata of PermissionSet components."""
    request.fields.update(names)
    records = "".join(permission_set_xml(app.org.read_permission_set(n)) for n in names)
    return _xml_response(f"<readMetadataResponse><result>{records}</result></readMetadataResponse>")


def register() -> None:
    """Serve PermissionSet components through the Metadata API's CRUD calls."""
    COMPONENT_TYPES["PermissionSet"] = (save, read)
