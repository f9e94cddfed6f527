"""The pure planner, the value comparison, the mass-change guard and the watermark rule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import SyncSettings
from connector.errors import FatalSyncError
from connector.state import Candidate, Pending, Watermark
from connector.sync.guard import MassChangeError, check_guard
from connector.sync.planner import (
    Decision,
    Hysteresis,
    Plan,
    PlanBuilder,
    PlanCounts,
    PlanInput,
    PlanSummary,
    Policy,
    landed_baseline,
    plan,
    plan_record,
)
from connector.sync.values import as_text, is_blank, same_value
from connector.sync.watermark import (
    advance,
    is_new,
    needs_full,
    query_start,
)

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
SEG, TIER, FIT, REASON, UPDATED = "Segment__c", "Tier__c", "Fit__c", "Reason__c", "Updated__c"
POLICY = Policy(volatile=frozenset({UPDATED}), tracked=frozenset({SEG, TIER}))


def _desired(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {SEG: "Enterprise", TIER: "Tier 1", FIT: 80, UPDATED: NOW}
    base.update(fields)
    return base


def _one(
    item: PlanInput, policy: Policy = POLICY, hysteresis: Hysteresis | None = None
) -> Decision:
    return plan_record(item, policy, hysteresis or Hysteresis(), NOW)


# -- values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (80, 80.0),
        (80, "80"),
        ("80.0", 80),
        (" Tier 1 ", "Tier 1"),
        (None, ""),
        ("  ", None),
        (True, "true"),
        ("a\r\nb", "a\nb"),
        (0.1 + 0.2, 0.3),
        (datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC), "2026-01-01T12:00:00.123Z"),
        (
            datetime(2026, 1, 1, 12, 0),
            datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1))),
        ),
        (float("nan"), float("nan")),
    ],
)
def test_same_value_treats_crm_spellings_as_equal(left: Any, right: Any) -> None:
    assert same_value(left, right)
    assert same_value(right, left)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (80, 81),
        ("80", "81"),
        ("Tier 1", "Tier 2"),
        ("tier 1", "Tier 1"),
        (None, 0),
        ("", "0"),
        (True, False),
        ("nan", float("nan")),
        (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)),
        (datetime(2026, 1, 1, tzinfo=UTC), "not a date"),
        (80, "eighty"),
    ],
)
def test_same_value_sees_real_differences(left: Any, right: Any) -> None:
    assert not same_value(left, right)
    assert not same_value(right, left)


def test_as_text_and_is_blank() -> None:
    assert as_text(80.0) == "80" == as_text("80 ")
    assert as_text("  ") is None and as_text(None) is None
    assert as_text(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-01-01T00:00:00Z"
    )
    assert as_text(False) == "false"
    assert is_blank(" \t") and is_blank(None) and not is_blank(0)


_scalars = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.just(UTC)),
    st.sampled_from(["80", "80.0", " 80 ", "true", "Tier 1", "2026-01-01T00:00:00Z"]),
)


@given(_scalars, _scalars)
def test_same_value_is_reflexive_and_symmetric(a: Any, b: Any) -> None:
    assert same_value(a, a)
    assert same_value(a, b) == same_value(b, a)


# -- plan_record ----------------------------------------------------------------


def test_unchanged_record_is_not_written() -> None:
    current = {SEG: "Enterprise ", TIER: "Tier 1", FIT: "80", UPDATED: NOW - timedelta(days=3)}
    decision = _one(PlanInput("001", _desired(), current, last_written=_desired()))
    assert decision.status == "unchanged"
    assert decision.write is None
    assert decision.overrides == ()
    assert decision.adopt is None


def test_values_already_in_the_crm_are_adopted_as_last_written() -> None:
    # First sync of a record whose tier was already right; the segment is a
    # person's override we keep.
    current = _desired(**{SEG: "SMB"})
    decision = _one(PlanInput("001", _desired(), current, last_written={SEG: "Mid-Market"}))
    assert decision.write is None and [o.field for o in decision.overrides] == [SEG]
    assert decision.adopt == {SEG: "Mid-Market", TIER: "Tier 1", FIT: 80}


def test_changed_record_writes_only_changed_fields_and_volatile_ones() -> None:
    current = {SEG: "Enterprise", TIER: "Tier 2", FIT: 80.0, UPDATED: NOW - timedelta(days=3)}
    decision = _one(PlanInput("001", _desired(), current, last_written=current))
    assert decision.status == "changed" and decision.write is not None
    assert dict(decision.write.fields) == {TIER: "Tier 1", UPDATED: NOW}
    assert [(c.field, c.old, c.new) for c in decision.write.transitions] == [
        (TIER, "Tier 2", "Tier 1")
    ]
    assert decision.rewrite
    # The baseline records every field we now agree with, not just the sent ones.
    assert dict(decision.write.baseline) == _desired()


def test_only_volatile_difference_is_no_write() -> None:
    current = _desired(**{UPDATED: NOW - timedelta(days=1)})
    decision = _one(PlanInput("001", _desired(), current, last_written=current))
    assert decision.status == "unchanged" and decision.write is None


def test_first_sync_writes_over_foreign_values_without_reporting_overrides() -> None:
    current = {SEG: "Something a person typed", TIER: None}
    decision = _one(PlanInput("001", _desired(), current, last_written=None))
    assert decision.overrides == ()
    assert decision.write is not None
    assert set(decision.write.fields) == {SEG, TIER, FIT, UPDATED}
    # Filling a blank tier is not a rewrite; replacing the segment is.
    assert decision.rewrite


def test_fill_of_blank_fields_is_not_a_rewrite() -> None:
    decision = _one(PlanInput("001", _desired(), {}, last_written=None))
    assert decision.write is not None and not decision.rewrite


def test_manual_override_is_respected_and_reported() -> None:
    last = _desired(**{TIER: "Tier 2", FIT: 70})
    current = _desired(**{TIER: "Tier 3", FIT: 70})  # a person moved the tier
    decision = _one(PlanInput("001", _desired(), current, last_written=last))
    assert decision.write is not None
    assert dict(decision.write.fields) == {FIT: 80, UPDATED: NOW}
    (override,) = decision.overrides
    assert (override.field, override.crm_value, override.our_last, override.desired) == (
        TIER,
        "Tier 3",
        "Tier 2",
        "Tier 1",
    )
    assert override.action == "kept"
    # The baseline keeps our last value, so the override is still seen next time.
    assert decision.write.baseline[TIER] == "Tier 2"


def test_manual_override_is_overwritten_under_overwrite_policy() -> None:
    last = _desired(**{TIER: "Tier 2"})
    current = _desired(**{TIER: "Tier 3"})
    policy = Policy("overwrite", POLICY.volatile, POLICY.tracked)
    decision = _one(PlanInput("001", _desired(), current, last_written=last), policy)
    assert decision.write is not None and decision.write.fields[TIER] == "Tier 1"
    assert [o.action for o in decision.overrides] == ["overwritten"]


def test_person_setting_our_value_is_not_an_override() -> None:
    last = _desired(**{TIER: "Tier 2"})
    decision = _one(PlanInput("001", _desired(), _desired(), last_written=last))
    assert decision.status == "unchanged" and decision.overrides == ()


def test_field_we_never_wrote_is_not_an_override() -> None:
    last = {SEG: "Enterprise"}  # an older mapping had no tier output
    current = _desired(**{TIER: "Tier 3"})
    decision = _one(PlanInput("001", _desired(), current, last_written=last))
    assert decision.overrides == ()
    assert decision.write is not None and decision.write.fields[TIER] == "Tier 1"


def test_locked_record_is_never_written() -> None:
    pending = Pending({TIER: Candidate("Tier 1", 1, NOW)})
    decision = _one(PlanInput("001", _desired(), {}, None, locked=True, pending=pending))
    assert decision.status == "locked" and decision.write is None
    assert decision.pending == pending and not decision.pending_changed


def test_never_writes_undesired_fields() -> None:
    current = {"Other__c": "x", SEG: "SMB"}
    last = {"Other__c": "y", SEG: "SMB"}
    decision = _one(PlanInput("001", {SEG: "Enterprise"}, current, last_written=last))
    assert decision.write is not None and set(decision.write.fields) == {SEG}


# -- hysteresis -------------------------------------------------------------------


def _rerun(item: PlanInput, decision: Decision, desired: Mapping[str, Any]) -> PlanInput:
    """The next run's input, after the decision's write was applied."""
    current = dict(item.current)
    last = item.last_written
    if decision.write is not None:
        current.update(decision.write.fields)
        last = decision.write.baseline
    return PlanInput(item.record_id, desired, current, last, item.locked, decision.pending)


def test_hysteresis_holds_tier_for_n_runs_while_other_fields_update() -> None:
    hyst = Hysteresis(frozenset({TIER}), runs=3)
    current = _desired(**{TIER: "Tier 2", FIT: 50})
    item = PlanInput("001", _desired(), current, last_written=current)
    tiers = []
    for run in range(4):
        decision = plan_record(item, POLICY, hyst, NOW + timedelta(hours=run))
        tiers.append(decision.write.fields.get(TIER) if decision.write else None)
        if run == 0:
            assert decision.write is not None and decision.write.fields[FIT] == 80
            assert [h.field for h in decision.holds] == [TIER]
            assert decision.pending == Pending({TIER: Candidate("Tier 1", 1, NOW)})
            assert decision.pending_changed
        item = _rerun(item, decision, _desired(**{UPDATED: NOW + timedelta(hours=run)}))
    assert tiers == [None, None, "Tier 1", None]
    assert item.pending is None
    assert item.current[TIER] == "Tier 1"


def test_hysteresis_candidate_change_restarts_the_count() -> None:
    hyst = Hysteresis(frozenset({TIER}), runs=2)
    current = _desired(**{TIER: "Tier 3"})
    item = PlanInput("001", _desired(), current, last_written=current)
    first = plan_record(item, POLICY, hyst, NOW)
    item = _rerun(item, first, _desired(**{TIER: "Tier 2"}))
    second = plan_record(item, POLICY, hyst, NOW + timedelta(hours=1))
    assert second.write is None
    assert second.pending == Pending({TIER: Candidate("Tier 2", 1, NOW + timedelta(hours=1))})


def test_hysteresis_pending_is_cleared_when_record_falls_back() -> None:
    hyst = Hysteresis(frozenset({TIER}), runs=2)
    current = _desired(**{TIER: "Tier 3"})
    item = PlanInput("001", _desired(), current, last_written=current)
    first = plan_record(item, POLICY, hyst, NOW)
    item = _rerun(item, first, _desired(**{TIER: "Tier 3"}))
    second = plan_record(item, POLICY, hyst, NOW + timedelta(hours=1))
    assert second.write is None and second.pending is None and second.pending_changed


def test_hysteresis_dwell_time() -> None:
    hyst = Hysteresis(frozenset({TIER}), dwell=timedelta(days=2))
    current = _desired(**{TIER: "Tier 2"})
    item = PlanInput("001", _desired(), current, last_written=current)
    for offset, moved in (
        (timedelta(0), False),
        (timedelta(days=1), False),
        (timedelta(days=2), True),
    ):
        decision = plan_record(item, POLICY, hyst, NOW + offset)
        assert (decision.write is not None) is moved
        item = _rerun(item, decision, _desired())


def test_hysteresis_does_not_delay_a_first_assignment() -> None:
    hyst = Hysteresis(frozenset({TIER}), runs=5)
    decision = plan_record(PlanInput("001", _desired(), {}, None), POLICY, hyst, NOW)
    assert decision.write is not None and decision.write.fields[TIER] == "Tier 1"
    assert decision.holds == ()


def test_hysteresis_settings_and_validation() -> None:
    sync = SyncSettings(hysteresis_runs=3, hysteresis_dwell_seconds=60, override_policy="overwrite")
    hyst = Hysteresis.from_settings(sync, [TIER])
    assert hyst == Hysteresis(frozenset({TIER}), 3, timedelta(minutes=1)) and hyst.active
    assert not Hysteresis.from_settings(SyncSettings(), [TIER]).active
    assert Policy.from_settings(sync, volatile=[UPDATED]).overrides == "overwrite"
    with pytest.raises(ValueError, match="at least 1"):
        Hysteresis(runs=0)
    with pytest.raises(ValueError, match="negative"):
        Hysteresis(dwell=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="respect or overwrite"):
        Policy("ignore")  # type: ignore[arg-type]


# -- plans and the builder ------------------------------------------------------------


def _population() -> list[PlanInput]:
    old = _desired(**{TIER: "Tier 2"})
    return [
        PlanInput("a", _desired(), old, old),  # Tier 2 → Tier 1
        PlanInput("b", _desired(), old, old),  # Tier 2 → Tier 1
        PlanInput("c", _desired(**{SEG: "SMB"}), _desired(), _desired()),  # Enterprise → SMB
        PlanInput("d", _desired(), _desired(), _desired()),  # unchanged
        PlanInput("e", _desired(), {}, None),  # first write
        PlanInput("f", _desired(), old, None, locked=True),
        PlanInput("g", _desired(), _desired(**{TIER: "Tier 3"}), old),  # override kept
    ]


def test_plan_counts_and_transition_matrix() -> None:
    result = plan(_population(), POLICY, now=NOW)
    assert result.counts == PlanCounts(
        read=7, changed=4, unchanged=2, locked=1, overrides=1, held=0, rewritten=3
    )
    assert [w.record_id for w in result.writes] == ["a", "b", "c", "e"]
    assert result.locked == ("f",)
    assert [o.record_id for o in result.overrides] == ["g"]
    assert result.summary.matrix(TIER) == {None: {"Tier 1": 1}, "Tier 2": {"Tier 1": 2}}
    assert result.summary.matrix(SEG) == {None: {"Enterprise": 1}, "Enterprise": {"SMB": 1}}
    assert not result.is_empty and result.complete


def test_builder_keeps_a_bounded_sample_but_counts_everything() -> None:
    builder = PlanBuilder(keep=1)
    for item in _population():
        builder.add(plan_record(item, POLICY, Hysteresis(), NOW))
    sampled = builder.build()
    assert len(sampled.writes) == 1 and not sampled.complete
    assert sampled.summary == plan(_population(), POLICY, now=NOW).summary
    with pytest.raises(ValueError, match="negative"):
        PlanBuilder(keep=-1)


def test_plan_is_immutable() -> None:
    result = plan(_population(), POLICY, now=NOW)
    with pytest.raises(AttributeError):
        result.writes = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.writes[0].fields["Other__c"] = 1  # type: ignore[index]


# -- properties ---------------------------------------------------------------------

_FIELDS = (SEG, TIER, FIT, REASON, UPDATED)
_values = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "Tier 1", "Tier 2", "Tier 1 ", "80", "x"]),
    st.integers(0, 100),
    st.floats(0, 100, allow_nan=False),
    st.datetimes(timezones=st.just(UTC)),
)
_field_maps = st.dictionaries(st.sampled_from(_FIELDS), _values)
_inputs = st.lists(
    st.builds(
        PlanInput,
        record_id=st.text("0123456789", min_size=1, max_size=4),
        desired=_field_maps,
        current=_field_maps,
        last_written=st.none() | _field_maps,
        locked=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda item: item.record_id,  # one page of a pull has unique ids
)
_policies = st.builds(
    Policy,
    overrides=st.sampled_from(["respect", "overwrite"]),
    volatile=st.frozensets(st.sampled_from(_FIELDS), max_size=2),
    tracked=st.frozensets(st.sampled_from(_FIELDS), max_size=2),
)


def _apply(inputs: list[PlanInput], result: Plan) -> list[PlanInput]:
    """What the runner and the store make of a plan: the next run's inputs."""
    writes = {w.record_id: w for w in result.writes}
    applied = []
    for item in inputs:
        write = writes.get(item.record_id)
        current, last = item.current, result.adopt.get(item.record_id, item.last_written)
        if write is not None:
            current, last = {**item.current, **write.fields}, write.baseline
        pending = result.pending.get(item.record_id, item.pending)
        applied.append(PlanInput(item.record_id, item.desired, current, last, item.locked, pending))
    return applied


