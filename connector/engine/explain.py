"""The full, structured explanation of one record's evaluation.

This is the slow path: it re-walks the definition condition by condition,
recording every raw → normalized value and every test, so a RevOps person
can see why a record landed where it did. It is written independently of the
generated fast path on purpose; the test suite checks that both agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from connector.engine.assignment import Assignment, number_text, points_text
from connector.engine.coerce import Coercer
from connector.engine.compiler import (
    PRESENT,
    Threshold,
    fold,
    folded_test,
    nested_get,
    score_total,
    thresholds,
)
from connector.engine.rollups import rollup_key
from connector.mapping.models import (
    AllOf,
    AnyOf,
    Axis,
    Condition,
    Leaf,
    MappingDef,
    RuleDef,
    TierMatrix,
)
from connector.mapping.render import condition_text, leaf_text, literal_text

#: Deal ids an explanation lists per rollup attribute (the JSON form has them all).
ROLLUP_LISTED = 10


def _json(value: Any) -> Any:
    """A JSON-ready form of a raw or canonical value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, frozenset | set):
        return sorted(_json(v) for v in value)
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    return repr(value)


def _value_text(value: Any) -> str:
    return "blank" if value is None else literal_text(value)


@dataclass(frozen=True, slots=True)
class AttributeTrace:
    """One attribute: where it came from, the raw value and what it became."""

    name: str
    type: str
    field: str | None
    raw: Any
    value: Any
    note: str
    #: For a rollup attribute given deals: the ids of the deals its value came from.
    deals: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = {
            "name": self.name,
            "type": self.type,
            "field": self.field,
            "raw": _json(self.raw),
            "value": _json(self.value),
            "note": self.note,
        }
        if self.deals is not None:
            out["deals"] = list(self.deals)
        return out


