"""Load and validate a mapping file, collecting every problem before raising.

The loader walks the parsed TOML by hand rather than through generic model
validation so that each problem names the exact TOML location
(``segments[2].when.all[0].attr``), says what was expected in the words of the
mapping language, and suggests the nearest valid name for a typo.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

from connector.errors import MappingError, Problem
from connector.mapping.models import (
    ATTR_TYPES,
    CRMS,
    OBJECT_CRMS,
    OBJECTS,
    PERSON_OBJECTS,
    AllOf,
    AnyOf,
    AttributeDef,
    AttrType,
    Axis,
    ClassificationDef,
    Condition,
    Leaf,
    MappingDef,
    NotOf,
    RollupDef,
    RuleDef,
    ScoreDef,
    ScoreRule,
    SubjectKind,
    TierMatrix,
    zone_of,
)
from connector.mapping.render import condition_text
from connector.mapping.values import norm_key, parse_date, parse_datetime

#: Every operator of the language.
OPERATORS: tuple[str, ...] = (
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "contains",
    "contains_any",
    "contains_all",
    "exists",
    "missing",
    "matches",
    "within_days",
    "older_than_days",
)

_PRESENCE = ("exists", "missing")
_ORDER = ("gt", "gte", "lt", "lte", "between")
#: Which operators apply to which attribute type.
TYPE_OPERATORS: dict[str, tuple[str, ...]] = {
    "string": ("eq", "ne", "in", "not_in", "contains", "matches", *_PRESENCE),
    "enum": ("eq", "ne", "in", "not_in", "matches", *_PRESENCE),
    "integer": ("eq", "ne", "in", "not_in", *_ORDER, *_PRESENCE),
    "number": ("eq", "ne", "in", "not_in", *_ORDER, *_PRESENCE),
    "boolean": ("eq", "ne", *_PRESENCE),
    "date": ("eq", "ne", *_ORDER, "within_days", "older_than_days", *_PRESENCE),
    "datetime": ("eq", "ne", *_ORDER, "within_days", "older_than_days", *_PRESENCE),
    "set": ("contains", "contains_any", "contains_all", *_PRESENCE),
}
SCORE_OPERATORS: tuple[str, ...] = ("eq", "ne", "in", "not_in", *_ORDER)

_TOP_KEYS = (
    "object",
    "version",
    "description",
    "attributes",
    "segments",
    "scores",
    "tiers",
    "tier_matrix",
    "classifications",
    "personas",
    "inherit",
    "lock",
    "outputs",
    "timezone",
)
_ATTR_KEYS = (
    "type",
    "salesforce",
    "hubspot",
    "synonyms",
    "values",
    "unknown",
    "blank",
    "description",
)
_RULE_KEYS = ("name", "when", "default", "description")
_SCORE_KEYS = ("rules", "cap", "floor", "description")
_SCORE_RULE_KEYS = ("points", "when", "label")
_MATRIX_KEYS = ("rows", "columns", "cells", "description")
_AXIS_KEYS = ("score", "attr", "at_least", "labels")
_OUTPUT_KEYS = ("segment", "tier", "persona", "reason", "version", "updated_at", "scores")
#: Output tables naming one field per classification: logical key prefix.
_CLASSIFICATION_OUTPUTS = {
    "classifications": "classification.",
    "classification_reasons": "classification_reason.",
}
_CLASSIFICATION_KEYS = ("description", "tiers", "matrix")
_ROLLUP_MEASURES = ("count", "sum", "max", "min", "latest", "days_since")
_ROLLUP_KEYS = (*_ROLLUP_MEASURES, "stage", "within_days", "date", "pipeline", "type")
_ROLLUP_STAGES = ("won", "lost", "open", "closed", "any")
_ROLLUP_DATES = ("closed", "created")
_ROLLUP_TYPES: dict[str, AttrType] = {
    "count": "integer",
    "sum": "number",
    "max": "number",
    "min": "number",
    "latest": "date",
    "days_since": "integer",
}
#: Names a classification may not take: the dimensions every mapping already has.
_RESERVED_CLASSIFICATIONS = ("segment", "tier", "persona", "score", "reason", "version")
_COMBINATORS = ("all", "any", "not")
_SUBJECTS = ("attr", "score", "segment")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_INHERITABLE = ("segment", "tier")
_MAX_VERSION = 40  # Segsync_Version__c is Text(40)
_MAX_NAME = 255  # picklist values and HubSpot option labels
#: Bounds that keep every value far from overflow (a date a billion days ago,
#: a float sum that becomes inf) while leaving real definitions untouched.
MAX_NUMBER = 1e30  # comparison values and matrix bands: beyond any real quantity
MAX_POINTS = 1e6  # score points, caps and floors
MAX_DAYS = 36_525  # within_days / older_than_days: a hundred years
#: Conditions nest at most this deep (all / any / not); real rules use three or four.
MAX_CONDITION_DEPTH = 32


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The nearest valid name for a typo, or ``None`` when nothing is close."""
    options = list(choices)
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not found:
        lowered = {c.casefold(): c for c in options}
        found = difflib.get_close_matches(word.casefold(), list(lowered), n=1, cutoff=0.6)
        if found:
            return lowered[found[0]]
        return None
    return found[0]


def _kind(value: Any) -> str:
    """The TOML name of a value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime):
        return "a datetime"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _key(base: str, key: str) -> str:
    part = key if re.fullmatch(r"[A-Za-z0-9_.-]+", key) and "." not in key else f'"{key}"'
    return f"{base}.{part}" if base else part


def _index(base: str, i: int) -> str:
    return f"{base}[{i}]"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _out_of_range(value: int | float, limit: float) -> str | None:
    """Why a number is unusable (nan, inf, beyond ``limit``), or ``None``. Never echoes it."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if abs(value) > limit:
        return f"the number is out of range (at most ±{limit:,.0f})"
    return None


