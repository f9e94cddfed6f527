"""The HubSpot adapter's batch writes and walks against the sandbox, with the real client.

Per-input errors tied to their records by ``objectWriteTraceId``; a batch
refused whole (400) split until only its bad records fail; 423 and 477
retried; the search walk indifferent to the order of ties.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from connector.config import HubSpotConnection
from connector.crm.base import RecordUpdate, WriteOutcome
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.hubspot.write import split_budget
from connector.crm.retry import RetryPolicy
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot
from segsync_sandbox.hubspot.search import SearchLimits

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
TIERS = ["Tier 1", "Tier 2", "Tier 3"]


def _adapter(sandbox: HubSpotSandbox, sleeps: list[float] | None = None) -> HubSpotAdapter:
    settings = HubSpotConnection(
        base_url=sandbox.base_url,
        access_token=SecretStr(sandbox.access_token),
        requests_per_10s=100_000,
        search_per_second=100_000,
    )
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return HubSpotAdapter("hs", settings, retry=RetryPolicy(attempts=4, sleep=record))


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    portal = Portal(requests_per_10s=100_000, search_per_second=100_000)
    portal.create_property(
        "companies",
        {
            "name": "segsync_tier",
            "label": "Tier",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "companyinformation",
            "options": [{"label": t, "value": t, "displayOrder": i} for i, t in enumerate(TIERS)],
        },
    )
    with start_hubspot(portal=portal) as running:
        yield running


def _write(
    sandbox: HubSpotSandbox, bad: set[int], n: int = 100
) -> tuple[list[str], list[WriteOutcome], int]:
    """Write ``n`` companies' tiers, those at ``bad`` positions with an undefined option."""
    ids = sandbox.portal.load_companies({"name": f"c{i}"} for i in range(n))
    adapter = _adapter(sandbox)
    updates = [
        RecordUpdate(record_id, {"segsync_tier": "Tier 9" if i in bad else "Tier 2"})
        for i, record_id in enumerate(ids)
    ]
    outcomes = adapter.write("account", updates)
    return ids, outcomes, adapter.api_calls


def _tier(sandbox: HubSpotSandbox, record_id: str) -> str | None:
    value = sandbox.portal.get("companies", record_id)["properties"].get("segsync_tier")
    return str(value) if value is not None else None


def test_trace_ids_tie_each_refusal_to_its_record_in_one_call(sandbox: HubSpotSandbox) -> None:
    ids, outcomes, calls = _write(sandbox, bad={17, 60})
    assert calls == 1
    (entry,) = [e for e in sandbox.app.log.entries() if e.kind == "batch.update"]
    assert entry.status == 207
    failed = {o.id: o for o in outcomes if not o.ok}
    assert set(failed) == {ids[17], ids[60]}
    for outcome in failed.values():
        assert outcome.code == "INVALID_OPTION" and not outcome.retriable
        assert "Tier 9 was not one of the allowed options" in outcome.message
    assert all(_tier(sandbox, i) == "Tier 2" for i in ids if i not in failed)
    assert all(_tier(sandbox, i) is None for i in failed)


@pytest.mark.parametrize("bad", [{0}, {57}, {99}, {3, 42, 88}])
def test_a_batch_refused_whole_is_split_until_only_bad_records_fail(
    sandbox: HubSpotSandbox, bad: set[int]
) -> None:
    sandbox.app.honor_trace_ids = False  # HubSpot answering as if no trace ids were sent
    ids, outcomes, calls = _write(sandbox, bad=bad)
    failed = {o.id: o for o in outcomes if not o.ok}
    assert set(failed) == {ids[i] for i in bad}
    for outcome in failed.values():
        # HubSpot's own reason for that record, heard when it was sent alone.
        assert outcome.code == "INVALID_OPTION"
        assert outcome.message.startswith("Tier 9 was not one of the allowed options")
    assert all(_tier(sandbox, i) == "Tier 2" for i in ids if i not in failed)
    # Two calls at most per bad record and halving, after the refused one.
    assert calls <= 1 + 2 * math.ceil(math.log2(100)) * len(bad)
    statuses = [e.status for e in sandbox.app.log.entries() if e.kind == "batch.update"]
    assert len(statuses) == calls and statuses[0] == 400


