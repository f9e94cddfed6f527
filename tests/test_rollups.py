"""Rollup attributes: account attributes computed from the account's deals (issue 12).

The engine stays pure: the deals and the run time come in as arguments. The
offline commands read them from a deals export (``--deals FILE``).
"""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import cli
from connector.commands.deals_file import FileDeal, read_deals
from connector.engine import compile_mapping
from connector.errors import MappingError
from connector.mapping import loads_mapping

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

MAPPING = """
object = "account"
version = "r-1"

[attributes.employees]
type = "integer"
salesforce = "NumberOfEmployees"
hubspot = "numberofemployees"

[attributes.won_amount_12m]
description = "Closed-won amount in the last 12 months."
rollup = { sum = "amount", stage = "won", within_days = 365 }

[attributes.open_pipeline]
rollup = { sum = "amount", stage = "open" }

[attributes.won_deals]
type = "integer"
rollup = { count = "deals", stage = "won" }

[attributes.biggest_win]
rollup = { max = "amount", stage = "won" }

[attributes.last_won]
rollup = { latest = "closed", stage = "won" }

[attributes.days_since_win]
rollup = { days_since = "closed", stage = "won" }

[attributes.new_business_lost]
rollup = { count = "deals", stage = "lost", type = ["New Business"], pipeline = "default" }

[[segments]]
name = "Customer"
when = { attr = "won_deals", gte = 1 }

[[segments]]
name = "Prospect"
default = true

[scores.value]
rules = [
  { points = 60, label = "won ≥ 100k", when = { attr = "won_amount_12m", gte = 100_000 } },
  { points = 20, label = "open pipeline ≥ 50k", when = { attr = "open_pipeline", gte = 50_000 } },
  { points = 20, label = "won ≤ 90 days", when = { attr = "last_won", within_days = 90 } },
]

[[tiers]]
name = "Tier 1"
when = { score = "value", gte = 60 }

[[tiers]]
name = "Tier 2"
default = true

[outputs.salesforce]
segment = "Segsync_Segment__c"
tier = "Segsync_Tier__c"
"""


def deal(
    i: int,
    stage: str,
    amount: float | None,
    created_days: int,
    closed_days: int | None,
    pipeline: str = "default",
    kind: str = "New Business",
) -> FileDeal:
    return FileDeal(
        id=f"D{i}",
        account_id="A",
        is_closed=stage != "open",
        is_won=stage == "won",
        amount=amount,
        created_at=NOW - timedelta(days=created_days),
        closed_at=None if closed_days is None else NOW - timedelta(days=closed_days),
        pipeline=pipeline,
        type=kind,
    )


def independent(deals: list[FileDeal]) -> dict[str, Any]:
    """The rollups above, computed by hand over the deals (not by the engine)."""
    won = [d for d in deals if d.is_closed and d.is_won]
    won_12m = [d for d in won if d.closed_at and NOW - timedelta(days=365) <= d.closed_at <= NOW]
    open_ = [d for d in deals if not d.is_closed]
    won_dates = [d.closed_at for d in won if d.closed_at]
    last = max(won_dates).date() if won_dates else None
    return {
        "won_amount_12m": sum(d.amount for d in won_12m if d.amount is not None),
        "open_pipeline": sum(d.amount for d in open_ if d.amount is not None),
        "won_deals": len(won),
        "biggest_win": max((d.amount for d in won if d.amount is not None), default=None),
        "last_won": last,
        "days_since_win": (NOW.date() - last).days if last else None,
        "new_business_lost": sum(
            1
            for d in deals
            if d.is_closed and not d.is_won and d.type == "New Business" and d.pipeline == "default"
        ),
    }


