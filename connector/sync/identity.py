"""Reading identity keys from the CRMs: which fields identify a record, and matching them.

The matching itself is pure (:mod:`connector.analysis.identity`); this module
knows the CRMs' field names, puts ids in their canonical form, and reads the
keys through an adapter. ``segsync parity`` and the agreement policy
(:mod:`connector.sync.agreement`) share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connector.analysis.identity import (
    Identity,
    Keys,
    match_records,
    normalize_domain,
    normalize_email,
    normalize_text,
)
from connector.config import ParityMatch
from connector.crm.base import CrmAdapter, ObjectName
from connector.crm.ids import link_key, salesforce_id18
from connector.errors import ConfigError, Problem

#: The fields, besides a mapping's inputs, that identify a record in each CRM.
IDENTITY_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "account": {
        "salesforce": ("Website",),
        "hubspot": ("domain", "website", "salesforceaccountid"),
    },
    "contact": {
        "salesforce": ("Email", "AccountId"),
        "hubspot": ("email", "salesforcecontactid", "associatedcompanyid"),
    },
}

#: The HubSpot property where HubSpot's Salesforce integration keeps the Salesforce id.
INTEGRATION_ID = {"account": "salesforceaccountid", "contact": "salesforcecontactid"}


def identity_keys(
    obj: str, crm: str, records: Mapping[str, Mapping[str, Any]], match: ParityMatch | None
) -> list[Keys]:
    """The normalized identity keys of one CRM's records (id → raw fields)."""
    out = []
    attribute_field = getattr(match, crm) if match is not None else None
    for record_id, fields in records.items():
        integration: str | None
        if crm == "salesforce":
            integration = record_id
            domain = normalize_domain(fields.get("Website")) if obj == "account" else None
            email = normalize_email(fields.get("Email")) if obj == "contact" else None
        else:
            stored = fields.get(INTEGRATION_ID[obj])
            integration = salesforce_id18(str(stored)) if stored else None
            domain = (
                normalize_domain(fields.get("domain")) or normalize_domain(fields.get("website"))
                if obj == "account"
                else None
            )
            email = normalize_email(fields.get("email")) if obj == "contact" else None
        attribute = normalize_text(fields.get(attribute_field)) if attribute_field else None
        out.append(Keys(record_id, integration, domain, email, attribute))
    return out


def identify(
    obj: str,
    salesforce: Mapping[str, Mapping[str, Any]],
    hubspot: Mapping[str, Mapping[str, Any]],
    match: ParityMatch | None,
) -> Identity:
    """Match one object's records of the two CRMs (keys built here, matching pure)."""
    methods = ["integration_id", "domain" if obj == "account" else "email"]
    if match is not None:
        methods.append("attribute")
    return match_records(
        identity_keys(obj, "salesforce", salesforce, match),
        identity_keys(obj, "hubspot", hubspot, match),
        methods,
    )


def readable_fields(
    adapter: CrmAdapter, obj: ObjectName, wanted: Sequence[str], match: ParityMatch | None
) -> list[str]:
    """``wanted`` plus the identity fields, less those the CRM does not have.

    The integration's id exists only where the integration is installed: a
    field the CRM lacks is simply not read. A ``match_on`` field it lacks is
    a configuration error.
    """
    crm = adapter.crm
    names = [*wanted, *IDENTITY_FIELDS[obj][crm]]
    if match is not None:
        names.append(getattr(match, crm))
    names = list(dict.fromkeys(names))
    specs = adapter.describe(obj, names)
    if match is not None and not specs[getattr(match, crm)].exists:
        raise ConfigError(
            [
                Problem(
                    "parity.match_on",
                    f"{obj}.{crm}",
                    f"{crm} has no field {getattr(match, crm)!r} on {obj}s",
                )
            ]
        )
    return [name for name in names if specs[name].exists]


def read_all(
    adapter: CrmAdapter, obj: ObjectName, fields: Sequence[str], since: datetime | None = None
) -> dict[str, Mapping[str, Any]]:
    """Every record of ``obj`` (modified at or after ``since``), id (canonical) → fields."""
    records: dict[str, Mapping[str, Any]] = {}
    for page in adapter.pull(obj, fields, since):
        for record in page:
            records[link_key(record.id, adapter.crm) or record.id] = record.fields
    return records
