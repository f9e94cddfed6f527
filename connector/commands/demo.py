"""``segsync demo``: the whole product on a laptop, with no CRM account and no credentials.

It starts the local Salesforce and HubSpot sandboxes on one synthetic dataset,
writes a config pointing at them, and then does exactly what production does,
through the same code: provision the output fields and the native lists
(HubSpot dynamic lists, Salesforce list views), run a full sync of
accounts and contacts in both CRMs and of Salesforce leads, let "someone"
edit a few records in each
CRM (as in its web UI), and run an incremental sync that picks the edits up.
At the end it reads back, through each CRM's own API, what landed where (the
lists with their member counts included): every
API call the demo makes goes through the adapters, paced and retried exactly
as a sync's are. Last, it reads the deals (read-only) and ends with the
outcomes table: win rate by tier with its intervals, and the rule lift.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import click
from rich.console import Console
from rich.table import Table

from connector import templates
from connector.commands import deal_jobs
from connector.commands.crm import Context, open_context, provision_native
from connector.commands.outcomes import report_documents
from connector.commands.outcomes_render import render_text
from connector.crm.base import DealSource, NativeLists, NativeSummary, objects_of
from connector.errors import Problem, UserError
from connector.sync.deals import sync_deals
from connector.sync.native import native_views
from connector.sync.provision import output_specs
from connector.sync.runner import Runner, RunResult
from segsync_sandbox.launcher import Sandboxes, start_sandboxes

_EDITS = 5

# How the config the sandboxes write begins: marks a directory the demo may wipe.
_CONFIG_MARK = "# Written by `segsync sandbox`"

# The record name, shown next to the ids in the read-back.
_NAME_FIELD = {"salesforce": "Name", "hubspot": "name"}


@click.command("demo")
@click.option(
    "--accounts", default=2000, show_default=True, help="Accounts / companies to generate."
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".segsync/demo"),
    show_default=True,
    help="Where the demo keeps its config and state store (an earlier demo's is wiped).",
)
@click.option("--keep", is_flag=True, help="Keep the sandboxes running afterwards (Ctrl-C stops).")
def demo(accounts: int, workdir: Path, keep: bool) -> None:
    """Run segsync end to end against local Salesforce and HubSpot sandboxes."""
    console = Console(highlight=False)
    started = time.monotonic()
    if workdir.exists():
        _check_demo_dir(workdir)
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    store_path = (workdir / "segsync.db").resolve()
    console.rule("[bold]segsync demo")
    console.print(f"Starting local Salesforce and HubSpot sandboxes with {accounts:,} companies…")
    with start_sandboxes(accounts=accounts, seed=42, save_interval=None) as crms:
        config = crms.write_config(
            workdir / "config.toml", store_url=f"sqlite:///{store_path}", deals=True
        )
        _with_leads(config)
        info = crms.info()
        console.print(
            f"  Salesforce  {info['salesforce']['instance_url']}  (HTTPS, OAuth client credentials)"
        )
        console.print(f"  HubSpot     {info['hubspot']['base_url']}  (private-app token)")
        console.print(f"  config      {config}")
        with open_context(config) as ctx:
            _provision(console, ctx)
            runner = Runner(ctx.store, ctx.settings.sync)
            console.print(
                "\n[bold]1. Full sync[/] (every record, both CRMs, accounts then contacts; "
                "Salesforce leads, converted ones left alone)"
            )
            _show(console, [runner.run(job, full=True) for job in ctx.jobs("all", "all")])
            edited = _edit_some(crms)
            console.print(
                f"\n[bold]2. Someone edits {_EDITS} accounts in each CRM[/] "
                "(headcount, industry, intent) — then an incremental sync:"
            )
            _show(console, [runner.run(job) for job in ctx.jobs("all", "account")])
            _landed(console, ctx, edited)
            _lists(console, ctx)
            _outcomes(console, ctx)
        elapsed = time.monotonic() - started
        console.print(f"\n[bold]Where things live[/]  (finished in {elapsed:.0f} s)")
        console.print(f"  state store   {store_path}  (runs, watermarks, ledger, errors)")
        console.print(f"  config        {config}")
        console.print(
            f"  try           segsync status --config {config}\n"
            f"                segsync history --config {config} --record <id>",
            soft_wrap=True,
        )
        console.print(
            "\n[bold]Pointing it at a real org[/]: `segsync init my-segments` writes a project "
            "(config.toml, mappings/); fill in a Salesforce connected app (JWT) and a HubSpot "
            "private-app token in my-segments/config.toml (README: 'Connecting a real Salesforce "
            "org'), run `segsync provision --config my-segments/config.toml --dry-run`, then "
            "`segsync sync --config my-segments/config.toml --dry-run` to review the plan before "
            "the first write."
        )
        if keep:
            console.print("\nSandboxes keep running; Ctrl-C stops them.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass


def _outcomes(console: Console, ctx: Context) -> None:
    """Step 3: read the deals (read-only) and end with the outcomes table."""
    console.print(
        "\n[bold]5. Deals, read-only[/] (Opportunities and HubSpot deals), then how the tiers "
        "perform: `segsync outcomes`"
    )
    for name, adapter in ctx.adapters.items():
        result = sync_deals(cast(DealSource, adapter), ctx.store, name, full=True)
        deal_jobs.render(console, result, f"{name} deals")
    name = "salesforce" if "salesforce" in ctx.adapters else next(iter(ctx.adapters))
    engine = ctx.engines["account"]
    docs = report_documents(
        ctx.store, name, ctx.adapters[name], engine, "tier", "quarter", datetime.now(UTC)
    )
    console.print()
    render_text(console, docs[0])


def _check_demo_dir(workdir: Path) -> None:
    """Refuse to wipe a directory that is not an earlier demo's (``--dir .``, a project)."""
    if not workdir.is_dir():
        raise UserError([Problem(str(workdir), "", "not a directory; choose another --dir")])
    if not any(workdir.iterdir()):
        return
    config = workdir / "config.toml"
    try:
        ours = config.read_text(encoding="utf-8").startswith(_CONFIG_MARK)
    except OSError:
        ours = False
    if not ours:
        raise UserError(
            [
                Problem(
                    str(workdir),
                    "",
                    "holds files that are not an earlier demo's, and the demo wipes its "
                    "directory; choose another --dir",
                )
            ]
        )


