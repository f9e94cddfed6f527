"""Definition lint: rules no record can reach, conditions that never hold.

``segsync validate`` reports these as warnings (the file still loads and
runs; the definition just says something it does not mean):

- a segment, tier rule or persona that no record can reach, because the
  rules above it already take every record it matches (*shadowed*), or the
  default that the rules above leave nothing for;
- a condition that can never hold (``employees > 10`` and ``employees < 5``),
  reported at the outermost part of a rule that is impossible;
- a score whose ``cap`` (or ``floor``) no record can reach: the sum of every
  positive (negative) point that can be earned stays short of it;
- a tier rule, or a cell of the tier matrix, that the scores' possible
  values (or the tier rules above) rule out.

Soundness is the contract: a warning says *never*, so the analysis only
claims it when it has proved it; whatever it cannot decide it keeps quiet
about. It works by finite case analysis. Each test in the definition is
constant on a few *cells* of its subject's values (for ``employees >= 1000``
and ``employees < 100``: blank, below 100, 100–999, 1000 and above), so one
representative value per cell decides every test exactly, and a condition
can hold iff some combination of representatives makes it true. Subjects are
treated as independent of one another, which can only add combinations: a
score may take any total its rules can add up to, and the segment any
segment that is reachable. Tests whose truth is not constant on finite cells
(a regular expression or substring on free text, ``within_days`` beside
absolute dates on the same attribute) become free true/false variables,
which again only adds combinations. More combinations never turn "can hold"
into "never", so every warning is a fact about the engine; the property test
in ``tests/test_lint.py`` checks that against the engine on random records.

Pure: a :class:`MappingDef` in, :class:`LintWarning` values out.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from connector.mapping.models import (
    AllOf,
    AnyOf,
    AttributeDef,
    Axis,
    Condition,
    Leaf,
    MappingDef,
    NotOf,
    RuleDef,
    ScoreDef,
)

WarningKind = Literal[
    "shadowed",
    "impossible",
    "unreachable-default",
    "unreachable-cap",
    "unreachable-tier",
    "no-deals",
]

#: Condition evaluations one question may cost before the analysis gives up
#: (and, being unsure, says nothing). Far above what real definitions need.
BUDGET = 200_000

#: Distinct score totals enumerated exactly; beyond this, a range is used.
MAX_TOTALS = 4_096

_MISSING_SET: frozenset[Any] = frozenset()
_ORDER_OPS = ("gt", "gte", "lt", "lte", "between")
_RELATIVE_OPS = ("within_days", "older_than_days")
_TEXT_OPS = ("eq", "ne", "in", "not_in")


@dataclass(frozen=True, slots=True)
class LintWarning:
    """One thing a definition says that it cannot mean.

    Attributes:
        file: the mapping file.
        location: the table or array index (``segments[3]``, ``scores.fit.cap``).
        message: what is unreachable or impossible, and why.
        kind: ``shadowed``, ``impossible``, ``unreachable-default``,
            ``unreachable-cap``, ``unreachable-tier`` or ``no-deals``.

    """

    file: str
    location: str
    message: str
    kind: WarningKind

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.message}"


# --------------------------------------------------------------------------- variables

#: A variable of the case analysis: ("attr", name), ("elem", name, element),
#: ("other", name), ("opaque", leaf), ("score", name) or ("segment",).
Var = tuple[Any, ...]
Env = dict[Var, Any]


class _Model:
    """How one leaf reads the variables: which ones, and its truth once they are set."""

    __slots__ = ("fn", "vars")

    def __init__(self, vars_: tuple[Var, ...], fn: Callable[[Env], bool]) -> None:
        self.vars = vars_
        self.fn = fn

    def value(self, env: Env) -> bool | None:
        for v in self.vars:
            if v not in env:
                return None
        return self.fn(env)


class _Budget(Exception):
    """Raised when one question costs more than :data:`BUDGET` evaluations."""


def _key(base: str, key: str) -> str:
    part = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'
    return f"{base}.{part}" if base else part


def _leaves(cond: Condition | None) -> Iterator[Leaf]:
    if cond is None:
        return
    if isinstance(cond, Leaf):
        yield cond
    elif isinstance(cond, AllOf | AnyOf):
        for c in cond.items:
            yield from _leaves(c)
    else:
        yield from _leaves(cond.item)


def _literals(leaf: Leaf) -> list[Any]:
    if leaf.op in ("in", "not_in"):
        return list(leaf.value)
    if leaf.op == "between":
        return [leaf.value[0], leaf.value[1]]
    if leaf.op in ("eq", "ne", "gt", "gte", "lt", "lte"):
        return [leaf.value]
    return []


def _ordered_reps(points: Iterable[Any], kind: str) -> list[Any]:
    """One value per cell of the line cut at ``points``: the points and a value in each gap.

    ``kind`` is ``int``, ``float``, ``date`` or ``datetime``. Every test that
    compares with these points (``<``, ``>=``, ``==``, ``in`` …) is constant
    on each cell, so these values decide it for every value of the line.
    """
    pts = sorted(set(points))
    if kind == "int":
        out: set[Any] = set()
        for t in pts:
            lo, hi = math.floor(t), math.ceil(t)
            out.update((lo - 1, lo, lo + 1, hi, hi + 1))
        return sorted(out) or [0]
    if not pts:
        # No test compares with a point: one value stands for every value
        # (a date with only `exists` / `missing` tests can still be present).
        if kind == "float":
            return [0.0]
        return [date(2000, 1, 1) if kind == "date" else datetime(2000, 1, 1, tzinfo=UTC)]
    if kind == "float":
        out_f: list[Any] = [pts[0] - abs(pts[0]) - 1.0, pts[-1] + abs(pts[-1]) + 1.0, *pts]
        out_f += [(a + b) / 2 for a, b in itertools.pairwise(pts) if a < (a + b) / 2 < b]
        return out_f
    step = timedelta(days=1) if kind == "date" else timedelta(microseconds=1)
    out_d: list[Any] = list(pts)
    for edge, delta in ((pts[0], -timedelta(days=1)), (pts[-1], timedelta(days=1))):
        # date.min / date.max: nothing lies beyond.
        with contextlib.suppress(OverflowError):
            out_d.append(edge + delta)
    for a, b in itertools.pairwise(pts):
        mid = a + step if kind == "date" else a + (b - a) / 2
        if a < mid < b:
            out_d.append(mid)
    return out_d


def _folded_text(attr: AttributeDef) -> bool:
    return attr.type == "string" or (attr.type == "set" and attr.values is None)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


# --------------------------------------------------------------------------- the analysis


class _Analysis:
    """The variables and leaf models of one mapping, and the questions asked of them."""

    def __init__(self, m: MappingDef) -> None:
        self.m = m
        self.domains: dict[Var, list[Any]] = {}
        self.models: dict[Leaf, _Model] = {}
        self.cost = 0
        all_leaves = [leaf for cond in self._conditions() for leaf in _leaves(cond)]
        by_attr: dict[str, list[Leaf]] = {}
        for leaf in all_leaves:
            if leaf.kind == "attr":
                by_attr.setdefault(leaf.subject, []).append(leaf)
        axis_points: dict[tuple[str, str], list[float | int]] = {}
        if m.tier_matrix is not None:
            for axis in (m.tier_matrix.rows, m.tier_matrix.columns):
                axis_points.setdefault((axis.kind, axis.subject), []).extend(axis.at_least)
        for name, leaves in by_attr.items():
            self._attribute(m.attributes[name], leaves, axis_points.get(("attr", name), []))
        for (kind, name), pts in axis_points.items():
            if kind == "attr" and name not in by_attr:
                self._attribute(m.attributes[name], [], pts)
        # Scores and the segment get their domains once their rules are analysed.
        self.score_points: dict[str, list[Any]] = {}
        for leaf in all_leaves:
            if leaf.kind == "score":
                self.score_points.setdefault(leaf.subject, []).extend(_literals(leaf))
        for (kind, name), pts in axis_points.items():
            if kind == "score":
                self.score_points.setdefault(name, []).extend(pts)

    def _conditions(self) -> Iterator[Condition | None]:
        m = self.m
        for rules in (m.segments, m.tiers, m.personas):
            for rule in rules:
                yield rule.when
        for score in m.scores.values():
            for srule in score.rules:
                yield srule.when

    # --- building the models -------------------------------------------------------------

    def _opaque(self, leaf: Leaf) -> None:
        var: Var = ("opaque", leaf)
        self.domains[var] = [False, True]
        self.models[leaf] = _Model((var,), lambda env: bool(env[var]))

    def _attribute(self, attr: AttributeDef, leaves: list[Leaf], axis_points: list[Any]) -> None:
        if attr.type == "set":
            self._set_attribute(attr, leaves)
            return
        var: Var = ("attr", attr.name)
        t = attr.type
        if t in ("integer", "number"):
            pts = [v for leaf in leaves for v in _literals(leaf)] + list(axis_points)
            reps: list[Any] = _ordered_reps(pts, "int" if t == "integer" else "float")
            self.domains[var] = [math.nan, *reps]
            for leaf in leaves:
                self.models[leaf] = _Model((var,), _number_test(leaf))
            return
        if t in ("date", "datetime"):
            relative = [leaf for leaf in leaves if leaf.op in _RELATIVE_OPS]
            absolute = [leaf for leaf in leaves if leaf.op not in _RELATIVE_OPS]
            has_abs_points = any(_literals(leaf) for leaf in absolute)
            if relative and not has_abs_points:
                # Only "N days ago" tests: the value is its age in days (negative:
                # in the future), and within / older are thresholds on it.
                ages = [d for leaf in relative for d in (0, leaf.value)]
                kind = "int" if t == "date" else "float"
                self.domains[var] = [None, *_ordered_reps(ages, kind)]
                for leaf in leaves:
                    self.models[leaf] = _Model((var,), _age_test(leaf))
                return
            for leaf in relative:
                self._opaque(leaf)
            pts = [v for leaf in absolute for v in _literals(leaf)]
            self.domains[var] = [None, *_ordered_reps(pts, t)]
            for leaf in absolute:
                self.models[leaf] = _Model((var,), _plain_test(leaf, fold=False))
            return
        if t == "boolean":
            self.domains[var] = [None, False, True]
            for leaf in leaves:
                self.models[leaf] = _Model((var,), _plain_test(leaf, fold=False))
            return
        if t == "enum" and attr.values is not None:
            extra = [attr.blank] if isinstance(attr.blank, str) else []
            self.domains[var] = list(dict.fromkeys([None, *attr.values, *extra]))
            for leaf in leaves:
                self.models[leaf] = _Model((var,), _plain_test(leaf, fold=False))
            return
        # Free text: every literal, one text no test names, and blank.
        exact = [leaf for leaf in leaves if leaf.op in (*_TEXT_OPS, "exists", "missing")]
        lits = {_fold(v) for leaf in exact for v in _literals(leaf)}
        fresh = "\x00segsync lint: a text no rule names\x00"
        self.domains[var] = [None, fresh, *sorted(lits)]
        fold = _folded_text(attr)
        for leaf in leaves:
            if leaf in exact:
                self.models[leaf] = _Model((var,), _plain_test(leaf, fold=fold))
            else:
                self._opaque(leaf)

    def _set_attribute(self, attr: AttributeDef, leaves: list[Leaf]) -> None:
        if attr.blank is not None:
            # A blank set that stands for a value: presence tests change meaning; stay unsure.
            for leaf in leaves:
                self._opaque(leaf)
            return
        fold = _folded_text(attr)
        mentioned: set[Any] = set()
        for leaf in leaves:
            if leaf.op == "contains":
                mentioned.add(_fold(leaf.value) if fold else leaf.value)
            elif leaf.op in ("contains_any", "contains_all"):
                mentioned.update(_fold(v) if fold else v for v in leaf.value)
        elems: dict[Any, Var] = {e: ("elem", attr.name, e) for e in sorted(mentioned, key=str)}
        others: list[Var] = []
        if attr.values is None or set(attr.values) - mentioned:
            others.append(("other", attr.name))
        for v in (*elems.values(), *others):
            self.domains[v] = [False, True]
        every = (*elems.values(), *others)
        for leaf in leaves:
            op = leaf.op
            if op in ("exists", "missing"):
                want = op == "exists"
                self.models[leaf] = _Model(every, _presence(every, want))
                continue
            wanted = [leaf.value] if op == "contains" else list(leaf.value)
            keys = tuple(elems[_fold(w) if fold else w] for w in wanted)
            self.models[leaf] = _Model(keys, _membership(keys, op == "contains_all"))

    # --- scores and segments -------------------------------------------------------------

    def set_score_domain(self, score: ScoreDef, points: Sequence[int | float]) -> None:
        """Give a score the totals its (satisfiable) rules can add up to, capped and floored."""
        totals: set[Any] = {0}
        for p in points:
            totals |= {t + p for t in totals}
            if len(totals) > MAX_TOTALS:
                break
        if len(totals) > MAX_TOTALS:
            low = sum(p for p in points if p < 0)
            high = sum(p for p in points if p > 0)
            inner = _ordered_reps(self.score_points.get(score.name, []), "float")
            totals = {low, high, *(v for v in inner if low <= v <= high)}
        clamped = set()
        for t in totals:
            if score.cap is not None and t > score.cap:
                t = score.cap
            if score.floor is not None and t < score.floor:
                t = score.floor
            clamped.add(t)
        var: Var = ("score", score.name)
        self.domains[var] = sorted(clamped)

    def set_segment_domain(self, names: Iterable[str | None]) -> None:
        """The segments the tiers and personas may see."""
        self.domains[("segment",)] = list(dict.fromkeys(names))

    def model(self, leaf: Leaf) -> _Model:
        """The model of a leaf (scores and segment ones are built on first use)."""
        found = self.models.get(leaf)
        if found is not None:
            return found
        if leaf.kind == "score":
            var: Var = ("score", leaf.subject)
            made = _Model((var,), _number_test(leaf))
        elif leaf.kind == "segment":
            seg: Var = ("segment",)
            made = _Model((seg,), _plain_test(leaf, fold=False))
        else:  # an attribute leaf the constructor did not see: a synthetic band test
            made = _Model((("attr", leaf.subject),), _number_test(leaf))
        self.models[leaf] = made
        return made

    # --- the one question: can this condition hold? ----------------------------------------

    def eval3(self, cond: Condition, env: Env) -> bool | None:
        """The condition's truth under a partial assignment: ``None`` while undecided."""
        self.cost += 1
        if self.cost > BUDGET:
            raise _Budget
        if isinstance(cond, Leaf):
            return self.model(cond).value(env)
        if isinstance(cond, NotOf):
            inner = self.eval3(cond.item, env)
            return None if inner is None else not inner
        want_all = isinstance(cond, AllOf)
        undecided = False
        for item in cond.items:
            v = self.eval3(item, env)
            if v is None:
                undecided = True
            elif v is not want_all:
                return v
        return None if undecided else want_all

    def variables(self, cond: Condition) -> list[Var]:
        """The variables a condition reads, smallest domains first."""
        out: dict[Var, None] = {}
        for leaf in _leaves(cond):
            for v in self.model(leaf).vars:
                out[v] = None
        return sorted(out, key=lambda v: len(self.domains.get(v, ())))

    def can_hold(self, cond: Condition) -> bool:
        """``False`` only when no combination of values makes ``cond`` true (proved)."""
        self.cost = 0
        order = self.variables(cond)
        if any(v not in self.domains for v in order):
            return True  # a subject not analysed: unsure, say nothing
        env: Env = {}

        def search(i: int) -> bool:
            v = self.eval3(cond, env)
            if v is not None:
                return v
            if i == len(order):  # cannot happen: every variable is set
                return True
            var = order[i]
            for value in self.domains.get(var, ()):
                env[var] = value
                if search(i + 1):
                    return True
            env.pop(var, None)
            return False

        try:
            return search(0)
        except _Budget:
            return True  # unsure: say nothing


