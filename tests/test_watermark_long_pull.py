"""A pull that lasts longer than the look-back loses no late commit.

A change gets its stamp when written and becomes visible at commit, up to
``lookback_seconds`` later. A pull reads the low stamps early and the high
ones late: a change stamped T early in the pull and committed after the
pull passed T is invisible to it, and when the pull ran longer than the
look-back, T lies below ``watermark - lookback``. The watermark keeps when
the pull began on the CRM's clock (the ``Date`` of its answers), and the
next pull starts at ``min(watermark, pull start) - lookback``
(connector/sync/watermark.py).

The wire tests hold the CRM's clock and act in the middle of a pull through
the sandbox's ``before_serving`` hook: a person's edit committed late below
what the pull already read, then the clock moved past the look-back and a
record edited further on, which the same pull reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sandbox_fixtures import (
    REQUESTS_PER_10S,
    SEARCH_PER_SECOND,
    OrgClock,
    hold_clock,
    hubspot_adapter,
    provision,
    shipped_engines,
    sqlite_store,
)

from connector.commands.crm import Context, open_context
from connector.config import HubSpotConnection, SyncSettings
from connector.crm.base import ReadClock, TimedPages, pull_began
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.retry import RetryPolicy
from connector.engine import Engine
from connector.state import Watermark
from connector.store.deals import DealStore
from connector.store.store import Store
from connector.sync.deals import sync_deals
from connector.sync.provision import output_specs
from connector.sync.runner import Job, Runner
from connector.sync.watermark import WatermarkTracker, advance, query_start
from connector.sync.window import Known, Recent
from segsync_sandbox import data
from segsync_sandbox.common import Request
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot
from segsync_sandbox.launcher import Sandboxes
from segsync_sandbox.salesforce.org import UI_USER_ID

ROOT = Path(__file__).resolve().parent.parent

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LOOKBACK = 300
#: Three list pages of 100: the late edit lands on the first, the edit during the pull on the last.
COMPANIES = 250


# -- the rule, pure --------------------------------------------------------------


def test_the_next_pull_starts_a_look_back_before_the_earlier_of_watermark_and_pull_start() -> None:
    lookback = timedelta(seconds=LOOKBACK)
    top = T0 + timedelta(minutes=20)
    long_pull = Watermark(top, frozenset({"a"}), "v", pull_start=T0)
    assert query_start(long_pull, lookback) == T0 - lookback
    # A quick pull (it began after the stamps it read) reads nothing more.
    quick = Watermark(top, frozenset({"a"}), "v", pull_start=top + timedelta(seconds=3))
    assert query_start(quick, lookback) == top - lookback
    # A watermark kept before pull starts were recorded: as before.
    assert query_start(Watermark(top, frozenset(), "v"), lookback) == top - lookback


def test_the_tracker_keeps_the_pull_start_and_without_a_date_the_lowest_stamp_read() -> None:
    tracker = WatermarkTracker(None, "v")
    for n, minutes in enumerate((3, 1, 20)):
        tracker.see(str(n), T0 + timedelta(minutes=minutes))
    began = T0 - timedelta(seconds=2)
    mark = tracker.watermark(began)
    assert mark is not None and mark.stamp == T0 + timedelta(minutes=20)
    assert mark.pull_start == began
    # No answer carried a Date: the lowest stamp read stands in (never this host's clock).
    fallback = tracker.watermark(None)
    assert fallback is not None and fallback.pull_start == T0 + timedelta(minutes=1)
    # A pull that read nothing and had no Date keeps the previous start.
    quiet = WatermarkTracker(mark, "v").watermark(None)
    assert quiet is not None and quiet.pull_start == began
    # With a Date, an empty pull moves the start up: it read the whole window after it began.
    later = T0 + timedelta(hours=1)
    moved = WatermarkTracker(mark, "v").watermark(later)
    assert moved is not None and moved.pull_start == later and moved.stamp == mark.stamp


def test_known_pairs_are_kept_down_to_the_next_window_start() -> None:
    lookback = timedelta(seconds=LOOKBACK)
    recent = Recent(Known(None, "v"), lookback)
    early = T0 + timedelta(seconds=10)  # read early in a 20-minute pull
    recent.seen("early", early)
    recent.seen("late", T0 + timedelta(minutes=20))
    mark = Watermark(T0 + timedelta(minutes=20), frozenset({"late"}), "v", pull_start=T0)
    kept = dict(recent.mark(mark).known)
    # The next window starts at T0 - look-back: "early" lies in it and stays known there.
    assert kept == {"early": early, "late": T0 + timedelta(minutes=20)}


def test_a_read_clock_keeps_the_earliest_answer() -> None:
    clock = ReadClock()
    pages = TimedPages(iter([[1], [2]]), clock)
    assert pull_began(pages) is None  # no answer yet
    clock.note(T0 + timedelta(seconds=5))
    clock.note(None)  # an answer without a Date
    clock.note(T0)
    clock.note(T0 + timedelta(seconds=9))
    assert list(pages) == [[1], [2]]
    assert pull_began(pages) == T0
    assert pull_began(iter([[1]])) is None  # pages that do not say


def test_pages_of_a_quick_pull_are_seen_once_and_a_long_pull_loses_no_late_commit() -> None:
    """The sketch of the proof, as values: a late commit below the long pull's reads."""
    lookback = timedelta(seconds=LOOKBACK)
    began = T0
    # Read at T0: records stamped up to T0. Read at T0 + 20 min: one edited then.
    first = advance(None, [("a", T0 - timedelta(minutes=5)), ("b", T0)], "v", began)
    second = advance(first.watermark, [("c", T0 + timedelta(minutes=20))], "v", began)
    mark = second.watermark
    assert mark is not None
    # Stamped T0 - 10 s, committed after the pull read that region (within the look-back).
    late = T0 - timedelta(seconds=10)
    start = query_start(mark, lookback)
    assert start is not None and start <= late
    # Without the pull start the next pull would begin above it.
    assert mark.stamp - lookback > late


