"""`segsync parity` against both sandboxes, through simple-salesforce and hubspot-api-client.

The sandbox dataset holds the natural cross-CRM difference (a Salesforce
``Technology`` label on a company HubSpot files under
``INFORMATION_TECHNOLOGY_AND_SERVICES``) and the deliberate ones in
``segsync_sandbox.data.SEEDED_DIFFERENCES``: parity must find exactly those,
name the attribute, and its suggestion, applied, must remove the seeded ones.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from segsync_sandbox import data
from segsync_sandbox.launcher import DatasetInfo, Sandboxes

NOW = "2026-11-22T00:00:00Z"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _parity(config: Path, *extra: str) -> dict[str, Any]:
    result = _invoke("parity", "--config", str(config), "--now", NOW, "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def _object(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in document["objects"] if o["object"] == name)
    return found


def _pairs(obj: dict[str, Any]) -> set[tuple[str, str]]:
    return {(d["salesforce_id"], d["hubspot_id"]) for d in obj["disagreements"]}


@pytest.fixture
def config(sandboxes: Sandboxes, tmp_path: Path) -> Path:
    return sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )


def _natural(ds: DatasetInfo) -> set[int]:
    """Companies the two CRMs file differently by nature, by the shipped mapping's reading."""
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    now = datetime(2026, 11, 22, tzinfo=UTC)
    out = set()
    for c in data.companies(ds.seed, ds.accounts):
        if c.index in data.SEEDED_DIFFERENCES or c.industry_label is None:
            continue
        if c.industry_label.strip().casefold() != "technology":
            continue
        sf = engine.evaluate(data.salesforce_account_row(c), "salesforce", now)
        hs = engine.evaluate(data.hubspot_company_props(c), "hubspot", now)
        if (sf.segment, sf.tier, dict(sf.scores)) != (hs.segment, hs.tier, dict(hs.scores)):
            out.add(c.index)
    return out


def _ids(indexes: set[int]) -> set[tuple[str, str]]:
    return {(data.salesforce_account_id(i), data.hubspot_company_id(i)) for i in indexes}


def test_parity_finds_exactly_the_seeded_and_natural_differences(
    config: Path, sandboxes: Sandboxes
) -> None:
    ds = sandboxes.dataset
    document = _parity(config)
    accounts = _object(document, "account")
    seeded = set(data.SEEDED_DIFFERENCES)
    natural = _natural(ds)
    assert natural, "the dataset keeps a natural difference"
    assert _pairs(accounts) == _ids(seeded | natural)
    # Matched through the integration's id where HubSpot has it, else the domain.
    assert set(accounts["matched_by"]) == {"integration_id", "domain"}
    assert accounts["matched_by"]["integration_id"] > accounts["matched_by"]["domain"]
    assert accounts["compared"] == accounts["matched"]
    assert accounts["agreeing"] == accounts["compared"] - len(seeded | natural)
    # Every disagreement names industry, with the raw value on each side.
    for d in accounts["disagreements"]:
        (attribute,) = [a for a in d["attributes"] if a["decisive"]]
        assert attribute["name"] == "industry"
        assert attribute["salesforce"]["field"] == "Industry"
        assert attribute["hubspot"]["field"] == "industry"
    causes = {(c["suggestion"]["raw"], c["suggestion"]["crm"]): c for c in accounts["causes"]}
    internet = causes["INTERNET", "hubspot"]
    assert internet["count"] == 3 and internet["attribute"] == "industry"
    assert internet["suggestion"]["kind"] == "synonym"
    assert internet["suggestion"]["canonical"] == "Software"
    assert internet["summary"].endswith("→ Other in HubSpot: 3 accounts")
    development = causes["Software Development", "salesforce"]
    assert development["count"] == 2 and development["suggestion"]["canonical"] == "Software"
    technology = causes[None, None]
    assert technology["suggestion"]["kind"] == "choose"
    assert "'Technology'" in technology["summary"]
    assert "INFORMATION_TECHNOLOGY_AND_SERVICES" in technology["summary"]
    assert technology["count"] == len(natural)
    # The dataset's own companies without a website, nor the integration's id, stay unmatched.
    assert len(accounts["unmatched"]["salesforce"]) == len(accounts["unmatched"]["hubspot"]) > 0
    assert accounts["ambiguous"] == []
    # Contacts: matched by the integration's id, else email; the ones whose
    # account disagrees inherit the disagreement, and nothing else differs.
    contacts = _object(document, "contact")
    assert set(contacts["matched_by"]) == {"integration_id", "email"}
    assert [c["suggestion"]["kind"] for c in contacts["causes"]] == ["inherited"]
    disagreeing_accounts = {sf for sf, _ in _ids(seeded | natural)}
    for d in contacts["disagreements"]:
        assert set(d["outputs"]) <= {"segment", "tier"} and d["attributes"] == []
    people = {
        data.salesforce_contact_id(p.number): p.company_index
        for p in data.contacts(ds.seed, ds.accounts, ds.contacts_per_account)
    }
    assert {
        data.salesforce_account_id(people[d["salesforce_id"]]) for d in contacts["disagreements"]
    } <= disagreeing_accounts


