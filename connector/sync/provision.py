"""What the output fields should look like in a CRM, derived from the mappings (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from connector.crm.base import OutputField
from connector.engine import Engine

_LABELS = {
    "segment": ("Segment", "The segment segsync assigned (first matching rule of the mapping)."),
    "tier": ("Tier", "The tier segsync assigned from its scores and rules."),
    "persona": ("Persona", "The buying-committee persona segsync assigned."),
    "reason": ("Segment Reason", "Why segsync assigned this segment, tier and scores."),
    "version": ("Segment Version", "The version of the segment definition that was applied."),
    "updated_at": ("Segment Updated At", "When segsync last wrote these values."),
}


def output_specs(engine: Engine, crm: str, parent: Engine | None = None) -> list[OutputField]:
    """The output fields ``engine`` declares for ``crm``, with kinds and picklist options.

    Picklists list exactly the names the definition can produce; a contact
    that inherits its account's segment or tier can also hold the account
    definition's names, so those are included.
    """
    inherited = engine.inherits if parent is not None else frozenset()
    options: dict[str, Sequence[str]] = {
        "segment": _union(
            engine.segment_names, parent.segment_names if "segment" in inherited and parent else ()
        ),
        "tier": _union(
            engine.tier_names, parent.tier_names if "tier" in inherited and parent else ()
        ),
        "persona": engine.persona_names,
    }
    specs: list[OutputField] = []
    for key, name in engine.output_fields(crm).items():
        if key.startswith("score."):
            score = key.removeprefix("score.")
            label = f"{score.replace('_', ' ').title()} Score"
            specs.append(
                OutputField(name, "number", label, f"segsync's {score} score for this record.")
            )
            continue
        label, description = _LABELS[key]
        if key in options:
            specs.append(OutputField(name, "picklist", label, description, tuple(options[key])))
        elif key == "reason":
            specs.append(OutputField(name, "longtext", label, description))
        elif key == "updated_at":
            specs.append(OutputField(name, "datetime", label, description))
        else:
            specs.append(OutputField(name, "text", label, description))
    return specs


def _union(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))
