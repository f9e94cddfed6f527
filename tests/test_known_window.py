"""No re-reads of what is already known, and the true minimum (issue 15).

Both sandboxes, the production wiring (config → adapters → runner → store),
real clients over HTTP. The look-back window of an incremental pull holds
the records the last run read and the ones segsync wrote; HubSpot's search
counts them without reading them (connector/sync/window.py), so a quiet run
is one call. The count must never hide a record: a create committed late
with a stamp inside the window, a late edit of a record segsync knows, and
edits after segsync's writes are all read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
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
from connector.config import SyncSettings
from connector.state import Watermark
from connector.sync.echo import known_window
from connector.sync.provision import output_specs
from connector.sync.runner import Job, Runner, RunResult
from connector.sync.window import Known, Recent, settled
from segsync_sandbox import data
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
#: Companies added to the small shared dataset, so the window spans several search pages.
EXTRA = 150


class World:
    """One CRM through the production wiring, with a clock and the sandbox's request log."""

    def __init__(self, crms: Sandboxes, ctx: Context, crm: str) -> None:
        self.crms, self.ctx, self.crm = crms, ctx, crm
        self.now = NOW
        self.runner = Runner(ctx.store, ctx.settings.sync, clock=lambda: self.now)
        self.adapter = ctx.adapters[crm]
        app = crms.salesforce.app if crm == "salesforce" else crms.hubspot.app
        self.log = app.log
        self.bulk = False

    def provision(self) -> None:
        engine = self.ctx.engines["account"]
        report = self.adapter.provision(
            "account",
            output_specs(engine, self.crm, None),
            engine.input_fields(self.crm),
            dry_run=False,
        )
        assert not report.problems, report.problems

    def sync(self, **options: Any) -> RunResult:
        self.now += timedelta(minutes=1)
        (job,) = self.ctx.jobs(self.crm, "account")
        self.log.clear()
        return self.runner.run(job, **options)

    def kinds(self) -> list[str]:
        # Answered calls only: a 429 from the shared sandbox's rate limit is retried.
        return [e.kind for e in self.log.entries() if e.status != 429]

    def watermark_ms(self) -> int:
        mark = self.ctx.store.watermark(self.crm, "account")
        assert mark is not None
        return int(mark.stamp.timestamp() * 1000)


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    fresh_sandboxes: Sandboxes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    monkeypatch.chdir(ROOT)
    crm, _, variant = request.param.partition(":")
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    if variant == "bulk":  # Salesforce pulls of 3,000 records and more through Bulk 2.0
        section = "[connections.salesforce]\n"
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace(section, section + "bulk_read_threshold = 3000\n", 1))
    with open_context(config, crm=crm) as ctx:
        made = World(fresh_sandboxes, ctx, crm)
        made.bulk = variant == "bulk"
        yield made


hubspot = pytest.mark.parametrize("world", ["hubspot"], indirect=True)
salesforce = pytest.mark.parametrize("world", ["salesforce"], indirect=True)


def _company(world: World, n: int) -> dict[str, str]:
    """Property values for a new company, like the dataset's, with a new name and domain."""
    portal = world.crms.hubspot.portal
    model = portal.snapshot("companies")[0]
    skip = {"hs_object_id", "createdate", "hs_lastmodifieddate", "name", "domain"}
    props = {k: v for k, v in model.props.items() if k not in skip and not k.startswith("segsync")}
    return {**props, "name": f"Late Co {n}", "domain": f"late{n}.example.com"}


def _ids(world: World) -> list[str]:
    return [r.id for r in world.crms.hubspot.portal.snapshot("companies")]


