from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from connector import cli as cli_module
from connector import templates
from connector.commands.offline import COMMANDS
from connector.engine import Engine, compile_mapping
from connector.mapping import load_mapping

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = templates.ACCOUNTS
CONTACTS = templates.CONTACTS
SAMPLES = ROOT / "connector" / "samples"
NOW = datetime(2026, 11, 1, tzinfo=UTC)

SF_COLUMNS = (
    "Id",
    "Name",
    "Industry",
    "NumberOfEmployees",
    "AnnualRevenue",
    "BillingCountry",
    "Tech_Stack__c",
    "Intent_Score__c",
    "LastActivityDate",
    "Segsync_Lock__c",
)

# Salesforce accounts covering big / mid / small / blank companies.
SF_ROWS: list[dict[str, str]] = [
    {
        "Id": "001A00000000001AAA",
        "Name": "Big Soft",
        "Industry": "Computer Software",
        "NumberOfEmployees": "5000",
        "AnnualRevenue": "900000000",
        "BillingCountry": "USA",
        "Tech_Stack__c": "Salesforce;Snowflake;AWS",
        "Intent_Score__c": "80",
        "LastActivityDate": "2026-10-20",
        "Segsync_Lock__c": "false",
    },
    {
        "Id": "001A00000000002AAA",
        "Name": "Bank Co",
        "Industry": " banking ",
        "NumberOfEmployees": "800",
        "AnnualRevenue": "",
        "BillingCountry": "UK",
        "Tech_Stack__c": "Salesforce",
        "Intent_Score__c": "10",
        "LastActivityDate": "2026-01-01",
        "Segsync_Lock__c": "false",
    },
    {
        "Id": "001A00000000003AAA",
        "Name": "Tiny Shop",
        "Industry": "Retail",
        "NumberOfEmployees": "12",
        "AnnualRevenue": "1000000",
        "BillingCountry": "Germany",
        "Tech_Stack__c": "Shopify;Stripe",
        "Intent_Score__c": "",
        "LastActivityDate": "",
        "Segsync_Lock__c": "false",
    },
    {
        "Id": "001A00000000004AAA",
        "Name": "Mid Cloud",
        "Industry": "Manufacturing",
        "NumberOfEmployees": "120",
        "AnnualRevenue": "30000000",
        "BillingCountry": "France",
        "Tech_Stack__c": "",
        "Intent_Score__c": "45",
        "LastActivityDate": "2026-10-25",
        "Segsync_Lock__c": "false",
    },
    {
        "Id": "001A00000000005AAA",
        "Name": "Nothing Known",
        "Industry": "",
        "NumberOfEmployees": "",
        "AnnualRevenue": "",
        "BillingCountry": "",
        "Tech_Stack__c": "",
        "Intent_Score__c": "",
        "LastActivityDate": "",
        "Segsync_Lock__c": "false",
    },
    {
        "Id": "001A00000000006AAA",
        "Name": "Mid Manufacturer",
        "Industry": "Manufacturing",
        "NumberOfEmployees": "130",
        "AnnualRevenue": "",
        "BillingCountry": "Canada",
        "Tech_Stack__c": "Oracle",
        "Intent_Score__c": "5",
        "LastActivityDate": "",
        "Segsync_Lock__c": "false",
    },
]


def write_sf_csv(
    path: Path, rows: Sequence[Mapping[str, str]], bad_lines: Sequence[str] = ()
) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(SF_COLUMNS)
        for row in rows:
            writer.writerow([row.get(c, "") for c in SF_COLUMNS])
        for line in bad_lines:
            fh.write(line + "\n")
    return path


