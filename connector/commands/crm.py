"""The commands that talk to a CRM: ``sync``, ``provision``, ``status``, ``history``, ``errors``.

Every one takes ``--config FILE`` (default ``config.toml``, or the path in
``SEGSYNC_CONFIG``). This module only wires settings to adapters, engines and
the store, and prints; the work is in :mod:`connector.sync` and the adapters.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from connector.commands import deal_jobs
from connector.commands.ledger import render_version, version_document
from connector.commands.options import FORMAT, NOW
from connector.config import (
    HubSpotConnection,
    SalesforceConnection,
    Settings,
    config_path,
    load_settings,
    warn_insecure,
)
from connector.crm.base import (
    CrmAdapter,
    NativeAction,
    NativeLists,
    ObjectName,
    OutputField,
    ProvisionAction,
    ProvisionReport,
    objects_of,
)
from connector.crm.retry import RetryPolicy
from connector.engine import Engine, compile_mapping
from connector.errors import (
    EXIT_BUSY,
    EXIT_CRM,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_STORE,
    EXIT_USER,
    ConfigError,
    CrmAccessError,
    CrmUnreachable,
    FatalSyncError,
    MappingError,
    Problem,
    SegsyncError,
    SyncError,
    UserError,
    redact_url,
)
from connector.mapping import load_mapping
from connector.store.deals import DEAL_OBJECT
from connector.store.leases import Busy, JobClaims, Lease, claim_order
from connector.store.locks import locks_for
from connector.store.store import Store, parse_url
from connector.sync.agreement import agreement_for
from connector.sync.deals import DealSyncResult
from connector.sync.guard import MassChangeError
from connector.sync.native import native_views
from connector.sync.ownership import judge, mapping_problems, refusal_message
from connector.sync.provision import output_specs
from connector.sync.rollups import rollups_need_deals
from connector.sync.runner import Job, Runner, RunResult
from connector.sync.steps import open_store

_CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (default: config.toml, or $SEGSYNC_CONFIG).",
)
_CRM = click.option(
    "--crm",
    type=click.Choice(["salesforce", "hubspot", "all"]),
    default="all",
    show_default=True,
    help="Only the connections of this CRM.",
)
_CONNECTION = click.option(
    "--connection",
    "connections",
    multiple=True,
    metavar="NAME",
    help="Only this connection (a [connections.NAME] table); repeat for several.",
)
_OBJECT = click.option(
    "--object",
    "obj",
    type=click.Choice(["account", "contact", "lead", "deal", "all"]),
    default="all",
    show_default=True,
    help="Only this object (lead: Salesforce connections, with a lead mapping; "
    "deal: read the deals, for `segsync outcomes`).",
)


@dataclass
class Context:
    """Settings, engines, store and adapters for one command."""

    settings: Settings
    engines: dict[str, Engine]
    store: Store
    adapters: dict[str, CrmAdapter]
    others: dict[str, CrmAdapter] = field(default_factory=dict)
    """Adapters opened only for the agreement policy's view of the other CRM."""

    def adapter(self, name: str) -> CrmAdapter:
        """The adapter of connection ``name``, opened now if the command did not select it."""
        if name in self.adapters:
            return self.adapters[name]
        if name not in self.others:
            conn = self.settings.connections[name]
            self.others[name] = make_adapter(
                name, conn, RetryPolicy.from_settings(self.settings.sync), cache=self.store
            )
        return self.others[name]

    def jobs(self, crm: str, obj: str) -> list[Job]:
        """The jobs to run: every selected connection × object it has, accounts first."""
        jobs = []
        for name, adapter in self.adapters.items():
            if crm not in ("all", adapter.crm):
                continue
            for object_name in objects_of(adapter.crm):
                engine = self.engines.get(object_name)
                if engine is None or obj not in ("all", object_name):
                    continue
                parent = self.engines.get("account") if object_name == "contact" else None
                adopted = self.settings.connections[name].adopted(object_name)
                agreement = agreement_for(self.settings, name, engine, self.adapter)
                jobs.append(Job(name, adapter, engine, parent, adopted, agreement))
        return jobs