def _written_world(world: World) -> list[str]:
    """Provisioned, more than a search page of companies, all written by a full run."""
    portal = world.crms.hubspot.portal
    for n in range(EXTRA):
        portal.add_company(_company(world, n))
    world.provision()
    first = world.sync()
    ids = _ids(world)
    assert first.full and first.written == len(ids) > 200
    assert first.minimum_calls == -(-len(ids) // 100) * 2  # list pages + batch updates
    return ids


@hubspot
def test_our_writes_are_read_once_then_a_quiet_run_is_one_search(world: World) -> None:
    ids = _written_world(world)
    after = world.sync()
    # Our writes lie above the watermark, where a count proves nothing: they
    # are read once (a search page per 200, as many as a count could not
    # vouch for), known, so none is planned; the watermark moves past them.
    assert set(world.kinds()) == {"search"}
    assert len(world.kinds()) <= 1 + -(-len(ids) // 200) + 1, world.kinds()
    assert (after.summary.counts.read, after.outside) == (0, 0)
    assert after.rereads + after.echoes == len(ids)
    quiet = world.sync()
    # Now the count proves the whole window: nothing is read.
    assert world.kinds() == ["search"]
    assert (quiet.summary.counts.read, quiet.echoes, quiet.outside) == (0, 0, 0)
    assert quiet.api_calls == 1 and quiet.minimum_calls == 1
    again = world.sync()
    assert world.kinds() == ["search"] and again.summary.counts.read == 0


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@hubspot
def test_an_edit_deep_among_our_writes_is_read(world: World) -> None:
    _written_world(world)
    mark = world.ctx.store.watermark("hubspot", "account")
    assert mark is not None
    # A person edits, while segsync still writes, a record it wrote first:
    # the record stays among our writes at a new stamp (the count of the
    # window is the same), with more than a search page of them above it.
    first, known_at = min(mark.known, key=lambda p: p[1])
    assert sum(1 for _, s in mark.known if s > known_at) > 200
    world.crms.hubspot.portal.update(
        "companies", first, {"numberofemployees": "4321"}, stamp=_ms(known_at) + 1
    )
    found = world.sync()
    assert found.outside == 1 and found.summary.counts.read == 1
    mark = world.ctx.store.watermark("hubspot", "account")
    assert mark is not None and dict(mark.known)[first] > known_at  # planned at its new stamp
    # Known again at its new stamp: the next quiet run is one search.
    world.sync()
    assert world.kinds() == ["search"]


@hubspot
def test_a_known_record_deleted_while_an_unknown_one_appears_is_read(world: World) -> None:
    _written_world(world)
    mark = world.ctx.store.watermark("hubspot", "account")
    assert mark is not None
    portal = world.crms.hubspot.portal
    pairs = sorted(mark.known, key=lambda p: p[1])
    # One record segsync wrote is deleted, and a company is created among
    # our writes (while segsync wrote): the window counts as many records.
    portal.archive("companies", pairs[0][0])
    new = portal.add_company(_company(world, 777), stamp=_ms(pairs[1][1]) + 1)
    found = world.sync()
    assert found.outside == 1 and found.summary.counts.read == 1
    assert found.written == 1 and found.sample_writes[0].record_id == new


@hubspot
def test_a_create_committed_late_inside_the_window_is_read(world: World) -> None:
    _written_world(world)
    world.sync()
    # A create whose transaction carries a stamp a second before the
    # watermark: the runs before it could not see it.
    late = world.crms.hubspot.portal.add_company(
        _company(world, 999), stamp=world.watermark_ms() - 1000
    )
    found = world.sync()
    assert found.outside == 1 and found.summary.counts.read == 1
    assert found.written == 1 and found.sample_writes[0].record_id == late
    # The count no longer matched: the window was read (its known records skipped).
    assert world.kinds().count("search") > 1 and found.rereads + found.echoes > 200
    # Known again: the next quiet run is one search.
    world.sync()
    assert world.kinds() == ["search"]


@hubspot
def test_a_late_edit_of_a_known_record_inside_the_window_is_read(world: World) -> None:
    _written_world(world)
    mark = world.ctx.store.watermark("hubspot", "account")
    assert mark is not None
    # A record of the last batch but one segsync wrote, edited with a stamp
    # right after our write of it, committed late (the last batch has a later
    # stamp): it moves inside the window, near its top.
    upto = max(s for _, s in mark.known)
    second, known_at = max((p for p in mark.known if p[1] < upto), key=lambda p: p[1])
    stamp = int(known_at.timestamp() * 1000) + 1
    assert stamp <= int(upto.timestamp() * 1000)
    world.crms.hubspot.portal.update(
        "companies", second, {"numberofemployees": "4321"}, stamp=stamp
    )
    found = world.sync()
    assert found.outside == 1 and found.summary.counts.read == 1
    assert world.kinds().count("search") > 1


@hubspot
def test_edits_after_our_writes_are_read_and_the_window_is_not(world: World) -> None:
    ids = _written_world(world)
    world.sync()  # reads our writes once (above)
    portal = world.crms.hubspot.portal
    portal.update("companies", ids[7], {"numberofemployees": "4321"})
    one = world.sync()
    assert one.outside == 1 and one.summary.counts.read == 1
    assert world.kinds().count("search") == 1
    # More edits than a search page: walked above the window, then the window is counted.
    edited = ids[:250]
    for n, record_id in enumerate(edited):
        portal.update("companies", record_id, {"numberofemployees": str(5000 + n)})
    many = world.sync(force=True)  # most tiers move: past the mass-change guard
    assert many.outside == len(edited) and many.summary.counts.read == len(edited)
    searches = world.kinds().count("search")
    assert searches <= 1 + 2 + 1, world.kinds()  # the count, two pages, an empty last one
    assert many.minimum_calls == 2 + -(-many.summary.counts.changed // 100)
    # A late create inside the window at the same time: the count catches it.
    portal.update("companies", ids[300], {"numberofemployees": "77"})
    portal.add_company(_company(world, 500), stamp=world.watermark_ms() - 10)
    both = world.sync()
    assert both.outside == 2 and both.summary.counts.read == 2


def _settle(world: World, clock: OrgClock) -> None:
    """Move the org's clock past every second read so far, plus the look-back (commit lag)."""
    clock.advance(world.ctx.settings.sync.lookback_seconds + 2)


@salesforce
def test_salesforce_skips_lookback_rereads_before_planning(world: World) -> None:
    world.provision()
    world.sync()
    clock = hold_clock(world.crms.salesforce)
    org = world.crms.salesforce.org
    touched = [r["Id"] for r in org.records("Account")][:3]
    for record_id in touched:
        # Not an input: the records are read and planned, and nothing is written.
        org.update("Account", record_id, {"Description": "called on Monday"})
        clock.advance(1)  # each on a second of its own
    seen = world.sync()
    assert seen.outside == 3 and seen.written == 0
    # Read within their own second: a later edit in it would keep their stamp,
    # so they are not known yet and the next run plans them again.
    again = world.sync()
    assert again.outside == 3 and again.rereads == 0 and again.written == 0
    # Read once their second had closed (plus the look-back): known from then on.
    _settle(world, clock)
    settled = world.sync()
    assert settled.outside == 3 and settled.written == 0
    quiet = world.sync()
    # Within the look-back window they come back on the same query page; they
    # were processed at exactly these stamps, so they are not planned again.
    # (The last of them is at the watermark's own stamp: a boundary id, dropped first.)
    assert quiet.summary.counts.read == 0 and quiet.rereads == 2 and quiet.outside == 0
    # One call: the pull's Composite (its two long text reason fields split over two queries).
    assert world.kinds() == ["composite"] and quiet.minimum_calls == 1


@salesforce
def test_salesforce_an_edit_in_the_second_of_our_write_is_planned_next_run(
    world: World,
) -> None:
    """Stamps keep whole seconds: a person's edit right after our write keeps the record's stamp.

    The run that read the record in that second must not take it as processed
    at that stamp (a boundary id, a known pair): the next run plans it again
    and recomputes its values.
    """
    world.provision()
    world.sync()
    clock = hold_clock(world.crms.salesforce)
    org = world.crms.salesforce.org
    segment = world.ctx.engines["account"].output_fields("salesforce")["segment"]
    target = next(r["Id"] for r in org.records("Account") if (r.get("NumberOfEmployees") or 0) < 50)
    # A person makes it large; the next run recomputes and writes it, all in one second.
    org.update("Account", target, {"NumberOfEmployees": 20_000})
    wrote = world.sync()
    assert wrote.outside == 1 and wrote.written == 1
    large = org.get("Account", target)
    assert large is not None
    # In the same second, a person makes it small again: the stamp does not move.
    org.update("Account", target, {"NumberOfEmployees": 5})
    small = org.get("Account", target)
    assert small is not None and small["SystemModstamp"] == large["SystemModstamp"]
    again = world.sync()
    assert again.outside == 1 and again.written == 1
    recomputed = org.get("Account", target)
    assert recomputed is not None and recomputed[segment] != large[segment]
    # Once settled, the record is known at its stamp: nothing more to do.
    _settle(world, clock)
    world.sync()
    assert world.sync().summary.counts.read == 0


@pytest.mark.parametrize("world", ["salesforce", "salesforce:bulk"], indirect=True)
def test_salesforce_a_load_of_5000_in_one_second_is_pulled_whole_then_known(
    world: World,
) -> None:
    """5,000 accounts saved in one second share one stamp, across REST pages or a Bulk job.

    The ``>=`` pull ordered by ``SystemModstamp, Id`` reads them all once,
    neither losing nor repeating any at the page edges; once their second has
    closed they are known, and incremental runs plan none of them again.
    """
    world.provision()
    world.sync()
    clock = hold_clock(world.crms.salesforce)
    org = world.crms.salesforce.org
    # Locked: segsync plans them and writes none, so every pull meets them again.
    rows = [{"Name": f"Loaded {n:04d}", "Segsync_Lock__c": True} for n in range(5_000)]
    org.load_records("Account", rows)
    loaded = world.sync()
    assert loaded.outside == 5_000 and loaded.written == 0
    kinds = world.kinds()
    if not world.bulk:
        # REST: 3 Composite calls of 2,000 rows (25 pages of 200 in one query: the
        # reason fields are long text areas, split over two queries of each call).
        assert kinds == ["composite"] * 3, kinds
    else:
        assert any(k.startswith("bulk") for k in kinds), kinds
    _settle(world, clock)
    settling = world.sync()
    assert settling.outside == 5_000  # read before their second closed: planned again
    for _ in range(2):
        quiet = world.sync()
        assert quiet.summary.counts.read == 0 and quiet.outside == 0 and quiet.written == 0


@salesforce
def test_salesforce_an_incremental_pull_of_1000_edited_accounts_is_one_call(world: World) -> None:
    """The shipped definition selects two long text areas (the reason fields): one query
    answered 200 rows a page (5 calls for 1,000); split over one Composite call, 1."""
    world.provision()
    org = world.crms.salesforce.org
    org.load_records("Account", [{"Name": f"More {n:04d}"} for n in range(800)])
    world.sync()
    ids = sorted(r["Id"] for r in org.records("Account"))
    assert len(ids) >= 1_000
    for record_id in ids[:1_000]:
        # Not an input, and locked: read and planned, nothing written.
        org.update("Account", record_id, {"Description": "edited", "Segsync_Lock__c": True})
    edited = world.sync()
    assert edited.summary.counts.read == 1_000 and edited.written == 0
    assert world.kinds() == ["composite"]


# -- the pure parts ----------------------------------------------------------

T0 = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_recent_keeps_each_record_at_its_latest_stamp_within_the_lookback() -> None:
    previous = Watermark(_at(100), frozenset({"a"}), "v1", (("a", _at(100)), ("old", _at(10))))
    recent = Recent(Known(previous, "v1"), timedelta(seconds=60))
    recent.seen("b", _at(150))
    recent.wrote("b", _at(170))  # our write moved it
    recent.wrote("c", None)  # a write whose new stamp the CRM did not return
    recent.seen("c", _at(160))
    recent.wrote("c", None)
    assert dict(recent.known(_at(150))) == {"a": _at(100), "b": _at(170)}
    # Another mapping version knows nothing: the pull is full.
    assert len(Known(previous, "v2")) == 0


def test_recent_stays_bounded_and_drops_the_oldest_first() -> None:
    recent = Recent(Known(None, "v1"), timedelta(seconds=1000), max_known=10)
    for n in range(100):
        recent.seen(str(n), _at(n))
    kept = recent.known(_at(99))
    assert len(kept) == 10 and {i for i, _ in kept} == {str(n) for n in range(90, 100)}


def test_known_window_counts_what_is_known_inside_it_and_what_moved_out() -> None:
    known = Known(
        Watermark(_at(100), frozenset(), "v1", (("a", _at(50)), ("b", _at(100)), ("c", _at(130)))),
        "v1",
    )
    # Up to the watermark: what lies above it (c, our write) is read, not counted.
    assert known.window(_at(40), _at(100)) == (_at(100), 2)
    assert known.window(_at(60), _at(100)) == (_at(100), 1)
    assert known.moved([("a", _at(140)), ("z", _at(141))], _at(40), _at(100)) == 1
    assert known.moved([("c", _at(140))], _at(40), _at(100)) == 0  # known above the window
    assert known.has("b", _at(100)) and not known.has("b", _at(101))
    assert Known(None, "v1").window(_at(0), _at(1)) is None


def test_a_pair_counts_as_processed_only_once_its_second_and_the_lag_have_passed() -> None:
    lag = timedelta(seconds=60)
    assert settled(_at(100), None, lag)  # stamps that tell every change apart (HubSpot)
    assert not settled(_at(100), _at(160.999), lag)
    assert settled(_at(100), _at(161), lag)
    assert not settled(_at(100.5), _at(160.999), lag)  # the whole second counts
    previous = Watermark(_at(90), frozenset({"b"}), "v1", (("a", _at(80)), ("b", _at(90))))
    recent = Recent(Known(previous, "v1"), lag)
    recent.seen("a", _at(100), _at(120))  # read open: not kept, nor its older pair
    recent.seen("c", _at(95), _at(200))
    mark = recent.mark(Watermark(_at(100), frozenset({"a"}), "v1"))
    # The watermark's own second was read open: no boundary id, no proof below it.
    assert mark.boundary_ids == frozenset() and dict(mark.known) == {"b": _at(90), "c": _at(95)}
    assert known_window(Known(mark, "v1"), mark, _at(40)) is None
    closed = Recent(Known(previous, "v1"), lag)
    closed.seen("a", _at(100), _at(161))
    kept = closed.mark(Watermark(_at(100), frozenset({"a"}), "v1"))
    assert kept.boundary_ids == {"a"} and dict(kept.known)["a"] == _at(100)
    window = known_window(Known(kept, "v1"), kept, _at(40))
    assert window is not None and window.expected == 2  # a (at its new stamp) and b


# -- at scale: more written than the old cap of 20,000 pairs ------------------

SCALE = 25_000


@pytest.fixture
def scale_sandbox() -> Iterator[HubSpotSandbox]:
    portal = Portal(requests_per_10s=REQUESTS_PER_10S, search_per_second=SEARCH_PER_SECOND)
    portal.load_companies(data.hubspot_company_props(c) for c in data.companies(15, SCALE))
    with start_hubspot(portal=portal) as running:
        yield running


def test_after_a_large_write_a_quiet_run_is_one_search_and_edits_are_read(
    scale_sandbox: HubSpotSandbox, tmp_path: Path
) -> None:
    # 25,000 companies written by segsync: every pair of them is kept (the
    # window holds them all), so once our writes are read back the window is
    # proven by one count, and a person's edits among them are all it reads.
    engines = shipped_engines()
    adapter = hubspot_adapter(scale_sandbox)
    provision(adapter, engines, "hubspot", ["account"])
    store = sqlite_store(tmp_path)
    runner = Runner(store, SyncSettings(), clock=lambda: NOW)
    job = Job("hs", adapter, engines["account"])
    log = scale_sandbox.app.log
    full = runner.run(job)
    assert full.written == SCALE
    log.clear()
    back = runner.run(job)  # our writes lie above the watermark: read once, none planned
    # Read in parts at once, each page of them once: the probe (the newest
    # page) and the first page in stamp order are not read again, the two
    # cuts end whole pages (128 here; 132 when both pages were read twice).
    # One more where a page's records straddle the stamps the parts start at.
    assert back.api_calls == len(log.entries()) <= -(-SCALE // 200) + 4
    assert back.summary.counts.read == 0 and back.echoes + back.rereads >= SCALE
    mark = store.watermark("hs", "account")
    assert mark is not None and len(mark.known) >= SCALE
    log.clear()
    quiet = runner.run(job)
    assert [e.kind for e in log.entries()] == ["search"]
    assert quiet.summary.counts.read == 0 and quiet.api_calls == 1
    portal = scale_sandbox.portal
    edited = [r.id for r in portal.snapshot("companies")[1000:25_000:9_000]]
    for record_id in edited:
        portal.update("companies", record_id, {"phone": "+1 555 0100"})
    log.clear()
    found = runner.run(job)
    assert found.outside == len(edited) == 3 and found.summary.counts.read == 3
    assert [e.kind for e in log.entries()] == ["search"]
    log.clear()
    runner.run(job)
    assert [e.kind for e in log.entries()] == ["search"]


def test_recent_merges_the_previous_pairs_with_this_runs_and_forgets_what_changed() -> None:
    ids = [str(10_000_000_000 + n) for n in range(6)]
    previous = Watermark(
        _at(100),
        frozenset(),
        "v1",
        [
            (ids[0], _at(90)),
            (ids[1], _at(95)),
            (ids[2], _at(99)),
            (ids[3], _at(10)),
            ("a", _at(98)),
        ],
    )
    recent = Recent(Known(previous, "v1"), timedelta(seconds=60))
    recent.wrote(ids[1], _at(120))  # our write moved it
    recent.seen(ids[2], _at(98))  # a lagging page shows an older stamp: the latest stays
    recent.forget(ids[0])  # changed since it was read: not known at any stamp
    recent.forget(ids[4])
    recent.seen(ids[4], _at(130))  # read again later at its new stamp
    recent.wrote(ids[5], _at(125))
    recent.wrote("a", None)
    kept = recent.known(_at(110))
    assert dict(kept) == {
        ids[1]: _at(120),
        ids[2]: _at(99),
        ids[4]: _at(130),
        ids[5]: _at(125),
    }  # ids[3] is below the look-back of 110
    assert len(kept) == 4 and kept.numeric[0].tolist() == sorted(int(i) for i in dict(kept))