# -- over the wire ---------------------------------------------------------------


def _touch(portal: Portal, record_id: str, **stamp: Any) -> None:
    """A person saves the record again (its stamp moves; no value the mapping reads changes)."""
    name = portal.get("companies", record_id)["properties"]["name"]
    portal.update("companies", record_id, {"name": name}, **stamp)


def _other_tier(engine: Engine, props: dict[str, Any]) -> dict[str, str]:
    """A change of the company's inputs that gives it another tier."""
    before = engine.evaluate(props, "hubspot", NOW).tier
    for employees, revenue in (("20000", "900000000"), ("5", "10000"), ("500", "5000000")):
        change = {"numberofemployees": employees, "annualrevenue": revenue}
        if engine.evaluate({**props, **change}, "hubspot", NOW).tier != before:
            return change
    raise AssertionError("no input change moves this company's tier")


@pytest.fixture
def portal_clock() -> OrgClock:
    return OrgClock(math.floor(time.time()) + 0.5)


@pytest.fixture
def hubspot(portal_clock: OrgClock) -> Iterator[HubSpotSandbox]:
    portal = Portal(
        requests_per_10s=REQUESTS_PER_10S, search_per_second=SEARCH_PER_SECOND, clock=portal_clock
    )
    portal.load_companies(data.hubspot_company_props(c) for c in data.companies(23, COMPANIES))
    with start_hubspot(portal=portal) as running:
        yield running


def test_hubspot_answers_carry_the_portal_clock_as_their_date(
    hubspot: HubSpotSandbox, portal_clock: OrgClock
) -> None:
    portal_clock.advance(3600)  # an hour ahead of this host
    adapter = hubspot_adapter(hubspot)
    pages = adapter.pull("account", ["name"], None)
    assert sum(len(p) for p in pages) == COMPANIES
    began = pull_began(pages)
    assert began is not None
    held = datetime.fromtimestamp(portal_clock.now, UTC)
    # The Date (whole seconds, rounded down) less the round trip: never after the portal's clock.
    assert held - timedelta(seconds=60) < began <= held


