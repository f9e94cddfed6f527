"""``segsync parity``: whether one definition gives each record the same values in both CRMs.

This module reads (live through the two adapters, or from two exports per
object), builds the identity keys, and renders; matching and comparing are
pure (:mod:`connector.analysis.identity`, :mod:`connector.analysis.parity`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from connector.analysis.parity import Pair, Parity, cause_line, compare, display
from connector.commands.crm import load_engines, make_adapter, select_connections
from connector.commands.exports import ExportReader, id_fields, parent_id
from connector.commands.options import NOW, OUT, REPORT_FORMAT
from connector.config import ParityMatch, Settings, config_path, load_settings, warn_insecure
from connector.crm.base import CrmAdapter, ObjectName
from connector.crm.ids import link_key
from connector.crm.retry import RetryPolicy
from connector.engine import Assignment, Engine
from connector.errors import ConfigError, Problem, UserError
from connector.sync.identity import identify, read_all, readable_fields

_SHOWN = 25  # disagreements and unmatched records listed in text (json and html list all)


@dataclass
class _Side:
    """One CRM's records of one object: id → raw fields."""

    records: dict[str, Mapping[str, Any]]


def _parents(
    engines: Mapping[str, Engine], accounts: Mapping[str, _Side], now: datetime
) -> dict[str, dict[str, Assignment]]:
    engine = engines.get("account")
    if engine is None:
        return {"salesforce": {}, "hubspot": {}}
    return {
        crm: {i: engine.evaluate(f, crm, now) for i, f in accounts[crm].records.items()}
        for crm in ("salesforce", "hubspot")
    }


def run_parity(
    engines: Mapping[str, Engine],
    sides: Mapping[str, Mapping[str, _Side]],
    settings: Settings,
    now: datetime,
) -> list[Parity]:
    """Match and compare every object read (accounts first); contacts inherit on their own side."""
    results = []
    parents: dict[str, dict[str, Assignment]] = {"salesforce": {}, "hubspot": {}}
    if "account" in sides:
        parents = _parents(engines, sides["account"], now)
    for obj in ("account", "contact"):
        if obj not in sides or obj not in engines:
            continue
        engine = engines[obj]
        sf, hs = sides[obj]["salesforce"].records, sides[obj]["hubspot"].records
        identity = identify(obj, sf, hs, settings.parity.match_on.get(obj))
        inherits = obj == "contact" and bool(engine.inherits)
        pairs = []
        for m in identity.matches:
            sf_fields, hs_fields = sf[m.salesforce_id], hs[m.hubspot_id]
            sf_parent = hs_parent = None
            if inherits:
                sf_parent = parents["salesforce"].get(
                    link_key(sf_fields.get("AccountId"), "salesforce") or ""
                )
                hs_parent = parents["hubspot"].get(
                    link_key(hs_fields.get("associatedcompanyid"), "hubspot") or ""
                )
            pairs.append(Pair(m, sf_fields, hs_fields, sf_parent, hs_parent))
        results.append(compare(engine, pairs, identity, now))
    return results


# -- reading -------------------------------------------------------------------


def _read_export(path: Path, crm: str) -> dict[str, Mapping[str, Any]]:
    records: dict[str, Mapping[str, Any]] = {}
    with ExportReader(path) as reader:
        for record in reader:
            record_id = None
            for name in id_fields(crm):
                record_id = link_key(record.fields.get(name), crm)
                if record_id:
                    break
            if record_id is None:
                continue  # no id: nothing to match it by
            records[record_id] = record.fields
        if reader.bad_count:
            click.echo(
                f"{path}: {reader.bad_count} bad row(s) skipped (first: {reader.bad_rows[0]})",
                err=True,
            )
    return records


def _object_of(path: Path, records: Mapping[str, Mapping[str, Any]]) -> ObjectName:
    prefixes = {record_id[:3] for record_id in records}
    if prefixes <= {"001"} and prefixes:
        return "account"
    if prefixes <= {"003"} and prefixes:
        return "contact"
    if any(parent_id(f, "salesforce") for f in records.values()):
        return "contact"
    if not records:
        raise UserError([Problem(str(path), "", "the export holds no record with an Id")])
    raise UserError(
        [
            Problem(
                str(path),
                "Id",
                "cannot tell accounts (ids 001…) from contacts (ids 003…) in this export",
            )
        ]
    )