def hubspot_props(row: Mapping[str, str], number: int) -> dict[str, str]:
    """The Salesforce test row as a HubSpot company (string values, blanks left out)."""
    industries = {"Computer Software": "COMPUTER_SOFTWARE", " banking ": "BANKING"}
    props = {
        "hs_object_id": str(9000 + number),
        "name": row["Name"],
        "industry": industries.get(row["Industry"], row["Industry"].upper()),
        "numberofemployees": row["NumberOfEmployees"],
        "annualrevenue": row["AnnualRevenue"],
        "country": row["BillingCountry"],
        "tech_stack": row["Tech_Stack__c"],
        "intent_score": row["Intent_Score__c"],
        "notes_last_updated": row["LastActivityDate"]
        and row["LastActivityDate"] + "T10:00:00.000Z",
    }
    return {k: v for k, v in props.items() if v}


def write_hubspot_jsonl(
    path: Path, objects: Sequence[Mapping[str, Any]], bad: Sequence[str] = ()
) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for obj in objects:
            fh.write(json.dumps(obj) + "\n")
        for line in bad:
            fh.write(line + "\n")
    return path


@pytest.fixture(scope="module")
def accounts_engine() -> Engine:
    return compile_mapping(load_mapping(ACCOUNTS))


@pytest.fixture
def segsync() -> click.Group:
    """The offline commands under the real ``segsync`` group class (UserError → exit 2)."""
    group = cli_module._Group("segsync")  # the error handling every segsync command gets
    for command in COMMANDS:
        group.add_command(command)
    return group


def run(group: click.Group, *args: str | Path) -> Result:
    return CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=False)