@settings(max_examples=80, deadline=None)
@given(_inputs, _policies)
def test_planning_the_applied_plan_writes_nothing(inputs: list[PlanInput], policy: Policy) -> None:
    first = plan(inputs, policy, now=NOW)
    second = plan(_apply(inputs, first), policy, now=NOW)
    assert second.writes == ()
    assert second.counts.changed == 0
    assert second.adopt == {}
    # Kept overrides stay kept: still reported, still not written.
    assert {(o.record_id, o.field) for o in second.overrides} == {
        (o.record_id, o.field) for o in first.overrides if o.action == "kept"
    }


@settings(max_examples=60, deadline=None)
@given(_inputs, _policies, st.integers(1, 3), st.sampled_from(_FIELDS))
def test_hysteresis_converges_after_its_runs(
    inputs: list[PlanInput], policy: Policy, runs: int, held: str
) -> None:
    hysteresis = Hysteresis(frozenset({held}), runs=runs)
    for run in range(runs):
        inputs = _apply(inputs, plan(inputs, policy, hysteresis, now=NOW + timedelta(hours=run)))
    final = plan(inputs, policy, hysteresis, now=NOW + timedelta(hours=runs))
    assert final.writes == () and final.holds == ()
    assert all(item.pending is None for item in inputs if not item.locked)


