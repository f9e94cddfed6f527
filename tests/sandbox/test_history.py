"""Contract tests: the audit trails the connector reads, with the real clients.

HubSpot: a batch update answers ``updatedAt`` (the record's new
``hs_lastmodifieddate``) per record; ``propertiesWithHistory`` on batch read
and get names each value's source: the private app as ``INTEGRATION``, an
edit in the UI as ``CRM_UI`` with the user's id. Salesforce: writes through
the API carry the integration user as ``LastModifiedById``, edits in the UI
another user; a field created with ``trackHistory`` gets one
``AccountHistory`` row per change, queryable by SOQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hubspot.crm.companies import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
)
from hubspot_fixtures import running, seeded_portal
from sandbox_fixtures import hold_clock
from simple_salesforce.api import Salesforce

from connector.crm.base import parse_stamp
from segsync_sandbox.hubspot import HubSpotSandbox
from segsync_sandbox.hubspot.portal import PRIVATE_APP_ID, UI_USER_ID
from segsync_sandbox.salesforce import SalesforceSandbox
from segsync_sandbox.salesforce.access import FieldPermission
from segsync_sandbox.salesforce.org import UI_USER_ID as SF_UI_USER
from segsync_sandbox.salesforce.org import USER_ID as SF_API_USER


@pytest.fixture
def hs() -> Iterator[tuple[HubSpotSandbox, list[str]]]:
    portal, company_ids, _ = seeded_portal(6)
    with running(portal) as sb:
        yield sb, company_ids


def test_hubspot_batch_update_answers_the_new_stamp(hs: tuple[HubSpotSandbox, list[str]]) -> None:
    sb, ids = hs
    client = sb.client()
    answer = client.crm.companies.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": i, "properties": {"city": "Lyon"}} for i in ids[:3]]
        )
    )
    stamps = {r.id: r.updated_at for r in answer.results}
    assert set(stamps) == set(ids[:3])
    for record_id, updated_at in stamps.items():
        stored = sb.portal.get("companies", record_id)["properties"]["hs_lastmodifieddate"]
        assert updated_at == parse_stamp(stored)


def test_hubspot_history_names_the_source_of_each_value(
    hs: tuple[HubSpotSandbox, list[str]],
) -> None:
    sb, ids = hs
    client = sb.client()
    record = ids[0]
    client.crm.companies.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": record, "properties": {"city": "Lyon"}}]
        )
    )
    sb.portal.update("companies", record, {"city": "Nantes"})  # a person, in the UI
    answer = client.crm.companies.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": record}], properties=["city"], properties_with_history=["city"]
        )
    )
    (result,) = answer.results
    history = result.properties_with_history["city"]
    assert [h.value for h in history][:2] == ["Nantes", "Lyon"]
    person, app = history[0], history[1]
    assert (person.source_type, person.updated_by_user_id) == ("CRM_UI", UI_USER_ID)
    assert person.source_id == f"userId:{UI_USER_ID}"
    assert (app.source_type, app.source_id, app.updated_by_user_id) == (
        "INTEGRATION",
        PRIVATE_APP_ID,
        None,
    )
    assert history[0].timestamp > history[1].timestamp
    single = client.crm.companies.basic_api.get_by_id(
        record, properties=["city"], properties_with_history=["city"]
    )
    assert single.properties_with_history["city"][0].source_type == "CRM_UI"


def _mdapi(sf: Salesforce, sandbox: SalesforceSandbox) -> Any:
    """sf.mdapi with zeep's own session trusting the sandbox CA (zeep ignores the client's)."""
    mdapi = sf.mdapi
    session = mdapi._client.transport.session
    session.verify = str(sandbox.ca_file)
    session.trust_env = False
    return mdapi


def _tracked_field(mdapi: Any) -> None:
    mdapi.CustomField.create(
        [
            mdapi.CustomField(
                fullName="Account.Tier__c",
                label="Tier",
                type="Picklist",
                trackHistory=True,
                valueSet={
                    "restricted": True,
                    "valueSetDefinition": {
                        "sorted": False,
                        "value": [
                            {"fullName": v, "label": v, "default": False}
                            for v in ("Tier 1", "Tier 2")
                        ],
                    },
                },
            )
        ]
    )


def test_salesforce_field_history_and_last_modifier(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    org = sf_sandbox.org
    org.load_accounts([{"Name": "Acme"}])
    (account,) = [r["Id"] for r in org.records("Account")]
    mdapi = _mdapi(sf, sf_sandbox)
    _tracked_field(mdapi)
    assert mdapi.CustomField.read("Account.Tier__c").trackHistory is True
    # A field made through the Metadata API is nobody's until a permission set grants it.
    org.upsert_permission_set(
        "Segsync", "segsync", "", [FieldPermission("Account.Tier__c", True, True)]
    )
    ps = org.read_permission_set("Segsync")
    assert ps is not None
    org.create("PermissionSetAssignment", {"AssigneeId": SF_API_USER, "PermissionSetId": ps.id})
    clock = hold_clock(sf_sandbox)
    sf.Account.update(account, {"Tier__c": "Tier 2"})  # the integration user
    row = sf.query(f"SELECT LastModifiedById FROM Account WHERE Id = '{account}'")["records"][0]
    assert row["LastModifiedById"] == SF_API_USER
    clock.advance(1)  # the next second: CreatedDate orders the two rows
    org.update("Account", account, {"Tier__c": "Tier 1"})  # a person, in the UI
    row = sf.query(f"SELECT LastModifiedById FROM Account WHERE Id = '{account}'")["records"][0]
    assert row["LastModifiedById"] == SF_UI_USER
    rows: list[dict[str, Any]] = sf.query(
        "SELECT AccountId, Field, OldValue, NewValue, CreatedById, CreatedDate "
        f"FROM AccountHistory WHERE AccountId IN ('{account}') AND Field IN ('Tier__c') "
        "ORDER BY CreatedDate DESC"
    )["records"]
    assert [(r["NewValue"], r["OldValue"], r["CreatedById"]) for r in rows] == [
        ("Tier 1", "Tier 2", SF_UI_USER),
        ("Tier 2", None, SF_API_USER),
    ]
    # Untracked fields leave no history.
    org.update("Account", account, {"Name": "Acme Corp"})
    assert sf.query("SELECT COUNT() FROM AccountHistory")["totalSize"] == 2
    # Rows of one second: CreatedDate keeps whole seconds, and their Ids follow
    # no order in time (Salesforce documents none; the sandbox takes it at its word).
    for n in range(6):
        org.update("Account", account, {"Tier__c": ("Tier 2", "Tier 1")[n % 2]})
    rows = sf.query(
        "SELECT Id, NewValue, CreatedDate FROM AccountHistory "
        f"WHERE AccountId = '{account}' ORDER BY CreatedDate DESC, Id DESC LIMIT 6"
    )["records"]
    assert len({r["CreatedDate"] for r in rows}) == 1
    ids = [r["Id"] for r in rows]
    created = [r["Id"] for r in org.records("AccountHistory") if r["Id"] in ids]  # in turn
    assert sorted(created) == sorted(ids)
    assert created not in (sorted(ids), sorted(ids, reverse=True))