def test_hubspot_a_full_pull_longer_than_the_look_back_misses_no_late_edit(
    hubspot: HubSpotSandbox, portal_clock: OrgClock, tmp_path: Path
) -> None:
    portal = hubspot.portal
    engines = shipped_engines()
    engine = engines["account"]
    adapter = hubspot_adapter(hubspot)
    provision(adapter, engines, "hubspot", ["account"])
    runner = Runner(
        sqlite_store(tmp_path), SyncSettings(lookback_seconds=LOOKBACK), clock=lambda: NOW
    )
    job = Job("hs", adapter, engine)
    assert runner.run(job).written == COMPANIES  # every company gets its segment and tier

    # A second full pull, in id order, 100 a page. It begins; its first page
    # is read. While it reads the second, a person's save of a company on the
    # first page commits, stamped half a second after the pull began (within
    # the look-back of the read that missed it); then the pull goes on for
    # longer than the look-back, and a company on the last page is saved.
    ids = [r.id for r in portal.snapshot("companies")]
    late, last = ids[5], ids[-1]
    change = _other_tier(engine, portal.get("companies", late)["properties"])
    portal_clock.advance(1000)
    began_ms = int(portal_clock.now * 1000)
    acted: list[str] = []

    def meanwhile(request: Request) -> None:
        if acted or request.method != "GET" or not request.arg("after"):
            return  # not yet: the pull's second list page
        acted.append(request.target)
        portal_clock.advance(1)
        portal.update("companies", late, change, stamp=began_ms + 500)
        portal_clock.advance(LOOKBACK + 100)
        _touch(portal, last)

    hubspot.app.before_serving.append(meanwhile)
    try:
        long = runner.run(job, full=True)
    finally:
        hubspot.app.before_serving.remove(meanwhile)
    assert acted, "the pull never asked for a second list page"
    assert long.written == 0  # it read the late company before its save: nothing to change
    mark = runner._store.watermark("hs", "account")
    assert mark is not None and mark.pull_start is not None
    late_stamp = datetime.fromtimestamp((began_ms + 500) / 1000, UTC)
    # The pull read the saved company at its new stamp, far above the late one.
    assert mark.stamp - timedelta(seconds=LOOKBACK) > late_stamp
    assert mark.pull_start <= datetime.fromtimestamp(began_ms / 1000, UTC)

    portal_clock.advance(60)
    after = runner.run(job)
    props = portal.get("companies", late)["properties"]
    expected = engine.evaluate(props, "hubspot", NOW)
    assert after.written == 1 and after.sample_writes[0].record_id == late
    assert props["segsync_tier"] == expected.tier


@pytest.fixture
def salesforce(
    fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Context]:
    """The shared Salesforce org through the production wiring, every pull through Bulk 2.0."""
    monkeypatch.chdir(ROOT)
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    section = "[connections.salesforce]\n"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(section, section + "bulk_read_threshold = 1\n", 1))
    with open_context(config, crm="salesforce") as ctx:
        yield ctx


