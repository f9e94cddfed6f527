"""The mapping language: models, loader and validation.

``load_mapping(path)`` reads one ``mappings/*.toml`` file and returns a
validated, immutable :class:`MappingDef`, or raises :class:`MappingError`
listing every problem found (file, TOML location, what was expected, and a
suggestion for typos).
"""

from __future__ import annotations

from connector.mapping.loader import (
    OPERATORS,
    TYPE_OPERATORS,
    load_mapping,
    loads_mapping,
    parse_mapping,
)
from connector.mapping.models import (
    ATTR_TYPES,
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
    ScoreDef,
    ScoreRule,
    TierMatrix,
)

__all__ = [
    "ATTR_TYPES",
    "CRMS",
    "OPERATORS",
    "TYPE_OPERATORS",
    "AllOf",
    "AnyOf",
    "AttributeDef",
    "Axis",
    "Condition",
    "Leaf",
    "MappingDef",
    "NotOf",
    "RuleDef",
    "ScoreDef",
    "ScoreRule",
    "TierMatrix",
    "load_mapping",
    "loads_mapping",
    "parse_mapping",
]
