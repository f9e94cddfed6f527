"""Deals deleted in the CRM leave the store, the rollups and the outcomes by the next run.

Through the real clients against both sandboxes: an Opportunity deleted
(Recycle Bin, ``IsDeleted``) or a HubSpot deal archived is gone from the next
incremental run's rollups, and its account is re-planned and written on that
run; an undeleted Opportunity counts again. A full pull drops a stored deal
the CRM no longer lists.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox_fixtures import hold_clock
from test_deals_sync import (  # noqa: F401 (store: a fixture)
    _hubspot,
    _salesforce,
    _sf_mark,
    store,
)
from test_rollups_live import (
    _account_run,
    _hubspot_state,
    _invoke,
    _json,
    _salesforce_state,
    config,  # noqa: F401 (a fixture)
    expected,
)

from connector.store.deals import DealStore
from connector.store.store import Store
from connector.sync.deals import sync_deals
from segsync_sandbox.launcher import Sandboxes


def _deal_run(doc: dict[str, Any], crm: str) -> dict[str, Any]:
    [run] = [r for r in doc["runs"] if r["crm"] == crm and r["object"] == "deal"]
    return run


def _won_deals(doc: dict[str, Any]) -> int:
    """Won deals counted by ``segsync outcomes --format json``, over all its groups."""
    return sum(int(g["won"]) for g in doc["groups"])


def _sync(config_path: str, crm: str) -> dict[str, Any]:
    return _json(_invoke("sync", "--config", config_path, "--crm", crm, "--format", "json"))


def _outcomes(config_path: str, crm: str) -> dict[str, Any]:
    return _json(_invoke("outcomes", "--config", config_path, "--crm", crm, "--format", "json"))


def test_a_deleted_opportunity_leaves_the_rollups_and_counts_again_once_undeleted(
    fresh_sandboxes: Sandboxes,
    config: Path,  # noqa: F811
) -> None:
    c = str(config)
    assert _invoke("provision", "--config", c, "--crm", "salesforce").exit_code == 0
    _sync(c, "salesforce")
    won_before = _won_deals(_outcomes(c, "salesforce"))
    sf = fresh_sandboxes.salesforce.client()
    won: dict[str, list[str]] = defaultdict(list)
    for row in sf.query_all_iter("SELECT Id, AccountId FROM Opportunity WHERE IsWon = true"):
        if row["AccountId"]:
            won[row["AccountId"]].append(row["Id"])
    # An account whose one won deal makes it a customer.
    account = next(a for a in sorted(won) if len(won[a]) == 1)
    [opportunity] = won[account]
    _, accounts = _salesforce_state(fresh_sandboxes)
    assert accounts[account]["Segsync_Segment__c"] == "Customer"

    sf.Opportunity.delete(opportunity)
    doc = _sync(c, "salesforce")
    deal_run, run = _deal_run(doc, "salesforce"), _account_run(doc, "salesforce")
    assert not deal_run["full"] and deal_run["removed"] == 1, deal_run
    # (The accounts written moments ago are planned again, not rewritten: read
    # before their stamps' second and the look-back had passed, see
    # docs/crm-apis.md#whole-second-stamps.)
    assert not run["full"] and run["written"] == 1, run
    assert [s["id"] for s in run["sample_changes"]] == [account]
    deals, accounts = _salesforce_state(fresh_sandboxes)  # the API's live rows
    got = accounts[account]["Segsync_Segment__c"], int(accounts[account]["Segsync_Value_Score__c"])
    assert got == expected(deals.get(account, []), datetime.now(UTC))
    assert got[0] == "Prospect"
    assert _won_deals(_outcomes(c, "salesforce")) == won_before - 1

    # Restored from the Recycle Bin (the platform moves its stamp): it counts again.
    fresh_sandboxes.salesforce.org.undelete("Opportunity", opportunity)
    doc = _sync(c, "salesforce")
    deal_run, run = _deal_run(doc, "salesforce"), _account_run(doc, "salesforce")
    assert deal_run["stored"] >= 1 and deal_run["removed"] == 0, deal_run
    assert run["written"] == 1 and [s["id"] for s in run["sample_changes"]] == [account], run
    deals, accounts = _salesforce_state(fresh_sandboxes)
    got = accounts[account]["Segsync_Segment__c"], int(accounts[account]["Segsync_Value_Score__c"])
    assert got == expected(deals[account], datetime.now(UTC))
    assert got[0] == "Customer"
    assert _won_deals(_outcomes(c, "salesforce")) == won_before


def test_an_archived_hubspot_deal_leaves_the_rollups_on_the_next_run(
    fresh_sandboxes: Sandboxes,
    config: Path,  # noqa: F811
) -> None:
    c = str(config)
    assert _invoke("provision", "--config", c, "--crm", "hubspot").exit_code == 0
    _sync(c, "hubspot")
    won_before = _won_deals(_outcomes(c, "hubspot"))
    _, companies, company_of = _hubspot_state(fresh_sandboxes)
    won: dict[str, list[str]] = defaultdict(list)
    for record in fresh_sandboxes.hubspot.portal.snapshot("deals"):
        company = company_of.get(record.id)
        if company and record.props.get("dealstage") == "closedwon":
            won[company].append(record.id)
    company = next(co for co in sorted(won) if len(won[co]) == 1)
    [deal] = won[company]
    assert companies[company]["segsync_segment"] == "Customer"

    fresh_sandboxes.hubspot.client().crm.deals.basic_api.archive(deal)
    doc = _sync(c, "hubspot")
    deal_run, run = _deal_run(doc, "hubspot"), _account_run(doc, "hubspot")
    assert not deal_run["full"] and deal_run["removed"] == 1, deal_run
    assert not run["full"] and run["read"] == 1 and run["written"] == 1, run
    assert [s["id"] for s in run["sample_changes"]] == [company]
    deals, companies, _ = _hubspot_state(fresh_sandboxes)  # the live list
    got = (
        companies[company]["segsync_segment"],
        int(float(companies[company]["segsync_value_score"])),
    )
    assert got == expected(deals.get(company, []), datetime.now(UTC))
    assert got[0] == "Prospect"
    assert _won_deals(_outcomes(c, "hubspot")) == won_before - 1

    # Already gone: the next run finds it archived again and changes nothing.
    doc = _sync(c, "hubspot")
    assert _deal_run(doc, "hubspot")["removed"] == 0
    assert _account_run(doc, "hubspot")["read"] == 0


def test_a_full_pull_drops_the_stored_deals_the_crm_no_longer_lists(
    fresh_sandboxes: Sandboxes,
    store: Store,  # noqa: F811
) -> None:
    """Archived (or, in Salesforce, purged from the Recycle Bin) between two full pulls."""
    adapter = _hubspot(fresh_sandboxes)
    first = sync_deals(adapter, store, "hs", lookback=timedelta(0))
    stored = {d.id: d.account_id for d in DealStore(store).deals("hs")}
    assert first.full and first.removed == 0 and stored
    deal = sorted(stored)[0]
    fresh_sandboxes.hubspot.client().crm.deals.basic_api.archive(deal)
    again = sync_deals(adapter, store, "hs", full=True, lookback=timedelta(0))
    assert again.full and again.removed == 1
    assert {d.id: d.account_id for d in DealStore(store).deals("hs")} == {
        i: a for i, a in stored.items() if i != deal
    }


def test_a_deletion_above_a_proven_salesforce_window_costs_no_more_calls(
    fresh_sandboxes: Sandboxes,
    store: Store,  # noqa: F811
) -> None:
    """The window's count and the page above it both go to queryAll: one composite call.

    2,100 deals saved in one transaction share a stamp (a window proven by a
    count, connector/sync/window.py). One of them deleted: its row, moved
    above the window, is in the page above, and the window's count, deleted
    rows included, still proves the rest.
    """
    sf = fresh_sandboxes.salesforce
    clock = hold_clock(sf)  # the org's seconds move only when the test moves them
    account = next(iter(sf.org.records("Account")))["Id"]
    row = {"AccountId": account, "StageName": "Prospecting", "CloseDate": "2026-12-31"}
    sf.org.load_records("Opportunity", [{**row, "Name": f"Bulk {n}"} for n in range(2100)])
    adapter = _salesforce(fresh_sandboxes)
    sync_deals(adapter, store, "sf", lookback=timedelta(0))
    # Read once more after their second closed: known from then on (test_deals_sync).
    clock.advance(2)
    sync_deals(adapter, store, "sf", lookback=timedelta(0))
    target = next(r for r in sf.org.records("Opportunity") if r["Name"] == "Bulk 7")
    assert target["Id"] in {d.id for d in DealStore(store).deals("sf")}

    # Deleted in a later second: its row moves above the window.
    clock.advance(1)
    sf.client().Opportunity.delete(target["Id"])
    mark = _sf_mark(sf)
    deleted = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert Counter(e.kind for e in sf.app.log.entries(mark)) == Counter({"composite": 1})
    assert deleted.read == 1 and deleted.removed == 1 and deleted.api_calls == 1
    assert target["Id"] not in {d.id for d in DealStore(store).deals("sf")}

    # The next pull meets the deleted row again at the watermark (inclusive):
    # read before its second closed, it is read once more (not removed again),
    # then known there.
    clock.advance(2)
    again = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert (again.read, again.removed, again.api_calls) == (1, 0, 1)
    quiet = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert (quiet.read, quiet.removed, quiet.api_calls) == (0, 0, 1)


def test_the_archived_list_is_paged_to_its_end(
    fresh_sandboxes: Sandboxes,
    store: Store,  # noqa: F811
) -> None:
    """101 deals archived (from the UI): two archived pages, every one of them dropped."""
    adapter = _hubspot(fresh_sandboxes)
    sync_deals(adapter, store, "hs", lookback=timedelta(0))
    stored = sorted(d.id for d in DealStore(store).deals("hs"))
    portal = fresh_sandboxes.hubspot.portal
    for deal in stored[:101]:
        portal.archive("deals", deal)
    app = fresh_sandboxes.hubspot.app
    mark = app.log.entries()[-1].seq
    result = sync_deals(adapter, store, "hs", lookback=timedelta(0))
    listed = [e for e in app.log.entries(mark) if e.kind == "list"]
    assert [len(e.records) for e in listed] == [100, 1]  # the archived deals, in two pages
    assert sorted(i for e in listed for i in e.records) == stored[:101]
    assert result.removed == 101 and result.read == 0
    assert sorted(d.id for d in DealStore(store).deals("hs")) == stored[101:]
