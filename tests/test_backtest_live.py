"""``segsync diff --outcomes`` live: the connection's accounts from the CRM, deals from the store.

Its figures equal those of the offline diff on exports made here through
the CRM's API (accounts by SOQL, Opportunities in Salesforce's export
names), evaluated at the same instant; the inputs it saves reproduce it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from segsync_sandbox.launcher import Sandboxes

RULE = '  { points = 10, label = "revenue ≥ $50M",'


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _proposal(tmp_path: Path) -> Path:
    """The shipped definition plus 20 fit points for an account that has won before (a rollup)."""
    text = Path(templates.ACCOUNTS).read_text(encoding="utf-8")
    assert RULE in text
    text = text.replace(
        RULE,
        '  { points = 20, label = "won before", when = { attr = "won_before", gte = 1 } },\n'
        + RULE,
    )
    text = text.replace('version = "', 'version = "proposal-', 1)
    text += '\n[attributes.won_before]\nrollup = { count = "deals", stage = "won" }\n'
    path = tmp_path / "proposal.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _salesforce_exports(sandboxes: Sandboxes, tmp_path: Path) -> tuple[Path, Path]:
    """The accounts and Opportunities, exported through the API (not through segsync)."""
    sf = sandboxes.salesforce.client()
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    fields = ", ".join(dict.fromkeys(["Id", *engine.input_fields("salesforce")]))
    accounts = tmp_path / "accounts.jsonl"
    with accounts.open("w", encoding="utf-8") as out:
        for row in sf.query_all_iter(f"SELECT {fields} FROM Account"):
            out.write(json.dumps({k: v for k, v in row.items() if k != "attributes"}) + "\n")
    columns = ["Id", "AccountId", "IsClosed", "IsWon", "Amount", "CreatedDate", "CloseDate"]
    deals = tmp_path / "opportunities.csv"
    with deals.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        for row in sf.query_all_iter(f"SELECT {', '.join(columns)} FROM Opportunity"):
            writer.writerow({c: row[c] for c in columns})
    return accounts, deals


def test_a_live_backtest_equals_the_backtest_of_exports_of_the_same_data(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}", deals=True
    )
    c = str(config)
    before, after = str(templates.ACCOUNTS), str(_proposal(tmp_path))
    compare = ["diff", "--before", before, "--after", after, "--outcomes", "--format", "json"]

    # Live before any deal sync: refused, with the command that fixes it.
    early = _invoke(*compare, "--config", c, "--connection", "salesforce")
    assert early.exit_code == 2
    assert "run `segsync sync --object deal --connection salesforce` first" in early.stderr

    assert _invoke("provision", "--config", c, "--crm", "salesforce").exit_code == 0
    assert _invoke("sync", "--config", c, "--crm", "salesforce").exit_code == 0
    saved = tmp_path / "inputs"
    live = _json(
        _invoke(*compare, "--config", c, "--connection", "salesforce", "--save-inputs", str(saved))
    )
    assert live["input"].startswith("connection salesforce (live: 200 accounts, ")
    figures = live["outcomes"]
    assert sum(t["won"] for t in figures["before"]["tiers"]) > 10
    # The rollup rule moves accounts that have won: the proposal ranks differently.
    assert figures["before"] != figures["after"]

    accounts, deals = _salesforce_exports(fresh_sandboxes, tmp_path)
    at = ["--now", live["evaluated_at"]]
    offline = _json(
        _invoke(
            *compare, "--input", str(accounts), "--crm", "salesforce", "--deals", str(deals), *at
        )
    )
    assert offline["outcomes"] == figures
    for key in ("records", "unchanged", "transitions", "score_means"):
        assert offline[key] == live[key], key
    assert live["records"] == 200 and live["changed"] > 0

    # The saved inputs reproduce it too.
    again = _json(
        _invoke(
            *compare,
            "--input",
            str(saved / "accounts.jsonl"),
            "--crm",
            "salesforce",
            "--deals",
            str(saved / "deals.jsonl"),
            *at,
        )
    )
    assert again["outcomes"] == figures
