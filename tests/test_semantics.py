"""The documented semantics (README, "How values are read and compared"), one test per rule.

Every case goes through the generated fast path and the explained slow path
(they must agree), and the command-level rules (ids, --now, locks in
preview) through the real `segsync` commands.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli
from connector.crm.ids import link_key, salesforce_id18, salesforce_suffix
from connector.engine import Engine, compile_mapping
from connector.errors import MappingError
from connector.mapping import loads_mapping
from connector.mapping.values import parse_boolean, parse_number

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

HEAD = """
object = "account"
version = "sem"
{top}

[attributes.s]
type = "string"
salesforce = "S"
hubspot = "s"
synonyms = {{ "Accounting" = "Finance" }}

[attributes.z]
type = "set"
salesforce = "Z"
hubspot = "z"

[attributes.n]
type = "number"
salesforce = "N"
hubspot = "n"

[attributes.i]
type = "integer"
salesforce = "I"
hubspot = "i"

[attributes.d]
type = "date"
salesforce = "D"
hubspot = "d"

[attributes.t]
type = "datetime"
salesforce = "T"
hubspot = "t"

[attributes.pin]
type = "boolean"
salesforce = "Pin"
hubspot = "pin"
blank = {{ value = false }}
"""


def engine_for(when: str, top: str = "") -> Engine:
    text = (
        HEAD.format(top=top)
        + f"""
[[segments]]
name = "Hit"
when = {when}

[[segments]]
name = "Miss"
default = true