# --------------------------------------------------------------------------- leaf tests


def _number_test(leaf: Leaf) -> Callable[[Env], bool]:
    var: Var = (leaf.kind if leaf.kind != "attr" else "attr", leaf.subject)
    op, lit = leaf.op, leaf.value
    if op == "exists":
        return lambda env: bool(env[var] == env[var])
    if op == "missing":
        return lambda env: bool(env[var] != env[var])
    if op == "eq":
        return lambda env: bool(env[var] == lit)
    if op == "ne":
        return lambda env: bool(env[var] != lit)
    if op == "in":
        return lambda env: env[var] in lit
    if op == "not_in":
        return lambda env: env[var] not in lit
    if op == "gt":
        return lambda env: bool(env[var] > lit)
    if op == "gte":
        return lambda env: bool(env[var] >= lit)
    if op == "lt":
        return lambda env: bool(env[var] < lit)
    if op == "lte":
        return lambda env: bool(env[var] <= lit)
    if op == "between":
        low, high = lit
        return lambda env: bool(low <= env[var] <= high)
    raise ValueError(f"operator {op!r} on a number")  # the loader allows no other


def _plain_test(leaf: Leaf, *, fold: bool) -> Callable[[Env], bool]:
    """A test of a value that is ``None`` when blank (text, enum, boolean, dates, segment)."""
    var: Var = ("segment",) if leaf.kind == "segment" else ("attr", leaf.subject)
    op = leaf.op
    lit: Any = leaf.value
    if fold:
        lit = frozenset(_fold(v) for v in lit) if isinstance(lit, frozenset) else _fold(lit)
    if op == "exists":
        return lambda env: env[var] is not None
    if op == "missing":
        return lambda env: env[var] is None
    if op == "eq":
        return lambda env: bool(env[var] == lit)
    if op == "ne":
        return lambda env: bool(env[var] != lit)
    if op == "in":
        return lambda env: env[var] in lit
    if op == "not_in":
        return lambda env: env[var] not in lit
    if op == "matches":
        search = lit.search
        return lambda env: env[var] is not None and search(env[var]) is not None
    symbols: Mapping[str, Callable[[Any, Any], bool]] = {
        "gt": lambda a, b: bool(a > b),
        "gte": lambda a, b: bool(a >= b),
        "lt": lambda a, b: bool(a < b),
        "lte": lambda a, b: bool(a <= b),
    }
    if op in symbols:
        cmp = symbols[op]
        return lambda env: env[var] is not None and cmp(env[var], lit)
    if op == "between":
        low, high = lit
        return lambda env: env[var] is not None and bool(low <= env[var] <= high)
    raise ValueError(f"operator {op!r} here")  # the loader allows no other


