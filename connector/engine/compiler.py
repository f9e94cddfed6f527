"""Compile a :class:`MappingDef` into generated Python functions.

``evaluate`` has :meth:`Engine.evaluate`'s signature and one straight-line
branch per CRM (the source fields differ, the decisions do not);
``evaluate_at`` is the same body taking the time thresholds instead of
``now``, for the due-date search.

Why generated code: evaluating a record through a tree of closures costs a
function call per test; a generated ``if``/``elif`` chain of inline
comparisons runs several times faster (BENCHMARKS.md §4 has the figures,
measured on records as a sync pulls them). The generated source never contains text from the
mapping file: every name, field and literal is passed in as a constant
(``k12``), so nothing in a mapping can inject code.

The generated function returns an interned :class:`Assignment`. Everything an
assignment holds (segment, tier, scores, persona, reason) is a function of a
small key: which segment, which tier, which score rules hit, which persona.
So the reason line is built once per distinct key, not once per record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, NamedTuple

from connector.engine.assignment import (
    Assignment,
    Scores,
    join_reason,
    points_text,
    reason_line,
    score_text,
)
from connector.engine.coerce import MISSING, Coercer, make_coercer
from connector.engine.rollups import rollup_key
from connector.mapping.models import (
    CRMS,
    AllOf,
    AnyOf,
    AttributeDef,
    Axis,
    Condition,
    Leaf,
    MappingDef,
    NotOf,
    RuleDef,
    TierMatrix,
)

#: Distinct assignments remembered per engine (keyed by decisions, not records).
INTERN_LIMIT = 100_000
#: Scores with at most this many rules take their value from a table of every hit
#: pattern (4,096 entries at most) instead of adding points record by record.
TABLE_RULES = 12

Threshold = date | datetime
#: (attribute type, days) → threshold; computed from ``now`` per call. Days
#: :data:`PRESENT` (never a valid day count) stands for "now" itself: today
#: for ``date`` attributes, the instant for ``datetime`` ones.
ThresholdKey = tuple[str, int]
PRESENT = -1

#: Operators that compare free text case-insensitively (see :func:`folds`).
FOLDED_OPS = frozenset({"eq", "ne", "in", "not_in", "contains", "contains_any", "contains_all"})


def nested_get(fields: Mapping[str, Any], path: str) -> Any:
    """Read ``Account.Name`` from a flat export column or a nested API record."""
    value = fields.get(path)
    if value is not None:
        return value
    current: Any = fields
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def utc_now(now: datetime) -> datetime:
    """``now`` as an aware UTC datetime (a naive ``now`` is taken to be UTC)."""
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def thresholds(
    keys: tuple[ThresholdKey, ...], now: datetime, zone: tzinfo = UTC
) -> tuple[Threshold, ...]:
    """The cut-off instant (datetime attributes) or calendar day (date attributes) per key.

    A ``date`` attribute counts calendar days in the mapping's ``zone``:
    "within 30 days" is today there and the 30 days before. A ``datetime``
    attribute counts exact 24-hour days back from the instant ``now``.
    """
    now_utc = utc_now(now)
    today = now_utc.astimezone(zone).date()
    out: list[Threshold] = []
    for attr_type, days in keys:
        if attr_type == "date":
            out.append(today if days == PRESENT else today - timedelta(days=days))
        else:
            out.append(now_utc if days == PRESENT else now_utc - timedelta(days=days))
    return tuple(out)


def folds(attr: AttributeDef) -> bool:
    """Whether the attribute's values are free text compared case-insensitively.

    Enum values and set elements with ``values`` are canonical already (matched
    case-insensitively when read); free ``string`` values and free ``set``
    elements keep the record's casing for display and are case-folded to compare.
    """
    return attr.type == "string" or (attr.type == "set" and attr.values is None)


def folded_test(attr: AttributeDef, op: str) -> bool:
    """Whether test ``op`` on ``attr`` compares case-folded text.

    ``contains`` on a string is a substring test that folds on its own.
    """
    return op in FOLDED_OPS and folds(attr) and not (op == "contains" and attr.type == "string")


def fold(value: Any) -> Any:
    """The case-folded form of a text value, a set of texts, or a literal (others unchanged)."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, frozenset):
        return frozenset(v.casefold() if isinstance(v, str) else v for v in value)
    return value