def load_engines(paths: Sequence[Path], *, deals: bool = True) -> dict[str, Engine]:
    """Compile the configured mappings, one per object; every problem reported at once.

    ``deals``: the command computes rollup attributes from the deals its
    deal syncs keep (``sync``, ``run``); without (``parity``) a mapping with
    rollups is refused.
    """
    engines: dict[str, Engine] = {}
    problems: list[Problem] = []
    for path in paths:
        try:
            engine = compile_mapping(load_mapping(path))
        except MappingError as exc:
            problems.extend(exc.problems)
            continue
        if engine.object in engines:
            problems.append(
                Problem(
                    str(path),
                    "object",
                    f"a second mapping for {engine.object!r} "
                    f"(the first is {engines[engine.object].path})",
                )
            )
            continue
        engines[engine.object] = engine
        problems.extend(_rollup_problems(path, engine, deals))
    if problems:
        raise MappingError(problems)
    return engines


def _rollup_problems(path: Path, engine: Engine, deals: bool) -> list[Problem]:
    """The rollup attributes a live command cannot compute (see :func:`load_engines`)."""
    if deals:
        return []
    message = (
        "rollup attributes are computed from the deals of one connection; this "
        "command compares two CRMs without their deals (`segsync diff --deals FILE` "
        "computes them from an export)"
    )
    return [
        Problem(str(path), f"attributes.{name}.rollup", message)
        for name in engine.definition.rollups
    ]


def make_adapter(
    name: str,
    connection: SalesforceConnection | HubSpotConnection,
    retry: RetryPolicy | None = None,
    cache: Store | None = None,
) -> CrmAdapter:
    """The adapter for one configured connection (SDKs are imported only when used).

    ``cache`` (the state store) keeps a Salesforce token and describes for the
    next process (docs/crm-apis.md, "Fixed costs").
    """
    if isinstance(connection, HubSpotConnection):
        from connector.crm.hubspot import HubSpotAdapter

        return HubSpotAdapter(name, connection, retry=retry)
    from connector.crm.salesforce import SalesforceAdapter

    return cast(CrmAdapter, SalesforceAdapter(name, connection, retry=retry, cache=cache))


def select_connections(
    settings: Settings, config_file: Path | None, *, crm: str = "all", names: Sequence[str] = ()
) -> dict[str, SalesforceConnection | HubSpotConnection]:
    """The configured connections a command works on: of ``crm``, and named in ``names`` if any."""
    where = str(config_path(config_file))
    unknown = [name for name in names if name not in settings.connections]
    if unknown:
        known = ", ".join(sorted(settings.connections)) or "none is configured"
        raise ConfigError(
            [
                Problem(where, "connections", f"no connection named {name!r} (known: {known})")
                for name in unknown
            ]
        )
    selected = {
        name: conn
        for name, conn in settings.connections.items()
        if crm in ("all", conn.crm) and (not names or name in names)
    }
    if not selected:
        which = f"{crm} connection" if crm != "all" else "connection"
        if names:
            which += " named " + " or ".join(repr(n) for n in names)
        raise ConfigError([Problem(where, "connections", f"no {which} is configured")])
    return selected


@contextmanager
def open_context(
    config_file: Path | None, *, crm: str = "all", connections: Sequence[str] = ()
) -> Iterator[Context]:
    """Load everything a CRM command needs; close the store and adapters afterwards.

    A connection whose settings cannot work (a missing secret, key or file) is a
    ConfigError naming ``connections.NAME``; the store's own failures are StoreErrors.
    """
    settings = load_settings(config_file)
    warn_insecure(settings)
    engines = load_engines(settings.sync.mappings)
    # Outputs naming the CRM's own fields (Name, OwnerId, city…) that the config
    # does not adopt are refused here, before any connection is made.
    unowned = mapping_problems(engines.values(), settings)
    if unowned:
        raise MappingError(unowned)
    selected = select_connections(settings, config_file, crm=crm, names=connections)
    store = open_store(settings.store, RetryPolicy.from_settings(settings.sync))
    adapters: dict[str, CrmAdapter] = {}
    context: Context | None = None
    try:
        for name, conn in selected.items():
            try:
                adapters[name] = make_adapter(
                    name, conn, RetryPolicy.from_settings(settings.sync), cache=store
                )
            except (ConfigError, CrmAccessError, CrmUnreachable):
                raise
            except SyncError as exc:
                # Raised before any call: the settings cannot work (a missing secret).
                raise ConfigError(
                    [Problem(str(config_path(config_file)), f"connections.{name}", str(exc))]
                ) from None
        context = Context(settings, engines, store, adapters)
        yield context
    finally:
        for adapter in [*adapters.values(), *(context.others.values() if context else [])]:
            adapter.close()
        store.close()


