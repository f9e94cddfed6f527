"""What the offline commands compute and show: distributions and transitions.

The computations are plain accumulators fed one assignment at a time (so an
export of any size streams through them in bounded memory) and pure functions
over their contents; they know nothing about files, engines or terminals.
Rendering comes in two forms: rich tables for people (:func:`render_preview`,
:func:`render_diff`) and JSON-ready dicts for scripts (:func:`preview_document`,
:func:`diff_document`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from connector.analysis.backtest import Backtest, wilson

Number = int | float
NoticeKind = Literal[
    "no_records",
    "small_segment",
    "empty_segment",
    "empty_tier",
    "blank_inputs",
    "missing_fields",
    "bad_rows",
    "missing_ids",
    "same_version",
    "other",
]

#: How many bad rows a report lists one by one (the count is always complete).
BAD_ROWS_LISTED = 20


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning worth a RevOps person's attention, with a machine-readable kind."""

    kind: NoticeKind
    message: str
    subject: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"kind": self.kind, "subject": self.subject, "message": self.message}


def share(count: int, total: int) -> float:
    """``count / total``, or 0.0 when there is nothing to divide."""
    return count / total if total else 0.0


def _ordered(declared: Sequence[str], seen: Iterable[str]) -> tuple[str, ...]:
    """Declared names first, in order, then any name seen but not declared."""
    names = dict.fromkeys(declared)
    for name in seen:
        names.setdefault(name, None)
    return tuple(names)


# --------------------------------------------------------------------------- distribution


@dataclass
class Distribution:
    """How the records of one export spread over segments, tiers, personas and scores.

    Attributes:
        segments: declared segment names, in rule order.
        tiers: declared tier names, in rule order.
        personas: declared persona names (empty for accounts).
        scores: declared score names.
        total: records added.
        blank_inputs: records whose every input field was blank.
        segment_counts: segment → records.
        tier_counts: tier → records.
        cells: (segment, tier) → records.
        persona_counts: persona → records (contacts).
        score_values: score → value → records; values repeat a lot (scores
            are sums of a few point values), so this stays small.

    """

    segments: tuple[str, ...]
    tiers: tuple[str, ...]
    personas: tuple[str, ...] = ()
    scores: tuple[str, ...] = ()
    total: int = 0
    blank_inputs: int = 0
    segment_counts: Counter[str] = field(default_factory=Counter)
    tier_counts: Counter[str] = field(default_factory=Counter)
    cells: Counter[tuple[str, str]] = field(default_factory=Counter)
    persona_counts: Counter[str] = field(default_factory=Counter)
    score_values: dict[str, Counter[Number]] = field(default_factory=dict)

    def add(
        self,
        segment: str,
        tier: str,
        scores: Mapping[str, Number | None] | None = None,
        persona: str | None = None,
        *,
        blank_inputs: bool = False,
    ) -> None:
        """Count one record's assignment."""
        self.total += 1
        self.blank_inputs += blank_inputs
        self.segment_counts[segment] += 1
        self.tier_counts[tier] += 1
        self.cells[segment, tier] += 1
        if persona is not None:
            self.persona_counts[persona] += 1
        if scores:
            values = self.score_values
            for name, value in scores.items():
                if value is not None:
                    if name not in values:
                        values[name] = Counter()
                    values[name][value] += 1

    def segment_order(self) -> tuple[str, ...]:
        """Segment names to show: declared ones, then any unexpected one."""
        return _ordered(self.segments, self.segment_counts)

    def tier_order(self) -> tuple[str, ...]:
        """Tier names to show: declared ones, then any unexpected one."""
        return _ordered(self.tiers, self.tier_counts)

    def persona_order(self) -> tuple[str, ...]:
        """Persona names to show: declared ones, then any unexpected one."""
        return _ordered(self.personas, self.persona_counts)

    def score_order(self) -> tuple[str, ...]:
        """Score names to show: declared ones, then any unexpected one."""
        return _ordered(self.scores, self.score_values)


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """Order statistics of one score over the records (nearest-rank quantiles)."""

    count: int
    min: Number
    p25: Number
    median: Number
    p75: Number
    max: Number
    mean: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "count": self.count,
            "min": self.min,
            "p25": self.p25,
            "median": self.median,
            "p75": self.p75,
            "max": self.max,
            "mean": round(self.mean, 2),
        }


