"""Backtest a definition on already-closed deals (``segsync diff --outcomes``); pure.

For each won or lost deal, the caller evaluates the deal's account under the
current and the proposed definition and adds the pair here. Per definition:
the win rate of each tier (won ÷ (won + lost), with a 95 % Wilson interval),
how many won deals land in the top tier, and how well the tiering and each
score separate won from lost deals (ROC AUC: the chance that a random won
deal ranks above a random lost one, ties counting half; 0.5 is no better
than chance). The interval and the AUC are :mod:`connector.analysis.outcomes`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.analysis.outcomes import auc, wilson

__all__ = ["Backtest", "SideReport", "TierRow", "auc", "wilson"]


@dataclass(frozen=True, slots=True)
class TierRow:
    """One tier's closed deals under one definition."""

    tier: str
    won: int
    lost: int

    @property
    def win_rate(self) -> float | None:
        """Won ÷ (won + lost), ``None`` with no closed deals."""
        closed = self.won + self.lost
        return self.won / closed if closed else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        interval = wilson(self.won, self.won + self.lost)
        return {
            "tier": self.tier,
            "won": self.won,
            "lost": self.lost,
            "win_rate": self.win_rate,
            "interval": list(interval) if interval is not None else None,
        }


@dataclass(frozen=True, slots=True)
class SideReport:
    """What one definition would have made of the closed deals."""

    version: str
    tiers: tuple[TierRow, ...]
    top_tier: str
    top_tier_won: int
    auc_tier: float | None
    auc_scores: Mapping[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "version": self.version,
            "tiers": [t.to_dict() for t in self.tiers],
            "top_tier": self.top_tier,
            "top_tier_won": self.top_tier_won,
            "auc_tier": self.auc_tier,
            "auc_scores": dict(self.auc_scores),
        }


@dataclass
class _Side:
    version: str
    tier_names: Sequence[str]
    won: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    ranked: list[tuple[float, bool]] = field(default_factory=list)
    scores: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)

    def add(self, won: bool, tier: str, scores: Mapping[str, float | int]) -> None:
        (self.won if won else self.lost)[tier] += 1
        # The first declared tier ranks highest; an undeclared tier ranks lowest.
        rank = len(self.tier_names) - self.tier_names.index(tier) if tier in self.tier_names else 0
        self.ranked.append((float(rank), won))
        for name, value in scores.items():
            self.scores.setdefault(name, []).append((float(value), won))

    def report(self) -> SideReport:
        names = list(self.tier_names)
        names += sorted((set(self.won) | set(self.lost)) - set(names))
        top = self.tier_names[0] if self.tier_names else ""
        return SideReport(
            version=self.version,
            tiers=tuple(TierRow(n, self.won[n], self.lost[n]) for n in names),
            top_tier=top,
            top_tier_won=self.won[top],
            auc_tier=auc(self.ranked),
            auc_scores={name: auc(pairs) for name, pairs in self.scores.items()},
        )


@dataclass
class Backtest:
    """Accumulates closed deals evaluated under two definitions (``before`` and ``after``)."""

    before_version: str
    after_version: str
    before_tiers: Sequence[str]
    after_tiers: Sequence[str]
    skipped: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._before = _Side(self.before_version, self.before_tiers)
        self._after = _Side(self.after_version, self.after_tiers)
        self.won = 0
        self.lost = 0

    def add(
        self,
        won: bool,
        before: tuple[str, Mapping[str, float | int]],
        after: tuple[str, Mapping[str, float | int]],
    ) -> None:
        """One closed deal: whether it was won, and (tier, scores) of its account under each."""
        self.won += won
        self.lost += not won
        self._before.add(won, *before)
        self._after.add(won, *after)

    def skip(self, why: str) -> None:
        """A deal left out: ``open`` (not closed yet) or ``no_account`` (not in the export)."""
        self.skipped[why] += 1

    def to_dict(self) -> dict[str, Any]:
        """The backtest as one JSON-ready document."""
        return {
            "won": self.won,
            "lost": self.lost,
            "skipped": dict(sorted(self.skipped.items())),
            "before": self._before.report().to_dict(),
            "after": self._after.report().to_dict(),
        }

    def reports(self) -> tuple[SideReport, SideReport]:
        """(before, after)."""
        return self._before.report(), self._after.report()
