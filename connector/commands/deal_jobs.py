"""The deal jobs of ``segsync sync``: read-only pulls of each connection's deals.

``segsync sync --object deal`` runs them; a plain ``segsync sync`` (or
``--object account``) runs them before the account jobs when the account
mapping has rollup attributes (computed from the deals) or the config says
``[sync] deals = true``. Each takes its job's claim (``<connection>.deal``,
``connector/store/leases.py``) like the account and contact jobs. A dry run
skips them (nothing is written to the CRM; the rollups read the deals the
store holds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any, cast

from rich.console import Console

from connector.config import SyncSettings
from connector.crm.base import CrmAdapter, DealSource
from connector.crm.retry import RetryPolicy
from connector.engine import Engine
from connector.errors import EXIT_BUSY, SegsyncError
from connector.store.deals import DEAL_OBJECT
from connector.store.leases import Busy, Lease, job_key
from connector.store.store import Store
from connector.sync.deals import DealSyncResult, sync_deals
from connector.sync.rollups import rollups_need_deals

Claim = Callable[[str], AbstractContextManager[Lease | Busy | None]]
"""Claims a job by key for the block: a lease, Busy (held elsewhere) or None (no claims)."""


def wanted(settings: SyncSettings, engines: Mapping[str, Engine], obj: str, dry_run: bool) -> bool:
    """Whether this ``segsync sync`` runs the deal jobs."""
    if dry_run:
        return False
    return obj == "deal" or (
        obj in ("all", "account") and (settings.deals or rollups_need_deals(engines))
    )


def run_deal_jobs(
    adapters: Mapping[str, CrmAdapter],
    store: Store,
    settings: SyncSettings,
    crm: str,
    *,
    full: bool,
    mark_accounts: bool = False,
    claim: Claim | None = None,
) -> list[tuple[str, str, DealSyncResult | None, str, int]]:
    """Each selected connection's deal sync: (connection, crm, result, error, exit code).

    ``mark_accounts``: see :func:`~connector.sync.deals.sync_deals`. ``claim``:
    each run holds ``<connection>.deal`` (a job held elsewhere is ``busy``).
    """
    out: list[tuple[str, str, DealSyncResult | None, str, int]] = []
    for name, adapter in adapters.items():
        if crm not in ("all", adapter.crm):
            continue
        source = cast(DealSource, adapter)
        held = claim(job_key(name, DEAL_OBJECT)) if claim is not None else nullcontext(None)
        try:
            with held as lease:
                if isinstance(lease, Busy):
                    out.append((name, adapter.crm, None, str(lease), EXIT_BUSY))
                    continue
                result = sync_deals(
                    source,
                    store,
                    name,
                    full=full,
                    lookback=timedelta(seconds=settings.lookback_seconds),
                    mark_accounts=mark_accounts,
                    lease=lease,
                    retry=RetryPolicy.from_settings(settings),
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
        "removed": result.removed,
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
        f"stored {result.stored:,} · removed {result.removed:,} · skipped {result.skipped:,} · "
        f"problems {result.problems:,}"
    )
    console.print(
        f"  API calls used {result.api_calls:,} (minimum possible {result.minimum_calls:,})"
    )
    for p in result.sample_problems:
        verb = "kept" if p.kept else "skipped"
        console.print(f"  [yellow]{verb}[/] {p.id}: {p.code}: {p.message}", soft_wrap=True)
