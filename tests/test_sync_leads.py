"""Salesforce Leads as a mapped object, end to end against the Salesforce sandbox.

Real simple-salesforce over HTTPS: ``segsync provision`` creates the Lead
fields (Metadata API, the Segsync permission set, field history), full and
incremental syncs write what the shipped lead mapping computes, converted
leads are neither read nor written, and Bulk API 2.0 keeps the same scope.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli
from connector.commands.crm import Context, open_context
from connector.crm.base import RecordUpdate
from connector.sync.runner import Runner, RunResult
from segsync_sandbox.launcher import Sandboxes, lead_count
from segsync_sandbox.salesforce.org import UI_USER_ID

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OUTPUTS = (
    "Segsync_Segment__c",
    "Segsync_Tier__c",
    "Segsync_Persona__c",
    "Segsync_Fit_Score__c",
    "Segsync_Engagement_Score__c",
    "Segsync_Reason__c",
    "Segsync_Version__c",
    "Segsync_Updated_At__c",
)


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def lead_config(crms: Sandboxes, tmp_path: Path, extra: str = "") -> Path:
    """The sandbox config with the shipped account, contact and lead mappings."""
    config = crms.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    mappings = ", ".join(
        json.dumps(str(p)) for p in (templates.ACCOUNTS, templates.CONTACTS, templates.LEADS)
    )
    with config.open("a") as out:
        out.write(f"mappings = [{mappings}]\n")
        out.write("retry_initial_wait_seconds = 0.01\nretry_max_wait_seconds = 0.05\n")
        out.write(extra)
    return config


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path) -> Path:
    return lead_config(fresh_sandboxes, tmp_path)


@pytest.fixture
def ctx(config: Path) -> Iterator[Context]:
    with open_context(config, crm="salesforce") as context:
        yield context


def _leads(crms: Sandboxes) -> dict[str, dict[str, Any]]:
    return {r["Id"]: r for r in crms.salesforce.org.records("Lead")}


def _sync(ctx: Context, clock: Clock, **options: Any) -> RunResult:
    (job,) = ctx.jobs("salesforce", "lead")
    return Runner(ctx.store, ctx.settings.sync, clock=clock).run(job, **options)


def test_provision_creates_the_lead_fields_once(fresh_sandboxes: Sandboxes, config: Path) -> None:
    org = fresh_sandboxes.salesforce.org
    dry = _json(_invoke("provision", "--config", str(config), "--dry-run", "--format", "json"))
    planned = {(a["object"], a["field"]) for a in dry["actions"] if a["action"] == "create"}
    assert {("lead", name) for name in OUTPUTS} <= planned
    # HubSpot has no lead: nothing is planned there for the lead mapping.
    assert not [
        a for a in dry["actions"] if a["object"] == "lead" and a["connection"] != "salesforce"
    ]
    assert org.field("Lead", "Segsync_Tier__c") is None  # a dry run changes nothing

    _json(_invoke("provision", "--config", str(config), "--crm", "salesforce", "--format", "json"))
    tier = org.field("Lead", "Segsync_Tier__c")
    assert tier is not None and tier.type == "picklist" and tier.restricted
    assert [v.value for v in tier.picklist_values] == ["Tier 1", "Tier 2", "Tier 3"]
    persona = org.field("Lead", "Segsync_Persona__c")
    assert persona is not None and "Economic Buyer" in [v.value for v in persona.picklist_values]
    # Field history on the values a person may pin; field-level security through
    # the Segsync permission set: the integration user can now edit them.
    assert tier.track_history and persona.track_history
    assert not org.field("Lead", "Segsync_Reason__c").track_history  # type: ignore[union-attr]
    seen = org.visible_field("Lead", "Segsync_Tier__c")
    assert seen is not None and seen.updateable

    again = _json(
        _invoke("provision", "--config", str(config), "--crm", "salesforce", "--format", "json")
    )
    lead_actions = {a["action"] for a in again["actions"] if a["object"] == "lead"}
    assert lead_actions == {"ok"}, again["actions"]


def test_full_then_incremental_lead_sync(
    fresh_sandboxes: Sandboxes, config: Path, ctx: Context
) -> None:
    org = fresh_sandboxes.salesforce.org
    _json(_invoke("provision", "--config", str(config), "--crm", "salesforce", "--format", "json"))
    before = _leads(fresh_sandboxes)
    converted = {i for i, r in before.items() if r.get("IsConverted")}
    assert len(before) == lead_count(fresh_sandboxes.dataset.accounts)
    assert converted and len(converted) < len(before)  # every dataset seeds some of each

    clock = Clock()
    engine = ctx.engines["lead"]
    first = _sync(ctx, clock)
    assert first.full and first.status == "succeeded", first.message
    open_ = len(before) - len(converted)
    assert first.summary.counts.read == open_ == first.written
    after = _leads(fresh_sandboxes)
    for record_id, fields in after.items():
        if record_id in converted:
            # Read-only in Salesforce, and never read: untouched, stamp and all.
            assert fields == before[record_id]
            continue
        want = engine.evaluate(fields, "salesforce", NOW)
        got = (fields.get("Segsync_Segment__c"), fields.get("Segsync_Tier__c"))
        assert got == (want.segment, want.tier), record_id
        assert fields.get("Segsync_Persona__c") == want.persona, record_id
        assert fields["Segsync_Reason__c"] == want.reason
        assert fields["LastModifiedById"] != before[record_id]["LastModifiedById"]
    personas = {f.get("Segsync_Persona__c") for f in after.values()} - {None}
    assert {"Economic Buyer", "Technical Evaluator", "Executive Sponsor", "End User"} <= personas

    clock.now += timedelta(minutes=10)
    second = _sync(ctx, clock)
    assert not second.full and second.written == 0 and second.summary.counts.changed == 0

    # A rep edits one lead's company fields; another lead is converted meanwhile.
    target = next(
        i
        for i, f in after.items()
        if i not in converted and f.get("Segsync_Segment__c") != "Enterprise SaaS"
    )
    org.update(
        "Lead",
        target,
        {"Industry": "SaaS", "NumberOfEmployees": 4200, "Title": "v.p. of engineering"},
    )
    gone = next(i for i in after if i not in converted and i != target)
    org.convert_lead(gone)
    frozen = _leads(fresh_sandboxes)[gone]
    clock.now += timedelta(minutes=10)
    third = _sync(ctx, clock)
    assert third.summary.counts.read == 1 and third.written == 1
    now = _leads(fresh_sandboxes)
    assert now[target]["Segsync_Segment__c"] == "Enterprise SaaS"
    assert now[target]["Segsync_Persona__c"] == "Technical Evaluator"
    assert now[gone] == frozen
    moves = {t.field: t for t in ctx.store.history(target) if t.run_id == third.run_id}
    assert moves["Segsync_Segment__c"].to_value == "Enterprise SaaS"

    status = _json(_invoke("status", "--config", str(config), "--format", "json"))
    assert status["watermarks"]["salesforce.lead"] is not None
    assert "hubspot.lead" not in status["watermarks"]


def test_a_converted_lead_refuses_a_write_and_its_batch_mates_land(
    fresh_sandboxes: Sandboxes, config: Path, ctx: Context
) -> None:
    _json(_invoke("provision", "--config", str(config), "--crm", "salesforce", "--format", "json"))
    org = fresh_sandboxes.salesforce.org
    leads = _leads(fresh_sandboxes)
    converted = next(i for i, r in leads.items() if r.get("IsConverted"))
    fine = [i for i, r in leads.items() if not r.get("IsConverted")][:3]
    adapter = ctx.adapters["salesforce"]
    updates = [
        RecordUpdate(i, {"Segsync_Tier__c": "Tier 2"}) for i in [fine[0], converted, *fine[1:]]
    ]
    outcomes = adapter.write("lead", updates)
    by_id = {o.id: o for o in outcomes}
    assert not by_id[converted].ok and by_id[converted].code == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert not by_id[converted].retriable
    assert all(by_id[i].ok for i in fine)
    assert org.get("Lead", converted) == leads[converted]
    assert all(org.get("Lead", i)["Segsync_Tier__c"] == "Tier 2" for i in fine)  # type: ignore[index]
    # A fetch by id (open errors, due records) keeps to unconverted leads too.
    fields = ctx.engines["lead"].input_fields("salesforce")
    assert {r.id for r in adapter.fetch("lead", [converted, *fine], fields)} == set(fine)


def test_bulk_lead_pull_and_write_keep_to_unconverted_leads(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    config = lead_config(fresh_sandboxes, tmp_path)
    text = config.read_text().replace(
        "[connections.salesforce]\n",
        "[connections.salesforce]\nbulk_read_threshold = 5\nbulk_write_threshold = 5\n",
    )
    config.write_text(text)
    _json(_invoke("provision", "--config", str(config), "--crm", "salesforce", "--format", "json"))
    before = _leads(fresh_sandboxes)
    converted = {i for i, r in before.items() if r.get("IsConverted")}
    fresh_sandboxes.salesforce.app.log.clear()
    with open_context(config, crm="salesforce") as ctx:
        result = _sync(ctx, Clock())
        assert result.status == "succeeded", result.message
        assert result.written == result.summary.counts.read == len(before) - len(converted)
    paths = [e.path for e in fresh_sandboxes.salesforce.app.log.entries()]
    assert any("/jobs/query" in p for p in paths) and any("/jobs/ingest" in p for p in paths)
    after = _leads(fresh_sandboxes)
    assert all(after[i] == before[i] for i in converted)
    assert all(after[i].get("Segsync_Tier__c") for i in after if i not in converted)


def test_hubspot_has_no_leads(fresh_sandboxes: Sandboxes, tmp_path: Path) -> None:
    config = lead_config(
        fresh_sandboxes,
        tmp_path,
        '\n[[service.jobs]]\nconnection = "hubspot"\nobject = "lead"\ninterval_minutes = 15\n',
    )
    result = CliRunner().invoke(cli, ["validate", "--config", str(config)])
    assert result.exit_code == 2
    assert "service.jobs" in result.output or "service" in result.output
    assert "'lead' is a Salesforce object" in result.output
    assert "Traceback" not in result.output

    mapping = tmp_path / "leads.toml"
    mapping.write_text(
        templates.LEADS.read_text().replace(
            'salesforce = "Title"', 'salesforce = "Title"\nhubspot = "jobtitle"'
        )
    )
    result = CliRunner().invoke(cli, ["validate", str(mapping)])
    assert result.exit_code == 2
    assert "attributes.title.hubspot" in result.output and "Salesforce object" in result.output

    sample = tmp_path / "leads.csv"
    sample.write_text("Id,Title\n00Q000000000001EAA,CFO\n")
    result = CliRunner().invoke(
        cli,
        ["preview", "--mapping", str(templates.LEADS), "--input", str(sample), "--crm", "hubspot"],
    )
    assert result.exit_code == 2 and "--crm hubspot has none" in result.output


def test_sync_object_lead_runs_only_salesforce_lead_jobs(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    _json(_invoke("provision", "--config", str(config), "--format", "json"))
    done = _json(_invoke("sync", "--config", str(config), "--object", "lead", "--format", "json"))
    assert [(j["connection"], j["object"], j["status"]) for j in done["jobs"]] == [
        ("salesforce", "lead", "succeeded")
    ]
    history = _json(_invoke("history", "--config", str(config), "--format", "json", "--limit", "5"))
    assert history and all(h["record"].startswith("00Q") for h in history)


def test_lead_writes_never_run_the_assignment_rules(
    fresh_sandboxes: Sandboxes, config: Path, ctx: Context
) -> None:
    """The REST API re-routes every lead it updates unless told not to: segsync tells it."""
    org = fresh_sandboxes.salesforce.org
    _json(_invoke("provision", "--config", str(config), "--crm", "salesforce", "--format", "json"))
    open_ = [i for i, r in _leads(fresh_sandboxes).items() if not r.get("IsConverted")]
    client = fresh_sandboxes.salesforce.client()
    org.assignment_rules["Lead"] = UI_USER_ID  # an active rule: every lead to one rep
    try:
        # The sandbox is as strict as the API: without the header, the rule runs.
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": "Lead"}, "id": open_[0], "Title": "CFO"}],
        }
        client.restful("composite/sobjects", method="PATCH", json=body)
        assert org.get("Lead", open_[0])["OwnerId"] == UI_USER_ID  # type: ignore[index]
        owners = {i: org.get("Lead", i)["OwnerId"] for i in open_}  # type: ignore[index]
        result = _sync(ctx, Clock())
        assert result.written == len(open_)
        assert {i: org.get("Lead", i)["OwnerId"] for i in open_} == owners  # type: ignore[index]
        assert all(org.get("Lead", i)["Segsync_Tier__c"] for i in open_)  # type: ignore[index]
    finally:
        org.assignment_rules.clear()


def test_the_service_runs_a_lead_job(fresh_sandboxes: Sandboxes, tmp_path: Path) -> None:
    config = lead_config(
        fresh_sandboxes,
        tmp_path,
        "\n[service]\nport = 0\n\n"
        '[[service.jobs]]\nconnection = "salesforce"\nobject = "lead"\ninterval_minutes = 5\n',
    )
    _json(_invoke("provision", "--config", str(config), "--crm", "salesforce", "--format", "json"))
    done = CliRunner().invoke(cli, ["run", "--once", "--config", str(config)])
    assert done.exit_code == 0, done.output
    runs = _json(_invoke("status", "--config", str(config), "--format", "json"))["runs"]
    assert [(r["connection"], r["object"], r["status"]) for r in runs] == [
        ("salesforce", "lead", "succeeded")
    ]
    leads = _leads(fresh_sandboxes)
    open_ = [r for r in leads.values() if not r.get("IsConverted")]
    assert runs[0]["written"] == len(open_) and all(r.get("Segsync_Tier__c") for r in open_)


def test_lead_list_views_leave_converted_leads_out(sandboxes: Sandboxes) -> None:
    """A filtered lead list view never shows a converted lead (Salesforce's rule)."""
    from segsync_sandbox.salesforce.listviews import ListView

    views = sandboxes.salesforce.app.listviews
    assert views is not None
    view = ListView(
        "00B000000000001AAA", "Lead", "Open_Leads", "Open leads", "Everything", [], ["FULL_NAME"]
    )
    leads = list(sandboxes.salesforce.org.records("Lead"))
    members = {r["Id"] for r in views.members(view)}
    assert members == {r["Id"] for r in leads if not r.get("IsConverted")}
    assert len(members) < len(leads)


def test_a_tier_a_rep_set_on_a_lead_is_kept_by_its_field_history(
    fresh_sandboxes: Sandboxes, config: Path, ctx: Context
) -> None:
    """A first sync (no memory in the store) asks LeadHistory who set a value."""
    org = fresh_sandboxes.salesforce.org
    _json(_invoke("provision", "--config", str(config), "--crm", "salesforce", "--format", "json"))
    engine = ctx.engines["lead"]
    target = next(
        i
        for i, r in _leads(fresh_sandboxes).items()
        if not r.get("IsConverted") and engine.evaluate(r, "salesforce", NOW).tier != "Tier 1"
    )
    org.update("Lead", target, {"Segsync_Tier__c": "Tier 1"})  # a rep, in the UI
    assert org.field("Lead", "Segsync_Tier__c").track_history  # type: ignore[union-attr]
    result = _sync(ctx, Clock())
    assert result.status == "succeeded", result.message
    assert result.summary.counts.overrides >= 1
    kept = [o for o in result.sample_overrides if o.record_id == target]
    assert kept and kept[0].from_audit_trail and kept[0].action == "kept"
    assert org.get("Lead", target)["Segsync_Tier__c"] == "Tier 1"  # type: ignore[index]
