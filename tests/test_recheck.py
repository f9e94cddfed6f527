"""Write only what is still true: a person's edit between pull and write survives (issue 16).

Both sandboxes, the production wiring (config → adapters → runner → store),
real clients over HTTP. The runner's progress callback is the hook: it edits
records in the CRM, as a person in the UI would, after the plan is made and
between write chunks. Each edited record is held back, reported, and
re-planned by the next run; segsync's own writes in between are not edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sandbox_fixtures import hold_clock

from connector.commands.crm import Context, open_context
from connector.config import SyncSettings
from connector.crm.base import Current, RecordUpdate
from connector.errors import FatalSyncError
from connector.store.records import RunCounts, WrittenRecord
from connector.sync.provision import output_specs
from connector.sync.recheck import moved
from connector.sync.runner import Runner, RunResult
from segsync_sandbox.launcher import Sandboxes
from segsync_sandbox.salesforce.org import format_datetime, make_id

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CHUNK = 50


class Crm:
    """One CRM of the sandboxes through the production wiring, with a person at the keyboard."""

    def __init__(self, crms: Sandboxes, ctx: Context, crm: str) -> None:
        self.crms, self.ctx, self.crm = crms, ctx, crm
        self.adapter = ctx.adapters[crm]
        self.now = NOW

    def provision(self) -> None:
        engine = self.ctx.engines["account"]
        report = self.adapter.provision(
            "account",
            output_specs(engine, self.crm, None),
            engine.input_fields(self.crm),
            dry_run=False,
        )
        assert not report.problems, report.problems

    def runner(
        self, hook: Callable[[str, int], None], chunk: int | None = CHUNK, **sync: Any
    ) -> Runner:
        settings = SyncSettings(**{**self.ctx.settings.sync.model_dump(), **sync})
        return Runner(
            self.ctx.store, settings, clock=lambda: self.now, write_chunk=chunk, progress=hook
        )

    def sync(self, runner: Runner) -> RunResult:
        self.now += timedelta(minutes=1)
        (job,) = self.ctx.jobs(self.crm, "account")
        return runner.run(job)

    def ids(self) -> list[str]:
        if self.crm == "salesforce":
            return [r["Id"] for r in self.crms.salesforce.org.records("Account")]
        return [r.id for r in self.crms.hubspot.portal.snapshot("companies")]

    def field(self, key: str) -> str:
        engine = self.ctx.engines["account"]
        return engine.lock_field(self.crm) if key == "lock" else engine.output_fields(self.crm)[key]

    def value(self, record_id: str, name: str) -> Any:
        if self.crm == "salesforce":
            return self.crms.salesforce.org.get("Account", record_id).get(name)
        return self.crms.hubspot.portal.get("companies", record_id)["properties"].get(name)

    def edit(self, record_id: str, name: str, value: Any) -> None:
        """A person edits one field in the CRM's UI."""
        if self.crm == "salesforce":
            self.crms.salesforce.org.update("Account", record_id, {name: value})
        else:
            self.crms.hubspot.portal.update("companies", record_id, {name: str(value)})

    def lock(self) -> tuple[str, Any]:
        return self.field("lock"), True if self.crm == "salesforce" else "true"

    def headcount(self) -> str:
        return "NumberOfEmployees" if self.crm == "salesforce" else "numberofemployees"

    def unwritten(self) -> list[str]:
        """Accounts segsync has not written yet (no last-written values in the store)."""
        ids = self.ids()
        last = self.ctx.store.last_written(self.ctx.adapters[self.crm].connection, "account", ids)
        return [i for i in ids if i not in last]


@pytest.fixture
def crm(
    request: pytest.FixtureRequest,
    fresh_sandboxes: Sandboxes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Crm]:
    monkeypatch.chdir(ROOT)
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    with open_context(config, crm=request.param) as ctx:
        yield Crm(fresh_sandboxes, ctx, request.param)


both = pytest.mark.parametrize("crm", ["salesforce", "hubspot"], indirect=True)


def _other(crm: Crm, record_id: str) -> str:
    """A tier the mapping does not compute for the record: a person's choice."""
    if crm.crm == "salesforce":
        fields = dict(crm.crms.salesforce.org.get("Account", record_id))
    else:
        fields = crm.crms.hubspot.portal.get("companies", record_id)["properties"]
    computed = crm.ctx.engines["account"].evaluate(fields, crm.crm, crm.now).tier
    return "Tier 3" if computed != "Tier 3" else "Tier 2"