def _with_leads(config: Path) -> None:
    """Name the built-in definitions and the shipped lead one in the demo's config.

    The sandbox config names no mapping (the built-in account and contact
    definitions); leads are opt-in, and the demo opts in.
    """
    mappings = ", ".join(json.dumps(str(p)) for p in (*templates.MAPPINGS, templates.LEADS))
    with config.open("a", encoding="utf-8") as out:
        out.write(f"mappings = [{mappings}]\n")


def _provision(console: Console, ctx: Context) -> None:
    created = lists = 0
    for adapter in ctx.adapters.values():
        for obj in objects_of(adapter.crm):
            engine = ctx.engines.get(obj)
            if engine is None:
                continue
            parent = ctx.engines["account"] if obj == "contact" else None
            report = adapter.provision(
                obj,
                output_specs(engine, adapter.crm, parent),
                engine.input_fields(adapter.crm),
                False,
            )
            created += sum(1 for a in report.actions if a.action == "create")
            for problem in report.problems:
                console.print(
                    f"  [red]{adapter.crm} {problem.object} {problem.field}: {problem.detail}[/]"
                )
            native = provision_native(ctx, adapter, engine, parent, obj, False)
            lists += sum(1 for a in native if a.action == "create" and a.detail != "list folder")
    console.print(
        f"\nProvisioned {created} output fields "
        "(Salesforce Metadata API; HubSpot properties in a 'Segmentation' group) "
        f"and {lists} native lists (Salesforce list views, HubSpot dynamic lists)."
    )


def _show(console: Console, results: Sequence[RunResult]) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in (
        "CRM",
        "object",
        "read",
        "changed",
        "written",
        "failed",
        "calls",
        "min",
        "secs",
    ):
        table.add_column(column, justify="left" if column in ("CRM", "object") else "right")
    for r in results:
        c = r.summary.counts
        table.add_row(
            r.crm,
            r.object,
            f"{c.read:,}",
            f"{c.changed:,}",
            f"{r.written:,}",
            f"{r.failed:,}",
            f"{r.api_calls:,}",
            f"{r.minimum_calls:,}",
            f"{r.seconds:.1f}",
        )
    console.print(table)


def _edit_some(crms: Sandboxes) -> dict[str, list[str]]:
    """A person's edits, made in each CRM's data as its web UI would.

    A person edits in the CRM's UI, not through its API, so the edits go
    straight into the sandbox's records (validated and stamped with a new
    modification time exactly as an API update would be) and spend none of
    the API allowance the syncs around them pace themselves under.
    """
    org = crms.salesforce.org
    sf_ids = [row["Id"] for row in itertools.islice(org.records("Account"), _EDITS)]
    for record_id in sf_ids:
        org.update(
            "Account",
            record_id,
            {"NumberOfEmployees": 4200, "Industry": "Computer Software", "Intent_Score__c": 88},
        )
    portal = crms.hubspot.portal
    hs_ids = [record.id for record in portal.snapshot("companies")[:_EDITS]]
    for record_id in hs_ids:
        portal.update(
            "companies",
            record_id,
            {"numberofemployees": "4200", "industry": "COMPUTER_SOFTWARE", "intent_score": "88"},
        )
    return {"salesforce": sf_ids, "hubspot": hs_ids}


