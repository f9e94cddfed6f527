"""Deal syncs against both sandboxes with the real clients: incremental, counted, bad rows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from sandbox_fixtures import hold_clock

from connector.cli import cli
from connector.config import HubSpotConnection, SalesforceConnection
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce import SalesforceAdapter
from connector.store.deals import DealStore
from connector.store.store import Store
from connector.sync.deals import sync_deals
from segsync_sandbox import deals as seeded
from segsync_sandbox.launcher import Sandboxes

_POLICY = RetryPolicy(attempts=5, initial_wait=0.0, max_wait=0.0, sleep=lambda _s: None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def _salesforce(sandboxes: Sandboxes) -> SalesforceAdapter:
    sf = sandboxes.salesforce
    settings = SalesforceConnection(
        auth="client_credentials",
        login_url=sf.login_url,
        instance_url=sf.instance_url,
        ca_file=sf.ca_file,
        client_id=sf.client_id,
        client_secret=SecretStr(sf.client_secret),
    )
    return SalesforceAdapter("sf", settings, retry=_POLICY, bulk_wait=0)


def _hubspot(sandboxes: Sandboxes) -> HubSpotAdapter:
    hs = sandboxes.hubspot
    settings = HubSpotConnection(
        base_url=hs.base_url,
        access_token=SecretStr(hs.access_token),
        # The shared portal's own limits (search paced one below, as the sandbox config does).
        requests_per_10s=int(hs.portal.limits.requests_per_10s),
        search_per_second=max(1, int(hs.portal.limits.search_per_second) - 1),
    )
    return HubSpotAdapter("hs", settings, retry=_POLICY)


def test_salesforce_deals_are_pulled_incrementally(
    fresh_sandboxes: Sandboxes, store: Store
) -> None:
    adapter = _salesforce(fresh_sandboxes)
    sf = fresh_sandboxes.salesforce.client()
    # The org's clock held two seconds on: every seed stamp's second has closed
    # (the look-back is 0), so the full pull's deals are known at their stamps.
    hold_clock(fresh_sandboxes.salesforce).advance(1)
    # Counted independently, through the API.
    rows = list(sf.query_all_iter("SELECT Id, AccountId, IsClosed, IsWon, Amount FROM Opportunity"))
    linked = [r for r in rows if r["AccountId"]]
    first = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert first.full and first.status == "succeeded"
    assert first.read == len(rows) and first.stored == len(linked)
    assert first.skipped == len(rows) - len(linked)
    kept = {d.id: d for d in DealStore(store).deals("sf")}
    assert set(kept) == {r["Id"] for r in linked}
    assert sum(d.is_won for d in kept.values()) == sum(r["IsWon"] for r in linked)
    assert sum(not d.is_closed for d in kept.values()) == sum(not r["IsClosed"] for r in linked)
    assert first.api_calls <= first.minimum_calls + 3  # token, describe

    quiet = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert not quiet.full and quiet.read == 0 and quiet.status == "succeeded"

    target = next(r for r in linked if not r["IsClosed"])
    sf.Opportunity.update(target["Id"], {"StageName": "Closed Won", "Amount": 1234.5})
    edited = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert edited.read == 1 and edited.stored == 1
    after = {d.id: d for d in DealStore(store).deals("sf")}[target["Id"]]
    assert (after.is_closed, after.is_won, after.amount) == (True, True, 1234.5)

    # A deal whose account is removed is reported, skipped and dropped from the store.
    # The clock has not moved: the same second, the same stamp as the edit read above.
    sf.Opportunity.update(target["Id"], {"AccountId": None})
    orphaned = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert orphaned.status == "succeeded" and orphaned.skipped == 1
    assert [(p.id, p.code) for p in orphaned.sample_problems] == [(target["Id"], "NO_ACCOUNT")]
    assert "NO_ACCOUNT 1" in orphaned.message
    assert target["Id"] not in {d.id for d in DealStore(store).deals("sf")}
    # Nothing is written to a deal, so nothing is left to retry.
    assert store.open_errors("sf", "deal") == []


def test_hubspot_deals_are_pulled_incrementally(fresh_sandboxes: Sandboxes, store: Store) -> None:
    adapter = _hubspot(fresh_sandboxes)
    portal = fresh_sandboxes.hubspot.portal
    expected = list(seeded.deals(fresh_sandboxes.dataset.seed, fresh_sandboxes.dataset.accounts))
    first = sync_deals(adapter, store, "hs", lookback=timedelta(0))
    assert first.full and first.read == portal.count("deals") == len(expected)
    good = [d for d in expected if d.defect in (None, "string_amount")]
    assert first.stored == len(good)
    kept = list(DealStore(store).deals("hs"))
    assert sum(d.is_won for d in kept) == sum(d.is_won for d in good)
    assert sum(d.is_closed for d in kept) == sum(d.is_closed for d in good)
    assert first.api_calls == first.minimum_calls

    quiet = sync_deals(adapter, store, "hs", lookback=timedelta(0))
    assert not quiet.full and quiet.read == 0
    # The load gave every deal one stamp, the watermark's: the inclusive
    # search would return them all again. They are known at that stamp, so
    # one search's count proves it and none is read (connector/sync/window.py):
    # the pipelines, one search and the archived list's page, the minimum.
    assert len(expected) > 200 and quiet.api_calls == quiet.minimum_calls == 3

    hs = fresh_sandboxes.hubspot.client()
    target = next(
        r for r in portal.snapshot("deals") if r.props["dealstage"] == "appointmentscheduled"
    )
    hs.crm.deals.basic_api.update(
        target.id, {"properties": {"dealstage": "closedlost", "closed_lost_reason": "Price"}}
    )
    edited = sync_deals(adapter, store, "hs", lookback=timedelta(0))
    assert edited.read == 1 and edited.api_calls == edited.minimum_calls == 4
    after = {d.id: d for d in DealStore(store).deals("hs")}[target.id]
    assert (after.is_closed, after.is_won, after.lost_reason) == (True, False, "Price")


def test_bad_hubspot_deals_are_reported_never_fatal(
    fresh_sandboxes: Sandboxes, store: Store
) -> None:
    portal = fresh_sandboxes.hubspot.portal
    company = next(iter(portal.snapshot("companies"))).id
    base = {"dealname": "x", "pipeline": "default", "dealstage": "closedwon", "amount": "100"}
    no_account, string_amount, unknown_stage = portal.load_deals(
        [
            (base, None),
            ({**base, "amount": "$12,500"}, company),
            ({**base, "dealstage": "qualifiedtobuy_legacy"}, company),
        ]
    )
    hs = fresh_sandboxes.hubspot.client()
    hs.crm.pipelines.pipelines_api.archive(
        object_type="deals", pipeline_id=seeded.RENEWALS_PIPELINE
    )
    renewals = {
        r.id for r in portal.snapshot("deals") if r.props["pipeline"] == seeded.RENEWALS_PIPELINE
    }
    result = sync_deals(_hubspot(fresh_sandboxes), store, "hs", lookback=timedelta(0))
    assert result.status == "succeeded" and result.problems == sum(result.kinds.values())
    errors = {
        p.id: p.code for page in _hubspot(fresh_sandboxes).pull_deals(None) for p in page.problems
    }
    assert result.kinds == Counter(errors.values())
    assert errors[no_account] == "NO_ACCOUNT"
    assert errors[string_amount] == "AMOUNT_NOT_A_NUMBER"
    assert errors[unknown_stage] == "UNKNOWN_STAGE"
    assert renewals and all(errors[i] == "DELETED_PIPELINE" for i in renewals)
    stored = {d.id: d for d in DealStore(store).deals("hs")}
    # The unreadable amount keeps its deal (it was won), without an amount.
    assert stored[string_amount].is_won and stored[string_amount].amount is None
    assert not ({no_account, unknown_stage} | renewals) & set(stored)
    # Fixed in the CRM, the next run reads it cleanly and closes its error.
    hs.crm.deals.basic_api.update(unknown_stage, {"properties": {"dealstage": "closedlost"}})
    again = sync_deals(_hubspot(fresh_sandboxes), store, "hs", lookback=timedelta(0))
    assert again.read == 1 and again.problems == 0
    assert unknown_stage in {d.id for d in DealStore(store).deals("hs")}


def test_sync_object_deal_and_the_deals_setting(
    fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    off = fresh_sandboxes.write_config(
        tmp_path / "off.toml", store_url=f"sqlite:///{tmp_path}/a.db"
    )
    on = fresh_sandboxes.write_config(
        tmp_path / "on.toml", store_url=f"sqlite:///{tmp_path}/b.db", deals=True
    )
    run = CliRunner().invoke(
        cli, ["sync", "--config", str(off), "--object", "deal", "--format", "json"]
    )
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout)
    assert [(r["crm"], r["object"]) for r in doc["runs"]] == [
        ("salesforce", "deal"),
        ("hubspot", "deal"),
    ]
    assert all(r["full"] and r["read"] > 0 and r["written"] == 0 for r in doc["runs"])
    assert {j["status"] for j in doc["jobs"]} == {"succeeded"}
    # `deals = true`: a plain sync reads them after accounts and contacts; off, it does not.
    provision = CliRunner().invoke(cli, ["provision", "--config", str(on)])
    assert provision.exit_code == 0, provision.output
    text = CliRunner().invoke(cli, ["sync", "--config", str(on), "--crm", "hubspot"])
    assert text.exit_code == 0, text.output
    assert "hubspot deals (full, succeeded, read-only)" in text.stdout
    quiet = CliRunner().invoke(
        cli, ["sync", "--config", str(on), "--crm", "hubspot", "--object", "deal"]
    )
    assert "hubspot deals (incremental, succeeded, read-only)" in quiet.stdout
    plain = CliRunner().invoke(
        cli, ["sync", "--config", str(off), "--crm", "hubspot", "--object", "account", "--dry-run"]
    )
    assert "deals" not in plain.stdout


def test_a_full_hubspot_deal_pull_takes_the_companies_from_the_list_pages(
    fresh_sandboxes: Sandboxes, store: Store
) -> None:
    """``associations=companies`` on the list: no v4 association read, the same companies."""
    app = fresh_sandboxes.hubspot.app
    mark = app.log.entries()[-1].seq if app.log.entries() else 0
    listed = sync_deals(_hubspot(fresh_sandboxes), store, "hs", lookback=timedelta(0))
    kinds = Counter(e.kind for e in app.log.entries(mark))
    assert kinds["assoc.batch.read"] == 0 and kinds["list"] > 0
    assert listed.api_calls == listed.minimum_calls == 1 + kinds["list"]
    by_list = {d.id: d.account_id for d in DealStore(store).deals("hs")}

    # Every deal's company cut off after one association (a paging cursor): all
    # of them are read through v4 instead, 1,000 a call, with the same answer.
    limit, app.inline_assoc_limit = app.inline_assoc_limit, 1
    try:
        mark = app.log.entries()[-1].seq
        again = sync_deals(_hubspot(fresh_sandboxes), store, "hs", full=True)
    finally:
        app.inline_assoc_limit = limit
    kinds = Counter(e.kind for e in app.log.entries(mark))
    assert kinds["assoc.batch.read"] == -(-again.read // 1000) > 0
    assert again.api_calls == listed.api_calls + kinds["assoc.batch.read"]
    assert len(by_list) > 200
    assert {d.id: d.account_id for d in DealStore(store).deals("hs")} == by_list


def test_a_salesforce_quiet_pull_proves_a_large_known_window_in_one_call(
    fresh_sandboxes: Sandboxes, store: Store
) -> None:
    """2,100 deals saved in one transaction share a stamp: the inclusive pull re-read them all.

    Known at that stamp, they are counted in the same composite call that
    reads what lies above them (one API call): a quiet pull is one call, as
    is an edit; a deal committed late at the known stamp breaks the count and
    is read (the window then costs its pages, as before). Stamps keep whole
    seconds: an edit in the second a pull read (the window's top second)
    keeps the deal's stamp, so deals read before their second closed are not
    known, and the next pull reads them again.
    """
    sf = fresh_sandboxes.salesforce
    clock = hold_clock(sf)  # the org's seconds move only when the test moves them
    account = next(iter(sf.org.records("Account")))["Id"]
    row = {"AccountId": account, "StageName": "Prospecting", "CloseDate": "2026-12-31"}
    sf.org.load_records("Opportunity", [{**row, "Name": f"Bulk {n}"} for n in range(2100)])
    adapter = _salesforce(fresh_sandboxes)
    first = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert first.read > 2100

    # An edit in the same second as the load and the pull: the same stamp.
    target = next(r["Id"] for r in sf.org.records("Opportunity") if r["Name"] == "Bulk 7")
    stamp = sf.org.get("Opportunity", target)["SystemModstamp"]
    sf.client().Opportunity.update(target, {"Amount": 1234})
    assert sf.org.get("Opportunity", target)["SystemModstamp"] == stamp
    mark = _sf_mark(sf)
    same_second = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    kinds = Counter(e.kind for e in sf.app.log.entries(mark))
    assert kinds == Counter({"queryAll": 1, "queryMore": 1}), kinds  # the window, read again
    assert {d.id: d.amount for d in DealStore(store).deals("sf")}[target] == 1234
    assert same_second.read == 2100  # read before their second closed: none was known

    # Once the second has closed (the Date less the request's time: 2 s), the
    # window is read once more and its deals are known from then on.
    clock.advance(2)
    settling = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert settling.read == 2100 and settling.api_calls == 2
    mark = _sf_mark(sf)
    quiet = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    kinds = Counter(e.kind for e in sf.app.log.entries(mark))
    assert kinds == Counter({"composite": 1}), kinds  # was 2 query pages
    assert quiet.read == 0 and quiet.api_calls == quiet.minimum_calls == 1

    # A deal committed late with a stamp inside the known window: the count
    # differs, the window is read, and the deal is not missed.
    sf.org.load_records("Opportunity", [{**row, "Name": "Late", "SystemModstamp": stamp}])
    late = next(r["Id"] for r in sf.org.records("Opportunity") if r["Name"] == "Late")
    mark = _sf_mark(sf)
    caught = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    kinds = Counter(e.kind for e in sf.app.log.entries(mark))
    assert kinds["composite"] == 1 and kinds["queryAll"] == 1, kinds
    assert late in {d.id for d in DealStore(store).deals("sf")}
    assert caught.read == 1  # the others are known at their stamp: not read as new

    # An edit now: above the window, read in the composite call.
    sf.client().Opportunity.update(target, {"Amount": 4321})
    mark = _sf_mark(sf)
    edited = sync_deals(adapter, store, "sf", lookback=timedelta(0))
    assert Counter(e.kind for e in sf.app.log.entries(mark)) == Counter({"composite": 1})
    assert edited.read == 1 and edited.api_calls == 1
    assert {d.id: d.amount for d in DealStore(store).deals("sf")}[target] == 4321


def _sf_mark(sf: Any) -> int:
    entries = sf.app.log.entries()
    return entries[-1].seq if entries else 0
