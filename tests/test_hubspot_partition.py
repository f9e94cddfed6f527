"""Large HubSpot pulls read in parts at once: every record exactly once, the limit as reported.

Through the real client against the sandbox: full pulls split between the
list cursor and ``hs_object_id`` range searches, incremental windows cut at
stamps (boundaries on stamps many records share, windows past the search
API's 10,000-result cap, ties served in any order), and the ten-second
window paced at what the portal's rate-limit headers say.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from pydantic import SecretStr

from connector.config import HubSpotConnection
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.hubspot.partition import full_pages, window_pages
from connector.crm.hubspot.search import search_since
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.limits import HS_PARTITION_MIN, RollingWindowLimiter
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot
from segsync_sandbox.hubspot.search import SearchLimits

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAST = 100_000


def _settings(sandbox: HubSpotSandbox, **limits: int) -> HubSpotConnection:
    return HubSpotConnection(
        base_url=sandbox.base_url,
        access_token=SecretStr(sandbox.access_token),
        requests_per_10s=limits.get("requests_per_10s", FAST),
        search_per_second=limits.get("search_per_second", FAST),
    )


def _ids(pages: object) -> list[str]:
    return [str(item["id"]) for page in pages for item in page]  # type: ignore[attr-defined]


def test_a_large_full_pull_reads_every_company_once_by_list_and_id_ranges() -> None:
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded = []
    for batch in range(6):  # a few stamps, each shared by 1,000 companies
        loaded += portal.load_companies({"name": f"c{batch}-{i}"} for i in range(1_000))
    assert len(loaded) >= HS_PARTITION_MIN
    with start_hubspot(portal=portal, search_limits=SearchLimits(shuffle=True)) as sandbox:
        # The split follows the list's measured round trip: 50 ms a call makes
        # the list ≈ 2,000 records / s against the searches' 1,000, so both
        # take a share. (With a 1 ms round trip on an idle machine the list's
        # share rounds to all of it, and the searches rightly read nothing.)
        sandbox.app.faults.update(latency_ms=50)
        adapter = HubSpotAdapter("hs", _settings(sandbox, search_per_second=5))
        pulled = [r.id for page in adapter.pull("account", ["name"], None) for r in page]
        assert len(pulled) == len(set(pulled)) and set(pulled) == set(loaded)
        kinds = Counter(e.kind for e in sandbox.app.log.entries())
        # Both read at once: the list cursor took part, the searches the rest.
        assert 0 < kinds["list"] < len(loaded) // 100 and kinds["search"] > 3, kinds
        assert {e.status for e in sandbox.app.log.entries()} == {200}


def test_id_ranges_and_the_list_split_lose_and_repeat_nothing_at_any_split() -> None:
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded = portal.load_companies({"name": f"c{i}"} for i in range(730))
    with start_hubspot(portal=portal) as sandbox:
        for search_rate in (1, 3, 40, FAST):  # the list's share, from all to nothing
            for streams in (2, 3, 5):
                session = HubSpotSession("hs", _settings(sandbox, search_per_second=search_rate))
                ids = _ids(full_pages(session, "companies", ["name"], streams=streams, minimum=0))
                assert sorted(ids) == sorted(loaded), (search_rate, streams)


def test_a_window_cut_at_shared_stamps_is_read_once_past_the_search_cap() -> None:
    # 10,280 records on 42 stamps: the cuts fall on stamps 250 records share,
    # a part holds more than one search query may page through (10,000), and
    # ties come back in a new order on every request.
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded = []
    for batch in range(41):
        loaded += portal.load_companies({"name": f"c{batch}-{i}"} for i in range(250))
    loaded += portal.load_companies({"name": f"tail-{i}"} for i in range(30))
    with start_hubspot(portal=portal, search_limits=SearchLimits(shuffle=True)) as sandbox:
        for streams in (2, 3):
            session = HubSpotSession("hs", _settings(sandbox))
            ids = _ids(window_pages(session, "companies", ["name"], EPOCH, streams=streams))
            assert len(ids) == len(set(ids)) == len(loaded) and set(ids) == set(loaded)
        searches = [e for e in sandbox.app.log.entries() if e.kind == "search"]
        assert searches and all(e.status == 200 for e in searches)


def test_small_windows_cut_anywhere_keep_every_record_once() -> None:
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded = []
    for batch in range(7):
        loaded += portal.load_companies({"name": f"c{batch}-{i}"} for i in range(100 + batch))
    with start_hubspot(portal=portal) as sandbox:
        session = HubSpotSession("hs", _settings(sandbox))
        for streams in (2, 3, 4, 9):
            ids = _ids(
                window_pages(session, "companies", ["name"], EPOCH, streams=streams, minimum=0)
            )
            assert sorted(ids) == sorted(loaded), streams
        # Small windows stay one walk, as many calls as before: the first page is read once.
        sandbox.app.log.clear()
        ids = _ids(window_pages(session, "companies", ["name"], EPOCH))
        assert sorted(ids) == sorted(loaded)
        calls = len(sandbox.app.log.entries())
        sandbox.app.log.clear()
        assert sorted(_ids(search_since(session, "companies", ["name"], EPOCH))) == sorted(loaded)
        assert calls == len(sandbox.app.log.entries())


def test_the_window_is_paced_at_the_limit_the_portal_reports() -> None:
    with start_hubspot(requests_per_10s=7) as sandbox:
        session = HubSpotSession("hs", _settings(sandbox, requests_per_10s=100))
        assert session.window_rate() == 10.0
        _ids(full_pages(session, "companies", ["name"]))
        assert session.window_rate() == 0.7  # X-HubSpot-RateLimit-Max 7 per 10,000 ms


def test_calls_the_server_counted_elsewhere_take_room_in_the_window() -> None:
    now = [0.0]
    limiter = RollingWindowLimiter(10, clock=lambda: now[0], sleep=lambda s: None)
    for _ in range(2):
        limiter.acquire()
    limiter.observe(8, 2, 10.0)  # the portal counted 6 calls of this token: 4 not ours
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter.sleep = sleep
    for _ in range(2):
        assert limiter.acquire() == 0.0  # 8 allowed, 6 counted: two more now
    assert limiter.acquire() > 10.0 and now[0] > 10.0  # the ninth waits for the window


def test_parts_read_on_while_the_records_already_read_move() -> None:
    # Writes made while a window is read (connector/sync/pipeline.py) move the
    # records already read past it: no record still to come may be skipped.
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded = []
    for batch in range(12):
        loaded += portal.load_companies({"name": f"c{batch}-{i}"} for i in range(90 + batch))
    with start_hubspot(portal=portal) as sandbox:
        session = HubSpotSession("hs", _settings(sandbox))
        seen: set[str] = set()
        for page in window_pages(session, "companies", ["name"], EPOCH, streams=3, minimum=0):
            for item in page:
                seen.add(str(item["id"]))
                portal.update("companies", str(item["id"]), {"name": "written"})
        assert seen == set(loaded)
        assert session.expected == len(loaded)


def test_a_window_in_parts_reads_its_first_and_newest_pages_once() -> None:
    # 3,000 records, 100 a stamp. The first page (the oldest 200) and the
    # newest page are read once and not again by the parts, the cut probes go
    # out together, and the parts end on whole pages: 18 searches, where
    # reading the first page twice and cutting at even thirds took 20.
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded = []
    for batch in range(30):
        loaded += portal.load_companies({"name": f"c{batch}-{i}"} for i in range(100))
    with start_hubspot(portal=portal) as sandbox:
        session = HubSpotSession("hs", _settings(sandbox))
        ids = _ids(window_pages(session, "companies", ["name"], EPOCH, streams=3, minimum=500))
        assert len(ids) == len(set(ids)) == len(loaded) and set(ids) == set(loaded)
        searches = [e for e in sandbox.app.log.entries() if e.kind == "search"]
        # The first page, the newest page and two cuts, then 2,800 records in whole pages.
        assert len(searches) == 1 + 3 + 2_800 // 200, len(searches)
        assert session.expected == len(loaded)


def test_a_window_whose_first_and_newest_pages_meet_is_read_once() -> None:
    # Under 400 records the first page and the newest overlap, or meet on one
    # stamp that holds more than both show: every record once, none lost.
    for size, per_stamp in ((250, 50), (300, 100), (390, 130), (401, 1)):
        portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
        loaded = []
        for batch in range(-(-size // per_stamp)):
            count = min(per_stamp, size - len(loaded))
            loaded += portal.load_companies({"name": f"c{batch}-{i}"} for i in range(count))
        with start_hubspot(portal=portal, search_limits=SearchLimits(shuffle=True)) as sandbox:
            session = HubSpotSession("hs", _settings(sandbox))
            pages = window_pages(session, "companies", ["name"], EPOCH, streams=3, minimum=0)
            ids = _ids(pages)
            assert len(ids) == len(set(ids)) == size and set(ids) == set(loaded), size
