"""The validated mapping definition: immutable values the engine compiles.

Everything here has already been checked by :mod:`connector.mapping.loader`:
names resolve, operator values have the attribute's type, regexes compile,
exactly one default exists. The engine trusts these objects and never looks
at TOML again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from functools import cache
from typing import Any, Literal

AttrType = Literal["string", "integer", "number", "boolean", "date", "datetime", "set", "enum"]
ATTR_TYPES: tuple[AttrType, ...] = (
    "string",
    "integer",
    "number",
    "boolean",
    "date",
    "datetime",
    "set",
    "enum",
)
CRMS: tuple[str, ...] = ("salesforce", "hubspot")
OBJECTS: tuple[str, ...] = ("account", "contact", "lead")
#: Objects only one CRM has: a lead is Salesforce's (HubSpot contacts at every
#: lifecycle stage are contacts), so a lead mapping names no HubSpot field.
OBJECT_CRMS: dict[str, tuple[str, ...]] = {"lead": ("salesforce",)}
#: Objects that get a persona (people: contacts and leads).
PERSON_OBJECTS: tuple[str, ...] = ("contact", "lead")

#: Logical output keys besides ``score.<name>``.
OUTPUT_KEYS: tuple[str, ...] = ("segment", "tier", "persona", "reason", "version", "updated_at")

#: What a comparison literal can be once validated.
Literal_ = str | int | float | bool | date | datetime

SubjectKind = Literal["attr", "score", "segment"]


@dataclass(frozen=True, slots=True)
class RollupDef:
    """How a rollup attribute is computed from its account's deals.

    Attributes:
        measure: ``count`` (deals), ``sum`` / ``max`` / ``min`` (amount),
            ``latest`` (a date) or ``days_since`` (whole days from that date to the run day).
        stage: which deals: ``won``, ``lost``, ``open``, ``closed`` (won or lost) or ``any``.
        within_days: only deals whose ``date`` lies in the last so many days
            up to the run time; ``None`` for all.
        date: which deal date the window and ``latest`` / ``days_since`` read:
            ``closed`` or ``created``.
        pipelines: only deals in one of these pipelines (case-folded), if given.
        types: only deals of one of these types (case-folded), if given.

    """

    measure: str
    stage: str = "any"
    within_days: int | None = None
    date: str = "closed"
    pipelines: frozenset[str] | None = None
    types: frozenset[str] | None = None

    def text(self) -> str:
        """``sum of amount · won deals · closed in the last 365 days`` (for explain)."""
        what = {
            "count": "count of deals",
            "sum": "sum of amount",
            "max": "largest amount",
            "min": "smallest amount",
            "latest": f"latest {self.date} date",
            "days_since": f"days since the latest {self.date} date",
        }[self.measure]
        parts = [what, f"{self.stage} deals" if self.stage != "any" else "all deals"]
        if self.within_days is not None:
            parts.append(f"{self.date} in the last {self.within_days} days")
        if self.pipelines is not None:
            parts.append("pipeline " + " or ".join(sorted(self.pipelines)))
        if self.types is not None:
            parts.append("type " + " or ".join(sorted(self.types)))
        return "rollup: " + " · ".join(parts)


@dataclass(frozen=True, slots=True)
class AttributeDef:
    """One canonical attribute read from a source field in each CRM.

    Attributes:
        name: canonical name used by conditions.
        type: one of :data:`ATTR_TYPES`.
        sources: CRM name → source field (a CRM may be absent: always blank there).
        synonyms: normalized raw value (case-folded, whitespace collapsed) →
            canonical value, for string, enum and set attributes. Enum values
            map to themselves, so odd casing of a canonical value is accepted.
        values: the allowed canonical values of an enum (or of set elements), if declared.
        unknown: canonical value an out-of-list enum value becomes; ``None``
            means such a value counts as blank.
        blank: the value a blank (or uncoercible) raw value stands for;
            ``None`` means "missing".
        description: free text for people.
        rollup: set for an attribute computed from the account's deals (it
            then has no source field in any CRM).

    """

    name: str
    type: AttrType
    sources: Mapping[str, str]
    synonyms: Mapping[str, str] = field(default_factory=dict)
    values: tuple[str, ...] | None = None
    unknown: str | None = None
    blank: Any = None
    description: str = ""
    rollup: RollupDef | None = None


@dataclass(frozen=True, slots=True)
class Leaf:
    """One test of one subject: ``{ attr = "employees", gte = 500 }``.

    Attributes:
        kind: what is tested: an attribute, a score or the segment.
        subject: the attribute, score name, or ``"segment"``.
        op: the operator (``eq``, ``gte``, ``matches`` …).
        value: the validated literal: a scalar, a frozenset for ``in`` /
            ``not_in`` / ``contains_any`` / ``contains_all``, a pair for
            ``between``, a compiled regex for ``matches``, an int of days.
        location: TOML-style location of the condition, for explanations.

    """

    kind: SubjectKind
    subject: str
    op: str
    value: Any
    location: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class AllOf:
    """True when every item is true (an empty list is rejected at load)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when at least one item is true."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class NotOf:
    """True when the item is false."""

    item: Condition


Condition = Leaf | AllOf | AnyOf | NotOf