def _age_test(leaf: Leaf) -> Callable[[Env], bool]:
    """A test of a date's age in days (``None`` when blank): within_days, older_than_days."""
    var: Var = ("attr", leaf.subject)
    op, days = leaf.op, leaf.value
    if op == "exists":
        return lambda env: env[var] is not None
    if op == "missing":
        return lambda env: env[var] is None
    if op == "within_days":  # from N days ago up to now; a future value is not within
        return lambda env: env[var] is not None and 0 <= env[var] <= days
    if op == "older_than_days":  # before the cut-off N days ago
        return lambda env: env[var] is not None and env[var] > days
    raise ValueError(f"operator {op!r} on an age")  # only relative tests come here


def _presence(keys: tuple[Var, ...], want: bool) -> Callable[[Env], bool]:
    return lambda env: any(env[k] for k in keys) is want


def _membership(keys: tuple[Var, ...], every: bool) -> Callable[[Env], bool]:
    if every:
        return lambda env: all(env[k] for k in keys)
    return lambda env: any(env[k] for k in keys)


# --------------------------------------------------------------------------- the checks


def _subjects(cond: Condition) -> str:
    names = dict.fromkeys(leaf.subject for leaf in _leaves(cond))
    return ", ".join(names)


def _common_location(cond: Condition) -> str:
    """The innermost table holding every test of ``cond`` (leaf locations end with the op)."""
    paths = [leaf.location.split(".")[:-1] for leaf in _leaves(cond) if leaf.location]
    if not paths:
        return ""
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if any(p != parts[0] for p in parts):
            break
        common.append(parts[0])
    return ".".join(common)