def _progress(enabled: bool) -> Progress:
    """A progress display on stderr (a disabled one when not interactive)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} {task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=True,
    )


def _console() -> Console:
    return Console(stderr=False, highlight=False)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _result_document(result: RunResult) -> dict[str, Any]:
    c = result.summary.counts
    return {
        "connection": result.connection,
        "crm": result.crm,
        "object": result.object,
        "run_id": result.run_id,
        "status": result.status,
        "full": result.full,
        "dry_run": result.dry_run,
        "read": c.read,
        "changed": c.changed,
        "unchanged": c.unchanged,
        "written": result.written,
        "failed": result.failed,
        "overrides": c.overrides,
        "locked": c.locked,
        "held": c.held,
        "changed_since_plan": result.changed_since_plan,
        "deferred": result.deferred,
        "echoes_skipped": result.echoes,
        "rereads_skipped": result.rereads,
        "changed_outside": result.outside,
        "history_asked": result.audited,
        "api_calls": result.api_calls,
        "api_calls_minimum": result.minimum_calls,
        "api_calls_read_floor": result.read_floor_calls,
        "api_calls_to_write": result.planned_calls,
        "seconds": round(result.seconds, 3),
        "transitions": [
            {"field": t.field, "from": t.old, "to": t.new, "count": t.count}
            for t in result.summary.transitions
        ],
        "sample_changes": [
            {
                "id": w.record_id,
                "changes": {ch.field: [_plain(ch.old), _plain(ch.new)] for ch in w.changes},
            }
            for w in result.sample_writes
        ],
        "sample_overrides": [
            {
                "id": o.record_id,
                "field": o.field,
                "crm_value": _plain(o.crm_value),
                "segsync_last": _plain(o.our_last),
                "computed": _plain(o.desired),
                "action": o.action,
                "found_by": "crm_history" if o.from_audit_trail else "state_store",
            }
            for o in result.sample_overrides
        ],
        "sample_failures": [
            {"id": f.record_id, "code": f.code, "message": f.message}
            for f in result.sample_failures
        ],
        "sample_changed_since_plan": [
            {"id": record_id, "why": why} for record_id, why in result.sample_changed
        ],
        "message": result.message or None,
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _job_name(connection: str, crm: str, obj: str) -> str:
    """``hubspot accounts``, or ``eu-org (salesforce) accounts`` when the name says less."""
    return f"{connection} {obj}s" if connection == crm else f"{connection} ({crm}) {obj}s"


def _render_result(console: Console, result: RunResult) -> None:
    c = result.summary.counts
    mode = "dry run" if result.dry_run else result.status
    kind = "full" if result.full else "incremental"
    console.print(
        f"[bold]{_job_name(result.connection, result.crm, result.object)}[/] ({kind}, {mode}): "
        f"read {c.read:,} · changed {c.changed:,} · written {result.written:,} · "
        f"failed {result.failed:,} · overrides kept {c.overrides:,} · locked {c.locked:,}"
        + (f" · held {c.held:,}" if c.held else "")
        + (f" · deferred {result.deferred:,}" if result.deferred else "")
        + (
            f" · changed since plan {result.changed_since_plan:,} (not written)"
            if result.changed_since_plan
            else ""
        )
    )
    console.print(
        f"  API calls used {result.api_calls:,} (minimum possible {result.minimum_calls:,}"
        f" for what changed; {result.read_floor_calls:,} for what this run read)"
        + (
            f"; writing would take about {result.planned_calls:,} more"
            if result.dry_run and result.planned_calls
            else ""
        )
    )
    if result.summary.transitions:
        table = Table(title="Transitions", title_justify="left", show_edge=False)
        for column in ("field", "from", "to", "records"):
            table.add_column(column, justify="right" if column == "records" else "left")
        for t in result.summary.transitions:
            table.add_row(t.field, t.old or "(blank)", t.new or "(blank)", f"{t.count:,}")
        console.print(table)
    if result.dry_run and result.sample_writes:
        console.print("  Sample changes:")
        for w in result.sample_writes:
            moves = ", ".join(
                f"{ch.field}: {_plain(ch.old)!s} → {_plain(ch.new)!s}" for ch in w.changes
            )
            console.print(f"    {w.record_id}: {moves}", soft_wrap=True)
    for record_id, why in result.sample_changed:
        console.print(
            f"  changed since plan: {record_id} ({why}); kept as it is, planned again next run"
        )
    for o in result.sample_overrides:
        origin = (
            "set by a person per the CRM's history"
            if o.from_audit_trail
            else f"segsync wrote {o.our_last!r}"
        )
        console.print(
            f"  override {o.action}: {o.record_id} {o.field} = {o.crm_value!r} "
            f"({origin}, computes {o.desired!r})"
        )
    for f in result.sample_failures:
        console.print(f"  [red]failed[/] {f.record_id}: {f.code}: {f.message}")
    if result.message:
        console.print(f"  [red]{result.message}[/]")


@click.command("sync")
@_CONFIG
@_CRM
@_CONNECTION
@_OBJECT
@click.option(
    "--full", is_flag=True, help="Pull every record, not only those changed since the last run."
)
@click.option(
    "--dry-run", is_flag=True, help="Write nothing; print the plan and what it would cost."
)
@click.option("--force", is_flag=True, help="Go ahead even when the mass-change guard would stop.")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, 86_400),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="When a job runs in another process, wait up to this long for it (0: do not wait).",
)
@NOW
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@FORMAT
def sync(
    config_file: Path | None,
    crm: str,
    connections: tuple[str, ...],
    obj: str,
    full: bool,
    dry_run: bool,
    force: bool,
    wait_seconds: float,
    now: datetime | None,
    verbose: bool,
    fmt: str,
) -> None:
    """Run one sync cycle: pull, compute, write what changed, record.

    Every selected job runs even when an earlier one fails; the summary lists
    each job's outcome, and each failure is also one `error:` line on stderr.
    With --dry-run, --now shows what a run at that instant would change (date
    rules such as within_days move with it); a real sync always runs at the
    real time.

    Exit status: 0 when every run succeeded, 1 when a run failed, was stopped
    by the mass-change guard or left records failed (see `segsync errors`),
    2 for a configuration or mapping problem, 3 when the state store cannot be
    used, 4 when a CRM cannot be reached or refuses the credentials (the first
    of 2, 3, 4 that any job ended with), 5 when a job was running in another
    process (another `segsync sync`, or `segsync run`): each job runs in one
    process at a time; --wait SECONDS waits for it. A contact job waits for an
    account run of its connection in progress elsewhere, however long.
    """
    if now is not None and not dry_run:
        # A write stamped with a made-up time would confuse the watermark,
        # hysteresis and the ledger: the option is for looking only.
        raise UserError(
            [Problem("--now", "", "needs --dry-run: a real sync runs at the real time")]
        )
    _setup_logging(verbose)
    fixed = now

    def clock() -> datetime:
        return fixed if fixed is not None else datetime.now(UTC)

    results: list[RunResult] = []
    outcomes: list[JobOutcome] = []
    interactive = fmt == "text" and sys.stderr.isatty()
    with (
        open_context(config_file, crm=crm, connections=connections) as ctx,
        _progress(interactive) as progress,
        _claims(ctx, dry_run) as claims,
    ):
        deal_runs: list[DealSyncResult] = []
        # Deals first: the account runs' rollup attributes read them (sync/rollups.py).
        if deal_jobs.wanted(ctx.settings.sync, ctx.engines, obj, dry_run):
            for name, crm_name, deal_result, message, code in deal_jobs.run_deal_jobs(
                ctx.adapters,
                ctx.store,
                ctx.settings.sync,
                crm,
                full=full,
                mark_accounts=rollups_need_deals(ctx.engines),
                claim=_deal_claim(claims, wait_seconds),
            ):
                outcome = JobOutcome(name, crm_name, "deal", message=message, code=code)
                if deal_result is not None:
                    # Unreadable deals are reported in the run, not a failure of it.
                    outcome.status, outcome.message = deal_result.status, ""
                elif code == EXIT_BUSY:
                    outcome.status = "busy"
                outcomes.append(outcome)
                if deal_result is not None:
                    deal_runs.append(deal_result)
        for job in ctx.jobs(crm, obj):
            name = f"{job.connection} {job.engine.object}s"
            task = progress.add_task(name, total=None, info="")

            def report(phase: str, count: int, task: TaskID = task, name: str = name) -> None:
                verb = "planned" if phase == "plan" else "written"
                progress.update(task, description=name, completed=count, info=verb)

            runner = Runner(ctx.store, ctx.settings.sync, clock=clock, progress=report)
            outcome = JobOutcome(job.connection, job.adapter.crm, job.engine.object)
            # One job's failure (a refused login, the guard, an unreachable
            # CRM) is reported and the next job still runs: one bad org must
            # not keep the others stale.
            try:
                with _claim(claims, job, wait_seconds) as lease:
                    if isinstance(lease, Busy):
                        outcome.status, outcome.message = "busy", str(lease)
                        outcome.code = EXIT_BUSY
                        outcomes.append(outcome)
                        continue
                    result = runner.run(job, full=full, dry_run=dry_run, force=force, lease=lease)
            except MassChangeError as exc:
                outcome.status, outcome.message = "aborted", str(exc)
            except UserError as exc:
                outcome.status, outcome.message = "config", "; ".join(str(p) for p in exc.problems)
                outcome.code = exc.exit_code
            except SegsyncError as exc:
                outcome.status, outcome.message = "failed", str(exc)
                outcome.code = exc.exit_code
            else:
                results.append(result)
                outcome.status, outcome.message = result.status, result.message
            finally:
                progress.remove_task(task)
            outcomes.append(outcome)
    failures = [o for o in outcomes if o.status not in ("succeeded",)]
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "runs": [_result_document(r) for r in results]
                    + [deal_jobs.document(r) for r in deal_runs],
                    "jobs": [o.document() for o in outcomes],
                    "error": "; ".join(o.line() for o in failures if o.message) or None,
                    "now": now.isoformat() if now is not None else None,
                },
                indent=2,
            )
        )
    else:
        console = _console()
        if now is not None:
            console.print(f"As of {now.isoformat()} (--now): what a run then would change.")
        for result in results:
            _render_result(console, result)
        for deal_result in deal_runs:
            deal_jobs.render(
                console, deal_result, _job_name(deal_result.connection, deal_result.crm, "deal")
            )
        if len(outcomes) > 1 or failures:
            console.print("[bold]Jobs:[/]")
            for o in outcomes:
                style = "green" if o.status == "succeeded" else "red"
                console.print(f"  [{style}]{o.status:<9}[/] {o.line()}", soft_wrap=True)
        for o in failures:
            if o.message:
                # One line each on stderr, whatever the terminal's width.
                click.secho("error: " + " ".join(o.line().split()), fg="red", err=True)
    sys.exit(_sync_exit_status(outcomes, results))


@contextmanager
def _claims(ctx: Context, dry_run: bool) -> Iterator[JobClaims | None]:
    """The job claims of this ``sync`` (none for a dry run: it writes nothing)."""
    if dry_run:
        yield None
        return
    claims = JobClaims(
        ctx.store.engine,
        locks_for(ctx.store.engine),
        lease_seconds=ctx.settings.sync.lease_seconds,
        purpose="segsync sync",
        stall_seconds=ctx.settings.sync.stall_seconds,
    )
    try:
        yield claims
    finally:
        claims.close()


def _claim(
    claims: JobClaims | None, job: Job, wait_seconds: float
) -> AbstractContextManager[Lease | Busy | None]:
    """Claim ``job``'s lock and lease (a contact job: its connection's accounts' first).

    The job itself waits up to ``--wait``; a contact job waits for an account
    run of its connection in progress elsewhere however long it takes, so
    contacts never read half-computed accounts. The account claim is held
    through the contact run.
    """
    if claims is None:
        return nullcontext(None)
    key, after = claim_order(job.connection, job.engine.object)
    return claims.wait(
        key, after=after, seconds=wait_seconds, after_forever=True, on_wait=_tell_waiting
    )


def _deal_claim(claims: JobClaims | None, wait_seconds: float) -> deal_jobs.Claim | None:
    """How a deal job claims ``<connection>.deal`` (waiting up to ``--wait``)."""
    if claims is None:
        return None
    held = claims

    def claim(key: str) -> AbstractContextManager[Lease | Busy | None]:
        return held.wait(key, seconds=wait_seconds, on_wait=_tell_waiting)

    return claim


def _tell_waiting(busy: Busy) -> None:
    click.echo(f"waiting: {busy}", err=True)


def _sync_exit_status(outcomes: Sequence[JobOutcome], results: Sequence[RunResult]) -> int:
    """The environment's problem first (config, store, CRM), then a busy job, else 1."""
    codes = {o.code for o in outcomes if o.status != "succeeded"}
    for code in (EXIT_USER, EXIT_STORE, EXIT_CRM, EXIT_BUSY):
        if code in codes:
            return code
    if codes or any(r.status != "succeeded" for r in results):
        return EXIT_RUN_FAILED
    return EXIT_OK


