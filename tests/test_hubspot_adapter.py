"""The HubSpot adapter against the sandbox: search windows, errors, secrets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from connector.config import HubSpotConnection
from connector.crm.base import RecordUpdate
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.limits import HS_READ_STREAMS
from connector.crm.retry import RetryPolicy
from connector.errors import FatalSyncError
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _adapter(sandbox: HubSpotSandbox, token: str | None = None, **kw: object) -> HubSpotAdapter:
    settings = HubSpotConnection(
        base_url=sandbox.base_url,
        access_token=SecretStr(token or sandbox.access_token),
        requests_per_10s=100_000,
        search_per_second=100_000,
        **kw,  # type: ignore[arg-type]
    )
    return HubSpotAdapter("hs", settings, retry=RetryPolicy(attempts=8, sleep=lambda s: None))


@pytest.fixture
def big_portal() -> Iterator[HubSpotSandbox]:
    portal = Portal(requests_per_10s=100_000, search_per_second=100_000)
    with start_hubspot(portal=portal) as sandbox:
        yield sandbox


def _pulled_ids(adapter: HubSpotAdapter, since: datetime) -> list[str]:
    return [r.id for page in adapter.pull("account", ["name"], since) for r in page]


def test_incremental_pull_walks_past_the_search_cap(big_portal: HubSpotSandbox) -> None:
    portal = big_portal.portal
    # 10,400 records over 104 modification stamps (a load shares one stamp).
    for batch in range(104):
        portal.load_companies({"name": f"c{batch}-{i}"} for i in range(100))
    adapter = _adapter(big_portal)
    ids = _pulled_ids(adapter, EPOCH)
    assert len(ids) == len(set(ids)) == portal.count("companies") == 10_400
    searches = [e for e in big_portal.app.log.entries() if e.kind == "search"]
    assert all(e.status == 200 for e in searches)  # never asked past the cap
    # Cut into id ranges read at once (connector/crm/hubspot/partition.py): the
    # pages, plus the first page that counted them, the newest stamp, a probe
    # per cut and a partial last page per extra part.
    cuts = HS_READ_STREAMS - 1
    assert len(searches) <= -(-10_400 // 200) + 2 + 2 * cuts


def test_more_records_on_one_stamp_than_a_window_holds(big_portal: HubSpotSandbox) -> None:
    portal = big_portal.portal
    portal.load_companies({"name": f"same-{i}"} for i in range(10_150))  # one stamp for all
    portal.load_companies({"name": f"later-{i}"} for i in range(30))
    ids = _pulled_ids(_adapter(big_portal), EPOCH)
    assert len(ids) == len(set(ids)) == 10_180
    assert all(e.status == 200 for e in big_portal.app.log.entries() if e.kind == "search")


def test_incremental_pull_is_inclusive_of_its_start(big_portal: HubSpotSandbox) -> None:
    portal = big_portal.portal
    old = portal.load_companies({"name": f"old-{i}"} for i in range(5))
    new = portal.load_companies({"name": f"new-{i}"} for i in range(3))
    boundary = portal.get("companies", new[0])["properties"]["hs_lastmodifieddate"]
    since = datetime.fromisoformat(boundary.replace("Z", "+00:00"))
    assert sorted(_pulled_ids(_adapter(big_portal), since)) == sorted(new)
    assert set(_pulled_ids(_adapter(big_portal), EPOCH)) == set(old) | set(new)


def test_a_refused_token_is_fatal_and_not_echoed(big_portal: HubSpotSandbox) -> None:
    adapter = _adapter(big_portal, token="pat-na1-not-the-right-one")
    with pytest.raises(FatalSyncError) as info:
        _pulled_ids(adapter, EPOCH)
    assert "refused" in str(info.value)
    assert "pat-na1-not-the-right-one" not in str(info.value)


def test_writes_survive_5xx_429_and_locks(big_portal: HubSpotSandbox) -> None:
    portal = big_portal.portal
    ids = portal.load_companies({"name": f"c{i}"} for i in range(300))
    portal.create_property(
        "companies",
        {
            "name": "segsync_tier",
            "label": "Tier",
            "type": "string",
            "fieldType": "text",
            "groupName": "companyinformation",
        },
    )
    big_portal.app.faults.update(
        error_rate=0.3, rate_limit_next=3, lock_ids=set(ids[::20]), lock_failures=1, seed=5
    )
    adapter = _adapter(big_portal)
    outcomes = adapter.write("account", [RecordUpdate(i, {"segsync_tier": "Tier 2"}) for i in ids])
    assert [o.id for o in outcomes] == ids
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
    assert all(portal.get("companies", i)["properties"]["segsync_tier"] == "Tier 2" for i in ids)


def test_a_permanent_lock_fails_only_its_record(big_portal: HubSpotSandbox) -> None:
    portal = big_portal.portal
    ids = portal.load_companies({"name": f"c{i}"} for i in range(150))
    portal.create_property(
        "companies",
        {
            "name": "segsync_tier",
            "label": "Tier",
            "type": "string",
            "fieldType": "text",
            "groupName": "companyinformation",
        },
    )
    big_portal.app.faults.update(lock_ids={ids[3]}, lock_failures=0)
    outcomes = _adapter(big_portal).write(
        "account", [RecordUpdate(i, {"segsync_tier": "Tier 1"}) for i in ids]
    )
    failed = [o for o in outcomes if not o.ok]
    assert [o.id for o in failed] == [ids[3]] and failed[0].retriable
    assert sum(o.ok for o in outcomes) == 149