@dataclass(frozen=True, slots=True)
class TestTrace:
    """One condition node: its text, its result and, for all / any / not, its parts."""

    text: str
    result: bool
    detail: str = ""
    parts: tuple[TestTrace, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {"test": self.text, "result": self.result}
        if self.detail:
            out["detail"] = self.detail
        if self.parts:
            out["parts"] = [p.to_dict() for p in self.parts]
        return out

    def lines(self, indent: int) -> list[str]:
        """Rendered lines, nested parts indented."""
        mark = "✓" if self.result else "✗"
        detail = f"  [{self.detail}]" if self.detail else ""
        out = ["  " * indent + f"{mark} {self.text}{detail}"]
        for p in self.parts:
            out.extend(p.lines(indent + 1))
        return out


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One ordered rule (segment, tier rule, persona) and its outcome.

    ``status`` is ``"chosen"``, ``"also matches"`` (a rule above won),
    ``"no match"``, ``"default"`` (the catch-all, chosen) or ``"not needed"``
    (the catch-all, when an earlier rule matched).
    """

    name: str
    status: str
    test: TestTrace | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "status": self.status,
            "test": self.test.to_dict() if self.test else None,
        }


@dataclass(frozen=True, slots=True)
class ScoreRuleTrace:
    """One additive score rule: hit or miss, and its points."""

    label: str
    points: float | int
    hit: bool
    test: TestTrace

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "label": self.label,
            "points": self.points,
            "hit": self.hit,
            "test": self.test.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ScoreTrace:
    """One score: its rules, the raw sum and the value after cap / floor."""

    name: str
    value: float | int
    total: float | int
    cap: float | int | None
    floor: float | int | None
    rules: tuple[ScoreRuleTrace, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "value": self.value,
            "sum": self.total,
            "cap": self.cap,
            "floor": self.floor,
            "rules": [r.to_dict() for r in self.rules],
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """How one of segment / tier / persona was decided."""

    value: str | None
    how: str
    rules: tuple[RuleTrace, ...] = ()
    matrix: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {
            "value": self.value,
            "how": self.how,
            "rules": [r.to_dict() for r in self.rules],
        }
        if self.matrix is not None:
            out["matrix"] = _json(self.matrix)
        return out


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything that went into one record's assignment.

    Attributes:
        object: ``account`` or ``contact``.
        crm: the CRM whose field names were read.
        version: the mapping version.
        now: the evaluation time.
        attributes: each attribute's raw → normalized value.
        segment: how the segment was decided (every rule tried).
        scores: every score rule, hit or miss.
        tier: how the tier was decided (rules, then matrix or default).
        persona: how the persona was decided (contacts).
        inherited: which decisions came from the parent account.
        assignment: the result, identical to :meth:`Engine.evaluate`.
        classifications: how each further classification was decided.

    """

    object: str
    crm: str
    version: str
    now: datetime
    attributes: tuple[AttributeTrace, ...]
    segment: Decision
    scores: tuple[ScoreTrace, ...]
    tier: Decision
    persona: Decision | None
    inherited: frozenset[str]
    assignment: Assignment
    lock: Mapping[str, Any] | None = field(default=None)
    classifications: Mapping[str, Decision] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the whole explanation."""
        a = self.assignment
        return {
            "object": self.object,
            "crm": self.crm,
            "version": self.version,
            "now": self.now.isoformat(),
            "assignment": {
                "segment": a.segment,
                "tier": a.tier,
                "scores": dict(a.scores),
                "persona": a.persona,
                "version": a.version,
                "reason": a.reason,
                "classifications": dict(a.classifications),
                "classification_reasons": dict(a.classification_reasons),
            },
            "attributes": [t.to_dict() for t in self.attributes],
            "segment": self.segment.to_dict(),
            "scores": [s.to_dict() for s in self.scores],
            "tier": self.tier.to_dict(),
            "persona": self.persona.to_dict() if self.persona else None,
            "inherited": sorted(self.inherited),
            "lock": _json(self.lock) if self.lock is not None else None,
            "classifications": {k: d.to_dict() for k, d in self.classifications.items()},
        }

    def render(self) -> str:
        """Multi-line text for people."""
        a = self.assignment
        out: list[str] = [
            f"{self.object} on {self.crm} · mapping version {self.version}"
            f" · at {self.now.isoformat()}",
            f"→ segment {a.segment!r} · tier {a.tier!r}"
            + (f" · persona {a.persona!r}" if a.persona else "")
            + "".join(f" · {k} {v!r}" for k, v in a.classifications.items())
            + "".join(f" · {k} {number_text(v)}" for k, v in a.scores.items()),
            f"reason: {a.reason}",
            "",
            "Attributes (raw → normalized):",
        ]
        for t in self.attributes:
            src = t.field or "(no source field in this CRM)"
            note = f"   ({t.note})" if t.note else ""
            out.append(
                f"  {t.name:<16} {src:<24} {_raw_text(t.raw)} → {_value_text(t.value)}{note}"
            )
        if self.lock is not None:
            lk = self.lock
            state = "locked: sync never writes this record" if lk["locked"] else "not locked"
            note = f" ({lk['note']})" if lk.get("note") else ""
            out.append(f"  lock: {lk['attribute']} → {state}{note}")
        out.append("")
        out.extend(_decision_lines("Segment", self.segment))
        for s in self.scores:
            bounds = []
            if s.cap is not None:
                bounds.append(f"cap {number_text(s.cap)}")
            if s.floor is not None:
                bounds.append(f"floor {number_text(s.floor)}")
            extra = f" (sum {number_text(s.total)}, {', '.join(bounds)})" if bounds else ""
            out.append("")
            out.append(f"Score {s.name} = {number_text(s.value)}{extra}:")
            for r in s.rules:
                mark = "✓" if r.hit else "✗"
                out.append(f"  {mark} {points_text(r.points):>5}  {r.label}")
                if r.test.parts or r.test.detail:
                    out.extend(r.test.lines(4))
        out.append("")
        out.extend(_decision_lines("Tier", self.tier))
        for name, decision in self.classifications.items():
            out.append("")
            out.extend(_decision_lines(f"Classification {name}", decision))
            reason = self.assignment.classification_reasons.get(name)
            if reason:
                out.append(f"  reason: {reason}")
        if self.persona is not None:
            out.append("")
            out.extend(_decision_lines("Persona", self.persona))
        return "\n".join(out)


def _raw_text(raw: Any) -> str:
    if raw is None:
        return "null"
    return repr(raw)


def _decision_lines(title: str, decision: Decision) -> list[str]:
    out = [f"{title}: {decision.value!r} ({decision.how})"]
    for rule in decision.rules:
        out.append(f"  [{rule.status}] {rule.name}")
        if rule.test is not None:
            out.extend(rule.test.lines(2))
    if decision.matrix is not None:
        mx = decision.matrix
        out.append(
            f"  matrix: row {mx['row_label']!r} ({mx['row_subject']} = "
            f"{_value_text(mx['row_value'])}) × column {mx['column_label']!r} "
            f"({mx['column_subject']} = {_value_text(mx['column_value'])}) → {mx['cell']!r}"
        )
    return out


class _Tracer:
    """Interprets conditions against one record's values, recording each test."""

    def __init__(
        self,
        mapping: MappingDef,
        values: Mapping[str, Any],
        keys: tuple[tuple[str, int], ...],
        cuts: tuple[Threshold, ...],
    ) -> None:
        self.m = mapping
        self.values = values
        self.scores: dict[str, float | int] = {}
        self.segment: str | None = None
        self.cuts = dict(zip(keys, cuts, strict=True))

    def leaf(self, leaf: Leaf) -> TestTrace:
        if leaf.kind == "segment":
            value: Any = self.segment
            attr_type = "string"
        elif leaf.kind == "score":
            value = self.scores.get(leaf.subject)
            attr_type = "number"
        else:
            value = self.values.get(leaf.subject)
            attr_type = self.m.attributes[leaf.subject].type
        folded = leaf.kind == "attr" and folded_test(self.m.attributes[leaf.subject], leaf.op)
        result = holds(leaf, value, attr_type, self.cuts, folded=folded)
        return TestTrace(leaf_text(leaf), result, f"{leaf.subject} = {_value_text(value)}")

    def test(self, cond: Condition) -> TestTrace:
        if isinstance(cond, Leaf):
            return self.leaf(cond)
        if isinstance(cond, AllOf | AnyOf):
            # Every part is traced (no short-circuit) so the explanation is complete.
            parts = tuple(self.test(c) for c in cond.items)
            results = [p.result for p in parts]
            result = all(results) if isinstance(cond, AllOf) else any(results)
            label = "all of" if isinstance(cond, AllOf) else "any of"
            return TestTrace(label, result, "", parts)
        inner = self.test(cond.item)
        return TestTrace("not", not inner.result, "", (inner,))

    def rules(self, rules: tuple[RuleDef, ...]) -> tuple[str | None, tuple[RuleTrace, ...]]:
        chosen: str | None = None
        traces: list[RuleTrace] = []
        for rule in rules:
            if rule.default or rule.when is None:
                status = "not needed" if chosen is not None else "default"
                if chosen is None:
                    chosen = rule.name
                traces.append(RuleTrace(rule.name, status, None))
                continue
            trace = self.test(rule.when)
            if trace.result and chosen is None:
                chosen = rule.name
                status = "chosen"
            elif trace.result:
                status = "also matches"
            else:
                status = "no match"
            traces.append(RuleTrace(rule.name, status, trace))
        return chosen, tuple(traces)


def holds(
    leaf: Leaf,
    value: Any,
    attr_type: str,
    cuts: Mapping[tuple[str, int], Any],
    *,
    folded: bool = False,
) -> bool:
    """Whether one test holds for a canonical value (``None`` = missing).

    The reference semantics of every operator: tests on a missing value are
    false, except ``missing``, ``ne`` and ``not_in`` (a blank is "not equal").
    ``folded`` (a free-text test, see :func:`~connector.engine.compiler.folded_test`):
    equality and membership ignore case. ``within_days`` holds from the cut-off up to now,
    never for a future value; ``older_than_days`` holds before the cut-off.
    """
    op, lit = leaf.op, leaf.value
    if folded:
        value, lit = fold(value), fold(lit)
    if op == "exists":
        return value is not None
    if op == "missing":
        return value is None
    if op == "eq":
        return bool(value == lit)
    if op == "ne":
        return bool(value != lit)
    if op == "in":
        return value in lit
    if op == "not_in":
        return value not in lit
    if value is None:
        return False
    if op == "gt":
        return bool(value > lit)
    if op == "gte":
        return bool(value >= lit)
    if op == "lt":
        return bool(value < lit)
    if op == "lte":
        return bool(value <= lit)
    if op == "between":
        return bool(lit[0] <= value <= lit[1])
    if op == "contains":
        return lit in (value.casefold() if attr_type == "string" else value)
    if op == "contains_any":
        return not lit.isdisjoint(value)
    if op == "contains_all":
        return bool(lit <= value)
    if op == "matches":
        return lit.search(value) is not None
    if op == "within_days":
        return bool(cuts[(attr_type, lit)] <= value <= cuts[(attr_type, PRESENT)])
    if op == "older_than_days":
        return bool(value < cuts[(attr_type, lit)])
    raise ValueError(f"unsupported operator {op!r}")


def _band(axis: Axis, value: Any) -> int:
    if value is None:
        return len(axis.at_least)
    for i, bound in enumerate(axis.at_least):
        if value >= bound:
            return i
    return len(axis.at_least)


def threshold_keys_of(mapping: MappingDef) -> tuple[tuple[str, int], ...]:
    """Every (attribute type, days) a within_days / older_than_days test needs."""
    keys: list[tuple[str, int]] = []

    def walk(cond: Condition | None) -> None:
        if cond is None:
            return
        if isinstance(cond, Leaf):
            if cond.op in ("within_days", "older_than_days") and cond.kind == "attr":
                attr_type = mapping.attributes[cond.subject].type
                for key in ((attr_type, cond.value), (attr_type, PRESENT)):
                    if key not in keys:
                        keys.append(key)
        elif isinstance(cond, AllOf | AnyOf):
            for c in cond.items:
                walk(c)
        else:
            walk(cond.item)

    for rules in (mapping.segments, *mapping.tier_rule_sets(), mapping.personas):
        for rule in rules:
            walk(rule.when)
    for score in mapping.scores.values():
        for r in score.rules:
            walk(r.when)
    return tuple(keys)


def explain_record(
    mapping: MappingDef,
    coercers: Mapping[str, Coercer],
    fields: Mapping[str, Any],
    crm: str,
    now: datetime,
    parent: Assignment | None,
    assignment: Assignment,
    lock_reading: tuple[bool, str, bool] = (False, "", False),
    rollup_inputs: Mapping[str, tuple[str, ...]] | None = None,
) -> Explanation:
    """Trace the evaluation of one record; ``assignment`` is the fast path's result.

    ``lock_reading`` is :meth:`Engine.lock_reading` of the record.
    """
    traces: list[AttributeTrace] = []
    values: dict[str, Any] = {}
    for name, attr in mapping.attributes.items():
        if attr.rollup is not None:
            raw = fields.get(rollup_key(name))
            value, note = coercers[name].detailed(raw)
            used = (rollup_inputs or {}).get(name)
            if used is not None:
                listed = ", ".join(used[:ROLLUP_LISTED]) or "none"
                more = f" and {len(used) - ROLLUP_LISTED} more" if len(used) > ROLLUP_LISTED else ""
                note = f"from {len(used)} deal{'s' if len(used) != 1 else ''}: {listed}{more}"
            elif rollup_key(name) not in fields:
                note = "no deals given (--deals FILE): " + (note or "missing")
            values[name] = value
            traces.append(
                AttributeTrace(name, attr.type, attr.rollup.text(), raw, value, note, used)
            )
            continue
        source = attr.sources.get(crm)
        try:
            raw = nested_get(fields, source) if source is not None else None
        except Exception:
            raw = None
        value, note = coercers[name].detailed(raw)
        if source is None:
            note = "no source field in this CRM; " + (note or "missing")
        values[name] = value
        traces.append(AttributeTrace(name, attr.type, source, raw, value, note))

    keys = threshold_keys_of(mapping)
    tracer = _Tracer(mapping, values, keys, thresholds(keys, now, mapping.zone))
    inherited: set[str] = set()
    use_parent = parent is not None

    # Segment
    own_segment, seg_rules = tracer.rules(mapping.segments)
    if use_parent and "segment" in mapping.inherit and parent is not None:
        inherited.add("segment")
        segment = Decision(parent.segment, "inherited from the parent account")
        tracer.segment = parent.segment
    else:
        how = "first matching rule" if own_segment != _default_name(mapping.segments) else "default"
        if "segment" in mapping.inherit:
            how += " (no parent account)"
        segment = Decision(own_segment, how, seg_rules)
        tracer.segment = own_segment

    # Scores
    score_traces: list[ScoreTrace] = []
    for score in mapping.scores.values():
        rule_traces: list[ScoreRuleTrace] = []
        mask = 0
        for j, rule in enumerate(score.rules):
            t = tracer.test(rule.when)
            if t.result:
                mask |= 1 << j
            rule_traces.append(ScoreRuleTrace(rule.label, rule.points, t.result, t))
        points = tuple(r.points for r in score.rules)
        total = score_total(points, mask, None, None)
        value = score_total(points, mask, score.cap, score.floor)
        tracer.scores[score.name] = value
        score_traces.append(
            ScoreTrace(score.name, value, total, score.cap, score.floor, tuple(rule_traces))
        )

    # Tier
    if use_parent and "tier" in mapping.inherit and parent is not None:
        inherited.add("tier")
        tier = Decision(parent.tier, "inherited from the parent account")
    else:
        tier = _tiering(tracer, values, mapping.tiers, mapping.tier_matrix)
        if "tier" in mapping.inherit:
            tier = replace(tier, how=tier.how + " (no parent account)")
    classifications = {
        name: _tiering(tracer, values, c.tiers, c.matrix)
        for name, c in mapping.classifications.items()
    }

    persona: Decision | None = None
    if mapping.personas:
        persona_name, persona_rules = tracer.rules(mapping.personas)
        default = _default_name(mapping.personas)
        how = "default" if persona_name == default else "first matching rule"
        persona = Decision(persona_name, how, persona_rules)

    lock = None
    if mapping.lock is not None:
        locked, note, _unreadable = lock_reading
        lock = {
            "attribute": mapping.lock,
            "value": values.get(mapping.lock),
            "locked": locked,
            "note": note,
        }

    return Explanation(
        object=mapping.object,
        crm=crm,
        version=mapping.version,
        now=now,
        attributes=tuple(traces),
        segment=segment,
        scores=tuple(score_traces),
        tier=tier,
        persona=persona,
        inherited=frozenset(inherited),
        assignment=assignment,
        lock=lock,
        classifications=classifications,
    )


def _tiering(
    tracer: _Tracer,
    values: Mapping[str, Any],
    rules: tuple[RuleDef, ...],
    matrix: TierMatrix | None,
) -> Decision:
    """How one tiering (the tier or a classification) was decided: rules, then matrix or default."""
    choice, traces = tracer.rules(rules)
    matrix_info: dict[str, Any] | None = None
    if choice is None and matrix is not None:
        rv = _axis_value(matrix.rows, values, tracer.scores)
        cv = _axis_value(matrix.columns, values, tracer.scores)
        r, c = _band(matrix.rows, rv), _band(matrix.columns, cv)
        choice = matrix.cells[r][c]
        matrix_info = {
            "row_subject": matrix.rows.subject,
            "row_value": rv,
            "row_label": matrix.rows.labels[r],
            "column_subject": matrix.columns.subject,
            "column_value": cv,
            "column_label": matrix.columns.labels[c],
            "cell": choice,
        }
        how = "tier matrix"
    elif choice == _default_name(rules):
        how = "default"
    else:
        how = "first matching rule"
    return Decision(choice, how, traces, matrix_info)


def _axis_value(axis: Axis, values: Mapping[str, Any], scores: Mapping[str, Any]) -> Any:
    return scores.get(axis.subject) if axis.kind == "score" else values.get(axis.subject)


def _default_name(rules: tuple[RuleDef, ...]) -> str | None:
    for rule in rules:
        if rule.default:
            return rule.name
    return None


__all__ = [
    "AttributeTrace",
    "Decision",
    "Explanation",
    "RuleTrace",
    "ScoreRuleTrace",
    "ScoreTrace",
    "TestTrace",
    "condition_text",
    "explain_record",
    "holds",
]