@dataclass
class JobOutcome:
    """How one job of ``segsync sync`` ended: a run's status, or why it did not finish.

    ``status`` is the run's (``succeeded``, ``partial``), ``aborted`` (the
    guard), ``failed``, ``config`` (a problem in the config or a secret file),
    or ``busy`` (the job runs in another process).
    """

    connection: str
    crm: str
    object: str
    status: str = "failed"
    message: str = ""
    #: The exit status this outcome asks for (see connector.errors.EXIT_CODES).
    code: int = EXIT_RUN_FAILED

    def line(self) -> str:
        """``hubspot accounts: <message>`` for the summary."""
        name = _job_name(self.connection, self.crm, self.object)
        return f"{name}: {self.message}" if self.message else name

    def document(self) -> dict[str, Any]:
        """The JSON view."""
        return {
            "connection": self.connection,
            "crm": self.crm,
            "object": self.object,
            "status": self.status,
            "message": self.message or None,
        }


@click.command("provision")
@_CONFIG
@_CRM
@_CONNECTION
@click.option("--dry-run", is_flag=True, help="Change nothing; list what would be created.")
@FORMAT
def provision(
    config_file: Path | None, crm: str, connections: tuple[str, ...], dry_run: bool, fmt: str
) -> None:
    """Create the output fields the mappings declare, and check access to every input.

    Salesforce custom fields through the Metadata API, HubSpot properties in a
    "Segmentation" group. Re-run after a mapping change: new picklist values
    are added; values no longer defined are reported and kept.
    """
    rows: list[dict[str, str]] = []
    native_rows: list[dict[str, str]] = []
    problems = 0
    with open_context(config_file, crm=crm, connections=connections) as ctx:
        for name, adapter in ctx.adapters.items():
            for object_name in objects_of(adapter.crm):
                engine = ctx.engines.get(object_name)
                if engine is None:
                    continue
                parent = ctx.engines.get("account") if object_name == "contact" else None
                report = provision_object(
                    ctx,
                    name,
                    adapter,
                    object_name,
                    output_specs(engine, adapter.crm, parent),
                    engine.input_fields(adapter.crm),
                    dry_run,
                )
                problems += len(report.problems)
                if not report.problems:
                    native = provision_native(ctx, adapter, engine, parent, object_name, dry_run)
                    problems += sum(1 for a in native if a.action == "missing_access")
                    native_rows.extend(
                        {"connection": name, "crm": adapter.crm, **_native_row(a)} for a in native
                    )
                rows.extend(
                    {
                        "connection": name,
                        "crm": adapter.crm,
                        "object": a.object,
                        "field": a.field,
                        "action": a.action,
                        "detail": a.detail,
                    }
                    for a in report.actions
                )
    if fmt == "json":
        click.echo(
            json.dumps({"dry_run": dry_run, "actions": rows, "native": native_rows}, indent=2)
        )
    else:
        table = Table(
            title="Provisioning" + (" (dry run: nothing changed)" if dry_run else ""),
            title_justify="left",
        )
        for column in ("connection", "object", "field", "action", "detail"):
            table.add_column(column)
        for row in rows:
            style = "red" if row["action"] in ("missing_access", "not_owned") else None
            table.add_row(
                row["connection"],
                row["object"],
                row["field"],
                row["action"],
                row["detail"],
                style=style,
            )
        _console().print(table)
        if native_rows:
            _console().print(_native_table(native_rows, dry_run))
    if problems:
        sys.exit(1)


