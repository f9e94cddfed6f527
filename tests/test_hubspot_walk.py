"""HubSpot incremental reads that never miss a record (issue 15).

Through the real client against the sandbox over HTTP. A walk of the search
endpoint in stamp order must read every record even when records it already
passed are edited while it runs (an edit moves a record to the end: with
offset paging every later record shifts one place left and one is skipped),
also when many records share one stamp and ties come back in a new order on
every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from pydantic import SecretStr

from connector.config import HubSpotConnection
from connector.crm.base import KnownWindow
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.hubspot.search import search_since
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.window import search_known
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot
from segsync_sandbox.hubspot.search import SearchLimits

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAST = 100_000


def _settings(sandbox: HubSpotSandbox) -> HubSpotConnection:
    return HubSpotConnection(
        base_url=sandbox.base_url,
        access_token=SecretStr(sandbox.access_token),
        requests_per_10s=FAST,
        search_per_second=FAST,
    )


def _searches(sandbox: HubSpotSandbox) -> int:
    return sum(1 for e in sandbox.app.log.entries() if e.kind == "search" and e.status == 200)


def _walk_editing(pages: Iterator[list[str]], portal: Portal, every: int = 1) -> list[str]:
    """The ids of every page; after each ``every``-th page, a person edits the first record read."""
    read: list[str] = []
    for n, page in enumerate(pages, start=1):
        read.extend(page)
        if n % every == 0 and read:
            portal.update("companies", read[0], {"name": f"edited {n}"})
    return read


def test_an_edit_during_the_walk_to_a_record_already_read_skips_nothing() -> None:
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded = [portal.add_company({"name": f"c{i}"}) for i in range(650)]  # one stamp each
    with start_hubspot(portal=portal) as sandbox:
        adapter = HubSpotAdapter("hs", _settings(sandbox))
        # The production path of an incremental pull (no known window): one walk.
        pulled = adapter.pull("account", ["name"], EPOCH)
        read = _walk_editing(([r.id for r in page] for page in pulled), portal)
        assert set(read) == set(loaded)
        # The edited record is read again at its new stamp, the others once.
        assert len(read) == len(loaded) + 1 and read[-1] == read[0]


def test_a_walk_costs_one_search_a_page_and_never_pages_a_query() -> None:
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded = [portal.add_company({"name": f"c{i}"}) for i in range(650)]
    # A cap of one page: any query paged with ``after`` would be refused (400).
    limits = SearchLimits(max_results=200)
    with start_hubspot(portal=portal, search_limits=limits) as sandbox:
        session = HubSpotSession("hs", _settings(sandbox))
        pages = search_since(session, "companies", ["name"], EPOCH)
        read = [str(i["id"]) for page in pages for i in page]
        assert read == loaded  # in stamp order, each once
        assert _searches(sandbox) == 4  # ⌈650 / 200⌉: the keyset costs no extra page


def test_ties_past_a_page_and_edits_during_the_walk_lose_nothing() -> None:
    # Stamps shared by 1, 3, 150 and 450 records; ties served in a new random
    # order on every request; a person edits records already read all along.
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded: list[str] = []
    for size in (1, 150, 3, 450, 1, 199, 201, 2, 400, 5, 6):
        loaded += portal.load_companies({"name": f"s{size}-{i}"} for i in range(size))
    with start_hubspot(portal=portal, search_limits=SearchLimits(shuffle=True)) as sandbox:
        session = HubSpotSession("hs", _settings(sandbox))
        pages = search_since(session, "companies", ["name"], EPOCH)
        read = _walk_editing(([str(i["id"]) for i in page] for page in pages), portal)
        assert set(read) == set(loaded)
        # Nothing but the edited record is read more than once.
        assert {i for i in set(read) if read.count(i) > 1} <= {read[0]}


def test_what_lies_above_a_known_window_is_read_whole_by_stamp_then_id() -> None:
    # Ten batches of 100 records, one stamp each (a batch update's records
    # share one), ties served in a new order on every request; the window
    # proves nothing (upto below them all): everything is read, each once.
    portal = Portal(requests_per_10s=FAST, search_per_second=FAST)
    loaded: list[str] = []
    for batch in range(10):
        loaded += portal.load_companies({"name": f"b{batch}-{i}"} for i in range(100))
    window = KnownWindow(EPOCH, EPOCH, 0, lambda pairs: 0, lambda record_id, stamp: False)
    with start_hubspot(portal=portal, search_limits=SearchLimits(shuffle=True)) as sandbox:
        session = HubSpotSession("hs", _settings(sandbox))
        read = [
            str(i["id"])
            for page in search_known(session, "companies", ["name"], window)
            for i in page
        ]
        assert sorted(read) == sorted(loaded)
        # The probe, a page in stamp order, then by id: ⌈1,000 / 200⌉ + 1.
        assert _searches(sandbox) == 6