def test_the_suggestions_applied_remove_the_seeded_differences(
    config: Path, tmp_path: Path, sandboxes: Sandboxes
) -> None:
    before = _object(_parity(config), "account")
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    shutil.copy(templates.ACCOUNTS, mappings / "accounts.toml")
    shutil.copy(templates.CONTACTS, mappings / "contacts.toml")
    text = (mappings / "accounts.toml").read_text()
    applied = 0
    for cause in before["causes"]:
        suggestion = cause["suggestion"]
        if suggestion["kind"] != "synonym":
            continue
        assert suggestion["file"] == "accounts.toml"
        table = f"[attributes.{cause['attribute']}.synonyms]\n"
        assert table in text
        line = f'"{suggestion["raw"]}" = "{suggestion["canonical"]}"\n'
        text = text.replace(table, table + line)
        applied += 1
    assert applied == 2
    (mappings / "accounts.toml").write_text(text)
    with config.open("a") as out:
        out.write('mappings = ["mappings/accounts.toml", "mappings/contacts.toml"]\n')

    after = _object(_parity(config), "account")
    assert _pairs(after) == _ids(_natural(sandboxes.dataset))
    assert [c["suggestion"]["kind"] for c in after["causes"]] == ["choose"]


def test_match_on_names_the_last_key(config: Path, sandboxes: Sandboxes) -> None:
    with config.open("a") as out:
        out.write(
            '\n[parity]\nmatch_on = { account = { salesforce = "Name", hubspot = "name" } }\n'
        )
    accounts = _object(_parity(config), "account")
    assert accounts["unmatched"] == {"salesforce": [], "hubspot": []}
    assert accounts["matched"] == sandboxes.dataset.accounts
    assert accounts["matched_by"]["attribute"] > 0


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _exports(ds: DatasetInfo, tmp_path: Path) -> tuple[Path, Path, list[data.Company]]:
    companies = list(data.companies(ds.seed, ds.accounts))
    sf = _write_jsonl(tmp_path / "sf.jsonl", [data.salesforce_account_row(c) for c in companies])
    hs_rows = [
        {"hs_object_id": data.hubspot_company_id(c.index), **data.hubspot_company_props(c)}
        for c in companies
    ]
    hs = _write_jsonl(tmp_path / "hs.jsonl", hs_rows)
    return sf, hs, companies


def test_from_exports_gives_the_live_answer(
    config: Path, tmp_path: Path, sandboxes: Sandboxes
) -> None:
    live = _object(_parity(config), "account")
    sf, hs, _ = _exports(sandboxes.dataset, tmp_path)
    document = _parity(config, "--from-exports", str(sf), str(hs))
    assert document["source"].startswith("exports: ")
    offline = _object(document, "account")
    for key in ("matched", "matched_by", "compared", "agreeing", "outputs", "unmatched"):
        assert offline[key] == live[key], key
    assert offline["disagreements"] == live["disagreements"]
    assert [c["summary"] for c in offline["causes"]] == [c["summary"] for c in live["causes"]]


