"""``segsync outcomes``: how the segments and tiers perform on won and lost deals.

Reads a connection's deals from the state store (``segsync sync --object
deal`` keeps them), its accounts from the CRM (one full read of the fields the
account mapping uses, its outputs included), and the account ledger from the
store; the analysis itself is :mod:`connector.analysis.outcomes` and the
output :mod:`connector.commands.outcomes_render`.

An account's current value is the one written in the CRM (its output field),
else the one the mapping computes now; where the ledger knows the value it
held when a deal was created, that one counts.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console

from connector.analysis.outcomes import Account, LiftTally, OutcomeTally, Period, holdings
from connector.commands.crm import open_context
from connector.commands.options import OUT, REPORT_FORMAT
from connector.commands.outcomes_render import document, render_html, render_text
from connector.crm.base import CrmAdapter
from connector.engine import Engine
from connector.errors import Problem, UserError
from connector.store.deals import DealStore
from connector.store.store import Store
from connector.sync.values import is_blank

DIMENSIONS = ("segment", "tier", "persona")
"""What ``--by`` can name today (classifications of their own come later)."""


def _current(
    adapter: CrmAdapter, engine: Engine, now: datetime, wanted: set[str]
) -> tuple[dict[str, Account], dict[str, dict[str, bool]]]:
    """Every account's current values, and the rules that hold for those in ``wanted``."""
    crm = adapter.crm
    declared = _declared(engine, crm)
    # Outputs not provisioned yet are not read (a query naming them would fail).
    specs = adapter.describe("account", list(declared.values())) if declared else {}
    outputs = {d: f for d, f in declared.items() if f in specs and specs[f].exists}
    fields = list(dict.fromkeys([*engine.input_fields(crm), *outputs.values()]))
    accounts: dict[str, Account] = {}
    rules: dict[str, dict[str, bool]] = {}
    for page in adapter.pull("account", fields, None):
        for record in page:
            assignment = engine.evaluate(record.fields, crm, now)
            computed = {
                "segment": assignment.segment,
                "tier": assignment.tier,
                "persona": assignment.persona,
                **assignment.classifications,
            }
            current: dict[str, str | None] = {}
            for dimension in (*DIMENSIONS, *engine.classification_names):
                field = outputs.get(dimension)
                written = record.fields.get(field) if field else None
                current[dimension] = str(written) if not is_blank(written) else computed[dimension]
            accounts[record.id] = Account(current)
            if record.id in wanted:
                rules[record.id] = holdings(engine.explain(record.fields, crm, now))
    return accounts, rules


def _declared(engine: Engine, crm: str) -> dict[str, str]:
    """Dimension (segment, tier, persona, or a classification's name) → its output field."""
    out: dict[str, str] = {}
    for key, field in engine.output_fields(crm).items():
        if key in DIMENSIONS:
            out[key] = field
        elif key.startswith("classification."):
            out[key.removeprefix("classification.")] = field
    return out


def _with_ledger(
    store: Store, connection: str, engine: Engine, crm: str, accounts: Mapping[str, Account]
) -> dict[str, Account]:
    """The accounts with the moves the ledger recorded for their segment, tier and persona."""
    field_to_dimension = {
        f.casefold(): d for d, f in engine.output_fields(crm).items() if d in DIMENSIONS
    }
    moves: dict[str, dict[str, list[tuple[datetime, str | None]]]] = {}
    for row in store.history(None, 10**9, connection=connection, object="account"):
        dimension = field_to_dimension.get(row.field.casefold())
        if dimension is None:
            continue
        moves.setdefault(row.record_id, {}).setdefault(dimension, []).append((row.at, row.to_value))
    out = dict(accounts)
    for record_id, by_dimension in moves.items():
        known = out.get(record_id)
        if known is None:
            continue
        history = {d: sorted(m, key=lambda e: e[0]) for d, m in by_dimension.items()}
        out[record_id] = Account(known.current, history)
    return out


