"""plan_record's shortcut for records that hold what we want decides as the full rules do."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connector.state import Candidate, Pending
from connector.sync.planner import (
    Decision,
    Hysteresis,
    PlanBuilder,
    PlanInput,
    Policy,
    RecordPlanner,
    _plan_record,
    _same,
    plan_record,
)
from connector.sync.values import same_value

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
FIELDS = ["seg", "tier", "fit", "reason", "stamp"]

# What segsync computes, and the spellings the CRMs and the store hand back.
_values = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "SMB", "SMB ", "Tier 1", "80", "80.0", "080", "true", "nan"]),
    st.integers(-100, 100),
    st.integers(-100, 100).map(str),
    st.integers(-100, 100).map(float),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.just(NOW),
    st.just(NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")),
    st.just(NOW.strftime("%Y-%m-%dT%H:%M:%S.000+0000")),
)
_maps = st.dictionaries(st.sampled_from(FIELDS), _values)


@st.composite
def _inputs(draw: st.DrawFn) -> PlanInput:
    desired = draw(_maps)
    # Mostly what a steady state holds: the CRM and the store agree with desired.
    current = draw(st.sampled_from([dict(desired), {**desired, **draw(_maps)}, draw(_maps)]))
    last = draw(st.sampled_from([None, dict(desired), {**desired, **draw(_maps)}, draw(_maps)]))
    pending = draw(
        st.none() | st.just(Pending({"tier": Candidate("Tier 1", 1, NOW - timedelta(days=1))}))
    )
    return PlanInput("001", desired, current, last, False, pending)


_policies = st.builds(
    Policy,
    overrides=st.sampled_from(["respect", "overwrite"]),
    volatile=st.frozensets(st.sampled_from(FIELDS), max_size=2),
    tracked=st.frozensets(st.sampled_from(FIELDS), max_size=2),
)
_hysteresis = st.sampled_from(
    [Hysteresis(), Hysteresis(frozenset({"tier"}), runs=2), Hysteresis(frozenset({"seg"}), runs=3)]
)


def _fields(decision: Decision) -> tuple[Any, ...]:
    return tuple(getattr(decision, name) for name in Decision.__slots__)


@settings(max_examples=400, deadline=None)
@given(_inputs(), _policies, _hysteresis)
def test_the_shortcut_decides_like_the_full_rules(
    item: PlanInput, policy: Policy, hysteresis: Hysteresis
) -> None:
    fast = plan_record(item, policy, hysteresis, NOW)
    full = _plan_record(item, policy, hysteresis, NOW)
    assert type(fast) is Decision
    assert fast == full
    assert _fields(fast) == _fields(full)  # every slot set, adopt included


_scalars = st.one_of(
    _values,
    st.text(max_size=6),
    # Text that differs only where cleaning or number reading looks: padding,
    # line endings, signs, dots, digits of other scripts.
    st.lists(
        st.sampled_from(["Tier", " ", "\r\n", "\n", "\r", "1", "+", "-", ".", "٣", "e5", "x"]),
        max_size=4,
    ).map("".join),
    st.integers(-(2**60), 2**60),
    st.integers(-(2**60), 2**60).map(str),
)


@settings(max_examples=2000, deadline=None)
@given(_scalars, _scalars)
def test_the_quick_comparison_is_same_value(a: Any, b: Any) -> None:
    assert _same(a, b) == same_value(a, b)
    assert _same(b, a) == same_value(a, b)


class _Evaluated:
    """An assignment as RecordPlanner sees one: its outputs (a new dict per call)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def outputs(self, crm: str, now: datetime) -> dict[str, Any]:
        assert crm == "hubspot"
        return dict(self.values)


def _spelled_back(values: dict[str, Any], how: str) -> dict[str, Any]:
    """The values as a CRM sends them back: whole numbers as text (HubSpot) or floats."""
    if how == "text":
        return {k: str(v) if v.__class__ is int else v for k, v in values.items()}
    if how == "float":
        return {k: float(v) if v.__class__ is int else v for k, v in values.items()}
    return dict(values)


@st.composite
def _records(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, bool]:
    """Desired outputs, a record's fields and the store's last-written values for them."""
    desired = draw(_maps)
    fields = draw(
        st.sampled_from(
            [
                _spelled_back(desired, draw(st.sampled_from(["as is", "text", "float"]))),
                {**desired, **draw(_maps)},
                draw(_maps),
                {},
            ]
        )
    )
    fields["input"] = "ignored"
    last = draw(st.sampled_from([None, dict(desired), _spelled_back(desired, "text"), draw(_maps)]))
    return desired, fields, last, draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_records(), min_size=1, max_size=4),
    _policies,
    _hysteresis,
    st.frozensets(st.sampled_from(FIELDS), max_size=2),
    st.none() | st.just(Pending({"tier": Candidate("Tier 1", 1, NOW - timedelta(days=1))})),
)
def test_the_record_planner_decides_as_plan_record_on_the_input_it_stands_for(
    records: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, bool]],
    policy: Policy,
    hysteresis: Hysteresis,
    rounded: frozenset[str],
    pending: Pending | None,
) -> None:
    # Scores are finite (round() refuses infinities, as it did in the runner before).
    assume(
        all(
            not isinstance(v, float) or math.isfinite(v)
            for desired, *_ in records
            for k, v in desired.items()
            if k in rounded
        )
    )
    planner = RecordPlanner("hubspot", policy, hysteresis, NOW, FIELDS, sorted(rounded))
    shared = _Evaluated(records[0][0])
    for desired, fields, last, locked in records:
        # Records share an assignment (its outputs cached) or bring their own.
        for evaluated in (shared, _Evaluated(desired)):
            item = planner.plan_input("001", evaluated, fields, last, locked, pending)
            want = plan_record(item, policy, hysteresis, NOW)
            got = planner.decide("001", evaluated, fields, last, locked, pending)
            assert type(got) is Decision
            assert _fields(got) == _fields(want)
            # decide_quiet: the same decision, or None for the plain unchanged one.
            quiet = planner.decide_quiet("001", evaluated, fields, last, locked, pending)
            if quiet is None:
                assert _fields(want) == _fields(Decision("001", "unchanged"))
            else:
                assert _fields(quiet) == _fields(want)


