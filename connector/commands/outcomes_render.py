"""``segsync outcomes`` rendered: one JSON document, a text table, a self-contained HTML page.

Computation is :mod:`connector.analysis.outcomes`; this module only turns its
values into output. The HTML page carries its charts as inline SVG (win rate
by group with 95 % intervals, the same per period, rule lift) and its styles
inline: no script, no font, nothing fetched, readable offline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.analysis.outcomes import GroupStats, LiftRow, OutcomeReport


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def group_document(g: GroupStats) -> dict[str, Any]:
    """One group as JSON."""
    return {
        "value": g.value,
        **({"period": g.period} if g.period is not None else {}),
        "deals": g.deals,
        "won": g.won,
        "lost": g.lost,
        "open": g.open,
        "win_rate": _rate(g.win_rate),
        "interval": None if g.interval is None else [_rate(g.interval[0]), _rate(g.interval[1])],
        "measurable": g.measurable,
        "avg_won_amount": _money(g.avg_won_amount),
        "median_won_amount": _money(g.median_won_amount),
        "median_days_to_close": None
        if g.median_days_to_close is None
        else round(g.median_days_to_close, 1),
        "pipeline_created": _money(g.pipeline_created),
        "basis": dict(g.basis),
    }


def lift_document(row: LiftRow) -> dict[str, Any]:
    """One rule of the lift table as JSON."""

    def interval(i: tuple[float, float] | None) -> list[float | None] | None:
        return None if i is None else [_rate(i[0]), _rate(i[1])]

    return {
        "rule": row.rule,
        "holds": {
            "won": row.holds_won,
            "closed": row.holds_closed,
            "win_rate": _rate(row.holds_rate),
            "interval": interval(row.holds_interval),
        },
        "does_not_hold": {
            "won": row.not_won,
            "closed": row.not_closed,
            "win_rate": _rate(row.not_rate),
            "interval": interval(row.not_interval),
        },
        "lift": None if row.lift is None else round(row.lift, 3),
        "separated": row.separated,
    }


def document(
    report: OutcomeReport, lift: Sequence[LiftRow], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """The whole report as one JSON document (``by``, ``groups``, …)."""
    return {
        **meta,
        "by": report.by,
        "period": report.period,
        "deals": report.deals,
        "unattributed": report.unattributed,
        "groups": [group_document(g) for g in report.groups],
        "periods": [group_document(g) for g in report.periods],
        "flags": [
            {"kind": f.kind, "value": f.value, "other": f.other, "message": f.message}
            for f in report.flags
        ],
        "rule_lift": [lift_document(r) for r in lift],
    }


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"


def _interval(doc: Mapping[str, Any]) -> str:
    i = doc.get("interval")
    return "—" if not i else f"{i[0]:.0%}–{i[1]:.0%}"


def _amount(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def render_text(console: Console, doc: Mapping[str, Any]) -> None:
    """The report as tables for people."""
    console.print(
        f"[bold]Outcomes by {doc['by']}[/] · {doc.get('connection', '')} "
        f"({doc.get('crm', '')}) · {doc['deals']:,} deals"
    )
    table = Table(show_edge=False)
    for column in (
        doc["by"],
        "won",
        "lost",
        "open",
        "win rate",
        "95 % interval",
        "avg won",
        "median won",
        "median days",
        "pipeline",
        "attributed by",
    ):
        table.add_column(
            column, justify="left" if column in (doc["by"], "attributed by") else "right"
        )
    for g in doc["groups"]:
        basis = g["basis"]
        table.add_row(
            g["value"],
            f"{g['won']:,}",
            f"{g['lost']:,}",
            f"{g['open']:,}",
            _pct(g["win_rate"]),
            _interval(g),
            _amount(g["avg_won_amount"]),
            _amount(g["median_won_amount"]),
            "—" if g["median_days_to_close"] is None else f"{g['median_days_to_close']:.0f}",
            _amount(g["pipeline_created"]),
            f"ledger {basis['ledger']:,} · current {basis['current']:,}",
        )
    console.print(table)
    for f in doc["flags"]:
        console.print(f"  [yellow]{f['kind']}[/]: {f['message']}")
    if doc.get("rule_lift"):
        lift = Table(title="Rule lift (win rate where the rule holds vs not)", show_edge=False)
        for column in ("rule", "holds", "does not", "lift", "separated"):
            lift.add_column(column, justify="left" if column == "rule" else "right")
        for r in doc["rule_lift"]:
            h, n = r["holds"], r["does_not_hold"]
            lift.add_row(
                r["rule"],
                f"{_pct(h['win_rate'])} of {h['closed']:,}",
                f"{_pct(n['win_rate'])} of {n['closed']:,}",
                "—" if r["lift"] is None else f"{r['lift']:.2f}×",
                "yes" if r["separated"] else "no",
            )
        console.print(lift)
    console.print(
        "  A deal counts against the value its account held when the deal was created where "
        "the ledger knows it (attributed by ledger), else the current one."
    )


# -- HTML ------------------------------------------------------------------

_W, _ROW = 640, 26


def _bars(rows: Sequence[tuple[str, float | None, list[float] | None]], title: str) -> str:
    """A horizontal bar chart of rates with interval whiskers, as inline SVG."""
    height = 30 + _ROW * len(rows)
    label_w, plot_w = 200, _W - 240
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + tick * plot_w
        out.append(
            f'<line x1="{x:.1f}" y1="22" x2="{x:.1f}" y2="{height}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{height - 2}" font-size="9" text-anchor="middle">'
            f"{tick:.0%}</text>"
        )
    for i, (label, rate, interval) in enumerate(rows):
        y = 26 + i * _ROW
        out.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
        )
        if rate is not None:
            out.append(
                f'<rect x="{label_w}" y="{y + 4}" width="{rate * plot_w:.1f}" height="14" '
                f'fill="#4a7bd0"><title>{escape(label)}: {rate:.1%}</title></rect>'
            )
        if interval:
            x1, x2 = label_w + interval[0] * plot_w, label_w + interval[1] * plot_w
            out.append(
                f'<line x1="{x1:.1f}" y1="{y + 11}" x2="{x2:.1f}" y2="{y + 11}" '
                'stroke="#111" stroke-width="2"/>'
                f'<line x1="{x1:.1f}" y1="{y + 6}" x2="{x1:.1f}" y2="{y + 16}" stroke="#111"/>'
                f'<line x1="{x2:.1f}" y1="{y + 6}" x2="{x2:.1f}" y2="{y + 16}" stroke="#111"/>'
            )
    out.append("</svg>")
    return "".join(out)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(doc: Mapping[str, Any], extra: Sequence[Mapping[str, Any]] = ()) -> str:
    """A self-contained page: tables and inline SVG charts, no script, nothing fetched.

    ``extra``: further reports of the same deals by other dimensions (the
    segment chart beside the tier one), each a :func:`document`.
    """
    sections = []
    for d in [doc, *extra]:
        by = str(d["by"])
        sections.append(f"<h2>Win rate by {escape(by)}</h2>")
        sections.append(
            _bars(
                [(g["value"], g["win_rate"], g["interval"]) for g in d["groups"]],
                f"Win rate by {by} (bars), 95 % interval (whiskers)",
            )
        )
        sections.append(
            _table(
                [by, "won", "lost", "open", "win rate", "95 % interval", "avg won", "pipeline"],
                [
                    [
                        g["value"],
                        f"{g['won']:,}",
                        f"{g['lost']:,}",
                        f"{g['open']:,}",
                        _pct(g["win_rate"]),
                        _interval(g),
                        _amount(g["avg_won_amount"]),
                        _amount(g["pipeline_created"]),
                    ]
                    for g in d["groups"]
                ],
            )
        )
        periods: dict[str, list[Mapping[str, Any]]] = {}
        for g in d["periods"]:
            periods.setdefault(g["period"], []).append(g)
        sections.append(f"<h3>Win rate by {escape(by)} over time ({escape(str(d['period']))})</h3>")
        sections.append(
            _bars(
                [
                    (f"{p} · {g['value']}", g["win_rate"], g["interval"])
                    for p, gs in sorted(periods.items())
                    for g in gs
                ],
                f"Win rate by {by} and {d['period']} of creation",
            )
        )
        if d["flags"]:
            sections.append(
                "<ul class=flags>"
                + "".join(
                    f"<li>{escape(f['kind'])}: {escape(f['message'])}</li>" for f in d["flags"]
                )
                + "</ul>"
            )
    if doc.get("rule_lift"):
        rows = doc["rule_lift"]
        sections.append("<h2>Rule lift</h2>")
        sections.append(
            _bars(
                [
                    (f"{r['rule']} · holds", r["holds"]["win_rate"], r["holds"]["interval"])
                    for r in rows
                ]
                + [
                    (
                        f"{r['rule']} · not",
                        r["does_not_hold"]["win_rate"],
                        r["does_not_hold"]["interval"],
                    )
                    for r in rows
                ],
                "Win rate of deals where each rule holds, and where it does not",
            )
        )
        sections.append(
            _table(
                ["rule", "holds", "does not hold", "lift", "intervals apart"],
                [
                    [
                        r["rule"],
                        f"{_pct(r['holds']['win_rate'])} of {r['holds']['closed']:,}",
                        f"{_pct(r['does_not_hold']['win_rate'])} of "
                        f"{r['does_not_hold']['closed']:,}",
                        "—" if r["lift"] is None else f"{r['lift']:.2f}×",
                        "yes" if r["separated"] else "no",
                    ]
                    for r in rows
                ],
            )
        )
    title = f"segsync outcomes · {doc.get('connection', '')}"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.flags{color:#8a5a00}"
        "</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"<p>{doc['deals']:,} deals · {escape(str(doc.get('crm', '')))} · generated "
        f"{escape(str(doc.get('generated_at', '')))}. A deal counts against the value its "
        "account held when the deal was created where the ledger knows it, else the current "
        "one. Groups with fewer than 20 closed deals are too small to measure.</p>"
        + "".join(sections)
        + "</body></html>"
    )
