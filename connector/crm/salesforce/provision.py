"""Provisioning through the Metadata API (zeep): custom output fields and their picklists.

Missing output fields are created; picklists only ever gain values (values no
longer defined are reported as ``stale_options``, never deleted); every input
and output field is checked against what the integration user can see and
edit. New fields need field-level security before that user sees them (a
permission set, in a real org); provisioning reports it rather than granting it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from connector.crm.base import ObjectName, OutputField, ProvisionAction, ProvisionReport
from connector.crm.limits import SF_CUSTOM_NAME_MAX, SF_METADATA_BATCH
from connector.crm.salesforce.describe import Describer, lookup
from connector.crm.salesforce.session import Client, SalesforceSession
from connector.crm.salesforce.soql import PARENT, SOBJECTS
from connector.errors import FatalSyncError

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


class Provisioner:
    """Creates and extends segsync's output fields on one org."""

    def __init__(self, session: SalesforceSession, describer: Describer) -> None:
        self._session = session
        self._describer = describer

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

    def _new_field(self, client: Client, sobject: str, out: OutputField) -> Any:
        md = self._session.mdapi(client)
        spec: dict[str, Any] = {
            "fullName": f"{sobject}.{out.name}",
            "label": out.label[:40],
            "description": out.description,
            "type": _KINDS[out.kind],
        }
        if out.kind == "picklist":
            spec["valueSet"] = _value_set(out.options)
        elif out.kind == "number":
            # Scores are whole numbers from 0 to 100 (FACTS / shared vocabulary: Number(3,0)).
            spec.update(precision=3, scale=0)
        elif out.kind == "text":
            spec["length"] = 255
        elif out.kind == "longtext":
            spec.update(length=32768, visibleLines=3)
        return md.CustomField(**spec)

    def provision(
        self,
        obj: ObjectName,
        outputs: Sequence[OutputField],
        inputs: Sequence[str],
        dry_run: bool,
    ) -> ProvisionReport:
        """Create missing output fields, add new picklist values, check access to every field.

        Nothing is ever deleted: picklist values no longer defined are reported as
        ``stale_options``. A dry run reads but changes nothing.
        """
        sobject = SOBJECTS[obj]
        report = ProvisionReport("salesforce")
        too_long = [o.name for o in outputs if len(o.name.removesuffix("__c")) > SF_CUSTOM_NAME_MAX]
        if too_long or any(not o.name.endswith("__c") for o in outputs):
            raise FatalSyncError(
                f"Salesforce provision {sobject}: output names must end in __c with at most "
                f"{SF_CUSTOM_NAME_MAX} characters before it: "
                + ", ".join(o.name for o in outputs if o.name in too_long or "__c" not in o.name)
            )
        described = self._describer.fields(sobject, fresh=True)
        parent_described: dict[str, dict[str, Any]] | None = None
        for name in inputs:
            fields, short = described, name
            if obj == "contact" and name.startswith(PARENT + "."):
                if parent_described is None:
                    parent_described = self._describer.fields(PARENT, fresh=True)
                fields, short = parent_described, name[len(PARENT) + 1 :]
            if lookup(fields, short) is None:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        name,
                        "missing_access",
                        "input field does not exist or the integration user cannot read it "
                        "(field-level security)",
                    )
                )
        full = {o.name: f"{sobject}.{o.name}" for o in outputs}
        existing = self._read_metadata(list(full.values()))
        to_create: list[OutputField] = []
        to_update: list[tuple[OutputField, Any, list[str]]] = []
        for out in outputs:
            meta = existing.get(full[out.name])
            entry = lookup(described, out.name)
            if meta is None and entry is None:
                report.actions.append(ProvisionAction(obj, out.name, "create", _KINDS[out.kind]))
                to_create.append(out)
                continue
            if entry is None:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        "the field exists but the integration user cannot see it: grant "
                        "read and edit field-level security through a permission set",
                    )
                )
                continue
            if str(entry.get("type")) not in _DESCRIBE_TYPES[out.kind]:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        f"the field exists as {entry.get('type')}, not {_KINDS[out.kind]}: "
                        "rename one of them",
                    )
                )
                continue
            if not entry.get("updateable"):
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        "the integration user cannot edit the field (field-level security)",
                    )
                )
                continue
            if out.kind != "picklist":
                report.actions.append(ProvisionAction(obj, out.name, "ok"))
                continue
            have = (
                [v for v, _ in _picklist_values(meta)]
                if meta is not None
                else [str(p["value"]) for p in entry.get("picklistValues") or []]
            )
            new = [v for v in out.options if v not in have]
            stale = [v for v in have if v not in out.options]
            if new:
                report.actions.append(ProvisionAction(obj, out.name, "add_options", ", ".join(new)))
                if meta is not None:
                    to_update.append((out, meta, new))
                else:
                    report.actions.append(
                        ProvisionAction(
                            obj,
                            out.name,
                            "missing_access",
                            "cannot read the field's metadata to extend its values "
                            "(the user needs Customize Application)",
                        )
                    )
            else:
                report.actions.append(ProvisionAction(obj, out.name, "ok"))
            if stale:
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "stale_options",
                        f"no longer defined, kept: {', '.join(stale)}",
                    )
                )
        if dry_run or not (to_create or to_update):
            return report
        for start in range(0, len(to_create), SF_METADATA_BATCH):
            chunk = to_create[start : start + SF_METADATA_BATCH]
            self._session.call(
                f"create fields on {sobject}",
                partial(self._md_create, sobject=sobject, outputs=chunk),
            )
        for start in range(0, len(to_update), SF_METADATA_BATCH):
            batch = to_update[start : start + SF_METADATA_BATCH]
            self._session.call(
                f"update fields on {sobject}",
                partial(self._md_update, sobject=sobject, changes=batch),
            )
        # New fields need field-level security before the integration user sees them
        # (real orgs: a permission set); check what the describe shows now.
        after = self._describer.fields(sobject, fresh=True)
        for out in to_create:
            entry = lookup(after, out.name)
            if entry is None or not entry.get("updateable"):
                report.actions.append(
                    ProvisionAction(
                        obj,
                        out.name,
                        "missing_access",
                        "created, but the integration user cannot "
                        + ("see" if entry is None else "edit")
                        + " it yet: grant field-level security through a permission set",
                    )
                )
        return report

    def _md_read(self, client: Client, names: list[str]) -> Any:
        return self._session.mdapi(client).CustomField.read(names)

    def _md_create(self, client: Client, sobject: str, outputs: Sequence[OutputField]) -> None:
        fields = [self._new_field(client, sobject, o) for o in outputs]
        self._session.mdapi(client).CustomField.create(fields)

    def _md_update(
        self,
        client: Client,
        sobject: str,
        changes: Sequence[tuple[OutputField, Any, list[str]]],
    ) -> None:
        fields = [self._extended(client, sobject, o, meta, new) for o, meta, new in changes]
        self._session.mdapi(client).CustomField.update(fields)

    def _extended(
        self, client: Client, sobject: str, out: OutputField, meta: Any, new: Sequence[str]
    ) -> Any:
        """The field's definition with ``new`` values appended (updates replace the whole set)."""
        md = self._session.mdapi(client)
        current = _picklist_values(meta)
        value_set = _value_set([v for v, _ in current] + list(new))
        labels = dict(current)
        for value in value_set["valueSetDefinition"]["value"]:
            value["label"] = labels.get(value["fullName"], value["fullName"])
        restricted = getattr(getattr(meta, "valueSet", None), "restricted", True)
        value_set["restricted"] = True if restricted is None else bool(restricted)
        return md.CustomField(
            fullName=f"{sobject}.{out.name}",
            label=getattr(meta, "label", None) or out.label[:40],
            description=getattr(meta, "description", None) or out.description,
            type="Picklist",
            valueSet=value_set,
        )