@both
def test_a_person_s_edit_between_pull_and_write_survives_and_is_reported(crm: Crm) -> None:
    crm.provision()
    accounts = crm.ids()
    tier, segment = crm.field("tier"), crm.field("segment")
    lock_field, locked = crm.lock()
    # Three people at work once the plan is made, one more after the first chunk.
    pinned, lockee, retyped = accounts[3], accounts[10], accounts[20]
    late: list[str] = []
    pinned_to = _other(crm, pinned)
    # Salesforce stamps keep whole seconds; the org's clock is held, so the
    # people may edit in the very second the plan read a record (see the test
    # of that case below).
    if crm.crm == "salesforce":
        hold_clock(crm.crms.salesforce)

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == len(accounts):
            crm.edit(pinned, tier, pinned_to)
            crm.edit(lockee, lock_field, locked)
            crm.edit(retyped, crm.headcount(), 4321)
        elif phase == "write" and not late:  # after the first chunk
            late.append(next(i for i in crm.unwritten() if i not in (pinned, lockee, retyped)))
            crm.edit(late[0], tier, _other(crm, late[0]))

    first = crm.sync(crm.runner(hook))
    assert first.summary.counts.changed == len(accounts)
    held = {pinned, lockee, retyped, *late}
    assert first.changed_since_plan == len(held) == 4
    assert {record_id for record_id, _ in first.sample_changed} == held
    assert dict(first.sample_changed)[pinned] == f"{tier} changed"
    assert dict(first.sample_changed)[lockee] == f"{lock_field} changed"
    # Salesforce names the input (read in its stamp's open second); HubSpot's
    # stamps tell every save apart.
    # (Salesforce names the input when the plan read the record in its stamp's
    # open second: test_an_input_edited_in_the_second_the_plan_read_it_is_held.)
    assert dict(first.sample_changed)[retyped] in ("edited", f"{crm.headcount()} changed")
    assert first.written == len(accounts) - len(held) and first.status == "succeeded"
    # The people's values stand; segsync wrote nothing on those records.
    assert crm.value(pinned, tier) == pinned_to
    assert crm.value(lockee, segment) in (None, "")
    assert crm.value(retyped, segment) in (None, "")
    (row,) = crm.ctx.store.runs(limit=1)
    assert row.counts.changed_since_plan == 4 and row.counts.written == first.written
    conn = crm.adapter.connection
    assert crm.ctx.store.last_written(conn, "account", list(held)) == {}

    # The next run pulls them again (their stamps moved) and plans them afresh:
    # the pinned tier is a person's value (kept), the lock holds, the edit is written.
    second = crm.sync(crm.runner(lambda phase, done: None))
    assert second.changed_since_plan == 0
    assert crm.value(pinned, tier) == pinned_to
    assert crm.value(lockee, segment) in (None, "")
    assert crm.value(retyped, segment) not in (None, "")
    assert second.summary.counts.locked >= 1 and second.summary.counts.overrides >= 1


@both
def test_without_the_recheck_the_edit_is_lost(crm: Crm) -> None:
    """The same edit with ``recheck_before_write = false``: overwritten, as before."""
    crm.provision()
    accounts = crm.ids()
    tier = crm.field("tier")
    pinned = accounts[3]
    pinned_to = _other(crm, pinned)

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == len(accounts):
            crm.edit(pinned, tier, pinned_to)

    result = crm.sync(crm.runner(hook, recheck_before_write=False))
    assert result.changed_since_plan == 0 and result.written == len(accounts)
    assert crm.value(pinned, tier) != pinned_to


