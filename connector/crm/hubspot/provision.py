"""Provisioning: the Segmentation group, missing output properties, new options.

Only properties segsync owns are created or changed. Options that a mapping
no longer defines are kept (records may still hold them) and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hubspot.crm.properties.models import (
    OptionInput,
    PropertyCreate,
    PropertyGroupCreate,
    PropertyUpdate,
)

from connector.crm.base import ObjectName, OutputField, ProvisionAction, ProvisionReport
from connector.crm.hubspot.describe import is_read_only, read_properties
from connector.crm.hubspot.session import HubSpotSession

GROUP = "segmentation"

_KINDS: dict[str, tuple[str, str]] = {
    # OutputField.kind -> (property type, fieldType)
    "picklist": ("enumeration", "select"),
    "number": ("number", "number"),
    "text": ("string", "text"),
    "longtext": ("string", "textarea"),
    "datetime": ("datetime", "date"),
}


def provision(
    session: HubSpotSession,
    obj: ObjectName,
    object_type: str,
    outputs: Sequence[OutputField],
    inputs: Sequence[str],
    dry_run: bool,
) -> ProvisionReport:
    """Create the Segmentation group and missing properties; extend enumerations."""
    report = ProvisionReport("hubspot")
    props = read_properties(session, object_type)
    for name in inputs:
        if name not in props:
            report.actions.append(
                ProvisionAction(obj, name, "missing_access", "input property does not exist")
            )
    _ensure_group(session, object_type, dry_run)
    for out in outputs:
        prop = props.get(out.name)
        if prop is None:
            report.actions.append(ProvisionAction(obj, out.name, "create", out.kind))
            if not dry_run:
                _create_property(session, object_type, out)
            continue
        if is_read_only(prop):
            report.actions.append(
                ProvisionAction(obj, out.name, "missing_access", "property is read-only")
            )
            continue
        if out.kind != "picklist":
            report.actions.append(ProvisionAction(obj, out.name, "ok"))
            continue
        report.actions.extend(_extend_options(session, obj, object_type, out, prop, dry_run))
    return report


def _ensure_group(session: HubSpotSession, object_type: str, dry_run: bool) -> None:
    """The Segmentation property group, created when missing (unless a dry run)."""
    groups = session.call(
        "read property groups",
        session.groups.get_all_with_http_info,
        object_type,
    )
    if not any(g.name == GROUP for g in groups.results or []) and not dry_run:
        group = PropertyGroupCreate(name=GROUP, label="Segmentation", display_order=-1)
        session.call(
            "create property group",
            session.groups.create_with_http_info,
            object_type,
            group,
        )


def _extend_options(
    session: HubSpotSession,
    obj: ObjectName,
    object_type: str,
    out: OutputField,
    prop: Any,
    dry_run: bool,
) -> list[ProvisionAction]:
    """Add the options ``out`` defines that the enumeration lacks; report stale ones."""
    actions: list[ProvisionAction] = []
    have = [o.value for o in prop.options or []]
    new = [o for o in out.options if o not in have]
    stale = [o for o in have if o not in out.options]
    if new:
        actions.append(ProvisionAction(obj, out.name, "add_options", ", ".join(new)))
        if not dry_run:
            # The update replaces the whole option list: resend the existing
            # options as they are, then the new ones after them.
            options = [
                OptionInput(label=o.label, value=o.value, display_order=i, hidden=o.hidden)
                for i, o in enumerate(prop.options or [])
            ] + [
                OptionInput(label=v, value=v, display_order=len(have) + i, hidden=False)
                for i, v in enumerate(new)
            ]
            session.call(
                "update property",
                session.properties.update_with_http_info,
                object_type,
                out.name,
                PropertyUpdate(options=options),
            )
    else:
        actions.append(ProvisionAction(obj, out.name, "ok"))
    if stale:
        actions.append(
            ProvisionAction(
                obj,
                out.name,
                "stale_options",
                f"no longer defined, kept: {', '.join(stale)}",
            )
        )
    return actions


def _create_property(session: HubSpotSession, object_type: str, out: OutputField) -> None:
    """One output property, in the Segmentation group."""
    type_, field_type = _KINDS[out.kind]
    create = PropertyCreate(
        name=out.name,
        label=out.label,
        type=type_,
        field_type=field_type,
        group_name=GROUP,
        description=out.description,
        options=[
            OptionInput(label=v, value=v, display_order=i, hidden=False)
            for i, v in enumerate(out.options)
        ]
        if out.kind == "picklist"
        else None,
    )
    session.call(
        "create property",
        session.properties.create_with_http_info,
        object_type,
        create,
    )
