"""Salesforce provisioning against the sandbox's field-level security, with the real clients.

A field created through the Metadata API is invisible until a permission set
grants it; provisioning grants it (or says exactly what an admin must do) and
verifies access before anything is written. Also: hover help, picklist order,
and fetches by id that stay under the 16,384-byte URI limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.config import SalesforceConnection
from connector.crm.base import OutputField, RecordUpdate
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce import SalesforceAdapter
from connector.errors import FatalSyncError
from segsync_sandbox.salesforce import (
    CustomFieldSpec,
    SalesforceSandbox,
    make_id,
    start_salesforce,
)
from segsync_sandbox.salesforce.access import FieldPermission
from segsync_sandbox.salesforce.bulk import bulk_service
from segsync_sandbox.salesforce.org import USER_ID

TIERS = ("Tier 1", "Tier 2", "Tier 3")
OUTPUTS = [
    OutputField(
        "Segsync_Tier__c",
        "picklist",
        "Tier",
        "The tier segsync assigned.",
        TIERS,
        help="Tier 1: work it now. Tier 2: nurture. Tier 3: marketing only.",
    ),
    OutputField("Segsync_Fit_Score__c", "number", "Fit Score", "segsync's fit score."),
]


@pytest.fixture(scope="module")
def _server() -> Iterator[SalesforceSandbox]:
    sandbox = start_salesforce(client_id="provision-test-client", client_secret="secret-value")
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def sfbox(_server: SalesforceSandbox) -> Iterator[SalesforceSandbox]:
    _server.reset()
    bulk_service(_server.app).reset()
    yield _server
    _server.reset()


@pytest.fixture
def adapter(sfbox: SalesforceSandbox) -> Iterator[SalesforceAdapter]:
    built = _adapter(sfbox)
    yield built
    built.close()


def _adapter(sandbox: SalesforceSandbox, auth: str = "jwt") -> SalesforceAdapter:
    values: dict[str, Any] = {
        "auth": auth,
        "login_url": sandbox.login_url,
        "ca_file": sandbox.ca_file,
        "timeout_seconds": 10.0,
    }
    if auth == "jwt":
        values.update(
            client_id=sandbox.client_id,
            username=sandbox.username,
            private_key_file=sandbox.private_key_file,
        )
    else:
        values.update(instance_url=sandbox.instance_url, session_id=sandbox.access_token)
    policy = RetryPolicy(attempts=3, initial_wait=0.0, max_wait=0.0, sleep=lambda _s: None)
    return SalesforceAdapter("sf", SalesforceConnection(**values), retry=policy, bulk_wait=0)


def _rows(report: Any) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for action in report.actions:
        out.setdefault(action.field, []).append((action.action, action.detail))
    return out


def test_provision_grants_access_so_the_first_write_lands(
    sfbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    account = sfbox.org.insert("Account", {"Name": "Acme"})

    report = adapter.provision("account", OUTPUTS, ["Name", "Segsync_Lock__c"], dry_run=False)

    assert not report.problems
    grant = _rows(report)["permission set Segsync"]
    assert grant[0][0] == "grant"
    assert f"assigned it to user {USER_ID}" in grant[0][1]
    assert "Account.Segsync_Tier__c (read, edit)" in grant[0][1]
    outcomes = adapter.write("account", [RecordUpdate(account, {"Segsync_Tier__c": "Tier 2"})])
    assert outcomes[0].ok
    assert sfbox.org.get("Account", account)["Segsync_Tier__c"] == "Tier 2"  # type: ignore[index]

    # The contact run extends the same set and finds it already assigned.
    contact_out = [OutputField("Segsync_Tier__c", "picklist", "Tier", "", TIERS)]
    again = adapter.provision("contact", contact_out, [], dry_run=False)
    assert not again.problems
    assert "already assigned" in _rows(again)["permission set Segsync"][0][1]
    granted = sfbox.org.read_permission_set("Segsync")
    assert granted is not None
    assert {p.field for p in granted.field_permissions.values()} == {
        "Account.Segsync_Tier__c",
        "Account.Segsync_Fit_Score__c",
        "Contact.Segsync_Tier__c",
    }


def test_a_session_id_finds_its_user_through_userinfo(sfbox: SalesforceSandbox) -> None:
    adapter = _adapter(sfbox, "session")
    try:
        report = adapter.provision("account", OUTPUTS[:1], [], dry_run=False)
    finally:
        adapter.close()
    assert not report.problems
    assert "userinfo" in [e.kind for e in sfbox.app.log.entries()]


def test_without_the_right_to_assign_provision_prints_the_steps_and_writes_are_refused(
    sfbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    sfbox.org.access.can_assign = False
    account = sfbox.org.insert("Account", {"Name": "Acme"})

    report = adapter.provision("account", OUTPUTS, [], dry_run=False)

    rows = _rows(report)
    steps = rows["permission set Segsync"][0]
    assert steps[0] == "missing_access"
    for words in (
        f"the integration user ({USER_ID}) cannot assign it",
        "Setup > Permission Sets",
        "Read and Edit on Account.Segsync_Tier__c, Account.Segsync_Fit_Score__c",
        "Manage Assignments",
        "segsync provision",
    ):
        assert words in steps[1]
    # Verified before any write: the outputs are not usable yet.
    assert "missing_access" in [a for a, _ in rows["Segsync_Tier__c"]]
    with pytest.raises(FatalSyncError, match="not updateable"):
        adapter.write("account", [RecordUpdate(account, {"Segsync_Tier__c": "Tier 1"})])

    # An admin assigns the set the provisioner created: the next run is clean.
    sfbox.org.access.can_assign = True
    ps = sfbox.org.read_permission_set("Segsync")
    assert ps is not None
    sfbox.org.create("PermissionSetAssignment", {"AssigneeId": USER_ID, "PermissionSetId": ps.id})
    assert not adapter.provision("account", OUTPUTS, [], dry_run=False).problems


def test_hidden_fields_that_exist_are_granted_not_recreated(
    sfbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    # Created earlier through the Metadata API and never granted.
    spec = CustomFieldSpec(
        "Account.Segsync_Tier__c", "Picklist", "Tier", picklist_values=TIERS, restricted=True
    )
    sfbox.org.add_custom_field("Account", spec, restricted=True)
    score = CustomFieldSpec("Account.Score_Input__c", "Number", "Input", precision=3, scale=0)
    sfbox.org.add_custom_field("Account", score, restricted=True)

    dry = adapter.provision("account", OUTPUTS[:1], ["Score_Input__c"], dry_run=True)
    assert _rows(dry)["permission set Segsync"][0][0] == "grant"
    assert "would grant" in _rows(dry)["permission set Segsync"][0][1]
    assert sfbox.org.read_permission_set("Segsync") is None

    report = adapter.provision("account", OUTPUTS[:1], ["Score_Input__c"], dry_run=False)

    assert not report.problems
    assert [a for a, _ in _rows(report)["Segsync_Tier__c"]] == ["ok"]
    detail = _rows(report)["permission set Segsync"][0][1]
    assert "Account.Score_Input__c (read)" in detail
    ps = sfbox.org.read_permission_set("Segsync")
    assert ps is not None
    assert ps.field_permissions["account.score_input__c"] == FieldPermission(
        "Account.Score_Input__c", True, False
    )


def test_existing_grants_in_the_permission_set_are_kept(
    sfbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    sfbox.org.upsert_permission_set(
        "Segsync", "segsync", "kept", [FieldPermission("Account.Intent_Score__c", True, False)]
    )
    adapter.provision("account", OUTPUTS[:1], [], dry_run=False)
    ps = sfbox.org.read_permission_set("Segsync")
    assert ps is not None
    assert "account.intent_score__c" in ps.field_permissions
    assert ps.description == "kept"


def test_fields_carry_hover_help_and_admin_description(
    sfbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    adapter.provision("account", OUTPUTS, [], dry_run=False)

    tier = sfbox.org.read_custom_field("Account.Segsync_Tier__c")
    assert tier is not None
    assert tier.inline_help_text == OUTPUTS[0].help
    assert tier.description == "The tier segsync assigned."
    fit = sfbox.org.read_custom_field("Account.Segsync_Fit_Score__c")
    assert fit is not None and fit.inline_help_text == "segsync's fit score."
    described = {f["name"]: f for f in sfbox.org.describe("Account")["fields"]}
    assert described["Segsync_Tier__c"]["inlineHelpText"] == OUTPUTS[0].help


def test_picklist_values_are_put_in_the_definition_order(
    sfbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    # A field an older run created in the contact file's own order.
    spec = CustomFieldSpec(
        "Account.Segsync_Tier__c",
        "Picklist",
        "Tier",
        picklist_values=("Tier 3", "Tier 1", "Old", "Tier 2"),
        restricted=True,
    )
    sfbox.org.add_custom_field("Account", spec)

    report = adapter.provision("account", OUTPUTS[:1], [], dry_run=False)

    rows = _rows(report)["Segsync_Tier__c"]
    assert ("reorder_options", "Tier 1, Tier 2, Tier 3, Old") in rows
    assert ("stale_options", "no longer defined, kept: Old") in rows
    field = sfbox.org.field("Account", "Segsync_Tier__c")
    assert field is not None
    assert [p.value for p in field.picklist_values] == ["Tier 1", "Tier 2", "Tier 3", "Old"]
    assert [
        a for a, _ in _rows(adapter.provision("account", OUTPUTS[:1], [], False))["Segsync_Tier__c"]
    ] == ["ok", "stale_options"]


def test_fetch_by_many_ids_stays_under_the_uri_limit(
    sfbox: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    ids = [sfbox.org.insert("Account", {"Name": f"A{i}"}) for i in range(40)]
    unknown = [make_id("Account", 100_000 + n) for n in range(1, 2500)]
    wanted = [*unknown[:1200], *ids, *unknown[1200:]]
    before = len(sfbox.app.log.entries())

    records = adapter.fetch("account", wanted, ["Name"])

    assert sorted(r.id for r in records) == sorted(ids)
    queries = [e for e in sfbox.app.log.entries()[before:] if e.kind == "query"]
    assert len(queries) >= 5  # 2,539 ids of 18 characters do not fit one URI
    assert all(e.status == 200 for e in queries)