def _from_exports(
    exports: Sequence[tuple[Path, Path]], engines: Mapping[str, Engine]
) -> dict[str, dict[str, _Side]]:
    sides: dict[str, dict[str, _Side]] = {}
    for sf_path, hs_path in exports:
        sf = _read_export(sf_path, "salesforce")
        obj = _object_of(sf_path, sf)
        if obj in sides:
            raise UserError(
                [Problem(str(sf_path), "", f"a second pair of {obj} exports in --from-exports")]
            )
        if obj not in engines:
            raise UserError([Problem(str(sf_path), "", f"no mapping for {obj}s is configured")])
        hs = _read_export(hs_path, "hubspot")
        sides[obj] = {"salesforce": _Side(sf), "hubspot": _Side(hs)}
    return sides


def _pull_all(
    adapter: CrmAdapter, obj: ObjectName, engine: Engine, match: ParityMatch | None
) -> _Side:
    fields = readable_fields(adapter, obj, engine.input_fields(adapter.crm), match)
    return _Side(dict(read_all(adapter, obj, fields)))


def _live(
    settings: Settings,
    config_file: Path | None,
    engines: Mapping[str, Engine],
    connections: Sequence[str],
) -> dict[str, dict[str, _Side]]:
    selected = select_connections(settings, config_file, names=connections)
    by_crm: dict[str, list[str]] = {"salesforce": [], "hubspot": []}
    for name, conn in selected.items():
        by_crm[conn.crm].append(name)
    where = str(config_path(config_file))
    problems = [
        Problem(
            where,
            "connections",
            f"parity compares one {crm} connection with one of the other CRM; "
            + (
                f"found {len(names)} ({', '.join(names)}): pick one with --connection"
                if names
                else "none is configured"
            ),
        )
        for crm, names in by_crm.items()
        if len(names) != 1
    ]
    if problems:
        raise ConfigError(problems)
    sides: dict[str, dict[str, _Side]] = {}
    adapters: list[CrmAdapter] = []
    try:
        for crm in ("salesforce", "hubspot"):
            name = by_crm[crm][0]
            adapter = make_adapter(name, selected[name], RetryPolicy.from_settings(settings.sync))
            adapters.append(adapter)
            for obj in ("account", "contact"):
                engine = engines.get(obj)
                if engine is None:
                    continue
                side = _pull_all(adapter, obj, engine, settings.parity.match_on.get(obj))
                sides.setdefault(obj, {})[crm] = side
    finally:
        for adapter in adapters:
            adapter.close()
    return sides