def summarize_score(values: Mapping[Number, int]) -> ScoreSummary | None:
    """Min, quartiles, max and mean of a value → count histogram; None when empty."""
    count = sum(values.values())
    if count <= 0:
        return None
    ordered = sorted(values.items())

    def quantile(q: float) -> Number:
        rank = max(1, math.ceil(q * count))
        seen = 0
        for value, n in ordered:
            seen += n
            if seen >= rank:
                return value
        return ordered[-1][0]

    mean = sum(v * n for v, n in ordered) / count
    return ScoreSummary(
        count=count,
        min=ordered[0][0],
        p25=quantile(0.25),
        median=quantile(0.5),
        p75=quantile(0.75),
        max=ordered[-1][0],
        mean=mean,
    )


def distribution_notices(dist: Distribution, min_segment_share: float) -> list[Notice]:
    """What deserves a warning in a distribution.

    Segments matching nothing, segments under ``min_segment_share`` of the
    records (too small to staff or to run a campaign on), tiers nobody reaches,
    and records whose inputs were all blank (they fall to the defaults, which
    says more about the export than about the definition).
    """
    if dist.total == 0:
        return [Notice("no_records", "the export holds no readable records")]
    notices: list[Notice] = []
    for name in dist.segment_order():
        count = dist.segment_counts.get(name, 0)
        if count == 0:
            notices.append(
                Notice("empty_segment", f"segment {name!r} matches no record", subject=name)
            )
        elif share(count, dist.total) < min_segment_share:
            notices.append(
                Notice(
                    "small_segment",
                    f"segment {name!r} holds {count:,} record{'s' if count != 1 else ''} "
                    f"({share(count, dist.total):.1%}), under the {min_segment_share:.1%} "
                    "minimum share: too small to act on",
                    subject=name,
                )
            )
    for name in dist.tier_order():
        if dist.tier_counts.get(name, 0) == 0:
            notices.append(Notice("empty_tier", f"tier {name!r} reaches no record", subject=name))
    if dist.blank_inputs:
        notices.append(
            Notice(
                "blank_inputs",
                f"{dist.blank_inputs:,} record{'s' if dist.blank_inputs != 1 else ''} "
                f"({share(dist.blank_inputs, dist.total):.1%}) had every input blank "
                "and fell to the defaults",
            )
        )
    return notices


def missing_field_notices(
    needed: Sequence[str],
    seen: Iterable[str],
    other_crm: str | None = None,
    other_fields: Sequence[str] = (),
) -> list[Notice]:
    """Warn about input fields the export never showed.

    A missing column is the most common mistake with a hand-made export
    (labels instead of API names, a report without the custom fields); every
    record then reads that input as blank. ``other_fields`` are the inputs of
    the other CRM: if the export has those instead, the ``--crm`` is wrong.
    """
    present = set(seen)
    folded = {name.casefold(): name for name in present}
    notices: list[Notice] = []
    missing = [name for name in needed if name not in present]
    if needed and len(missing) == len(needed) and other_crm is not None:
        matches = [name for name in other_fields if name in present]
        if matches:
            notices.append(
                Notice(
                    "missing_fields",
                    f"the export has none of the mapping's input fields but has "
                    f"{', '.join(matches[:3])}: is it a {other_crm} export (--crm {other_crm})?",
                )
            )
            return notices
    for name in missing:
        hint = ""
        if name.casefold() in folded:
            hint = f" (the export has {folded[name.casefold()]!r}: field names are case-sensitive)"
        notices.append(
            Notice(
                "missing_fields",
                f"the export has no field {name!r}; every record reads it as blank{hint}",
                subject=name,
            )
        )
    return notices


def _bad_rows_part(bad_rows: Sequence[Any], bad_total: int) -> dict[str, Any]:
    return {
        "total": bad_total,
        "listed": [{"line": b.line, "message": b.message} for b in bad_rows],
    }


