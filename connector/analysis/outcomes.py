"""Outcomes: how the segments and tiers perform on won and lost deals. Pure: values in, values out.

The unit is the deal. Each deal is attributed to a group (a segment, a tier,
a persona, or any classification's value) through its account: the value the
account held **when the deal was created** where the ledger knows it (the
store's transitions), else the account's current value; every group says how
many of its deals came each way (``basis``).

Per group (and per period of deal creation: month, quarter or year):

- ``won`` / ``lost`` / ``open`` deals; **win rate** = won ÷ (won + lost), with
  its 95 % Wilson score interval (:func:`wilson`), None with no closed deal;
- average and median amount of won deals, median days from creation to close
  of closed deals, and the pipeline created (the sum of every deal's amount).

Flags (:class:`Flag`) name what the practitioner guides warn about:

- ``inverted``: a lower tier (later in the definition's order) wins more than
  a higher one *beyond the intervals* (its interval lies wholly above);
- ``too_small``: fewer than :data:`MIN_CLOSED` closed deals, so the interval
  is too wide to tell (at 20 closed deals a 50 % win rate reads 30-70 %);
- ``no_wins``: closed deals, none won.

The **rule lift** table (:func:`rule_lift`) compares, for each scoring rule
and segment condition, the win rate of the deals of accounts where it holds
with that of accounts where it does not (which rules hold comes from the
compiled engine's explanation: :func:`holdings`).

:func:`auc` (ROC AUC of a score against won / lost) is here for backtests.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Literal

from connector.engine import Explanation
from connector.state import DealRecord

Period = Literal["month", "quarter", "year"]
Basis = Literal["ledger", "current"]

Z95 = 1.959963984540054
"""The normal quantile of a two-sided 95 % interval."""

MIN_CLOSED = 20
"""Closed deals below which a group is flagged too small to measure."""

UNKNOWN = "(no value)"
"""The group of deals whose account has no value for the dimension (or is not known)."""


def wilson(won: int, closed: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``won`` successes in ``closed`` trials (None when 0)."""
    if closed <= 0:
        return None
    p = won / closed
    z2 = z * z
    denominator = 1 + z2 / closed
    centre = (p + z2 / (2 * closed)) / denominator
    half = z * math.sqrt(p * (1 - p) / closed + z2 / (4 * closed * closed)) / denominator
    # At 0 or all wins the bound is exactly 0 or 1 (rounding would leave 1e-17).
    low = 0.0 if won == 0 else max(0.0, centre - half)
    high = 1.0 if won == closed else min(1.0, centre + half)
    return low, high


def auc(scored: Iterable[tuple[float, bool]]) -> float | None:
    """ROC AUC of a score telling won (True) from lost: the chance a won deal outscores a lost one.

    Ties count half (the Mann-Whitney statistic with mid-ranks). None when
    either class is empty.
    """
    pairs = sorted(scored, key=lambda item: item[0])
    positives = sum(1 for _, won in pairs if won)
    negatives = len(pairs) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = 0.0
    index = 0
    while index < len(pairs):
        end = index
        while end + 1 < len(pairs) and pairs[end + 1][0] == pairs[index][0]:
            end += 1
        mid_rank = (index + end) / 2 + 1
        rank_sum += mid_rank * sum(1 for _, won in pairs[index : end + 1] if won)
        index = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def period_of(moment: datetime, period: Period) -> str:
    """``2026-Q3``, ``2026-07`` or ``2026``."""
    if period == "year":
        return f"{moment.year}"
    if period == "month":
        return f"{moment.year}-{moment.month:02d}"
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


@dataclass(frozen=True, slots=True)
class Account:
    """What the analysis knows of one account.

    Attributes:
        current: dimension (``segment``, ``tier``, …) → the value it holds now.
        history: dimension → ``(when, value)`` moves from the ledger, oldest
            first: the value it took at that instant.

    """

    current: Mapping[str, str | None]
    history: Mapping[str, Sequence[tuple[datetime, str | None]]] = field(default_factory=dict)

    def value_at(self, dimension: str, moment: datetime) -> tuple[str | None, Basis]:
        """The value held at ``moment`` and where it comes from (ledger, else current)."""
        moves = self.history.get(dimension)
        if moves:
            held: tuple[datetime, str | None] | None = None
            for entry in moves:
                if entry[0] <= moment:
                    held = entry
                else:
                    break
            if held is not None:
                return held[1], "ledger"
        return self.current.get(dimension), "current"


