"""Rollups filtered on the deal type, live: they equal the file and the backtest computation.

Through the real clients against the sandboxes: an account mapping whose
rollups filter on ``type`` runs in ``segsync sync`` (it was refused while the
deal store kept no type, and a Salesforce Opportunity's ``Type`` was kept as
its pipeline); what it writes to every account equals ``segsync preview`` on
exports made here through the API (the Opportunities in their export names,
``Type`` included); the live backtest (``diff --outcomes`` from the store's
deals) equals the backtest of those exports. HubSpot's ``dealtype`` is kept
as the deal's type.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner, Result

from connector.cli import cli
from connector.store.deals import DealStore
from connector.store.store import Store, alembic_config, normalize_url
from segsync_sandbox.launcher import Sandboxes

MAPPING = """
object = "account"
version = "types-1"

[attributes.new_won]
rollup = { count = "deals", stage = "won", type = ["New Business", "newbusiness"] }

[attributes.renewal_won]
rollup = { sum = "amount", stage = "won", type = ["existing business", "existingbusiness"] }

[[segments]]
name = "New logo"
when = { attr = "new_won", gte = 1 }

[[segments]]
name = "Prospect"
default = true

[scores.value]
rules = [
  { points = 1, when = { attr = "new_won", gte = 2 } },
  { points = 2, when = { attr = "renewal_won", gte = 1 } },
]

[[tiers]]
name = "Tier 1"
when = { score = "value", gte = 2 }

[[tiers]]
name = "Tier 2"
default = true

[outputs.salesforce]
segment = "Segsync_Segment__c"
tier = "Segsync_Tier__c"
scores = { value = "Segsync_Value_Score__c" }