def provision_native(
    ctx: Context,
    adapter: CrmAdapter,
    engine: Engine,
    parent: Engine | None,
    obj: ObjectName,
    dry_run: bool,
) -> list[NativeAction]:
    """Reconcile the native lists of one object, when ``[native]`` asks for them in this CRM."""
    native = ctx.settings.native
    wanted = native.hubspot_lists if adapter.crm == "hubspot" else native.salesforce_list_views
    if not wanted or not isinstance(adapter, NativeLists):
        return []
    views = native_views(engine, adapter.crm, obj, parent)
    try:
        return adapter.provision_native(obj, views, dry_run, shared_to=native.list_view_shared_to)
    except (CrmAccessError, CrmUnreachable):
        raise
    except FatalSyncError as exc:
        # The fields are provisioned; a CRM that refuses lists (a missing scope
        # or permission) is reported like a field segsync may not write.
        what = "lists" if adapter.crm == "hubspot" else "list views"
        return [NativeAction(obj, f"native {what}", "missing_access", str(exc))]


def _native_row(action: NativeAction) -> dict[str, str]:
    return {
        "object": action.object,
        "name": action.name,
        "action": action.action,
        "detail": action.detail,
        "id": action.id,
    }


def _native_table(rows: Sequence[dict[str, str]], dry_run: bool) -> Table:
    """HubSpot lists and Salesforce list views: created, updated, retired, or edited by a person."""
    table = Table(
        title="Native lists" + (" (dry run: nothing changed)" if dry_run else ""),
        title_justify="left",
    )
    for column in ("connection", "object", "name", "action", "detail"):
        table.add_column(column)
    for row in rows:
        style = {"edited": "yellow", "missing_access": "red"}.get(row["action"])
        table.add_row(
            row["connection"], row["object"], row["name"], row["action"], row["detail"], style=style
        )
    return table