# -- rendering -------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def document(results: Sequence[Parity], source: str) -> dict[str, Any]:
    """The parity report as one JSON-ready document."""
    objects = []
    for r in results:
        identity = r.identity
        objects.append(
            {
                "object": r.object,
                "version": r.version,
                "matched": len(identity.matches),
                "matched_by": identity.counts_by_method(),
                "ambiguous": [
                    {
                        "crm": a.crm,
                        "id": a.id,
                        "by": a.by,
                        "key": a.key,
                        "candidates": list(a.candidates),
                    }
                    for a in identity.ambiguous
                ],
                "unmatched": {
                    "salesforce": identity.unmatched_salesforce,
                    "hubspot": identity.unmatched_hubspot,
                },
                "compared": r.compared,
                "agreeing": r.agreeing,
                "outputs": {
                    name: {"agreeing": agree, "compared": total}
                    for name, (agree, total) in r.outputs.items()
                },
                "causes": [
                    {
                        "attribute": c.attribute,
                        "summary": cause_line(c, r.object),
                        "salesforce": {
                            "raw": _plain(c.salesforce_raws),
                            "value": _plain(c.salesforce_value),
                        },
                        "hubspot": {
                            "raw": _plain(c.hubspot_raws),
                            "value": _plain(c.hubspot_value),
                        },
                        "count": c.count,
                        "outputs": dict(c.outputs),
                        "records": [{"salesforce": s, "hubspot": h} for s, h in c.records],
                        "suggestion": {
                            "kind": c.suggestion.kind,
                            "text": c.suggestion.text,
                            "file": c.suggestion.file,
                            "table": c.suggestion.table,
                            "raw": c.suggestion.raw,
                            "canonical": c.suggestion.canonical,
                            "crm": c.suggestion.crm,
                        },
                    }
                    for c in r.causes
                ],
                "disagreements": [
                    {
                        "salesforce_id": d.salesforce_id,
                        "hubspot_id": d.hubspot_id,
                        "matched_by": d.by,
                        "outputs": {
                            k: {"salesforce": _plain(a), "hubspot": _plain(b)}
                            for k, (a, b) in d.outputs.items()
                        },
                        "attributes": [
                            {
                                "name": a.name,
                                "decisive": a.decisive,
                                "salesforce": {
                                    "field": a.salesforce_field,
                                    "raw": _plain(a.salesforce_raw),
                                    "value": _plain(a.salesforce_value),
                                },
                                "hubspot": {
                                    "field": a.hubspot_field,
                                    "raw": _plain(a.hubspot_raw),
                                    "value": _plain(a.hubspot_value),
                                },
                            }
                            for a in d.attributes
                        ],
                    }
                    for d in r.disagreements
                ],
            }
        )
    now = results[0].now.isoformat() if results else None
    return {"source": source, "now": now, "objects": objects}


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def _summary_lines(r: Parity) -> list[str]:
    identity = r.identity
    by = ", ".join(
        f"{n:,} by {m.replace('_', ' ')}" for m, n in identity.counts_by_method().items()
    )
    noun = r.object
    lines = [
        f"{noun.capitalize()}s (definition {r.version}): {len(identity.matches):,} matched"
        + (f" ({by})" if by else "")
        + f", {len(identity.ambiguous):,} ambiguous, "
        f"{len(identity.unmatched_salesforce):,} unmatched in Salesforce, "
        f"{len(identity.unmatched_hubspot):,} unmatched in HubSpot",
        f"  agree on every output: {r.agreeing:,} of {r.compared:,} "
        f"({_share(r.agreeing, r.compared)})",
    ]
    for name, (agree, total) in r.outputs.items():
        lines.append(f"    {name}: {agree:,} of {total:,} agree ({_share(agree, total)})")
    return lines