[outputs.hubspot]
segment = "segsync_segment"
tier = "segsync_tier"
scores = { value = "segsync_value_score" }
"""

COLUMNS = ["Id", "AccountId", "IsClosed", "IsWon", "Amount", "CreatedDate", "CloseDate", "Type"]


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _config(sandboxes: Sandboxes, tmp_path: Path, mapping: Path) -> Path:
    text = sandboxes.config_text(store_url=f"sqlite:///{tmp_path / 'state.db'}")
    path = tmp_path / "config.toml"
    path.write_text(
        text.replace("deals = false", f'deals = false\nmappings = ["{mapping.as_posix()}"]'),
        encoding="utf-8",
    )
    return path


def _exports(sandboxes: Sandboxes, tmp_path: Path) -> tuple[Path, Path]:
    """The accounts and Opportunities, exported through the API (not through segsync)."""
    sf = sandboxes.salesforce.client()
    accounts = tmp_path / "accounts.jsonl"
    with accounts.open("w", encoding="utf-8") as out:
        for row in sf.query_all_iter("SELECT Id, Name FROM Account"):
            out.write(json.dumps({k: v for k, v in row.items() if k != "attributes"}) + "\n")
    deals = tmp_path / "opportunities.csv"
    with deals.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        for row in sf.query_all_iter(f"SELECT {', '.join(COLUMNS)} FROM Opportunity"):
            writer.writerow({c: row[c] for c in COLUMNS})
    return accounts, deals


def test_a_type_filtered_rollup_live_equals_the_file_and_backtest_computation(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    mapping = tmp_path / "types.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    config = _config(fresh_sandboxes, tmp_path, mapping)
    c = str(config)
    assert _invoke("provision", "--config", c, "--crm", "salesforce").exit_code == 0
    doc = _json(_invoke("sync", "--config", c, "--crm", "salesforce", "--format", "json"))
    assert [j["object"] for j in doc["jobs"]] == ["deal", "account"]

    sf = fresh_sandboxes.salesforce.client()
    written = {
        row["Id"]: (
            row["Segsync_Segment__c"],
            row["Segsync_Tier__c"],
            int(float(row["Segsync_Value_Score__c"])),
        )
        for row in sf.query_all_iter(
            "SELECT Id, Segsync_Segment__c, Segsync_Tier__c, Segsync_Value_Score__c FROM Account"
        )
    }

    # The same definition on exports of the same data: every account alike.
    accounts, deals = _exports(fresh_sandboxes, tmp_path)
    out = tmp_path / "preview.csv"
    inputs = ["--input", str(accounts), "--crm", "salesforce", "--deals", str(deals)]
    preview = _invoke("preview", "--mapping", str(mapping), *inputs, "--out", str(out))
    assert preview.exit_code == 0, preview.output
    with out.open(encoding="utf-8", newline="") as f:
        computed = {
            row["id"]: (row["segment"], row["tier"], int(float(row["value_score"])))
            for row in csv.DictReader(f)
        }
    assert computed == written
    # Both filters matter: new-business wins make "New logo", renewal wins Tier 1,
    # and some accounts have one without the other.
    values = set(written.values())
    assert {s for s, _, _ in values} == {"New logo", "Prospect"}
    assert {t for _, t, _ in values} == {"Tier 1", "Tier 2"}
    assert ("Prospect", "Tier 1", 2) in values and ("New logo", "Tier 2", 0) in values

    # The stored deals carry the type, not as a pipeline (an Opportunity has none).
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        kept = {d.id: d for d in DealStore(store).deals("salesforce")}
    types = {r["Id"]: r["Type"] for r in sf.query_all_iter("SELECT Id, Type FROM Opportunity")}
    assert kept and all(d.type == types[i] and d.pipeline is None for i, d in kept.items())

    # The backtest: live (deals from the store) equals the backtest of the exports.
    swapped = tmp_path / "swapped.toml"
    swapped.write_text(
        MAPPING.replace('version = "types-1"', 'version = "types-2"')
        .replace('"New Business", "newbusiness"', "TMP")
        .replace('"existing business", "existingbusiness"', '"New Business", "newbusiness"')
        .replace("TMP", '"existing business", "existingbusiness"'),
        encoding="utf-8",
    )
    compare = ["diff", "--before", str(mapping), "--after", str(swapped), "--outcomes"]
    live = _json(_invoke(*compare, "--config", c, "--connection", "salesforce", "--format", "json"))
    assert live["outcomes"]["before"] != live["outcomes"]["after"]
    at = ["--now", live["evaluated_at"], "--format", "json"]
    offline = _json(_invoke(*compare, *inputs, *at))
    assert offline["outcomes"] == live["outcomes"]
    for key in ("records", "unchanged", "transitions", "score_means"):
        assert offline[key] == live[key], key


def test_hubspot_deals_keep_their_dealtype(fresh_sandboxes: Sandboxes, tmp_path: Path) -> None:
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    run = _invoke("sync", "--config", str(config), "--crm", "hubspot", "--object", "deal")
    assert run.exit_code == 0, run.output
    hs = fresh_sandboxes.hubspot.client()
    types: dict[str, str | None] = {}
    after = None
    while True:
        page = hs.crm.deals.basic_api.get_page(limit=100, after=after, properties=["dealtype"])
        types.update({d.id: d.properties.get("dealtype") for d in page.results})
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        kept = list(DealStore(store).deals("hubspot"))
    assert kept and all(d.type == types[d.id] for d in kept)
    assert {d.type for d in kept} == {"newbusiness", "existingbusiness"}


def test_a_store_from_before_the_type_moves_salesforce_types_out_of_the_pipeline(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(normalize_url(url))
    config = alembic_config()
    insert = sa.text(
        "INSERT INTO deals (connection, id, crm, account_id, pipeline, is_closed, is_won, "
        "created_at, modstamp) VALUES (:c, :i, :crm, 'a1', :p, 1, 1, "
        "'2026-01-01 00:00:00', '2026-01-02 00:00:00')"
    )
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0013")
        conn.execute(insert, {"c": "sf", "i": "006A", "crm": "salesforce", "p": "New Business"})
        conn.execute(insert, {"c": "hs", "i": "9", "crm": "hubspot", "p": "default"})
    engine.dispose()
    with Store.open(url) as store:
        assert store.revision() == Store.head()
        [sf] = DealStore(store).deals("sf")
        [hs] = DealStore(store).deals("hs")
    assert (sf.pipeline, sf.type) == (None, "New Business")
    # HubSpot's pipeline stays; its type comes with the next (full) deal sync.
    assert (hs.pipeline, hs.type) == ("default", None)