def _impossible_parts(a: _Analysis, cond: Condition) -> Iterator[Condition]:
    """The outermost parts of a satisfiable condition that can never hold themselves."""
    items: tuple[Condition, ...]
    if isinstance(cond, AllOf | AnyOf):
        items = cond.items
    elif isinstance(cond, NotOf):
        items = (cond.item,)
    else:
        return
    for item in items:
        if not a.can_hold(item):
            yield item
        else:
            yield from _impossible_parts(a, item)


def _check_condition(
    a: _Analysis, cond: Condition, where: str, what: str, out: list[LintWarning]
) -> bool:
    """Warn about an impossible condition or impossible parts of it; whether it can hold."""
    if not a.can_hold(cond):
        out.append(
            LintWarning(
                a.m.path,
                _key(where, "when"),
                f"{what} can never hold: no value of {_subjects(cond)} satisfies it",
                "impossible",
            )
        )
        return False
    for part in _impossible_parts(a, cond):
        loc = _common_location(part) or _key(where, "when")
        out.append(
            LintWarning(
                a.m.path,
                loc,
                f"this part of {what} can never hold: no value of {_subjects(part)} satisfies it",
                "impossible",
            )
        )
    return True


def _none_of(conds: Sequence[Condition]) -> list[Condition]:
    return [NotOf(c) for c in conds]