def test_from_exports_needs_no_config(
    config: Path, tmp_path: Path, sandboxes: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    sf, hs, _ = _exports(sandboxes.dataset, tmp_path)
    with_config = _object(_parity(config, "--from-exports", str(sf), str(hs)), "account")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("SEGSYNC_CONFIG", raising=False)
    result = _invoke("parity", "--now", NOW, "--format", "json", "--from-exports", str(sf), str(hs))
    assert result.exit_code == 0, result.output
    alone = _object(json.loads(result.output), "account")
    assert alone["disagreements"] == with_config["disagreements"]


def test_ambiguous_and_unmatched_are_reported(
    config: Path, tmp_path: Path, sandboxes: Sandboxes
) -> None:
    sf, hs, companies = _exports(sandboxes.dataset, tmp_path)
    # A second HubSpot company on the domain of an account the integration
    # never linked, and a company Salesforce does not have.
    target = next(c for c in companies if not c.synced and c.website)
    with hs.open("a") as out:
        for extra in (
            {"hs_object_id": "90000000001", "name": "Dup", "domain": target.domain},
            {"hs_object_id": "90000000002", "name": "Only", "domain": "only-hs.io"},
        ):
            out.write(json.dumps(extra) + "\n")
    accounts = _object(_parity(config, "--from-exports", str(sf), str(hs)), "account")
    ambiguous = {(a["crm"], a["id"]): a for a in accounts["ambiguous"]}
    account_id = data.salesforce_account_id(target.index)
    company_id = data.hubspot_company_id(target.index)
    assert set(ambiguous) == {
        ("salesforce", account_id),
        ("hubspot", company_id),
        ("hubspot", "90000000001"),
    }
    assert ambiguous["salesforce", account_id]["by"] == "domain"
    assert sorted(ambiguous["salesforce", account_id]["candidates"]) == sorted(
        [company_id, "90000000001"]
    )
    assert "90000000002" in accounts["unmatched"]["hubspot"]

    text = _invoke(
        "parity", "--config", str(config), "--now", NOW, "--from-exports", str(sf), str(hs)
    ).output
    assert f"ambiguous: salesforce {account_id}: domain" in text
    assert "unmatched in HubSpot: " in text and "90000000002" in text


def test_text_and_html_reports(config: Path, tmp_path: Path) -> None:
    text = _invoke("parity", "--config", str(config), "--now", NOW).output
    assert "Accounts (definition 2026-11-b): " in text
    assert "→ Other in HubSpot: 3 accounts" in text
    assert "→ add 'INTERNET' to synonyms Software in accounts.toml [attributes.industry]" in text
    page = tmp_path / "parity.html"
    result = _invoke(
        "parity", "--config", str(config), "--now", NOW, "--format", "html", "--out", str(page)
    )
    assert result.exit_code == 0 and result.output == ""
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<style>" in html
    # Self-contained: nothing loaded from elsewhere, nothing run.
    assert "<script" not in html and "src=" not in html and "href=" not in html
    assert "add &#x27;INTERNET&#x27; to synonyms Software" in html


def test_parity_needs_one_connection_of_each_crm(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[connections.hs]\ncrm = "hubspot"\naccess_token = "x"\n')
    result = CliRunner().invoke(cli, ["parity", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "parity compares one salesforce connection" in result.output
    assert "Traceback" not in result.output


# A value class by a matrix over two scores: its reason quotes them.
CLASSES = """
object = "account"
version = "c-1"

[attributes.revenue]
type = "number"
salesforce = "AnnualRevenue"
hubspot = "annualrevenue"

[attributes.visits]
type = "integer"
salesforce = "Visits__c"
hubspot = "visits"

[[segments]]
name = "All"
default = true

[scores.value]
rules = [
  { points = 60, label = "rich", when = { attr = "revenue", gte = 1_000_000 } },
  { points = 30, label = "some", when = { attr = "revenue", between = [100_000, 999_999] } },
]

[scores.engagement]
rules = [ { points = 50, label = "regular", when = { attr = "visits", gte = 10 } } ]

[[tiers]]
name = "Tier 1"
default = true

[classifications.value.matrix]
rows = { score = "value", at_least = [60, 30], labels = ["high", "medium", "low"] }
columns = { score = "engagement", at_least = [50], labels = ["engaged", "quiet"] }
cells = [["Grow", "Re-engage"], ["Grow", "Nurture"], ["Nurture", "Monitor"]]
"""


def test_a_classification_reason_is_not_an_output_parity_compares() -> None:
    """Both sides in one value class (Grow) for different value scores: one difference, the score.

    A classification's reason line quotes the scores, so it differs whenever
    they do; counted as an output it would add a second, spurious difference.
    """
    from connector.analysis.identity import Identity, Match
    from connector.analysis.parity import Pair, classification, compare
    from connector.mapping import loads_mapping

    at = datetime(2026, 11, 22, tzinfo=UTC)
    engine = compile_mapping(loads_mapping(CLASSES, "classes.toml"))
    sf = {"AnnualRevenue": 2_000_000, "Visits__c": 60}
    hs = {"annualrevenue": "500000", "visits": "60"}
    left, right = engine.evaluate(sf, "salesforce", at), engine.evaluate(hs, "hubspot", at)
    assert left.classifications["value"] == right.classifications["value"] == "Grow"
    assert left.classification_reasons["value"] != right.classification_reasons["value"]
    assert not any(name.startswith("classification_reason") for name in classification(left))

    match = Match("001000000000001AAA", "101", "domain")
    result = compare(engine, [Pair(match, sf, hs)], Identity([match]), at)
    [disagreement] = result.disagreements
    assert dict(disagreement.outputs) == {"score.value": (60, 30)}
    assert "classifications.value" in result.outputs
    assert not any(name.startswith("classification_reason") for name in result.outputs)