def render_text(results: Sequence[Parity]) -> str:
    """The report for people, in plain text."""
    lines: list[str] = []
    for r in results:
        lines.extend(_summary_lines(r))
        if r.causes:
            lines.append("  causes:")
            for c in r.causes:
                lines.append(f"    {cause_line(c, r.object)}")
                lines.append(f"      → {c.suggestion.text}")
        if r.disagreements:
            lines.append("  disagreements (Salesforce id ↔ HubSpot id):")
            for d in r.disagreements[:_SHOWN]:
                outs = "; ".join(
                    f"{k} {display(a)} vs {display(b)}" for k, (a, b) in d.outputs.items()
                )
                lines.append(f"    {d.salesforce_id} ↔ {d.hubspot_id}: {outs}")
                for diff in d.causes:
                    lines.append(
                        f"      {diff.name}: Salesforce {diff.salesforce_field} = "
                        f"{display(diff.salesforce_raw)} → {display(diff.salesforce_value)}; "
                        f"HubSpot {diff.hubspot_field} = {display(diff.hubspot_raw)} "
                        f"→ {display(diff.hubspot_value)}"
                    )
            if len(r.disagreements) > _SHOWN:
                lines.append(
                    f"    … and {len(r.disagreements) - _SHOWN:,} more (--format json lists all)"
                )
        identity = r.identity
        for a in identity.ambiguous[:_SHOWN]:
            lines.append(
                f"  ambiguous: {a.crm} {a.id}: {a.by} {a.key!r} also names "
                + ", ".join(a.candidates)
            )
        for crm, ids in (
            ("Salesforce", identity.unmatched_salesforce),
            ("HubSpot", identity.unmatched_hubspot),
        ):
            if ids:
                more = f" … and {len(ids) - _SHOWN:,} more" if len(ids) > _SHOWN else ""
                lines.append(f"  unmatched in {crm}: " + ", ".join(ids[:_SHOWN]) + more)
        lines.append("")
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.num{text-align:right}
.fix{color:#0b5394}.muted{color:#57606a}
"""


def render_html(results: Sequence[Parity], source: str) -> str:
    """The report as one self-contained HTML page (no script, no external file)."""
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>segsync parity</title><style>" + _CSS + "</style></head><body>",
        f"<h1>segsync parity</h1><p class=muted>{e(source)}"
        + (f", as of {e(results[0].now.isoformat())}" if results else "")
        + "</p>",
    ]
    for r in results:
        parts.append(f"<h2>{e(r.object.capitalize())}s</h2>")
        parts.append("<p>" + "<br>".join(e(line.strip()) for line in _summary_lines(r)) + "</p>")
        if r.causes:
            parts.append("<table><tr><th>cause</th><th class=num>pairs</th><th>fix</th></tr>")
            for c in r.causes:
                parts.append(
                    f"<tr><td>{e(cause_line(c, r.object))}</td><td class=num>{c.count}</td>"
                    f"<td class=fix>{e(c.suggestion.text)}</td></tr>"
                )
            parts.append("</table>")
        if r.disagreements:
            parts.append(
                "<table><tr><th>Salesforce</th><th>HubSpot</th><th>outputs</th><th>attributes</th></tr>"
            )
            for d in r.disagreements:
                outs = "<br>".join(
                    e(f"{k}: {display(a)} vs {display(b)}") for k, (a, b) in d.outputs.items()
                )
                attrs = "<br>".join(
                    e(
                        f"{a.name}: {display(a.salesforce_raw)} → {display(a.salesforce_value)} vs "
                        f"{display(a.hubspot_raw)} → {display(a.hubspot_value)}"
                        + ("" if a.decisive else " (with others)")
                    )
                    for a in d.attributes
                )
                parts.append(
                    f"<tr><td>{e(d.salesforce_id)}</td><td>{e(d.hubspot_id)}</td>"
                    f"<td>{outs}</td><td>{attrs}</td></tr>"
                )
            parts.append("</table>")
        identity = r.identity
        if identity.ambiguous:
            parts.append("<table><tr><th>ambiguous</th><th>by</th><th>candidates</th></tr>")
            for a in identity.ambiguous:
                parts.append(
                    f"<tr><td>{e(a.crm)} {e(a.id)}</td><td>{e(a.by)} {e(a.key)}</td>"
                    f"<td>{e(', '.join(a.candidates))}</td></tr>"
                )
            parts.append("</table>")
        for crm, ids in (
            ("Salesforce", identity.unmatched_salesforce),
            ("HubSpot", identity.unmatched_hubspot),
        ):
            if ids:
                parts.append(f"<p>Unmatched in {crm}: {e(', '.join(ids))}</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _write(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError([Problem(str(out), "", f"cannot write the report: {reason}")]) from None


@click.command("parity")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (default: config.toml, or $SEGSYNC_CONFIG).",
)
@click.option(
    "--connection",
    "connections",
    multiple=True,
    metavar="NAME",
    help="The connections to compare when the config has several of a CRM (repeatable).",
)
@click.option(
    "--from-exports",
    "exports",
    nargs=2,
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="SF_FILE HS_FILE",
    help="Compare a Salesforce and a HubSpot export instead of the live CRMs "
    "(repeat: accounts and contacts).",
)
@REPORT_FORMAT
@OUT
@NOW
def parity(
    config_file: Path | None,
    connections: tuple[str, ...],
    exports: tuple[tuple[Path, Path], ...],
    fmt: str,
    out: Path | None,
    now: datetime | None,
) -> None:
    """Compare what one definition gives each company and person in Salesforce and in HubSpot.

    Matches records across the CRMs (the id HubSpot's Salesforce integration
    stores, then domain or email, then [parity] match_on), evaluates both
    sides with the configured mappings, and reports agreement on every
    output, the attributes behind each disagreement, and the synonym or rule
    change that would remove each cause.
    """
    if exports and config_file is None and not config_path(None).is_file():
        # Two exports need no connection: without a config, the built-in definitions.
        settings = Settings()
    else:
        settings = load_settings(config_file)
    engines = load_engines(settings.sync.mappings, deals=False)
    instant = now or datetime.now(UTC)
    if exports:
        sides = _from_exports(exports, engines)
        source = "exports: " + "; ".join(f"{a} ↔ {b}" for a, b in exports)
    else:
        warn_insecure(settings)
        sides = _live(settings, config_file, engines, connections)
        source = "live: " + str(config_path(config_file))
    results = run_parity(engines, sides, settings, instant)
    if fmt == "json":
        text = (
            json.dumps(document(results, source), indent=2, ensure_ascii=False, default=str) + "\n"
        )
    elif fmt == "html":
        text = render_html(results, source)
    else:
        text = render_text(results)
    _write(text, out)