def provision_object(
    ctx: Context,
    connection: str,
    adapter: CrmAdapter,
    obj: ObjectName,
    outputs: Sequence[OutputField],
    inputs: Sequence[str],
    dry_run: bool,
) -> ProvisionReport:
    """Provision one object's outputs, touching only fields segsync owns or will create.

    Adopted fields are the operator's: reported, never created or changed.
    An existing field that segsync neither recorded nor marked as its own,
    and that is not adopted, refuses the whole object before any change. On
    success the fields now segsync's (created, or carrying its mark) are
    recorded in the state store: a run writes only those and adopted ones.
    """
    adopted = ctx.settings.connections[connection].adopted(obj)
    folded = {a.casefold() for a in adopted}
    mine = [o for o in outputs if o.name.casefold() not in folded]
    report = ProvisionReport(adapter.crm)
    report.actions.extend(
        ProvisionAction(obj, o.name, "adopted", "adopted in the config: left as it is")
        for o in outputs
        if o.name.casefold() in folded
    )
    recorded = ctx.store.owned_fields(connection, obj)
    unknown = [o.name for o in mine if o.name.casefold() not in recorded]
    if unknown:
        specs = adapter.describe(obj, unknown)
        existing = {n: spec for n, spec in specs.items() if spec.exists}
        verdict = judge(adapter.crm, obj, existing)
        if verdict.refused:
            line = refusal_message(connection, adapter.crm, obj, verdict.refused)
            report.actions.extend(
                ProvisionAction(obj, n, "not_owned", line)
                for n in existing
                if n not in verdict.marked
            )
            return report
    done = adapter.provision(obj, mine, inputs, dry_run)
    report.actions.extend(done.actions)
    if not dry_run:
        broken = {a.field for a in done.actions if a.action == "missing_access"}
        ctx.store.record_owned(connection, obj, [o.name for o in mine if o.name not in broken])
    return report


