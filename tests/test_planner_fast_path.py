"""plan_record's shortcut for records that hold what we want decides as the full rules do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.state import Candidate, Pending
from connector.sync.planner import (
    Decision,
    Hysteresis,
    PlanInput,
    Policy,
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
    st.integers(-(2**60), 2**60),
    st.integers(-(2**60), 2**60).map(str),
)


@settings(max_examples=500, deadline=None)
@given(_scalars, _scalars)
def test_the_quick_comparison_is_same_value(a: Any, b: Any) -> None:
    assert _same(a, b) == same_value(a, b)
    assert _same(b, a) == same_value(a, b)