def score_total(
    points: tuple[float | int, ...], mask: int, cap: float | int | None, floor: float | int | None
) -> float | int:
    """Sum of the points of the rules whose bit is set in ``mask``, then cap and floor.

    The generated code adds in the same order, so both give identical floats.
    """
    total: float | int = 0
    for i, p in enumerate(points):
        if mask >> i & 1:
            total += p
    if cap is not None and total > cap:
        total = cap
    if floor is not None and total < floor:
        total = floor
    return total


class ScorePart(NamedTuple):
    """One score of one decision key: its value, the labels of the rules that hit, its text."""

    name: str
    value: float | int
    hits: tuple[str, ...]
    text: str


def _reason(head: Sequence[str], parts: Sequence[ScorePart], tail: Sequence[str] = ()) -> str:
    """:func:`reason_line` over score parts, joining their cached texts when nothing is cut."""
    line = join_reason(head, [p.text for p in parts], tail)
    if line is None:
        line = reason_line(head, [(p.name, p.value, p.hits) for p in parts], tail)
    return line


class _Gen:
    """Accumulates generated source lines and the constants they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self._ids: dict[tuple[type, Any], str] = {}

    def const(self, value: Any) -> str:
        """A name bound to ``value`` in the generated module's namespace."""
        try:
            key: tuple[type, Any] = (type(value), value)
            hash(key)
        except TypeError:
            key = (type(value), id(value))
        name = self._ids.get(key)
        if name is None:
            name = f"k{len(self.consts)}"
            self.consts[name] = value
            self._ids[key] = name
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _sentinel(attr_type: str) -> str:
    """What a missing value is in generated code: NaN for numbers, {} for sets."""
    if attr_type in ("integer", "number"):
        return "NAN"
    if attr_type == "set":
        return "EMPTY"
    return ""


def _bad_crm(crm: object) -> ValueError:
    return ValueError(f"unknown CRM {crm!r} (expected one of: {', '.join(CRMS)})")