class _Checker:
    """Collects problems for one file while the definition is built."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, location: str, message: str, suggestion: str | None = None) -> None:
        self.problems.append(Problem(self.file, location, message, suggestion))

    def keys(
        self,
        location: str,
        table: Mapping[str, Any],
        allowed: Sequence[str],
        what: str,
    ) -> None:
        """Report every key of ``table`` that is not in ``allowed``."""
        for key in table:
            if key not in allowed:
                message = f"unknown key {key!r} in {what} (expected one of: {', '.join(allowed)})"
                if location and key in _TOP_KEYS:
                    # The classic TOML slip: a top-level key written after a [table]
                    # belongs to that table.
                    message += "; top-level keys must come before the first [table]"
                self.add(_key(location, key), message, suggest(key, allowed))

    def table(self, location: str, value: Any, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.add(location, f"{what} must be a table, not {_kind(value)}")
        return None

    def string(self, location: str, value: Any, what: str, *, limit: int = 0) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.add(location, f"{what} must be a non-empty string, not {_kind(value)}")
            return None
        if limit and len(value) > limit:
            self.add(location, f"{what} is longer than {limit} characters")
            return None
        return value


class _Builder:
    """Builds a :class:`MappingDef` from parsed TOML, reporting into a checker."""

    def __init__(self, data: Mapping[str, Any], file: str) -> None:
        self.data = data
        self.c = _Checker(file)
        self.attributes: dict[str, AttributeDef] = {}
        self.broken_attrs: set[str] = set()
        self.score_names: list[str] = []
        self.segment_names: list[str] = []
        self.object = "account"
        self.inherited_segment = False
        self.timezone = "UTC"
        self.classification_names: list[str] = []

    # --- top level -----------------------------------------------------------------------

    def build(self) -> MappingDef:
        c = self.c
        data = self.data
        c.keys("", data, _TOP_KEYS, "the mapping file")

        obj = data.get("object")
        if obj is None:
            c.add("object", f"missing required key 'object' (one of: {', '.join(OBJECTS)})")
        elif obj not in OBJECTS:
            c.add(
                "object",
                f"object must be one of {', '.join(OBJECTS)}, not {_show(obj)}",
                suggest(str(obj), OBJECTS),
            )
        else:
            self.object = obj

        version = data.get("version")
        if version is None:
            c.add("version", "missing required key 'version' (e.g. version = \"2026-11-a\")")
        else:
            version = c.string("version", version, "version", limit=_MAX_VERSION)
        description = data.get("description", "")
        if not isinstance(description, str):
            c.add("description", f"description must be a string, not {_kind(description)}")
            description = ""

        self.timezone = self._timezone()
        inherit = self._inherit()
        self.inherited_segment = "segment" in inherit
        self._attributes()
        raw_scores = data.get("scores", {})
        if isinstance(raw_scores, dict):
            self.score_names = [k for k in raw_scores if isinstance(k, str)]
        segments = self._rules("segments", "segment", kinds=("attr",), required=True)
        self.segment_names = [s.name for s in segments]
        scores = self._scores(raw_scores)
        matrix = self._matrix()
        # Judge the tier rules by whether a matrix is written, not whether it is
        # valid: a broken matrix must not also produce "no default tier".
        has_matrix = "tier_matrix" in data
        tiers = self._rules(
            "tiers",
            "tier",
            kinds=("attr", "score", "segment"),
            required=not has_matrix,
            default_allowed=not has_matrix,
            missing_hint="add [[tiers]] rules ending with a default, or a [tier_matrix]",
        )
        if self.object in PERSON_OBJECTS:
            # A contact always has a persona; a lead may do without one.
            personas = self._rules(
                "personas",
                "persona",
                kinds=("attr", "segment"),
                required=self.object == "contact" or "personas" in data,
            )
        else:
            if "personas" in data:
                c.add("personas", "personas are only for people (object = 'contact' or 'lead')")
            personas = ()
        classifications = self._classifications()
        lock = self._lock()
        outputs = self._outputs()

        if c.problems:
            raise MappingError(c.problems)
        return MappingDef(
            path=c.file,
            object=self.object,
            version=cast(str, version),
            description=description,
            attributes=dict(self.attributes),
            segments=segments,
            scores=scores,
            tiers=tiers,
            tier_matrix=matrix,
            personas=personas,
            inherit=inherit,
            lock=lock,
            outputs=outputs,
            timezone=self.timezone,
            classifications=classifications,
        )

    # --- attributes ----------------------------------------------------------------------

    def _attributes(self) -> None:
        c = self.c
        raw = self.data.get("attributes")
        if raw is None:
            c.add("attributes", "missing [attributes.<name>] tables: nothing to segment on")
            return
        table = c.table("attributes", raw, "attributes")
        if table is None:
            return
        for name, spec in table.items():
            loc = _key("attributes", name)
            if not _NAME_RE.match(name):
                c.add(
                    loc,
                    f"attribute name {name!r} must be lowercase letters, digits and _, "
                    "starting with a letter",
                )
            attr = self._attribute(name, loc, spec)
            if attr is None:
                self.broken_attrs.add(name)
            else:
                self.attributes[name] = attr

    def _attribute(self, name: str, loc: str, spec: Any) -> AttributeDef | None:
        c = self.c
        before = len(c.problems)
        table = c.table(loc, spec, f"attribute {name!r}")
        if table is None:
            return None
        if "rollup" in table:
            return self._rollup_attribute(name, loc, table)
        c.keys(loc, table, _ATTR_KEYS, f"attribute {name!r}")
        type_ = table.get("type")
        if type_ is None:
            c.add(_key(loc, "type"), f"missing 'type' (one of: {', '.join(ATTR_TYPES)})")
            return None
        if type_ not in ATTR_TYPES:
            c.add(
                _key(loc, "type"),
                f"unknown type {_show(type_)} (expected one of: {', '.join(ATTR_TYPES)})",
                suggest(str(type_), ATTR_TYPES),
            )
            return None
        atype = cast(AttrType, type_)
        sources: dict[str, str] = {}
        for crm in CRMS:
            if crm in table and crm not in OBJECT_CRMS.get(self.object, CRMS):
                c.add(_key(loc, crm), self._only_in(crm))
            elif crm in table:
                field = c.string(_key(loc, crm), table[crm], f"the {crm} source field")
                if field is not None:
                    sources[crm] = field.strip()
        if not any(crm in table for crm in CRMS):
            c.add(loc, 'needs a source field: salesforce = "…" and/or hubspot = "…"')

        values: tuple[str, ...] | None = None
        if "values" in table:
            vloc = _key(loc, "values")
            raw_values = table["values"]
            if atype not in ("enum", "set"):
                c.add(vloc, f"'values' is only for enum and set attributes, not {atype}")
            elif (
                not isinstance(raw_values, list)
                or not raw_values
                or not all(isinstance(v, str) and v.strip() for v in raw_values)
            ):
                c.add(vloc, "values must be a non-empty array of strings")
            else:
                seen: set[str] = set()
                for i, v in enumerate(raw_values):
                    if norm_key(v) in seen:
                        c.add(_index(vloc, i), f"duplicate value {v!r}")
                    seen.add(norm_key(v))
                values = tuple(raw_values)
        elif atype == "enum":
            c.add(loc, "an enum attribute needs 'values' = [the allowed canonical values]")

        synonyms: dict[str, str] = {}
        if values is not None:
            # Canonical values match themselves whatever the casing or spacing.
            synonyms.update({norm_key(v): v for v in values})
        if "synonyms" in table:
            sloc = _key(loc, "synonyms")
            raw_syn = table["synonyms"]
            if atype not in ("string", "enum", "set"):
                c.add(sloc, f"'synonyms' are only for string, enum and set attributes, not {atype}")
            elif isinstance(raw_syn, dict):
                for raw_value, canonical in raw_syn.items():
                    kloc = _key(sloc, raw_value)
                    if not isinstance(canonical, str) or not canonical.strip():
                        c.add(kloc, f"a synonym must map to a string, not {_kind(canonical)}")
                        continue
                    if values is not None and canonical not in values:
                        c.add(
                            kloc,
                            f"synonym target {canonical!r} is not one of the values of {name!r}",
                            suggest(canonical, values),
                        )
                        continue
                    key = norm_key(raw_value)
                    if not key:
                        c.add(kloc, "a synonym needs a non-blank raw value")
                        continue
                    synonyms[key] = canonical
            else:
                c.add(
                    sloc,
                    "synonyms must be a table of raw value = canonical value, "
                    f"not {_kind(raw_syn)}",
                )

        unknown: str | None = None
        if "unknown" in table:
            uloc = _key(loc, "unknown")
            raw_unknown = table["unknown"]
            if atype != "enum":
                c.add(uloc, "'unknown' is only for enum attributes")
            elif not isinstance(raw_unknown, str):
                c.add(uloc, f"unknown must be one of the values, not {_kind(raw_unknown)}")
            elif values is not None and raw_unknown not in values:
                c.add(
                    uloc,
                    f"unknown value {raw_unknown!r} must be one of the values of {name!r}",
                    suggest(raw_unknown, values),
                )
            else:
                unknown = raw_unknown

        blank: Any = None
        if "blank" in table:
            bloc = _key(loc, "blank")
            raw_blank = table["blank"]
            if raw_blank == "missing":
                blank = None
            elif isinstance(raw_blank, dict) and set(raw_blank) == {"value"}:
                probe = AttributeDef(name, atype, sources, synonyms, values, unknown)
                vloc = _key(bloc, "value")
                if atype == "set":
                    blank = self._literal_list(vloc, probe, raw_blank["value"])
                else:
                    blank = self._literal(vloc, probe, raw_blank["value"])
                if blank is None:
                    return None
            else:
                c.add(
                    bloc,
                    'blank must be "missing" or a table like { value = 0 } '
                    "(the value a blank stands for)",
                )
        description = table.get("description", "")
        if not isinstance(description, str):
            c.add(_key(loc, "description"), "description must be a string")
            description = ""
        if len(c.problems) > before:
            return None
        return AttributeDef(
            name=name,
            type=atype,
            sources=sources,
            synonyms=synonyms,
            values=values,
            unknown=unknown,
            blank=blank,
            description=description,
        )

    # --- literals ------------------------------------------------------------------------

    def _literal(self, loc: str, attr: AttributeDef, value: Any) -> Any:
        """One comparison value checked against the attribute type; ``None`` if invalid."""
        c = self.c
        t = attr.type
        if t in ("integer", "number"):
            if _is_number(value):
                problem = _out_of_range(value, MAX_NUMBER)
                if problem is None:
                    return value
                c.add(loc, problem)
                return None
            c.add(loc, f"{attr.name} is {t}: expected a number, not {_kind(value)} {_show(value)}")
            return None
        if t == "boolean":
            if isinstance(value, bool):
                return value
            c.add(loc, f"{attr.name} is boolean: expected true or false, not {_show(value)}")
            return None
        if t == "date":
            parsed = (
                None
                if isinstance(value, datetime | bool)
                else value
                if isinstance(value, date)
                else parse_date(value, zone_of(self.timezone))
                if isinstance(value, str)
                else None
            )
            if parsed is None:
                c.add(
                    loc,
                    f"{attr.name} is a date: expected a date like 2024-01-31, not {_show(value)}",
                )
            return parsed
        if t == "datetime":
            parsed_dt = (
                parse_datetime(value)
                if isinstance(value, str | date) and not isinstance(value, bool)
                else None
            )
            if parsed_dt is None:
                c.add(
                    loc,
                    f"{attr.name} is a datetime: expected a date or datetime like "
                    f"2024-01-31T09:00:00Z, not {_show(value)}",
                )
            return parsed_dt
        # string, enum, set: text values
        if not isinstance(value, str):
            c.add(loc, f"{attr.name} is {t}: expected a string, not {_kind(value)} {_show(value)}")
            return None
        if attr.values is not None:
            canonical = attr.synonyms.get(norm_key(value))
            if canonical is None or canonical not in attr.values:
                c.add(
                    loc,
                    f"{value!r} is not a value of {attr.name} (values: {', '.join(attr.values)})",
                    suggest(value, attr.values),
                )
                return None
            return canonical
        # Compare like the record's values are normalized: synonyms, collapsed spaces.
        return attr.synonyms.get(norm_key(value), " ".join(value.split()))

    def _literal_list(self, loc: str, attr: AttributeDef, value: Any) -> frozenset[Any] | None:
        if not isinstance(value, list) or not value:
            self.c.add(loc, f"expected a non-empty array, not {_kind(value)}")
            return None
        items = [self._literal(_index(loc, i), attr, v) for i, v in enumerate(value)]
        if any(item is None for item in items):
            return None
        return frozenset(items)

    # --- conditions ----------------------------------------------------------------------

    def _condition(
        self, loc: str, raw: Any, kinds: tuple[SubjectKind, ...], depth: int = 0
    ) -> Condition | None:
        c = self.c
        if depth > MAX_CONDITION_DEPTH:
            # Reported once, at the first level too deep; the location names it.
            c.add(loc, f"conditions are nested more than {MAX_CONDITION_DEPTH} levels deep")
            return None
        table = c.table(loc, raw, "a condition")
        if table is None:
            return None
        combinators = [k for k in table if k in _COMBINATORS]
        if combinators:
            if len(table) > 1:
                c.add(
                    loc,
                    f"{combinators[0]!r} must be the only key of its condition table "
                    f"(found: {', '.join(table)}); nest the other tests inside it",
                )
                return None
            key = combinators[0]
            kloc = _key(loc, key)
            if key == "not":
                inner = self._condition(kloc, table[key], kinds, depth + 1)
                return NotOf(inner) if inner is not None else None
            items = table[key]
            if not isinstance(items, list) or not items:
                c.add(kloc, f"{key!r} must be a non-empty array of conditions")
                return None
            parsed = [
                self._condition(_index(kloc, i), item, kinds, depth + 1)
                for i, item in enumerate(items)
            ]
            if any(p is None for p in parsed):
                return None
            conds = tuple(cast(list[Condition], parsed))
            if len(conds) == 1:
                return conds[0]
            return AllOf(conds) if key == "all" else AnyOf(conds)

        subjects = [k for k in table if k in _SUBJECTS]
        allowed_subjects = [s for s in _SUBJECTS if s in kinds]
        if not subjects:
            expected = ", ".join(allowed_subjects + list(_COMBINATORS))
            unknown = [k for k in table if k not in OPERATORS]
            for k in unknown:
                c.add(
                    _key(loc, k),
                    f"unknown key {k!r} in a condition (expected one of: {expected})",
                    suggest(k, [*allowed_subjects, *_COMBINATORS]),
                )
            if not unknown:
                c.add(loc, f'a condition needs a subject: {" / ".join(allowed_subjects)} = "…"')
            return None
        if len(subjects) > 1:
            c.add(loc, f"a condition tests one subject, found {' and '.join(subjects)}")
            return None
        subject_key = cast(SubjectKind, subjects[0])
        if subject_key not in kinds:
            c.add(
                _key(loc, subject_key),
                f"{subject_key!r} cannot be tested here (allowed: {', '.join(allowed_subjects)})",
            )
            return None
        if subject_key == "segment":
            return self._segment_leaf(loc, table)
        name = table[subject_key]
        sloc = _key(loc, subject_key)
        if not isinstance(name, str):
            c.add(sloc, f"{subject_key} must be a string name, not {_kind(name)}")
            return None
        attr: AttributeDef | None = None
        if subject_key == "attr":
            if name in self.broken_attrs:
                return None  # already reported where it is defined
            attr = self.attributes.get(name)
            if attr is None:
                c.add(sloc, f"unknown attribute {name!r}", suggest(name, self.attributes))
                return None
            allowed_ops = TYPE_OPERATORS[attr.type]
        else:
            if name not in self.score_names:
                c.add(sloc, f"unknown score {name!r}", suggest(name, self.score_names))
                return None
            allowed_ops = SCORE_OPERATORS

        ops = [k for k in table if k != subject_key]
        if not ops:
            c.add(loc, f"a condition on {name!r} needs an operator ({', '.join(allowed_ops)})")
            return None
        leaves: list[Leaf] = []
        ok = True
        for op in ops:
            oloc = _key(loc, op)
            if op not in OPERATORS:
                c.add(
                    oloc,
                    f"unknown operator {op!r} (operators for {name!r}: {', '.join(allowed_ops)})",
                    suggest(op, allowed_ops) or suggest(op, OPERATORS),
                )
                ok = False
                continue
            if op not in allowed_ops:
                what = f"a {attr.type} attribute" if attr is not None else "a score"
                c.add(
                    oloc,
                    f"operator {op!r} does not apply to {what} "
                    f"(operators for {name!r}: {', '.join(allowed_ops)})",
                )
                ok = False
                continue
            value = self._op_value(oloc, attr, op, table[op])
            if value is None:
                ok = False
                continue
            leaves.append(Leaf(subject_key, name, op, value, oloc))
        if not ok:
            return None
        if len(leaves) == 1:
            return leaves[0]
        return AllOf(tuple(leaves))

    def _segment_leaf(self, loc: str, table: Mapping[str, Any]) -> Leaf | None:
        c = self.c
        sloc = _key(loc, "segment")
        extra = [k for k in table if k != "segment"]
        for k in extra:
            c.add(
                _key(loc, k),
                f'a segment test takes no operator: write segment = "Name" or '
                f'segment = ["A", "B"], not {k!r}',
            )
        value = table["segment"]
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            c.add(sloc, "segment must be a segment name or a non-empty array of names")
            return None
        ok = not extra
        for i, n in enumerate(names):
            # An inherited segment is named by the account mapping: not checkable here.
            if n not in self.segment_names and not self.inherited_segment:
                where = sloc if isinstance(value, str) else _index(sloc, i)
                c.add(where, f"unknown segment {n!r}", suggest(n, self.segment_names))
                ok = False
        if not ok:
            return None
        if isinstance(value, str):
            return Leaf("segment", "segment", "eq", value, sloc)
        return Leaf("segment", "segment", "in", frozenset(names), sloc)

    def _op_value(self, loc: str, attr: AttributeDef | None, op: str, raw: Any) -> Any:
        """The validated literal for one operator; ``None`` after reporting a problem."""
        c = self.c
        if attr is None:
            # A score: plain numbers.
            attr = AttributeDef("score", "number", {})
        if op in ("exists", "missing"):
            if raw is not True:
                c.add(loc, f"{op} takes true ({op} = true), not {_show(raw)}")
                return None
            return True
        if op in ("within_days", "older_than_days"):
            if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
                c.add(loc, f"{op} takes a whole number of days ≥ 0, not {_show(raw)}")
                return None
            if raw > MAX_DAYS:
                c.add(loc, f"{op} is at most {MAX_DAYS:,} days (a hundred years)")
                return None
            return raw
        if op == "matches":
            if not isinstance(raw, str):
                c.add(loc, f"matches takes a regular expression string, not {_kind(raw)}")
                return None
            try:
                # Case-insensitive: titles and free text arrive in any casing.
                return re.compile(raw, re.IGNORECASE)
            except re.error as exc:
                c.add(loc, f"invalid regular expression {raw!r}: {exc}")
                return None
        if op in ("in", "not_in"):
            return self._literal_list(loc, attr, raw)
        if op == "between":
            if not isinstance(raw, list) or len(raw) != 2:
                c.add(loc, f"between takes [low, high], not {_show(raw)}")
                return None
            low = self._literal(_index(loc, 0), attr, raw[0])
            high = self._literal(_index(loc, 1), attr, raw[1])
            if low is None or high is None:
                return None
            if low > high:
                c.add(loc, f"between needs low ≤ high, got [{_show(raw[0])}, {_show(raw[1])}]")
                return None
            return (low, high)
        if op == "contains":
            if attr.type == "string":
                if not isinstance(raw, str) or not raw:
                    c.add(loc, f"contains takes a non-empty string, not {_show(raw)}")
                    return None
                # Substring test on text is case-insensitive.
                return raw.casefold()
            return self._literal(loc, attr, raw)
        if op in ("contains_any", "contains_all"):
            return self._literal_list(loc, attr, raw)
        return self._literal(loc, attr, raw)

    # --- ordered rules -------------------------------------------------------------------

    def _rules(
        self,
        key: str,
        what: str,
        *,
        kinds: tuple[SubjectKind, ...],
        required: bool,
        default_allowed: bool = True,
        missing_hint: str = "",
        raw: Any = None,
    ) -> tuple[RuleDef, ...]:
        c = self.c
        if raw is None:
            raw = self.data.get(key)
        if raw is None:
            if required:
                hint = missing_hint or f"add [[{key}]] rules, the last one with default = true"
                c.add(key, f"missing [[{key}]]: {hint}")
            return ()
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw) or not raw:
            c.add(key, f"{key} must be an array of tables ([[{key}]] … name = …)")
            return ()
        rules: list[RuleDef] = []
        names: dict[str, int] = {}
        default_at: int | None = None
        unconditional_at: int | None = None
        seen_conditions: dict[Condition, int] = {}
        for i, spec in enumerate(raw):
            loc = _index(key, i)
            c.keys(loc, spec, _RULE_KEYS, f"a {what}")
            name = spec.get("name")
            if name is None:
                c.add(loc, f"missing 'name' for this {what}")
                name = None
            else:
                name = c.string(_key(loc, "name"), name, f"{what} name", limit=_MAX_NAME)
            if name is not None:
                if name in names:
                    c.add(
                        _key(loc, "name"),
                        f"duplicate {what} name {name!r} (also {key}[{names[name]}]); "
                        "combine the conditions with any = [...]",
                    )
                else:
                    names[name] = i
            default = spec.get("default", False)
            if not isinstance(default, bool):
                c.add(_key(loc, "default"), f"default must be true or false, not {_show(default)}")
                default = False
            if default and not default_allowed:
                c.add(
                    _key(loc, "default"),
                    f"a default {what} would make the [tier_matrix] unreachable; "
                    "with a matrix, tier rules are overrides and the matrix decides the rest",
                )
            when: Condition | None = None
            if "when" in spec:
                if default:
                    c.add(
                        _key(loc, "when"),
                        f"the default {what} takes no 'when': it catches the rest",
                    )
                else:
                    when = self._condition(_key(loc, "when"), spec["when"], kinds)
            elif not default:
                c.add(loc, f"this {what} needs a 'when' condition, or default = true")
            if unconditional_at is not None:
                c.add(
                    loc,
                    f"{what} {name!r} is unreachable: {key}[{unconditional_at}] above it "
                    "matches every record (the default must be last)",
                )
            elif when is not None and when in seen_conditions:
                c.add(
                    _key(loc, "when"),
                    f"{what} {name!r} is unreachable: {key}[{seen_conditions[when]}] has the "
                    "same condition and comes first",
                )
            if when is not None:
                seen_conditions.setdefault(when, i)
            if default:
                if default_at is not None:
                    c.add(
                        _key(loc, "default"),
                        f"a second default {what} (the first is {key}[{default_at}]); "
                        "exactly one is allowed",
                    )
                else:
                    default_at = i
                unconditional_at = i if unconditional_at is None else unconditional_at
            description = spec.get("description", "")
            if not isinstance(description, str):
                c.add(_key(loc, "description"), "description must be a string")
                description = ""
            rules.append(RuleDef(name or f"#{i}", when, default, description))
        if default_at is None and default_allowed:
            c.add(
                key,
                f"no default {what}: the last [[{key}]] needs default = true "
                "(it catches every record no other rule matches)",
            )
        return tuple(rules)

    # --- scores --------------------------------------------------------------------------

    def _scores(self, raw: Any) -> dict[str, ScoreDef]:
        c = self.c
        table = c.table("scores", raw, "scores")
        if table is None:
            return {}
        scores: dict[str, ScoreDef] = {}
        for name, spec in table.items():
            loc = _key("scores", name)
            if not _NAME_RE.match(name):
                c.add(loc, f"score name {name!r} must be lowercase letters, digits and _")
            st = c.table(loc, spec, f"score {name!r}")
            if st is None:
                continue
            c.keys(loc, st, _SCORE_KEYS, f"score {name!r}")
            bounds: dict[str, int | float | None] = {}
            for bound in ("cap", "floor"):
                value = st.get(bound)
                if value is not None and not _is_number(value):
                    c.add(_key(loc, bound), f"{bound} must be a number, not {_kind(value)}")
                    value = None
                elif value is not None and (problem := _out_of_range(value, MAX_POINTS)):
                    c.add(_key(loc, bound), problem)
                    value = None
                bounds[bound] = value
            cap, floor = bounds["cap"], bounds["floor"]
            if cap is not None and floor is not None and floor > cap:
                c.add(loc, f"floor {floor} is above cap {cap}")
            raw_rules = st.get("rules")
            rloc = _key(loc, "rules")
            if not isinstance(raw_rules, list) or not raw_rules:
                c.add(rloc, "rules must be a non-empty array of { points = …, when = { … } }")
                continue
            rules: list[ScoreRule] = []
            for i, rule in enumerate(raw_rules):
                iloc = _index(rloc, i)
                rt = c.table(iloc, rule, "a score rule")
                if rt is None:
                    continue
                c.keys(iloc, rt, _SCORE_RULE_KEYS, "a score rule")
                points: Any = rt.get("points")
                if not _is_number(points):
                    c.add(_key(iloc, "points"), f"points must be a number, not {_kind(points)}")
                    points = None
                elif problem := _out_of_range(points, MAX_POINTS):
                    c.add(_key(iloc, "points"), problem)
                    points = None
                if "when" not in rt:
                    c.add(iloc, "a score rule needs a 'when' condition")
                    continue
                when = self._condition(_key(iloc, "when"), rt["when"], ("attr", "segment"))
                label = rt.get("label")
                if label is not None and not isinstance(label, str):
                    c.add(_key(iloc, "label"), "label must be a string")
                    label = None
                if when is not None and points is not None:
                    rules.append(ScoreRule(points, when, label or condition_text(when)))
            scores[name] = ScoreDef(name, tuple(rules), cap, floor, str(st.get("description", "")))
        return scores

    # --- rollup attributes ---------------------------------------------------------------

    def _rollup_attribute(
        self, name: str, loc: str, table: Mapping[str, Any]
    ) -> AttributeDef | None:
        """``[attributes.<name>] rollup = { sum = "amount", stage = "won", within_days = 365 }``."""
        c = self.c
        before = len(c.problems)
        rloc = _key(loc, "rollup")
        for key in table:
            if key not in ("rollup", "type", "description"):
                c.add(
                    _key(loc, key),
                    f"a rollup attribute is computed from the account's deals: {key!r} does not "
                    "apply (only rollup, type and description)",
                )
        if self.object != "account":
            c.add(rloc, "rollups are computed from an account's deals: only for object = 'account'")
            return None
        spec = c.table(rloc, table["rollup"], "a rollup")
        if spec is None:
            return None
        c.keys(rloc, spec, _ROLLUP_KEYS, "a rollup")
        measures = [m for m in _ROLLUP_MEASURES if m in spec]
        if len(measures) != 1:
            found = ", ".join(measures) or "none"
            c.add(
                rloc,
                f"a rollup needs exactly one of {', '.join(_ROLLUP_MEASURES)} (found: {found}), "
                'e.g. { sum = "amount", stage = "won", within_days = 365 }',
            )
            return None
        measure = measures[0]
        mloc = _key(rloc, measure)
        what = spec[measure]
        if measure == "count":
            if what != "deals":
                c.add(mloc, f'count = "deals" is what a rollup counts, not {_show(what)}')
        elif measure in ("sum", "max", "min"):
            if what != "amount":
                c.add(
                    mloc,
                    f'{measure} = "amount" is the deal field rollups add up, not {_show(what)}',
                )
        elif what not in _ROLLUP_DATES:
            c.add(
                mloc,
                f"{measure} reads a deal date: one of {', '.join(_ROLLUP_DATES)}, "
                f"not {_show(what)}",
                suggest(str(what), _ROLLUP_DATES),
            )
        stage = spec.get("stage", "any")
        if stage not in _ROLLUP_STAGES:
            c.add(
                _key(rloc, "stage"),
                f"stage must be one of {', '.join(_ROLLUP_STAGES)}, not {_show(stage)}",
                suggest(str(stage), _ROLLUP_STAGES),
            )
            stage = "any"
        within = spec.get("within_days")
        if within is not None:
            if isinstance(within, bool) or not isinstance(within, int) or within < 1:
                c.add(
                    _key(rloc, "within_days"),
                    f"within_days must be a whole number of days ≥ 1, not {_show(within)}",
                )
                within = None
            elif within > MAX_DAYS:
                c.add(
                    _key(rloc, "within_days"),
                    f"within_days must be at most {MAX_DAYS:,} (a hundred years)",
                )
                within = None
        default_date = (
            what
            if measure in ("latest", "days_since")
            else ("created" if stage == "open" else "closed")
        )
        date_of = spec.get("date", default_date)
        if date_of not in _ROLLUP_DATES:
            c.add(
                _key(rloc, "date"),
                f"date must be one of {', '.join(_ROLLUP_DATES)}, not {_show(date_of)}",
                suggest(str(date_of), _ROLLUP_DATES),
            )
            date_of = default_date
        filters: dict[str, frozenset[str] | None] = {}
        for key in ("pipeline", "type"):
            raw = spec.get(key)
            if raw is None:
                filters[key] = None
            elif isinstance(raw, str) and raw.strip():
                filters[key] = frozenset({raw.strip().casefold()})
            elif (
                isinstance(raw, list) and raw and all(isinstance(v, str) and v.strip() for v in raw)
            ):
                filters[key] = frozenset(v.strip().casefold() for v in raw)
            else:
                c.add(_key(rloc, key), f"{key} must be a name or an array of names")
                filters[key] = None
        inferred = _ROLLUP_TYPES[measure]
        declared = table.get("type")
        if declared is not None and declared != inferred:
            c.add(
                _key(loc, "type"),
                f"a {measure} rollup is {inferred}, not {_show(declared)} (leave type out)",
            )
        description = table.get("description", "")
        if not isinstance(description, str):
            c.add(_key(loc, "description"), "description must be a string")
            description = ""
        if len(c.problems) > before:
            return None
        rollup = RollupDef(
            measure=measure,
            stage=stage,
            within_days=within,
            date=date_of,
            pipelines=filters["pipeline"],
            types=filters["type"],
        )
        return AttributeDef(name, inferred, {}, description=description, rollup=rollup)

    # --- classifications ------------------------------------------------------------------

    def _classifications(self) -> dict[str, ClassificationDef]:
        """``[classifications.<name>]``: further tierings, each its own rules and/or matrix."""
        c = self.c
        table = c.table("classifications", self.data.get("classifications", {}), "classifications")
        if table is None:
            return {}
        found: dict[str, ClassificationDef] = {}
        for name, spec in table.items():
            loc = _key("classifications", name)
            if not _NAME_RE.match(name):
                c.add(loc, f"classification name {name!r} must be lowercase letters, digits and _")
                continue
            if name in _RESERVED_CLASSIFICATIONS:
                c.add(
                    loc,
                    f"{name!r} is a built-in dimension; name the classification something else "
                    "(e.g. 'value')",
                )
                continue
            st = c.table(loc, spec, f"classification {name!r}")
            if st is None:
                continue
            c.keys(loc, st, _CLASSIFICATION_KEYS, f"classification {name!r}")
            has_matrix = "matrix" in st
            matrix = self._matrix(_key(loc, "matrix"), st["matrix"]) if has_matrix else None
            tiers: tuple[RuleDef, ...] = ()
            if "tiers" in st or not has_matrix:
                tiers = self._rules(
                    _key(loc, "tiers"),
                    "tier",
                    kinds=("attr", "score", "segment"),
                    required=True,
                    default_allowed=not has_matrix,
                    missing_hint=f"add [[{loc}.tiers]] rules ending with a default, "
                    f"or a [{loc}.matrix]",
                    raw=st.get("tiers", []) or None,
                )
            description = st.get("description", "")
            if not isinstance(description, str):
                c.add(_key(loc, "description"), "description must be a string")
                description = ""
            found[name] = ClassificationDef(name, tiers, matrix, description)
        self.classification_names = list(found)
        return found

    # --- tier matrix ---------------------------------------------------------------------

    def _matrix(self, loc: str = "tier_matrix", raw: Any = None) -> TierMatrix | None:
        c = self.c
        if raw is None:
            raw = self.data.get(loc)
        if raw is None:
            return None
        table = c.table(loc, raw, loc)
        if table is None:
            return None
        c.keys(loc, table, _MATRIX_KEYS, loc)
        rows = self._axis(f"{loc}.rows", table.get("rows"))
        columns = self._axis(f"{loc}.columns", table.get("columns"))
        cells_raw = table.get("cells")
        cloc = f"{loc}.cells"
        if not isinstance(cells_raw, list) or not cells_raw:
            c.add(cloc, "cells must be an array of rows, each an array of tier names")
            return None
        cells: list[tuple[str, ...]] = []
        for r, row in enumerate(cells_raw):
            if not isinstance(row, list) or not all(isinstance(x, str) and x.strip() for x in row):
                c.add(_index(cloc, r), "each row of cells must be an array of tier names")
                return None
            cells.append(tuple(row))
        if rows is None or columns is None:
            return None
        if len(cells) != len(rows.at_least) + 1:
            c.add(
                cloc,
                f"expected {len(rows.at_least) + 1} rows (one per band of {rows.subject}: "
                f"{', '.join(rows.labels)}), found {len(cells)}",
            )
            return None
        for r, row_cells in enumerate(cells):
            if len(row_cells) != len(columns.at_least) + 1:
                c.add(
                    _index(cloc, r),
                    f"expected {len(columns.at_least) + 1} cells (one per band of "
                    f"{columns.subject}: {', '.join(columns.labels)}), found {len(row_cells)}",
                )
                return None
        return TierMatrix(rows, columns, tuple(cells))

    def _axis(self, loc: str, raw: Any) -> Axis | None:
        c = self.c
        if raw is None:
            c.add(loc, 'missing: { score = "fit", at_least = [60, 30] }')
            return None
        table = c.table(loc, raw, "a matrix axis")
        if table is None:
            return None
        c.keys(loc, table, _AXIS_KEYS, "a matrix axis")
        kind: str
        if "score" in table and "attr" not in table:
            kind = "score"
            name = table["score"]
            if name not in self.score_names:
                c.add(
                    _key(loc, "score"),
                    f"unknown score {_show(name)}",
                    suggest(str(name), self.score_names),
                )
                return None
        elif "attr" in table and "score" not in table:
            kind = "attr"
            name = table["attr"]
            attr = self.attributes.get(name) if isinstance(name, str) else None
            if attr is None:
                if name not in self.broken_attrs:
                    c.add(
                        _key(loc, "attr"),
                        f"unknown attribute {_show(name)}",
                        suggest(str(name), self.attributes),
                    )
                return None
            if attr.type not in ("integer", "number"):
                c.add(
                    _key(loc, "attr"),
                    f"a matrix axis needs a number attribute; {name!r} is {attr.type}",
                )
                return None
        else:
            c.add(loc, 'an axis names exactly one score = "…" or attr = "…"')
            return None
        bands = table.get("at_least")
        if (
            not isinstance(bands, list)
            or not bands
            or not all(_is_number(b) and _out_of_range(b, MAX_NUMBER) is None for b in bands)
            or any(a <= b for a, b in itertools.pairwise(bands))
        ):
            c.add(
                _key(loc, "at_least"),
                "at_least must be a non-empty array of numbers, highest first "
                "(e.g. [60, 30] makes three bands: ≥ 60, ≥ 30, below 30)",
            )
            return None
        labels_raw = table.get("labels")
        if labels_raw is None:
            labels = (*(f"{name} ≥ {b}" for b in bands), f"{name} < {bands[-1]}")
        elif (
            not isinstance(labels_raw, list)
            or len(labels_raw) != len(bands) + 1
            or not all(isinstance(x, str) for x in labels_raw)
        ):
            c.add(
                _key(loc, "labels"),
                f"labels must be {len(bands) + 1} strings, one per band (at_least has "
                f"{len(bands)} thresholds, so {len(bands) + 1} bands)",
            )
            return None
        else:
            labels = tuple(labels_raw)
        return Axis(cast(Any, kind), name, tuple(bands), labels)

    # --- contacts, lock, outputs ---------------------------------------------------------

    def _only_in(self, crm: str) -> str:
        """Why ``crm`` has no place in this object's mapping (a lead is Salesforce's)."""
        names = {"salesforce": "Salesforce", "hubspot": "HubSpot"}
        crms = " and ".join(names[c] for c in OBJECT_CRMS.get(self.object, CRMS))
        return (
            f"a {self.object} is a {crms} object: {names[crm]} has none (its contacts at every "
            "lifecycle stage are covered by the contact mapping); remove this key"
        )

    def _inherit(self) -> frozenset[str]:
        c = self.c
        raw = self.data.get("inherit")
        if raw is None:
            return frozenset()
        if self.object != "contact":
            c.add("inherit", "inherit is only for contacts (they inherit from their account)")
            return frozenset()
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            c.add("inherit", 'inherit must be an array such as ["segment", "tier"]')
            return frozenset()
        for i, item in enumerate(raw):
            if item not in _INHERITABLE:
                c.add(
                    _index("inherit", i),
                    f"cannot inherit {item!r} (only: {', '.join(_INHERITABLE)})",
                    suggest(item, _INHERITABLE),
                )
        return frozenset(x for x in raw if x in _INHERITABLE)

    def _timezone(self) -> str:
        """The mapping's ``timezone`` (an IANA name), default UTC; checked here, once."""
        raw = self.data.get("timezone", "UTC")
        if not isinstance(raw, str) or not raw.strip():
            self.c.add("timezone", f"timezone must be an IANA zone name, not {_show(raw)}")
            return "UTC"
        name = raw.strip()
        try:
            zone_of(name)
        except KeyError:
            self.c.add(
                "timezone",
                f"unknown time zone {name!r} (an IANA name such as "
                '"UTC", "America/New_York" or "Europe/Berlin")',
            )
            return "UTC"
        return name

    def _lock(self) -> str | None:
        c = self.c
        raw = self.data.get("lock")
        if raw is None:
            return None
        if not isinstance(raw, str):
            c.add("lock", f"lock names a boolean attribute, not {_kind(raw)}")
            return None
        if raw in self.broken_attrs:
            return None
        attr = self.attributes.get(raw)
        if attr is None:
            c.add("lock", f"unknown attribute {raw!r}", suggest(raw, self.attributes))
            return None
        if attr.type != "boolean":
            c.add("lock", f"the lock attribute must be boolean; {raw!r} is {attr.type}")
            return None
        return raw

    def _outputs(self) -> dict[str, dict[str, str]]:
        c = self.c
        raw = self.data.get("outputs")
        if raw is None:
            return {}
        table = c.table("outputs", raw, "outputs")
        if table is None:
            return {}
        result: dict[str, dict[str, str]] = {}
        for crm, spec in table.items():
            loc = _key("outputs", crm)
            if crm not in CRMS:
                c.add(loc, f"unknown CRM {crm!r} (expected: {', '.join(CRMS)})", suggest(crm, CRMS))
                continue
            if crm not in OBJECT_CRMS.get(self.object, CRMS):
                c.add(loc, self._only_in(crm))
                continue
            st = c.table(loc, spec, f"outputs.{crm}")
            if st is None:
                continue
            inputs = {
                f.casefold(): a.name for a in self.attributes.values() if (f := a.sources.get(crm))
            }
            fields: dict[str, str] = {}
            entries: list[tuple[str, str, Any]] = []
            for key, value in st.items():
                if key == "scores":
                    sub = c.table(_key(loc, "scores"), value, "scores outputs")
                    if sub is not None:
                        entries.extend(
                            (f"score.{n}", _key(_key(loc, "scores"), n), v) for n, v in sub.items()
                        )
                elif key in _CLASSIFICATION_OUTPUTS:
                    sub = c.table(_key(loc, key), value, f"{key} outputs")
                    prefix = _CLASSIFICATION_OUTPUTS[key]
                    if sub is not None:
                        entries.extend(
                            (f"{prefix}{n}", _key(_key(loc, key), n), v) for n, v in sub.items()
                        )
                else:
                    entries.append((key, _key(loc, key), value))
            owner: dict[str, str] = {}
            for logical, kloc, value in entries:
                if logical.startswith("score."):
                    score = logical[len("score.") :]
                    if score not in self.score_names:
                        c.add(
                            kloc,
                            f"output for undefined score {score!r}",
                            suggest(score, self.score_names),
                        )
                        continue
                elif logical.startswith(("classification.", "classification_reason.")):
                    name = logical.partition(".")[2]
                    if name not in self.classification_names:
                        c.add(
                            kloc,
                            f"output for undefined classification {name!r}",
                            suggest(name, self.classification_names),
                        )
                        continue
                elif logical not in _OUTPUT_KEYS:
                    allowed = [
                        *_OUTPUT_KEYS,
                        *_CLASSIFICATION_OUTPUTS,
                        *(f"score.{s}" for s in self.score_names),
                    ]
                    c.add(
                        kloc,
                        f"unknown output {logical!r} (expected one of: {', '.join(allowed)})",
                        suggest(logical, allowed),
                    )
                    continue
                elif logical == "persona" and self.object not in PERSON_OBJECTS:
                    c.add(kloc, "persona is only an output for contacts and leads")
                    continue
                field = c.string(kloc, value, "an output field")
                if field is None:
                    continue
                folded = field.strip().casefold()
                if folded in inputs:
                    c.add(
                        kloc,
                        f"output field {field!r} is also the input of attribute "
                        f"{inputs[folded]!r}: the connector would overwrite its own input",
                    )
                    continue
                if folded in owner:
                    c.add(kloc, f"output field {field!r} is already used for {owner[folded]!r}")
                    continue
                owner[folded] = logical
                fields[logical] = field.strip()
            result[crm] = fields
        return result


