"""Contract tests: field-level security, permission sets and documented limits of the sandbox.

simple-salesforce (REST and its zeep ``mdapi``) against the sandbox over HTTPS.
Each test pins one behavior documented in docs/crm-apis.md ("Salesforce").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceMalformedRequest

from segsync_sandbox.salesforce import Org, SalesforceSandbox, make_id
from segsync_sandbox.salesforce.bulk import bulk_service
from segsync_sandbox.salesforce.org import USER_ID


@pytest.fixture(scope="module")
def _shared_mdapi(_sf_server: SalesforceSandbox) -> Any:
    mdapi = _sf_server.client().mdapi
    session = mdapi._client.transport.session
    session.verify = str(_sf_server.ca_file)
    session.trust_env = False
    return mdapi


@pytest.fixture
def mdapi(sf_sandbox: SalesforceSandbox, _shared_mdapi: Any) -> Any:
    return _shared_mdapi


def _tier(mdapi: Any) -> Any:
    return mdapi.CustomField(
        fullName="Account.Segsync_Tier__c",
        label="Tier",
        type="Picklist",
        valueSet={
            "restricted": True,
            "valueSetDefinition": {
                "sorted": False,
                "value": [
                    {"fullName": v, "label": v, "default": False} for v in ("Tier 1", "Tier 2")
                ],
            },
        },
    )


def _permission_set(mdapi: Any, readable: bool = True, editable: bool = True) -> Any:
    return mdapi.PermissionSet(
        fullName="Segsync",
        label="segsync",
        description="Fields segsync writes",
        fieldPermissions=[
            {"field": "Account.Segsync_Tier__c", "readable": readable, "editable": editable}
        ],
    )


def _user_id(sf: Salesforce) -> str:
    response = sf.session.get(
        f"https://{sf.sf_instance}/services/oauth2/userinfo",
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    response.raise_for_status()
    return str(response.json()["user_id"])


def _assign(sf: Salesforce) -> str:
    ps = sf.query("SELECT Id FROM PermissionSet WHERE Name = 'Segsync'")["records"][0]["Id"]
    created = sf.PermissionSetAssignment.create({"AssigneeId": _user_id(sf), "PermissionSetId": ps})
    return str(created["id"])


def _account_fields(sf: Salesforce) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in sf.Account.describe()["fields"]}


# --------------------------------------------------------------------------- field-level security


def test_a_field_created_through_the_metadata_api_is_invisible_until_granted(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, mdapi: Any
) -> None:
    account = sf_sandbox.org.insert("Account", {"Name": "Acme"})
    mdapi.CustomField.create([_tier(mdapi)])

    assert "Segsync_Tier__c" not in _account_fields(sf)
    with pytest.raises(SalesforceMalformedRequest) as query:
        sf.query("SELECT Id, Segsync_Tier__c FROM Account")
    assert query.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Segsync_Tier__c'" in query.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as write:
        sf.Account.update(account, {"Segsync_Tier__c": "Tier 1"})
    assert write.value.content[0]["errorCode"] == "INVALID_FIELD"
    # The Metadata API still sees it (it is the admin's view, not field-level security).
    assert mdapi.CustomField.read(["Account.Segsync_Tier__c"]).fullName == "Account.Segsync_Tier__c"
    # Fields the org was seeded with stay visible and writable.
    fields = _account_fields(sf)
    assert fields["Segsync_Lock__c"]["updateable"] is True
    assert fields["Tech_Stack__c"]["updateable"] is True


def test_a_permission_set_needs_an_assignment_before_it_grants_anything(
    sf: Salesforce, mdapi: Any
) -> None:
    mdapi.CustomField.create([_tier(mdapi)])
    mdapi.PermissionSet.create([_permission_set(mdapi)])
    assert "Segsync_Tier__c" not in _account_fields(sf)

    assignment = _assign(sf)
    tier = _account_fields(sf)["Segsync_Tier__c"]
    assert (tier["updateable"], tier["createable"]) == (True, True)
    found = sf.query(
        "SELECT AssigneeId, PermissionSetId FROM PermissionSetAssignment "
        f"WHERE AssigneeId = '{USER_ID}'"
    )
    assert found["totalSize"] == 1

    sf.PermissionSetAssignment.delete(assignment)
    assert "Segsync_Tier__c" not in _account_fields(sf)


def test_read_only_permission_shows_the_field_but_refuses_writes(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, mdapi: Any
) -> None:
    account = sf_sandbox.org.insert("Account", {"Name": "Acme"})
    mdapi.CustomField.create([_tier(mdapi)])
    mdapi.PermissionSet.create([_permission_set(mdapi, editable=False)])
    _assign(sf)

    assert _account_fields(sf)["Segsync_Tier__c"]["updateable"] is False
    assert sf.query("SELECT Segsync_Tier__c FROM Account")["totalSize"] == 1
    with pytest.raises(SalesforceMalformedRequest) as write:
        sf.Account.update(account, {"Segsync_Tier__c": "Tier 1"})
    assert write.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    # updateMetadata replaces the set's field permissions: now read and edit.
    mdapi.PermissionSet.update([_permission_set(mdapi)])
    sf.Account.update(account, {"Segsync_Tier__c": "Tier 1"})
    assert sf.Account.get(account)["Segsync_Tier__c"] == "Tier 1"


def test_permission_sets_read_back_and_validate(mdapi: Any) -> None:
    mdapi.CustomField.create([_tier(mdapi)])
    mdapi.PermissionSet.create([_permission_set(mdapi)])
    read = mdapi.PermissionSet.read(["Segsync"])
    assert (read.fullName, read.label, read.description) == (
        "Segsync",
        "segsync",
        "Fields segsync writes",
    )
    assert [(p.field, p.readable, p.editable) for p in read.fieldPermissions] == [
        ("Account.Segsync_Tier__c", True, True)
    ]
    assert mdapi.PermissionSet.read(["Nope"]).fullName is None
    with pytest.raises(Exception, match="INVALID_CROSS_REFERENCE_KEY"):
        mdapi.PermissionSet.update(
            [
                mdapi.PermissionSet(
                    fullName="Segsync",
                    label="segsync",
                    fieldPermissions=[
                        {"field": "Account.Nope__c", "readable": True, "editable": False}
                    ],
                )
            ]
        )
    with pytest.raises(Exception, match="Edit depends on permission"):
        mdapi.PermissionSet.update([_permission_set(mdapi, readable=False, editable=True)])


def test_assigning_needs_the_assign_permission_sets_right(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, mdapi: Any, sf_http: requests.Session
) -> None:
    mdapi.CustomField.create([_tier(mdapi)])
    mdapi.PermissionSet.create([_permission_set(mdapi)])
    refused = sf_http.post(
        f"{sf_sandbox.instance_url}/__admin/salesforce/permissions",
        json={"assign_permission_sets": False},
    )
    assert refused.json() == {"assign_permission_sets": False}
    with pytest.raises(SalesforceMalformedRequest) as info:
        _assign(sf)
    assert info.value.content[0]["errorCode"] == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"

    sf_sandbox.org.access.can_assign = True
    _assign(sf)
    with pytest.raises(SalesforceMalformedRequest) as again:
        _assign(sf)
    assert again.value.content[0]["errorCode"] == "DUPLICATE_VALUE"


def test_grants_survive_save_and_load(tmp_path: Path) -> None:
    from segsync_sandbox.salesforce.access import FieldPermission
    from segsync_sandbox.salesforce.org import CustomFieldSpec

    org = Org()
    spec = CustomFieldSpec("Account.Segsync_Version__c", "Text", "Version", length=40)
    org.add_custom_field("Account", spec, restricted=True)
    org.upsert_permission_set(
        "Segsync", "segsync", "", [FieldPermission("Account.Segsync_Version__c", True, False)]
    )
    ps = org.read_permission_set("segsync")
    assert ps is not None
    org.create("PermissionSetAssignment", {"AssigneeId": USER_ID, "PermissionSetId": ps.id})
    org.save(tmp_path)
    loaded = Org.load(tmp_path)
    seen = loaded.visible_field("Account", "Segsync_Version__c")
    assert seen is not None and seen.updateable is False


def test_the_identity_url_names_the_session_user(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    token = sf_http.post(
        sf_sandbox.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": "test-client",
            "client_secret": "test-secret",
        },
    ).json()
    identity = sf_http.get(
        token["id"], headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert identity.status_code == 200
    assert identity.json()["user_id"] == USER_ID
    assert sf_http.get(token["id"]).status_code == 401


# --------------------------------------------------------------------------- documented limits


def test_get_updated_reaches_back_30_days_and_needs_start_before_end(
    sf: Salesforce, fake_clock: Any, clocked_org: Org
) -> None:
    now = datetime.fromtimestamp(fake_clock.now, UTC).replace(second=0, microsecond=0)
    assert sf.Account.updated(now - timedelta(days=29), now)["ids"] == []
    with pytest.raises(SalesforceMalformedRequest) as too_old:
        sf.Account.updated(now - timedelta(days=31), now)
    assert too_old.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest) as same:
        sf.Account.updated(now - timedelta(hours=1), now - timedelta(hours=1))
    assert same.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    # getDeleted keeps its own 15 days.
    with pytest.raises(SalesforceMalformedRequest):
        sf.Account.deleted(now - timedelta(days=16), now)


def test_a_uri_over_16384_bytes_gets_414(sf: Salesforce, add_accounts: Any) -> None:
    ids = ", ".join(f"'{make_id('Account', n)}'" for n in range(1, 700))
    with pytest.raises(SalesforceError) as info:
        sf.query(f"SELECT Id FROM Account WHERE Id IN ({ids})")
    assert info.value.status == 414
    short = ", ".join(f"'{make_id('Account', n)}'" for n in range(1, 300))
    assert sf.query(f"SELECT Id FROM Account WHERE Id IN ({short})")["totalSize"] == 0


def test_collections_take_at_most_10_type_chunks(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    accounts = [sf_sandbox.org.insert("Account", {"Name": f"A{i}"}) for i in range(6)]
    contacts = [sf_sandbox.org.insert("Contact", {"LastName": f"C{i}"}) for i in range(6)]
    interleaved: list[dict[str, Any]] = []
    for a, c in zip(accounts, contacts, strict=True):
        interleaved.append({"attributes": {"type": "Account"}, "id": a, "Name": "x"})
        interleaved.append({"attributes": {"type": "Contact"}, "id": c, "LastName": "y"})
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="PATCH", json={"records": interleaved})
    assert "more than 10 chunks" in info.value.content[0]["message"]
    grouped = sorted(interleaved, key=lambda r: r["attributes"]["type"])
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": grouped})
    assert all(r["success"] for r in results)


def test_limits_move_when_bulk_jobs_run(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    bulk_service(sf_sandbox.app).settings.polls_per_state = 0
    ids = [sf_sandbox.org.insert("Account", {"Name": f"A{i}"}) for i in range(3)]
    before = sf.limits()
    list(sf.bulk2.Account.query("SELECT Id FROM Account", wait=0))
    sf.bulk2.Account.update(records=[{"Id": i, "Name": "B"} for i in ids], wait=0)
    after = sf.limits()
    for name, used in (("DailyBulkV2QueryJobs", 1), ("DailyBulkApiBatches", 1)):
        assert before[name]["Remaining"] - after[name]["Remaining"] == used, name
    assert before["DailyApiRequests"]["Remaining"] > after["DailyApiRequests"]["Remaining"]


def test_standard_account_and_contact_fields_exist(sf: Salesforce) -> None:
    account = _account_fields(sf)
    for name in (
        "Description",
        "AccountNumber",
        "ParentId",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        "ShippingStreet",
        "ShippingCity",
        "ShippingState",
        "ShippingPostalCode",
        "ShippingCountry",
        "CreatedById",
        "LastModifiedById",
        "OwnerId",
    ):
        assert name in account, name
    assert account["ParentId"]["referenceTo"] == ["Account"]
    assert account["CreatedById"]["updateable"] is False
    contact = {f["name"] for f in sf.Contact.describe()["fields"]}
    assert {"Description", "MailingCity", "Phone", "CreatedById", "OwnerId"} <= contact
    created = sf.Account.create({"Name": "Parent", "Description": "Root"})
    child = sf.Account.create({"Name": "Child", "ParentId": created["id"]})
    row = sf.query(
        f"SELECT Parent.Name, CreatedById, LastModifiedById FROM Account WHERE Id = '{child['id']}'"
    )["records"][0]
    assert (row["Parent"]["Name"], row["CreatedById"], row["LastModifiedById"]) == (
        "Parent",
        USER_ID,
        USER_ID,
    )