@both
def test_segsync_s_own_write_in_between_is_not_an_edit(crm: Crm) -> None:
    """A write by segsync's integration user between plan and write is not held back."""
    crm.provision()
    accounts = crm.ids()
    reason = crm.field("reason")
    ours = accounts[7]
    conn = crm.adapter.connection

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == len(accounts):
            # segsync itself (another job of the same integration user) writes it.
            (outcome,) = crm.adapter.write("account", [RecordUpdate(ours, {reason: "ours"})])
            assert outcome.ok
            if outcome.stamp is not None:  # HubSpot returns the stamp: kept as our echo
                run = crm.ctx.store.start_run(conn, crm.crm, "account", "x", full=False)
                crm.ctx.store.record_batch(
                    run, conn, "account", [WrittenRecord(ours, {}, outcome.stamp)]
                )
                crm.ctx.store.finish_run(run, "succeeded", RunCounts(written=1), 1, 1, None)

    result = crm.sync(crm.runner(hook))
    assert result.changed_since_plan == 0 and result.written == len(accounts)
    assert crm.value(ours, reason) != "ours"


def test_moved_names_what_changed() -> None:
    t0, t1 = NOW, NOW + timedelta(seconds=1)
    seen = (t0, {"Tier__c": "Tier 1", "Lock__c": False}, None)
    assert moved(seen, Current("1", t0, {"Tier__c": "Tier 1", "Lock__c": False}), None) is None
    assert moved(seen, None, None) == "deleted"
    assert (
        moved(seen, Current("1", t1, {"Tier__c": "Tier 1", "Lock__c": True}), None)
        == "Lock__c changed"
    )
    assert moved(seen, Current("1", t1, {"Tier__c": "Tier 1", "Lock__c": False}), None) == "edited"
    # Our own write: by the integration user, or at the stamp our write returned.
    assert moved(seen, Current("1", t1, {"Tier__c": "T9"}, own=True), None) is None
    assert moved(seen, Current("1", t1, {"Tier__c": "T9"}), t1) is None


# -- Salesforce: a chunk of 1,000 and more in one call ------------------------

sf_only = pytest.mark.parametrize("crm", ["salesforce"], indirect=True)

_SYSTEM = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById"}


def _load(crm: Crm, count: int, changed: datetime) -> list[str]:
    """``count`` copies of seeded accounts (no output values), last changed at ``changed``."""
    org = crm.crms.salesforce.org
    outputs = set(crm.ctx.engines["account"].output_fields("salesforce").values())
    stamp = format_datetime(changed)
    seeded = [dict(r) for r in org.records("Account")][:200]
    before = set(crm.ids())
    rows = [
        {
            **{k: v for k, v in seeded[n % len(seeded)].items() if k not in _SYSTEM | outputs},
            "Name": f"Copy {n}",
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }
        for n in range(count)
    ]
    org.load_records("Account", rows)
    return [i for i in crm.ids() if i not in before]


@sf_only
def test_salesforce_rereads_a_chunk_of_1300_in_one_call(crm: Crm) -> None:
    """Settled records are re-read without their values; edits of every kind are still held."""
    crm.provision()
    settled = _load(crm, 1_000, datetime.now(UTC) - timedelta(days=30))
    fresh = _load(crm, 100, datetime.now(UTC))
    total = len(crm.ids())
    assert total == 1_300
    tier, headcount = crm.field("tier"), crm.headcount()
    lock_field, locked = crm.lock()
    # People at work once the plan is made: on settled records (any place in the
    # chunk, so in different queries of the one call) and on a fresh one.
    pinned, lockee, retyped, gone = settled[5], settled[500], settled[990], settled[-1]
    fresh_pinned = fresh[7]
    pins = {pinned: _other(crm, pinned), fresh_pinned: _other(crm, fresh_pinned)}

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == total:
            for record_id, value in pins.items():
                crm.edit(record_id, tier, value)
            crm.edit(lockee, lock_field, locked)
            crm.edit(retyped, headcount, 4321)
            crm.crms.salesforce.org.delete("Account", gone)

    result = crm.sync(crm.runner(hook, chunk=2_000))
    assert result.summary.counts.changed == total
    # One Composite call: the fresh ids in queries of 200 with their values (up
    # to 300: the seeded 200 may be fresh too), the settled ones in lean queries.
    assert result.recheck_calls == 1
    assert dict(result.sample_changed) == {
        pinned: "edited",  # its values were not re-read: the stamp moved
        fresh_pinned: f"{tier} changed",
        lockee: f"{lock_field} changed",  # the lock is read always
        retyped: "edited",
        gone: "deleted",
    }
    assert result.changed_since_plan == 5 and result.written == total - 5
    for record_id, value in pins.items():
        assert crm.value(record_id, tier) == value


