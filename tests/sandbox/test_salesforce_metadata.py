"""Metadata API of the Salesforce sandbox, driven by simple-salesforce's real mdapi (zeep)."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from zeep.exceptions import Fault

from segsync_sandbox.salesforce import SalesforceSandbox


@pytest.fixture
def sandbox(sf_sandbox: SalesforceSandbox) -> SalesforceSandbox:
    """The shared sandbox, serving a fresh org."""
    return sf_sandbox


def _trusting_mdapi(sf: Salesforce, sandbox: SalesforceSandbox) -> Any:
    """sf.mdapi with zeep's own requests session trusting the sandbox CA.

    zeep does not use the client's session; without ``trust_env = False`` a
    REQUESTS_CA_BUNDLE in the environment would override ``verify``.
    """
    mdapi = sf.mdapi
    session = mdapi._client.transport.session
    session.verify = str(sandbox.ca_file)
    session.trust_env = False
    return mdapi


@pytest.fixture(scope="module")
def _shared_mdapi(_sf_server: SalesforceSandbox) -> Any:
    # Parsing the 1.5 MB metadata WSDL takes zeep a few hundred milliseconds: share
    # one client per module (the ready session id survives the per-test org reset).
    return _trusting_mdapi(_sf_server.client(), _sf_server)


@pytest.fixture
def mdapi(sandbox: SalesforceSandbox, _shared_mdapi: Any) -> Any:
    return _shared_mdapi


def _picklist(mdapi: Any, full_name: str, values: list[str], label: str = "Tier") -> Any:
    return mdapi.CustomField(
        fullName=full_name,
        label=label,
        type="Picklist",
        valueSet={
            "restricted": True,
            "valueSetDefinition": {
                "sorted": False,
                "value": [{"fullName": v, "label": v.upper(), "default": False} for v in values],
            },
        },
    )


def _outputs(mdapi: Any) -> list[Any]:
    return [
        _picklist(mdapi, "Account.Segsync_Tier__c", ["Tier 1", "Tier 2"]),
        mdapi.CustomField(
            fullName="Account.Segsync_Fit_Score__c",
            label="Fit Score",
            type="Number",
            precision=3,
            scale=0,
        ),
        mdapi.CustomField(
            fullName="Account.Segsync_Reason__c",
            label="Reason",
            type="LongTextArea",
            length=32768,
            visibleLines=5,
        ),
        mdapi.CustomField(
            fullName="Account.Segsync_Version__c", label="Version", type="Text", length=40
        ),
        mdapi.CustomField(
            fullName="Account.Segsync_Updated_At__c", label="Updated At", type="DateTime"
        ),
        mdapi.CustomField(
            fullName="Contact.Segsync_Flag__c", label="Flag", type="Checkbox", defaultValue="false"
        ),
    ]


def _grant(sf: Salesforce, mdapi: Any, fields: list[str], name: str = "Segsync") -> str:
    """Grant read and edit on ``fields`` through a permission set assigned to the session user."""
    mdapi.PermissionSet.upsert(
        [
            mdapi.PermissionSet(
                fullName=name,
                label=name,
                fieldPermissions=[{"field": f, "readable": True, "editable": True} for f in fields],
            )
        ]
    )
    ps_id = sf.query(f"SELECT Id FROM PermissionSet WHERE Name = '{name}'")["records"][0]["Id"]
    user_id = _user_id(sf)
    created = sf.PermissionSetAssignment.create({"AssigneeId": user_id, "PermissionSetId": ps_id})
    return str(created["id"])


def _user_id(sf: Salesforce) -> str:
    """The session user's id, from the OpenID Connect userinfo endpoint."""
    response = sf.session.get(
        f"https://{sf.sf_instance}/services/oauth2/userinfo",
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    response.raise_for_status()
    return str(response.json()["user_id"])


def test_created_fields_appear_in_describe_and_become_writable(
    sandbox: SalesforceSandbox, sf: Salesforce, mdapi: Any
) -> None:
    account = sandbox.org.insert("Account", {"Name": "Acme"})
    contact = sandbox.org.insert("Contact", {"LastName": "Smith"})

    mdapi.CustomField.create(_outputs(mdapi))
    _grant(sf, mdapi, [str(o.fullName) for o in _outputs(mdapi)])

    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    tier = fields["Segsync_Tier__c"]
    assert (tier["type"], tier["restrictedPicklist"], tier["updateable"]) == (
        "picklist",
        True,
        True,
    )
    assert [p["value"] for p in tier["picklistValues"]] == ["Tier 1", "Tier 2"]
    assert (
        fields["Segsync_Fit_Score__c"]["type"],
        fields["Segsync_Fit_Score__c"]["precision"],
    ) == (
        "double",
        3,
    )
    assert fields["Segsync_Reason__c"]["length"] == 32768
    assert fields["Segsync_Version__c"]["length"] == 40
    assert fields["Segsync_Updated_At__c"]["type"] == "datetime"
    contact_fields = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert contact_fields["Segsync_Flag__c"]["type"] == "boolean"

    sf.Account.update(
        account,
        {
            "Segsync_Tier__c": "Tier 2",
            "Segsync_Fit_Score__c": 87,
            "Segsync_Version__c": "v1",
            "Segsync_Updated_At__c": "2026-11-01T00:00:00.000+0000",
        },
    )
    sf.Contact.update(contact, {"Segsync_Flag__c": True})
    stored = sf.Account.get(account)
    assert (stored["Segsync_Tier__c"], stored["Segsync_Fit_Score__c"]) == ("Tier 2", 87)
    assert sf.Contact.get(contact)["Segsync_Flag__c"] is True
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Account.update(account, {"Segsync_Tier__c": "Gold"})
    assert refused.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_read_returns_typed_components(mdapi: Any) -> None:
    mdapi.CustomField.create(_outputs(mdapi))

    tier = mdapi.CustomField.read(["Account.Segsync_Tier__c"])
    many = mdapi.CustomField.read(
        [
            "Account.Segsync_Fit_Score__c",
            "Account.Segsync_Reason__c",
            "Account.Segsync_Version__c",
            "Account.Segsync_Updated_At__c",
            "Contact.Segsync_Flag__c",
        ]
    )

    assert (tier.fullName, tier.type, tier.label) == ("Account.Segsync_Tier__c", "Picklist", "Tier")
    assert tier.valueSet.restricted is True
    assert [(v.fullName, v.label, v.default) for v in tier.valueSet.valueSetDefinition.value] == [
        ("Tier 1", "TIER 1", False),
        ("Tier 2", "TIER 2", False),
    ]
    fit, reason, version, updated, flag = many
    assert (fit.type, fit.precision, fit.scale) == ("Number", 3, 0)
    assert (reason.type, reason.length, reason.visibleLines) == ("LongTextArea", 32768, 5)
    assert (version.type, version.length) == ("Text", 40)
    assert updated.type == "DateTime"
    assert (flag.type, flag.defaultValue) == ("Checkbox", "false")


def test_reading_a_missing_field_gives_an_empty_record(mdapi: Any) -> None:
    missing = mdapi.CustomField.read(["Account.Nope__c"])
    standard_and_missing = mdapi.CustomField.read(["Account.Industry", "Account.Nope__c"])

    assert missing.fullName is None
    assert [r.fullName for r in standard_and_missing] == [None, None]


def test_existing_custom_inputs_can_be_read(mdapi: Any) -> None:
    intent = mdapi.CustomField.read(["Account.Intent_Score__c"])

    assert (intent.fullName, intent.type, intent.precision) == (
        "Account.Intent_Score__c",
        "Number",
        3,
    )


def test_update_adds_picklist_values_and_keeps_data(
    sandbox: SalesforceSandbox, sf: Salesforce, mdapi: Any
) -> None:
    account = sandbox.org.insert("Account", {"Name": "Acme"})
    mdapi.CustomField.create([_picklist(mdapi, "Account.Segsync_Tier__c", ["Tier 1", "Tier 2"])])
    _grant(sf, mdapi, ["Account.Segsync_Tier__c"])
    sf.Account.update(account, {"Segsync_Tier__c": "Tier 2"})

    mdapi.CustomField.update([_picklist(mdapi, "Account.Segsync_Tier__c", ["Tier 1", "Tier 3"])])

    read = mdapi.CustomField.read(["Account.Segsync_Tier__c"])
    assert [v.fullName for v in read.valueSet.valueSetDefinition.value] == ["Tier 1", "Tier 3"]
    assert sf.Account.get(account)["Segsync_Tier__c"] == "Tier 2"
    sf.Account.update(account, {"Segsync_Tier__c": "Tier 3"})
    assert sf.Account.get(account)["Segsync_Tier__c"] == "Tier 3"


def test_upsert_creates_then_updates(mdapi: Any) -> None:
    field = mdapi.CustomField(
        fullName="Contact.Segsync_Version__c", label="Version", type="Text", length=40
    )
    mdapi.CustomField.upsert([field])
    field.length = 80
    mdapi.CustomField.upsert([field])

    assert mdapi.CustomField.read(["Contact.Segsync_Version__c"]).length == 80


def test_duplicates_are_refused(mdapi: Any) -> None:
    version = mdapi.CustomField(
        fullName="Account.Segsync_Version__c", label="Version", type="Text", length=40
    )
    mdapi.CustomField.create([version])

    with pytest.raises(Exception, match="DUPLICATE_DEVELOPER_NAME") as again:
        mdapi.CustomField.create([version])
    assert "Account.Segsync_Version__c" in str(again.value)
    intent = mdapi.CustomField(
        fullName="Account.Intent_Score__c", label="Intent", type="Number", precision=3, scale=0
    )
    with pytest.raises(Exception, match="DUPLICATE_DEVELOPER_NAME"):
        mdapi.CustomField.create([intent])


def test_save_results_report_each_component(sandbox: SalesforceSandbox, mdapi: Any) -> None:
    too_long = "A" * 41 + "__c"
    good = mdapi.CustomField(fullName="Account.Good__c", label="Good", type="Text", length=10)
    components = [
        good,
        mdapi.CustomField(fullName=f"Account.{too_long}", label="Long", type="Text", length=10),
        mdapi.CustomField(fullName="Account.No_Length__c", label="No Length", type="Text"),
        mdapi.CustomField(fullName="Campaign.X__c", label="X", type="Text", length=10),
        mdapi.CustomField(fullName="Account.No_Label__c", type="DateTime"),
        mdapi.CustomField(fullName="Account.Flag__c", label="Flag", type="Checkbox"),
    ]

    with pytest.raises(Exception) as failed:
        mdapi.CustomField.create(components)

    message = str(failed.value)
    assert f"Account.{too_long}: (FIELD_INTEGRITY_EXCEPTION" in message
    assert "Account.No_Length__c: (FIELD_INTEGRITY_EXCEPTION" in message
    assert "Campaign.X__c: (INVALID_CROSS_REFERENCE_KEY" in message
    assert "Account.No_Label__c: (REQUIRED_FIELD_MISSING" in message
    assert "Account.Flag__c: (FIELD_INTEGRITY_EXCEPTION" in message
    assert "Account.Good__c" not in message
    # The valid component was saved although others failed (no allOrNone).
    assert sandbox.org.field("Account", "Good__c") is not None
    assert sandbox.org.field("Account", "No_Length__c") is None


def test_update_of_a_missing_field_fails(mdapi: Any) -> None:
    with pytest.raises(Exception, match="INVALID_CROSS_REFERENCE_KEY"):
        mdapi.CustomField.update(
            [mdapi.CustomField(fullName="Account.Nope__c", label="N", type="Text", length=5)]
        )


def test_call_level_errors_are_soap_faults(sandbox: SalesforceSandbox, mdapi: Any) -> None:
    eleven = [
        mdapi.CustomField(fullName=f"Account.F{i}__c", label=f"F{i}", type="Text", length=5)
        for i in range(11)
    ]
    with pytest.raises(Fault) as too_many:
        mdapi.CustomField.create(eleven)
    assert too_many.value.code == "sf:LIMIT_EXCEEDED"
    assert sandbox.org.field("Account", "F0__c") is None

    bad_type = mdapi.CustomField(fullName="Account.B__c", label="B", type="Bogus")
    with pytest.raises(Fault, match="not a valid value for the enum 'FieldType'"):
        mdapi.CustomField.create([bad_type])

    with pytest.raises(Fault) as too_many_reads:
        mdapi.CustomField.read([f"Account.F{i}__c" for i in range(11)])
    assert too_many_reads.value.code == "sf:LIMIT_EXCEEDED"


def test_invalid_session_is_a_soap_fault(sandbox: SalesforceSandbox) -> None:
    mdapi = _trusting_mdapi(sandbox.client(session_id="00Dxx!AQbogus"), sandbox)
    field = mdapi.CustomField(fullName="Account.X__c", label="X", type="Text", length=5)

    with pytest.raises(Fault) as denied:
        mdapi.CustomField.create([field])

    assert denied.value.code == "sf:INVALID_SESSION_ID"
    assert sandbox.org.field("Account", "X__c") is None


def test_metadata_calls_are_logged(sandbox: SalesforceSandbox, mdapi: Any) -> None:
    sandbox.app.log.clear()
    mdapi.CustomField.create(
        [mdapi.CustomField(fullName="Account.X__c", label="X", type="Text", length=5)]
    )
    mdapi.CustomField.read(["Account.X__c"])

    entries = sandbox.app.log.entries()
    assert [(e.method, e.kind, e.status) for e in entries] == [
        ("POST", "metadata.createMetadata", 200),
        ("POST", "metadata.readMetadata", 200),
    ]
    assert entries[0].fields == ("Account.X__c",)


def test_requests_ca_bundle_also_reaches_zeep(
    sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other way to make zeep trust the sandbox: the environment variable its
    # own requests session honors (trust_env stays on).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_file))
    mdapi = sandbox.client().mdapi

    assert mdapi.CustomField.read(["Account.Intent_Score__c"]).fullName == "Account.Intent_Score__c"


def test_metadata_calls_count_against_the_api_allocation(
    sandbox: SalesforceSandbox, mdapi: Any
) -> None:
    used_before, total = sandbox.org.usage()
    mdapi.CustomField.read(["Account.Intent_Score__c"])
    assert sandbox.org.usage() == (used_before + 1, total)

    sandbox.org.set_usage(total)
    with pytest.raises(Fault) as exhausted:
        mdapi.CustomField.read(["Account.Intent_Score__c"])
    assert exhausted.value.code == "sf:REQUEST_LIMIT_EXCEEDED"