def _check_rules(
    a: _Analysis,
    key: str,
    what: str,
    rules: Sequence[RuleDef],
    out: list[LintWarning],
) -> tuple[list[str], list[Condition]]:
    """Warn about impossible and shadowed rules; the names that can win, and the live conditions."""
    reachable: list[str] = []
    above: list[tuple[int, RuleDef, Condition]] = []
    for i, rule in enumerate(rules):
        where = f"{key}[{i}]"
        if rule.when is None:
            if rule.default:
                rest = AllOf(tuple(_none_of([c for _, _, c in above]))) if above else None
                if rest is not None and not a.can_hold(rest):
                    out.append(
                        LintWarning(
                            a.m.path,
                            where,
                            f"default {what} {rule.name!r} is never reached: "
                            f"the {key} above it take every record",
                            "unreachable-default",
                        )
                    )
                else:
                    reachable.append(rule.name)
            continue
        label = f"the condition of {what} {rule.name!r}"
        if not _check_condition(a, rule.when, where, label, out):
            continue
        if above and not a.can_hold(AllOf((rule.when, *_none_of([c for _, _, c in above])))):
            single = [(j, r) for j, r, c in above if not a.can_hold(AllOf((rule.when, NotOf(c))))]
            if single:
                j, r = single[0]
                why = f"every record it matches is matched first by {key}[{j}] {r.name!r}"
            else:
                overlapping = [
                    f"{key}[{j}] {r.name!r}"
                    for j, r, c in above
                    if a.can_hold(AllOf((rule.when, c)))
                ]
                why = f"the {key} above it take every record it matches ({', '.join(overlapping)})"
            out.append(
                LintWarning(
                    a.m.path, where, f"{what} {rule.name!r} is never reached: {why}", "shadowed"
                )
            )
        else:
            reachable.append(rule.name)
        above.append((i, rule, rule.when))
    return reachable, [c for _, _, c in above]