def report_documents(
    store: Store,
    name: str,
    adapter: CrmAdapter,
    engine: Engine,
    by: str,
    period: str,
    now: datetime,
    *,
    both: bool = False,
) -> list[dict[str, Any]]:
    """The report's document by ``by`` (and, with ``both``, by tier and segment after it)."""
    stored = DealStore(store)
    current, rules = _current(adapter, engine, now, stored.accounts_with_closed(name))
    accounts = _with_ledger(store, name, engine, adapter.crm, current)
    order = {"tier": engine.tier_names, "segment": engine.segment_names}
    order.update(engine.classification_names)
    meta: dict[str, Any] = {
        "connection": name,
        "crm": adapter.crm,
        "mapping_version": engine.version,
        "generated_at": now.isoformat(timespec="seconds"),
    }
    when = cast(Period, period)
    dimensions = [by] + ([d for d in ("tier", "segment") if d != by] if both else [])
    tallies = [
        OutcomeTally(
            accounts,
            dimension,
            period=when,
            order=order.get(dimension, ()),
            ranked=dimension == "tier" or dimension in engine.classification_names,
        )
        for dimension in dimensions
    ]
    lifts = LiftTally(rules)
    # One pass over the stored deals, streamed: memory follows the accounts
    # and the groups, not the number of deals.
    for deal in stored.deals(name):
        for tally in tallies:
            tally.add(deal)
        lifts.add(deal)
    lift = sorted(lifts.rows(), key=lambda r: r.rule)
    return [document(t.report(), lift if i == 0 else [], meta) for i, t in enumerate(tallies)]


@click.command("outcomes")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (default: config.toml, or $SEGSYNC_CONFIG).",
)
@click.option("--connection", default=None, metavar="NAME", help="The connection to report on.")
@click.option(
    "--crm",
    type=click.Choice(["salesforce", "hubspot", "all"]),
    default="all",
    show_default=True,
    help="The connection of this CRM (when there is one).",
)
@click.option(
    "--by",
    default="tier",
    show_default=True,
    metavar="segment|tier|persona|CLASSIFICATION",
    help="Group the deals by this classification of their account.",
)
@click.option(
    "--period",
    type=click.Choice(["quarter", "month", "year"]),
    default="quarter",
    show_default=True,
    help="Group the deals in time by when they were created.",
)
@REPORT_FORMAT
@OUT
def outcomes(
    config_file: Path | None,
    connection: str | None,
    crm: str,
    by: str,
    period: str,
    fmt: str,
    out: Path | None,
) -> None:
    """Win rates of segments and tiers on the connection's won and lost deals.

    Per group: deals won, lost and open, win rate = won / (won + lost) with its
    95 % Wilson interval, average and median won amount, median days from
    creation to close, pipeline created; flags for a lower tier winning more
    than a higher one beyond the intervals, groups with fewer than 20 closed
    deals, groups with no wins; and the rule lift table. Run `segsync sync
    --object deal` first: the deals come from the state store.
    """
    names = (connection,) if connection else ()
    with open_context(config_file, crm=crm, connections=names) as ctx:
        if len(ctx.adapters) != 1:
            raise UserError(
                [
                    Problem(
                        "--connection",
                        "",
                        "pick one connection to report on: " + ", ".join(sorted(ctx.adapters)),
                    )
                ]
            )
        ((name, adapter),) = ctx.adapters.items()
        engine = ctx.engines.get("account")
        if engine is None:
            raise UserError([Problem("sync.mappings", "", "no account mapping is configured")])
        known = (*DIMENSIONS, *engine.classification_names)
        if by not in known:
            raise UserError(
                [Problem("--by", "", f"unknown classification {by!r}; known: {', '.join(known)}")]
            )
        stored = DealStore(ctx.store)
        if stored.count(name) == 0:
            click.secho(
                f"error: no deals are stored for connection {name!r}: run "
                f"`segsync sync --object deal --connection {name}` first",
                fg="red",
                err=True,
            )
            sys.exit(1)
        now = datetime.now(UTC)
        docs = report_documents(
            ctx.store, name, adapter, engine, by, period, now, both=fmt == "html"
        )
        if fmt == "json":
            text = json.dumps(docs[0], indent=2) + "\n"
        elif fmt == "html":
            text = render_html(docs[0], docs[1:])
        else:
            buffer = io.StringIO()
            console = Console(highlight=False, file=buffer if out is not None else None)
            render_text(console, docs[0])
            text = buffer.getvalue()
        if out is not None:
            try:
                out.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UserError(
                    [Problem(str(out), "", f"cannot write the report: {exc.strerror}")]
                ) from None
            click.echo(f"wrote {out}", err=True)
        elif text:
            click.echo(text, nl=False)
