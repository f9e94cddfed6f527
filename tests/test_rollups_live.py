"""Rollup attributes in live syncs, through the real clients against both sandboxes (issue 12).

The values segsync writes equal a computation made here, from the rules'
text, on the deals read back through each CRM's API; a new won deal or an
edited deal re-plans just its account on the next incremental run; an
account run whose connection's deals were never synced is refused.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from segsync_sandbox.launcher import Sandboxes

MAPPING = """
object = "account"
version = "rollups-1"

[attributes.won_deals]
rollup = { count = "deals", stage = "won" }

[attributes.won_amount_12m]
rollup = { sum = "amount", stage = "won", within_days = 365 }

[attributes.open_pipeline]
rollup = { sum = "amount", stage = "open" }

[attributes.last_won]
rollup = { latest = "closed", stage = "won" }

[attributes.days_since_win]
rollup = { days_since = "closed", stage = "won" }

[[segments]]
name = "Customer"
when = { attr = "won_deals", gte = 1 }

[[segments]]
name = "Prospect"
default = true

[scores.value]
rules = [
  { points = 1, when = { attr = "days_since_win", lte = 180 } },
  { points = 2, when = { attr = "open_pipeline", gte = 2000 } },
  { points = 4, when = { attr = "won_amount_12m", gte = 5000 } },
  { points = 8, when = { attr = "last_won", within_days = 90 } },
]

[[tiers]]
name = "Tier 1"
when = { score = "value", gte = 4 }

[[tiers]]
name = "Tier 2"
default = true

[outputs.salesforce]
segment = "Segsync_Segment__c"
tier = "Segsync_Tier__c"
scores = { value = "Segsync_Value_Score__c" }

[outputs.hubspot]
segment = "segsync_segment"
tier = "segsync_tier"
scores = { value = "segsync_value_score" }
"""


@dataclass(frozen=True)
class Deal:
    """A deal as read back from the CRM's API, in the terms of the rules above."""

    closed: bool
    won: bool
    amount: float | None
    closes: datetime | None


def expected(deals: list[Deal], now: datetime) -> tuple[str, int]:
    """Segment and value score, computed by hand from the mapping's text (not by the engine)."""
    won = [d for d in deals if d.won]
    won_12m = sum(
        d.amount
        for d in won
        if d.amount is not None
        and d.closes is not None
        and now - timedelta(days=365) <= d.closes <= now
    )
    open_pipeline = sum(d.amount for d in deals if not d.closed and d.amount is not None)
    dated = [d.closes for d in won if d.closes is not None]
    score = 0
    if dated:
        days = (now.date() - max(dated).date()).days
        score += 1 if days <= 180 else 0
        score += 8 if 0 <= days <= 90 else 0
    score += 2 if open_pipeline >= 2000 else 0
    score += 4 if won_12m >= 5000 else 0
    return ("Customer" if won else "Prospect"), score


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path) -> Path:
    mapping = tmp_path / "rollups.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    text = fresh_sandboxes.config_text(store_url=f"sqlite:///{tmp_path / 'state.db'}")
    path = tmp_path / "config.toml"
    path.write_text(
        text.replace("deals = false", f'deals = false\nmappings = ["{mapping.as_posix()}"]'),
        encoding="utf-8",
    )
    return path


def _account_run(doc: dict[str, Any], crm: str) -> dict[str, Any]:
    [run] = [r for r in doc["runs"] if r["crm"] == crm and r["object"] == "account"]
    return run


def _salesforce_state(sandboxes: Sandboxes) -> tuple[dict[str, list[Deal]], dict[str, Any]]:
    sf = sandboxes.salesforce.client()
    deals: dict[str, list[Deal]] = defaultdict(list)
    for row in sf.query_all_iter(
        "SELECT AccountId, IsClosed, IsWon, Amount, CloseDate FROM Opportunity"
    ):
        if not row["AccountId"]:
            continue
        closes = date.fromisoformat(row["CloseDate"]) if row["CloseDate"] else None
        deals[row["AccountId"]].append(
            Deal(
                bool(row["IsClosed"]),
                bool(row["IsWon"]),
                None if row["Amount"] is None else float(row["Amount"]),
                None
                if closes is None
                else datetime(closes.year, closes.month, closes.day, tzinfo=UTC),
            )
        )
    accounts = {
        row["Id"]: row
        for row in sf.query_all_iter(
            "SELECT Id, Segsync_Segment__c, Segsync_Value_Score__c FROM Account"
        )
    }
    return deals, accounts