def _check_score(a: _Analysis, score: ScoreDef, out: list[LintWarning]) -> None:
    where = _key("scores", score.name)
    live: list[int | float] = []
    for j, srule in enumerate(score.rules):
        label = f"the condition of {score.name} rule {srule.label!r}"
        if _check_condition(a, srule.when, f"{_key(where, 'rules')}[{j}]", label, out):
            live.append(srule.points)
    a.set_score_domain(score, live)
    high = sum(p for p in live if p > 0)
    low = sum(p for p in live if p < 0)
    if score.cap is not None and high < score.cap:
        out.append(
            LintWarning(
                a.m.path,
                _key(where, "cap"),
                f"cap {score.cap:g} is never reached: every positive rule of {score.name} "
                f"holding at once adds up to {high:g}",
                "unreachable-cap",
            )
        )
    if score.floor is not None and low > score.floor:
        out.append(
            LintWarning(
                a.m.path,
                _key(where, "floor"),
                f"floor {score.floor:g} is never reached: every negative rule of {score.name} "
                f"holding at once adds up to {low:g}",
                "unreachable-cap",
            )
        )


def _band(axis: Axis, i: int) -> Condition:
    """The condition for band ``i`` of a matrix axis, as the engine decides it."""
    parts: list[Condition] = []
    if i > 0:
        parts.append(NotOf(Leaf(axis.kind, axis.subject, "gte", axis.at_least[i - 1])))
    if i < len(axis.at_least):
        parts.append(Leaf(axis.kind, axis.subject, "gte", axis.at_least[i]))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _range_text(a: _Analysis, axis: Axis) -> str:
    values = a.domains.get((axis.kind, axis.subject), [])
    numbers = [v for v in values if isinstance(v, int | float) and v == v]
    if axis.kind != "score" or not numbers:
        return ""
    return f" ({axis.subject} is always between {min(numbers):g} and {max(numbers):g})"