def preview_document(
    header: Mapping[str, Any],
    dist: Distribution,
    notices: Sequence[Notice],
    bad_rows: Sequence[Any] = (),
    bad_total: int = 0,
) -> dict[str, Any]:
    """The preview as one JSON-ready document.

    ``bad_rows`` are objects with ``line`` and ``message`` (the first few);
    ``bad_total`` counts them all.
    """
    total = dist.total
    summaries = {
        name: summary.to_dict()
        for name in dist.score_order()
        if (summary := summarize_score(dist.score_values.get(name, {}))) is not None
    }
    return {
        **header,
        "records": total,
        "blank_inputs": dist.blank_inputs,
        "segments": [
            {
                "name": s,
                "count": dist.segment_counts.get(s, 0),
                "share": share(dist.segment_counts.get(s, 0), total),
            }
            for s in dist.segment_order()
        ],
        "tiers": [
            {
                "name": t,
                "count": dist.tier_counts.get(t, 0),
                "share": share(dist.tier_counts.get(t, 0), total),
            }
            for t in dist.tier_order()
        ],
        "segment_tier": [
            {"segment": s, "tier": t, "count": dist.cells.get((s, t), 0)}
            for s in dist.segment_order()
            for t in dist.tier_order()
        ],
        "personas": [
            {
                "name": p,
                "count": dist.persona_counts.get(p, 0),
                "share": share(dist.persona_counts.get(p, 0), total),
            }
            for p in dist.persona_order()
        ],
        "scores": summaries,
        "bad_rows": _bad_rows_part(bad_rows, bad_total),
        "warnings": [n.to_dict() for n in notices],
    }


# --------------------------------------------------------------------------- transitions


@dataclass(frozen=True, slots=True)
class Sample:
    """One record that moved: its id (or line) and its reason under the new definition."""

    record: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready view."""
        return {"id": self.record, "reason": self.reason}


@dataclass
class Transitions:
    """How records move between two definitions, per dimension (segment, tier, persona).

    ``moves[dimension][(before, after)]`` counts records, including those that
    stay (``before == after``); ``samples`` keeps the first ``sample_limit``
    records of each actual move, in file order, so the same export always
    gives the same samples.
    """

    dimensions: tuple[str, ...]
    before_names: Mapping[str, Sequence[str]]
    after_names: Mapping[str, Sequence[str]]
    sample_limit: int = 3
    total: int = 0
    unchanged: int = 0
    moves: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    samples: dict[str, dict[tuple[str, str], list[Sample]]] = field(default_factory=dict)
    score_sums: dict[str, list[float]] = field(default_factory=dict)

    def add(
        self,
        record: str,
        before: Mapping[str, str | None],
        after: Mapping[str, str | None],
        reason: str,
        before_scores: Mapping[str, Number | None] | None = None,
        after_scores: Mapping[str, Number | None] | None = None,
    ) -> None:
        """Count one record evaluated under both definitions."""
        self.total += 1
        changed = False
        for dim in self.dimensions:
            old, new = before.get(dim) or "", after.get(dim) or ""
            self.moves.setdefault(dim, Counter())[old, new] += 1
            if old != new:
                changed = True
                bucket = self.samples.setdefault(dim, {}).setdefault((old, new), [])
                if len(bucket) < self.sample_limit:
                    bucket.append(Sample(record, reason))
        self.unchanged += not changed
        # Mean score before / after, for scores both definitions have.
        for name, value in (after_scores or {}).items():
            old_value = (before_scores or {}).get(name)
            if value is not None and old_value is not None:
                sums = self.score_sums.setdefault(name, [0.0, 0.0, 0.0])
                sums[0] += old_value
                sums[1] += value
                sums[2] += 1

    def changed(self, dimension: str) -> int:
        """Records whose ``dimension`` differs between the definitions."""
        return sum(n for (old, new), n in self.moves.get(dimension, {}).items() if old != new)

    def order(self, dimension: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(row names, column names) of the matrix: declared names, then unexpected ones."""
        counts = self.moves.get(dimension, Counter())
        rows = _ordered(self.before_names.get(dimension, ()), (o for o, _ in counts))
        cols = _ordered(self.after_names.get(dimension, ()), (n for _, n in counts))
        return rows, cols

    def sizes(self, dimension: str) -> list[tuple[str, int, int]]:
        """(name, records before, records after) for every name of either definition."""
        rows, cols = self.order(dimension)
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        for (old, new), n in self.moves.get(dimension, {}).items():
            before[old] += n
            after[new] += n
        return [(name, before[name], after[name]) for name in dict.fromkeys((*rows, *cols))]

    def move_list(self, dimension: str) -> list[tuple[str, str, int]]:
        """The actual moves of a dimension, largest first (ties in matrix order)."""
        rows, cols = self.order(dimension)
        rank = {(r, c): i for i, (r, c) in enumerate((r, c) for r in rows for c in cols)}
        moves = [
            (old, new, n)
            for (old, new), n in self.moves.get(dimension, {}).items()
            if old != new and n
        ]
        moves.sort(key=lambda m: (-m[2], rank.get((m[0], m[1]), 0)))
        return moves


