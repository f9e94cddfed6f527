"""The mapping language: models, loader and validation.

``load_mapping(path)`` reads one ``mappings/*.toml`` file and returns a
validated, immutable :class:`MappingDef`, or raises
:class:`~connector.errors.MappingError` listing every problem found (file,
TOML location, what was expected, and a suggestion for typos).

The language in one screen (``mappings/accounts.toml`` teaches it in full)::

    object = "account" | "contact" | "lead"     version = "2026-11-b"     lock = "<boolean attr>"
    inherit = ["segment", "tier"]      # contacts: taken from the parent account

    [attributes.<name>]   type, salesforce, hubspot, synonyms, values, unknown, blank
    [[segments]]          name, when | default = true      (ordered, first match wins)
    [scores.<name>]       rules = [{ points, when, label }], cap, floor
    [[tiers]]             name, when | default = true      (ordered; overrides with a matrix)
    [tier_matrix]         rows / columns = { score | attr, at_least = [...], labels }, cells
    [classifications.<name>]  description; [[….tiers]] rules and / or [….matrix]  (more tierings)
    [[personas]]          name, when | default = true      (contacts)
    [outputs.<crm>]       segment, tier, persona, reason, version, updated_at,
                          scores = { <name> = "<field>" },
                          classifications / classification_reasons = { <name> = "<field>" }

    when = { attr = "employees", gte = 500 }      { score = "fit", gte = 60 }
           { segment = "SMB" }  { segment = ["A", "B"] }
           { all = [...] }  { any = [...] }  { not = {...} }
    operators: eq ne in not_in gt gte lt lte between contains contains_any
               contains_all exists missing matches within_days older_than_days
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
    ClassificationDef,
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
    "ClassificationDef",
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
