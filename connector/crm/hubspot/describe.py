"""What a portal says about its properties."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connector.crm.base import FieldSpec, carries_mark
from connector.crm.hubspot.session import HubSpotSession


def read_properties(session: HubSpotSession, object_type: str) -> dict[str, Any]:
    """Every live property of ``object_type``, by name (the SDK's ``Property`` models)."""
    result = session.call(
        "read properties",
        session.properties.get_all_with_http_info,
        object_type,
        # No ``archived``: false is the default, and the client would send a
        # bool as Python spells it ("False"), which the spec does not allow.
    )
    return {p.name: p for p in result.results}


def is_read_only(prop: Any) -> bool:
    """Whether HubSpot lets nobody set this property's value (calculated, system)."""
    meta = prop.modification_metadata
    return meta is not None and bool(meta.read_only_value)


def describe(
    session: HubSpotSession, object_type: str, names: Sequence[str]
) -> dict[str, FieldSpec]:
    """The named properties as :class:`FieldSpec`; missing ones with ``exists=False``."""
    props = read_properties(session, object_type)
    out: dict[str, FieldSpec] = {}
    for name in names:
        prop = props.get(name)
        if prop is None:
            out[name] = FieldSpec(name, "", exists=False, updateable=False)
            continue
        out[name] = FieldSpec(
            name,
            prop.type,
            updateable=not is_read_only(prop),
            options=tuple(o.value for o in (prop.options or [])),
            managed=carries_mark(prop.description),
            standard=bool(getattr(prop, "hubspot_defined", False)),
        )
    return out