def diff_notices(transitions: Transitions, before_version: str, after_version: str) -> list[Notice]:
    """Warnings about a definition change."""
    notices: list[Notice] = []
    if transitions.total == 0:
        notices.append(Notice("no_records", "the export holds no readable records"))
    moved = transitions.total - transitions.unchanged
    if moved and before_version == after_version:
        notices.append(
            Notice(
                "same_version",
                f"{moved:,} records change but both definitions carry version "
                f"{after_version!r}: bump the version so every record is re-evaluated "
                "and stamped with the new one",
            )
        )
    return notices


def diff_document(
    header: Mapping[str, Any],
    transitions: Transitions,
    notices: Sequence[Notice],
    bad_rows: Sequence[Any] = (),
    bad_total: int = 0,
) -> dict[str, Any]:
    """The diff as one JSON-ready document."""
    dims: dict[str, Any] = {}
    for dim in transitions.dimensions:
        rows, cols = transitions.order(dim)
        counts = transitions.moves.get(dim, Counter())
        dims[dim] = {
            "changed": transitions.changed(dim),
            "sizes": [
                {"name": name, "before": old, "after": new, "delta": new - old}
                for name, old, new in transitions.sizes(dim)
            ],
            "matrix": [
                {"from": r, "to": c, "count": counts.get((r, c), 0)}
                for r in rows
                for c in cols
                if counts.get((r, c), 0)
            ],
            "moves": [
                {
                    "from": old,
                    "to": new,
                    "count": n,
                    "samples": [
                        s.to_dict() for s in transitions.samples.get(dim, {}).get((old, new), [])
                    ],
                }
                for old, new, n in transitions.move_list(dim)
            ],
        }
    return {
        **header,
        "records": transitions.total,
        "unchanged": transitions.unchanged,
        "changed": transitions.total - transitions.unchanged,
        "transitions": dims,
        "score_means": {
            name: {"before": round(s[0] / s[2], 2), "after": round(s[1] / s[2], 2)}
            for name, s in transitions.score_sums.items()
            if s[2]
        },
        "bad_rows": _bad_rows_part(bad_rows, bad_total),
        "warnings": [n.to_dict() for n in notices],
    }


# --------------------------------------------------------------------------- rendering

_BAR_WIDTH = 24


def _bar(fraction: float, width: int = _BAR_WIDTH) -> Text:
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[rest].strip() if rest else ""
    return Text("█" * full + partial, style="cyan")


def _header_line(console: Console, title: str, header: Mapping[str, Any]) -> None:
    console.print(Text(title, style="bold"))
    width = max((len(k) for k in header), default=0)
    for key, value in header.items():
        console.print(Text.assemble((f"  {key.replace('_', ' '):<{width}}  ", "dim"), str(value)))
    console.print()