@sf_only
def test_an_input_edited_in_the_second_the_plan_read_it_is_held(crm: Crm) -> None:
    """The save keeps the record's whole-second stamp: the re-read compares its inputs.

    Without that, the headcount edit looked like no change, our write made the
    integration user the last modifier, and incremental pulls (which leave out
    records segsync modified last) never brought the edit back.
    """
    crm.provision()
    clock = hold_clock(crm.crms.salesforce)
    fresh = _load(crm, 20, datetime.fromtimestamp(int(clock.now), UTC))  # stamped this second
    retyped = fresh[5]
    stamp = crm.crms.salesforce.org.get("Account", retyped)["SystemModstamp"]

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == len(crm.ids()):
            crm.edit(retyped, crm.headcount(), 4321)  # the same second: the same stamp

    first = crm.sync(crm.runner(hook))
    assert crm.crms.salesforce.org.get("Account", retyped)["SystemModstamp"] == stamp
    assert dict(first.sample_changed) == {retyped: f"{crm.headcount()} changed"}
    assert crm.value(retyped, crm.field("segment")) in (None, "")
    # The next run, a second later, plans it from the edited headcount and writes it.
    clock.advance(2)
    second = crm.sync(crm.runner(lambda phase, done: None))
    assert second.changed_since_plan == 0
    assert crm.value(retyped, crm.field("segment")) not in (None, "")


@sf_only
def test_salesforce_write_chunks_fill_whole_reread_calls(crm: Crm) -> None:
    # One Composite call re-reads 1,000 fresh records (five queries of 200); the
    # adapter's chunk is a multiple of it (was 1,600: two calls for the second 600).
    crm.provision()
    _load(crm, 1_800, datetime.now(UTC))
    total = len(crm.ids())
    assert total == 2_000
    result = crm.sync(crm.runner(lambda phase, done: None, chunk=None))
    assert result.summary.counts.changed == result.written == total
    assert result.recheck_calls == 2


@sf_only
@pytest.mark.parametrize("skew", [timedelta(0), timedelta(days=1)], ids=["in-step", "org-ahead"])
def test_settled_by_the_org_s_clock_at_the_plan_s_read(crm: Crm, skew: timedelta) -> None:
    """Settled: read after the stamp's second closed plus the look-back, on the org's clock.

    A record stamped ten minutes before the run (the run starts less than 15
    minutes after it) is re-read by stamp and lock: the look-back (300 s) and
    its second had passed when the plan read it. One stamped in the very
    second the plan read it is re-read with its values. This host's clock
    plays no part: an org a day ahead of it decides the same.
    """
    crm.provision()
    clock = hold_clock(crm.crms.salesforce)
    clock.advance(skew.total_seconds())
    org_now = datetime.fromtimestamp(int(clock.now), UTC)
    (old,) = _load(crm, 1, org_now - timedelta(minutes=10))
    (fresh,) = _load(crm, 1, org_now)  # the second the plan reads it in
    tier = crm.field("tier")
    pins = {old: _other(crm, old), fresh: _other(crm, fresh)}
    total = len(crm.ids())

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == total:
            for record_id, value in pins.items():
                crm.edit(record_id, tier, value)

    result = crm.sync(crm.runner(hook, chunk=2_000))
    # "edited": its values were not re-read (the stamp moved); named by the field: they were.
    assert dict(result.sample_changed) == {old: "edited", fresh: f"{tier} changed"}
    for record_id, value in pins.items():
        assert crm.value(record_id, tier) == value


@sf_only
def test_settled_takes_the_look_back_s_commit_lag(crm: Crm) -> None:
    """With no look-back, a closed second settles a record; the open one never does."""
    crm.provision()
    clock = hold_clock(crm.crms.salesforce)
    org_now = datetime.fromtimestamp(int(clock.now), UTC)
    (closed,) = _load(crm, 1, org_now - timedelta(seconds=2))
    (open_,) = _load(crm, 1, org_now)
    tier = crm.field("tier")
    pins = {closed: _other(crm, closed), open_: _other(crm, open_)}
    total = len(crm.ids())

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == total:
            for record_id, value in pins.items():
                crm.edit(record_id, tier, value)

    result = crm.sync(crm.runner(hook, chunk=2_000, lookback_seconds=0))
    assert dict(result.sample_changed) == {closed: "edited", open_: f"{tier} changed"}


