"""The pure outcome analysis: Wilson intervals, attribution in time, flags, lift, AUC."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from connector.analysis.outcomes import (
    MIN_CLOSED,
    UNKNOWN,
    Account,
    auc,
    outcomes,
    period_of,
    rule_lift,
    wilson,
)
from connector.state import DealRecord

T0 = datetime(2026, 1, 10, tzinfo=UTC)


def _deal(
    i: int,
    account: str,
    *,
    won: bool | None,
    amount: float | None = 100.0,
    created: datetime = T0,
    days: int = 30,
) -> DealRecord:
    closed = won is not None
    return DealRecord(
        id=f"d{i}",
        account_id=account,
        pipeline="default",
        stage="x",
        is_closed=closed,
        is_won=bool(won),
        amount=amount,
        created_at=created,
        closed_at=created + timedelta(days=days) if closed else None,
        lost_reason=None,
        stamp=created,
    )


def test_wilson_matches_the_textbook_values() -> None:
    low, high = wilson(8, 10) or (0, 0)
    # Wilson 95 % for 8/10: 0.4902 … 0.9433 (Brown, Cai & DasGupta 2001, table values).
    assert math.isclose(low, 0.4902, abs_tol=1e-4) and math.isclose(high, 0.9433, abs_tol=1e-4)
    assert wilson(0, 0) is None
    zero = wilson(0, 25)
    assert zero is not None and zero[0] == 0.0 and 0.13 < zero[1] < 0.14


def test_auc_counts_ties_half_and_needs_both_classes() -> None:
    assert auc([(1, False), (2, True)]) == 1.0
    assert auc([(2, False), (1, True)]) == 0.0
    assert auc([(1, False), (1, True)]) == 0.5
    assert auc([(1, True), (2, True)]) is None
    rng = random.Random(3)
    pairs = [(rng.random(), rng.random() < 0.5) for _ in range(300)]
    brute = [
        1.0 if a > b else 0.5 if a == b else 0.0
        for a, wa in pairs
        if wa
        for b, wb in pairs
        if not wb
    ]
    assert math.isclose(auc(pairs) or 0, sum(brute) / len(brute))


def test_counts_rates_amounts_and_days_per_group() -> None:
    accounts = {"a": Account({"tier": "Tier 1"}), "b": Account({"tier": "Tier 2"})}
    deals = [
        _deal(1, "a", won=True, amount=300, days=10),
        _deal(2, "a", won=True, amount=100, days=20),
        _deal(3, "a", won=False, days=40),
        _deal(4, "a", won=None, amount=50),
        _deal(5, "b", won=False, amount=None),
        _deal(6, "zz", won=True),
    ]
    report = outcomes(deals, accounts, "tier", order=("Tier 1", "Tier 2"))
    one, two, unknown = report.groups
    assert (one.value, one.won, one.lost, one.open) == ("Tier 1", 2, 1, 1)
    assert one.win_rate == pytest.approx(2 / 3) and one.interval == wilson(2, 3)
    assert (one.avg_won_amount, one.median_won_amount) == (200, 200)
    assert one.median_days_to_close == 20 and one.pipeline_created == 550
    assert (two.won, two.lost, two.win_rate, two.avg_won_amount) == (0, 1, 0.0, None)
    assert unknown.value == UNKNOWN and report.unattributed == 1
    kinds = {(f.kind, f.value) for f in report.flags}
    assert ("too_small", "Tier 1") in kinds and ("no_wins", "Tier 2") in kinds


def test_a_deal_counts_against_the_value_its_account_held_when_it_was_created() -> None:
    moved = T0 + timedelta(days=100)
    account = Account({"segment": "SMB"}, {"segment": [(moved, "Enterprise")]})
    deals = [
        _deal(1, "a", won=True, created=T0),
        _deal(2, "a", won=False, created=moved + timedelta(days=1)),
    ]
    # Before the ledger's first entry the current value stands in (and says so).
    assert account.value_at("segment", T0) == ("SMB", "current")
    assert account.value_at("segment", moved) == ("Enterprise", "ledger")
    report = outcomes(deals, {"a": account}, "segment", period="month")
    by = {g.value: g for g in report.groups}
    assert by["SMB"].basis == {"ledger": 0, "current": 1}
    assert by["Enterprise"].basis == {"ledger": 1, "current": 0}
    assert [(p.value, p.period) for p in report.periods] == [
        ("SMB", "2026-01"),
        ("Enterprise", "2026-04"),
    ]


def test_a_lower_tier_winning_more_beyond_the_intervals_is_flagged() -> None:
    accounts = {"hi": Account({"tier": "Tier 1"}), "lo": Account({"tier": "Tier 3"})}
    deals = [_deal(i, "hi", won=i % 5 == 0) for i in range(100)]
    deals += [_deal(1000 + i, "lo", won=i % 5 != 0) for i in range(100)]
    report = outcomes(deals, accounts, "tier", order=("Tier 1", "Tier 2", "Tier 3"))
    inverted = [f for f in report.flags if f.kind == "inverted"]
    assert [(f.value, f.other) for f in inverted] == [("Tier 3", "Tier 1")]
    # Overlapping intervals are not flagged.
    close = [_deal(i, "hi", won=i % 2 == 0) for i in range(MIN_CLOSED)]
    close += [_deal(500 + i, "lo", won=i % 3 != 0) for i in range(MIN_CLOSED)]
    report = outcomes(close, accounts, "tier", order=("Tier 1", "Tier 3"))
    assert not [f for f in report.flags if f.kind == "inverted"]


def test_periods_and_rule_lift() -> None:
    assert period_of(datetime(2026, 11, 3, tzinfo=UTC), "quarter") == "2026-Q4"
    assert period_of(datetime(2026, 11, 3, tzinfo=UTC), "year") == "2026"
    rules = {"a": {"big": True, "blue": True}, "b": {"big": False, "blue": True}}
    deals = [_deal(i, "a", won=i < 6) for i in range(10)]
    deals += [_deal(100 + i, "b", won=i < 2) for i in range(10)]
    deals += [_deal(200, "a", won=None), _deal(201, "nobody", won=True)]
    rows = {r.rule: r for r in rule_lift(deals, rules)}
    big, blue = rows["big"], rows["blue"]
    assert (big.holds_won, big.holds_closed, big.not_won, big.not_closed) == (6, 10, 2, 10)
    assert big.lift == pytest.approx(3.0)
    assert (blue.holds_closed, blue.not_closed, blue.lift) == (20, 0, None)
    assert not blue.separated


def test_a_report_reads_its_deals_once_as_they_come() -> None:
    """A one-shot stream (what `segsync outcomes` passes from the store) is enough."""
    rng = random.Random(3)
    listed = [
        _deal(
            i,
            f"a{i % 7}",
            won=rng.choice([True, False, None]),
            amount=float(rng.randrange(1, 500)),
            created=T0 + timedelta(days=rng.randrange(200)),
            days=rng.randrange(1, 90),
        )
        for i in range(400)
    ]
    accounts = {f"a{i}": Account({"tier": f"Tier {i % 3 + 1}"}) for i in range(6)}
    rules = {f"a{i}": {"big": i % 2 == 0, "near": i < 3} for i in range(6)}

    class Once:
        def __init__(self) -> None:
            self.used = False

        def __iter__(self):  # type: ignore[no-untyped-def]
            assert not self.used, "read twice"
            self.used = True
            return iter(listed)

    report = outcomes(Once(), accounts, "tier", order=("Tier 1", "Tier 2", "Tier 3"))
    groups = {g.value: g for g in report.groups}
    for tier in ("Tier 1", "Tier 2", "Tier 3"):
        mine = [
            d
            for d in listed
            if d.account_id in accounts and accounts[d.account_id].current["tier"] == tier
        ]
        assert groups[tier].won == sum(d.is_won for d in mine)
        assert groups[tier].lost == sum(d.is_closed and not d.is_won for d in mine)
        won = sorted(d.amount for d in mine if d.is_won and d.amount is not None)
        assert groups[tier].median_won_amount == pytest.approx(
            (won[(len(won) - 1) // 2] + won[len(won) // 2]) / 2
        )
    # a6 is no known account: its deals count under UNKNOWN, once each.
    assert groups[UNKNOWN].deals == sum(d.account_id == "a6" for d in listed)
    assert report.deals == len(listed)
    [big, near] = sorted(rule_lift(Once(), rules), key=lambda r: r.rule)
    closed = [d for d in listed if d.is_closed and d.account_id in rules]
    assert big.holds_closed == sum(rules[d.account_id]["big"] for d in closed)
    assert near.not_won == sum(d.is_won and not rules[d.account_id]["near"] for d in closed)
