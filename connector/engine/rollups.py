"""Rollup attributes: an account attribute computed from its deals (pure).

The caller (the runner, or ``preview`` / ``explain`` / ``diff`` with
``--deals FILE``) groups the deals per account and passes them in with the
run time; :func:`rollup_fields` returns the values under keys the compiled
engine reads like source fields (:func:`rollup_key`). Nothing here reads a
clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Protocol

from connector.mapping.models import MappingDef, RollupDef

#: Prefix of the keys rollup values travel under in a record's fields. No CRM
#: field name can hold a space, so a key never collides with a real field.
ROLLUP_PREFIX = "segsync rollup "


class DealLike(Protocol):
    """What a rollup reads of a deal (``connector.state.DealRecord`` has it all)."""

    @property
    def id(self) -> str:
        """The deal's id."""
        ...

    @property
    def is_closed(self) -> bool:
        """The deal's is closed."""
        ...

    @property
    def is_won(self) -> bool:
        """The deal's is won."""
        ...

    @property
    def amount(self) -> float | None:
        """The deal's amount."""
        ...

    @property
    def created_at(self) -> datetime:
        """The deal's created at."""
        ...

    @property
    def closed_at(self) -> datetime | None:
        """The deal's closed at."""
        ...

    @property
    def pipeline(self) -> str | None:
        """The deal's pipeline."""
        ...


def rollup_key(name: str) -> str:
    """The field key a rollup attribute's value is read from."""
    return ROLLUP_PREFIX + name


def aware(moment: datetime) -> datetime:
    """``moment``, read as UTC when it has no time zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def stage_of(deal: DealLike) -> str:
    """``won``, ``lost`` or ``open``."""
    if not deal.is_closed:
        return "open"
    return "won" if deal.is_won else "lost"


def holds(rollup: RollupDef, deal: DealLike, now: datetime, *, windowed: bool = True) -> bool:
    """Whether ``deal`` counts for ``rollup`` at ``now`` (``windowed=False``: window aside)."""
    stage = stage_of(deal)
    if rollup.stage == "closed":
        if stage == "open":
            return False
    elif rollup.stage != "any" and stage != rollup.stage:
        return False
    if rollup.pipelines is not None and (
        deal.pipeline is None or deal.pipeline.casefold() not in rollup.pipelines
    ):
        return False
    if rollup.types is not None:
        kind = getattr(deal, "type", None)
        if not isinstance(kind, str) or kind.casefold() not in rollup.types:
            return False
    if windowed and rollup.within_days is not None:
        moment = deal.closed_at if rollup.date == "closed" else deal.created_at
        if moment is None:
            return False
        moment = aware(moment)
        if not now - timedelta(days=rollup.within_days) <= moment <= now:
            return False
    return True


def rollup_value(
    rollup: RollupDef, deals: Iterable[DealLike], now: datetime, zone: tzinfo = UTC
) -> tuple[Any, tuple[str, ...]]:
    """The rollup's value over ``deals`` at ``now``, and the ids of the deals it used.

    ``count`` and ``sum`` of nothing are 0; ``max``, ``min``, ``latest`` and
    ``days_since`` of nothing are blank (``None``). A deal without an amount
    counts for ``count`` but not for ``sum`` / ``max`` / ``min``; a deal
    without the date ``latest`` / ``days_since`` reads is skipped by them.
    """
    now = aware(now)
    used = [d for d in deals if holds(rollup, d, now)]
    measure = rollup.measure
    if measure == "count":
        return len(used), tuple(d.id for d in used)
    if measure in ("sum", "max", "min"):
        priced = [d for d in used if d.amount is not None]
        ids = tuple(d.id for d in priced)
        amounts = [float(d.amount) for d in priced if d.amount is not None]
        if measure == "sum":
            return sum(amounts), ids
        if not amounts:
            return None, ids
        return (max(amounts) if measure == "max" else min(amounts)), ids
    dated = [
        (aware(m), d.id)
        for d in used
        if (m := d.closed_at if rollup.date == "closed" else d.created_at) is not None
    ]
    if not dated:
        return None, ()
    moment, deal_id = max(dated)
    day: date = moment.astimezone(zone).date()
    if measure == "latest":
        return day, (deal_id,)
    return (now.astimezone(zone).date() - day).days, (deal_id,)


def rollup_fields(mapping: MappingDef, deals: Iterable[DealLike], now: datetime) -> dict[str, Any]:
    """Every rollup attribute's value for one account's deals, keyed by :func:`rollup_key`."""
    rollups = mapping.rollups
    if not rollups:
        return {}
    listed = list(deals)
    return {
        rollup_key(name): rollup_value(r, listed, now, mapping.zone)[0]
        for name, r in rollups.items()
    }


def rollup_inputs(
    mapping: MappingDef, deals: Iterable[DealLike], now: datetime
) -> Mapping[str, tuple[str, ...]]:
    """Rollup attribute → the ids of the deals its value was computed from (for ``explain``)."""
    listed = list(deals)
    return {
        name: rollup_value(r, listed, now, mapping.zone)[1] for name, r in mapping.rollups.items()
    }