@sf_only
def test_a_refused_query_in_the_composite_call_fails_the_run_clearly(crm: Crm) -> None:
    """A subrequest's error is raised as the same query alone would raise it."""
    ids = crm.ids() + [make_id("Account", 900_000 + n) for n in range(800)]
    with pytest.raises(FatalSyncError, match="No_Such_Field__c"):
        crm.adapter.current("account", ids, ["No_Such_Field__c"])


@sf_only
def test_the_reread_by_composite_answers_like_single_queries(crm: Crm) -> None:
    """1,000 ids (200 live, 800 unknown) in one call; the unknown ones are left out."""
    crm.provision()
    live = crm.ids()
    ids = [make_id("Account", 900_000 + n) for n in range(800)] + live
    fields = [crm.field("tier"), crm.field("lock")]
    before = crm.adapter.api_calls
    now = crm.adapter.current("account", ids, fields)
    assert crm.adapter.api_calls - before == 1
    assert set(now) == set(live)
    org = crm.crms.salesforce.org
    for record_id in live:
        record = org.get("Account", record_id)
        assert record is not None
        assert format_datetime(now[record_id].stamp) == record["SystemModstamp"]
        assert not now[record_id].partial and set(now[record_id].fields) == set(fields)
    # Settled, keeping the lock only: the same stamps, and the lock alone.
    lean = crm.adapter.current("account", ids, fields, settled=set(ids), keep=fields[1:])
    assert {i: c.stamp for i, c in lean.items()} == {i: c.stamp for i, c in now.items()}
    assert all(c.partial and set(c.fields) == {fields[1]} for c in lean.values())


def test_a_composite_subrequest_url_is_held_to_the_uri_limit(salesforce_sandbox: Any) -> None:
    """The sandbox answers 414 to a subrequest URL longer than 16,384 bytes, as to a URI."""
    ids = ",".join(f"'{make_id('Account', n)}'" for n in range(800))
    query = f"SELECT+Id+FROM+Account+WHERE+Id+IN+({ids})"
    sf = salesforce_sandbox.client()
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {
                    "method": "GET",
                    "url": f"/services/data/v59.0/query/?q={query}",
                    "referenceId": "big",
                }
            ]
        },
    )
    (sub,) = answer["compositeResponse"]
    assert sub["httpStatusCode"] == 414


# -- moved(): the stamp stands for what a partial re-read leaves out ------------

_T0 = NOW
_NAMES = ("Tier__c", "Reason__c", "Lock__c")
_KEEP = ("Lock__c",)
_value = st.sampled_from([None, "a", "b", True, False])


@settings(max_examples=400, deadline=None)
@given(
    seen_values=st.fixed_dictionaries({n: _value for n in _NAMES}),
    moved_by=st.integers(0, 2),
    new_values=st.fixed_dictionaries({n: _value for n in _NAMES}),
    own=st.booleans(),
    echo=st.sampled_from(["none", "now", "other"]),
    gone=st.booleans(),
)
def test_a_partial_reread_holds_back_exactly_what_a_full_one_does(
    seen_values: dict[str, Any],
    moved_by: int,
    new_values: dict[str, Any],
    own: bool,
    echo: str,
    gone: bool,
) -> None:
    """Given what the CRM guarantees (same stamp → same stored values), same decisions."""
    stamp = _T0 + timedelta(seconds=moved_by)
    # The CRM's record now: at the planned stamp it holds what the plan saw.
    values = dict(seen_values) if moved_by == 0 else new_values
    full = None if gone else Current("1", stamp, values, own=own)
    lean = (
        None if gone else Current("1", stamp, {k: values[k] for k in _KEEP}, own=own, partial=True)
    )
    echo_stamp = {"none": None, "now": stamp, "other": _T0 - timedelta(seconds=9)}[echo]
    seen = (_T0, seen_values, None)
    before, after = moved(seen, full, echo_stamp), moved(seen, lean, echo_stamp)
    assert (before is None) == (after is None)
    if after is not None:
        # Named by the stamp, or by a field both read, where the full one named another.
        assert after in {before, "edited", *(f"{k} changed" for k in _KEEP)}