@settings(max_examples=80, deadline=None)
@given(_inputs, _policies)
def test_plans_are_deterministic_and_write_only_desired_values(
    inputs: list[PlanInput], policy: Policy
) -> None:
    result = plan(inputs, policy, now=NOW)
    assert result == plan(inputs, policy, now=NOW)
    by_id = {item.record_id: item for item in inputs}
    for write in result.writes:
        desired = by_id[write.record_id].desired
        assert set(write.fields) <= set(desired)
        assert all(write.fields[name] is desired[name] for name in write.fields)
        # Volatile fields ride along but never make a write on their own.
        assert set(write.fields) - policy.volatile
        assert not by_id[write.record_id].locked
    c = result.counts
    assert c.read == len(inputs) == c.changed + c.unchanged + c.locked


# -- mass-change guard ----------------------------------------------------------------


def _summary(read: int, rewritten: int = 0, changed: int | None = None) -> PlanSummary:
    changed = rewritten if changed is None else changed
    return PlanSummary(PlanCounts(read=read, changed=changed, rewritten=rewritten))


def test_guard_stops_an_empty_full_pull_where_records_existed() -> None:
    with pytest.raises(MassChangeError) as caught:
        check_guard(_summary(0), 1200, 0.5, 50, False, full=True, label="hubspot companies")
    message = str(caught.value)
    assert "1,200" in message and "hubspot companies" in message and "--force" in message
    assert caught.value.reason == "empty_pull"
    assert isinstance(caught.value, FatalSyncError)


