"""Field-level security of the sandbox org: which fields the integration user may read and edit.

In a real org a custom field created through the Metadata API is visible to no
profile until someone grants it: SOQL answers ``INVALID_FIELD`` ("No such
column"), writes are refused and describe leaves the field out. Access comes
from a permission set (Metadata API ``PermissionSet`` with ``fieldPermissions``)
assigned to the user (a ``PermissionSetAssignment`` record), or from the
user's profile. The sandbox has one user, the integration user, whose profile
grants every field the org was seeded with (and fields added straight through
:meth:`Org.add_custom_field`, which stands for "created and granted by an
admin"); fields created through the Metadata API are *restricted*: readable and
editable only through an assigned permission set that grants them.

This module holds that state; :class:`~segsync_sandbox.salesforce.org.Org`
consults it for describe, SOQL, REST and Bulk writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: API names of permission sets: a letter, then letters, digits and single underscores.
PERMISSION_SET_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)")
MAX_PERMISSION_SET_NAME = 80
MAX_PERMISSION_SET_LABEL = 80


@dataclass(frozen=True)
class FieldPermission:
    """One ``fieldPermissions`` entry: ``field`` is ``Object.Field__c``."""

    field: str
    readable: bool
    editable: bool


@dataclass
class PermissionSet:
    """A permission set as the Metadata API creates it (field permissions only)."""

    id: str
    name: str
    label: str
    description: str = ""
    field_permissions: dict[str, FieldPermission] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """For :meth:`Org.save`."""
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "field_permissions": [
                {"field": p.field, "readable": p.readable, "editable": p.editable}
                for p in self.field_permissions.values()
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PermissionSet:
        """Inverse of :meth:`to_json`."""
        perms = [FieldPermission(**p) for p in data.get("field_permissions", [])]
        return cls(
            str(data["id"]),
            str(data["name"]),
            str(data["label"]),
            str(data.get("description") or ""),
            {p.field.lower(): p for p in perms},
        )


class FieldAccess:
    """Restricted fields, permission sets and the integration user's assignments.

    Not thread-safe by itself: the org calls it under its own lock.
    """

    def __init__(self) -> None:
        #: Lower-cased ``Object.Field`` names that need a grant.
        self.restricted: set[str] = set()
        #: Permission sets by lower-cased API name.
        self.permission_sets: dict[str, PermissionSet] = {}
        #: Assignment id → (assignee id, permission set id).
        self.assignments: dict[str, tuple[str, str]] = {}
        #: Whether the integration user holds "Assign Permission Sets".
        self.can_assign = True
        #: What an admin set on the integration user's profile, by lower-cased
        #: ``Object.Field`` (readable, editable): overrides the profile's default.
        self.profile: dict[str, tuple[bool, bool]] = {}
        self._grants: dict[str, tuple[bool, bool]] = {}

    def restrict(self, full_name: str) -> None:
        """Mark a field as needing a grant (it was created through the Metadata API)."""
        self.restricted.add(full_name.lower())
        self.recompute()

    def access(self, sobject: str, name: str) -> tuple[bool, bool]:
        """(readable, editable) of a field for the integration user, before its own flags."""
        key = f"{sobject}.{name}".lower()
        default = key not in self.restricted
        read, edit = self.profile.get(key, (default, default))
        granted = self._grants.get(key, (False, False))
        return read or granted[0], edit or granted[1]

    def set_access(self, full_name: str, readable: bool, editable: bool) -> None:
        """An admin's edit in Setup: the field's access in the profile and every permission set.

        (Access is the union of the profile and the assigned permission sets,
        so making a field read-only means changing each grant of it.)
        """
        key, readable = full_name.lower(), readable or editable
        self.profile[key] = (readable, editable)
        for ps in self.permission_sets.values():
            perm = ps.field_permissions.get(key)
            if perm is not None:
                ps.field_permissions[key] = FieldPermission(perm.field, readable, editable)
        self.recompute()

    def recompute(self, user_id: str | None = None) -> None:
        """Rebuild the grants from the assignments (call after any change)."""
        by_id = {p.id: p for p in self.permission_sets.values()}
        grants: dict[str, tuple[bool, bool]] = {}
        for assignee, ps_id in self.assignments.values():
            if user_id is not None and assignee != user_id:
                continue
            ps = by_id.get(ps_id)
            if ps is None:
                continue
            for key, perm in ps.field_permissions.items():
                read, edit = grants.get(key, (False, False))
                grants[key] = (read or perm.readable or perm.editable, edit or perm.editable)
        self._grants = grants

    def by_id(self, ps_id: str) -> PermissionSet | None:
        """A permission set by record id."""
        return next((p for p in self.permission_sets.values() if p.id == ps_id), None)

    def assigned(self, assignee: str, ps_id: str) -> bool:
        """True when the permission set is already assigned to the user."""
        return (assignee, ps_id) in self.assignments.values()

    def to_json(self) -> dict[str, Any]:
        """For :meth:`Org.save`."""
        return {
            "restricted": sorted(self.restricted),
            "permission_sets": [p.to_json() for p in self.permission_sets.values()],
            "assignments": {k: list(v) for k, v in self.assignments.items()},
            "can_assign": self.can_assign,
            "profile": {k: list(v) for k, v in self.profile.items()},
        }

    def load(self, data: Mapping[str, Any] | None) -> None:
        """Inverse of :meth:`to_json` (a save from before field-level security: nothing)."""
        if not data:
            return
        self.restricted = {str(n).lower() for n in data.get("restricted", [])}
        sets: Iterable[Mapping[str, Any]] = data.get("permission_sets", [])
        self.permission_sets = {
            p.name.lower(): p for p in (PermissionSet.from_json(d) for d in sets)
        }
        self.assignments = {
            str(k): (str(v[0]), str(v[1])) for k, v in data.get("assignments", {}).items()
        }
        self.can_assign = bool(data.get("can_assign", True))
        self.profile = {
            str(k): (bool(v[0]), bool(v[1])) for k, v in data.get("profile", {}).items()
        }
        self.recompute()
