"""What the output fields should look like in a CRM, derived from the mappings (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connector.crm.base import MANAGED_MARK, OutputField
from connector.engine import Engine
from connector.mapping.models import RuleDef, TierMatrix

#: Salesforce keeps at most 510 characters of a field's hover help (inlineHelpText).
HELP_MAX = 510

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
    # An inherited picklist holds the parent's values as the parent definition ranks
    # them (Tier 1, Tier 2, Tier 3), then the contact's own that the parent lacks:
    # not the contact file's order, which starts with its default.
    segment_source = parent if parent is not None and "segment" in inherited else None
    tier_source = parent if parent is not None and "tier" in inherited else None
    options: dict[str, Sequence[str]] = {
        "segment": _union(
            segment_source.segment_names if segment_source else (), engine.segment_names
        ),
        "tier": _union(tier_source.tier_names if tier_source else (), engine.tier_names),
        "persona": engine.persona_names,
    }
    rules = {
        "segment": _rules(
            engine.definition.segments, segment_source.definition.segments if segment_source else ()
        ),
        "tier": _rules(
            engine.definition.tiers, tier_source.definition.tiers if tier_source else ()
        ),
        "persona": _rules(engine.definition.personas, ()),
    }
    specs: list[OutputField] = []
    for key, name in engine.output_fields(crm).items():
        if key.startswith(("classification.", "classification_reason.")):
            specs.append(_classification_spec(engine, key, name))
            continue
        if key.startswith("score."):
            score = key.removeprefix("score.")
            label = f"{score.replace('_', ' ').title()} Score"
            description = f"segsync's {score} score for this record."
            specs.append(
                OutputField(
                    name,
                    "number",
                    label,
                    f"{description} {MANAGED_MARK}",
                    help=_marked(_score_help(engine, score, description)),
                )
            )
            continue
        label, lead = _LABELS[key]
        # The mark (in the description and the hover help, which is what the
        # Salesforce describe returns) tells a later provision or run that
        # segsync created the field.
        description = f"{lead} {MANAGED_MARK}"
        if key in options:
            help_text = _listing(lead, options[key], rules[key])
            if key == "tier":
                matrix = (tier_source or engine).definition.tier_matrix
                help_text = _clip(help_text + _matrix_help(matrix)) if matrix else help_text
            specs.append(
                OutputField(
                    name,
                    "picklist",
                    label,
                    description,
                    tuple(options[key]),
                    help=_marked(help_text),
                )
            )
        elif key == "reason":
            specs.append(OutputField(name, "longtext", label, description, help=description))
        elif key == "updated_at":
            specs.append(OutputField(name, "datetime", label, description, help=description))
        else:
            specs.append(OutputField(name, "text", label, description, help=description))
    return specs


def _classification_spec(engine: Engine, key: str, name: str) -> OutputField:
    """A classification's picklist (its tier names) or its reason's long text."""
    kind, _, which = key.partition(".")
    title = which.replace("_", " ").title()
    definition = engine.definition.classifications[which]
    if kind == "classification_reason":
        description = f"Why segsync assigned this {which} tier. {MANAGED_MARK}"
        return OutputField(name, "longtext", f"{title} Reason", description, help=description)
    lead = (
        definition.description.rstrip(".") + "."
        if definition.description
        else f"The {which} tier segsync assigned."
    )
    help_text = _listing(lead, definition.tier_names, _rules(definition.tiers, ()))
    if definition.matrix is not None:
        help_text = _clip(help_text + _matrix_help(definition.matrix))
    return OutputField(
        name,
        "picklist",
        f"{title} Tier",
        f"{lead} {MANAGED_MARK}",
        definition.tier_names,
        help=_marked(help_text),
    )


def _union(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def _rules(own: Sequence[RuleDef], inherited: Sequence[RuleDef]) -> dict[str, str]:
    """Name → description of the rules behind a picklist (the inherited ones first)."""
    out: dict[str, str] = {}
    for rule in (*inherited, *own):
        if rule.description:
            out.setdefault(rule.name, rule.description)
    return out


def _listing(lead: str, values: Sequence[str], described: Mapping[str, str]) -> str:
    """Hover help for a picklist: what it holds, then each value's meaning where known."""
    parts = [f"{v}: {described[v]}" for v in values if described.get(v)]
    text = (
        lead
        if not parts
        else f"{lead} " + " ".join(p if p.endswith(".") else p + "." for p in parts)
    )
    return _clip(text)


def _matrix_help(matrix: TierMatrix) -> str:
    """Which band pairs of the tier matrix give each tier ("Tier 2: high fit × cold, …")."""
    cells: dict[str, list[str]] = {}
    for r, row in enumerate(matrix.cells):
        for c, tier in enumerate(row):
            cells.setdefault(tier, []).append(
                f"{matrix.rows.labels[r]} × {matrix.columns.labels[c]}"
            )
    listed = "; ".join(f"{tier}: {', '.join(where)}" for tier, where in cells.items())
    return f" Otherwise by {matrix.rows.subject} × {matrix.columns.subject}: {listed}."


def _score_help(engine: Engine, score: str, fallback: str) -> str:
    definition = engine.definition.scores.get(score)
    if definition is None or not definition.description:
        return fallback
    text = definition.description.rstrip(".") + "."
    if definition.floor is not None and definition.cap is not None:
        text += f" From {definition.floor:g} to {definition.cap:g}; higher is better."
    elif definition.cap is not None:
        text += f" At most {definition.cap:g}; higher is better."
    return _clip(text)


def _clip(text: str) -> str:
    """At most 510 characters: Salesforce's limit for a field's hover help."""
    return text if len(text) <= HELP_MAX else text[: HELP_MAX - 1].rstrip() + "…"


def _marked(text: str) -> str:
    """``text`` clipped to leave room for segsync's mark, then the mark: always within the limit."""
    room = HELP_MAX - len(MANAGED_MARK) - 1
    body = text if len(text) <= room else text[: room - 1].rstrip() + "…"
    return f"{body} {MANAGED_MARK}"