def test_guard_allows_an_empty_incremental_pull_and_a_forced_run() -> None:
    check_guard(_summary(0), 1200, 0.5, 50, False, full=False)
    check_guard(_summary(0), 1200, 0.5, 50, True, full=True)
    check_guard(_summary(100, 100), 100, 0.5, 50, True, full=True)


def test_guard_stops_a_plan_rewriting_more_than_the_share() -> None:
    with pytest.raises(MassChangeError) as caught:
        check_guard(_summary(1000, 612), 1000, 0.5, 50, False, full=True)
    message = str(caught.value)
    assert "612 of 1,000" in message and "61%" in message and "50%" in message
    assert "--force" in message
    assert (caught.value.changed, caught.value.total, caught.value.limit) == (612, 1000, 0.5)


def test_guard_share_is_of_the_known_population_for_incremental_pulls() -> None:
    # 30 of 40 modified records move, but the object has 1,000 records.
    check_guard(_summary(40, 30), 1000, 0.5, 50, False, full=False)
    with pytest.raises(MassChangeError):
        check_guard(_summary(40, 30), None, 0.5, 10, False, full=False)


def test_guard_lets_small_orgs_fills_and_the_limit_itself_through() -> None:
    check_guard(_summary(49, 49), 49, 0.5, 50, False, full=True)  # under min_records
    check_guard(_summary(1000, 0, changed=1000), None, 0.5, 50, False, full=True)  # first sync
    check_guard(_summary(1000, 500), 1000, 0.5, 50, False, full=True)  # exactly the share


