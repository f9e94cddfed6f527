"""`segsync demo` end to end as a user runs it, and the commands without the sandbox extra."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from segsync_sandbox import data
from segsync_sandbox.launcher import lead_count

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 120


def _segsync(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("SEGSYNC_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _rows(section: str) -> dict[tuple[str, str], list[int]]:
    """The run table of one demo step: (crm, object) → its numeric columns."""
    rows: dict[tuple[str, str], list[int]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)]
        if len(cells) == 9 and cells[0] in ("salesforce", "hubspot"):
            rows[(cells[0], cells[1])] = [int(c.replace(",", "")) for c in cells[2:8]]
    return rows


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    done = _segsync("demo", "--accounts", str(ACCOUNTS), "--dir", str(workdir), cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in out + done.stderr
    assert done.stderr == ""

    provisioned = re.search(r"Provisioned (\d+) output fields", out)
    assert provisioned is not None and int(provisioned.group(1)) > 0
    full, rest = out.split("2. Someone edits", 1)
    incremental, landed = rest.split("3. What landed", 1)
    landed, lists = landed.split("4. Native lists", 1)
    lists, deals = lists.split("5. Deals, read-only", 1)

    # 1. The full sync read and wrote every account in both CRMs, with no failure.
    first = _rows(full.split("1. Full sync", 1)[1])
    assert set(first) == {
        (crm, obj) for crm in ("salesforce", "hubspot") for obj in ("account", "contact")
    } | {("salesforce", "lead")}
    for (_, obj), (read, changed, written, failed, calls, minimum) in first.items():
        assert failed == 0 and written == changed and calls >= minimum > 0
        if obj == "account":
            assert read == ACCOUNTS and written == ACCOUNTS
    # Every unconverted lead of the dataset, none of the converted ones.
    open_leads = sum(
        1 for lead in data.leads(42, ACCOUNTS, lead_count(ACCOUNTS)) if not lead.converted
    )
    assert first[("salesforce", "lead")][0] == first[("salesforce", "lead")][2] == open_leads

    # 2. The incremental sync picked up exactly the five edits in each CRM.
    second = _rows(incremental)
    assert set(second) == {("salesforce", "account"), ("hubspot", "account")}
    for _read, changed, written, failed, _calls, _minimum in second.values():
        assert (changed, written, failed) == (5, 5, 0)

    # 3. Read back through the APIs: every account carries a tier, in both CRMs.
    totals = {"salesforce": 0, "hubspot": 0}
    for line in landed.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)]
        if len(cells) == 3 and cells[0].startswith("Tier "):
            totals["salesforce"] += int(cells[1].replace(",", ""))
            totals["hubspot"] += int(cells[2].replace(",", ""))
    assert totals == {"salesforce": ACCOUNTS, "hubspot": ACCOUNTS}
    # Salesforce leads read back by tier (two columns): every unconverted lead has one.
    lead_tiers = 0
    for line in landed.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)]
        if len(cells) == 2 and cells[0].startswith("Tier "):
            lead_tiers += int(cells[1].replace(",", ""))
    assert lead_tiers == open_leads
    assert "lead personas: Economic Buyer" in landed
    # The edited accounts (4,200 employees, software) now read back as Enterprise SaaS.
    edited = re.findall(r"^  (\S+) .*: (.+) / (Tier \d)$", landed, flags=re.MULTILINE)
    assert len(edited) == 4
    assert {segment for _, segment, _ in edited} == {"Enterprise SaaS"}

    # 4. The lists provisioning made hold, read back through each CRM, every account once
    # among the tier lists and once among the segment lists.
    assert re.search(r"and (\d+) native lists", out) is not None
    members = {("Tier", 0): 0, ("Tier", 1): 0, ("Segment", 0): 0, ("Segment", 1): 0}
    for line in lists.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)]
        kind = cells[0].split(":", 1)[0]
        if len(cells) == 3 and kind in ("Tier", "Segment"):
            for i in (0, 1):
                members[(kind, i)] += int(cells[1 + i].replace(",", ""))
    assert set(members.values()) == {ACCOUNTS}, members
    # Contacts' and leads' lists too; the lead tier views hold every unconverted lead.
    assert re.search(r"hubspot: also \d+ contact lists", lists) is not None
    lead_lists = re.search(r"salesforce: also .*?(\d+) lead lists \(([\d,]+) leads", lists)
    assert lead_lists is not None and int(lead_lists.group(1)) > 0
    assert int(lead_lists.group(2).replace(",", "")) == open_leads

    # 5. The deals were read in both CRMs, and the demo ends with the outcomes table.
    assert "salesforce deals (full, succeeded, read-only)" in deals
    assert "hubspot deals (full, succeeded, read-only)" in deals
    table = deals.split("Outcomes by tier", 1)[1]
    tiers = [c.split("│")[0].strip() for c in table.splitlines() if c.strip().startswith("Tier ")]
    assert tiers == ["Tier 1", "Tier 2", "Tier 3"]
    assert "Rule lift" in table

    # What it leaves behind works: the config and the state store it names.
    config = workdir / "config.toml"
    status = _segsync("status", "--config", str(config), "--format", "json", cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    runs = json.loads(status.stdout)
    assert "Traceback" not in status.stderr
    assert runs, "the demo's runs are in its state store"


_WITHOUT_SANDBOX_EXTRA = """
import sys
sys.modules["trustme"] = None  # as if the `sandbox` extra were not installed
from connector.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("args", [["demo", "--accounts", "5"], ["sandbox", "--help"]])
def test_without_the_sandbox_extra_one_line_says_how_to_install_it(
    tmp_path: Path, args: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SANDBOX_EXTRA, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'segsync[sandbox]'" in lines[0]
    assert lines[0].startswith(f"error: segsync {args[0]} ")


def test_without_the_sandbox_extra_the_other_commands_work(tmp_path: Path) -> None:
    listing = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SANDBOX_EXTRA, "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^\s+demo\s+\(needs the sandbox extra", listing.stdout, re.MULTILINE)
    assert re.search(r"^\s+validate\s", listing.stdout, re.MULTILINE)
