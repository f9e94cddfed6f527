"""The inputs of a live ``segsync diff``: a connection's accounts and deals, as exports.

Without ``--input``, ``diff`` reads the accounts of one configured connection
from the CRM (every account, only the fields either definition reads) and
their deals from the state store (as the last deal sync left them, like
``segsync outcomes``), and writes both as the exports the offline ``diff``
reads: an accounts JSON Lines file (the CRM's field names, values as the API
sent them, the record id under ``Id`` / ``hs_object_id``) and a deals JSON
Lines file (``id``, ``account_id``, ``is_closed``, ``is_won``, ``amount``,
``created_at``, ``closed_at``, ``pipeline``, ``type``). The diff then runs on those
files exactly as on exports, so a live result is reproducible offline from
the files (``--save-inputs DIR`` keeps them) with ``--now`` set to its
``evaluated_at``. Streams page by page; nothing is written to the CRM or the
store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connector.commands.crm import open_context, select_connections
from connector.config import load_settings
from connector.engine import Engine
from connector.errors import Problem, UserError
from connector.store.deals import DealStore

#: The id column of an accounts export, per CRM (what ``exports.record_id`` reads).
ID_FIELD = {"salesforce": "Id", "hubspot": "hs_object_id"}


@dataclass(frozen=True)
class LiveInputs:
    """Where a live diff's inputs were written, and what they hold."""

    connection: str
    crm: str
    accounts: Path
    deals: Path
    account_count: int
    deal_count: int


def resolve_crm(config_file: Path | None, connection: str | None, crm: str) -> tuple[str, str]:
    """The one connection a live diff reads, and its CRM (a UserError names the choices)."""
    names = (connection,) if connection else ()
    settings = load_settings(config_file)
    selected = select_connections(settings, config_file, crm=crm, names=names)
    if len(selected) != 1:
        raise UserError(
            [
                Problem(
                    "--connection",
                    "",
                    "a live diff reads one connection; pick one: " + ", ".join(sorted(selected)),
                )
            ]
        )
    ((name, conn),) = selected.items()
    return name, conn.crm


def pull_inputs(
    config_file: Path | None,
    connection: str,
    engines: Sequence[Engine],
    directory: Path,
    *,
    deals: bool,
) -> LiveInputs:
    """Write the connection's accounts (from the CRM) and deals (from the store) to ``directory``.

    ``deals``: the diff needs them (``--outcomes``, or rollup attributes);
    without, the deals file is left empty.
    """
    directory.mkdir(parents=True, exist_ok=True)
    accounts_path = directory / "accounts.jsonl"
    deals_path = directory / "deals.jsonl"
    with open_context(config_file, connections=(connection,)) as ctx:
        adapter = ctx.adapters[connection]
        crm = adapter.crm
        stored = DealStore(ctx.store)
        if deals and stored.count(connection) == 0:
            raise UserError(
                [
                    Problem(
                        "--outcomes",
                        "",
                        f"no deals are stored for connection {connection!r}: run "
                        f"`segsync sync --object deal --connection {connection}` first",
                    )
                ]
            )
        fields = list(dict.fromkeys(f for e in engines for f in e.input_fields(crm)))
        id_field = ID_FIELD[crm]
        accounts = 0
        with accounts_path.open("w", encoding="utf-8") as out:
            for page in adapter.pull("account", fields, None):
                for record in page:
                    row = {**record.fields, id_field: record.id}
                    out.write(json.dumps(row, default=str) + "\n")
                    accounts += 1
        written = 0
        with deals_path.open("w", encoding="utf-8") as out:
            for deal in stored.deals(connection) if deals else ():
                row = {
                    "id": deal.id,
                    "account_id": deal.account_id,
                    "is_closed": deal.is_closed,
                    "is_won": deal.is_won,
                    "amount": deal.amount,
                    "created_at": deal.created_at.isoformat(),
                    "closed_at": deal.closed_at.isoformat() if deal.closed_at else None,
                    "pipeline": deal.pipeline,
                    "type": deal.type,
                }
                out.write(json.dumps(row) + "\n")
                written += 1
    return LiveInputs(connection, crm, accounts_path, deals_path, accounts, written)