@dataclass
class _Tally:
    won: int = 0
    lost: int = 0
    open: int = 0
    won_amounts: array[float] = field(default_factory=lambda: array("d"))
    days: array[float] = field(default_factory=lambda: array("d"))
    pipeline: float = 0.0
    ledger: int = 0
    current: int = 0

    def add(self, deal: DealRecord, basis: Basis) -> None:
        if basis == "ledger":
            self.ledger += 1
        else:
            self.current += 1
        if deal.amount is not None:
            self.pipeline += deal.amount
        if not deal.is_closed:
            self.open += 1
            return
        if deal.is_won:
            self.won += 1
            if deal.amount is not None:
                self.won_amounts.append(deal.amount)
        else:
            self.lost += 1
        if deal.closed_at is not None:
            self.days.append(max(0.0, (deal.closed_at - deal.created_at).total_seconds() / 86400))


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One group's outcomes (one period's, or all periods together)."""

    value: str
    period: str | None
    won: int
    lost: int
    open: int
    win_rate: float | None
    interval: tuple[float, float] | None
    avg_won_amount: float | None
    median_won_amount: float | None
    median_days_to_close: float | None
    pipeline_created: float
    basis: Mapping[str, int]

    @property
    def closed(self) -> int:
        """Won plus lost."""
        return self.won + self.lost

    @property
    def deals(self) -> int:
        """Every deal of the group."""
        return self.won + self.lost + self.open

    @property
    def measurable(self) -> bool:
        """Enough closed deals for the interval to mean something (:data:`MIN_CLOSED`)."""
        return self.closed >= MIN_CLOSED


def _stats(value: str, period: str | None, t: _Tally) -> GroupStats:
    closed = t.won + t.lost
    return GroupStats(
        value=value,
        period=period,
        won=t.won,
        lost=t.lost,
        open=t.open,
        win_rate=t.won / closed if closed else None,
        interval=wilson(t.won, closed),
        avg_won_amount=sum(t.won_amounts) / len(t.won_amounts) if t.won_amounts else None,
        median_won_amount=median(t.won_amounts) if t.won_amounts else None,
        median_days_to_close=median(t.days) if t.days else None,
        pipeline_created=t.pipeline,
        basis={"ledger": t.ledger, "current": t.current},
    )


@dataclass(frozen=True, slots=True)
class Flag:
    """Something the report warns about: ``inverted``, ``too_small`` or ``no_wins``."""

    kind: str
    value: str
    message: str
    other: str | None = None


@dataclass(frozen=True, slots=True)
class OutcomeReport:
    """Outcomes by one dimension: overall per group, per period, and the flags."""

    by: str
    period: Period
    groups: tuple[GroupStats, ...]
    periods: tuple[GroupStats, ...]
    flags: tuple[Flag, ...]
    deals: int
    unattributed: int
    """Deals whose account the analysis did not know (counted under :data:`UNKNOWN`)."""


class OutcomeTally:
    """:func:`outcomes` one deal at a time: memory grows with the groups, not the deals.

    What a group keeps per closed deal is a number in a compact array (its
    won amount and days to close, for the medians), not the deal.
    """

    def __init__(
        self,
        accounts: Mapping[str, Account],
        by: str,
        *,
        period: Period = "quarter",
        order: Sequence[str] = (),
        ranked: bool = True,
    ) -> None:
        self._accounts = accounts
        self._by, self._period, self._order, self._ranked = by, period, order, ranked
        self._overall: dict[str, _Tally] = {}
        self._by_period: dict[tuple[str, str], _Tally] = {}
        self._count = self._unattributed = 0

    def add(self, deal: DealRecord) -> None:
        """Count one deal."""
        self._count += 1
        account = self._accounts.get(deal.account_id)
        basis: Basis = "current"
        if account is None:
            self._unattributed += 1
            value = None
        else:
            value, basis = account.value_at(self._by, deal.created_at)
        key = value if value else UNKNOWN
        tally = self._overall.get(key)
        if tally is None:
            tally = self._overall[key] = _Tally()
        tally.add(deal, basis)
        slot = (key, period_of(deal.created_at, self._period))
        per = self._by_period.get(slot)
        if per is None:
            per = self._by_period[slot] = _Tally()
        per.add(deal, basis)

    def report(self) -> OutcomeReport:
        """The report of the deals added so far."""
        rank = {v: i for i, v in enumerate(self._order)}

        def place(value: str) -> tuple[int, str]:
            return (rank.get(value, len(rank) + (1 if value == UNKNOWN else 0)), value)

        overall, by_period = self._overall, self._by_period
        groups = tuple(_stats(v, None, overall[v]) for v in sorted(overall, key=place))
        periods = tuple(
            _stats(v, p, by_period[v, p])
            for v, p in sorted(by_period, key=lambda k: (k[1], place(k[0])))
        )
        return OutcomeReport(
            by=self._by,
            period=self._period,
            groups=groups,
            periods=periods,
            flags=tuple(flags(groups, self._order if self._ranked else ())),
            deals=self._count,
            unattributed=self._unattributed,
        )


def outcomes(
    deals: Iterable[DealRecord],
    accounts: Mapping[str, Account],
    by: str,
    *,
    period: Period = "quarter",
    order: Sequence[str] = (),
    ranked: bool = True,
) -> OutcomeReport:
    """Group the deals by the value their account held for ``by`` when each was created.

    Args:
        deals: the deals (any order; read once, as they come: a stream will do).
        accounts: account id → what is known of it.
        by: the dimension: ``segment``, ``tier``, ``persona`` or a classification name.
        period: how deals are grouped in time, by their creation.
        order: the dimension's values in definition order (tiers: ``Tier 1``
            first), for the order of the groups; other values follow by name.
        ranked: whether ``order`` is a ranking, best first (tiers are; segments
            are not), so a later value winning more is flagged ``inverted``.

    """
    tally = OutcomeTally(accounts, by, period=period, order=order, ranked=ranked)
    for deal in deals:
        tally.add(deal)
    return tally.report()


def flags(groups: Sequence[GroupStats], order: Sequence[str] = ()) -> list[Flag]:
    """The warnings of a set of groups (see the module docstring)."""
    out: list[Flag] = []
    for g in groups:
        if g.value == UNKNOWN:
            continue
        if not g.measurable:
            out.append(
                Flag(
                    "too_small",
                    g.value,
                    f"{g.value}: {g.closed} closed deal(s), fewer than {MIN_CLOSED}: "
                    "too few to measure",
                )
            )
        if g.closed and not g.won:
            out.append(Flag("no_wins", g.value, f"{g.value}: {g.closed} closed deal(s), none won"))
    ranked = {v: i for i, v in enumerate(order)}
    ordered = [
        (g, g.interval)
        for g in sorted(groups, key=lambda g: ranked.get(g.value, len(ranked)))
        if g.value in ranked and g.interval is not None and g.measurable
    ]
    for i, (higher, high) in enumerate(ordered):
        for lower, low in ordered[i + 1 :]:
            if low is not None and high is not None and low[0] > high[1]:
                out.append(
                    Flag(
                        "inverted",
                        lower.value,
                        f"{lower.value} wins more than {higher.value} beyond the 95 % intervals "
                        f"({_pct(lower.win_rate)} vs {_pct(higher.win_rate)})",
                        other=higher.value,
                    )
                )
    return out


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.0%}"


# -- rule lift -------------------------------------------------------------


def holdings(explanation: Explanation) -> dict[str, bool]:
    """Which scoring rules and segment conditions hold for one record.

    Keys: ``"<score>: <rule label>"`` for each score rule, ``"segment <name>"``
    for each segment's condition (the default segment has none).
    """
    out: dict[str, bool] = {}
    for score in explanation.scores:
        for rule in score.rules:
            out[f"{score.name}: {rule.label}"] = rule.hit
    for segment in explanation.segment.rules:
        if segment.test is not None:
            out[f"segment {segment.name}"] = segment.test.result
    return out


@dataclass(frozen=True, slots=True)
class LiftRow:
    """One rule: the win rate of deals where it holds against where it does not."""

    rule: str
    holds_won: int
    holds_closed: int
    holds_rate: float | None
    holds_interval: tuple[float, float] | None
    not_won: int
    not_closed: int
    not_rate: float | None
    not_interval: tuple[float, float] | None
    lift: float | None
    """``holds_rate ÷ not_rate`` (None when either is unknown or the second is 0)."""

    @property
    def separated(self) -> bool:
        """Whether the two intervals do not overlap: the rule makes a measurable difference."""
        a, b = self.holds_interval, self.not_interval
        return a is not None and b is not None and (a[0] > b[1] or b[0] > a[1])


class LiftTally:
    """:func:`rule_lift` one deal at a time (four counters a rule)."""

    def __init__(self, rules: Mapping[str, Mapping[str, bool]]) -> None:
        self._rules = rules
        names: dict[str, None] = {}
        for held in rules.values():
            names.update(dict.fromkeys(held))
        # holds: won, closed; does not: won, closed
        self._tallies = {name: [0, 0, 0, 0] for name in names}

    def add(self, deal: DealRecord) -> None:
        """Count one deal (open ones and those of unknown accounts are ignored)."""
        if not deal.is_closed:
            return
        of_account = self._rules.get(deal.account_id)
        if of_account is None:
            return
        won = 1 if deal.is_won else 0
        tallies = self._tallies
        for name, holds in of_account.items():
            t = tallies[name]
            if holds:
                t[0] += won
                t[1] += 1
            else:
                t[2] += won
                t[3] += 1

    def rows(self) -> list[LiftRow]:
        """One row a rule, over the deals added so far."""
        rows = []
        for name, (hw, hc, nw, nc) in self._tallies.items():
            h_rate = hw / hc if hc else None
            n_rate = nw / nc if nc else None
            lift = h_rate / n_rate if h_rate is not None and n_rate else None
            rows.append(
                LiftRow(name, hw, hc, h_rate, wilson(hw, hc), nw, nc, n_rate, wilson(nw, nc), lift)
            )
        return rows


def rule_lift(
    deals: Iterable[DealRecord], rules: Mapping[str, Mapping[str, bool]]
) -> list[LiftRow]:
    """The lift of every rule over the closed deals of the accounts in ``rules``.

    Args:
        deals: the deals (read once); open ones and those of unknown accounts are ignored.
        rules: account id → rule → whether it holds for the account (now).

    """
    tally = LiftTally(rules)
    for deal in deals:
        tally.add(deal)
    return tally.rows()