class Compiler:
    """Turns one definition into per-CRM evaluators sharing one intern table."""

    def __init__(self, mapping: MappingDef) -> None:
        self.m = mapping
        self.coercers: dict[str, Coercer] = {
            name: make_coercer(attr, mapping.zone) for name, attr in mapping.attributes.items()
        }
        self.score_list = list(mapping.scores.values())
        # Global bit index of every score rule, in definition order.
        self.rule_bits: list[list[int]] = []
        # The same as (first bit, mask of the score's width), to cut a score's bits out of a key.
        self.rule_spans: list[tuple[int, int]] = []
        bit = 0
        for score in self.score_list:
            self.rule_bits.append(list(range(bit, bit + len(score.rules))))
            self.rule_spans.append((bit, (1 << len(score.rules)) - 1))
            bit += len(score.rules)
        self._parts: list[dict[int, ScorePart]] = [{} for _ in self.score_list]
        self.intern: dict[tuple[Any, ...], Assignment] = {}
        # The scores each classification reads (matrix axes, rule tests): its reason shows them.
        self.class_scores: dict[str, list[str]] = {
            name: _scores_read(c.tiers, c.matrix, list(mapping.scores))
            for name, c in mapping.classifications.items()
        }
        # Scores only classifications read stay out of the main reason line (their own
        # reasons show them): adding a classification leaves the main reason unchanged.
        main_read = set(_scores_read(mapping.tiers, mapping.tier_matrix, list(mapping.scores)))
        self.class_only_scores = {
            s for names in self.class_scores.values() for s in names if s not in main_read
        }
        # Plain dicts (not read-only proxies) so that assignments pickle.
        self.output_spec: Mapping[str, Mapping[str, str]] = {
            crm: dict(spec) for crm, spec in mapping.outputs.items()
        }

    # --- building assignments (once per distinct decision key) -----------------------------

    def _score_part(self, index: int, mask: int) -> ScorePart:
        """Score ``index``'s value, hits and reason text when the rules in ``mask`` hold.

        ``mask`` has one bit per rule of that score (bit 0: its first rule).
        Cached: a score has few distinct hit patterns, while decision keys
        (every score's pattern together) are many.
        """
        cache = self._parts[index]
        part = cache.get(mask)
        if part is None:
            score = self.score_list[index]
            points = tuple(r.points for r in score.rules)
            value = score_total(points, mask, score.cap, score.floor)
            hits = tuple(
                f"{r.label} {points_text(r.points)}"
                for j, r in enumerate(score.rules)
                if mask >> j & 1
            )
            part = ScorePart(score.name, value, hits, score_text(score.name, value, hits))
            if len(cache) < INTERN_LIMIT:
                cache[mask] = part
        return part

    def build(self, key: tuple[Any, ...]) -> Assignment:
        """Create (and intern) the assignment for one decision key."""
        segment, tier, mask, persona, inherited = key[:5]
        classes = key[5:]
        score_parts = [
            self._score_part(i, mask >> offset & width)
            for i, (offset, width) in enumerate(self.rule_spans)
        ]
        scores: dict[str, float | int] = {part.name: part.value for part in score_parts}
        head = [tier, segment]
        if persona is not None:
            head.insert(0, persona)
        tail = []
        if inherited:
            which = " and ".join(sorted(self.m.inherit))
            tail.append(f"{which} from account")
        elif self.m.inherit and self.m.object == "contact":
            tail.append("no account")
        main_parts = [p for p in score_parts if p.name not in self.class_only_scores]
        reason = _reason(head, main_parts, tail)
        by_score = {part.name: part for part in score_parts}
        class_reasons = {
            name: _reason([value], [by_score[s] for s in self.class_scores[name]])
            for name, value in zip(self.m.classifications, classes, strict=True)
        }
        assignment = Assignment(
            segment=segment,
            tier=tier,
            scores=Scores(scores),
            persona=persona,
            version=self.m.version,
            reason=reason,
            output_spec=self.output_spec,
            classifications=dict(zip(self.m.classifications, classes, strict=True)),
            classification_reasons=class_reasons,
        )
        if len(self.intern) < INTERN_LIMIT:
            self.intern[key] = assignment
        return assignment

    # --- code generation ------------------------------------------------------------------

    def compile(
        self, due_values: Mapping[str, Sequence[str]] | None = None
    ) -> tuple[Callable[..., Assignment], str]:
        """Generate and compile ``evaluate(fields, crm, now, parent=None)`` for all CRMs.

        Args:
            due_values: per CRM, the attributes whose values the due-date
                search needs (:func:`connector.engine.due.probe_attributes`).
                When given, also ``evaluate_due`` (:attr:`evaluate_due`): the
                same evaluation returning ``(assignment, values)``, the values
                of those attributes as it read them, in that order.

        Returns:
            The function and its source (for :meth:`Engine.source`).

        """
        g = _Gen()
        threshold_keys: list[ThresholdKey] = []
        bodies = {crm: self._body(g, crm, threshold_keys) for crm in CRMS}
        head = []
        if threshold_keys:
            # Thresholds depend only on `now`, which is one value for a whole run:
            # recompute them only when a different `now` object arrives. The
            # (now, thresholds) pair is replaced as one tuple, so threads never
            # see a mixed pair.
            head = [
                "    c = NOWC[0]",
                "    if c[0] is not now:",
                "        c = (now, CUTS(KEYS, now, ZONE))",
                "        NOWC[0] = c",
                "    T = c[1]",
            ]

        def dispatch_of(returns: Mapping[str, str]) -> list[str]:
            out: list[str] = []
            for i, crm in enumerate(CRMS):
                out.append(f"    {'if' if i == 0 else 'elif'} crm == {g.const(crm)}:")
                body = bodies[crm]
                if body[-1] != "    return a":
                    raise AssertionError("the generated body ends in its return")
                out.extend("    " + line for line in body[:-1])
                out.append(f"        return {returns.get(crm, 'a')}")
            out.append("    raise BADCRM(crm)")
            return out

        dispatch = dispatch_of({})
        # The same body again, taking the thresholds instead of `now`: the due-date
        # search evaluates a record at other instants without disturbing the run's.
        lines = [
            "def evaluate(fields, crm, now, parent=None):",
            *head,
            *dispatch,
            "",
            "",
            "def evaluate_at(fields, crm, T, parent=None):",
            *dispatch,
        ]
        if due_values is not None:
            # And once more for the due-date search at `now`: the assignment and the
            # time-tested attributes' values it read, so they are not read again.
            attr_var = {name: f"a{i}" for i, name in enumerate(self.m.attributes)}
            used = self._used_attributes()
            if any(n not in used for names in due_values.values() for n in names):
                raise ValueError("a time-tested attribute no test reads")  # leaves() reads them
            returns = {
                crm: f"a, ({''.join(attr_var[name] + ', ' for name in due_values.get(crm, ()))})"
                for crm in CRMS
            }
            lines += ["", "", "def evaluate_due(fields, crm, now, parent=None):", *head]
            lines += dispatch_of(returns)
        source = "\n".join(lines) + "\n"
        namespace: dict[str, Any] = dict(g.consts)
        namespace.update(
            INTERN=self.intern,
            BUILD=self.build,
            MISS=MISSING,
            NAN=math.nan,
            EMPTY=frozenset(),
            NOWC=[(None, ())],
            CUTS=thresholds,
            KEYS=tuple(threshold_keys),
            ZONE=self.m.zone,
            FOLD=fold,
            BADCRM=_bad_crm,
        )
        code = compile(source, f"<segsync mapping {self.m.path}>", "exec")
        exec(code, namespace)
        keys, zone = tuple(threshold_keys), self.m.zone
        # evaluate(fields, crm, now, parent) is evaluate_at(fields, crm, cuts(now), parent).
        self.evaluate_at: Callable[..., Assignment] = namespace["evaluate_at"]
        self.evaluate_due: Callable[..., tuple[Assignment, tuple[Any, ...]]] | None = namespace.get(
            "evaluate_due"
        )
        self.cuts: Callable[[datetime], tuple[Threshold, ...]] = lambda now: thresholds(
            keys, now, zone
        )
        return namespace["evaluate"], source

    def _body(self, g: _Gen, crm: str, threshold_keys: list[ThresholdKey]) -> list[str]:
        """The statements evaluating one record of ``crm`` (indented one level)."""
        g.lines = []
        m = self.m
        used = self._used_attributes()
        attr_var = {name: f"a{i}" for i, name in enumerate(m.attributes)}
        # Free-text attributes some case-insensitive test reads: their folded copy.
        folded = self._folded_attributes()
        folded_var = {name: f"f{i}" for i, name in enumerate(m.attributes) if name in folded}
        score_var = {s.name: f"s{i}" for i, s in enumerate(self.score_list)}

        def threshold(attr_type: str, days: int) -> str:
            tk = (attr_type, days)
            if tk not in threshold_keys:
                threshold_keys.append(tk)
            return f"T[{threshold_keys.index(tk)}]"

        # Attribute tests read more than once and always evaluated: each is computed
        # once into a local (``t0``…) and read from it (see _shared_tests).
        shared: dict[str, str] = {}

        def leaf_expr(leaf: Leaf) -> str:
            expr = test_expr(leaf)
            return shared.get(expr, expr)

        def test_expr(leaf: Leaf) -> str:
            if leaf.kind == "segment":
                return f"(seg {'==' if leaf.op == 'eq' else 'in'} {g.const(leaf.value)})"
            if leaf.kind == "score":
                # Scores are never missing: no None guard needed.
                var = score_var[leaf.subject]
                symbols = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
                if leaf.op in symbols:
                    return f"({var} {symbols[leaf.op]} {g.const(leaf.value)})"
                attr_type = "number"
            else:
                var = attr_var[leaf.subject]
                attr_type = m.attributes[leaf.subject].type
            op, v = leaf.op, leaf.value
            if leaf.kind == "attr" and folded_test(m.attributes[leaf.subject], op):
                # Free text: compare the case-folded value with the case-folded literal.
                var, v = folded_var[leaf.subject], fold(v)
            # Missing numbers are NaN and missing sets are the empty set in the
            # generated code (see _sentinel): every comparison with NaN is false
            # and NaN != x is true, which is exactly the documented semantics of
            # a blank, without an `is not None` guard per test.
            nan = attr_type in ("integer", "number") and leaf.kind == "attr"
            empty = attr_type == "set"
            if op == "exists":
                if nan:
                    return f"({var} == {var})"
                if empty:
                    return f"({var} != EMPTY)"
                return f"({var} is not None)"
            if op == "missing":
                if nan:
                    return f"({var} != {var})"
                if empty:
                    return f"({var} == EMPTY)"
                return f"({var} is None)"
            guard = "" if nan or empty else f"{var} is not None and "
            if op == "eq":
                return f"({var} == {g.const(v)})"
            if op == "ne":
                return f"({var} != {g.const(v)})"
            if op == "in":
                return f"({var} in {g.const(v)})"
            if op == "not_in":
                return f"({var} not in {g.const(v)})"
            symbols = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
            if op in symbols:
                return f"({guard}{var} {symbols[op]} {g.const(v)})"
            if op == "between":
                low, high = g.const(v[0]), g.const(v[1])
                return f"({guard}{low} <= {var} <= {high})"
            if op == "contains":
                if attr_type == "string":
                    return f"({guard}{g.const(v)} in {var}.casefold())"
                return f"({guard}{g.const(v)} in {var})"
            if op == "contains_any":
                return f"({guard}not {g.const(v)}.isdisjoint({var}))"
            if op == "contains_all":
                return f"({guard}{g.const(v)} <= {var})"
            if op == "matches":
                return f"({guard}{g.const(v.search)}({var}) is not None)"
            if op == "within_days":
                # Up to now, not beyond: a future date has not happened "within" anything.
                low, high = threshold(attr_type, v), threshold(attr_type, PRESENT)
                return f"({guard}{low} <= {var} <= {high})"
            if op == "older_than_days":
                return f"({guard}{var} < {threshold(attr_type, v)})"
            raise ValueError(f"unsupported operator {op!r}")  # the loader rejects these

        def cond_expr(cond: Condition) -> str:
            if isinstance(cond, Leaf):
                return leaf_expr(cond)
            if isinstance(cond, AllOf):
                return "(" + " and ".join(cond_expr(c) for c in cond.items) + ")"
            if isinstance(cond, AnyOf):
                return "(" + " or ".join(cond_expr(c) for c in cond.items) + ")"
            if isinstance(cond, NotOf):
                return f"(not {cond_expr(cond.item)})"
            raise TypeError(cond)

        def rules_chain(indent: int, var: str, rules: tuple[RuleDef, ...], fallback: str) -> None:
            first = True
            for rule in rules:
                if rule.default or rule.when is None:
                    continue
                kw = "if" if first else "elif"
                g.emit(indent, f"{kw} {cond_expr(rule.when)}:")
                g.emit(indent + 1, f"{var} = {g.const(rule.name)}")
                first = False
            if first:
                g.emit(indent, fallback)
            else:
                g.emit(indent, "else:")
                g.emit(indent + 1, fallback)

        def default_of(rules: tuple[RuleDef, ...]) -> str | None:
            for rule in rules:
                if rule.default:
                    return rule.name
            return None

        def axis_expr(axis: Axis) -> str:
            var = score_var[axis.subject] if axis.kind == "score" else attr_var[axis.subject]
            # A missing attribute is NaN here: no band test holds, so it lands in the last band.
            expr = str(len(axis.at_least))
            for i in range(len(axis.at_least) - 1, -1, -1):
                expr = f"({i} if {var} >= {g.const(axis.at_least[i])} else {expr})"
            return expr

        g.emit(1, "get = fields.get")
        for name, attr in m.attributes.items():
            if name not in used:
                continue
            source = rollup_key(name) if attr.rollup is not None else attr.sources.get(crm)
            var = attr_var[name]
            coerce = g.const(self.coercers[name].fast)
            sentinel = _sentinel(attr.type)
            if source is None:
                # No source in this CRM: the attribute is always blank here.
                g.emit(1, f"{var} = {coerce}(None)")
                if sentinel:
                    g.emit(1, f"if {var} is None:")
                    g.emit(2, f"{var} = {sentinel}")
                if name in folded_var:
                    g.emit(1, f"{folded_var[name]} = FOLD({var})")
                continue
            if "." in source:
                g.emit(1, f"v = {g.const(nested_get)}(fields, {g.const(source)})")
            else:
                g.emit(1, f"v = get({g.const(source)})")
            if attr.type in ("integer", "number"):
                # Fast paths for the two common shapes: a JSON number (Salesforce)
                # and plain ASCII digits (HubSpot). Everything else (signs,
                # decimals, commas, currency) goes through the memoized coercer,
                # which alone decides what text reads as a number: int() and
                # float() would also take "1_000", " 12 " or non-ASCII digits.
                # `v - v == 0.0` is false for NaN and infinities, which are blank.
                if attr.type == "integer":
                    g.emit(1, "if v.__class__ is int:")
                else:
                    g.emit(1, "if v.__class__ is int or (v.__class__ is float and v - v == 0.0):")
                g.emit(2, f"{var} = v")
                # Blank as each API sends it (Salesforce null, HubSpot ""): the
                # attribute's blank value, as the coercer gives, without calling it.
                g.emit(1, 'elif v is None or v == "":')
                g.emit(2, f"{var} = {g.const(attr.blank)}")
                # Short enough for int() (Python refuses over 4,300 digits: the
                # coercer reads those as unreadable, i.e. blank, and never raises).
                g.emit(
                    1, "elif v.__class__ is str and v.isdigit() and v.isascii() and len(v) < 19:"
                )
                g.emit(2, f"{var} = int(v)")
                if attr.type == "number":
                    # Plain ASCII digits with one dot ("1234.5", ".5", "5."), HubSpot's
                    # spelling of a decimal: float() reads it exactly as parse_number
                    # does (which returns an integral value as an int: equal in every
                    # comparison). Under 300 characters, float() cannot overflow.
                    g.emit(
                        1,
                        'elif v.__class__ is str and "." in v and v.isascii() and len(v) < 300'
                        ' and v.replace(".", "", 1).isdigit():',
                    )
                    g.emit(2, f"{var} = float(v)")
                g.emit(1, "else:")
                g.emit(2, f"{var} = {coerce}(v)")
            elif attr.type == "boolean":
                g.emit(1, f"{var} = v if v.__class__ is bool else {coerce}(v)")
            else:
                memo_get = g.const(self.coercers[name].memo.get)
                g.emit(1, "if v.__class__ is str:")
                g.emit(2, f"{var} = {memo_get}(v, MISS)")
                g.emit(2, f"if {var} is MISS:")
                g.emit(3, f"{var} = {g.const(self.coercers[name].text)}(v)")
                g.emit(1, "elif v is None:")
                g.emit(2, f"{var} = {g.const(attr.blank)}")
                g.emit(1, "else:")
                g.emit(2, f"{var} = {coerce}(v)")
            if sentinel and attr.blank is None:
                g.emit(1, f"if {var} is None:")
                g.emit(2, f"{var} = {sentinel}")
            if name in folded_var:
                fvar = folded_var[name]
                if attr.type == "set":
                    g.emit(1, f"{fvar} = FOLD({var}) if {var} else EMPTY")
                else:
                    g.emit(1, f"{fvar} = {var}.casefold() if {var} is not None else None")

        for leaf in self._shared_tests(test_expr):
            expr = test_expr(leaf)
            if expr not in shared:
                var = f"t{len(shared)}"
                g.emit(1, f"{var} = {expr}")
                shared[expr] = var
        inherit_segment = "segment" in m.inherit
        inherit_tier = "tier" in m.inherit
        # segment
        seg_default = default_of(m.segments)
        seg_fallback = f"seg = {g.const(seg_default)}"
        if inherit_segment:
            g.emit(1, "if parent is not None:")
            g.emit(2, "seg = parent.segment")
            g.emit(1, "else:")
            rules_chain(2, "seg", m.segments, seg_fallback)
        else:
            rules_chain(1, "seg", m.segments, seg_fallback)
        # scores: each rule that holds sets its bit in `m`; a score of up to
        # TABLE_RULES rules then reads its value from a table indexed by its bits
        # (score_total of every hit pattern: the same additions in the same order,
        # so the same floats), wider ones add up as they go.
        g.emit(1, "m = 0")
        for score, bits in zip(self.score_list, self.rule_bits, strict=True):
            var = score_var[score.name]
            width = len(score.rules)
            if width <= TABLE_RULES:
                for rule, b in zip(score.rules, bits, strict=True):
                    g.emit(1, f"if {cond_expr(rule.when)}:")
                    g.emit(2, f"m |= {1 << b}")
                points = tuple(r.points for r in score.rules)
                table = tuple(
                    score_total(points, mask, score.cap, score.floor) for mask in range(1 << width)
                )
                offset = bits[0] if bits else 0
                g.emit(1, f"{var} = {g.const(table)}[m >> {offset} & {(1 << width) - 1}]")
                continue
            g.emit(1, f"{var} = 0")
            for rule, b in zip(score.rules, bits, strict=True):
                g.emit(1, f"if {cond_expr(rule.when)}:")
                g.emit(2, f"{var} += {g.const(rule.points)}")
                g.emit(2, f"m |= {1 << b}")
            if score.cap is not None:
                g.emit(1, f"if {var} > {g.const(score.cap)}:")
                g.emit(2, f"{var} = {g.const(score.cap)}")
            if score.floor is not None:
                g.emit(1, f"if {var} < {g.const(score.floor)}:")
                g.emit(2, f"{var} = {g.const(score.floor)}")
        # tier
        matrix = m.tier_matrix
        if matrix is not None:
            cells = g.const(matrix.cells)
            tier_fallback = f"tier = {cells}[{axis_expr(matrix.rows)}][{axis_expr(matrix.columns)}]"
        else:
            tier_fallback = f"tier = {g.const(default_of(m.tiers))}"
        if inherit_tier:
            g.emit(1, "if parent is not None:")
            g.emit(2, "tier = parent.tier")
            g.emit(1, "else:")
            rules_chain(2, "tier", m.tiers, tier_fallback)
        else:
            rules_chain(1, "tier", m.tiers, tier_fallback)
        # persona
        if m.personas:
            rules_chain(1, "persona", m.personas, f"persona = {g.const(default_of(m.personas))}")
        else:
            g.emit(1, "persona = None")
        # further classifications: each decided like the tier, never inherited
        class_vars = []
        for i, cdef in enumerate(m.classifications.values()):
            var = f"c{i}"
            class_vars.append(var)
            if cdef.matrix is not None:
                cells = g.const(cdef.matrix.cells)
                fallback = (
                    f"{var} = {cells}[{axis_expr(cdef.matrix.rows)}]"
                    f"[{axis_expr(cdef.matrix.columns)}]"
                )
            else:
                fallback = f"{var} = {g.const(default_of(cdef.tiers))}"
            rules_chain(1, var, cdef.tiers, fallback)
        inherited = "parent is not None" if m.inherit else "False"
        extra = "".join(f", {v}" for v in class_vars)
        g.emit(1, f"key = (seg, tier, m, persona, {inherited}{extra})")
        g.emit(1, "a = INTERN.get(key)")
        g.emit(1, "if a is None:")
        g.emit(2, "a = BUILD(key)")
        g.emit(1, "return a")

        return g.lines

    def _shared_tests(self, expr: Callable[[Leaf], str]) -> list[Leaf]:
        """Attribute tests worth computing once: read twice or more, and always evaluated.

        A test is always evaluated when it is a score rule's condition (every
        score rule is tried on every record), the first rule's condition of an
        ordered rule list, or the first item of such an ``all`` / ``any`` /
        ``not`` (later items may be cut short). Computing such a test up front
        costs nothing it would not cost anyway; tests are pure and never raise,
        so where they are computed does not change any result. Tests of scores
        and the segment are left where they are (they read values computed
        later). ``expr`` gives a test's generated expression: equal
        expressions are one test.
        """
        m = self.m
        counts: dict[str, int] = {}
        always: list[Leaf] = []

        def walk(cond: Condition | None, first: bool) -> None:
            if isinstance(cond, Leaf):
                if cond.kind == "attr":
                    key = expr(cond)
                    counts[key] = counts.get(key, 0) + 1
                    if first:
                        always.append(cond)
            elif isinstance(cond, AllOf | AnyOf):
                for i, c in enumerate(cond.items):
                    walk(c, first and i == 0)
            elif isinstance(cond, NotOf):
                walk(cond.item, first)

        for rules in (m.segments, *m.tier_rule_sets(), m.personas):
            conditions = [r.when for r in rules if not r.default and r.when is not None]
            for i, when in enumerate(conditions):
                walk(when, i == 0)
        for score in m.scores.values():
            for srule in score.rules:
                walk(srule.when, True)
        return [leaf for leaf in always if counts[expr(leaf)] > 1]

    def _folded_attributes(self) -> set[str]:
        """Free-text attributes read by a case-insensitive comparison (see :func:`folds`)."""
        m = self.m
        out: set[str] = set()

        def walk(cond: Condition | None) -> None:
            if cond is None:
                return
            if isinstance(cond, Leaf):
                attr = m.attributes.get(cond.subject) if cond.kind == "attr" else None
                if attr is not None and folded_test(attr, cond.op):
                    out.add(cond.subject)
            elif isinstance(cond, AllOf | AnyOf):
                for c in cond.items:
                    walk(c)
            elif isinstance(cond, NotOf):
                walk(cond.item)

        for rules in (m.segments, *m.tier_rule_sets(), m.personas):
            for rule in rules:
                walk(rule.when)
        for score in m.scores.values():
            for srule in score.rules:
                walk(srule.when)
        return out

    def _used_attributes(self) -> set[str]:
        """Attributes some condition or matrix axis reads (others need no coercion)."""
        m = self.m
        used: set[str] = set()

        def walk(cond: Condition | None) -> None:
            if cond is None:
                return
            if isinstance(cond, Leaf):
                if cond.kind == "attr":
                    used.add(cond.subject)
            elif isinstance(cond, AllOf | AnyOf):
                for c in cond.items:
                    walk(c)
            elif isinstance(cond, NotOf):
                walk(cond.item)

        for rules in (m.segments, *m.tier_rule_sets(), m.personas):
            for rule in rules:
                walk(rule.when)
        for score in m.scores.values():
            for srule in score.rules:
                walk(srule.when)
        for matrix in m.matrices():
            for axis in (matrix.rows, matrix.columns):
                if axis.kind == "attr":
                    used.add(axis.subject)
        return used


def _scores_read(
    rules: tuple[RuleDef, ...], matrix: TierMatrix | None, order: list[str]
) -> list[str]:
    """The scores a tiering reads (rule tests, matrix axes), in definition order."""
    read: set[str] = set()

    def walk(cond: Condition | None) -> None:
        if isinstance(cond, Leaf):
            if cond.kind == "score":
                read.add(cond.subject)
        elif isinstance(cond, AllOf | AnyOf):
            for c in cond.items:
                walk(c)
        elif isinstance(cond, NotOf):
            walk(cond.item)

    for rule in rules:
        walk(rule.when)
    if matrix is not None:
        for axis in (matrix.rows, matrix.columns):
            if axis.kind == "score":
                read.add(axis.subject)
    return [name for name in order if name in read]
