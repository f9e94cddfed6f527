"""What ``segsync history --mapping-version V`` shows: everything one definition changed.

Runs are stamped with the mapping version they ran, and so is every ledger
entry; this module gathers both from the store and renders them.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from connector.store.store import Store


def version_document(store: Store, version: str, records: bool, limit: int) -> dict[str, Any]:
    """Everything one mapping version changed: its runs, counts per field, the records."""
    runs = store.runs(limit=limit, mapping_version=version)
    counts = store.transition_counts(version)
    doc: dict[str, Any] = {
        "mapping_version": version,
        "runs": [
            {
                "id": r.id,
                "connection": r.connection,
                "crm": r.crm,
                "object": r.object,
                "status": r.status,
                "started_at": r.started_at.isoformat(),
                "written": r.counts.written,
                "message": r.message,
            }
            for r in runs
        ],
        "changes": [
            {"field": field, "from": old, "to": new, "records": n} for field, old, new, n in counts
        ],
    }
    if records:
        doc["records"] = [
            {
                "record": t.record_id,
                "field": t.field,
                "from": t.from_value,
                "to": t.to_value,
                "reason": t.reason,
                "run_id": t.run_id,
                "at": t.at.isoformat(),
            }
            for t in store.history(None, limit=limit, mapping_version=version)
        ]
    return doc


def render_version(console: Console, doc: dict[str, Any]) -> None:
    """The text form of :func:`version_document`."""
    version = escape(doc["mapping_version"])
    if not doc["runs"]:
        console.print(f"No runs of mapping version {version}.")
        return
    console.print(f"Runs of mapping version {version} (newest first):")
    for r in doc["runs"]:
        note = f" · {escape(r['message'])}" if r["message"] else ""
        console.print(
            f"  {r['id']:>5}  {r['started_at'][:16].replace('T', ' ')}  "
            f"{r['connection']}.{r['object']:<10} {r['status']:<10} "
            f"written {r['written']:,}{note}",
            soft_wrap=True,
        )
    console.print("What it changed (records per field, from → to):")
    if not doc["changes"]:
        console.print("  nothing")
    for c in doc["changes"]:
        console.print(
            f"  {c['field']}: {escape(c['from'] or '(blank)')} → {escape(c['to'] or '(blank)')}"
            f"  {c['records']:,}",
            soft_wrap=True,
        )
    for t in doc.get("records", []):
        console.print(
            f"  {t['at'][:19].replace('T', ' ')} {t['record']} {t['field']}: "
            f"{escape(t['from'] or '(blank)')} → {escape(t['to'] or '(blank)')} "
            f"[dim](run {t['run_id']})[/] {escape(t['reason'])}",
            soft_wrap=True,
        )


__all__ = ["render_version", "version_document"]