#: Objects listed in ``segsync status`` only once they have a watermark.
OPT_IN = ("lead", DEAL_OBJECT)
#: How much earlier than its watermark a pull's start must be for `status` to show it.
PULL_START_SHOWN = timedelta(seconds=1)


@click.command("status")
@_CONFIG
@click.option("--limit", default=20, show_default=True, help="How many recent runs to list.")
@FORMAT
def status(config_file: Path | None, limit: int, fmt: str) -> None:
    """Recent runs, watermarks and open errors, from the state store."""
    settings = load_settings(config_file)
    store = open_store(settings.store, RetryPolicy.from_settings(settings.sync))
    try:
        runs = store.runs(limit=limit)
        errors = store.open_errors()
        marks = {
            (name, obj): store.watermark(name, obj)
            for name, connection in settings.connections.items()
            for obj in (*objects_of(connection.crm), DEAL_OBJECT)
        }
        # Leads are opt-in (a lead mapping in sync.mappings), deals too (sync.deals
        # or rollups): listed once they have run.
        marks = {k: w for k, w in marks.items() if k[1] not in OPT_IN or w is not None}
    finally:
        store.close()
    # Where a long pull starts the next one (docs/crm-apis.md#long-pulls): shown
    # when it is a second or more earlier than the watermark. Any pull reads the
    # records saved in the second it began a little before that second closes, so
    # a start a few milliseconds before the watermark is every active org's normal.
    starts = {
        k: w.pull_start
        for k, w in marks.items()
        if w is not None and w.pull_start is not None and w.pull_start <= w.stamp - PULL_START_SHOWN
    }
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "store": _safe_url(settings.store.url),
                    "runs": [
                        {
                            "id": r.id,
                            "connection": r.connection,
                            "crm": r.crm,
                            "object": r.object,
                            "status": r.status,
                            "full": r.full,
                            "started_at": r.started_at.isoformat(),
                            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                            "read": r.counts.read,
                            "written": r.counts.written,
                            "failed": r.counts.failed,
                            **({"removed": r.counts.removed} if r.object == DEAL_OBJECT else {}),
                            "api_calls": r.api_calls,
                        }
                        for r in runs
                    ],
                    "watermarks": {
                        f"{k[0]}.{k[1]}": (w.stamp.isoformat() if w else None)
                        for k, w in marks.items()
                    },
                    "pull_starts": {f"{k[0]}.{k[1]}": at.isoformat() for k, at in starts.items()},
                    "open_errors": len(errors),
                },
                indent=2,
            )
        )
        return
    console = _console()
    console.print(f"State store: {_safe_url(settings.store.url)}")
    console.print("Recent runs (newest first):")
    for r in runs:
        # A deal run writes nothing: it stores the deals it read and removes the gone.
        done = (
            f"stored {r.counts.changed:,} · removed {r.counts.removed:,}"
            if r.object == DEAL_OBJECT
            else f"written {r.counts.written:,} · failed {r.counts.failed:,}"
        )
        console.print(
            f"  {r.id:>5}  {r.started_at:%Y-%m-%d %H:%M}  {r.connection + '.' + r.object:<20}"
            f"{'full' if r.full else 'incr'}  {r.status:<10} read {r.counts.read:,} · "
            f"{done} · calls {r.api_calls:,}",
            soft_wrap=True,
        )
    for (name, obj), mark in marks.items():
        where = mark.stamp.isoformat() if mark else "(none: the next run is full)"
        start = starts.get((name, obj))
        if start is not None:
            where += (
                f" · pull start {start.isoformat()} (earlier: the next pull "
                "starts a look-back before it)"
            )
        console.print(f"watermark {name}.{obj}: {where}", soft_wrap=True)
    console.print(f"open record errors: {len(errors):,} (segsync errors lists them)")


