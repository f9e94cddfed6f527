"""segsync writes only fields it owns: those it provisioned, and those the config adopts.

Offline, ``validate`` refuses an output that names a field the CRM defines
(Salesforce standard fields, HubSpot default properties) unless the config
adopts it. Connected, against the sandboxes: ``provision`` and ``sync``
refuse, before any write, an output field that exists but that segsync
neither provisioned (recorded in the store, marked in the CRM) nor was given;
the mass-change guard counts every output field, adopted ones included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli
from connector.config import load_settings
from connector.crm.base import MANAGED_MARK
from connector.store.store import Store
from connector.sync.ownership import crm_defined
from segsync_sandbox.launcher import Sandboxes
from segsync_sandbox.salesforce.org import CustomFieldSpec

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = templates.ACCOUNTS
CONTACTS = templates.CONTACTS


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _mapping(tmp_path: Path, *replacements: tuple[str, str], name: str = "accounts.toml") -> Path:
    text = ACCOUNTS.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- offline


@pytest.mark.parametrize(
    ("old", "new", "location", "field"),
    [
        (
            'segment = "Segsync_Segment__c"',
            'segment = "Name"',
            "outputs.salesforce.segment",
            "Name",
        ),
        ('tier = "Segsync_Tier__c"', 'tier = "OwnerId"', "outputs.salesforce.tier", "OwnerId"),
        (
            'reason = "Segsync_Reason__c"',
            'reason = "BillingCity"',
            "outputs.salesforce.reason",
            "BillingCity",
        ),
        (
            'fit = "Segsync_Fit_Score__c"',
            'fit = "Rating"',
            "outputs.salesforce.scores.fit",
            "Rating",
        ),
        ('reason = "segsync_reason"', 'reason = "city"', "outputs.hubspot.reason", "city"),
        (
            'tier = "segsync_tier"',
            'tier = "hubspot_owner_id"',
            "outputs.hubspot.tier",
            "hubspot_owner_id",
        ),
        ('segment = "segsync_segment"', 'segment = "name"', "outputs.hubspot.segment", "name"),
        (
            'version = "segsync_version"',
            'version = "hs_lead_status"',
            "outputs.hubspot.version",
            "hs_lead_status",
        ),
    ],
)
def test_validate_refuses_the_crms_own_fields(
    tmp_path: Path, old: str, new: str, location: str, field: str
) -> None:
    path = _mapping(tmp_path, (old, new))
    result = _invoke("validate", str(path))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert f"{path}: {location}: {field!r}" in errors[0]
    assert "adopt_fields" in errors[0]
    assert "Traceback" not in result.output


def _config(tmp_path: Path, body: str, mappings: tuple[Path, ...] = (ACCOUNTS, CONTACTS)) -> Path:
    listed = ", ".join(f'"{m}"' for m in mappings)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[sync]\nmappings = [{listed}]\n{body}'
    )
    return config


def test_validate_accepts_a_field_the_config_adopts(tmp_path: Path) -> None:
    path = _mapping(tmp_path, ('reason = "Segsync_Reason__c"', 'reason = "BillingCity"'))
    adopting = _config(
        tmp_path,
        '[connections.sf]\ncrm = "salesforce"\nadopt_fields = { account = ["BillingCity"] }\n',
    )
    assert _invoke("validate", "--config", str(adopting), str(path)).exit_code == 0

    # Adopted on the contact object only: still refused for accounts.
    elsewhere = _config(
        tmp_path,
        '[connections.sf]\ncrm = "salesforce"\nadopt_fields = { contact = ["BillingCity"] }\n',
    )
    assert _invoke("validate", "--config", str(elsewhere), str(path)).exit_code == 2

    # A mapping serves every connection of its CRM: each must adopt the field.
    one_of_two = _config(
        tmp_path,
        '[connections.us]\ncrm = "salesforce"\nadopt_fields = { account = ["billingcity"] }\n'
        '[connections.eu]\ncrm = "salesforce"\n',
    )
    result = _invoke("validate", "--config", str(one_of_two), str(path))
    assert result.exit_code == 2 and "BillingCity" in result.output


def test_sync_refuses_an_unadopted_standard_field_before_connecting(tmp_path: Path) -> None:
    path = _mapping(tmp_path, ('tier = "segsync_tier"', 'tier = "hubspot_owner_id"'))
    # Nothing listens on this port: the refusal must come before any connection.
    config = _config(
        tmp_path,
        '[connections.hs]\ncrm = "hubspot"\naccess_token = "pat"\n'
        'base_url = "http://127.0.0.1:9"\n',
        (path, CONTACTS),
    )
    for command in ("sync", "provision"):
        result = _invoke(command, "--config", str(config))
        assert result.exit_code == 2, result.output
        assert "'hubspot_owner_id' is a HubSpot default property" in result.output


def test_crm_defined_fields() -> None:
    assert crm_defined("salesforce", "account", "BillingCity")
    assert crm_defined("salesforce", "contact", "OwnerId")
    assert not crm_defined("salesforce", "account", "Segsync_Tier__c")
    assert not crm_defined("salesforce", "account", "segsync_tier__C")
    assert crm_defined("hubspot", "account", "domain")
    assert crm_defined("hubspot", "contact", "email")
    assert crm_defined("hubspot", "contact", "hs_persona")
    assert not crm_defined("hubspot", "account", "segsync_tier")


# --------------------------------------------------------------------------- connected: HubSpot


@pytest.fixture
def hs_config(fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )


def _with(
    config: Path,
    mapping: Path | None = None,
    adopt: dict[str, list[str]] | None = None,
    crm: str = "hubspot",
) -> None:
    text = config.read_text()
    if mapping is not None:
        text = text.replace("[sync]\n", f'[sync]\nmappings = ["{mapping}", "{CONTACTS}"]\n', 1)
    if adopt is not None:
        table = ", ".join(f"{obj} = {json.dumps(fields)}" for obj, fields in adopt.items())
        line = f'crm = "{crm}"\n'
        text = text.replace(line, f"{line}adopt_fields = {{ {table} }}\n", 1)
    config.write_text(text)


def _actions(result: Result) -> list[dict[str, Any]]:
    return list(json.loads(result.stdout)["actions"])


def _writes(sandboxes: Sandboxes) -> list[Any]:
    return [
        e
        for e in sandboxes.hubspot.app.log.entries()
        if e.method != "GET" and "batch/update" in e.path
    ]


def test_provision_records_and_marks_what_it_creates(
    fresh_sandboxes: Sandboxes, hs_config: Path
) -> None:
    result = _invoke("provision", "--config", str(hs_config), "--crm", "hubspot")
    assert result.exit_code == 0, result.output
    portal = fresh_sandboxes.hubspot.portal
    prop = portal.get_property("companies", "segsync_tier")
    assert MANAGED_MARK in prop["description"] and prop["groupName"] == "segmentation"
    settings = load_settings(hs_config)
    with Store.open(settings.store.url) as store:
        assert store.owned_fields("hubspot", "account") == {
            "segsync_segment", "segsync_tier", "segsync_fit_score", "segsync_intent_score",
            "segsync_reason", "segsync_version", "segsync_updated_at",
            "segsync_value_tier", "segsync_value_reason",
        }  # fmt: skip


def test_an_existing_property_segsync_did_not_create_is_refused(
    fresh_sandboxes: Sandboxes, hs_config: Path, tmp_path: Path
) -> None:
    portal = fresh_sandboxes.hubspot.portal
    portal.create_property(
        "companies",
        {
            "name": "revops_reason",
            "label": "RevOps reason",
            "type": "string",
            "fieldType": "textarea",
            "groupName": "companyinformation",
            "description": "Written by the RevOps team's own workflow.",
        },
    )
    mapping = _mapping(tmp_path, ('reason = "segsync_reason"', 'reason = "revops_reason"'))
    _with(hs_config, mapping)
    before = {c.id: c.props.get("revops_reason") for c in portal.snapshot("companies")}

    provision = _invoke(
        "provision", "--config", str(hs_config), "--crm", "hubspot", "--format", "json"
    )
    assert provision.exit_code == 1, provision.output
    refused = [a for a in _actions(provision) if a["action"] == "not_owned"]
    assert [(a["object"], a["field"]) for a in refused] == [("account", "revops_reason")]
    assert "segsync did not create it" in refused[0]["detail"]
    # The whole object was left alone: nothing created on companies.
    assert "segsync_tier" not in portal.property_names("companies")
    assert "segsync_tier" in portal.property_names("contacts")

    fresh_sandboxes.hubspot.app.log.clear()
    sync = _invoke("sync", "--config", str(hs_config), "--crm", "hubspot", "--object", "account")
    assert sync.exit_code == 1
    assert "revops_reason exists but segsync did not create it" in sync.output
    assert _writes(fresh_sandboxes) == []
    assert {c.id: c.props.get("revops_reason") for c in portal.snapshot("companies")} == before

    # Adopted in the config, the same field is segsync's to write.
    _with(hs_config, adopt={"account": ["revops_reason"]})
    provision = _invoke(
        "provision", "--config", str(hs_config), "--crm", "hubspot", "--format", "json"
    )
    assert provision.exit_code == 0, provision.output
    assert ("revops_reason", "adopted") in {(a["field"], a["action"]) for a in _actions(provision)}
    sync = _invoke("sync", "--config", str(hs_config), "--crm", "hubspot", "--object", "account")
    assert sync.exit_code == 0, sync.output
    assert all(c.props.get("revops_reason") for c in portal.snapshot("companies"))


def test_the_guard_counts_every_output_field(
    fresh_sandboxes: Sandboxes, hs_config: Path, tmp_path: Path
) -> None:
    """An adopted City as the reason output: rewriting it everywhere is a mass change."""
    mapping = _mapping(tmp_path, ('reason = "segsync_reason"', 'reason = "city"'))
    _with(hs_config, mapping, adopt={"account": ["city"]})
    # The seeded cities were typed by people (the CRM's history says so): under
    # "respect" they are kept as overrides. Overwriting is what would rewrite them.
    text = hs_config.read_text()
    hs_config.write_text(text.replace("[sync]\n", '[sync]\noverride_policy = "overwrite"\n', 1))
    assert _invoke("validate", "--config", str(hs_config)).exit_code == 0
    assert _invoke("provision", "--config", str(hs_config), "--crm", "hubspot").exit_code == 0
    portal = fresh_sandboxes.hubspot.portal
    cities = {c.id: c.props.get("city") for c in portal.snapshot("companies")}
    assert sum(1 for v in cities.values() if v) > len(cities) / 2

    fresh_sandboxes.hubspot.app.log.clear()
    result = _invoke(
        "sync", "--config", str(hs_config), "--crm", "hubspot", "--object", "account",
        "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    (job,) = json.loads(result.stdout)["jobs"]
    assert job["status"] == "aborted" and "replace existing output values" in job["message"]
    assert _writes(fresh_sandboxes) == []
    assert {c.id: c.props.get("city") for c in portal.snapshot("companies")} == cities


def test_a_field_marked_by_segsync_is_recognized_from_a_new_store(
    fresh_sandboxes: Sandboxes, hs_config: Path, tmp_path: Path
) -> None:
    assert _invoke("provision", "--config", str(hs_config), "--crm", "hubspot").exit_code == 0
    # Another state store (a reset, a second installation): the CRM's mark answers.
    text = hs_config.read_text()
    settings = load_settings(hs_config)
    fresh_url = f"sqlite:///{tmp_path / 'other.db'}"
    hs_config.write_text(text.replace(settings.store.url, fresh_url))
    result = _invoke("sync", "--config", str(hs_config), "--crm", "hubspot", "--object", "account")
    assert result.exit_code == 0, result.output
    with Store.open(fresh_url) as store:
        assert "segsync_tier" in store.owned_fields("hubspot", "account")


# --------------------------------------------------------------------------- connected: Salesforce


def _sf_writes(sandboxes: Sandboxes) -> list[Any]:
    return [
        e
        for e in sandboxes.salesforce.app.log.entries()
        if e.method in ("PATCH", "POST", "PUT") and ("/composite/" in e.path or "/jobs/" in e.path)
    ]


def test_salesforce_provision_marks_fields_in_description_and_help_text(
    fresh_sandboxes: Sandboxes, hs_config: Path
) -> None:
    result = _invoke("provision", "--config", str(hs_config), "--crm", "salesforce")
    assert result.exit_code == 0, result.output
    spec = fresh_sandboxes.salesforce.org.read_custom_field("Account.Segsync_Tier__c")
    assert spec is not None
    assert MANAGED_MARK in spec.description
    assert spec.inline_help_text and MANAGED_MARK in spec.inline_help_text


def test_salesforce_custom_field_segsync_did_not_create_is_refused(
    fresh_sandboxes: Sandboxes, hs_config: Path, tmp_path: Path
) -> None:
    org = fresh_sandboxes.salesforce.org
    org.add_custom_field(
        "Account",
        CustomFieldSpec(
            "Account.RevOps_Reason__c",
            "LongTextArea",
            "RevOps Reason",
            description="The RevOps team's own notes.",
            length=32768,
            visible_lines=3,
        ),
    )
    mapping = _mapping(tmp_path, ('reason = "Segsync_Reason__c"', 'reason = "RevOps_Reason__c"'))
    _with(hs_config, mapping)

    provision = _invoke(
        "provision", "--config", str(hs_config), "--crm", "salesforce", "--format", "json"
    )
    assert provision.exit_code == 1, provision.output
    refused = [a for a in _actions(provision) if a["action"] == "not_owned"]
    assert [(a["object"], a["field"]) for a in refused] == [("account", "RevOps_Reason__c")]
    assert org.field("Account", "Segsync_Tier__c") is None  # nothing created on Account

    fresh_sandboxes.salesforce.app.log.clear()
    sync = _invoke("sync", "--config", str(hs_config), "--crm", "salesforce", "--object", "account")
    assert sync.exit_code == 1
    assert "RevOps_Reason__c exists but segsync did not create it" in sync.output
    assert _sf_writes(fresh_sandboxes) == []

    _with(hs_config, adopt={"account": ["RevOps_Reason__c"]}, crm="salesforce")
    provision = _invoke("provision", "--config", str(hs_config), "--crm", "salesforce")
    assert provision.exit_code == 0, provision.output
    sync = _invoke("sync", "--config", str(hs_config), "--crm", "salesforce", "--object", "account")
    assert sync.exit_code == 0, sync.output
    assert all(r.get("RevOps_Reason__c") for r in org.records("Account"))


def test_salesforce_adopted_standard_field_is_written_and_guarded(
    fresh_sandboxes: Sandboxes, hs_config: Path, tmp_path: Path
) -> None:
    mapping = _mapping(tmp_path, ('segment = "Segsync_Segment__c"', 'segment = "BillingState"'))
    _with(hs_config, mapping, adopt={"account": ["BillingState"]}, crm="salesforce")
    provision = _invoke(
        "provision", "--config", str(hs_config), "--crm", "salesforce", "--format", "json"
    )
    assert provision.exit_code == 0, provision.output
    assert ("BillingState", "adopted") in {(a["field"], a["action"]) for a in _actions(provision)}

    org = fresh_sandboxes.salesforce.org
    states = {r["Id"]: r.get("BillingState") for r in org.records("Account")}
    assert sum(1 for v in states.values() if v) > len(states) / 2
    result = _invoke(
        "sync", "--config", str(hs_config), "--crm", "salesforce", "--object", "account"
    )
    assert result.exit_code == 1
    assert "replace existing output values" in result.output
    assert {r["Id"]: r.get("BillingState") for r in org.records("Account")} == states

    forced = _invoke(
        "sync", "--config", str(hs_config), "--crm", "salesforce", "--object", "account", "--force"
    )
    assert forced.exit_code == 0, forced.output
    names = {"Enterprise SaaS", "Financial Services", "Mid-Market Tech", "SMB", "Everyone else"}
    assert {r.get("BillingState") for r in org.records("Account")} <= names


def test_the_store_upgrades_from_the_previous_schema_with_no_owned_fields(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from alembic import command

    from connector.store.store import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config()
    with Store.open(url, migrate=False) as old:
        with old.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0003")
        assert old.revision() == "0003"
        assert "owned_fields" not in sa.inspect(old.engine).get_table_names()
    with Store.open(url) as store:
        assert store.revision() == Store.head()
        # Nothing recorded yet: the next provision or run (from the CRM's mark) fills it.
        assert store.owned_fields("hubspot", "account") == set()
        store.record_owned("hubspot", "account", ["segsync_tier", "Segsync_Tier"])
        assert store.owned_fields("hubspot", "account") == {"segsync_tier"}
