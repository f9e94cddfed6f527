"""What the org says about its fields: cached sObject describes and FieldSpecs built from them."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from connector.crm.base import FieldSpec, ObjectName, carries_mark
from connector.crm.salesforce.session import SalesforceSession
from connector.crm.salesforce.soql import PARENT, SOBJECTS

Fields = dict[str, dict[str, Any]]


def lookup(fields: Mapping[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The describe entry of ``name``: exact spelling first, else case-insensitive (as SOQL)."""
    found = fields.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    return next((f for n, f in fields.items() if n.lower() == lowered), None)


class Describer:
    """sObject describes, kept per object until someone asks for a fresh one."""

    def __init__(self, session: SalesforceSession) -> None:
        self._session = session
        self._describes: dict[str, Fields] = {}
        self._lock = threading.Lock()

    def fields(self, sobject: str, fresh: bool = False) -> Fields:
        """Field name → describe entry (cached; ``fresh`` asks the org again)."""
        with self._lock:
            cached = self._describes.get(sobject)
        if cached is not None and not fresh:
            return cached
        result = self._session.call(f"describe {sobject}", lambda c: c.sobject(sobject).describe())
        fields = {str(f["name"]): dict(f) for f in result.get("fields", [])}
        with self._lock:
            self._describes[sobject] = fields
        return fields

    def specs(self, obj: ObjectName, names: Sequence[str]) -> dict[str, FieldSpec]:
        """The org's view of ``names`` on the object (``Account.X`` names a contact's parent)."""
        own = self.fields(SOBJECTS[obj], fresh=True)
        parent: Mapping[str, dict[str, Any]] | None = None
        out: dict[str, FieldSpec] = {}
        for name in names:
            fields: Mapping[str, dict[str, Any]] = own
            short = name
            if obj == "contact" and name.startswith(PARENT + "."):
                if parent is None:
                    parent = self.fields(PARENT, fresh=True)
                fields, short = parent, name[len(PARENT) + 1 :]
            entry = lookup(fields, short)
            if entry is None:
                out[name] = FieldSpec(name, "", exists=False, updateable=False)
                continue
            out[name] = FieldSpec(
                name,
                str(entry.get("type") or ""),
                updateable=bool(entry.get("updateable")) and "." not in name,
                options=tuple(
                    str(p["value"]) for p in entry.get("picklistValues") or [] if p.get("active")
                ),
                length=int(entry["length"]) if entry.get("length") else None,
                managed=carries_mark(entry.get("inlineHelpText")),
                standard=not entry.get("custom"),
            )
        return out