@dataclass(frozen=True, slots=True)
class RuleDef:
    """A named, ordered rule: a segment, a tier rule or a persona.

    ``when`` is ``None`` only for the default rule, which is always last.
    """

    name: str
    when: Condition | None
    default: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class ScoreRule:
    """``points`` are added when ``when`` holds; ``label`` is shown in reasons."""

    points: int | float
    when: Condition
    label: str


@dataclass(frozen=True, slots=True)
class ScoreDef:
    """A named additive score with an optional cap and floor."""

    name: str
    rules: tuple[ScoreRule, ...]
    cap: int | float | None = None
    floor: int | float | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Axis:
    """One axis of the tier matrix: bands of a score (or numeric attribute).

    ``at_least`` is strictly descending; band *i* holds values ``>= at_least[i]``
    not in an earlier band, and the last band (index ``len(at_least)``) holds
    everything else, including a missing attribute.
    """

    kind: Literal["attr", "score"]
    subject: str
    at_least: tuple[int | float, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TierMatrix:
    """Tier by row band × column band: ``cells[row][column]`` is a tier name."""

    rows: Axis
    columns: Axis
    cells: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class ClassificationDef:
    """A named tiering beside the main tier (``[classifications.<name>]``).

    It is decided like the main tier, after the segment and the scores:
    ``tiers`` are ordered rules (first match wins; without a matrix the last
    is the default), ``matrix`` decides every record no rule matched. Each
    classification has its own output field, picklist and reason.

    Attributes:
        name: lowercase name (``value``); the output key is ``classification.<name>``.
        tiers: ordered rules over attributes, scores and the segment.
        matrix: the optional matrix deciding the rest.
        description: free text for people.

    """

    name: str
    tiers: tuple[RuleDef, ...]
    matrix: TierMatrix | None = None
    description: str = ""

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Its tier names: rule names first, then matrix cells in reading order, de-duplicated."""
        return _tier_names(self.tiers, self.matrix)


def _tier_names(tiers: tuple[RuleDef, ...], matrix: TierMatrix | None) -> tuple[str, ...]:
    names: list[str] = [t.name for t in tiers]
    if matrix is not None:
        for row in matrix.cells:
            names.extend(row)
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class MappingDef:
    """A whole, validated mapping file: one object's segmentation for both CRMs.

    Attributes:
        path: the file it was loaded from.
        object: ``"account"``, ``"contact"`` or ``"lead"`` (Salesforce only).
        version: stamped on every assignment.
        description: free text.
        attributes: name → definition, in file order.
        segments: ordered, first match wins, the last one is the default.
        scores: name → definition, in file order.
        tiers: ordered tier rules (with a matrix, these are overrides tried first).
        tier_matrix: the optional fit × intent style matrix.
        personas: ordered persona rules (contacts and leads); last is the default.
        inherit: which of ``segment`` / ``tier`` a contact takes from its account.
        lock: name of the boolean attribute that pins a record, if any.
        outputs: CRM → logical key (``segment``, ``score.fit`` …) → CRM field.
        timezone: the IANA zone whose calendar days ``date`` attributes and
            day-based tests use (``"UTC"`` unless the file says otherwise).
        classifications: name → further tierings beside the main tier, in file order.

    """

    path: str
    object: str
    version: str
    description: str
    attributes: Mapping[str, AttributeDef]
    segments: tuple[RuleDef, ...]
    scores: Mapping[str, ScoreDef]
    tiers: tuple[RuleDef, ...]
    tier_matrix: TierMatrix | None
    personas: tuple[RuleDef, ...]
    inherit: frozenset[str]
    lock: str | None
    outputs: Mapping[str, Mapping[str, str]]
    timezone: str = "UTC"
    classifications: Mapping[str, ClassificationDef] = field(default_factory=dict)

    @property
    def zone(self) -> tzinfo:
        """:attr:`timezone` as a tzinfo (the loader has checked that it exists)."""
        return zone_of(self.timezone)

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Segment names in rule order."""
        return tuple(s.name for s in self.segments)

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Tier names: rule names first, then matrix cells in reading order, de-duplicated."""
        return _tier_names(self.tiers, self.tier_matrix)

    @property
    def rollups(self) -> dict[str, RollupDef]:
        """Rollup attribute name → how it is computed from the deals, in file order."""
        return {n: a.rollup for n, a in self.attributes.items() if a.rollup is not None}

    def tier_rule_sets(self) -> tuple[tuple[RuleDef, ...], ...]:
        """The main tier rules, then each classification's: every tier rule list there is."""
        return (self.tiers, *(c.tiers for c in self.classifications.values()))

    def matrices(self) -> tuple[TierMatrix, ...]:
        """The main tier matrix and each classification's, where declared."""
        found = [self.tier_matrix, *(c.matrix for c in self.classifications.values())]
        return tuple(m for m in found if m is not None)

    @property
    def persona_names(self) -> tuple[str, ...]:
        """Persona names in rule order (empty for accounts, and leads without personas)."""
        return tuple(p.name for p in self.personas)


@cache
def zone_of(name: str) -> tzinfo:
    """An IANA time zone by name (``UTC`` without consulting the zone database).

    Raises:
        KeyError: the name is not a known zone.

    """
    if name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise KeyError(name) from None


def is_regex(value: object) -> bool:
    """Whether ``value`` is a compiled regular expression (for ``matches``)."""
    return isinstance(value, re.Pattern)
