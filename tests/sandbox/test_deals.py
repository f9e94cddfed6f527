"""Deals in both sandboxes: seeded, linked to their accounts, served through the real clients."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
from hubspot.crm.pipelines.exceptions import ApiException
from sandbox_fixtures import hold_clock

from segsync_sandbox import data, deals
from segsync_sandbox.hubspot import Portal
from segsync_sandbox.launcher import Sandboxes
from segsync_sandbox.salesforce import Org


def test_deals_are_a_pure_function_of_the_seed() -> None:
    whole = list(deals.deals(7, 60))
    tail = list(deals.deals(7, 60, start=30))
    assert whole[-len(tail) :] == tail
    assert list(deals.deals(7, 60)) == whole
    assert list(deals.deals(8, 60)) != whole
    c = data.company(7, 3)
    assert list(deals.deals_of(c, 7)) == [d for d in whole if d.company_index == 3]


def test_the_dataset_has_open_pipeline_lost_reasons_renewals_and_every_defect() -> None:
    ds = list(deals.deals(42, 2000))
    outcomes = Counter("open" if not d.is_closed else "won" if d.is_won else "lost" for d in ds)
    assert outcomes["open"] > 100 and outcomes["won"] > 300 and outcomes["lost"] > 300
    assert all(d.lost_reason in deals.LOSS_REASONS for d in ds if d.is_closed and not d.is_won)
    assert all(d.lost_reason is None for d in ds if d.is_won or not d.is_closed)
    assert {deals.hubspot_pipeline(d) for d in ds} == {
        deals.SALES_PIPELINE,
        deals.RENEWALS_PIPELINE,
        deals.DELETED_PIPELINE,
    }
    defects = Counter(d.defect for d in ds)
    for kind in ("no_account", "string_amount", "unknown_stage", "deleted_pipeline"):
        assert 0 < defects[kind] < 30, kind
    # Stage histories move forward in time and end in the deal's stage.
    for d in ds:
        times = [at for _, at in d.history]
        assert times == sorted(times) and d.history[0][1] == d.created_at
        assert d.history[-1][0] == d.open_stage


def test_the_seeded_signal_better_fit_wins_more() -> None:
    ds = [d for d in deals.deals(42, 2000) if d.is_closed]
    firms = {c.index: c for c in data.companies(42, 2000)}
    high = [d for d in ds if deals.win_probability(firms[d.company_index]) >= 0.4]
    low = [d for d in ds if deals.win_probability(firms[d.company_index]) < 0.2]
    rate = lambda group: sum(d.is_won for d in group) / len(group)  # noqa: E731
    assert len(high) > 150 and len(low) > 300
    assert rate(high) > rate(low) + 0.25


def test_salesforce_serves_opportunities_over_soql_and_bulk(sandboxes: Sandboxes) -> None:
    sf = sandboxes.salesforce.client()
    expected = [
        deals.salesforce_opportunity_row(d)
        for d in deals.deals(sandboxes.dataset.seed, sandboxes.dataset.accounts)
    ]
    rows = list(
        sf.query_all_iter(
            "SELECT Id, AccountId, StageName, IsClosed, IsWon, Amount, CloseDate, CreatedDate,"
            " Type, Loss_Reason__c, SystemModstamp FROM Opportunity"
        )
    )
    assert len(rows) == len(expected) == sandboxes.dataset.salesforce_opportunities
    by_id = {r["Id"]: r for r in rows}
    for row in expected:
        got = by_id[row["Id"]]
        for key in ("AccountId", "StageName", "IsClosed", "IsWon", "Amount", "CloseDate", "Type"):
            assert got[key] == row[key], key
    assert any(r["AccountId"] is None for r in expected) == any(
        r["AccountId"] is None for r in rows
    )
    won = sf.query("SELECT COUNT() FROM Opportunity WHERE IsWon = true")["totalSize"]
    assert won == sum(1 for r in expected if r["IsWon"])
    bulk = sf.bulk2.Opportunity.query("SELECT Id, IsWon FROM Opportunity", wait=0)
    lines = [line for page in bulk for line in page.splitlines()[1:] if line]
    assert len(lines) == len(expected)
    describe = sf.Opportunity.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert not fields["IsWon"]["updateable"] and fields["AccountId"]["referenceTo"] == ["Account"]
    children = {c["childSObject"] for c in sf.Account.describe()["childRelationships"]}
    assert {"Contact", "Opportunity"} <= children


def test_salesforce_derives_is_closed_and_is_won_from_the_stage(fresh_sandboxes: Sandboxes) -> None:
    org = fresh_sandboxes.salesforce.org
    sf = fresh_sandboxes.salesforce.client()
    opp = next(r for r in org.records("Opportunity") if not r["IsClosed"])
    hold_clock(fresh_sandboxes.salesforce)  # a second after the seed's stamps
    sf.Opportunity.update(opp["Id"], {"StageName": "Closed Won"})
    after = sf.Opportunity.get(opp["Id"])
    assert (after["IsClosed"], after["IsWon"]) == (True, True)
    assert after["SystemModstamp"] > opp["SystemModstamp"]
    with pytest.raises(Exception, match="INVALID_FIELD_FOR_INSERT_UPDATE"):
        sf.Opportunity.update(opp["Id"], {"IsWon": False})


def test_hubspot_serves_deals_pipelines_and_deal_company_links(sandboxes: Sandboxes) -> None:
    hs = sandboxes.hubspot.client()
    seed, n = sandboxes.dataset.seed, sandboxes.dataset.accounts
    expected = list(deals.deals(seed, n))
    pipelines = hs.crm.pipelines.pipelines_api.get_all(object_type="deals").results
    served = {p.id: p for p in pipelines}
    assert set(served) == {deals.SALES_PIPELINE, deals.RENEWALS_PIPELINE}
    won = {
        s.id
        for p in pipelines
        for s in p.stages
        if s.metadata["isClosed"] == "true" and float(s.metadata["probability"]) == 1.0
    }
    assert won == {"closedwon", "2764314"}
    with pytest.raises(ApiException) as missing:
        hs.crm.pipelines.pipelines_api.get_by_id(
            object_type="deals", pipeline_id=deals.DELETED_PIPELINE
        )
    assert missing.value.status == 404

    results = []
    after = None
    while True:
        page = hs.crm.deals.basic_api.get_page(
            limit=100, after=after, properties=["amount", "dealstage", "pipeline", "createdate"]
        )
        results.extend(page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(results) == len(expected) == sandboxes.dataset.hubspot_deals
    for deal, got in zip(expected, results, strict=True):
        assert got.properties["dealstage"] == deals.hubspot_stage(deal)
        assert got.properties["amount"] == deals.hubspot_deal_props(deal)["amount"]

    ids = [r.id for r in results[:50]]
    links = hs.crm.associations.v4.batch_api.get_page(
        from_object_type="deals",
        to_object_type="companies",
        batch_input_public_fetch_associations_batch_request={"inputs": [{"id": i} for i in ids]},
    )
    linked = {r._from.id: r.to[0].to_object_id for r in links.results}
    for deal, deal_id in zip(expected[:50], ids, strict=True):
        assert linked.get(deal_id) == deals.hubspot_deal_company(deal)


def test_a_deleted_hubspot_pipeline_leaves_its_deals_behind(fresh_sandboxes: Sandboxes) -> None:
    hs = fresh_sandboxes.hubspot.client()
    api = hs.crm.pipelines.pipelines_api
    renewal = next(
        r.id
        for r in fresh_sandboxes.hubspot.portal.snapshot("deals")
        if r.props["pipeline"] == deals.RENEWALS_PIPELINE
    )
    api.archive(object_type="deals", pipeline_id=deals.RENEWALS_PIPELINE)
    assert [p.id for p in api.get_all(object_type="deals").results] == [deals.SALES_PIPELINE]
    kept = hs.crm.deals.basic_api.get_by_id(renewal, properties=["pipeline", "dealstage"])
    assert kept.properties["pipeline"] == deals.RENEWALS_PIPELINE
    with pytest.raises(ApiException) as again:
        api.archive(object_type="deals", pipeline_id=deals.RENEWALS_PIPELINE)
    assert again.value.status == 404


def test_deals_survive_a_save_and_a_portal_saved_before_deals_loads(tmp_path: Path) -> None:
    org, portal = Org(), Portal()
    rows = list(itertools.islice(deals.deals(3, 40), 30))
    org.load_records("Opportunity", (deals.salesforce_opportunity_row(d) for d in rows))
    portal.load_companies(data.hubspot_company_props(c) for c in data.companies(3, 40))
    ids = portal.load_deals(
        (deals.hubspot_deal_props(d), deals.hubspot_deal_company(d)) for d in rows
    )
    portal.delete_pipeline(deals.RENEWALS_PIPELINE)
    org.save(tmp_path / "sf")
    portal.save(tmp_path / "hs")
    again = Portal.from_dir(tmp_path / "hs")
    assert Org.load(tmp_path / "sf").count("Opportunity") == len(rows)
    assert again.count("deals") == len(rows)
    assert [again.associated("deals", i, "companies") for i in ids] == [
        [] if deals.hubspot_deal_company(d) is None else [deals.hubspot_deal_company(d)]
        for d in rows
    ]
    assert again.pipeline(deals.RENEWALS_PIPELINE) is None
    # A portal saved before deals existed: no deals file, no deal keys.
    meta = json.loads((tmp_path / "hs" / "portal.json").read_text())
    for key in ("deal_companies", "pipelines"):
        del meta[key]
    for section in ("next_id", "properties", "groups"):
        del meta[section]["deals"]
    (tmp_path / "hs" / "portal.json").write_text(json.dumps(meta))
    (tmp_path / "hs" / "deals.jsonl").unlink()
    old = Portal.from_dir(tmp_path / "hs")
    assert old.count("deals") == 0 and old.pipeline(deals.SALES_PIPELINE) is not None
    assert "dealstage" in {p["name"] for p in old.properties("deals")}


def test_hubspot_deals_carry_their_stage_history(sandboxes: Sandboxes) -> None:
    hs = sandboxes.hubspot.client()
    seeded = list(deals.deals(sandboxes.dataset.seed, sandboxes.dataset.accounts))
    closed = next(
        i for i, d in enumerate(seeded) if d.is_won and not d.defect and len(d.history) > 2
    )
    deal_id = sandboxes.hubspot.portal.snapshot("deals")[closed].id
    got = hs.crm.deals.basic_api.get_by_id(
        deal_id, properties=["dealstage"], properties_with_history=["dealstage"]
    )
    history = got.properties_with_history["dealstage"]
    # Newest first, the current stage on top, one entry per stage the deal entered.
    assert [h.value for h in history] == [
        s for s, _ in reversed(deals.hubspot_stage_history(seeded[closed]))
    ]
    assert history[0].value == got.properties["dealstage"] == "closedwon"
    assert [h.timestamp for h in history] == sorted((h.timestamp for h in history), reverse=True)
