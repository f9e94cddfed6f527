"""When an account's rollups change its assignment with no edit (pure).

A rollup's value moves with the run time in two ways:

- a windowed rollup (``within_days = N``) gains a deal at the instant the
  deal's date enters the window (the date itself, for a date still ahead)
  and loses it once the date is more than N days old (one microsecond after
  date + N days: the window is ``now - N days <= date <= now``);
- a ``days_since`` rollup grows by one at every start of day in the
  mapping's time zone; a test on it flips only where the count crosses one
  of the test's constants (``gte = 180`` at day 180, ``eq = 7`` at days 7
  and 8), so those days are the only ones looked at.

A ``latest`` rollup is a date: its own ``within_days`` / ``older_than_days``
tests are the :class:`~connector.engine.due.DueFinder`'s, like any date's.

Between these instants and the DueFinder's, the assignment is constant. The
account is due at the first of them at which re-evaluating (rollups
recomputed as of then) gives another assignment, or earlier: at the first
at which a rollup's value changes otherwise than by the day count going up,
since the tests on it then read a new value. Re-planning an account early is
harmless (it computes the next due date); late would leave it stale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.engine.due import day_start, leaves
from connector.engine.rollups import DealLike, aware, holds, rollup_value
from connector.mapping.models import MappingDef, RollupDef


def day_constants(mapping: MappingDef) -> dict[str, tuple[float, ...]]:
    """``days_since`` rollup → the numbers the definition's tests compare it with."""
    wanted = {n for n, r in mapping.rollups.items() if r.measure == "days_since"}
    found: dict[str, set[float]] = {}
    for leaf in leaves(mapping):
        if leaf.kind != "attr" or leaf.subject not in wanted:
            continue
        values = leaf.value if isinstance(leaf.value, tuple | frozenset | list) else (leaf.value,)
        for value in values:
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.setdefault(leaf.subject, set()).add(float(value))
    return {name: tuple(sorted(values)) for name, values in found.items()}


def _latest(rollup: RollupDef) -> RollupDef:
    """A ``days_since`` rollup's date: the ``latest`` rollup with the same filters."""
    return replace(rollup, measure="latest") if rollup.measure == "days_since" else rollup


def rollup_state(mapping: MappingDef, deals: Iterable[DealLike], now: datetime) -> tuple[Any, ...]:
    """The rollup values at ``now``, each ``days_since`` as the date it counts from.

    Two instants with equal states differ at most in their day counts.
    """
    listed = list(deals)
    return tuple(
        rollup_value(_latest(r), listed, now, mapping.zone)[0] for r in mapping.rollups.values()
    )


def rollup_flips(
    mapping: MappingDef,
    deals: Iterable[DealLike],
    now: datetime,
    constants: dict[str, tuple[float, ...]],
) -> set[datetime]:
    """The instants after ``now`` at which a rollup's value may change (see the module)."""
    now = aware(now)
    listed = list(deals)
    out: set[datetime] = set()
    for name, rollup in mapping.rollups.items():
        if rollup.within_days is not None:
            span = timedelta(days=rollup.within_days, microseconds=1)
            for deal in listed:
                if not holds(rollup, deal, now, windowed=False):
                    continue
                moment = deal.closed_at if rollup.date == "closed" else deal.created_at
                if moment is None:
                    continue
                moment = aware(moment)
                out.update(t for t in (moment, moment + span) if t > now)
        days = constants.get(name)
        if rollup.measure == "days_since" and days:
            since = rollup_value(_latest(rollup), listed, now, mapping.zone)[0]
            if since is None:
                continue
            for constant in days:
                low = math.floor(constant)
                for offset in {low, low + 1, math.ceil(constant)}:
                    try:
                        moment = day_start(since + timedelta(days=offset), mapping.zone)
                    except OverflowError:
                        continue
                    if moment > now:
                        out.add(moment.astimezone(UTC))
    return out