# -- watermarks --------------------------------------------------------------------------

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_query_start_applies_the_look_back() -> None:
    mark = Watermark(T0, frozenset({"a"}), "v1")
    assert query_start(mark, timedelta(minutes=5)) == T0 - timedelta(minutes=5)
    assert query_start(None, timedelta(minutes=5)) is None
    with pytest.raises(ValueError, match="negative"):
        query_start(mark, timedelta(seconds=-1))


def test_advance_drops_only_boundary_ids_at_the_boundary_stamp() -> None:
    mark = Watermark(T0, frozenset({"a", "b"}), "v1")
    later = T0 + timedelta(seconds=1)
    page = [("x", T0 - timedelta(minutes=1)), ("a", T0), ("c", T0), ("b", later), ("c", later)]
    step = advance(mark, page, "v1")
    assert step.new_ids == ("x", "c", "b")
    assert step.watermark == Watermark(later, frozenset({"b"}), "v1")
    assert not is_new(mark, "a", T0) and is_new(mark, "a", later)


def test_advance_keeps_boundary_ids_when_the_stamp_does_not_move() -> None:
    mark = Watermark(T0, frozenset({"a"}), "v1")
    step = advance(mark, [("z", T0 - timedelta(seconds=5)), ("b", T0)], "v1")
    assert step.new_ids == ("z", "b")
    assert step.watermark == Watermark(T0, frozenset({"a", "b"}), "v1")
    assert advance(mark, [], "v1").watermark == mark
    assert advance(None, [], "v1").watermark is None