def parse_mapping(data: Mapping[str, Any], file: str = "<mapping>") -> MappingDef:
    """Validate already-parsed TOML and build the definition.

    Raises:
        MappingError: listing every problem found.

    """
    return _Builder(data, file).build()


def loads_mapping(text: str, file: str = "<mapping>") -> MappingDef:
    """Parse and validate mapping TOML text; ``file`` names it in problems."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise MappingError(
            [Problem(file, "", "tables or arrays are nested too deeply to read")]
        ) from None
    except ValueError as exc:
        if not isinstance(exc, tomllib.TOMLDecodeError):
            # int() refuses numbers of more than 4,300 digits with a plain ValueError.
            what = (
                "a number has more than 4,300 digits"
                if "integer string conversion" in str(exc)
                else " ".join(str(exc).split())[:200]
            )
            raise MappingError([Problem(file, "", f"invalid TOML: {what}")]) from None
        message = str(exc)
        location = ""
        match = re.search(r"\s*\(at (line \d+, column \d+|end of document)\)$", message)
        if match:
            location = match.group(1)
            message = message[: match.start()]
        raise MappingError([Problem(file, location, f"invalid TOML: {message}")]) from None
    return parse_mapping(data, file)


def load_mapping(path: str | Path) -> MappingDef:
    """Load, parse and validate one mapping file.

    Args:
        path: the ``.toml`` file.

    Returns:
        The validated definition, ready for :func:`connector.engine.compile_mapping`.

    Raises:
        MappingError: listing every problem found, each naming the file, the
            TOML location and what was expected.

    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError([Problem(file, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError([Problem(file, "", f"cannot read the file: {exc}")]) from None
    return loads_mapping(text, file)