def _check(
    deals: dict[str, list[Deal]],
    written: dict[str, tuple[Any, Any]],
    before: datetime,
    after: datetime,
) -> None:
    """Every account holds what the rules give on its deals (at either end of the run)."""
    assert written
    for account, (segment, score) in written.items():
        got = (segment, int(float(score)))
        allowed = {
            expected(deals.get(account, []), before),
            expected(deals.get(account, []), after),
        }
        assert got in allowed, (account, got, allowed)
    # The data has every case: customers and prospects, each score bit set somewhere.
    scores = {int(float(s)) for _, s in written.values()}
    assert {seg for seg, _ in written.values()} == {"Customer", "Prospect"}
    for bit in (1, 2, 4, 8):
        assert any(s & bit for s in scores), bit


def test_salesforce_rollups_are_computed_from_the_deals_and_follow_deal_changes(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    c = str(config)
    assert _invoke("provision", "--config", c, "--crm", "salesforce").exit_code == 0
    # A dry run reads no deals: without a deal sync yet, the account job is refused.
    refused = _invoke("sync", "--config", c, "--crm", "salesforce", "--dry-run")
    assert refused.exit_code == 1
    assert "were never synced: run `segsync sync --connection salesforce --object deal`" in (
        refused.stderr
    )

    before = datetime.now(UTC)
    doc = _json(_invoke("sync", "--config", c, "--crm", "salesforce", "--format", "json"))
    after = datetime.now(UTC)
    assert [j["object"] for j in doc["jobs"]] == ["deal", "account"]  # deals first
    deals, accounts = _salesforce_state(fresh_sandboxes)
    _check(
        deals,
        {i: (r["Segsync_Segment__c"], r["Segsync_Value_Score__c"]) for i, r in accounts.items()},
        before,
        after,
    )

    # A new won deal on an account that had none: that account, and only it, is re-planned.
    sf = fresh_sandboxes.salesforce.client()
    target = next(i for i in sorted(accounts) if i not in deals)
    assert accounts[target]["Segsync_Segment__c"] == "Prospect"
    today = datetime.now(UTC).date()
    sf.Opportunity.create(
        {
            "Name": "Rollup test",
            "AccountId": target,
            "StageName": "Closed Won",
            "CloseDate": today.isoformat(),
            "Amount": 9000,
        }
    )
    doc = _json(_invoke("sync", "--config", c, "--crm", "salesforce", "--format", "json"))
    run = _account_run(doc, "salesforce")
    assert not run["full"] and run["read"] == 1 and run["written"] == 1, run
    assert [s["id"] for s in run["sample_changes"]] == [target]
    deals, accounts = _salesforce_state(fresh_sandboxes)
    assert (accounts[target]["Segsync_Segment__c"], accounts[target]["Segsync_Value_Score__c"]) in (
        ("Customer", 13),
        ("Customer", 13.0),
    )

    # A deal edit that changes nothing a rollup reads (its name) re-plans nothing.
    opp = next(iter(sf.query("SELECT Id FROM Opportunity WHERE AccountId != null")["records"]))
    sf.Opportunity.update(opp["Id"], {"Name": "Renamed"})
    doc = _json(_invoke("sync", "--config", c, "--crm", "salesforce", "--format", "json"))
    assert _account_run(doc, "salesforce")["read"] == 0


def _hubspot_state(
    sandboxes: Sandboxes,
) -> tuple[dict[str, list[Deal]], dict[str, Any], dict[str, str]]:
    hs = sandboxes.hubspot.client()
    stages = {
        (p.id, s.id): (s.metadata["isClosed"] == "true", float(s.metadata["probability"]) == 1.0)
        for p in hs.crm.pipelines.pipelines_api.get_all(object_type="deals").results
        for s in p.stages
    }
    rows = []
    after = None
    while True:
        page = hs.crm.deals.basic_api.get_page(
            limit=100, after=after, properties=["dealstage", "pipeline", "amount", "closedate"]
        )
        rows.extend(page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    links = hs.crm.associations.v4.batch_api.get_page(
        from_object_type="deals",
        to_object_type="companies",
        batch_input_public_fetch_associations_batch_request={
            "inputs": [{"id": d.id} for d in rows]
        },
    )
    company_of = {r._from.id: str(r.to[0].to_object_id) for r in links.results if r.to}
    deals: dict[str, list[Deal]] = defaultdict(list)
    for row in rows:
        p = row.properties
        judged = stages.get((p["pipeline"], p["dealstage"]))
        company = company_of.get(row.id)
        if judged is None or company is None:
            continue
        try:
            amount: float | None = float(p["amount"]) if p.get("amount") else None
        except ValueError:
            amount = None  # "$12,500" from an old import: kept without an amount
        closes = p.get("closedate")
        deals[company].append(
            Deal(
                judged[0],
                judged[1],
                amount,
                datetime.fromisoformat(closes.replace("Z", "+00:00")) if closes else None,
            )
        )
    companies: dict[str, Any] = {}
    after = None
    while True:
        page = hs.crm.companies.basic_api.get_page(
            limit=100, after=after, properties=["segsync_segment", "segsync_value_score"]
        )
        companies.update({co.id: co.properties for co in page.results})
        if page.paging is None:
            break
        after = page.paging.next.after
    return deals, companies, company_of


def test_hubspot_rollups_are_computed_from_the_deals_and_follow_deal_changes(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    c = str(config)
    assert _invoke("provision", "--config", c, "--crm", "hubspot").exit_code == 0
    before = datetime.now(UTC)
    doc = _json(_invoke("sync", "--config", c, "--crm", "hubspot", "--format", "json"))
    after = datetime.now(UTC)
    assert [j["object"] for j in doc["jobs"]] == ["deal", "account"]
    deals, companies, _ = _hubspot_state(fresh_sandboxes)
    _check(
        deals,
        {i: (p["segsync_segment"], p["segsync_value_score"]) for i, p in companies.items()},
        before,
        after,
    )

    # An open deal won today: its company, and only it, is re-planned.
    portal = fresh_sandboxes.hubspot.portal
    target = next(
        r for r in portal.snapshot("deals") if r.props["dealstage"] == "appointmentscheduled"
    )
    hs = fresh_sandboxes.hubspot.client()
    now = datetime.now(UTC)
    hs.crm.deals.basic_api.update(
        target.id,
        {
            "properties": {
                "dealstage": "closedwon",
                "amount": "9000",
                "closedate": now.isoformat().replace("+00:00", "Z"),
            }
        },
    )
    doc = _json(_invoke("sync", "--config", c, "--crm", "hubspot", "--format", "json"))
    run = _account_run(doc, "hubspot")
    assert not run["full"] and run["read"] == 1, run
    deals, companies, company_of = _hubspot_state(fresh_sandboxes)
    company = company_of[target.id]
    got = (
        companies[company]["segsync_segment"],
        int(float(companies[company]["segsync_value_score"])),
    )
    assert got == expected(deals[company], datetime.now(UTC))
    assert got[1] & 8 and got[1] & 1  # won today: within 90 days, and 0 days since


def test_a_deal_run_marks_the_accounts_whose_rollup_inputs_changed(tmp_path: Path) -> None:
    """New, edited, moved and gone deals mark their accounts (both, for a move); a rename none."""
    from connector.state import DealProblem, DealRecord
    from connector.store.deals import DEAL_MARKS, DealStore
    from connector.store.store import Store

    stamp = datetime(2026, 11, 1, tzinfo=UTC)

    def deal(deal_id: str, account: str, amount: float, stage: str = "Open") -> DealRecord:
        return DealRecord(
            deal_id, account, None, stage, False, False, amount, stamp, None, None, stamp
        )

    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        deals = DealStore(store)

        def marked_by(deals_in: list[DealRecord], gone: tuple[str, ...] = ()) -> set[str]:
            run = store.start_run("c", "salesforce", "deal", "deals-1", full=False)
            problems = [DealProblem(i, "NO_ACCOUNT", "gone") for i in gone]
            deals.record("c", "salesforce", deals_in, problems, mark_run=run)
            marks = store.changed_parents("c", DEAL_MARKS)
            store.clear_changed_parents("c", DEAL_MARKS, marks)
            return {account for account, _ in marks}

        assert marked_by([deal("d1", "a1", 100), deal("d2", "a2", 5)]) == {"a1", "a2"}
        assert marked_by([deal("d1", "a1", 100, stage="Renamed")]) == set()
        assert marked_by([deal("d1", "a1", 250)]) == {"a1"}
        assert marked_by([deal("d1", "a3", 250)]) == {"a1", "a3"}
        assert marked_by([], gone=("d2",)) == {"a2"}
        # Without a marking run (no rollups in the account mapping), nothing is marked.
        deals.record("c", "salesforce", [deal("d9", "a9", 1)], [])
        assert store.changed_parents("c", DEAL_MARKS) == []


def _deal_call(path: str) -> bool:
    """A HubSpot request of a deal pull: pipelines, deal pages or searches, associations."""
    return path.startswith(
        ("/crm/v3/pipelines/deals", "/crm/v3/objects/deals", "/crm/v4/associations/deals")
    )


def test_the_service_pulls_deals_before_accounts_under_their_own_claim(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    """`segsync run`: a deal job of its own, and deals pulled before each account run."""
    from connector.config import load_settings
    from connector.service.app import Service
    from connector.service.scheduler import run_job
    from connector.store.leases import Busy, JobClaims
    from connector.store.locks import locks_for
    from connector.store.store import Store

    config.write_text(
        config.read_text(encoding="utf-8")
        + "\n[service]\nport = 0\n"
        + "".join(
            f'\n[[service.jobs]]\nconnection = "hubspot"\nobject = "{obj}"\ninterval_minutes = 60\n'
            for obj in ("account", "deal")
        ),
        encoding="utf-8",
    )
    assert _invoke("provision", "--config", str(config), "--crm", "hubspot").exit_code == 0
    service = Service(load_settings(config), port=0)
    ctx = service.open()
    store: Store = ctx.store
    elsewhere = JobClaims(store.engine, locks_for(store.engine), lease_seconds=60, purpose="other")
    try:
        # The deal job held by another process: skipped, and the account job, whose
        # deals were never synced, refused before any write.
        with elsewhere.claim("hubspot.deal") as held:
            assert not isinstance(held, Busy)
            assert run_job("hubspot", "deal", check_tick=False) == "skipped:locked"
            assert run_job("hubspot", "account", check_tick=False) == "failed"
        [refused] = store.runs(1, connection="hubspot", object="account")
        assert refused.status == "failed" and "never synced" in (refused.message or "")
        assert store.runs(5, connection="hubspot", object="deal") == []

        # --once: the deal job first, then the accounts, which do not pull the
        # deals again: this cycle's deal run is fresh. Counted in the sandbox's log.
        log = fresh_sandboxes.hubspot.app.log
        mark = log.entries()[-1].seq
        before = datetime.now(UTC)
        assert service.run_once() == ["succeeded", "succeeded"]
        after = datetime.now(UTC)
        objects = [r.object for r in reversed(store.runs(10, connection="hubspot"))]
        assert objects == ["account", "deal", "account"]
        [deal_job] = store.runs(1, connection="hubspot", object="deal")
        once_deal_calls = [e for e in log.entries(mark) if _deal_call(e.path)]
        assert len(once_deal_calls) == deal_job.api_calls > 0
        assert sum(e.kind == "pipelines.list" for e in once_deal_calls) == 1

        # Outside a cycle an account job pulls the deals first: with nothing
        # changed, a quiet pull (pipelines, one search, the archived list's
        # page), which is what --once no longer spends twice.
        mark = log.entries()[-1].seq
        assert run_job("hubspot", "account", check_tick=False) == "succeeded"
        quiet = [e for e in log.entries(mark) if _deal_call(e.path)]
        [quiet_run] = store.runs(1, connection="hubspot", object="deal")
        assert quiet_run.counts.read == 0 and len(quiet) == quiet_run.api_calls == 3
        deals, companies, _ = _hubspot_state(fresh_sandboxes)
        _check(
            deals,
            {i: (p["segsync_segment"], p["segsync_value_score"]) for i, p in companies.items()},
            before,
            after,
        )

        # A deal lost: the account job pulls it, then re-plans just its company.
        target = next(
            r
            for r in fresh_sandboxes.hubspot.portal.snapshot("deals")
            if r.props["dealstage"] == "appointmentscheduled"
        )
        fresh_sandboxes.hubspot.client().crm.deals.basic_api.update(
            target.id, {"properties": {"dealstage": "closedlost"}}
        )
        assert run_job("hubspot", "account", check_tick=False) == "succeeded"
        deal_run, account_run = store.runs(2, connection="hubspot")[::-1]
        assert (deal_run.object, deal_run.counts.read) == ("deal", 1)
        assert (account_run.object, account_run.counts.read) == ("account", 1)
    finally:
        elsewhere.close()
        service.close()