def test_advance_with_a_new_mapping_version_replans_everything() -> None:
    mark = Watermark(T0, frozenset({"a"}), "v1")
    step = advance(mark, [("a", T0)], "v2")
    assert step.new_ids == ("a",)
    assert step.watermark == Watermark(T0, frozenset({"a"}), "v2")
    assert needs_full(mark, "v2") and needs_full(None, "v1") and not needs_full(mark, "v1")


def test_watermark_stamps_are_utc() -> None:
    paris = timezone(timedelta(hours=1))
    step = advance(None, [("a", datetime(2026, 11, 1, 13, 0, tzinfo=paris))], "v1")
    assert step.watermark is not None and step.watermark.stamp == T0
    assert step.watermark.stamp.tzinfo is UTC
    assert Watermark(datetime(2026, 11, 1, 12, 0), frozenset(), "v").stamp == T0


@settings(max_examples=100, deadline=None)
@given(
    first=st.dictionaries(st.text("abcdef", min_size=1, max_size=2), st.integers(0, 5)),
    second=st.dictionaries(st.text("ghijk", min_size=1, max_size=2), st.integers(0, 5)),
    page_size=st.integers(1, 4),
)
def test_chained_pages_see_every_record_once_and_runs_lose_nothing(
    first: dict[str, int], second: dict[str, int], page_size: int
) -> None:
    """Two incremental runs, each pulling ``>=`` the watermark in pages of any size."""

    def pull(records: dict[str, int], mark: Watermark | None) -> tuple[list[str], Watermark | None]:
        start = query_start(mark, timedelta(0))
        # A quick pull: it began after every stamp it reads.
        began = T0 + timedelta(seconds=11)
        rows = sorted(
            (T0 + timedelta(seconds=s), rid)
            for rid, s in records.items()
            if start is None or T0 + timedelta(seconds=s) >= start
        )
        seen: list[str] = []
        for i in range(0, len(rows), page_size):
            step = advance(
                mark, [(rid, stamp) for stamp, rid in rows[i : i + page_size]], "v1", began
            )
            seen.extend(step.new_ids)
            mark = step.watermark
        return seen, mark

    seen, mark = pull(first, None)
    assert sorted(seen) == sorted(first)
    top = max(first.values(), default=0)
    # New modifications land at or after the boundary (the same second included).
    modified = {rid: top + s for rid, s in second.items()}
    again, _ = pull({**first, **modified}, mark)
    assert sorted(again) == sorted(modified)