def _count_table(title: str, label: str, rows: Iterable[tuple[str, int]], total: int) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
    table.add_column(label, no_wrap=True)
    table.add_column("Records", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("", no_wrap=True)
    for name, count in rows:
        style = "dim" if count == 0 else None
        table.add_row(
            name, f"{count:,}", f"{share(count, total):.1%}", _bar(share(count, total)), style=style
        )
    return table


def _fmt_number(value: Number) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _delta(value: int) -> Text:
    if value == 0:
        return Text("·", style="dim")
    return Text(f"{value:+,}", style="green" if value > 0 else "red")


def _notices(console: Console, notices: Sequence[Notice]) -> None:
    if not notices:
        return
    console.print(Text("Warnings", style="bold yellow"))
    for notice in notices:
        console.print(Text.assemble(("  ! ", "bold yellow"), notice.message))
    console.print()


def _bad_rows(console: Console, bad_rows: Sequence[Any], bad_total: int) -> None:
    if not bad_total:
        return
    console.print(
        Text(
            f"Skipped {bad_total:,} unreadable row{'s' if bad_total != 1 else ''}",
            style="bold yellow",
        )
    )
    for bad in bad_rows:
        console.print(f"  line {bad.line}: {bad.message}", markup=False, highlight=False)
    if bad_total > len(bad_rows):
        console.print(f"  … and {bad_total - len(bad_rows):,} more", style="dim")
    console.print()


def render_preview(
    console: Console,
    header: Mapping[str, Any],
    dist: Distribution,
    notices: Sequence[Notice],
    bad_rows: Sequence[Any] = (),
    bad_total: int = 0,
) -> None:
    """Print a preview for people: shares, the segment × tier table, scores, warnings."""
    total = dist.total
    _header_line(console, "segsync preview", header)
    if total:
        segments = dist.segment_order()
        tiers = dist.tier_order()
        console.print(
            _count_table(
                "Segments", "Segment", ((s, dist.segment_counts.get(s, 0)) for s in segments), total
            )
        )
        console.print(
            _count_table("Tiers", "Tier", ((t, dist.tier_counts.get(t, 0)) for t in tiers), total)
        )
        matrix = Table(
            title="Segment × tier", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD
        )
        matrix.add_column("Segment", no_wrap=True)
        for tier in tiers:
            matrix.add_column(tier, justify="right")
        matrix.add_column("Total", justify="right", style="bold")
        for seg in segments:
            cells: list[str | Text] = [seg]
            for tier in tiers:
                n = dist.cells.get((seg, tier), 0)
                cells.append(Text(f"{n:,}") if n else Text("·", style="dim"))
            cells.append(f"{dist.segment_counts.get(seg, 0):,}")
            matrix.add_row(*cells)
        matrix.add_section()
        matrix.add_row(
            Text("Total", style="bold"),
            *(Text(f"{dist.tier_counts.get(t, 0):,}", style="bold") for t in tiers),
            f"{total:,}",
        )
        console.print(matrix)
        if dist.persona_counts or dist.personas:
            personas = dist.persona_order()
            console.print(
                _count_table(
                    "Personas",
                    "Persona",
                    ((p, dist.persona_counts.get(p, 0)) for p in personas),
                    total,
                )
            )
        scores = Table(
            title="Scores", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD
        )
        scores.add_column("Score")
        for col in ("min", "p25", "median", "p75", "max", "mean"):
            scores.add_column(col, justify="right")
        for name in dist.score_order():
            summary = summarize_score(dist.score_values.get(name, {}))
            if summary is None:
                continue
            scores.add_row(
                name,
                *(
                    _fmt_number(v)
                    for v in (summary.min, summary.p25, summary.median, summary.p75, summary.max)
                ),
                f"{summary.mean:,.1f}",
            )
        if scores.row_count:
            console.print(scores)
    _bad_rows(console, bad_rows, bad_total)
    _notices(console, notices)


def render_diff(
    console: Console,
    header: Mapping[str, Any],
    transitions: Transitions,
    notices: Sequence[Notice],
    bad_rows: Sequence[Any] = (),
    bad_total: int = 0,
) -> None:
    """Print a definition change for review: transition matrices and sample moves."""
    total = transitions.total
    _header_line(console, "segsync diff", header)
    moved = total - transitions.unchanged
    console.print(
        Text.assemble(
            ("Unchanged ", "bold"),
            f"{transitions.unchanged:,} of {total:,} records "
            f"({share(transitions.unchanged, total):.1%}); ",
            ("changed ", "bold"),
            f"{moved:,} ({share(moved, total):.1%})",
        )
    )
    console.print()
    for dim in transitions.dimensions:
        # A square matrix over both definitions' names, so a renamed or removed
        # segment shows where its records went and an added one where they came from.
        sizes = {name: (old, new) for name, old, new in transitions.sizes(dim)}
        rows = cols = tuple(sizes)
        counts = transitions.moves.get(dim, Counter())
        changed = transitions.changed(dim)
        if not changed:
            console.print(Text.assemble((dim.capitalize(), "bold"), f": no record changes {dim}."))
            console.print()
            continue
        title = (
            f"{dim.capitalize()} transitions: {changed:,} record{'s' if changed != 1 else ''} move"
        )
        matrix = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
        matrix.add_column("before \\ after", no_wrap=True)
        for col in cols:
            matrix.add_column(col, justify="right")
        matrix.add_column("before", justify="right", style="bold")
        for row in rows:
            cells: list[str | Text] = [row]
            for col in cols:
                n = counts.get((row, col), 0)
                if not n:
                    cells.append(Text("·", style="dim"))
                elif row == col:
                    cells.append(Text(f"{n:,}", style="dim"))
                else:
                    cells.append(Text(f"{n:,}", style="bold magenta"))
            cells.append(f"{sizes[row][0]:,}")
            matrix.add_row(*cells)
        matrix.add_section()
        matrix.add_row(Text("after", style="bold"), *(f"{sizes[c][1]:,}" for c in cols), "")
        matrix.add_row(
            Text("change", style="bold"), *(_delta(sizes[c][1] - sizes[c][0]) for c in cols), ""
        )
        console.print(matrix)
        for old, new, n in transitions.move_list(dim):
            console.print(
                Text.assemble(
                    "  ",
                    (old or "(none)", "bold"),
                    " → ",
                    (new or "(none)", "bold"),
                    f"  {n:,} record{'s' if n != 1 else ''}",
                )
            )
            moved_samples = transitions.samples.get(dim, {}).get((old, new), [])
            if moved_samples:
                grid = Table.grid(padding=(0, 2))
                grid.add_column(no_wrap=True, style="cyan")
                grid.add_column(style="dim")
                for sample in moved_samples:
                    grid.add_row(sample.record, sample.reason)
                console.print(Padding(grid, (0, 0, 0, 4)))
        console.print()
    means = [
        (name, before_sum / weight, after_sum / weight)
        for name, (before_sum, after_sum, weight) in transitions.score_sums.items()
        if weight
    ]
    if any(round(before, 1) != round(after, 1) for _, before, after in means):
        scores = Table(
            title="Mean scores", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD
        )
        scores.add_column("Score")
        scores.add_column("before", justify="right")
        scores.add_column("after", justify="right")
        for name, before, after in means:
            scores.add_row(name, f"{before:,.1f}", f"{after:,.1f}")
        console.print(scores)
    elif means:
        console.print(Text.assemble(("Scores", "bold"), ": mean scores unchanged."))
        console.print()
    _bad_rows(console, bad_rows, bad_total)
    _notices(console, notices)


def _rate_text(won: int, lost: int) -> str:
    closed = won + lost
    if not closed:
        return "–"
    interval = wilson(won, closed)
    low, high = interval if interval is not None else (0.0, 0.0)
    return f"{won / closed:.0%} ({won}/{closed}, {low:.0%}–{high:.0%})"


def _auc_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render_backtest(console: Console, backtest: Backtest) -> None:
    """The backtest of ``diff --outcomes``: win rate per tier, top tier, AUC, before and after."""
    before, after = backtest.reports()
    skipped = ", ".join(f"{n:,} {why.replace('_', ' ')}" for why, n in backtest.skipped.items())
    console.print(
        f"\n[bold]Backtest on {backtest.won + backtest.lost:,} closed deals[/] "
        f"({backtest.won:,} won, {backtest.lost:,} lost"
        + (f"; left out: {skipped}" if skipped else "")
        + ")"
    )
    table = Table(box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("tier")
    table.add_column(f"win rate before ({before.version})", justify="right")
    table.add_column(f"win rate after ({after.version})", justify="right")
    rows_before = {t.tier: t for t in before.tiers}
    rows_after = {t.tier: t for t in after.tiers}
    for name in dict.fromkeys([*rows_before, *rows_after]):
        b, a = rows_before.get(name), rows_after.get(name)
        table.add_row(
            name,
            _rate_text(b.won, b.lost) if b else "–",
            _rate_text(a.won, a.lost) if a else "–",
        )
    console.print(table)
    console.print(
        f"won deals in the top tier: {before.top_tier_won:,} in {before.top_tier!r} before, "
        f"{after.top_tier_won:,} in {after.top_tier!r} after"
    )
    console.print(
        f"ROC AUC of the tier (won vs lost): {_auc_text(before.auc_tier)} before, "
        f"{_auc_text(after.auc_tier)} after"
    )
    for name in dict.fromkeys([*before.auc_scores, *after.auc_scores]):
        console.print(
            f"ROC AUC of score {name}: {_auc_text(before.auc_scores.get(name))} before, "
            f"{_auc_text(after.auc_scores.get(name))} after"
        )