def test_rollups_equal_an_independent_computation() -> None:
    engine = compile_mapping(loads_mapping(MAPPING, "r.toml"))
    rng = random.Random(12)
    for trial in range(200):
        deals = []
        for i in range(rng.randint(0, 8)):
            stage = rng.choice(["won", "lost", "open"])
            created = rng.randint(0, 900)
            closed = None if stage == "open" else rng.randint(-5, created)  # a few in the future
            deals.append(
                deal(
                    i,
                    stage,
                    rng.choice([None, 1_000.0, 40_000.0, 75_000.5, 150_000.0]),
                    created,
                    closed,
                    rng.choice(["default", "renewals"]),
                    rng.choice(["New Business", "Renewal"]),
                )
            )
        fields = engine.with_deals({"NumberOfEmployees": 10}, deals, NOW)
        e = engine.explain({"NumberOfEmployees": 10}, "salesforce", NOW, deals=deals)
        got = {t.name: t.value for t in e.attributes if t.name != "employees"}
        assert got == independent(deals), (trial, deals)
        a = engine.evaluate(fields, "salesforce", NOW)
        assert a == e.assignment
        want = independent(deals)
        # within_days: up to today, not beyond (a close date in the future is not "within")
        recent = want["last_won"] is not None and 0 <= want["days_since_win"] <= 90
        value = 60 * (want["won_amount_12m"] >= 100_000) + 20 * (want["open_pipeline"] >= 50_000)
        value += 20 * recent
        assert a.scores["value"] == value
        assert a.segment == ("Customer" if want["won_deals"] else "Prospect")


def test_explain_lists_the_deals_behind_each_rollup() -> None:
    engine = compile_mapping(loads_mapping(MAPPING, "r.toml"))
    deals = [
        deal(1, "won", 120_000.0, 200, 30),
        deal(2, "won", 5_000.0, 900, 500),
        deal(3, "open", 60_000.0, 10, None),
        deal(4, "lost", 9_000.0, 100, 50),
    ]
    e = engine.explain({"NumberOfEmployees": 10}, "salesforce", NOW, deals=deals)
    traces = {t.name: t for t in e.attributes}
    assert traces["won_amount_12m"].deals == ("D1",)
    assert traces["won_deals"].deals == ("D1", "D2")
    assert traces["open_pipeline"].deals == ("D3",)
    assert traces["last_won"].value == (NOW - timedelta(days=30)).date()
    text = e.render()
    assert "rollup: sum of amount · won deals · closed in the last 365 days" in text
    assert "from 1 deal: D1" in text
    assert e.assignment.tier == "Tier 1"  # 60 (won 120k) + 20 (open 60k) + 20 (won 30 days ago)
    assert e.to_dict()["attributes"][1]["deals"] == ["D1"]


def problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as info:
        loads_mapping(text, "r.toml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '{ sum = "amount", stage = "open" }',
            '{ sum = "amount", stage = "opne" }',
            "r.toml: attributes.open_pipeline.rollup.stage: stage must be one of won, lost, open, "
            "closed, any, not 'opne' (did you mean 'open'?)",
        ),
        (
            '{ sum = "amount", stage = "open" }',
            '{ sum = "amount", count = "deals" }',
            "r.toml: attributes.open_pipeline.rollup: a rollup needs exactly one of",
        ),
        (
            '{ sum = "amount", stage = "open" }',
            '{ sum = "Amount__c" }',
            'r.toml: attributes.open_pipeline.rollup.sum: sum = "amount" is the deal field',
        ),
        (
            '{ latest = "closed", stage = "won" }',
            '{ latest = "closd", stage = "won" }',
            "r.toml: attributes.last_won.rollup.latest: latest reads a deal date",
        ),
        (
            "within_days = 365 }",
            "within_days = 0 }",
            "r.toml: attributes.won_amount_12m.rollup.within_days: within_days must be a whole",
        ),
        (
            "within_days = 365 }",
            "within = 365 }",
            "r.toml: attributes.won_amount_12m.rollup.within",
        ),
        (
            'type = "integer"\nrollup = { count',
            'type = "date"\nrollup = { count',
            "r.toml: attributes.won_deals.type: a count rollup is integer, not 'date'",
        ),
        (
            "[attributes.open_pipeline]\n",
            '[attributes.open_pipeline]\nsalesforce = "X__c"\n',
            "r.toml: attributes.open_pipeline.salesforce: a rollup attribute is computed",
        ),
        (
            'object = "account"',
            'object = "contact"',
            "r.toml: attributes.won_amount_12m.rollup: rollups are computed from an account's",
        ),
    ],
)
def test_bad_rollups_name_file_table_and_key(old: str, new: str, expected: str) -> None:
    assert old in MAPPING
    found = problems(MAPPING.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_rollup_attributes_read_no_crm_field() -> None:
    engine = compile_mapping(loads_mapping(MAPPING, "r.toml"))
    assert engine.input_fields("salesforce") == ("NumberOfEmployees",)
    assert engine.rollups == (
        "won_amount_12m",
        "open_pipeline",
        "won_deals",
        "biggest_win",
        "last_won",
        "days_since_win",
        "new_business_lost",
    )


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_deals_file_with_bad_rows_is_read_and_reported_never_fatal(tmp_path: Path) -> None:
    deals = write_csv(
        tmp_path / "deals.csv",
        [
            {
                "Id": "006A",
                "AccountId": "001000000000001",
                "IsClosed": "true",
                "IsWon": "true",
                "Amount": "1,200.50",
                "CreatedDate": "2026-01-05T10:00:00Z",
                "CloseDate": "2026-03-01",
            },
            {"Id": "006B", "AccountId": "", "IsClosed": "false", "CreatedDate": "2026-01-05"},
            {
                "Id": "006C",
                "AccountId": "001000000000001",
                "stage": "negotiating",
                "CreatedDate": "2026-01-05",
            },
            {
                "Id": "006D",
                "AccountId": "001000000000001",
                "IsClosed": "false",
                "Amount": "lots",
                "CreatedDate": "2026-02-05",
            },
            {
                "Id": "006E",
                "AccountId": "001000000000001",
                "IsClosed": "true",
                "IsWon": "false",
                "CreatedDate": "not a date",
            },
        ],
    )
    read = read_deals(deals, "salesforce")
    assert read.count == 2
    (account,) = read.by_account
    assert [d.id for d in read.by_account[account]] == ["006A", "006D"]
    assert read.by_account[account][0].amount == 1200.5
    assert read.by_account[account][1].amount is None
    joined = "\n".join(read.problems)
    assert "006B has no account" in joined
    assert "006C is in unknown stage 'negotiating'" in joined
    assert "006D amount 'lots' is not a number: kept without one" in joined
    assert "006E has no readable creation date" in joined
    assert read.problem_count == 4


def test_preview_and_explain_compute_rollups_from_a_deals_file(tmp_path: Path) -> None:
    mapping = tmp_path / "accounts.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    accounts = write_csv(
        tmp_path / "accounts.csv",
        [
            {"Id": "001000000000001AAA", "NumberOfEmployees": "10"},
            {"Id": "001000000000002AAA", "NumberOfEmployees": "20"},
        ],
    )
    deals = write_csv(
        tmp_path / "deals.csv",
        [
            # a 15-character account id links to the 18-character one of the account export
            {
                "Id": "006A",
                "AccountId": "001000000000001",
                "IsClosed": "true",
                "IsWon": "true",
                "Amount": "150000",
                "CreatedDate": "2026-01-05",
                "CloseDate": "2026-10-01",
            },
            {
                "Id": "006B",
                "AccountId": "001000000000002",
                "IsClosed": "true",
                "IsWon": "false",
                "Amount": "90000",
                "CreatedDate": "2026-01-05",
                "CloseDate": "2026-10-01",
            },
            {"Id": "006C", "AccountId": "", "IsClosed": "false", "CreatedDate": "2026-01-05"},
        ],
    )
    runner = CliRunner()
    base = ["-m", str(mapping), "-i", str(accounts), "--crm", "salesforce", "--now", "2026-11-22"]
    result = runner.invoke(cli, ["preview", *base, "--deals", str(deals), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    tiers = {t["name"]: t["count"] for t in doc["tiers"]}
    assert tiers == {"Tier 1": 1, "Tier 2": 1}
    assert any("006C has no account" in w["message"] for w in doc["warnings"])
    # without the deals file the rollups are blank, and the command says so
    result = runner.invoke(cli, ["preview", *base, "--format", "json"])
    doc = json.loads(result.stdout)
    assert {t["name"]: t["count"] for t in doc["tiers"]} == {"Tier 1": 0, "Tier 2": 2}
    assert any("pass --deals FILE" in w["message"] for w in doc["warnings"])
    result = runner.invoke(
        cli, ["explain", *base, "--id", "001000000000001AAA", "--deals", str(deals)]
    )
    assert result.exit_code == 0, result.output
    assert "from 1 deal: 006A" in result.stdout
    assert "Tier: 'Tier 1'" in result.stdout
    missing = runner.invoke(cli, ["preview", *base, "--deals", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2
    assert "nope.csv: file not found (--deals)" in missing.stderr
    assert "Traceback" not in missing.output


def test_parity_refuses_rollups_in_one_line_each(tmp_path: Path) -> None:
    """Parity compares two CRMs without their deals: every rollup attribute is refused.

    (A deal-type filter runs live since deal syncs keep the type:
    tests/test_deal_type_live.py.)
    """
    mapping = tmp_path / "accounts.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[sync]\nmappings = ["{mapping.as_posix()}"]\n\n'
        '[connections.hs]\ncrm = "hubspot"\naccess_token = "pat-na1-x"\n',
        encoding="utf-8",
    )
    parity = CliRunner().invoke(cli, ["parity", "--config", str(config)])
    assert parity.exit_code == 2, parity.output
    assert "attributes.won_amount_12m.rollup: rollup attributes are computed from the deals" in (
        parity.stderr
    )
    assert "attributes.new_business_lost.rollup: rollup attributes are computed" in (parity.stderr)
    assert "Traceback" not in parity.output


def _won(deal_id: str, amount: float, closed: datetime) -> FileDeal:
    return FileDeal(
        deal_id, "a1", True, True, amount, closed - timedelta(days=30), closed, None, None
    )


def test_time_alone_makes_an_account_with_rollups_due() -> None:
    """due_at: a won deal leaving the 12-month window, a last win growing older than 90 days."""
    engine = compile_mapping(loads_mapping(MAPPING, "r.toml"))
    fields = {"NumberOfEmployees": 10}
    # Won 120,000 exactly 300 days ago: Tier 1 (60 points) until it leaves the window.
    closed = NOW - timedelta(days=300)
    a = engine.assign_with_deals(fields, [_won("d1", 120_000, closed)], "salesforce", NOW)
    assert a.tier == "Tier 1" and a.scores["value"] == 60
    assert a.due_at == closed + timedelta(days=365, microseconds=1)
    # Just before, nothing has changed; at due_at the tier has.
    just_before = engine.assign_with_deals(
        fields, [_won("d1", 120_000, closed)], "salesforce", a.due_at - timedelta(seconds=1)
    )
    assert just_before.tier == "Tier 1"
    at_due = engine.assign_with_deals(fields, [_won("d1", 120_000, closed)], "salesforce", a.due_at)
    assert at_due.tier == "Tier 2" and at_due.scores["value"] == 0 and at_due.due_at is None

    # Another account on the same decisions and deal dates gets the very same dated
    # assignment (the planner's per-assignment cache hits for it), not a copy per record.
    again = engine.assign_with_deals(
        {"NumberOfEmployees": 10}, [_won("d9", 120_000, closed)], "salesforce", NOW
    )
    assert again is a

    # A small win 10 days ago: 20 points (won within 90 days) until day 91 starts.
    recent = NOW - timedelta(days=10)
    b = engine.assign_with_deals(fields, [_won("d2", 1_000, recent)], "salesforce", NOW)
    assert b.scores["value"] == 20
    day_91 = datetime.combine(recent.date() + timedelta(days=91), datetime.min.time(), UTC)
    assert b.due_at == day_91
    assert (
        engine.assign_with_deals(fields, [_won("d2", 1_000, recent)], "salesforce", day_91).scores[
            "value"
        ]
        == 0
    )

    # No deals, or deals that no window reads: never due.
    assert engine.assign_with_deals(fields, [], "salesforce", NOW).due_at is None


def test_a_days_since_test_is_due_when_the_count_crosses_it() -> None:
    text = MAPPING.replace(
        '{ points = 20, label = "won ≤ 90 days", when = { attr = "last_won", within_days = 90 } },',
        '{ points = 20, label = "won ≤ 90 days", when = { attr = "days_since_win", lte = 90 } },',
    )
    assert text != MAPPING
    engine = compile_mapping(loads_mapping(text, "r.toml"))
    recent = NOW - timedelta(days=10)
    a = engine.assign_with_deals({}, [_won("d2", 1_000, recent)], "hubspot", NOW)
    assert a.scores["value"] == 20
    # days_since_win = 91 from the start of day recent + 91 (UTC): the test fails then.
    assert a.due_at == datetime.combine(
        recent.date() + timedelta(days=91), datetime.min.time(), UTC
    )