def test_the_record_planner_rounds_scores_and_reads_only_output_fields() -> None:
    planner = RecordPlanner("hubspot", Policy(), Hysteresis(), NOW, ["fit", "seg"], ["fit"])
    item = planner.plan_input(
        "001", _Evaluated({"fit": 79.6, "seg": "SMB"}), {"fit": "80", "x": 1}, None, False, None
    )
    assert item == PlanInput("001", {"fit": 80, "seg": "SMB"}, {"fit": "80", "seg": None})


def test_equal_is_not_always_the_same_value() -> None:
    """Why the planner's tuple comparison is kept to text, whole numbers and blanks.

    Python's ``True == 1.0`` holds; same_value says they differ.
    """
    assert not same_value(True, 1.0)


def test_a_record_holding_what_it_wants_is_decided_without_the_full_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desired = {"seg": "SMB", "tier": "Tier 1", "fit": 80, "stamp": NOW}
    planner = RecordPlanner(
        "hubspot", Policy(volatile=frozenset({"stamp"})), Hysteresis(), NOW, FIELDS
    )
    evaluated = _Evaluated(desired)
    steady: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"seg": "SMB", "tier": "Tier 1", "fit": "80", "stamp": "x", "reason": None}, desired),
        ({"seg": "SMB", "tier": "Tier 1", "fit": 80.0, "stamp": None, "reason": ""}, desired),
    ]
    moved = {"seg": "SMB", "tier": "Tier 2", "fit": "80", "stamp": None, "reason": None}
    expected = [
        plan_record(
            planner.plan_input("1", evaluated, f, last, False, None),
            planner.policy,
            planner.hysteresis,
            NOW,
        )
        for f, last in steady
    ]
    assert [d.status for d in expected] == ["unchanged", "unchanged"]
    assert planner.decide("1", evaluated, moved, None, False, None).status == "changed"

    def full_rules(*args: Any) -> Decision:
        raise AssertionError("took the full rules")

    monkeypatch.setattr("connector.sync.planner.plan_record", full_rules)
    for (fields, last), want in zip(steady, expected, strict=True):
        assert _fields(planner.decide("1", evaluated, fields, last, False, None)) == _fields(want)


def test_a_steady_record_is_decided_quietly_and_counted_as_add_counts_it() -> None:
    """``decide_quiet`` gives ``None`` for a steady record; ``add_unchanged`` counts it as ``add``.

    A steady run builds no Decision for most of its records: the plan's counts,
    matrix and sample are the same as with every decision added.
    """
    desired = {"seg": "SMB", "tier": "Tier 1", "fit": 80, "stamp": NOW}
    planner = RecordPlanner(
        "hubspot", Policy(volatile=frozenset({"stamp"})), Hysteresis(), NOW, FIELDS
    )
    evaluated = _Evaluated(desired)
    steady = {"seg": "SMB", "tier": "Tier 1", "fit": "80", "stamp": "x", "reason": None}
    last = {"seg": "SMB", "tier": "Tier 1", "fit": 80, "reason": None}
    assert planner.decide_quiet("1", evaluated, steady, last, False, None) is None
    held = Pending({"tier": Candidate("Tier 2", 1, NOW)})
    with_pending = planner.decide_quiet("1", evaluated, steady, last, False, held)
    assert with_pending is not None and with_pending.pending_changed  # the store must clear it
    moved = {**steady, "tier": "Tier 2"}
    changed = planner.decide_quiet("1", evaluated, moved, None, False, None)
    assert changed is not None and changed.status == "changed"
    kept = planner.decide_quiet("1", evaluated, moved, last, False, None)  # a person's edit
    assert kept is not None and kept.status == "unchanged" and kept.overrides

    decisions = [Decision("2", "unchanged"), changed, kept, Decision("3", "unchanged")]
    decisions.append(with_pending)
    for keep in (None, 0, 1):
        every, quiet = PlanBuilder(keep=keep), PlanBuilder(keep=keep)
        for decision in decisions:
            every.add(decision)
            if (
                decision.status == "unchanged"
                and _fields(decision)[2:] == _fields(Decision("x", "unchanged"))[2:]
            ):
                quiet.add_unchanged()
            else:
                quiet.add(decision)
        assert quiet.build() == every.build()
        assert quiet.summary().counts.read == 5 and quiet.summary().counts.unchanged == 4