def _check_matrix(a: _Analysis, overrides: list[Condition], out: list[LintWarning]) -> None:
    matrix = a.m.tier_matrix
    if matrix is None:
        return
    rows, cols = matrix.rows, matrix.columns
    row_ok = [a.can_hold(_band(rows, r)) for r in range(len(rows.at_least) + 1)]
    col_ok = [a.can_hold(_band(cols, c)) for c in range(len(cols.at_least) + 1)]
    rest = _none_of(overrides)
    for r, row in enumerate(matrix.cells):
        for c, tier in enumerate(row):
            where = f"tier_matrix.cells[{r}][{c}]"
            head = f"matrix cell {tier!r} ({rows.labels[r]} × {cols.labels[c]}) is never reached"
            if not row_ok[r]:
                why = f"no record is {rows.labels[r]}{_range_text(a, rows)}"
            elif not col_ok[c]:
                why = f"no record is {cols.labels[c]}{_range_text(a, cols)}"
            elif not a.can_hold(AllOf((_band(rows, r), _band(cols, c)))):
                why = "the two bands never occur together"
            elif rest and not a.can_hold(AllOf((_band(rows, r), _band(cols, c), *rest))):
                why = "the [[tiers]] rules above the matrix take every such record"
            else:
                continue
            out.append(LintWarning(a.m.path, where, f"{head}: {why}", "unreachable-tier"))


def lint_mapping(m: MappingDef) -> list[LintWarning]:
    """Every warning about a validated definition, in file order.

    Args:
        m: a definition the loader accepted.

    Returns:
        The warnings; empty when the definition says only what it means.

    """
    a = _Analysis(m)
    out: list[LintWarning] = []
    segments, _ = _check_rules(a, "segments", "segment", m.segments, out)
    seen: list[str | None] = list(segments)
    if "segment" in m.inherit:
        # An account's segment, named by another file: any text, or none.
        leaves = [leaf for cond in a._conditions() for leaf in _leaves(cond)]
        named = [v for leaf in leaves if leaf.kind == "segment" for v in _literals(leaf)]
        seen += [*named, None, "\x00segsync lint: another segment\x00"]
    a.set_segment_domain(seen)
    for score in m.scores.values():
        _check_score(a, score, out)
    tier_out: list[LintWarning] = []
    _, overrides = _check_rules(a, "tiers", "tier", m.tiers, tier_out)
    # A tier rule out of reach because of the scores' ranges is an unreachable tier.
    out.extend(
        LintWarning(w.file, w.location, w.message, "unreachable-tier")
        if w.kind in ("shadowed", "impossible") and _reads_score(m, w.location)
        else w
        for w in tier_out
    )
    _check_matrix(a, overrides, out)
    _check_rules(a, "personas", "persona", m.personas, out)
    out.extend(_check_rollups(m))
    return out


def _check_rollups(m: MappingDef) -> list[LintWarning]:
    """Rollups that count no deal in a CRM the definition writes to.

    A Salesforce Opportunity has no pipeline (HubSpot's), so a ``pipeline``
    filter matches none of its deals: on Salesforce the rollup is always 0
    (or blank), whatever the deals.
    """
    if "salesforce" not in m.outputs:
        return []
    return [
        LintWarning(
            m.path,
            f"attributes.{name}.rollup.pipeline",
            f"rollup {name!r} keeps only deals in pipeline "
            f"{' or '.join(sorted(rollup.pipelines))}: Salesforce opportunities have no "
            "pipeline, so on Salesforce it counts no deal (filter on `type` there, or give "
            "Salesforce a mapping of its own)",
            "no-deals",
        )
        for name, rollup in m.rollups.items()
        if rollup.pipelines is not None
    ]


def _reads_score(m: MappingDef, location: str) -> bool:
    """Whether the tier rule at ``location`` (``tiers[i]…``) tests a score."""
    found = re.match(r"tiers\[(\d+)\]", location)
    if found is None:
        return False
    rule = m.tiers[int(found.group(1))]
    return any(leaf.kind == "score" for leaf in _leaves(rule.when))


def lint_all(mappings: Iterable[MappingDef]) -> list[LintWarning]:
    """:func:`lint_mapping` over several definitions, in order."""
    return [w for m in mappings for w in lint_mapping(m)]