[[tiers]]
name = "Only"
default = true
"""
    )
    return compile_mapping(loads_mapping(text, "sem.toml"))


def hit(engine: Engine, fields: dict[str, Any], now: datetime = NOW) -> bool:
    """The fast path's answer, checked against explain's."""
    fast = engine.evaluate(fields, "salesforce", now).segment == "Hit"
    slow = engine.explain(fields, "salesforce", now).segment.value == "Hit"
    assert fast is slow, "explain disagrees with evaluate"
    return fast


# -- text: case-insensitive after trimming -------------------------------------------


@pytest.mark.parametrize(
    ("when", "value", "expected"),
    [
        ('{ attr = "s", eq = "Finance" }', "finance", True),
        ('{ attr = "s", eq = "Finance" }', "  FINANCE ", True),
        ('{ attr = "s", eq = "Finance" }', "accounting", True),  # synonym, then compared
        ('{ attr = "s", eq = "finance" }', "Accounting", True),
        ('{ attr = "s", eq = "Finance" }', "Finances", False),
        ('{ attr = "s", eq = "Sales  Ops" }', "sales ops", True),
        ('{ attr = "s", ne = "Finance" }', "FINANCE", False),
        ('{ attr = "s", ne = "Finance" }', None, True),
        ('{ attr = "s", in = ["Finance", "IT"] }', "it", True),
        ('{ attr = "s", not_in = ["Finance", "IT"] }', "It", False),
        ('{ attr = "s", not_in = ["Finance", "IT"] }', "", True),
        ('{ attr = "s", contains = "FIN" }', "Head of finance", True),
        ('{ attr = "s", matches = "^fin" }', "FINANCE", True),
    ],
)
def test_text_compares_case_insensitively(when: str, value: Any, expected: bool) -> None:
    assert hit(engine_for(when), {"S": value}) is expected


@pytest.mark.parametrize(
    ("when", "value", "expected"),
    [
        ('{ attr = "z", contains = "AWS" }', "aws;Slack", True),
        ('{ attr = "z", contains_any = ["gcp", "Azure"] }', "GCP", True),
        ('{ attr = "z", contains_all = ["AWS", "SLACK"] }', "aws; slack ", True),
        ('{ attr = "z", contains_all = ["AWS", "Stripe"] }', "aws;slack", False),
    ],
)
def test_free_sets_compare_case_insensitively(when: str, value: str, expected: bool) -> None:
    assert hit(engine_for(when), {"Z": value}) is expected


def test_explain_keeps_the_record_s_casing() -> None:
    explanation = engine_for('{ attr = "s", eq = "Finance" }').explain(
        {"S": "  FINANCE  team"}, "salesforce", NOW
    )
    (trace,) = [a for a in explanation.attributes if a.name == "s"]
    assert trace.value == "FINANCE team"


# -- numbers ----------------------------------------------------------------------------

NUMBERS: list[tuple[str, int | float | None]] = [
    ("1200", 1200),
    (" 1200 ", 1200),
    ("-5", -5),
    ("+5", 5),
    ("3.5", 3.5),
    (".5", 0.5),
    ("1e3", 1000),
    ("1,000", 1000),
    ("1,200,000.50", 1200000.5),
    ("45%", 45),
    ("$100000000", 100000000),
    ("$100,000,000", 100000000),
    ("-$5", -5),
    ("USD 1,200", 1200),
    ("1200 €", 1200),
    ("\u00a31,200.50", 1200.5),
    ("€1.000", None),  # a thousand or one euro? blank, not a guess
    ("1.000,50", None),
    ("1,5", None),
    ("1,00", None),
    ("1 000", None),
    ("1_000", None),
    ("(5)", None),
    ("$1e3", None),
    ("$5%", None),
    ("١٢", None),
    ("nan", None),
    ("inf", None),
    ("n/a", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_number_formats(text: str, expected: int | float | None) -> None:
    assert parse_number(text) == expected
    if expected is None:
        when = '{ attr = "n", missing = true }'
    else:
        when = f'{{ attr = "n", between = [{expected!r}, {expected!r}] }}'
    engine = engine_for(when)
    assert hit(engine, {"N": text})
    assert engine.evaluate({"n": text}, "hubspot", NOW).segment == "Hit"


@pytest.mark.parametrize(("text", "expected"), [("1,000", 1000), ("1e3", 1000), ("12.5", None)])
def test_integer_formats(text: str, expected: int | None) -> None:
    when = '{ attr = "i", missing = true }' if expected is None else '{ attr = "i", eq = 1000 }'
    assert hit(engine_for(when), {"I": text})


# -- booleans and the lock ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        (" Yes ", True),
        ("checked", True),
        ("ON", True),
        ("1", True),
        (1, True),
        ("f", False),
        ("unchecked", False),
        (0, False),
        ("maybe", None),
        (2, None),
    ],
)
def test_boolean_reading(raw: Any, expected: bool | None) -> None:
    assert parse_boolean(raw) is expected


@pytest.mark.parametrize(
    ("raw", "locked", "unreadable"),
    [
        (True, True, False),
        ("true", True, False),
        ("Yes", True, False),
        (False, False, False),
        ("false", False, False),
        (None, False, False),  # blank → the attribute's blank value (false)
        ("", False, False),
        ("maybe", True, True),  # fail safe
        ("2", True, True),
    ],
)
def test_the_lock_fails_safe(raw: Any, locked: bool, unreadable: bool) -> None:
    engine = engine_for('{ attr = "pin", eq = true }', top='lock = "pin"')
    reading = engine.lock_reading({"Pin": raw}, "salesforce")
    assert (reading.locked, reading.unreadable) == (locked, unreadable)
    assert engine.is_locked({"pin": "" if raw is None else str(raw)}, "hubspot") is locked
    lock = engine.explain({"Pin": raw}, "salesforce", NOW).to_dict()["lock"]
    assert lock["locked"] is locked
    # In a condition, an unreadable boolean is blank: blank → false here.
    assert hit(engine, {"Pin": raw}) is (parse_boolean(raw) is True)


def test_an_unreadable_lock_says_so_in_explain() -> None:
    engine = engine_for('{ attr = "pin", eq = true }', top='lock = "pin"')
    text = engine.explain({"Pin": "maybe"}, "salesforce", NOW).render()
    assert "lock: pin → locked" in text and "unreadable lock value 'maybe': kept locked" in text


def test_a_blank_lock_can_mean_locked() -> None:
    engine = engine_for('{ attr = "pin", eq = true }', top='lock = "pin"')
    text = HEAD.format(top='lock = "pin"').replace(
        "blank = { value = false }", "blank = { value = true }"
    )
    text += '[[segments]]\nname = "All"\ndefault = true\n[[tiers]]\nname = "T"\ndefault = true\n'
    strict = compile_mapping(loads_mapping(text, "strict.toml"))
    assert strict.is_locked({"Pin": ""}, "salesforce")
    assert not engine.is_locked({"Pin": ""}, "salesforce")


# -- dates, today and the time zone ---------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "value", "expected"),
    [
        ('{ attr = "d", within_days = 30 }', "2026-11-22", True),  # today
        ('{ attr = "d", within_days = 0 }', "2026-11-22", True),
        ('{ attr = "d", within_days = 0 }', "2026-11-21", False),
        ('{ attr = "d", within_days = 30 }', "2026-10-23", True),
        ('{ attr = "d", within_days = 30 }', "2026-10-22", False),
        ('{ attr = "d", within_days = 30 }', "2026-11-23", False),  # tomorrow: not yet
        ('{ attr = "d", within_days = 30 }', "2031-01-01", False),
        ('{ attr = "d", older_than_days = 30 }', "2026-10-22", True),
        ('{ attr = "d", older_than_days = 30 }', "2026-10-23", False),
        ('{ attr = "d", older_than_days = 30 }', "2027-01-01", False),  # future: not older
        ('{ attr = "t", within_days = 1 }', "2026-11-22T12:00:00Z", True),  # now
        ('{ attr = "t", within_days = 1 }', "2026-11-22T12:00:01Z", False),
        ('{ attr = "t", within_days = 1 }', "2026-11-21T12:00:00Z", True),
        ('{ attr = "t", older_than_days = 1 }', "2026-11-21T11:59:59Z", True),
        ('{ attr = "t", older_than_days = 1 }', "2026-12-21T11:59:59Z", False),
    ],
)
def test_future_values_are_neither_within_nor_older(when: str, value: str, expected: bool) -> None:
    field = "D" if '"d"' in when else "T"
    assert hit(engine_for(when), {field: value}) is expected


NEW_YORK = 'timezone = "America/New_York"'


def test_today_is_the_day_in_the_mapping_s_time_zone() -> None:
    utc = engine_for('{ attr = "d", within_days = 0 }')
    new_york = engine_for('{ attr = "d", within_days = 0 }', top=NEW_YORK)
    late = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # still the 22nd in New York
    assert hit(utc, {"D": "2026-11-23"}, late) and not hit(utc, {"D": "2026-11-22"}, late)
    assert hit(new_york, {"D": "2026-11-22"}, late)
    assert not hit(new_york, {"D": "2026-11-23"}, late)  # tomorrow there


def test_a_timestamp_in_a_date_attribute_is_its_day_in_the_zone() -> None:
    new_york = engine_for('{ attr = "d", eq = 2026-11-21 }', top=NEW_YORK)
    epoch_ms = str(int(datetime(2026, 11, 22, 3, 0, tzinfo=UTC).timestamp() * 1000))
    assert hit(new_york, {"D": "2026-11-22T03:00:00Z"})
    assert new_york.evaluate({"d": epoch_ms}, "hubspot", NOW).segment == "Hit"
    assert hit(new_york, {"D": "2026-11-21"})  # a plain date stays as written
    utc = engine_for('{ attr = "d", eq = 2026-11-22 }')
    assert hit(utc, {"D": "2026-11-22T03:00:00Z"})


def test_an_unknown_time_zone_is_a_mapping_problem() -> None:
    with pytest.raises(MappingError) as info:
        engine_for('{ attr = "d", within_days = 1 }', top='timezone = "Mars/Olympus"')
    assert "unknown time zone 'Mars/Olympus'" in str(info.value.problems[0])


# -- ids --------------------------------------------------------------------------------


def test_salesforce_ids_link_in_their_canonical_form() -> None:
    long_id = "001A0000001aBcDIAU"
    assert salesforce_suffix(long_id[:15]) == long_id[15:]
    assert salesforce_id18(long_id[:15]) == long_id
    assert salesforce_id18(long_id.lower()) == long_id  # lowered by a tool: restored
    assert salesforce_id18(long_id) == long_id
    assert link_key(long_id[:15], "salesforce") == link_key(long_id, "salesforce")
    # the 15-character form is case-sensitive: another case is another record
    assert link_key(long_id[:15].lower(), "salesforce") != link_key(long_id, "salesforce")
    assert link_key("not-an-id", "salesforce") == "not-an-id"
    assert link_key(" ", "salesforce") is None
    assert link_key("0123", "hubspot") == link_key(123.0, "hubspot") == "123"


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_preview_explain_and_diff_link_15_character_account_ids(tmp_path: Path) -> None:
    account_id = "001A0000001aBcDIAU"
    accounts = _write_csv(
        tmp_path / "accounts.csv",
        [
            {
                "Id": account_id,
                "Industry": "Software",
                "NumberOfEmployees": "5000",
                "Intent_Score__c": "90",
                "LastActivityDate": "2026-11-20",
            }
        ],
    )
    contacts = _write_csv(
        tmp_path / "contacts.csv",
        [
            {"Id": "003A0000000001AAA", "AccountId": account_id[:15], "Title": "CFO"},
            {"Id": "003A0000000002AAA", "AccountId": account_id.lower(), "Title": "CTO"},
            {"Id": "003A0000000003AAA", "AccountId": account_id, "Title": "VP Sales"},
        ],
    )
    common = ["--crm", "salesforce", "--accounts", accounts, "--now", "2026-11-22"]
    out = tmp_path / "out.csv"
    contacts_map = templates.CONTACTS
    preview = _invoke(
        "preview", "-m", contacts_map, "-i", contacts, *common, "--out", out, "--format", "json"
    )
    assert preview.exit_code == 0, preview.output
    doc = json.loads(preview.stdout)
    assert not [w for w in doc["warnings"] if "with no account" in w["message"]]
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    tiers = {row["tier"] for row in rows}
    assert len(tiers) == 1 and "from account" in rows[0]["reason"]
    for row in rows:
        explained = _invoke(
            "explain", "-m", contacts_map, "-i", contacts, "--id", row["id"], *common,
            "--format", "json",
        )  # fmt: skip
        assert explained.exit_code == 0, explained.output
        assert json.loads(explained.stdout)["explanation"]["assignment"]["tier"] == row["tier"]
    diff = _invoke(
        "diff", "--before", contacts_map, "--after", contacts_map, "-i", contacts, *common,
        "--format", "json",
    )  # fmt: skip
    assert diff.exit_code == 0, diff.output
    assert not [w for w in json.loads(diff.stdout)["warnings"] if "no account" in w["message"]]


def test_preview_reports_unreadable_locks(tmp_path: Path) -> None:
    export = _write_csv(
        tmp_path / "accounts.csv",
        [
            {"Id": "001A00000000001AAA", "Industry": "Software", "Segsync_Lock__c": "maybe"},
            {"Id": "001A00000000002AAA", "Industry": "Software", "Segsync_Lock__c": "false"},
            {"Id": "001A00000000003AAA", "Industry": "Software", "Segsync_Lock__c": ""},
        ],
    )
    out = tmp_path / "out.csv"
    result = _invoke(
        "preview", "-m", templates.ACCOUNTS, "-i", export, "--crm", "salesforce",
        "--out", out, "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    warnings = [w["message"] for w in json.loads(result.stdout)["warnings"]]
    assert any("1 record have a Segsync_Lock__c value" in w for w in warnings), warnings
    with out.open(encoding="utf-8") as fh:
        assert [r["locked"] for r in csv.DictReader(fh)] == ["true", "false", "false"]


# -- --now ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["sync", "preview"])
def test_a_bad_now_is_one_line(command: str, tmp_path: Path) -> None:
    args: list[str | Path] = [command, "--now", "next tuesday"]
    if command == "preview":
        args += ["-m", templates.ACCOUNTS, "-i", tmp_path / "x.csv"]
        args += ["--crm", "salesforce"]
    else:
        args += ["--dry-run", "--config", tmp_path / "missing.toml"]
    result = _invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        "error: --now: 'next tuesday' is not an ISO 8601 date or datetime "
        "(e.g. 2026-11-22, 2026-11-22T09:00:00Z or 2026-11-22T09:00:00-05:00)"
    )
    assert "Traceback" not in result.output


def test_now_needs_a_dry_run(tmp_path: Path) -> None:
    result = _invoke("sync", "--now", "2026-11-22", "--config", tmp_path / "missing.toml")
    assert result.exit_code == 2
    assert "error: --now: needs --dry-run" in result.stderr


def test_a_locked_account_passes_on_what_it_holds(tmp_path: Path) -> None:
    base = {"Industry": "Software", "NumberOfEmployees": "5000", "Intent_Score__c": "90"}
    accounts = _write_csv(
        tmp_path / "accounts.csv",
        [
            {"Id": "001A00000000001AAA", **base, "Segsync_Lock__c": "true",
             "Segsync_Segment__c": "SMB", "Segsync_Tier__c": "Tier 3"},
            {"Id": "001A00000000002AAA", **base, "Segsync_Lock__c": "maybe",
             "Segsync_Segment__c": "", "Segsync_Tier__c": ""},
            {"Id": "001A00000000003AAA", **base, "Segsync_Lock__c": "false",
             "Segsync_Segment__c": "SMB", "Segsync_Tier__c": "Tier 3"},
        ],
    )  # fmt: skip
    contacts = _write_csv(
        tmp_path / "contacts.csv",
        [
            {"Id": f"003A0000000000{n}AAA", "AccountId": f"001A0000000000{n}AAA", "Title": "CFO"}
            for n in (1, 2, 3)
        ],
    )
    common = ["--crm", "salesforce", "--accounts", accounts, "--now", "2026-11-22"]
    contacts_map = templates.CONTACTS
    out = tmp_path / "out.csv"
    result = _invoke("preview", "-m", contacts_map, "-i", contacts, *common, "--out", out)
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as fh:
        rows = {r["id"][:15]: r for r in csv.DictReader(fh)}
    computed = compile_mapping(loads_mapping(templates.ACCOUNTS.read_text()))
    fresh = computed.evaluate(base, "salesforce", datetime(2026, 11, 22, tzinfo=UTC))
    assert (rows["003A00000000001"]["segment"], rows["003A00000000001"]["tier"]) == (
        "SMB",
        "Tier 3",
    )  # locked: as the CRM holds it
    assert "no account" in rows["003A00000000002"]["reason"]  # locked and blank: own defaults
    assert (rows["003A00000000003"]["segment"], rows["003A00000000003"]["tier"]) == (
        fresh.segment,
        fresh.tier,
    )
    explained = _invoke(
        "explain", "-m", contacts_map, "-i", contacts, "--id", "003A00000000001AAA", *common
    )
    assert explained.exit_code == 0, explained.output
    assert (
        "SMB · Tier 3" in explained.output and "locked: as the CRM holds them" in explained.output
    )


@pytest.fixture
def sandbox_config(fresh_sandboxes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)  # the config names mappings/*.toml relative to the project
    config: Path = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    return config


def test_sync_dry_run_now_shows_a_run_at_that_instant(
    fresh_sandboxes: Any, sandbox_config: Path
) -> None:
    config = str(sandbox_config)
    scope = ["--config", config, "--crm", "hubspot", "--object", "account", "--format", "json"]
    assert _invoke("provision", "--config", config, "--crm", "hubspot").exit_code == 0
    first = _invoke("sync", *scope)
    assert first.exit_code == 0, first.output
    portal = fresh_sandboxes.hubspot.portal
    before = {r.id: r.props.get("segsync_tier") for r in portal.snapshot("companies")}

    today = json.loads(_invoke("sync", "--dry-run", *scope).stdout)
    assert today["now"] is None and today["runs"][0]["changed"] == 0

    # A year on, no account is "active ≤ 30 / 90 days" any more: tiers fall.
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)
    result = _invoke("sync", "--dry-run", "--now", later.isoformat(), "--force", *scope)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (run,) = doc["runs"]
    assert doc["now"] == later.isoformat()
    assert run["dry_run"] and run["changed"] > 0 and run["written"] == 0
    assert any(t["field"] == "segsync_tier" for t in run["transitions"])
    # Nothing was written.
    assert {r.id: r.props.get("segsync_tier") for r in portal.snapshot("companies")} == before
    text = _invoke("sync", "--dry-run", "--now", later.isoformat(), "--force", *scope[:-2])
    assert f"As of {later.isoformat()} (--now)" in text.stdout
