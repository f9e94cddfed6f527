"""The deal jobs of ``segsync sync``: read-only pulls of each connection's deals.

``segsync sync --object deal`` runs them; a plain ``segsync sync`` runs them
after the account and contact jobs when the config says ``[sync] deals =
true``. A dry run skips them (there is nothing to preview: nothing is written
to the CRM).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from rich.console import Console

from connector.config import SyncSettings
from connector.crm.base import CrmAdapter, DealSource
from connector.errors import SegsyncError
from connector.store.store import Store
from connector.sync.deals import DealSyncResult, sync_deals


def wanted(settings: SyncSettings, obj: str, dry_run: bool) -> bool:
    """Whether this ``segsync sync`` runs the deal jobs."""
    if dry_run:
        return False
    return obj == "deal" or (obj == "all" and settings.deals)


def run_deal_jobs(
    adapters: Mapping[str, CrmAdapter],
    store: Store,
    settings: SyncSettings,
    crm: str,
    *,
    full: bool,
) -> list[tuple[str, str, DealSyncResult | None, str, int]]:
    """Each selected connection's deal sync: (connection, crm, result, error, exit code)."""
    out: list[tuple[str, str, DealSyncResult | None, str, int]] = []
    for name, adapter in adapters.items():
        if crm not in ("all", adapter.crm):
            continue
        source = cast(DealSource, adapter)
        try:
            result = sync_deals(
                source,
                store,
                name,
                full=full,
                lookback=timedelta(seconds=settings.lookback_seconds),
            )
        except SegsyncError as exc:
            out.append((name, adapter.crm, None, str(exc), exc.exit_code))
        else:
            out.append((name, adapter.crm, result, result.message, 0))
    return out


def document(result: DealSyncResult) -> dict[str, Any]:
    """The JSON view of a deal run (in ``runs`` beside the account and contact runs)."""
    return {
        "connection": result.connection,
        "crm": result.crm,
        "object": "deal",
        "run_id": result.run_id,
        "status": result.status,
        "full": result.full,
        "dry_run": False,
        "read": result.read,
        "stored": result.stored,
        "skipped": result.skipped,
        "problems": result.problems,
        "written": 0,
        "api_calls": result.api_calls,
        "api_calls_minimum": result.minimum_calls,
        "seconds": round(result.seconds, 3),
        "sample_problems": [
            {"id": p.id, "code": p.code, "message": p.message, "kept": p.kept}
            for p in result.sample_problems
        ],
        "message": result.message or None,
    }


def render(console: Console, result: DealSyncResult, job_name: str) -> None:
    """A deal run in text."""
    kind = "full" if result.full else "incremental"
    console.print(
        f"[bold]{job_name}[/] ({kind}, {result.status}, read-only): read {result.read:,} · "
        f"stored {result.stored:,} · skipped {result.skipped:,} · problems {result.problems:,}"
    )
    console.print(
        f"  API calls used {result.api_calls:,} (minimum possible {result.minimum_calls:,})"
    )
    for p in result.sample_problems:
        verb = "kept" if p.kept else "skipped"
        console.print(f"  [yellow]{verb}[/] {p.id}: {p.code}: {p.message}", soft_wrap=True)
