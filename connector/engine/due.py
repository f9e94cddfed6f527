"""When does a record's assignment change with no edit? The next boundary a clock crosses.

Only ``within_days`` and ``older_than_days`` depend on the run time: every other
test compares a record's value with a constant. On a known value each such
test flips at most twice as time goes on, at instants computed here as the
exact inverse of :func:`connector.engine.compiler.thresholds`:

- ``within_days = N`` holds from the value itself (a future value has not
  happened "within" anything yet) until N days after it;
- ``older_than_days = N`` holds from just after N days after the value on;
- for a ``datetime`` attribute ``v`` that means the instant ``v`` and the
  first instant after ``v + N days`` (one microsecond after: the test is
  ``v >= now - N days``, which still holds at ``v + N days`` itself);
- for a ``date`` attribute ``v`` (calendar days in the mapping's time zone)
  the start of day ``v`` and the start of day ``v + N + 1`` there.

Between two consecutive flips the assignment is constant, so the earliest
instant at which it changes is the first flip (in time order) at which
re-evaluating gives a different assignment; a flip hidden by the rest of its
rule (an ``all`` whose other test fails, a segment an earlier rule already
took, a score capped anyway) is skipped. That instant is the record's
``due_at``: the sync re-plans the record once it has passed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from connector.engine.assignment import Assignment
from connector.engine.coerce import Coercer, reader
from connector.engine.compiler import nested_get, utc_now
from connector.engine.rollups import rollup_key
from connector.mapping.models import CRMS, AllOf, AnyOf, Condition, Leaf, MappingDef, NotOf

#: The operators whose truth depends on the run time.
TIME_OPS = frozenset({"within_days", "older_than_days"})

#: ``evaluate_at(fields, crm, thresholds, parent)``: the compiled evaluator at given thresholds.
EvaluateAt = Callable[[Mapping[str, Any], str, Any, Assignment | None], Assignment]
#: The thresholds of an instant (see :func:`connector.engine.compiler.thresholds`).
Cuts = Callable[[datetime], Any]
#: Flip instants and thresholds remembered per engine; beyond, computed each time.
CACHE_LIMIT = 50_000


def day_start(day: date, zone: tzinfo) -> datetime:
    """The first instant (UTC) of calendar day ``day`` in ``zone``.

    A midnight that a daylight-saving gap skips maps, with ``fold=0``, to the
    transition itself: the day's first real instant.
    """
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def flip_instants(
    attr_type: str, days: int, value: date | datetime, zone: tzinfo = UTC
) -> tuple[datetime, ...]:
    """The instants at which a ``within_days`` / ``older_than_days`` test on ``value`` flips.

    Args:
        attr_type: ``"date"`` or ``"datetime"``.
        days: the test's number of days.
        value: the record's (coerced, non-missing) value.
        zone: the mapping's time zone (whose calendar days ``date`` values count).

    Returns:
        Aware UTC datetimes: when the value stops lying in the future, and when
        it becomes more than ``days`` days old; those beyond the calendar are
        left out.

    """
    out: list[datetime] = []
    if attr_type == "date" or not isinstance(value, datetime):
        day = value.date() if isinstance(value, datetime) else value
        for offset in (0, days + 1):
            with contextlib.suppress(OverflowError):
                out.append(day_start(day + timedelta(days=offset), zone))
        return tuple(out)
    moment = utc_now(value)
    out.append(moment)
    with contextlib.suppress(OverflowError):
        out.append(moment + timedelta(days=days, microseconds=1))
    return tuple(out)


def leaves(mapping: MappingDef) -> Iterator[Leaf]:
    """Every test of the definition (segments, scores, tiers, classifications, personas)."""

    def walk(cond: Condition | None) -> Iterator[Leaf]:
        if cond is None:
            return
        if isinstance(cond, Leaf):
            yield cond
        elif isinstance(cond, AllOf | AnyOf):
            for item in cond.items:
                yield from walk(item)
        elif isinstance(cond, NotOf):
            yield from walk(cond.item)

    for rules in (mapping.segments, *mapping.tier_rule_sets(), mapping.personas):
        for rule in rules:
            yield from walk(rule.when)
    for score in mapping.scores.values():
        for score_rule in score.rules:
            yield from walk(score_rule.when)


def time_tests(mapping: MappingDef) -> dict[str, tuple[int, ...]]:
    """Attribute → the day counts of every time test on it (segments, scores, tiers, personas)."""
    found: dict[str, set[int]] = {}
    for leaf in leaves(mapping):
        if leaf.kind == "attr" and leaf.op in TIME_OPS:
            found.setdefault(leaf.subject, set()).add(int(leaf.value))
    return {name: tuple(sorted(days)) for name, days in found.items()}


def probe_attributes(mapping: MappingDef) -> dict[str, tuple[str, ...]]:
    """Per CRM, the time-tested attributes whose tests can flip there, in :func:`time_tests` order.

    An attribute with no source in a CRM and no ``blank`` value is always
    blank there: no test on it can flip, so it is left out.
    """
    tests = time_tests(mapping)
    out: dict[str, tuple[str, ...]] = {}
    for crm in CRMS:
        names = []
        for name in tests:
            attr = mapping.attributes[name]
            if attr.rollup is None and attr.sources.get(crm) is None and attr.blank is None:
                continue
            names.append(name)
        out[crm] = tuple(names)
    return out


@dataclass(frozen=True, slots=True)
class _Probe:
    """One time-tested attribute of one CRM: where to read it and its day counts."""

    source: str
    coerce: Callable[[Any], Any]
    attr_type: str
    days: tuple[int, ...]


class DueFinder:
    """Computes ``due_at`` for records of one compiled mapping (pure, thread-safe)."""

    def __init__(
        self,
        mapping: MappingDef,
        coercers: Mapping[str, Coercer],
        evaluate_at: EvaluateAt,
        cuts: Cuts,
    ) -> None:
        self._evaluate_at = evaluate_at
        self._cuts = cuts
        self._zone = mapping.zone
        # Calendar days repeat across records (and with them their flips and the
        # thresholds at those instants): computed once each.
        self._day_flips: dict[tuple[int, date], tuple[datetime, ...]] = {}
        self._cut_cache: dict[datetime, Any] = {}
        # The run's `now` and its UTC form, replaced as one tuple (thread-safe).
        self._now: tuple[datetime | None, datetime] = (None, datetime.min.replace(tzinfo=UTC))
        tests = time_tests(mapping)
        self._probes: dict[str, tuple[_Probe, ...]] = {}
        # Per CRM, (attribute type, day counts) of each probe, in probe order: what
        # due_after reads beside the values the evaluator hands it.
        self._kinds: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}
        for crm, names in probe_attributes(mapping).items():
            probes = []
            for name in names:
                attr = mapping.attributes[name]
                source = rollup_key(name) if attr.rollup is not None else attr.sources.get(crm)
                probes.append(_Probe(source or "", reader(coercers[name]), attr.type, tests[name]))
            self._probes[crm] = tuple(probes)
            self._kinds[crm] = tuple((p.attr_type, p.days) for p in probes)
        # The run's `now`, its UTC form and, per calendar-day value, the sorted
        # flips after it: replaced as one tuple when `now` changes (thread-safe).
        self._future: tuple[datetime | None, datetime, dict[Any, tuple[datetime, ...]]] = (
            None,
            datetime.min.replace(tzinfo=UTC),
            {},
        )

    @property
    def timeless(self) -> bool:
        """True when no test depends on the run time: no record ever comes due."""
        return not any(self._probes.values())

    def due_at(
        self,
        fields: Mapping[str, Any],
        crm: str,
        now: datetime,
        parent: Assignment | None,
        assignment: Assignment,
    ) -> datetime | None:
        """The earliest instant after ``now`` at which the record's assignment changes, if any."""
        cut_cache = self._cut_cache
        for moment in sorted(self.flips(fields, crm, now)):
            cuts = cut_cache.get(moment)
            if cuts is None:
                cuts = self._cuts(moment)
                if len(cut_cache) < CACHE_LIMIT:
                    cut_cache[moment] = cuts
            if self._evaluate_at(fields, crm, cuts, parent) != assignment:
                return moment
        return None

    def due_after(
        self,
        values: tuple[Any, ...],
        fields: Mapping[str, Any],
        crm: str,
        now: datetime,
        parent: Assignment | None,
        assignment: Assignment,
    ) -> datetime | None:
        """:meth:`due_at`, given the probes' values as the evaluator read them.

        ``values`` holds, in :func:`probe_attributes` order for ``crm``, each
        time-tested attribute's coerced value (what the generated evaluator
        computed for ``assignment``), so nothing is read or parsed twice. A
        calendar day's flips after ``now`` are computed once per run and day.
        """
        state = self._future
        if state[0] is not now:
            state = (now, utc_now(now), {})
            self._future = state
        now_utc, future = state[1], state[2]
        found: Sequence[datetime] | None = None
        for (attr_type, days), value in zip(self._kinds[crm], values, strict=True):
            if not isinstance(value, date):
                continue  # missing or unreadable: the test fails whatever the time
            if attr_type == "date" and value.__class__ is date:
                key = (days, value)
                moments = future.get(key)
                if moments is None:
                    moments = self._after(attr_type, days, value, now_utc)
                    if len(future) < CACHE_LIMIT:
                        future[key] = moments
            else:
                moments = self._after(attr_type, days, value, now_utc)
            if not moments:
                continue
            found = moments if found is None else sorted({*found, *moments})
        if found is None:
            return None
        cut_cache, evaluate_at = self._cut_cache, self._evaluate_at
        for moment in found:
            cuts = cut_cache.get(moment)
            if cuts is None:
                cuts = self._cuts(moment)
                if len(cut_cache) < CACHE_LIMIT:
                    cut_cache[moment] = cuts
            at = evaluate_at(fields, crm, cuts, parent)
            if at is not assignment and at != assignment:
                return moment
        return None

    def _after(
        self, attr_type: str, days: tuple[int, ...], value: date, now_utc: datetime
    ) -> tuple[datetime, ...]:
        """The instants after ``now_utc`` at which a test of ``days`` on ``value`` flips, sorted."""
        out: set[datetime] = set()
        for n in days:
            for moment in flip_instants(attr_type, n, value, self._zone):
                if moment > now_utc:
                    out.add(moment)
        return tuple(sorted(out))

    def flips(self, fields: Mapping[str, Any], crm: str, now: datetime) -> set[datetime]:
        """The instants after ``now`` at which a time test on the record's values flips."""
        probes = self._probes.get(crm)
        if not probes:
            return set()
        last = self._now
        if last[0] is now:
            now_utc = last[1]
        else:
            now_utc = utc_now(now)
            self._now = (now, now_utc)
        flips: set[datetime] = set()
        for probe in probes:
            if not probe.source:
                raw = None
            elif "." in probe.source:
                raw = nested_get(fields, probe.source)
            else:
                raw = fields.get(probe.source)
            value = probe.coerce(raw)
            if not isinstance(value, date):
                continue  # missing or unreadable: the test fails whatever the time
            day = probe.attr_type == "date" and value.__class__ is date
            for days in probe.days:
                if day:
                    key = (days, value)
                    moments = self._day_flips.get(key)
                    if moments is None:
                        moments = flip_instants("date", days, value, self._zone)
                        if len(self._day_flips) < CACHE_LIMIT:
                            self._day_flips[key] = moments
                else:
                    moments = flip_instants(probe.attr_type, days, value, self._zone)
                for moment in moments:
                    if moment > now_utc:
                        flips.add(moment)
        return flips
