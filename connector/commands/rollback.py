"""``segsync rollback RUN_ID``, and what ``history --mapping-version`` shows.

The work is in :mod:`connector.sync.rollback`; this module wires the config
to it and prints the plan and the outcome.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from connector.commands.crm import _claim, _claims, open_context
from connector.commands.options import FORMAT
from connector.config import config_path, load_settings
from connector.crm.retry import RetryPolicy
from connector.errors import EXIT_BUSY, EXIT_OK, EXIT_RUN_FAILED, Problem, UserError
from connector.store.leases import Busy
from connector.store.records import RunRow
from connector.sync.rollback import Restore, Rollback, RollbackResult, run_to_undo
from connector.sync.runner import Job
from connector.sync.steps import open_store
from connector.sync.values import as_text

#: Records a text rendering lists before "… and N more".
SHOWN = 50


def _restore_doc(r: Restore) -> dict[str, Any]:
    return {
        "record": r.record_id,
        "field": r.field,
        "from": as_text(r.current),
        "to": r.restore,
        "run_wrote": r.run_value,
        "conflict": r.conflict or None,
    }


def _document(result: RollbackResult) -> dict[str, Any]:
    plan = result.plan
    return {
        "rollback_of": plan.run.id,
        "connection": plan.run.connection,
        "crm": plan.run.crm,
        "object": plan.run.object,
        "mapping_version": plan.run.mapping_version,
        "dry_run": result.dry_run,
        "run_id": result.run_id,
        "status": result.status,
        "records": plan.records,
        "restores": [_restore_doc(r) for rs in plan.writes.values() for r in rs],
        "conflicts": [_restore_doc(r) for rs in plan.conflicts.values() for r in rs if r.conflict],
        "forced": plan.forced,
        "already_restored": plan.already,
        "gone": plan.gone,
        "written": result.written,
        "failed": result.failed,
        "failures": [
            {"record": f.record_id, "code": f.code, "message": f.message} for f in result.failures
        ],
        "api_calls": result.api_calls,
        "message": result.message or None,
    }


def _render(console: Console, result: RollbackResult) -> None:
    plan = result.plan
    run = plan.run
    head = "Would restore" if result.dry_run else "Restored"
    console.print(
        f"Rollback of run {run.id} ({run.connection} {run.object}s, mapping "
        f"{escape(run.mapping_version)}, {run.started_at:%Y-%m-%d %H:%M}): "
        f"{plan.records:,} records changed by it",
        soft_wrap=True,
    )
    restores = [r for rs in plan.writes.values() for r in rs]
    count = len(plan.writes) if result.dry_run else result.written
    console.print(f"{head} {count:,} records ({len(restores):,} fields):")
    for r in restores[:SHOWN]:
        console.print(
            f"  {r.record_id} {r.field}: {escape(as_text(r.current) or '(blank)')} → "
            f"{escape(r.restore or '(blank)')}",
            soft_wrap=True,
        )
    if len(restores) > SHOWN:
        console.print(f"  … and {len(restores) - SHOWN:,} more (--format json lists them all)")
    conflicts = [r for rs in plan.conflicts.values() for r in rs if r.conflict]
    if conflicts:
        what = "overwritten (--force)" if plan.forced else "left alone (--force restores them)"
        console.print(f"Conflicts: {len(plan.conflicts):,} records changed since the run, {what}:")
        for r in conflicts[:SHOWN]:
            console.print(
                f"  {r.record_id} {r.field}: {escape(r.conflict)}; the run wrote "
                f"{escape(r.run_value or '(blank)')}, before it {escape(r.restore or '(blank)')}",
                soft_wrap=True,
            )
        if len(conflicts) > SHOWN:
            console.print(f"  … and {len(conflicts) - SHOWN:,} more")
    if plan.already:
        console.print(f"Already holding the old values: {plan.already:,} records")
    if plan.gone:
        console.print(f"Gone from the CRM since: {len(plan.gone):,} records")
    if not result.dry_run:
        console.print(
            f"Run {result.run_id}: {result.status}, written {result.written:,}, "
            f"failed {result.failed:,}, {result.api_calls:,} API calls "
            "(segsync history and status show it)"
        )
        for f in result.failures:
            console.print(f"  failed {f.record_id}: {escape(f.code)}: {escape(f.message)}")


def _run_of(config_file: Path | None, run_id: int) -> RunRow:
    settings = load_settings(config_file)
    store = open_store(settings.store, RetryPolicy.from_settings(settings.sync))
    try:
        run = run_to_undo(store, run_id, RetryPolicy.from_settings(settings.sync))
    finally:
        store.close()
    if run is None:
        raise UserError([Problem("RUN_ID", "", f"no run {run_id} in the state store")])
    if run.connection not in settings.connections:
        raise UserError(
            [
                Problem(
                    str(config_path(config_file)),
                    "connections",
                    f"run {run_id} is of connection {run.connection!r}, which the config "
                    "no longer names",
                )
            ]
        )
    if run.status == "running":
        raise UserError([Problem("RUN_ID", "", f"run {run_id} is still running")])
    return run


@click.command("rollback")
@click.argument("run_id", type=int)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (default: config.toml, or $SEGSYNC_CONFIG).",
)
@click.option("--dry-run", is_flag=True, help="Change nothing; print what would be restored.")
@click.option(
    "--force",
    is_flag=True,
    help="Also restore records changed since the run, and pass the mass-change guard.",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, 86_400),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="When the job runs in another process, wait up to this long for it (0: do not wait).",
)
@FORMAT
def rollback(
    run_id: int,
    config_file: Path | None,
    dry_run: bool,
    force: bool,
    wait_seconds: float,
    fmt: str,
) -> None:
    """Undo a run: restore what each record it changed held before it.

    Reads each record the run changed (its ledger entries) from the CRM, and
    writes back the value it held before the run. A record changed since (by a
    later run, or in the CRM) is a conflict: listed and left alone, unless
    --force. The rollback is a run of its own (guard, ledger, errors), shown by
    `segsync history` and `status`; rolling it back returns to the run's values.

    Exit status: 0 when done (conflicts are listed, not failures), 1 when the
    guard stopped it or a record's write failed, 2 for an unknown run, 5 when
    the job runs in another process (--wait SECONDS waits for it).
    """
    run = _run_of(config_file, run_id)
    with open_context(config_file, connections=[run.connection]) as ctx:
        engine = ctx.engines.get(run.object)
        if engine is None:
            raise UserError(
                [Problem("sync.mappings", "", f"no mapping for {run.object}s is configured")]
            )
        adapter = ctx.adapters[run.connection]
        adopted = ctx.settings.connections[run.connection].adopted(run.object)
        job = Job(run.connection, adapter, engine, adopted=adopted)
        # One run per job: a rollback claims the job as a sync does (not a dry run).
        with _claims(ctx, dry_run) as claims, _claim(claims, job, wait_seconds) as lease:
            if isinstance(lease, Busy):
                click.secho(f"error: {lease}", fg="red", err=True)
                sys.exit(EXIT_BUSY)
            result = Rollback(ctx.store, ctx.settings.sync, adapter, engine, adopted=adopted).run(
                run_id, dry_run=dry_run, force=force, lease=lease
            )
    if fmt == "json":
        click.echo(json.dumps(_document(result), indent=2, default=str))
    else:
        _render(Console(highlight=False), result)
    sys.exit(EXIT_RUN_FAILED if result.failed else EXIT_OK)


__all__ = ["rollback"]
