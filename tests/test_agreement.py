"""The agreement policy (`[parity] source`): a matched pair ends with identical outputs.

The outputs are identical in both CRMs, computed from the preferred side or merged inputs.
Real clients, both sandboxes: `segsync provision` and `segsync sync` write;
the outputs are read back through simple-salesforce and hubspot-api-client.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from segsync_sandbox import data
from segsync_sandbox.launcher import Sandboxes

ENGINE = compile_mapping(load_mapping(templates.ACCOUNTS))
SF_OUT = ENGINE.output_fields("salesforce")
HS_OUT = ENGINE.output_fields("hubspot")
KEYS = ("segment", "tier", "score.fit", "score.intent", "reason")


def _invoke(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, [*args, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def _config(sandboxes: Sandboxes, tmp_path: Path, parity: str) -> Path:
    config = sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    with config.open("a") as out:
        out.write(f"\n[parity]\n{parity}\n")
    return config


def _salesforce(sandboxes: Sandboxes) -> dict[str, dict[str, Any]]:
    fields = ", ".join(["Id", *(SF_OUT[k] for k in KEYS)])
    rows = sandboxes.salesforce.client().query_all(f"SELECT {fields} FROM Account")["records"]
    return {r["Id"]: {k: r[SF_OUT[k]] for k in KEYS} for r in rows}


def _hubspot(sandboxes: Sandboxes) -> dict[str, dict[str, Any]]:
    api = sandboxes.hubspot.client().crm.companies
    companies = api.get_all(properties=[HS_OUT[k] for k in KEYS])
    return {c.id: {k: c.properties.get(HS_OUT[k]) for k in KEYS} for c in companies}


def _same(sf: dict[str, Any], hs: dict[str, Any]) -> bool:
    def norm(key: str, value: Any) -> Any:
        if key.startswith("score.") and value not in (None, ""):
            return float(value)
        return value

    return all(norm(k, sf[k]) == norm(k, hs[k]) for k in KEYS)


def _sync(config: Path, *extra: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _invoke(
        "sync", "--config", str(config), "--object", "account", *extra
    )["runs"]
    return runs


def test_source_salesforce_writes_the_salesforce_values_to_both(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    config = _config(fresh_sandboxes, tmp_path, 'source = "salesforce"')
    _invoke("provision", "--config", str(config))
    _sync(config)
    sf, hs = _salesforce(fresh_sandboxes), _hubspot(fresh_sandboxes)
    companies = list(data.companies(fresh_sandboxes.dataset.seed, fresh_sandboxes.dataset.accounts))
    differing = set(data.SEEDED_DIFFERENCES) | {2}  # 2: the natural 'Technology' company
    matched = 0
    for c in companies:
        pair = sf[data.salesforce_account_id(c.index)], hs[data.hubspot_company_id(c.index)]
        if pair[0]["reason"].endswith(" · decided by Salesforce"):
            matched += 1
            assert _same(*pair), (c.index, pair)
        else:
            # Unmatched (no integration id, no website): each CRM decides alone.
            assert not c.synced and not c.website and c.index not in differing
    assert matched >= len(companies) - 5
    # Without the policy these differ (tests/test_parity.py); with it, HubSpot
    # holds what Salesforce's data gives.
    now = datetime.now(UTC)
    for index in differing:
        row = data.salesforce_account_row(data.company(fresh_sandboxes.dataset.seed, index))
        expected = ENGINE.evaluate(row, "salesforce", now)
        held = hs[data.hubspot_company_id(index)]
        assert (held["segment"], held["tier"]) == (expected.segment, expected.tier)

    # A change on the deciding side reaches HubSpot's next incremental run,
    # though nothing changed in HubSpot.
    index = 16
    account = data.salesforce_account_id(index)
    before = hs[data.hubspot_company_id(index)]
    # A rep edits the account in Salesforce's UI.
    fresh_sandboxes.salesforce.org.update("Account", account, {"Industry": "Retail"})
    (run,) = _sync(config, "--crm", "hubspot")
    assert not run["full"]
    after = _hubspot(fresh_sandboxes)[data.hubspot_company_id(index)]
    assert (before["tier"], after["tier"]) == ("Tier 1", "Tier 2")  # software fit points lost
    _sync(config, "--crm", "salesforce")
    assert _same(_salesforce(fresh_sandboxes)[account], after)


def test_merge_takes_the_first_non_blank_value_in_order(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    config = _config(
        fresh_sandboxes,
        tmp_path,
        'source = "merge"\nmerge_order = ["salesforce", "hubspot"]\n'
        'attribute_order = { intent = ["hubspot", "salesforce"] }',
    )
    _invoke("provision", "--config", str(config))
    # Salesforce lost the industry of a software company HubSpot still files.
    index = 72  # HubSpot says INTERNET (seeded): Other
    seeded = data.company(fresh_sandboxes.dataset.seed, 51)  # HubSpot: INTERNET
    fresh_sandboxes.salesforce.org.update(
        "Account", data.salesforce_account_id(index), {"Industry": None}
    )
    _sync(config)
    sf, hs = _salesforce(fresh_sandboxes), _hubspot(fresh_sandboxes)
    merged_pairs = 0
    for c in data.companies(fresh_sandboxes.dataset.seed, fresh_sandboxes.dataset.accounts):
        pair = sf[data.salesforce_account_id(c.index)], hs[data.hubspot_company_id(c.index)]
        if " · merged: " in pair[0]["reason"]:
            merged_pairs += 1
            assert _same(*pair), (c.index, pair)
    assert merged_pairs >= fresh_sandboxes.dataset.accounts - 5
    # Blank in Salesforce: HubSpot's value decides, and the reason says so
    # (intent too: its own order puts HubSpot first).
    blanked = sf[data.salesforce_account_id(index)]
    assert blanked["reason"].endswith(" · merged: industry, intent from HubSpot")
    company = data.company(fresh_sandboxes.dataset.seed, index)
    row, props = data.salesforce_account_row(company), data.hubspot_company_props(company)
    merged = {**row, "Industry": props["industry"], "Intent_Score__c": props["intent_score"]}
    now = datetime.now(UTC)
    expected = ENGINE.evaluate(merged, "salesforce", now)
    assert (blanked["segment"], blanked["tier"]) == (expected.segment, expected.tier)
    # Salesforce first: its 'SaaS' beats HubSpot's INTERNET on a seeded company.
    own = ENGINE.evaluate(data.salesforce_account_row(seeded), "salesforce", now)
    first = hs[data.hubspot_company_id(seeded.index)]
    assert (first["segment"], first["tier"]) == (own.segment, own.tier)


def test_the_policy_pairs_one_connection_of_each_crm(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[connections.hs]\ncrm = "hubspot"\n[parity]\nsource = "hubspot"\n')
    result = CliRunner().invoke(cli, ["sync", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "parity.source" in result.output and "found 0 of salesforce" in result.output


@pytest.mark.parametrize("order", ['["salesforce"]', '["hubspot", "hubspot"]'])
def test_merge_order_names_both_crms(tmp_path: Path, order: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[parity]\nmerge_order = {order}\n")
    result = CliRunner().invoke(cli, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "parity.merge_order" in result.output


def test_records_sharing_decisions_and_note_share_one_noted_assignment() -> None:
    """A run hands the planner one noted copy per assignment and note, not one per record.

    The planner's cache (``RecordPlanner``) is keyed by the assignment: a fresh
    copy per record filled it with entries that never hit. The copy is what
    ``with_note`` gives, due date included.
    """
    from connector.sync.agreement import Notes, with_note
    from connector.sync.planner import NO_HYSTERESIS, Policy, RecordPlanner

    now = datetime(2026, 11, 22, tzinfo=UTC)
    fields = {"Industry": "Software", "NumberOfEmployees": 5000, "LastActivityDate": "2026-11-20"}
    first = ENGINE.assign(fields, "salesforce", now)
    second = ENGINE.assign(dict(fields), "salesforce", now)
    assert first is second and first.due_at is not None  # the engine shares assignments
    notes = Notes()
    a = notes(first, "decided by Salesforce")
    b = notes(second, "decided by Salesforce")
    assert a is b
    assert a == with_note(first, "decided by Salesforce")
    assert a.reason == with_note(first, "decided by Salesforce").reason
    assert a.due_at == first.due_at
    other = notes(first, "merged: industry from HubSpot")
    assert other is not a and other.reason.endswith("merged: industry from HubSpot")
    assert notes(first, "") is first

    planner = RecordPlanner("salesforce", Policy(), NO_HYSTERESIS, now, SF_OUT.values())
    for _ in range(3):
        planner.decide(
            "001000000000001AAA", notes(first, "decided by Salesforce"), {}, None, False, None
        )
    assert len(planner._cache) == 1
