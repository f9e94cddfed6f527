"""The compiled engine: one mapping, ready to evaluate raw CRM records fast."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple

from connector.engine.assignment import Assignment
from connector.engine.compiler import Compiler, nested_get
from connector.engine.due import DueFinder, probe_attributes
from connector.engine.explain import Explanation, explain_record
from connector.engine.rollup_due import day_constants, rollup_flips, rollup_state
from connector.engine.rollups import DealLike, rollup_fields, rollup_inputs
from connector.mapping.models import CRMS, MappingDef
from connector.mapping.values import is_blank, parse_boolean


class LockReading(NamedTuple):
    """A record's lock, as :meth:`Engine.lock_reading` reads it.

    Attributes:
        locked: the record must not be written.
        note: why, when it is not a plain true / false (blank, unreadable).
        unreadable: the field holds something that is not a boolean.

    """

    locked: bool
    note: str = ""
    unreadable: bool = False


#: Assignments with a due date remembered per engine (by assignment and instant).
DATED_LIMIT = 50_000
_UNLOCKED = LockReading(False)
_LOCKED = LockReading(True)
#: What the lock field map gives for a CRM it does not know.
_NO_CRM: Any = object()


class Engine:
    """A mapping compiled for evaluation. Build it with :func:`compile_mapping`.

    Evaluation is pure and deterministic: the same fields, CRM, ``now`` and
    parent always give an equal :class:`Assignment`, and no field value can
    make it raise (an unreadable value counts as blank). Safe to share
    between threads.
    """

    def __init__(self, mapping: MappingDef) -> None:
        self._m = mapping
        self._compiler = Compiler(mapping)
        self._evaluate, self._source = self._compiler.compile(probe_attributes(mapping))
        # The generated function has exactly evaluate()'s signature; binding it
        # on the instance saves a Python call per record on the hot path.
        self.evaluate = self._evaluate  # type: ignore[method-assign]
        self._due = DueFinder(
            mapping, self._compiler.coercers, self._compiler.evaluate_at, self._compiler.cuts
        )
        self._day_constants = day_constants(mapping)
        self._lock_fields = {crm: self.lock_field(crm) for crm in CRMS}
        self._timeless = self._due.timeless
        evaluate_due = self._compiler.evaluate_due
        if evaluate_due is None:
            raise AssertionError("compiled with the due-date values")
        self._evaluate_due = evaluate_due
        self._dated: dict[tuple[int, datetime], tuple[Assignment, Assignment]] = {}
        self._assign = self._assigner()
        # As evaluate: the bound closure saves a Python call per record.
        self.assign = self._assign  # type: ignore[method-assign]

    @property
    def definition(self) -> MappingDef:
        """The validated definition this engine was compiled from."""
        return self._m

    @property
    def object(self) -> str:
        """``"account"`` or ``"contact"``."""
        return self._m.object

    @property
    def version(self) -> str:
        """The mapping version stamped on every assignment."""
        return self._m.version

    @property
    def path(self) -> str:
        """The mapping file this engine came from."""
        return self._m.path

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Segment names in rule order (the default last)."""
        return self._m.segment_names

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Tier names: rule names, then matrix cells in reading order."""
        return self._m.tier_names

    @property
    def classification_names(self) -> dict[str, tuple[str, ...]]:
        """Each further classification's name → its tier names, in definition order."""
        return {name: c.tier_names for name, c in self._m.classifications.items()}

    @property
    def persona_names(self) -> tuple[str, ...]:
        """Persona names (empty for accounts)."""
        return self._m.persona_names

    @property
    def score_names(self) -> tuple[str, ...]:
        """Score names in definition order."""
        return tuple(self._m.scores)

    @property
    def inherits(self) -> frozenset[str]:
        """Which of ``segment`` / ``tier`` a contact takes from its parent account."""
        return self._m.inherit

    def _check_crm(self, crm: str) -> None:
        if crm not in CRMS:
            raise ValueError(f"unknown CRM {crm!r} (expected one of: {', '.join(CRMS)})")

    def input_fields(self, crm: str) -> tuple[str, ...]:
        """CRM field names the mapping reads (attribute sources, lock included), de-duplicated."""
        self._check_crm(crm)
        fields = (a.sources[crm] for a in self._m.attributes.values() if crm in a.sources)
        return tuple(dict.fromkeys(fields))

    def output_fields(self, crm: str) -> dict[str, str]:
        """Logical output key (``segment``, ``score.fit`` …) → CRM field, as declared."""
        self._check_crm(crm)
        return dict(self._m.outputs.get(crm, {}))

    def lock_field(self, crm: str) -> str | None:
        """The CRM field of the lock attribute that pins a record, if the mapping has one."""
        self._check_crm(crm)
        if self._m.lock is None:
            return None
        return self._m.attributes[self._m.lock].sources.get(crm)

    def lock_reading(self, fields: Mapping[str, Any], crm: str) -> LockReading:
        """Whether the record is locked (never written), and why when it is not plain.

        The lock fails safe: a true value locks; a blank field means the lock
        attribute's ``blank`` value (``false`` in the shipped mappings); a
        value that is not a readable boolean (``"maybe"``, ``2``) keeps the
        record locked and says so, because writing over a record someone may
        have pinned cannot be undone. In conditions the same attribute follows
        the ordinary rule (an unreadable boolean is blank).

        """
        field = self._lock_fields.get(crm, _NO_CRM)
        if field is _NO_CRM:
            self._check_crm(crm)
        if field is None or self._m.lock is None:
            return _UNLOCKED
        raw = fields.get(field)
        if raw is None:  # or a nested record's path (nested_get reads both)
            raw = nested_get(fields, field)
        # The plain values both CRMs send, answered before the general rules.
        if raw is False or raw == "false":
            return _UNLOCKED
        if raw is True or raw == "true":
            return _LOCKED
        if is_blank(raw):
            blank = self._m.attributes[self._m.lock].blank is True
            return LockReading(blank, f"blank → {'locked' if blank else 'not locked'}")
        value = parse_boolean(raw)
        if value is None:
            return LockReading(True, f"unreadable lock value {raw!r}: kept locked", True)
        return LockReading(value)

    def is_locked(self, fields: Mapping[str, Any], crm: str) -> bool:
        """Whether the record is locked (see :meth:`lock_reading`)."""
        return self.lock_reading(fields, crm).locked

    def evaluate(
        self,
        fields: Mapping[str, Any],
        crm: str,
        now: datetime,
        parent: Assignment | None = None,
    ) -> Assignment:
        """Evaluate one raw record.

        Args:
            fields: CRM field name → raw value exactly as the CRM sends it.
            crm: ``"salesforce"`` or ``"hubspot"``: which source fields to read.
            now: the evaluation time (``within_days`` and similar tests); a
                naive datetime is taken as UTC.
            parent: the parent account's assignment, for contacts that inherit.

        Returns:
            The assignment (segment, tier, scores, persona, version, reason).

        Raises:
            ValueError: only for an unknown ``crm``; never for a field value.

        """
        return self._evaluate(fields, crm, now, parent)

    def assign(
        self,
        fields: Mapping[str, Any],
        crm: str,
        now: datetime,
        parent: Assignment | None = None,
    ) -> Assignment:
        """Evaluate one raw record and say when time alone will change the result.

        Like :meth:`evaluate`, plus :attr:`Assignment.due_at`: the earliest
        instant after ``now`` at which a ``within_days`` / ``older_than_days``
        boundary changes the assignment (segment, tier, scores, persona or
        reason), ``None`` when none will. The sync stores it and re-plans the
        record once it has passed, without a full pull. Costs one extra
        evaluation per future boundary of the record; nothing for a mapping
        with no time tests.
        """
        return self._assign(fields, crm, now, parent)

    def _assigner(self) -> Callable[..., Assignment]:
        """:meth:`assign` with its names bound once (bound on the instance, like ``evaluate``)."""
        if self._timeless:
            return self._evaluate
        evaluate_due, due_after, dated_get = (
            self._evaluate_due,
            self._due.due_after,
            self._dated.get,
        )
        dated_map = self._dated

        def assign(
            fields: Mapping[str, Any],
            crm: str,
            now: datetime,
            parent: Assignment | None = None,
        ) -> Assignment:
            # The evaluation also hands over the time-tested values it read (parsed once).
            assignment, values = evaluate_due(fields, crm, now, parent)
            due = due_after(values, fields, crm, now, parent, assignment)
            if due is None:
                return assignment
            # Records share assignments and, counting calendar days, due instants:
            # one dated copy per pair (its outputs cached like the assignment's),
            # found by the assignment's identity (the entry holds it: no id reuse).
            key = (id(assignment), due)
            entry = dated_get(key)
            if entry is not None and entry[0] is assignment:
                return entry[1]
            dated = replace(assignment, due_at=due)
            if len(dated_map) < DATED_LIMIT:
                dated_map[key] = (assignment, dated)
            return dated

        return assign

    @property
    def time_dependent(self) -> bool:
        """Whether any test depends on the run time (else no record ever comes due)."""
        return not self._due.timeless

    @property
    def rollups(self) -> tuple[str, ...]:
        """The rollup attributes (computed from the account's deals), in file order."""
        return tuple(self._m.rollups)

    def with_deals(
        self, fields: Mapping[str, Any], deals: Iterable[DealLike], now: datetime
    ) -> Mapping[str, Any]:
        """``fields`` plus the rollup attributes' values over this account's ``deals`` at ``now``.

        Evaluate the result: a rollup attribute reads its value from it like
        a source field. Without rollups in the mapping, ``fields`` unchanged.
        Without deals, ``count`` and ``sum`` rollups are 0 and the others blank.
        """
        if not self._m.rollups:
            return fields
        return {**fields, **rollup_fields(self._m, deals, now)}

    def assign_with_deals(
        self,
        fields: Mapping[str, Any],
        deals: Iterable[DealLike],
        crm: str,
        now: datetime,
        parent: Assignment | None = None,
    ) -> Assignment:
        """:meth:`assign` for an account with its ``deals``: rollups computed, and their time.

        The rollup attributes are computed as of ``now``; ``due_at`` also
        covers the instants at which a rollup moves with time (a deal
        entering or leaving a window, a ``days_since`` count crossing a
        test's constant: :mod:`connector.engine.rollup_due`).
        """
        if not self._m.rollups:
            return self.assign(fields, crm, now, parent)
        listed = list(deals)
        current = self.with_deals(fields, listed, now)
        assignment = self._evaluate(current, crm, now, parent)
        flips = self._due.flips(current, crm, now)
        flips |= rollup_flips(self._m, listed, now, self._day_constants)
        if not flips:
            return assignment
        state = rollup_state(self._m, listed, now)
        # At the thresholds of each instant (evaluate_at), not through evaluate(…,
        # moment): that would replace the run's cached thresholds for every searched
        # instant, and the next record would compute them again.
        evaluate_at, cuts = self._compiler.evaluate_at, self._compiler.cuts
        for moment in sorted(flips):
            if rollup_state(self._m, listed, moment) != state or (
                evaluate_at(self.with_deals(fields, listed, moment), crm, cuts(moment), parent)
                != assignment
            ):
                return self._with_due(assignment, moment)
        return assignment

    def _with_due(self, assignment: Assignment, due: datetime) -> Assignment:
        """The shared dated copy of ``assignment`` (as :meth:`assign` hands out)."""
        key = (id(assignment), due)
        entry = self._dated.get(key)
        if entry is not None and entry[0] is assignment:
            return entry[1]
        dated = replace(assignment, due_at=due)
        if len(self._dated) < DATED_LIMIT:
            self._dated[key] = (assignment, dated)
        return dated

    def explain(
        self,
        fields: Mapping[str, Any],
        crm: str,
        now: datetime,
        parent: Assignment | None = None,
        deals: Iterable[DealLike] | None = None,
    ) -> Explanation:
        """Evaluate one record and trace every step (slow; for people, not for syncs).

        With ``deals`` (the account's), rollup attributes are computed from
        them and the explanation lists which deals each one used.
        """
        inputs: Mapping[str, tuple[str, ...]] = {}
        if deals is not None and self._m.rollups:
            listed = list(deals)
            fields = self.with_deals(fields, listed, now)
            inputs = rollup_inputs(self._m, listed, now)
        assignment = self.evaluate(fields, crm, now, parent)
        return explain_record(
            self._m,
            self._compiler.coercers,
            fields,
            crm,
            now,
            parent,
            assignment,
            self.lock_reading(fields, crm),
            inputs,
        )

    def source(self) -> str:
        """The generated Python source of the evaluator (for debugging)."""
        return self._source

    def __repr__(self) -> str:
        return f"<Engine {self.object} {self.version} from {self.path}>"


def compile_mapping(mapping: MappingDef) -> Engine:
    """Compile a validated definition once; the engine then evaluates records fast."""
    return Engine(mapping)
