"""A held-out style messy lead export through ``segsync preview``, on a hand-checked golden set.

``connector/samples/salesforce_leads.csv`` is what a Salesforce lead export
looks like after years of web forms and list imports: a UTF-8 byte order mark
and CRLF line ends, one row saved in Latin-1 (unreadable: reported and
skipped), blanks, numbers typed as ``1,200``, ``$75,000,000``, ``USD
2,000,000,000``, ``12.5`` employees, ``n/a`` and European ``1.000,50``,
industries and countries in several spellings, titles in several forms, and
one converted lead (left out: sync never reads one). The expected segment
and persona of every row was worked out by hand from the shipped
``mappings/leads.toml``, not by running the engine.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from connector import templates
from connector.cli import cli

SAMPLE = templates.SAMPLES / "salesforce_leads.csv"

# id → (segment, persona), by hand: see the module docstring.
GOLDEN = {
    # "VP Sales", SaaS, "1,200" people: Software ≥ 1000; VP → sponsor.
    "00Q000000000001EAA": ("Enterprise SaaS", "Executive Sponsor"),
    # "v.p. of engineering", Computer Software, 450: engineering is tested before VP.
    "00Q000000000002EAA": ("Mid-Market Tech", "Technical Evaluator"),
    # "Vice President, Sales", Banking, 250.
    "00Q000000000003EAA": ("Financial Services", "Executive Sponsor"),
    # "Chief Financial Officer", Insurance, no headcount: no segment rule can hold.
    "00Q000000000004EAA": ("Everyone else", "Economic Buyer"),
    # "dir. procurement", Manufacturing, 80.
    "00Q000000000005EAA": ("SMB", "Economic Buyer"),
    # "Sr. Software Eng.", "12.5" employees is no whole number: blank.
    "00Q000000000006EAA": ("Everyone else", "Technical Evaluator"),
    # "IT mgr", Technology, "n/a" employees, "1.000,50" revenue: both blank.
    "00Q000000000007EAA": ("Everyone else", "Technical Evaluator"),
    # "  HEAD OF MARKETING ", Retail, 35.
    "00Q000000000008EAA": ("SMB", "End User"),
    # "Founder & CEO", no industry, 8.
    "00Q000000000009EAA": ("SMB", "Executive Sponsor"),
    # No title, Software, 5000.
    "00Q00000000000AEAA": ("Enterprise SaaS", "Other"),
    # "Student", Higher Education, 20000: education is in no segment.
    "00Q00000000000BEAA": ("Everyone else", "Other"),
    # "Account Executive", " software ", 999.
    "00Q00000000000CEAA": ("Mid-Market Tech", "End User"),
    # "CTO", Telecommunications, 150.
    "00Q00000000000EEAA": ("Mid-Market Tech", "Technical Evaluator"),
}


def test_messy_lead_export_preview_matches_the_golden_set(tmp_path: Path) -> None:
    out = tmp_path / "assigned.csv"
    args = ["preview", "--mapping", str(templates.LEADS), "--input", str(SAMPLE)]
    args += ["--crm", "salesforce", "--now", "2026-11-15", "--out", str(out), "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert {i: (r["segment"], r["persona"]) for i, r in rows.items()} == GOLDEN

    # Two hand-worked tiers. 01: fit 30 (≥ 1000) + 20 (software) + 10 (USA)
    # + 10 (website) + 10 (VP) = 80 and Enterprise SaaS: the Tier 1 rule.
    assert (rows["00Q000000000001EAA"]["fit_score"], rows["00Q000000000001EAA"]["tier"]) == (
        "80",
        "Tier 1",
    )
    # 05: fit 10 (80 people) + 10 (Deutschland) + 10 ("dir.") = 30, medium;
    # engagement 20 (warm) + 30 + 10 (active 30 Oct) = 60, hot: Tier 1.
    five = rows["00Q000000000005EAA"]
    assert (five["fit_score"], five["engagement_score"], five["tier"]) == ("30", "60", "Tier 1")

    # The Latin-1 row is reported by line and skipped; the converted lead is left out.
    assert [b["line"] for b in doc["bad_rows"]["listed"]] == [14]
    notices = " ".join(n["message"] for n in doc["warnings"])
    assert "1 converted lead left out" in notices


def test_explain_and_diff_read_the_messy_lead_export(tmp_path: Path) -> None:
    base = ["--crm", "salesforce", "--now", "2026-11-15", "--format", "json"]
    # The 15-character id, as the address bar shows it.
    explained = CliRunner().invoke(
        cli,
        [
            "explain",
            "-m",
            str(templates.LEADS),
            "-i",
            str(SAMPLE),
            "--id",
            "00Q000000000005",
            *base,
        ],
    )
    assert explained.exit_code == 0, explained.output
    doc = json.loads(explained.stdout)
    assert doc["id"] == "00Q000000000005EAA" and doc["object"] == "lead"
    got = doc["explanation"]["assignment"]
    assert (got["segment"], got["tier"], got["persona"]) == ("SMB", "Tier 1", "Economic Buyer")
    assert got["scores"] == {"fit": 30, "engagement": 60}

    # SMB from under 100 people to under 50: only the 80-person lead moves.
    after = tmp_path / "leads.toml"
    after.write_text(
        templates.LEADS.read_text()
        .replace(
            'when = { attr = "employees", lt = 100 }', 'when = { attr = "employees", lt = 50 }'
        )
        .replace('version = "2026-11-a"', 'version = "2026-11-b"')
    )
    moved = CliRunner().invoke(
        cli,
        ["diff", "--before", str(templates.LEADS), "--after", str(after), "-i", str(SAMPLE), *base],
    )
    assert moved.exit_code == 0, moved.output
    report = json.loads(moved.stdout)
    text = json.dumps(report)
    assert "00Q000000000005EAA" in text
    assert "00Q00000000000FEAA" not in text  # the converted lead is left out
    assert "1 converted lead left out" in text
