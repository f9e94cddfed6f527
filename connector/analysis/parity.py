"""Parity: whether one definition gives a company (or person) the same values in both CRMs.

Pure: matched pairs of raw records in, a :class:`Parity` out. Each side of a
pair is evaluated with the same compiled mapping at the same instant, each
with its own CRM's fields. Where the outputs differ (segment, tier, persona,
each score, and any further classification the assignment carries), the
attributes whose canonical values differ are listed with the raw values on
each side; an attribute is *decisive* when giving one side the other's raw
value alone removes the disagreement. Disagreements are aggregated into
causes (one attribute, one raw value on each side) with the synonym or rule
change that would remove each.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from connector.analysis.identity import Identity, Match, normalize_text
from connector.engine import Assignment, Engine
from connector.mapping.models import AttributeDef
from connector.mapping.values import is_blank

_NOT_OUTPUTS = frozenset({"version", "reason", "classification_reasons", "output_spec", "due_at"})
_TEXT_TYPES = frozenset({"string", "enum"})
CRMS = ("salesforce", "hubspot")


def classification(assignment: Assignment) -> dict[str, Any]:
    """The values a definition decides for a record, by output name.

    ``segment``, ``tier``, ``persona`` (contacts), ``score.NAME`` for each
    score, and any further field the assignment carries (a mapping field
    ``x`` as ``x.KEY``): the stamp, the reason lines (the record's and each
    classification's) and the due date are consequences, not decisions, and
    are left out: a reason quotes scores and inputs, so it differs wherever
    they do, and would list a second difference for one cause.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(assignment):
        if f.name in _NOT_OUTPUTS:
            continue
        value = getattr(assignment, f.name)
        if isinstance(value, Mapping):
            prefix = "score" if f.name == "scores" else f.name
            for key, item in value.items():
                out[f"{prefix}.{key}"] = item
        elif value is not None:
            out[f.name] = value
    return out


@dataclass(frozen=True, slots=True)
class Pair:
    """A matched pair's raw records, and for contacts each side's account assignment."""

    match: Match
    salesforce: Mapping[str, Any]
    hubspot: Mapping[str, Any]
    salesforce_parent: Assignment | None = None
    hubspot_parent: Assignment | None = None


@dataclass(frozen=True, slots=True)
class AttributeDiff:
    """One attribute whose canonical value differs between the two sides of a pair."""

    name: str
    type: str
    salesforce_field: str | None
    hubspot_field: str | None
    salesforce_raw: Any
    hubspot_raw: Any
    salesforce_value: Any
    hubspot_value: Any
    decisive: bool


@dataclass(frozen=True, slots=True)
class Disagreement:
    """A matched pair whose outputs differ: which, and the attributes behind it."""

    salesforce_id: str
    hubspot_id: str
    by: str
    outputs: Mapping[str, tuple[Any, Any]]
    attributes: tuple[AttributeDiff, ...]

    @property
    def causes(self) -> tuple[AttributeDiff, ...]:
        """The decisive attributes, or every differing one when none is decisive alone."""
        decisive = tuple(a for a in self.attributes if a.decisive)
        return decisive or self.attributes


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A change that would remove a cause.

    ``kind``: ``synonym`` (add ``raw`` = ``canonical`` to the attribute's
    synonyms: one clear edit), ``choose`` (both CRMs' values are known but
    mean different things: map one to the other), ``data`` (the data
    differs: correct one CRM, or let ``[parity] source`` decide) or
    ``inherited`` (a contact's inherited values differ because its accounts
    disagree: their causes fix it).
    """

    kind: Literal["synonym", "choose", "data", "inherited"]
    text: str
    file: str
    table: str
    raw: str | None = None
    canonical: str | None = None
    crm: str | None = None


@dataclass
class Cause:
    """One reason several pairs disagree: an attribute read differently on each side."""

    attribute: str
    salesforce_raws: list[Any]
    salesforce_value: Any
    hubspot_raws: list[Any]
    hubspot_value: Any
    suggestion: Suggestion
    records: list[tuple[str, str]] = field(default_factory=list)
    outputs: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        """How many pairs this cause makes disagree."""
        return len(self.records)


@dataclass
class Parity:
    """Parity of one object (accounts or contacts) between the two CRMs."""

    object: str
    version: str
    now: datetime
    identity: Identity
    compared: int = 0
    agreeing: int = 0
    outputs: dict[str, list[int]] = field(default_factory=dict)
    """Output name → [pairs agreeing, pairs compared]."""
    disagreements: list[Disagreement] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)


def compare(engine: Engine, pairs: Sequence[Pair], identity: Identity, now: datetime) -> Parity:
    """Evaluate both sides of every pair and explain each disagreement.

    Args:
        engine: the compiled mapping (one object).
        pairs: the matched pairs' raw records.
        identity: the matching the pairs came from (reported as is).
        now: the one instant both sides are evaluated at.

    """
    result = Parity(engine.object, engine.version, now, identity)
    for pair in pairs:
        sf = engine.evaluate(pair.salesforce, "salesforce", now, pair.salesforce_parent)
        hs = engine.evaluate(pair.hubspot, "hubspot", now, pair.hubspot_parent)
        sf_out, hs_out = classification(sf), classification(hs)
        result.compared += 1
        differing: dict[str, tuple[Any, Any]] = {}
        for name in dict.fromkeys([*sf_out, *hs_out]):
            counts = result.outputs.setdefault(name, [0, 0])
            counts[1] += 1
            left, right = sf_out.get(name), hs_out.get(name)
            if left == right:
                counts[0] += 1
            else:
                differing[name] = (left, right)
        if not differing:
            result.agreeing += 1
            continue
        attributes = _attribute_diffs(engine, pair, now, differing)
        result.disagreements.append(
            Disagreement(
                pair.match.salesforce_id,
                pair.match.hubspot_id,
                pair.match.by,
                differing,
                attributes,
            )
        )
    result.causes = _causes(engine, result.disagreements)
    return result


def _attribute_diffs(
    engine: Engine, pair: Pair, now: datetime, differing: Mapping[str, tuple[Any, Any]]
) -> tuple[AttributeDiff, ...]:
    sf_x = engine.explain(pair.salesforce, "salesforce", now, pair.salesforce_parent)
    hs_x = engine.explain(pair.hubspot, "hubspot", now, pair.hubspot_parent)
    hs_traces = {t.name: t for t in hs_x.attributes}
    out: list[AttributeDiff] = []
    for sf_t in sf_x.attributes:
        hs_t = hs_traces.get(sf_t.name)
        if hs_t is None or sf_t.value == hs_t.value:
            continue
        decisive = _resolves(
            engine, pair, now, differing, (sf_t.field, hs_t.field), (sf_t.raw, hs_t.raw)
        )
        out.append(
            AttributeDiff(
                sf_t.name,
                sf_t.type,
                sf_t.field,
                hs_t.field,
                sf_t.raw,
                hs_t.raw,
                sf_t.value,
                hs_t.value,
                decisive,
            )
        )
    return tuple(out)


def _resolves(
    engine: Engine,
    pair: Pair,
    now: datetime,
    differing: Mapping[str, tuple[Any, Any]],
    names: tuple[str | None, str | None],
    raws: tuple[Any, Any],
) -> bool:
    """Whether one side taking the other's raw value alone makes the pair agree."""
    sf_field, hs_field = names
    sf_raw, hs_raw = raws
    if not sf_field or not hs_field or "." in sf_field or "." in hs_field:
        return False
    sf = engine.evaluate(
        {**pair.salesforce, sf_field: hs_raw}, "salesforce", now, pair.salesforce_parent
    )
    if all(classification(sf).get(k) == right for k, (_, right) in differing.items()):
        return True
    hs = engine.evaluate({**pair.hubspot, hs_field: sf_raw}, "hubspot", now, pair.hubspot_parent)
    return all(classification(hs).get(k) == left for k, (left, _) in differing.items())


def display(value: Any) -> str:
    """A raw or canonical value as a person reads it: text quoted, a blank as ``(blank)``."""
    if is_blank(value):
        return "(blank)"
    if isinstance(value, frozenset | set | tuple | list):
        return "{" + ", ".join(sorted(str(v) for v in value)) + "}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return repr(" ".join(value.split()))
    return str(value)


def _raw_key(attr: AttributeDef | None, raw: Any) -> Any:
    if attr is not None and attr.type in _TEXT_TYPES:
        return normalize_text(raw)
    return None  # numbers, dates, sets: one cause per attribute ("the data differs")


def _causes(engine: Engine, disagreements: Sequence[Disagreement]) -> list[Cause]:
    attrs = engine.definition.attributes
    found: dict[tuple[Any, ...], Cause] = {}
    for d in disagreements:
        if not d.attributes:
            # Nothing of its own differs: a contact inherits from accounts that disagree.
            cause = found.get(("(account)",))
            if cause is None:
                note = (
                    "the records' accounts disagree on the inherited values: "
                    "the account causes fix these too"
                )
                file = Path(engine.path).name
                cause = Cause(
                    "(account)", [], None, [], None, Suggestion("inherited", note, file, "")
                )
                found[("(account)",)] = cause
            cause.records.append((d.salesforce_id, d.hubspot_id))
            cause.outputs.update(list(d.outputs))
            continue
        for a in d.causes:
            attr = attrs.get(a.name)
            text = attr is not None and attr.type in _TEXT_TYPES
            suggestion = suggest(engine, a)
            sf_key, hs_key = _raw_key(attr, a.salesforce_raw), _raw_key(attr, a.hubspot_raw)
            # One synonym fixes every pair whose unread value is the same,
            # whatever the other side's spelling of the value it means.
            if suggestion.crm == "hubspot":
                sf_key = None
            elif suggestion.crm == "salesforce":
                hs_key = None
            key = (
                a.name,
                sf_key,
                _hashable(a.salesforce_value) if text else None,
                hs_key,
                _hashable(a.hubspot_value) if text else None,
            )
            cause = found.get(key)
            if cause is None:
                cause = Cause(
                    a.name,
                    [],
                    a.salesforce_value if text else None,
                    [],
                    a.hubspot_value if text else None,
                    suggestion,
                )
                found[key] = cause
            if text:
                _add_raw(cause.salesforce_raws, a.salesforce_raw)
                _add_raw(cause.hubspot_raws, a.hubspot_raw)
            cause.records.append((d.salesforce_id, d.hubspot_id))
            cause.outputs.update(list(d.outputs))
    return sorted(found.values(), key=lambda c: (-c.count, c.attribute))


def _add_raw(raws: list[Any], raw: Any) -> None:
    key = normalize_text(raw)
    if all(normalize_text(r) != key for r in raws):
        raws.append(" ".join(raw.split()) if isinstance(raw, str) else raw)


def _hashable(value: Any) -> Any:
    if isinstance(value, set | list):
        return frozenset(value)
    return value


def suggest(engine: Engine, diff: AttributeDiff) -> Suggestion:
    """The synonym or rule change that would make both sides read ``diff`` alike."""
    file = Path(engine.path).name
    table = f"[attributes.{diff.name}]"
    attr = engine.definition.attributes.get(diff.name)
    where = f"in {file} {table}"
    if attr is None or attr.type not in _TEXT_TYPES:
        return Suggestion(
            "data",
            f"the {diff.name} values differ in the data: correct one CRM, "
            'or let [parity] source = "salesforce" | "hubspot" decide',
            file,
            table,
        )
    sides = {
        "salesforce": (diff.salesforce_raw, diff.salesforce_value),
        "hubspot": (diff.hubspot_raw, diff.hubspot_value),
    }

    def known(value: Any) -> bool:
        return value is not None and value != attr.unknown

    for crm, other in (("hubspot", "salesforce"), ("salesforce", "hubspot")):
        raw, value = sides[crm]
        _, other_value = sides[other]
        if not is_blank(raw) and not known(value) and known(other_value):
            text_raw = " ".join(str(raw).split())
            return Suggestion(
                "synonym",
                f"add '{text_raw}' to synonyms {other_value} {where} "
                f'("{text_raw}" = "{other_value}" in [attributes.{diff.name}.synonyms])',
                file,
                table,
                text_raw,
                str(other_value),
                crm,
            )
    sf_raw, sf_value = sides["salesforce"]
    hs_raw, hs_value = sides["hubspot"]
    if is_blank(sf_raw) or is_blank(hs_raw):
        blank = "Salesforce" if is_blank(sf_raw) else "HubSpot"
        return Suggestion(
            "data",
            f"{diff.name} is blank in {blank}: fill it there, "
            'or let [parity] source = "salesforce" | "hubspot" | "merge" decide',
            file,
            table,
        )
    sf_text, hs_text = " ".join(str(sf_raw).split()), " ".join(str(hs_raw).split())
    return Suggestion(
        "choose",
        f"'{sf_text}' means {sf_value} in Salesforce but '{hs_text}' means {hs_value} in HubSpot: "
        f"map '{hs_text}' to {sf_value} or '{sf_text}' to {hs_value} {where} synonyms "
        "(either changes every record holding that value), "
        'or let [parity] source = "salesforce" | "hubspot" decide',
        file,
        table,
    )


def cause_line(cause: Cause, noun: str) -> str:
    """A cause in one line.

    ``industry: 'SaaS' → Software in Salesforce vs 'INTERNET' → Other in HubSpot: 3 accounts``.
    """
    count = f"{cause.count} {noun}{'' if cause.count == 1 else 's'}"
    if cause.suggestion.kind == "inherited":
        return f"inherited from accounts that disagree: {count}"
    if not cause.salesforce_raws and not cause.hubspot_raws:
        return f"{cause.attribute}: the values differ in the data: {count}"
    sf = ", ".join(display(r) for r in cause.salesforce_raws) or "(blank)"
    hs = ", ".join(display(r) for r in cause.hubspot_raws) or "(blank)"
    return (
        f"{cause.attribute}: {sf} → {_canonical(cause.salesforce_value)} in Salesforce "
        f"vs {hs} → {_canonical(cause.hubspot_value)} in HubSpot: {count}"
    )


def _canonical(value: Any) -> str:
    return "(blank)" if value is None else str(value)