def json_out(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    return doc


def expected_counts(
    engine: Engine, rows: Sequence[Mapping[str, Any]], crm: str
) -> tuple[Counter[str], Counter[str]]:
    assignments = [engine.evaluate(r, crm, NOW) for r in rows]
    return Counter(a.segment for a in assignments), Counter(a.tier for a in assignments)


# --------------------------------------------------------------------------- preview


def test_preview_json_counts_match_the_engine(
    segsync: click.Group, accounts_engine: Engine, tmp_path: Path
) -> None:
    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    doc = json_out(
        run(
            segsync,
            "preview",
            "-m",
            ACCOUNTS,
            "-i",
            export,
            "--crm",
            "salesforce",
            "--now",
            NOW.isoformat(),
            "--format",
            "json",
        )
    )
    segments, tiers = expected_counts(accounts_engine, SF_ROWS, "salesforce")
    assert doc["records"] == len(SF_ROWS)
    assert {s["name"]: s["count"] for s in doc["segments"] if s["count"]} == dict(segments)
    assert {t["name"]: t["count"] for t in doc["tiers"] if t["count"]} == dict(tiers)
    # Every declared segment is listed, even empty ones, and shares add up.
    assert [s["name"] for s in doc["segments"]][: len(accounts_engine.segment_names)] == list(
        accounts_engine.segment_names
    )
    assert sum(s["share"] for s in doc["segments"]) == pytest.approx(1.0)
    cells = Counter({(c["segment"], c["tier"]): c["count"] for c in doc["segment_tier"]})
    assert sum(cells.values()) == len(SF_ROWS)
    # The record with every input blank is counted.
    assert doc["blank_inputs"] == 1
    assert doc["evaluated_at"].startswith("2026-11-01")
    kinds = {w["kind"] for w in doc["warnings"]}
    assert "blank_inputs" in kinds
    empty = {w["subject"] for w in doc["warnings"] if w["kind"] == "empty_segment"}
    assert empty == set(accounts_engine.segment_names) - set(segments)


def test_preview_text_shows_the_distribution_and_warnings(
    segsync: click.Group, tmp_path: Path
) -> None:
    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    result = run(
        segsync,
        "preview",
        "-m",
        ACCOUNTS,
        "-i",
        export,
        "--crm",
        "salesforce",
        "--now",
        "2026-11-01",
    )
    assert result.exit_code == 0, result.output
    for name in ("Segments", "Tiers", "Segment × tier", "Enterprise SaaS", "Tier 1", "Warnings"):
        assert name in result.stdout
    assert "6 evaluated" in result.stdout


def test_preview_skips_and_reports_bad_csv_rows(
    segsync: click.Group, accounts_engine: Engine, tmp_path: Path
) -> None:
    export = write_sf_csv(
        tmp_path / "accounts.csv",
        SF_ROWS[:3],
        bad_lines=["001A00000000009AAA,too,few", '001A00000000010AAA,"broken"quote,' + "," * 8],
    )
    export.write_text(export.read_text(encoding="utf-8") + ",".join(SF_ROWS[3].values()) + "\n")
    doc = json_out(
        run(
            segsync,
            "preview",
            "-m",
            ACCOUNTS,
            "-i",
            export,
            "--crm",
            "salesforce",
            "--now",
            "2026-11-01",
            "--format",
            "json",
        )
    )
    assert doc["records"] == 4
    assert doc["bad_rows"]["total"] == 2
    assert [b["line"] for b in doc["bad_rows"]["listed"]] == [5, 6]
    segments, _ = expected_counts(accounts_engine, SF_ROWS[:4], "salesforce")
    assert {s["name"]: s["count"] for s in doc["segments"] if s["count"]} == dict(segments)

    text = run(segsync, "preview", "-m", ACCOUNTS, "-i", export, "--crm", "salesforce")
    assert text.exit_code == 0
    assert "line 5" in text.stdout and "line 6" in text.stdout


def test_preview_hubspot_jsonl_with_bad_lines(
    segsync: click.Group, accounts_engine: Engine, tmp_path: Path
) -> None:
    objects: list[dict[str, Any]] = [hubspot_props(r, i) for i, r in enumerate(SF_ROWS)]
    # An API dump shape: {"id", "properties"} is read like flat properties.
    api_shaped = {"id": "777", "properties": hubspot_props(SF_ROWS[0], 777)}
    export = write_hubspot_jsonl(
        tmp_path / "companies.jsonl", [*objects, api_shaped], bad=["{oops", "[1]"]
    )
    doc = json_out(
        run(
            segsync,
            "preview",
            "--mapping",
            ACCOUNTS,
            "--input",
            export,
            "--crm",
            "hubspot",
            "--now",
            "2026-11-01T00:00:00Z",
            "--format",
            "json",
        )
    )
    flat = [*objects, api_shaped["properties"]]
    segments, tiers = expected_counts(accounts_engine, flat, "hubspot")
    assert doc["records"] == len(flat)
    assert {s["name"]: s["count"] for s in doc["segments"] if s["count"]} == dict(segments)
    assert {t["name"]: t["count"] for t in doc["tiers"] if t["count"]} == dict(tiers)
    assert [b["line"] for b in doc["bad_rows"]["listed"]] == [len(flat) + 1, len(flat) + 2]
    # The normalizations apply: the HubSpot "COMPUTER_SOFTWARE" 5000-people company is
    # classified exactly like its Salesforce twin.
    sf = accounts_engine.evaluate(SF_ROWS[0], "salesforce", NOW)
    hs = accounts_engine.evaluate(objects[0], "hubspot", NOW)
    assert (sf.segment, sf.tier) == (hs.segment, hs.tier)


def test_preview_out_writes_every_record(
    segsync: click.Group, accounts_engine: Engine, tmp_path: Path
) -> None:
    rows = [*SF_ROWS, {**SF_ROWS[0], "Id": ""}]
    export = write_sf_csv(tmp_path / "accounts.csv", rows)
    out = tmp_path / "assignments.csv"
    result = run(
        segsync,
        "preview",
        "-m",
        ACCOUNTS,
        "-i",
        export,
        "--crm",
        "salesforce",
        "--now",
        "2026-11-01",
        "--out",
        out,
        "--format",
        "json",
    )
    doc = json_out(result)
    with out.open(encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == [
        "id",
        "segment",
        "tier",
        "fit_score",
        "intent_score",
        "value_score",
        "engagement_score",
        "value_tier",
        "reason",
        "locked",
    ]
    assert [w["id"] for w in written] == [r["Id"] for r in rows]
    for row, line in zip(rows, written, strict=True):
        a = accounts_engine.evaluate(row, "salesforce", NOW)
        assert (line["segment"], line["tier"], line["reason"]) == (a.segment, a.tier, a.reason)
        assert line["locked"] == str(accounts_engine.is_locked(row, "salesforce")).lower()
        assert float(line["fit_score"]) == a.scores["fit"]
        assert float(line["intent_score"]) == a.scores["intent"]
        assert line["value_tier"] == a.classifications["value"]
    assert any(w["kind"] == "missing_ids" for w in doc["warnings"])
    assert not list(tmp_path.glob(".*.tmp"))


def test_preview_now_changes_date_based_rules(segsync: click.Group, tmp_path: Path) -> None:
    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS[:1])  # active on 2026-10-20

    def intent(now: str) -> float:
        out = tmp_path / f"out-{now}.csv"
        result = run(
            segsync,
            "preview",
            "-m",
            ACCOUNTS,
            "-i",
            export,
            "--crm",
            "salesforce",
            "--now",
            now,
            "--out",
            out,
            "--format",
            "json",
        )
        assert result.exit_code == 0, result.output
        with out.open(encoding="utf-8", newline="") as fh:
            return float(next(csv.DictReader(fh))["intent_score"])

    assert intent("2026-10-21") > intent("2027-06-01")


def test_preview_flags_an_export_from_the_other_crm(segsync: click.Group, tmp_path: Path) -> None:
    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    doc = json_out(
        run(
            segsync, "preview", "-m", ACCOUNTS, "-i", export, "--crm", "hubspot", "--format", "json"
        )
    )
    messages = [w["message"] for w in doc["warnings"] if w["kind"] == "missing_fields"]
    assert any("--crm salesforce" in m for m in messages)


def test_preview_user_errors_exit_2_without_traceback(segsync: click.Group, tmp_path: Path) -> None:
    missing = run(
        segsync, "preview", "-m", ACCOUNTS, "-i", tmp_path / "nope.csv", "--crm", "salesforce"
    )
    assert missing.exit_code == 2
    assert "nope.csv" in missing.stderr and "Traceback" not in missing.output

    (tmp_path / "export.xlsx").write_bytes(b"PK")
    wrong = run(
        segsync, "preview", "-m", ACCOUNTS, "-i", tmp_path / "export.xlsx", "--crm", "salesforce"
    )
    assert wrong.exit_code == 2 and ".csv" in wrong.stderr

    bad_now = run(
        segsync,
        "preview",
        "-m",
        ACCOUNTS,
        "-i",
        tmp_path / "x.csv",
        "--crm",
        "salesforce",
        "--now",
        "yesterday",
    )
    assert bad_now.exit_code == 2 and "yesterday" in bad_now.output


def test_preview_contacts_counts_personas(segsync: click.Group, tmp_path: Path) -> None:
    contacts_engine = compile_mapping(load_mapping(CONTACTS))
    rows = [
        {
            "Id": "003A00000000001AAA",
            "Title": "CFO",
            "Department": "Finance",
            "Seniority__c": "Executive",
        },
        {
            "Id": "003A00000000002AAA",
            "Title": "Software Engineer",
            "Department": "Engineering",
            "Seniority__c": "Individual Contributor",
        },
        {"Id": "003A00000000003AAA", "Title": "", "Department": "", "Seniority__c": ""},
    ]
    export = tmp_path / "contacts.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "contacts-out.csv"
    doc = json_out(
        run(
            segsync,
            "preview",
            "-m",
            CONTACTS,
            "-i",
            export,
            "--crm",
            "salesforce",
            "--out",
            out,
            "--format",
            "json",
        )
    )
    expected = Counter(contacts_engine.evaluate(r, "salesforce", NOW).persona for r in rows)
    assert {p["name"]: p["count"] for p in doc["personas"] if p["count"]} == dict(expected)
    with out.open(encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert "persona" in written[0]
    assert [w["persona"] for w in written] == [
        contacts_engine.evaluate(r, "salesforce", NOW).persona for r in rows
    ]


def test_preview_of_the_bundled_sample(segsync: click.Group) -> None:
    sample = SAMPLES / "salesforce_accounts.csv"
    doc = json_out(
        run(
            segsync,
            "preview",
            "-m",
            ACCOUNTS,
            "-i",
            sample,
            "--crm",
            "salesforce",
            "--now",
            "2026-11-01",
            "--format",
            "json",
        )
    )
    assert doc["records"] >= 900
    assert doc["bad_rows"]["total"] == 0
    assert not any(w["kind"] == "missing_fields" for w in doc["warnings"])
    # A realistic export spreads over several segments and every tier.
    assert sum(1 for s in doc["segments"] if s["count"]) >= 3
    assert all(t["count"] for t in doc["tiers"])


# --------------------------------------------------------------------------- explain


def test_explain_one_record(segsync: click.Group, accounts_engine: Engine, tmp_path: Path) -> None:
    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    wanted = SF_ROWS[1]
    doc = json_out(
        run(
            segsync,
            "explain",
            "-m",
            ACCOUNTS,
            "-i",
            export,
            "--crm",
            "salesforce",
            "--id",
            wanted["Id"],
            "--now",
            "2026-11-01",
            "--format",
            "json",
        )
    )
    assert doc["id"] == wanted["Id"]
    assert doc["line"] == 3
    assert doc["explanation"] == accounts_engine.explain(wanted, "salesforce", NOW).to_dict()

    text = run(
        segsync,
        "explain",
        "-m",
        ACCOUNTS,
        "-i",
        export,
        "--crm",
        "salesforce",
        "--id",
        wanted["Id"][:15],
        "--now",
        "2026-11-01",
    )
    assert text.exit_code == 0, text.output
    assert accounts_engine.explain(wanted, "salesforce", NOW).render() in text.stdout


def test_explain_hubspot_record(segsync: click.Group, tmp_path: Path) -> None:
    export = write_hubspot_jsonl(
        tmp_path / "c.jsonl", [hubspot_props(r, i) for i, r in enumerate(SF_ROWS)]
    )
    doc = json_out(
        run(
            segsync,
            "explain",
            "-m",
            ACCOUNTS,
            "-i",
            export,
            "--crm",
            "hubspot",
            "--id",
            "9002",
            "--format",
            "json",
        )
    )
    assert doc["id"] == "9002" and doc["line"] == 3


def test_explain_missing_id_is_a_clear_error(segsync: click.Group, tmp_path: Path) -> None:
    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    result = run(
        segsync,
        "explain",
        "-m",
        ACCOUNTS,
        "-i",
        export,
        "--crm",
        "salesforce",
        "--id",
        "001ZZZZZZZZZZZZAAA",
    )
    assert result.exit_code == 2
    assert "001ZZZZZZZZZZZZAAA" in result.stderr
    assert "accounts.csv" in result.stderr
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- diff


def raised_smb_threshold(tmp_path: Path) -> Path:
    """The shipped accounts mapping with SMB widened from < 100 to < 150 employees."""
    text = ACCOUNTS.read_text(encoding="utf-8")
    old = '{ attr = "employees", lt = 100 }'
    assert text.count(old) == 1, "the shipped SMB rule changed; update this test"
    changed = text.replace(old, '{ attr = "employees", lt = 150 }')
    changed = changed.replace('version = "2026-11-b"', 'version = "2026-11-test"', 1)
    path = tmp_path / "accounts-next.toml"
    path.write_text(changed, encoding="utf-8")
    return path


def run_diff(
    segsync: click.Group, tmp_path: Path, after: Path, *extra: Any, now: bool = True
) -> Any:
    """``segsync diff`` of the shipped accounts mapping against ``after`` on SF_ROWS."""
    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    args: list[Any] = ["diff", "--before", ACCOUNTS, "--after", after, "-i", export]
    args += ["--crm", "salesforce", *(["--now", "2026-11-01"] if now else []), *extra]
    return run(segsync, *args)


def test_diff_shows_the_expected_moves(
    segsync: click.Group, accounts_engine: Engine, tmp_path: Path
) -> None:
    after = raised_smb_threshold(tmp_path)
    after_engine = compile_mapping(load_mapping(after))
    doc = json_out(run_diff(segsync, tmp_path, after, "--format", "json"))
    moves = Counter(
        (
            accounts_engine.evaluate(r, "salesforce", NOW).segment,
            after_engine.evaluate(r, "salesforce", NOW).segment,
        )
        for r in SF_ROWS
    )
    matrix = {(m["from"], m["to"]): m["count"] for m in doc["transitions"]["segment"]["matrix"]}
    assert matrix == dict(moves)
    # The 130-employee manufacturer with no cloud left "Everyone else" for SMB; the
    # 120-employee one too; nobody else moved.
    (move,) = doc["transitions"]["segment"]["moves"]
    assert (move["to"], move["count"]) == ("SMB", 2)
    assert move["from"] != "SMB"
    assert {s["id"] for s in move["samples"]} == {SF_ROWS[3]["Id"], SF_ROWS[5]["Id"]}
    assert all("SMB" in s["reason"] for s in move["samples"])
    assert doc["unchanged"] == len(SF_ROWS) - 2
    assert doc["after"]["version"] == "2026-11-test"
    assert not any(w["kind"] == "same_version" for w in doc["warnings"])


def test_diff_text_and_sample_limit(segsync: click.Group, tmp_path: Path) -> None:
    after = raised_smb_threshold(tmp_path)
    result = run_diff(segsync, tmp_path, after, "--samples", "1")
    assert result.exit_code == 0, result.output
    assert "→ SMB" in result.stdout
    assert "Unchanged" in result.stdout
    shown = [r["Id"] for r in (SF_ROWS[3], SF_ROWS[5]) if r["Id"] in result.stdout]
    assert len(shown) == 1


def test_diff_counts_the_moves_of_each_classification(
    segsync: click.Group, accounts_engine: Engine, tmp_path: Path
) -> None:
    # A stricter value × engagement: a medium-value account is never "Develop" any more.
    text = ACCOUNTS.read_text(encoding="utf-8")
    old_row = '[ "Develop",   "Develop",   "Re-engage" ],   # medium value'
    assert old_row in text
    after = tmp_path / "stricter.toml"
    new_row = '[ "Develop",   "Maintain",  "Maintain"  ],   # medium value'
    text = text.replace(old_row, new_row)
    after.write_text(
        text.replace('version = "2026-11-b"', 'version = "2026-11-test"'), encoding="utf-8"
    )
    after_engine = compile_mapping(load_mapping(after))
    doc = json_out(run_diff(segsync, tmp_path, after, "--format", "json"))
    moves = Counter(
        (
            accounts_engine.evaluate(r, "salesforce", NOW).classifications["value"],
            after_engine.evaluate(r, "salesforce", NOW).classifications["value"],
        )
        for r in SF_ROWS
    )
    value = doc["transitions"]["value"]
    assert {(m["from"], m["to"]): m["count"] for m in value["matrix"]} == dict(moves)
    assert value["changed"] == sum(n for (a, b), n in moves.items() if a != b) > 0
    # the tier is untouched by a classification change
    assert doc["transitions"]["tier"]["changed"] == 0


def test_diff_of_identical_definitions_moves_nothing(segsync: click.Group, tmp_path: Path) -> None:
    doc = json_out(run_diff(segsync, tmp_path, ACCOUNTS, "--format", "json", now=False))
    assert doc["unchanged"] == doc["records"] == len(SF_ROWS)
    assert doc["transitions"]["segment"]["moves"] == []


def test_diff_warns_when_the_version_was_not_bumped(segsync: click.Group, tmp_path: Path) -> None:
    after = tmp_path / "same-version.toml"
    after.write_text(
        ACCOUNTS.read_text(encoding="utf-8").replace(
            '{ attr = "employees", lt = 100 }', '{ attr = "employees", lt = 150 }'
        ),
        encoding="utf-8",
    )
    doc = json_out(run_diff(segsync, tmp_path, after, "--format", "json"))
    assert any(w["kind"] == "same_version" for w in doc["warnings"])


def test_diff_refuses_two_different_objects(segsync: click.Group, tmp_path: Path) -> None:
    result = run_diff(segsync, tmp_path, CONTACTS, now=False)
    assert result.exit_code == 2
    assert "same object" in result.stderr


# --------------------------------------------------------------------------- validate


def test_validate_the_shipped_mappings(segsync: click.Group) -> None:
    result = run(segsync, "validate", ACCOUNTS, CONTACTS)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("ok  ") == 2


def test_validate_defaults_to_the_mappings_directory(
    segsync: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(templates.DIR)  # laid out as a project: mappings/*.toml
    result = run(segsync, "validate")
    assert result.exit_code == 0, result.output
    assert "accounts.toml" in result.stdout and "contacts.toml" in result.stdout


def test_validate_lists_every_problem(segsync: click.Group, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(
        ACCOUNTS.read_text(encoding="utf-8")
        .replace('{ attr = "employees", lt = 100 }', '{ attr = "employes", lt = 100 }')
        .replace('{ attr = "employees", gte = 200 }', '{ attr = "employees", gtee = 200 }'),
        encoding="utf-8",
    )
    result = run(segsync, "validate", broken, ACCOUNTS)
    assert result.exit_code == 2
    assert "ok  " in result.stdout and "accounts.toml" in result.stdout
    assert "broken.toml" in result.stderr
    assert "employes" in result.stderr and "gtee" in result.stderr
    assert "2 problems found" in result.stderr
    assert "Traceback" not in result.output


def test_validate_checks_the_config(segsync: click.Group, tmp_path: Path) -> None:
    good = tmp_path / "config.toml"
    good.write_text(f'[sync]\nmappings = ["{ACCOUNTS.as_posix()}"]\n', encoding="utf-8")
    result = run(segsync, "validate", "--config", good)
    assert result.exit_code == 0, result.output
    assert "config.toml" in result.stdout and "accounts.toml" in result.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text("[sync]\nmax_change_share = 7\nnot_a_setting = 1\n", encoding="utf-8")
    result = run(segsync, "validate", "--config", bad, ACCOUNTS)
    assert result.exit_code == 2
    assert "max_change_share" in result.stderr and "not_a_setting" in result.stderr


# --------------------------------------------------------------------------- real command


def test_segsync_console_command(tmp_path: Path) -> None:
    if "preview" not in cli_module.cli.commands:
        pytest.skip("the offline commands are not registered in connector.cli yet")
    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    env = {**os.environ, "NO_COLOR": "1"}
    code = "from connector.cli import main; main()"
    ok = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "preview",
            "-m",
            str(ACCOUNTS),
            "-i",
            str(export),
            "--crm",
            "salesforce",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["records"] == len(SF_ROWS)
    broken = tmp_path / "broken.toml"
    broken.write_text('object = "acount"\n', encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, "-c", code, "validate", str(broken)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "broken.toml" in bad.stderr and "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- contacts with accounts


def contact_rows() -> list[dict[str, Any]]:
    return [
        {
            "Id": "003A00000000001AAA",
            "AccountId": SF_ROWS[0]["Id"],
            "Title": "CFO",
            "Seniority__c": "Executive",
            "Segsync_Lock__c": False,
        },
        {
            "Id": "003A00000000002AAA",
            "AccountId": SF_ROWS[2]["Id"],
            "Title": "Data Analyst",
            "Seniority__c": "Individual Contributor",
            "Segsync_Lock__c": False,
        },
        {
            "Id": "003A00000000003AAA",
            "AccountId": "001A0000000000XAAA",
            "Title": "VP Sales",
            "Seniority__c": None,
            "Segsync_Lock__c": False,
        },
    ]


def test_preview_contacts_inherit_from_the_accounts_export(
    segsync: click.Group, accounts_engine: Engine, tmp_path: Path
) -> None:
    accounts = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    contacts = tmp_path / "contacts.jsonl"
    rows = contact_rows()
    contacts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.csv"
    doc = json_out(
        run(
            segsync,
            "preview",
            "-m",
            CONTACTS,
            "-i",
            contacts,
            "--crm",
            "salesforce",
            "--accounts",
            accounts,
            "--now",
            "2026-11-01",
            "--out",
            out,
            "--format",
            "json",
        )
    )
    with out.open(encoding="utf-8", newline="") as fh:
        written = {w["id"]: w for w in csv.DictReader(fh)}
    for contact, account in ((rows[0], SF_ROWS[0]), (rows[1], SF_ROWS[2])):
        parent = accounts_engine.evaluate(account, "salesforce", NOW)
        assert (written[contact["Id"]]["segment"], written[contact["Id"]]["tier"]) == (
            parent.segment,
            parent.tier,
        )
    # The contact whose account is not in the export is reported.
    assert any("1 contact with no account" in w["message"] for w in doc["warnings"])
    assert doc["accounts"] == str(accounts)

    without = json_out(
        run(
            segsync,
            "preview",
            "-m",
            CONTACTS,
            "-i",
            contacts,
            "--crm",
            "salesforce",
            "--format",
            "json",
        )
    )
    assert any("--accounts" in w["message"] for w in without["warnings"])


def test_explain_contact_with_its_account(
    segsync: click.Group, accounts_engine: Engine, tmp_path: Path
) -> None:
    accounts = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    contacts = tmp_path / "contacts.jsonl"
    rows = contact_rows()
    contacts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    doc = json_out(
        run(
            segsync,
            "explain",
            "-m",
            CONTACTS,
            "-i",
            contacts,
            "--crm",
            "salesforce",
            "--accounts",
            accounts,
            "--id",
            rows[0]["Id"],
            "--now",
            "2026-11-01",
            "--format",
            "json",
        )
    )
    parent = accounts_engine.evaluate(SF_ROWS[0], "salesforce", NOW)
    assert doc["account"]["id"] == SF_ROWS[0]["Id"]
    assert (doc["account"]["segment"], doc["account"]["tier"]) == (parent.segment, parent.tier)

    orphan = run(
        segsync,
        "explain",
        "-m",
        CONTACTS,
        "-i",
        contacts,
        "--crm",
        "salesforce",
        "--accounts",
        accounts,
        "--id",
        rows[2]["Id"],
    )
    assert orphan.exit_code == 2
    assert "001A0000000000XAAA" in orphan.stderr


def test_accounts_option_needs_a_contact_mapping(segsync: click.Group, tmp_path: Path) -> None:
    accounts = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS)
    result = run(
        segsync,
        "preview",
        "-m",
        ACCOUNTS,
        "-i",
        accounts,
        "--crm",
        "salesforce",
        "--accounts",
        accounts,
    )
    assert result.exit_code == 2
    assert "contact mappings" in result.stderr


def test_progress_scan_yields_every_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from connector.commands.exports import ExportReader
    from connector.commands.offline import _Scan

    export = write_sf_csv(tmp_path / "accounts.csv", SF_ROWS * 1000)
    with ExportReader(export) as reader:
        assert sum(1 for _ in _Scan(reader, show_progress=True)) == len(SF_ROWS) * 1000
    with ExportReader(export) as reader:
        assert sum(1 for _ in _Scan(reader, show_progress=False)) == len(SF_ROWS) * 1000
    assert capsys.readouterr().out == ""
