"""A sync cycle end to end against the HubSpot sandbox, through hubspot-api-client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connector import templates
from connector.config import HubSpotConnection, SyncSettings
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.retry import RetryPolicy
from connector.engine import Engine, compile_mapping
from connector.mapping import load_mapping
from connector.store.store import Store
from connector.sync.provision import output_specs
from connector.sync.runner import Job, Runner
from segsync_sandbox import data
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
COMPANIES = 120


@pytest.fixture(scope="module")
def engines() -> dict[str, Engine]:
    return {
        "account": compile_mapping(load_mapping(templates.ACCOUNTS)),
        "contact": compile_mapping(load_mapping(templates.CONTACTS)),
    }


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    portal = Portal(requests_per_10s=10_000, search_per_second=1_000)
    portal.load_companies(data.hubspot_company_props(c) for c in data.companies(7, COMPANIES))
    portal.load_contacts(data.hubspot_contact_props(c) for c in data.contacts(7, COMPANIES, 2))
    with start_hubspot(portal=portal) as running:
        yield running


def _adapter(sandbox: HubSpotSandbox, **settings: Any) -> HubSpotAdapter:
    connection = HubSpotConnection(
        base_url=sandbox.base_url,
        access_token=SecretStr(sandbox.access_token),
        requests_per_10s=settings.pop("requests_per_10s", 10_000),
        search_per_second=1_000,
        **settings,
    )
    return HubSpotAdapter("hs", connection, retry=RetryPolicy(sleep=lambda s: None))


def _provision(adapter: HubSpotAdapter, engines: dict[str, Engine]) -> None:
    for obj in ("account", "contact"):
        engine = engines[obj]
        parent = engines["account"] if obj == "contact" else None
        report = adapter.provision(
            obj,  # type: ignore[arg-type]
            output_specs(engine, "hubspot", parent),
            engine.input_fields("hubspot"),
            dry_run=False,
        )
        assert not report.problems, report.problems


def _runner(tmp_path: Path, clock: list[datetime], **sync: Any) -> Runner:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    return Runner(store, SyncSettings(**sync), clock=lambda: clock[0])


def test_full_then_incremental_sync(
    sandbox: HubSpotSandbox, engines: dict[str, Engine], tmp_path: Path
) -> None:
    adapter = _adapter(sandbox)
    _provision(adapter, engines)
    clock = [NOW]
    runner = _runner(tmp_path, clock)
    accounts = Job("hs", adapter, engines["account"])
    contacts = Job("hs", adapter, engines["contact"], engines["account"])

    first = runner.run(accounts)
    assert first.full and first.status == "succeeded"
    assert first.summary.counts.read == COMPANIES
    assert first.written == COMPANIES  # a fresh portal: every company gets its values
    portal = sandbox.portal
    outputs = engines["account"].output_fields("hubspot")
    for record in portal.snapshot("companies"):
        props = record.props
        expected = engines["account"].evaluate(props, "hubspot", NOW)
        assert props[outputs["segment"]] == expected.segment
        assert props[outputs["tier"]] == expected.tier
        assert float(props[outputs["score.fit"]]) == expected.scores["fit"]
        assert props[outputs["reason"]] == expected.reason

    # Nothing changed: the incremental run reads our own writes back and writes nothing.
    second = runner.run(accounts)
    assert not second.full
    assert second.written == 0 and second.summary.counts.changed == 0

    # Contacts inherit their company's segment and tier.
    contacts_run = runner.run(contacts)
    assert contacts_run.status == "succeeded" and contacts_run.written > 0
    company_of = {r.id: r.props for r in portal.snapshot("companies")}
    checked = 0
    for contact in portal.snapshot("contacts"):
        company = portal.associated("contacts", contact.id, "companies")
        if not company:
            continue
        parent = company_of[company[0]]
        assert contact.props["segsync_segment"] == parent["segsync_segment"]
        assert contact.props["segsync_tier"] == parent["segsync_tier"]
        assert contact.props["segsync_persona"] in engines["contact"].persona_names
        checked += 1
    assert checked > COMPANIES  # about two contacts per company

    # A person edits a company in the CRM: the next incremental run picks it up.
    target = next(
        r for r in portal.snapshot("companies") if r.props.get("segsync_tier") != "Tier 1"
    )
    portal.update(
        "companies",
        target.id,
        {
            "industry": "COMPUTER_SOFTWARE",
            "numberofemployees": "5000",
            "intent_score": "95",
            "tech_stack": "Salesforce;Snowflake;AWS;Segment",
        },
    )
    clock[0] = NOW.replace(hour=13)
    third = runner.run(accounts)
    assert third.summary.counts.changed == 1 and third.written == 1
    props = portal.get("companies", target.id)["properties"]
    expected = engines["account"].evaluate(props, "hubspot", clock[0])
    assert props["segsync_segment"] == expected.segment == "Enterprise SaaS"
    assert props["segsync_tier"] == expected.tier


def test_only_declared_outputs_are_written(
    sandbox: HubSpotSandbox, engines: dict[str, Engine], tmp_path: Path
) -> None:
    adapter = _adapter(sandbox)
    _provision(adapter, engines)
    runner = _runner(tmp_path, [NOW])
    before = len(sandbox.app.log.entries())
    runner.run(Job("hs", adapter, engines["account"]))
    declared = set(engines["account"].output_fields("hubspot").values())
    writes = [e for e in sandbox.app.log.entries() if e.seq > before and e.fields]
    assert writes, "the run wrote nothing"
    for entry in writes:
        assert set(entry.fields) <= declared, entry
    # Batches of at most 100 and no more batch updates than needed.
    updates = [e for e in writes if e.kind == "batch.update"]
    assert all(len(e.records) <= 100 for e in updates)
    assert len(updates) == -(-COMPANIES // 100)


def test_manual_override_is_respected_and_reported(
    sandbox: HubSpotSandbox, engines: dict[str, Engine], tmp_path: Path
) -> None:
    adapter = _adapter(sandbox)
    _provision(adapter, engines)
    clock = [NOW]
    runner = _runner(tmp_path, clock)
    job = Job("hs", adapter, engines["account"])
    runner.run(job)
    portal = sandbox.portal
    record = portal.snapshot("companies")[0]
    ours = record.props["segsync_tier"]
    # A person pins a tier by hand, then an input changes so that our tier would move too.
    after = {**record.props, "numberofemployees": "7", "intent_score": "0"}
    desired = engines["account"].evaluate(after, "hubspot", NOW).tier
    theirs = next(t for t in engines["account"].tier_names if t not in {ours, desired})
    portal.update(
        "companies",
        record.id,
        {"segsync_tier": theirs, "numberofemployees": "7", "intent_score": "0"},
    )
    clock[0] = NOW.replace(hour=14)
    result = runner.run(job)
    assert [(o.record_id, o.crm_value, o.our_last, o.action) for o in result.sample_overrides] == [
        (record.id, theirs, ours, "kept")
    ]
    assert portal.get("companies", record.id)["properties"]["segsync_tier"] == theirs

    # With policy overwrite, the computed value wins.
    overwrite = Runner(runner._store, SyncSettings(override_policy="overwrite"), clock=lambda: NOW)
    clock[0] = NOW.replace(hour=15)
    result = overwrite.run(job, full=True)
    assert result.sample_overrides[0].action == "overwritten"
    assert portal.get("companies", record.id)["properties"]["segsync_tier"] == desired
