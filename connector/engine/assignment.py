"""The result of evaluating one record, and its short reason line."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

#: Longest reason written to a CRM text field.
REASON_LIMIT = 255
_SEP = " · "
_ELLIPSIS = "…"
_NO_OUTPUTS: Mapping[str, Mapping[str, str]] = {}
_NO_CLASSES: Mapping[str, str] = {}


class Scores(dict[str, float | int]):
    """Score name → value, read-only.

    A ``dict`` subclass so that it compares equal to a plain dict, serializes
    to JSON and pickles; mutation is refused because the engine shares one
    assignment between every record with the same decisions.
    """

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("assignment scores are read-only")

    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only
    clear = _read_only
    pop = _read_only
    popitem = _read_only
    setdefault = _read_only
    update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (Scores, (dict(self),))


@dataclass(frozen=True, slots=True)
class Assignment:
    """Segment, tier, scores and persona of one record under one mapping version.

    Instances are immutable and may be shared between records that land on
    exactly the same decisions (the engine interns them).

    Attributes:
        segment: the segment name.
        tier: the tier name.
        scores: score name → value, in definition order.
        persona: the persona name for contacts, ``None`` for accounts.
        version: the mapping version that produced it.
        reason: a one-line reason of at most 255 characters.
        output_spec: CRM → logical output key → CRM field; what
            :meth:`outputs` writes. Not part of equality.
        due_at: the earliest instant (UTC) at which this record's
            assignment changes with no edit, because a ``within_days`` /
            ``older_than_days`` test flips; ``None`` when time alone never
            changes it. Set by :meth:`Engine.assign
            <connector.engine.Engine.assign>` (``evaluate`` leaves it ``None``);
            not part of equality.
        classifications: classification name → its tier, in definition order
            (empty when the mapping declares none).
        classification_reasons: classification name → its one-line reason.
            Not part of equality (it follows from the decisions).

    """

    segment: str
    tier: str
    scores: Mapping[str, float | int] = field(hash=False)
    persona: str | None
    version: str
    reason: str = ""
    output_spec: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: _NO_OUTPUTS, compare=False, repr=False, hash=False
    )
    due_at: datetime | None = field(default=None, compare=False, hash=False)
    classifications: Mapping[str, str] = field(default_factory=lambda: _NO_CLASSES, hash=False)
    classification_reasons: Mapping[str, str] = field(
        default_factory=lambda: _NO_CLASSES, compare=False, repr=False, hash=False
    )

    def outputs(self, crm: str, now: datetime) -> dict[str, Any]:
        """CRM field → value for exactly the outputs the mapping declares for ``crm``.

        Args:
            crm: ``"salesforce"`` or ``"hubspot"``.
            now: the time stamped into the ``updated_at`` output.

        Returns:
            Python values (str, int / float, datetime), in the order the
            mapping declares them; a new dict on every call; an empty dict
            when the mapping declares no outputs for this CRM.

        """
        spec = self.output_spec.get(crm)
        if not spec:
            return {}
        made = _MAKERS.get(id(spec))
        if made is None or made[0] is not spec:
            made = (spec, _output_maker(spec))
            if len(_MAKERS) >= _MAKERS_LIMIT:
                _MAKERS.clear()
            _MAKERS[id(spec)] = made
        return made[1](self, now)


#: One CRM's output spec → the generated function that builds its outputs. Keyed
#: by the spec's identity; the entry holds the spec, so the id is not reused.
_MAKERS: dict[int, tuple[Mapping[str, str], Callable[[Assignment, datetime], dict[str, Any]]]] = {}
_MAKERS_LIMIT = 1_000
_PLAIN = {
    "segment": "a.segment",
    "tier": "a.tier",
    "persona": "a.persona",
    "reason": "a.reason",
    "version": "a.version",
}
_PREFIXED = {
    "score.": "a.scores.get",
    "classification.": "a.classifications.get",
    "classification_reason.": "a.classification_reasons.get",
}


def _output_maker(spec: Mapping[str, str]) -> Callable[[Assignment, datetime], dict[str, Any]]:
    """``outputs`` for one CRM's spec as one generated dict display (keys in spec order).

    Like the engine's evaluator, the source holds no text from the mapping:
    field and score names are constants (``k3``). Keys that name no output are
    left out.
    """
    consts: dict[str, Any] = {}

    def const(value: str) -> str:
        name = f"k{len(consts)}"
        consts[name] = value
        return name

    items = []
    for key, crm_field in spec.items():
        if key in _PLAIN:
            value = _PLAIN[key]
        elif key == "updated_at":
            value = "now"
        else:
            prefix = next((p for p in _PREFIXED if key.startswith(p)), None)
            if prefix is None:
                continue
            value = f"{_PREFIXED[prefix]}({const(key[len(prefix) :])})"
        items.append(f"{const(crm_field)}: {value}")
    source = f"def make(a, now):\n    return {{{', '.join(items)}}}\n"
    exec(compile(source, "<segsync outputs>", "exec"), consts)
    maker: Callable[[Assignment, datetime], dict[str, Any]] = consts["make"]
    return maker


def number_text(value: float | int) -> str:
    """A score or points value without a useless ``.0``."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return str(value)