def _landed(console: Console, ctx: Context, edited: dict[str, list[str]]) -> None:
    """Read back, through each CRM's API, the tier distribution and a few edited records.

    Every call goes through the adapters, that is through the same pacing,
    rate-limit accounting and retries as a sync: the read-back follows the
    syncs immediately, when their calls still fill the CRMs' short windows.
    """
    console.print("\n[bold]3. What landed in the CRMs[/] (read back through their APIs)")
    engine = ctx.engines["account"]
    counts: dict[str, Counter[str]] = {}
    for adapter in ctx.adapters.values():
        tier_field = engine.output_fields(adapter.crm)["tier"]
        tiers: Counter[str] = Counter()
        for page in adapter.pull("account", [tier_field], None):
            tiers.update(str(record.fields.get(tier_field) or "(none)") for record in page)
        counts[adapter.crm] = tiers
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("tier")
    table.add_column("Salesforce accounts", justify="right")
    table.add_column("HubSpot companies", justify="right")
    names = list(engine.tier_names) + sorted(
        {n for c in counts.values() for n in c} - set(engine.tier_names)
    )
    for tier in names:
        table.add_row(
            tier,
            f"{counts.get('salesforce', Counter())[tier]:,}",
            f"{counts.get('hubspot', Counter())[tier]:,}",
        )
    console.print(table)
    _landed_leads(console, ctx)
    for adapter in ctx.adapters.values():
        outputs = engine.output_fields(adapter.crm)
        name_field = _NAME_FIELD[adapter.crm]
        fields = [name_field, outputs["segment"], outputs["tier"], outputs["reason"]]
        records = adapter.fetch("account", edited[adapter.crm][:2], fields)
        label = "Salesforce accounts" if adapter.crm == "salesforce" else "HubSpot companies"
        console.print(f"\nEdited {label}, as the CRM now shows them:")
        for record in records:
            f = record.fields
            console.print(
                f"  {record.id} {f.get(name_field)}: "
                f"[bold]{f.get(outputs['segment'])} / {f.get(outputs['tier'])}[/]\n"
                f"    {f.get(outputs['reason'])}",
                soft_wrap=True,
            )
    now = datetime.now(UTC).strftime("%H:%M:%S")
    console.print(f"[dim]read at {now} UTC[/]")


def _landed_leads(console: Console, ctx: Context) -> None:
    """Salesforce leads by tier and persona, read back through the API (converted ones left out)."""
    engine = ctx.engines.get("lead")
    adapters = [a for a in ctx.adapters.values() if a.crm == "salesforce"]
    if engine is None or not adapters:
        return
    outputs = engine.output_fields("salesforce")
    tiers: Counter[str] = Counter()
    personas: Counter[str] = Counter()
    for page in adapters[0].pull("lead", [outputs["tier"], outputs["persona"]], None):
        for record in page:
            tiers[str(record.fields.get(outputs["tier"]) or "(none)")] += 1
            personas[str(record.fields.get(outputs["persona"]) or "(none)")] += 1
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("lead tier")
    table.add_column("Salesforce leads", justify="right")
    for tier in [*engine.tier_names, *sorted(set(tiers) - set(engine.tier_names))]:
        table.add_row(tier, f"{tiers[tier]:,}")
    console.print(table)
    console.print(
        "  lead personas: "
        + " · ".join(
            f"{name} {personas[name]:,}" for name in engine.persona_names if personas[name]
        ),
        soft_wrap=True,
    )


def _lists(console: Console, ctx: Context) -> None:
    """The lists provisioning made, with their member counts, read back through each CRM's API.

    Salesforce counts what each list view's own query selects; HubSpot pages
    through each dynamic list's memberships.
    """
    console.print(
        "\n[bold]4. Native lists in the CRMs[/] (members read back through their APIs: "
        "Salesforce list views on Account, HubSpot company segments)"
    )
    found: dict[str, dict[tuple[str, str], NativeSummary]] = {}
    others: dict[str, list[str]] = {}
    for adapter in ctx.adapters.values():
        if not isinstance(adapter, NativeLists):
            continue
        for obj in objects_of(adapter.crm):
            engine = ctx.engines.get(obj)
            if engine is None:
                continue
            parent = ctx.engines["account"] if obj == "contact" else None
            summaries = adapter.read_native(obj, native_views(engine, adapter.crm, obj, parent))
            if obj == "account":
                found[adapter.crm] = {(s.kind, s.value): s for s in summaries}
            else:
                members = sum(s.members for s in summaries if s.kind == "tier")
                others.setdefault(adapter.crm, []).append(
                    f"{len(summaries)} {obj} lists ({members:,} {obj}s across the tiers)"
                )
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("list")
    table.add_column("Salesforce accounts", justify="right")
    table.add_column("HubSpot companies", justify="right")
    keys = list(dict.fromkeys(k for crm in found.values() for k in crm))
    for kind, value in keys:
        cells = [
            f"{found[crm][(kind, value)].members:,}" if (kind, value) in found.get(crm, {}) else "—"
            for crm in ("salesforce", "hubspot")
        ]
        table.add_row(f"{kind.title()}: {value}", *cells)
    console.print(table)
    for crm, lines in others.items():
        console.print(f"  {crm}: also {', '.join(lines)}", soft_wrap=True)
    example = found.get("salesforce", {}).get(("tier", "Tier 1"))
    if example is not None:
        console.print(f"  e.g. Salesforce list view {example.name} (id {example.id})")
    example = found.get("hubspot", {}).get(("tier", "Tier 1"))
    if example is not None:
        console.print(f"  e.g. HubSpot list '{example.name}' (id {example.id})")