def test_the_split_gives_up_within_its_budget(sandbox: HubSpotSandbox) -> None:
    sandbox.app.honor_trace_ids = False
    ids, outcomes, calls = _write(sandbox, bad=set(range(100)))
    assert calls <= 1 + split_budget(100)
    assert not any(o.ok for o in outcomes)
    assert all(_tier(sandbox, i) is None for i in ids)
    assert {o.code for o in outcomes} == {"INVALID_OPTION"}


@pytest.mark.parametrize("status", [423, 477])
def test_locked_and_migrating_are_retried_after_retry_after(
    sandbox: HubSpotSandbox, status: int
) -> None:
    ids = sandbox.portal.load_companies({"name": f"c{i}"} for i in range(3))
    sandbox.app.fail_next(status, times=2, retry_after=3)
    sleeps: list[float] = []
    outcomes = _adapter(sandbox, sleeps).write(
        "account", [RecordUpdate(i, {"segsync_tier": "Tier 1"}) for i in ids]
    )
    assert all(o.ok for o in outcomes)
    assert [e.status for e in sandbox.app.log.entries()] == [status, status, 200]
    assert len(sleeps) == 2 and all(s >= 3 for s in sleeps)


def test_the_search_walk_never_skips_when_ties_come_back_in_any_order() -> None:
    # Ties (one stamp per load) straddle pages and windows, and the sandbox
    # serves them in a new order on every request and shuffles every page.
    portal = Portal(requests_per_10s=100_000, search_per_second=100_000)
    for batch in range(41):
        portal.load_companies({"name": f"c{batch}-{i}"} for i in range(250))
    portal.load_companies({"name": f"tail-{i}"} for i in range(30))
    with start_hubspot(portal=portal, search_limits=SearchLimits(shuffle=True)) as sandbox:
        pulled = [r.id for page in _adapter(sandbox).pull("account", ["name"], EPOCH) for r in page]
        assert len(set(pulled)) == len(pulled) == portal.count("companies") == 10_280
        searches = [e for e in sandbox.app.log.entries() if e.kind == "search"]
        assert all(e.status == 200 for e in searches)


def test_an_association_id_that_is_not_a_number_fails_only_its_contact() -> None:
    portal = Portal(requests_per_10s=100_000, search_per_second=100_000)
    companies = portal.load_companies({"name": f"c{i}"} for i in range(3))
    contacts = [
        portal.add_contact({"email": f"p{i}@example.com"}, company_id=companies[i])
        for i in range(3)
    ]
    portal.create_property(
        "contacts",
        {
            "name": "segsync_tier",
            "label": "Tier",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
        },
    )
    with start_hubspot(portal=portal) as sandbox:
        sandbox.app.malformed_associations = {contacts[1]}
        adapter = _adapter(sandbox)
        pulled = {
            r.id: r for page in adapter.pull("contact", ["email"], None, ["name"]) for r in page
        }
        assert set(pulled) == set(contacts)  # the read went on: no traceback
        assert dict(pulled[contacts[0]].parent or {}).get("name") == "c0"
        assert pulled[contacts[1]].parent is None
        updates = [RecordUpdate(c, {"segsync_tier": "Tier 1"}) for c in contacts]
        outcomes = adapter.write("contact", updates)
        failed = [o for o in outcomes if not o.ok]
        assert [(o.id, o.code) for o in failed] == [(contacts[1], "INVALID_ASSOCIATION")]
        assert f"{companies[1]}-legacy" in failed[0].message
        assert portal.get("contacts", contacts[1])["properties"].get("segsync_tier") is None
        # Once HubSpot names the company by its id again, the retry lands.
        sandbox.app.malformed_associations = set()
        (again,) = adapter.fetch("contact", [contacts[1]], ["email"], ["name"])
        assert dict(again.parent or {}).get("name") == "c1"
        assert all(o.ok for o in adapter.write("contact", [updates[1]]))
