"""Provisioning through the Metadata API (zeep): custom output fields, their picklists, access.

One :meth:`Provisioner.provision` call per object, in four steps:

1. **plan**: compare each output with the org (describe + ``CustomField`` metadata):
   create it, add new picklist values, put values back in the definition's order,
   or report a conflict; note every field the integration user cannot yet read
   or edit, inputs included;
2. **apply**: create and update fields, 10 components a call;
3. **grant**: a field created through the Metadata API is visible to no profile
   until granted (field-level security). segsync keeps one permission set,
   ``Segsync``, granting read and edit on its outputs (read on custom inputs it
   cannot see), and assigns it to the integration user (the user the token
   names). When the user may not do that, the report carries the exact steps
   for an admin;
4. **verify**: describe again; every output must be updateable and every input
   readable, else ``missing_access``.

Picklists only ever gain values (values no longer defined are reported as
``stale_options``, never deleted). A dry run reads but changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from simple_salesforce.util import exception_handler

from connector.crm.base import ObjectName, OutputField, ProvisionAction, ProvisionReport
from connector.crm.limits import SF_CUSTOM_NAME_MAX, SF_METADATA_BATCH, BudgetExhausted
from connector.crm.salesforce.describe import Describer, Fields, lookup
from connector.crm.salesforce.session import Client, SalesforceSession
from connector.crm.salesforce.soql import PARENT, SOBJECTS
from connector.errors import FatalSyncError

#: The permission set segsync keeps (API name and label).
log = logging.getLogger(__name__)

PERMISSION_SET = "Segsync"
PERMISSION_SET_LABEL = "segsync"
#: Documented limits of a custom field's texts.
HELP_TEXT_MAX = 510
DESCRIPTION_MAX = 1000

_KINDS: dict[str, str] = {
    # OutputField.kind -> Metadata API field type
    "picklist": "Picklist",
    "number": "Number",
    "text": "Text",
    "longtext": "LongTextArea",
    "datetime": "DateTime",
}
_DESCRIBE_TYPES: dict[str, set[str]] = {
    # OutputField.kind -> describe types an existing field may have
    "picklist": {"picklist"},
    "number": {"double", "int", "currency", "percent"},
    "text": {"string"},
    "longtext": {"textarea"},
    "datetime": {"datetime"},
}


TRACKED_KINDS = frozenset({"picklist", "number"})
"""Output kinds created with field history: segment, tier, persona and scores, the
values a person pins by hand (text and dates change with every write)."""


def _value_set(values: Sequence[str]) -> dict[str, Any]:
    return {
        "restricted": True,
        "valueSetDefinition": {
            "sorted": False,
            "value": [{"fullName": v, "label": v, "default": False} for v in values],
        },
    }


def _picklist_values(meta: Any) -> list[tuple[str, str]]:
    value_set = getattr(meta, "valueSet", None)
    definition = getattr(value_set, "valueSetDefinition", None) if value_set else None
    values = getattr(definition, "value", None) or []
    return [(str(v.fullName), str(getattr(v, "label", None) or v.fullName)) for v in values]


def _help(out: OutputField) -> str:
    return (out.help or out.description)[:HELP_TEXT_MAX]


@dataclass
class _Change:
    """An existing field to update: values to add, and the order the values should have."""

    out: OutputField
    meta: Any
    new: list[str]
    order: list[str]


@dataclass
class _Plan:
    """What one provision call will do."""

    create: list[OutputField] = field(default_factory=list)
    update: list[_Change] = field(default_factory=list)
    #: Full names (``Account.X__c``) to grant, with whether to grant edit too.
    grant: dict[str, bool] = field(default_factory=dict)
    #: Outputs whose access is checked after the grant: name → full name.
    outputs: dict[str, str] = field(default_factory=dict)
    #: Inputs (as the mapping spells them) whose read access is checked after the grant.
    inputs: list[str] = field(default_factory=list)


class Provisioner:
    """Creates and extends segsync's output fields on one org, and grants access to them."""

    def __init__(self, session: SalesforceSession, describer: Describer) -> None:
        self._session = session
        self._describer = describer

    def provision(
        self,
        obj: ObjectName,
        outputs: Sequence[OutputField],
        inputs: Sequence[str],
        dry_run: bool,
    ) -> ProvisionReport:
        """Create missing output fields, add new picklist values, grant and check access.

        Nothing is ever deleted: picklist values no longer defined are reported as
        ``stale_options``. A dry run reads but changes nothing.
        """
        sobject = SOBJECTS[obj]
        _check_names(sobject, outputs)
        report = ProvisionReport("salesforce")
        plan = _Plan()
        described = self._describer.fields(sobject, fresh=True)
        self._plan_outputs(obj, sobject, outputs, described, plan, report)
        self._plan_inputs(obj, inputs, described, plan, report)
        if dry_run:
            if plan.grant:
                report.actions.append(self._grant_action(obj, plan, "would grant"))
            return report
        self._apply(sobject, plan)
        if plan.grant:
            self._grant(obj, plan, report)
        if plan.grant or plan.create:
            self._verify(obj, sobject, plan, report)
        return report

    # ------------------------------------------------------------------ plan
    def _plan_outputs(
        self,
        obj: ObjectName,
        sobject: str,
        outputs: Sequence[OutputField],
        described: Fields,
        plan: _Plan,
        report: ProvisionReport,
    ) -> None:
        full = {o.name: f"{sobject}.{o.name}" for o in outputs}
        existing = self._read_metadata(list(full.values()))
        for out in outputs:
            meta = existing.get(full[out.name])
            entry = lookup(described, out.name)
            if meta is None and entry is None:
                report.actions.append(ProvisionAction(obj, out.name, "create", _KINDS[out.kind]))
                plan.create.append(out)
                plan.grant[full[out.name]] = True
                plan.outputs[out.name] = full[out.name]
                continue
            if entry is None:
                # It exists but field-level security hides it: grant it.
                plan.grant[full[out.name]] = True
                plan.outputs[out.name] = full[out.name]
                if _metadata_type(meta) != _KINDS[out.kind]:
                    report.actions.append(_conflict(obj, out, str(_metadata_type(meta))))
                    continue
                self._plan_options(obj, out, meta, None, plan, report)
                continue
            if str(entry.get("type")) not in _DESCRIBE_TYPES[out.kind]:
                report.actions.append(_conflict(obj, out, str(entry.get("type"))))
                continue
            if not entry.get("updateable"):
                plan.grant[full[out.name]] = True
                plan.outputs[out.name] = full[out.name]
            self._plan_options(obj, out, meta, entry, plan, report)

    def _plan_options(
        self,
        obj: ObjectName,
        out: OutputField,
        meta: Any,
        entry: dict[str, Any] | None,
        plan: _Plan,
        report: ProvisionReport,
    ) -> None:
        """New picklist values, values out of the definition's order, stale values."""
        if out.kind != "picklist":
            report.actions.append(ProvisionAction(obj, out.name, "ok"))
            return
        have = (
            [v for v, _ in _picklist_values(meta)]
            if meta is not None
            else [str(p["value"]) for p in (entry or {}).get("picklistValues") or []]
        )
        new = [v for v in out.options if v not in have]
        stale = [v for v in have if v not in out.options]
        # The definition's ranking first (Tier 1, Tier 2, Tier 3), then what is kept.
        order = [*out.options, *stale]
        reorder = not new and have != order
        if new:
            report.actions.append(ProvisionAction(obj, out.name, "add_options", ", ".join(new)))
        elif reorder:
            report.actions.append(
                ProvisionAction(obj, out.name, "reorder_options", ", ".join(order))
            )
        else:
            report.actions.append(ProvisionAction(obj, out.name, "ok"))
        if new or reorder:
            if meta is not None:
                plan.update.append(_Change(out, meta, new, order))
            else:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        "cannot read the field's metadata to change its values "
                        "(the user needs Customize Application)",
                    )
                )
        if stale:
            report.actions.append(
                ProvisionAction(
                    obj, out.name, "stale_options", f"no longer defined, kept: {', '.join(stale)}"
                )
            )

    def _plan_inputs(
        self,
        obj: ObjectName,
        inputs: Sequence[str],
        described: Fields,
        plan: _Plan,
        report: ProvisionReport,
    ) -> None:
        """Inputs the user cannot read: custom ones that exist get a read grant."""
        parent: Fields | None = None
        hidden: dict[str, str] = {}  # input as spelled -> full name
        for name in inputs:
            sobject, fields, short = SOBJECTS[obj], described, name
            if obj == "contact" and name.startswith(PARENT + "."):
                if parent is None:
                    parent = self._describer.fields(PARENT, fresh=True)
                sobject, fields, short = PARENT, parent, name[len(PARENT) + 1 :]
            if lookup(fields, short) is not None:
                continue
            if short.endswith("__c"):
                hidden[name] = f"{sobject}.{short}"
            else:
                report.actions.append(_missing_input(obj, name))
        if not hidden:
            return
        existing = self._read_metadata(list(hidden.values()))
        for name, full in hidden.items():
            if full not in existing:
                report.actions.append(_missing_input(obj, name))
                continue
            plan.grant.setdefault(full, False)
            plan.inputs.append(name)

    # ------------------------------------------------------------------ apply
    def _apply(self, sobject: str, plan: _Plan) -> None:
        for start in range(0, len(plan.create), SF_METADATA_BATCH):
            chunk = plan.create[start : start + SF_METADATA_BATCH]
            try:
                self._session.call(
                    f"create fields on {sobject}",
                    partial(self._md_create, sobject=sobject, outputs=chunk),
                )
            except FatalSyncError as exc:
                if "history" not in str(exc).lower():
                    raise
                # The org tracks its maximum of fields already: create them
                # untracked (overrides then rest on the state store alone).
                log.warning("%s: output fields created without history tracking (%s)", sobject, exc)
                self._session.call(
                    f"create fields on {sobject}",
                    partial(self._md_create, sobject=sobject, outputs=chunk, track=False),
                )
        for start in range(0, len(plan.update), SF_METADATA_BATCH):
            batch = plan.update[start : start + SF_METADATA_BATCH]
            self._session.call(
                f"update fields on {sobject}",
                partial(self._md_update, sobject=sobject, changes=batch),
            )

    # ------------------------------------------------------------------ grant
    def _grant(self, obj: ObjectName, plan: _Plan, report: ProvisionReport) -> None:
        """Extend the Segsync permission set and assign it; else say what an admin must do."""
        try:
            self._extend_permission_set(plan.grant)
        except BudgetExhausted:
            raise
        except FatalSyncError as exc:
            report.actions.append(self._manual_steps(obj, plan, f"cannot change it ({exc})"))
            return
        user: str | None = None
        try:
            user = self._user_id()
            assigned = self._assign(user)
        except BudgetExhausted:
            raise
        except FatalSyncError as exc:
            who = f" ({user})" if user else ""
            report.actions.append(self._manual_steps(obj, plan, f"cannot assign it ({exc})", who))
            return
        how = "assigned it to" if assigned else "already assigned to"
        report.actions.append(self._grant_action(obj, plan, f"granted; {how} user {user}:"))

    def _grant_action(self, obj: ObjectName, plan: _Plan, verb: str) -> ProvisionAction:
        granted = ", ".join(
            f"{name} ({'read, edit' if edit else 'read'})" for name, edit in plan.grant.items()
        )
        return ProvisionAction(
            obj, f"permission set {PERMISSION_SET}", "grant", f"{verb} {granted}"
        )

    def _manual_steps(
        self, obj: ObjectName, plan: _Plan, why: str, who: str = ""
    ) -> ProvisionAction:
        edit = [n for n, e in plan.grant.items() if e]
        read = [n for n, e in plan.grant.items() if not e]
        steps = [
            f"the integration user{who} {why}. An admin must, in Setup > Permission Sets, "
            f"open (or create) '{PERMISSION_SET_LABEL}' (API name {PERMISSION_SET})",
        ]
        if edit:
            steps.append(f"under Field Permissions give Read and Edit on {', '.join(edit)}")
        if read:
            steps.append(f"give Read on {', '.join(read)}")
        steps.append(
            f"then Manage Assignments > Add Assignment: the integration user{who}; "
            "then run `segsync provision` again"
        )
        return ProvisionAction(
            obj, f"permission set {PERMISSION_SET}", "missing_access", "; ".join(steps)
        )

    def _extend_permission_set(self, fields: dict[str, bool]) -> None:
        """Upsert the permission set with its current grants plus ``fields`` (never fewer).

        An update replaces the set's field permissions, so the current ones are read
        first and sent back with the new ones.
        """
        current = self._session.call(
            "read the Segsync permission set",
            lambda c: self._session.mdapi(c).PermissionSet.read([PERMISSION_SET]),
        )
        exists = current is not None and bool(getattr(current, "fullName", None))
        perms: dict[str, tuple[bool, bool]] = {}
        description = "Fields segsync reads and writes (managed by `segsync provision`)."
        if exists:
            for p in getattr(current, "fieldPermissions", None) or []:
                perms[str(p.field)] = (bool(p.readable), bool(p.editable))
            description = str(getattr(current, "description", None) or description)
        changed = False
        for name, edit in fields.items():
            read_now, edit_now = perms.get(name, (False, False))
            if not read_now or (edit and not edit_now):
                perms[name] = (True, edit or edit_now)
                changed = True
        if exists and not changed:
            return

        def upsert(client: Client) -> None:
            md = self._session.mdapi(client)
            md.PermissionSet.upsert(
                [
                    md.PermissionSet(
                        fullName=PERMISSION_SET,
                        label=PERMISSION_SET_LABEL,
                        description=description,
                        fieldPermissions=[
                            {"field": name, "readable": read, "editable": edit}
                            for name, (read, edit) in perms.items()
                        ],
                    )
                ]
            )

        self._session.call("update the Segsync permission set", upsert)

    def _user_id(self) -> str:
        """The integration user: the token's identity URL, or OpenID Connect userinfo."""
        url = self._session.identity_url

        def who(client: Client) -> str:
            target = url or f"https://{client.sf.sf_instance}/services/oauth2/userinfo"
            response = client.sf.session.get(
                target, headers={"Authorization": f"Bearer {client.sf.session_id}"}
            )
            if response.status_code >= 300:
                exception_handler(response, "identity")
            user = response.json().get("user_id")
            if not isinstance(user, str) or not user:
                raise FatalSyncError("Salesforce identity: the answer named no user_id")
            return user

        return self._session.call("find the integration user", who)

    def _assign(self, user: str) -> bool:
        """Assign the permission set to ``user``; False when it already was."""
        ps = self._session.call(
            "find the Segsync permission set",
            lambda c: c.sf.query(f"SELECT Id FROM PermissionSet WHERE Name = '{PERMISSION_SET}'"),
        )
        records = ps.get("records") or []
        if not records:
            raise FatalSyncError("Salesforce: the Segsync permission set was not found")
        ps_id = str(records[0]["Id"])
        found = self._session.call(
            "read permission set assignments",
            lambda c: c.sf.query(
                "SELECT Id FROM PermissionSetAssignment "
                f"WHERE AssigneeId = '{user}' AND PermissionSetId = '{ps_id}'"
            ),
        )
        if found.get("totalSize"):
            return False
        self._session.call(
            "assign the Segsync permission set",
            lambda c: c.sobject("PermissionSetAssignment").create(
                {"AssigneeId": user, "PermissionSetId": ps_id}
            ),
        )
        return True

    # ------------------------------------------------------------------ verify
    def _verify(self, obj: ObjectName, sobject: str, plan: _Plan, report: ProvisionReport) -> None:
        """Describe again: every output updateable, every granted input readable."""
        after = self._describer.fields(sobject, fresh=True)
        for name in plan.outputs:
            entry = lookup(after, name)
            if entry is None or not entry.get("updateable"):
                report.actions.append(
                    ProvisionAction(
                        obj,
                        name,
                        "missing_access",
                        "the integration user cannot "
                        + ("see" if entry is None else "edit")
                        + f" it yet: it needs the {PERMISSION_SET} permission set (see its row)",
                    )
                )
        parent: Fields | None = None
        for name in plan.inputs:
            fields, short = after, name
            if obj == "contact" and name.startswith(PARENT + "."):
                if parent is None:
                    parent = self._describer.fields(PARENT, fresh=True)
                fields, short = parent, name[len(PARENT) + 1 :]
            if lookup(fields, short) is None:
                report.actions.append(_missing_input(obj, name))

    # ------------------------------------------------------------------ metadata calls
    def _read_metadata(self, names: Sequence[str]) -> dict[str, Any]:
        """Full name → CustomField metadata, for those that exist."""
        found: dict[str, Any] = {}
        for start in range(0, len(names), SF_METADATA_BATCH):
            chunk = list(names[start : start + SF_METADATA_BATCH])
            result = self._session.call("read custom fields", partial(self._md_read, names=chunk))
            items = result if isinstance(result, list) else [result]
            for name, item in zip(chunk, items, strict=False):
                if item is not None and getattr(item, "fullName", None):
                    found[name] = item
        return found

    def _md_read(self, client: Client, names: list[str]) -> Any:
        return self._session.mdapi(client).CustomField.read(names)

    def _new_field(self, client: Client, sobject: str, out: OutputField, track: bool = True) -> Any:
        md = self._session.mdapi(client)
        spec: dict[str, Any] = {
            "fullName": f"{sobject}.{out.name}",
            "label": out.label[:40],
            "description": out.description[:DESCRIPTION_MAX],
            # What a rep sees on hover; `description` is for admins only.
            "inlineHelpText": _help(out),
            "type": _KINDS[out.kind],
        }
        if track and out.kind in TRACKED_KINDS:
            # Field history tells a person's value from segsync's own even
            # when the state store knows nothing (docs/crm-apis.md).
            spec["trackHistory"] = True
        if out.kind == "picklist":
            spec["valueSet"] = _value_set(out.options)
        elif out.kind == "number":
            # Scores are whole numbers from 0 to 100: Number(3, 0) holds them exactly.
            spec.update(precision=3, scale=0)
        elif out.kind == "text":
            spec["length"] = 255
        elif out.kind == "longtext":
            spec.update(length=32768, visibleLines=3)
        return md.CustomField(**spec)

    def _md_create(
        self,
        client: Client,
        sobject: str,
        outputs: Sequence[OutputField],
        track: bool = True,
    ) -> None:
        fields = [self._new_field(client, sobject, o, track) for o in outputs]
        self._session.mdapi(client).CustomField.create(fields)

    def _md_update(self, client: Client, sobject: str, changes: Sequence[_Change]) -> None:
        fields = [self._extended(client, sobject, c) for c in changes]
        self._session.mdapi(client).CustomField.update(fields)

    def _extended(self, client: Client, sobject: str, change: _Change) -> Any:
        """The field's definition with its values in ``change.order`` (updates replace the set)."""
        md = self._session.mdapi(client)
        out, meta = change.out, change.meta
        current = _picklist_values(meta)
        value_set = _value_set(change.order)
        labels = dict(current)
        for value in value_set["valueSetDefinition"]["value"]:
            value["label"] = labels.get(value["fullName"], value["fullName"])
        restricted = getattr(getattr(meta, "valueSet", None), "restricted", True)
        value_set["restricted"] = True if restricted is None else bool(restricted)
        return md.CustomField(
            fullName=f"{sobject}.{out.name}",
            label=getattr(meta, "label", None) or out.label[:40],
            description=getattr(meta, "description", None) or out.description[:DESCRIPTION_MAX],
            # An update replaces the whole definition: keep (or first set) the hover help.
            inlineHelpText=getattr(meta, "inlineHelpText", None) or _help(out),
            type="Picklist",
            valueSet=value_set,
        )


def _check_names(sobject: str, outputs: Sequence[OutputField]) -> None:
    too_long = [o.name for o in outputs if len(o.name.removesuffix("__c")) > SF_CUSTOM_NAME_MAX]
    if too_long or any(not o.name.endswith("__c") for o in outputs):
        raise FatalSyncError(
            f"Salesforce provision {sobject}: output names must end in __c with at most "
            f"{SF_CUSTOM_NAME_MAX} characters before it: "
            + ", ".join(o.name for o in outputs if o.name in too_long or "__c" not in o.name)
        )


def _metadata_type(meta: Any) -> str | None:
    kind = getattr(meta, "type", None)
    return str(kind) if kind is not None else None


def _conflict(obj: ObjectName, out: OutputField, found: str) -> ProvisionAction:
    return ProvisionAction(
        obj,
        out.name,
        "missing_access",
        f"the field exists as {found}, not {_KINDS[out.kind]}: rename one of them",
    )


def _missing_input(obj: ObjectName, name: str) -> ProvisionAction:
    return ProvisionAction(
        obj,
        name,
        "missing_access",
        "input field does not exist or the integration user cannot read it (field-level security)",
    )