def points_text(points: float | int) -> str:
    """Signed points: ``+30``, ``-10``."""
    text = number_text(points)
    return text if text.startswith("-") else f"+{text}"


def score_text(name: str, value: float | int, hits: Sequence[str], shown: int | None = None) -> str:
    """One score in a reason line: ``fit 80 (employees ≥ 1000 +30, …)``.

    ``shown`` is how many contributions to list (all by default); fewer end in "…".
    """
    text = f"{name} {number_text(value)}"
    if hits:
        n = len(hits) if shown is None else shown
        listed = list(hits[:n])
        if n < len(hits):
            listed.append(_ELLIPSIS)
        text += f" ({', '.join(listed)})"
    return text


def join_reason(head: Sequence[str], texts: Sequence[str], tail: Sequence[str] = ()) -> str | None:
    """:func:`reason_line` from score texts already rendered in full; ``None`` if too long.

    The line an interned assignment gets when nothing has to be shortened,
    without rendering its scores again (see :class:`connector.engine.compiler.Compiler`).
    """
    line = _SEP.join(p for p in (*head, *texts, *tail) if p)
    return line if len(line) <= REASON_LIMIT else None


def reason_line(
    head: Sequence[str],
    scores: Sequence[tuple[str, float | int, Sequence[str]]],
    tail: Sequence[str] = (),
    limit: int = REASON_LIMIT,
) -> str:
    """Assemble ``Tier 1 · Enterprise SaaS · fit 80 (employees ≥ 500 +30, …) · intent 64``.

    When the line is too long, the last contributions of the last scores are
    replaced by "…" first; only if that is not enough is the line cut.

    Args:
        head: leading parts (tier, segment, persona …).
        scores: (name, value, contributions such as ``"uses Salesforce +20"``).
        tail: trailing parts.
        limit: maximum length.

    """
    shown = [len(hits) for _, _, hits in scores]

    def render() -> str:
        parts = list(head)
        for (name, value, hits), n in zip(scores, shown, strict=True):
            parts.append(score_text(name, value, hits, n))
        parts.extend(tail)
        return _SEP.join(p for p in parts if p)

    line = render()
    index = len(shown) - 1
    while len(line) > limit and index >= 0:
        if shown[index] > 0:
            shown[index] -= 1
            line = render()
        else:
            index -= 1
    if len(line) > limit:
        cut = line[: limit - 1]
        space = cut.rfind(" ")
        if space > limit // 2:
            cut = cut[:space]
        line = cut.rstrip(" ·,(") + _ELLIPSIS
    return line