def test_salesforce_a_bulk_pull_restarted_past_the_look_back_misses_no_late_create(
    fresh_sandboxes: Sandboxes, salesforce: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    sf = fresh_sandboxes.salesforce
    org = sf.org
    ctx = salesforce
    engine = ctx.engines["account"]
    adapter = ctx.adapters["salesforce"]
    report = adapter.provision(
        "account",
        output_specs(engine, "salesforce", None),
        engine.input_fields("salesforce"),
        dry_run=False,
    )
    assert not report.problems, report.problems
    assert ctx.settings.sync.lookback_seconds == LOOKBACK
    runner = Runner(ctx.store, ctx.settings.sync, clock=lambda: NOW)
    (job,) = ctx.jobs("salesforce", "account")
    runner.run(job)  # full: every account gets its segment and tier (our writes)

    clock = hold_clock(sf)
    accounts = [r["Id"] for r in org.records("Account")]
    edited, other = accounts[:12], accounts[12]
    for record_id in edited:  # a person's edits, each on a second of its own
        org.update("Account", record_id, {"Description": "called on Monday"})
        clock.advance(1)
    stamps = [org.get("Account", i)["SystemModstamp"] for i in edited]  # type: ignore[index]
    # Result pages of 5 rows: the job's first page holds the 5 oldest edits.
    monkeypatch.setattr("connector.crm.salesforce.bulk.BULK_RESULT_PAGE", 5)
    row = data.salesforce_account_row(next(data.companies(41, 9_001, start=9_000)))
    row = {k: v for k, v in row.items() if k != "Id"}
    results: list[str] = []

    def meanwhile(request: Request) -> None:
        if request.method != "GET" or not request.path.endswith("/results"):
            return
        results.append(request.path)
        if len(results) != 2:
            return
        # While the pull asks for the job's second page: a create stamped
        # inside the first page's seconds commits (11 s after its stamp,
        # within the look-back), the page's answer is lost, and the pull
        # restarts as a new job from the last stamp it read, after the
        # clock has moved past the look-back and another account was saved.
        clock.advance(1)
        org.load_records(
            "Account",
            [
                {
                    **row,
                    "Name": "Late Co",
                    "SystemModstamp": stamps[2],
                    "LastModifiedById": UI_USER_ID,
                }
            ],
        )
        sf.app.faults.update(lost_answers={"bulk.query.results": 1})
        clock.advance(LOOKBACK + 100)
        org.update("Account", other, {"Description": "in the meantime"})

    sf.app.before_serving.append(meanwhile)
    try:
        long = runner.run(job)
    finally:
        sf.app.before_serving.remove(meanwhile)
    late = next(r["Id"] for r in org.records("Account") if r["Name"] == "Late Co")
    assert long.outside == len(edited) + 1 and long.written == 0, long
    assert [e.kind for e in sf.app.log.entries()].count("bulk.query.create") >= 2
    mark = ctx.store.watermark("salesforce", "account")
    assert mark is not None and mark.pull_start is not None
    late_stamp = org.get("Account", late)["SystemModstamp"]  # type: ignore[index]
    assert mark.stamp - timedelta(seconds=LOOKBACK) > datetime.fromisoformat(
        late_stamp.replace("+0000", "+00:00")
    )

    clock.advance(60)
    after = runner.run(job)
    assert late in {w.record_id for w in after.sample_writes}
    written = org.get("Account", late)
    assert written is not None and written[engine.output_fields("salesforce")["tier"]]


def test_hubspot_a_full_deal_pull_longer_than_the_look_back_misses_no_late_edit(
    fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hs = fresh_sandboxes.hubspot
    portal = hs.portal
    clock = OrgClock(math.floor(time.time()) + 0.5)
    monkeypatch.setattr(portal, "clock", clock)
    settings = HubSpotConnection(
        base_url=hs.base_url,
        access_token=SecretStr(hs.access_token),
        # The shared portal's own limits (search paced one below, as the sandbox config does).
        requests_per_10s=int(portal.limits.requests_per_10s),
        search_per_second=max(1, int(portal.limits.search_per_second) - 1),
    )
    policy = RetryPolicy(attempts=5, initial_wait=0.0, max_wait=0.0, sleep=lambda _s: None)
    adapter = HubSpotAdapter("hs", settings, retry=policy)
    deals = [r.id for r in portal.snapshot("deals")]
    assert len(deals) > 200  # three list pages of 100 at least
    early, last = deals[0], deals[-1]
    began_ms = int(clock.now * 1000)
    acted: list[str] = []

    def meanwhile(request: Request) -> None:
        # The deal pull's second list page: a person's edit of the first
        # page's first deal commits half a second after its stamp, then the
        # pull runs on past the look-back and the last deal is saved.
        if acted or request.method != "GET" or not request.path.endswith("/objects/deals"):
            return
        if not request.arg("after"):
            return
        acted.append(request.target)
        clock.advance(1)
        portal.update("deals", early, {"amount": "4321"}, stamp=began_ms + 500)
        clock.advance(LOOKBACK + 100)
        name = portal.get("deals", last)["properties"]["dealname"]
        portal.update("deals", last, {"dealname": name})

    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        hs.app.before_serving.append(meanwhile)
        try:
            full = sync_deals(adapter, store, "hs", lookback=timedelta(seconds=LOOKBACK))
        finally:
            hs.app.before_serving.remove(meanwhile)
        assert acted and full.full
        assert {d.id: d.amount for d in DealStore(store).deals("hs")}[early] != 4321
        mark = store.watermark("hs", "deal")
        assert mark is not None and mark.pull_start is not None
        assert mark.stamp - timedelta(seconds=LOOKBACK) > datetime.fromtimestamp(
            (began_ms + 500) / 1000, UTC
        )
        clock.advance(60)
        sync_deals(adapter, store, "hs", lookback=timedelta(seconds=LOOKBACK))
        assert {d.id: d.amount for d in DealStore(store).deals("hs")}[early] == 4321