def test_watermark_tracker_caps_the_boundary_ids() -> None:
    from connector.sync.watermark import WatermarkTracker

    tracker = WatermarkTracker(None, "v1", max_ids=2)
    assert [tracker.see(i, T0) for i in ("a", "b", "c", "a")] == [True, True, True, False]
    mark = tracker.watermark()
    assert mark is not None and mark.stamp == T0 and len(mark.boundary_ids) == 2
    # Past the cap a boundary record is planned again next time: harmless, never lost.
    after = WatermarkTracker(mark, "v1")
    assert sorted(i for i in ("a", "b", "c") if after.see(i, T0)) == sorted(
        {"a", "b", "c"} - mark.boundary_ids
    )


# -- a dead run's landed write (rule 7) ------------------------------------------------

SENT = {TIER: "Tier 1", FIT: 80, UPDATED: "2026-11-22T05:00:00Z"}
CHANGES = ((TIER, "Tier 2", "Tier 1"),)
LAST = {SEG: "SMB", TIER: "Tier 2", FIT: 40, UPDATED: "2026-11-21T05:00:00Z"}


def test_a_landed_write_is_the_last_written_when_the_crm_holds_all_it_sent() -> None:
    # The CRM's own spelling (HubSpot's "80"), and its own updated-at (volatile: not compared).
    current = {SEG: "SMB", TIER: "Tier 1", FIT: "80", UPDATED: "2026-11-22T05:00:01Z"}
    assert landed_baseline(SENT, CHANGES, current, LAST, [UPDATED]) == {**LAST, **SENT}


@pytest.mark.parametrize(
    "moved",
    [
        {TIER: "Tier 3"},  # a person's edit of a tracked output after the write
        {FIT: "81"},  # ... of an untracked one
        {TIER: "Tier 2", FIT: 40},  # the write never landed
    ],
)
def test_a_landed_write_is_not_recognized_when_anything_it_sent_moved(
    moved: dict[str, Any],
) -> None:
    current = {SEG: "SMB", TIER: "Tier 1", FIT: 80, **moved}
    assert landed_baseline(SENT, CHANGES, current, LAST, [UPDATED]) is None


def test_a_landed_write_without_its_sent_values_is_checked_by_its_changes() -> None:
    current = {SEG: "SMB", TIER: "Tier 1", FIT: 40}
    assert landed_baseline({}, CHANGES, current, None, ()) == {TIER: "Tier 1"}
    assert landed_baseline({}, CHANGES, {TIER: "Tier 3"}, LAST, ()) is None
    assert landed_baseline({}, (), current, LAST, ()) is None


def test_planning_against_a_landed_write_writes_the_new_want_with_no_override() -> None:
    current = {SEG: "SMB", TIER: "Tier 1", FIT: 80}
    last = landed_baseline(SENT, CHANGES, current, LAST, [UPDATED])
    desired = {SEG: "SMB", TIER: "Tier 2", FIT: 40}
    decision = plan_record(
        PlanInput("1", desired, current, last, False, None), POLICY, Hysteresis(), NOW
    )
    assert decision.overrides == ()
    assert decision.write is not None
    assert dict(decision.write.fields) == {TIER: "Tier 2", FIT: 40}