@click.command("history")
@_CONFIG
@click.option("--record", "record_id", default=None, help="One record's transitions.")
@click.option(
    "--mapping-version",
    "version",
    default=None,
    metavar="VERSION",
    help="The runs of one mapping version and everything it changed (counts per field).",
)
@click.option("--records", is_flag=True, help="With --mapping-version: list the records too.")
@click.option("--limit", default=50, show_default=True)
@FORMAT
def history(
    config_file: Path | None,
    record_id: str | None,
    version: str | None,
    records: bool,
    limit: int,
    fmt: str,
) -> None:
    """The transition ledger: which records moved segment or tier, when, and why."""
    settings = load_settings(config_file)
    store = open_store(settings.store, RetryPolicy.from_settings(settings.sync))
    try:
        if version is not None:
            doc = version_document(store, version, records, limit)
        else:
            rows = store.history(record_id, limit=limit)
    finally:
        store.close()
    if version is not None:
        if fmt == "json":
            click.echo(json.dumps(doc, indent=2))
        else:
            render_version(_console(), doc)
        return
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "record": t.record_id,
                        "field": t.field,
                        "from": t.from_value,
                        "to": t.to_value,
                        "reason": t.reason,
                        "mapping_version": t.mapping_version,
                        "run_id": t.run_id,
                        "at": t.at.isoformat(),
                    }
                    for t in rows
                ],
                indent=2,
            )
        )
        return
    console = _console()
    if not rows:
        console.print("No transitions recorded" + (f" for {record_id}." if record_id else "."))
    for t in rows:
        console.print(
            f"{t.at:%Y-%m-%d %H:%M:%S} {t.record_id} {t.field}: "
            f"{t.from_value or '(blank)'} → {t.to_value or '(blank)'} "
            f"[dim](run {t.run_id}, mapping {t.mapping_version})[/]\n    {t.reason}",
            soft_wrap=True,
        )


@click.command("errors")
@_CONFIG
@FORMAT
def errors(config_file: Path | None, fmt: str) -> None:
    """Records whose last write failed; they are retried on every run until they land."""
    settings = load_settings(config_file)
    store = open_store(settings.store, RetryPolicy.from_settings(settings.sync))
    try:
        rows = store.open_errors()
    finally:
        store.close()
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "connection": e.connection,
                        "object": e.object,
                        "record": e.record_id,
                        "code": e.code,
                        "message": e.message,
                        "attempts": e.attempts,
                        "first_seen": e.first_seen.isoformat(),
                        "last_seen": e.last_seen.isoformat(),
                    }
                    for e in rows
                ],
                indent=2,
            )
        )
        return
    console = _console()
    if not rows:
        console.print("No open record errors.")
    for e in rows:
        console.print(
            f"{e.connection}.{e.object} {e.record_id}: {e.code}: {e.message} "
            f"(attempts {e.attempts}, since {e.first_seen:%Y-%m-%d %H:%M})",
            soft_wrap=True,
        )


def _safe_url(url: str) -> str:
    """A store URL without its password."""
    try:
        return parse_url(url).render_as_string(hide_password=True)
    except ValueError:
        return redact_url(url)


__all__ = ["errors", "history", "provision", "status", "sync"]
