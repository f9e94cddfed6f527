"""Contacts take their company's segment and tier from the store, never stale (HubSpot).

Real hubspot-api-client against the HubSpot sandbox: the account run notes
what the companies hold; the contact run lists contacts with their company
associations, searches the companies modified since the account run, and
reads nothing else (connector/sync/parents.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sandbox_fixtures import (
    hubspot_adapter,
    provision,
    seeded_hubspot,
    shipped_engines,
    sqlite_store,
)

from connector.config import SyncSettings
from connector.crm.hubspot import HubSpotAdapter
from connector.engine import Engine
from connector.store.inherited import InheritedStore
from connector.store.store import Store
from connector.sync.runner import Job, Runner
from segsync_sandbox.hubspot import HubSpotSandbox

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
COMPANIES = 60
#: Inputs that make a company Enterprise SaaS, Tier 1.
EDIT = {
    "industry": "COMPUTER_SOFTWARE",
    "numberofemployees": "5000",
    "intent_score": "95",
    "tech_stack": "Salesforce;Snowflake;AWS;Segment",
}


@pytest.fixture(scope="module")
def engines() -> dict[str, Engine]:
    return shipped_engines()


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with seeded_hubspot(11, COMPANIES) as running:
        yield running


@pytest.fixture
def world(
    sandbox: HubSpotSandbox, engines: dict[str, Engine], tmp_path: Path
) -> tuple[HubSpotAdapter, Runner, Store]:
    adapter = hubspot_adapter(sandbox)
    provision(adapter, engines, "hubspot")
    store = sqlite_store(tmp_path)
    return adapter, Runner(store, SyncSettings(), clock=lambda: NOW), store


def _kinds(sandbox: HubSpotSandbox) -> Counter[str]:
    return Counter(e.kind for e in sandbox.app.log.entries())


def _accounts_run(
    sandbox: HubSpotSandbox, engines: dict[str, Engine], adapter: HubSpotAdapter, runner: Runner
) -> None:
    """A full account run, then one company edited and written by an incremental run.

    The portal stamps a batch update's records alike; the later write of one
    company moves the store's vouching stamp past the other 59.
    """
    accounts = Job("hs", adapter, engines["account"])
    first = runner.run(accounts, full=True)
    assert first.status == "succeeded" and first.written == COMPANIES
    portal = sandbox.portal
    target = next(r for r in portal.snapshot("companies") if r.props["segsync_tier"] != "Tier 1")
    portal.update("companies", target.id, EDIT)
    second = runner.run(accounts)
    assert second.written == 1


def _company_reads(sandbox: HubSpotSandbox) -> int:
    """Batch reads of companies (the contacts' re-read before writing is not one)."""
    return sum(
        1
        for e in sandbox.app.log.entries()
        if e.kind == "batch.read" and "/objects/companies/" in e.path
    )


def _inherited_as_in_crm(sandbox: HubSpotSandbox) -> int:
    """Check every associated contact holds its company's segment and tier; how many."""
    portal = sandbox.portal
    company_of = {r.id: r.props for r in portal.snapshot("companies")}
    checked = 0
    for contact in portal.snapshot("contacts"):
        company = portal.associated("contacts", contact.id, "companies")
        if not company:
            continue
        parent = company_of[company[0]]
        assert contact.props["segsync_segment"] == parent["segsync_segment"], contact.id
        assert contact.props["segsync_tier"] == parent["segsync_tier"], contact.id
        checked += 1
    return checked


def test_a_full_contact_run_reads_no_company_the_account_run_left_unchanged(
    sandbox: HubSpotSandbox,
    engines: dict[str, Engine],
    world: tuple[HubSpotAdapter, Runner, Store],
) -> None:
    adapter, runner, store = world
    _accounts_run(sandbox, engines, adapter, runner)
    noted = InheritedStore(store).values(
        "hs", "account", [r.id for r in sandbox.portal.snapshot("companies")]
    )
    assert len(noted) == COMPANIES
    sandbox.app.log.clear()

    contacts = runner.run(Job("hs", adapter, engines["contact"], engines["account"]), full=True)

    assert contacts.status == "succeeded" and contacts.deferred == 0
    kinds = _kinds(sandbox)
    # The list pages carry the associations; one search finds no company changed since.
    assert kinds["assoc.batch.read"] == 0
    assert _company_reads(sandbox) == 0
    company_searches = [
        e for e in sandbox.app.log.entries() if e.kind == "search" and "/companies/" in e.path
    ]
    assert len(company_searches) == 1  # it found the one company written last
    assert _inherited_as_in_crm(sandbox) > COMPANIES


def test_a_company_edited_after_the_account_run_is_read_not_served_from_the_store(
    sandbox: HubSpotSandbox,
    engines: dict[str, Engine],
    world: tuple[HubSpotAdapter, Runner, Store],
) -> None:
    adapter, runner, _store = world
    _accounts_run(sandbox, engines, adapter, runner)
    contacts_job = Job("hs", adapter, engines["contact"], engines["account"])
    runner.run(contacts_job, full=True)
    # A person moves one company's tier by hand (kept: the default policy respects it).
    portal = sandbox.portal
    target = next(r for r in portal.snapshot("companies") if r.props["segsync_tier"] != "Tier 3")
    portal.update("companies", target.id, {"segsync_tier": "Tier 3"})
    assert any(
        portal.associated("contacts", c.id, "companies") == [target.id]
        for c in portal.snapshot("contacts")
    )
    sandbox.app.log.clear()

    again = runner.run(contacts_job, full=True)

    assert again.status == "succeeded"
    assert _company_reads(sandbox) == 0  # the search walk read it
    assert _inherited_as_in_crm(sandbox) > COMPANIES
    for contact in portal.snapshot("contacts"):
        if portal.associated("contacts", contact.id, "companies") == [target.id]:
            assert contact.props["segsync_tier"] == "Tier 3"


def test_companies_the_store_does_not_know_are_read(
    sandbox: HubSpotSandbox,
    engines: dict[str, Engine],
    world: tuple[HubSpotAdapter, Runner, Store],
) -> None:
    adapter, runner, store = world
    _accounts_run(sandbox, engines, adapter, runner)
    with store.engine.begin() as conn:  # a store upgraded after its account runs
        conn.exec_driver_sql("DELETE FROM inherited_values")
    sandbox.app.log.clear()

    contacts = runner.run(Job("hs", adapter, engines["contact"], engines["account"]), full=True)

    assert contacts.status == "succeeded" and contacts.deferred == 0
    assert _company_reads(sandbox) >= 1
    assert _inherited_as_in_crm(sandbox) > COMPANIES


def test_contacts_past_the_listed_association_limit_are_looked_up_in_full(
    sandbox: HubSpotSandbox,
    engines: dict[str, Engine],
    world: tuple[HubSpotAdapter, Runner, Store],
) -> None:
    adapter, runner, _store = world
    runner.run(Job("hs", adapter, engines["account"]), full=True)
    # Each association is listed twice (primary and unlabeled): a limit of one
    # cuts every contact's list short, with a paging cursor.
    sandbox.app.inline_assoc_limit = 1
    sandbox.app.log.clear()

    contacts = runner.run(Job("hs", adapter, engines["contact"], engines["account"]), full=True)

    assert contacts.status == "succeeded" and contacts.deferred == 0
    assert _kinds(sandbox)["assoc.batch.read"] >= 1
    assert _inherited_as_in_crm(sandbox) > COMPANIES


def test_listed_associations_follow_the_documented_shape(sandbox: HubSpotSandbox) -> None:
    import json
    import urllib.request

    def listed(**query: Any) -> dict[str, Any]:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        request = urllib.request.Request(
            f"{sandbox.base_url}/crm/v3/objects/contacts?{params}",
            headers={"Authorization": f"Bearer {sandbox.access_token}"},
        )
        with urllib.request.urlopen(request) as answer:
            body: dict[str, Any] = json.loads(answer.read())
        return body

    page = listed(limit=5, associations="companies")
    with_company = [r for r in page["results"] if "associations" in r]
    assert with_company
    block = with_company[0]["associations"]["companies"]
    company = block["results"][0]["id"]
    assert [e["type"] for e in block["results"]] == [
        "contact_to_company",
        "contact_to_company_unlabeled",
    ]
    assert {e["id"] for e in block["results"]} == {company}
    assert "paging" not in block
    assert all("associations" not in r for r in listed(limit=5)["results"])
    assert all("associations" not in r for r in listed(limit=5, associations="tickets")["results"])

    sandbox.app.inline_assoc_limit = 1
    cut = listed(limit=5, associations="companies")["results"]
    block = next(r for r in cut if "associations" in r)["associations"]["companies"]
    assert len(block["results"]) == 1 and block["paging"]["next"]["after"] == "1"


def test_a_dry_run_notes_nothing(
    sandbox: HubSpotSandbox,
    engines: dict[str, Engine],
    world: tuple[HubSpotAdapter, Runner, Store],
) -> None:
    adapter, runner, store = world
    ids = [r.id for r in sandbox.portal.snapshot("companies")]

    runner.run(Job("hs", adapter, engines["account"]), full=True, dry_run=True)

    assert InheritedStore(store).values("hs", "account", ids) == {}
