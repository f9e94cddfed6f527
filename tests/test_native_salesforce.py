"""Salesforce list views end to end: `segsync provision` keeps one per segment and tier.

Through the CLI, simple-salesforce (Metadata API over zeep, REST) and the
sandbox: after provision and a sync each list view's results are exactly the
records with its value; a second provision changes nothing; a view a person
edited is reported and left as the person left it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_native_hubspot import _config, _mappings
from test_sync_leads import lead_config

from connector.cli import cli
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
WRITES = {
    "metadata.createMetadata",
    "metadata.updateMetadata",
    "metadata.upsertMetadata",
    "metadata.deleteMetadata",
}


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _provision(config: Path, *extra: str) -> dict[str, Any]:
    result = _invoke(
        "provision", "--config", str(config), "--crm", "salesforce", "--format", "json", *extra
    )
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )


def _results(sf: Any, sobject: str, view_id: str) -> set[str]:
    """Every record id a list view shows, through REST results (2,000 a page)."""
    ids: set[str] = set()
    offset = 0
    while True:
        page = sf.restful(
            f"sobjects/{sobject}/listviews/{view_id}/results",
            params={"limit": 2000, "offset": offset},
        )
        for row in page["records"]:
            ids.update(c["value"] for c in row["columns"] if c["fieldNameOrPath"] == "Id")
        if page["done"]:
            return ids
        offset += page["size"]


def _writes(sandboxes: Sandboxes, since: int) -> list[str]:
    return [e.kind for e in sandboxes.salesforce.app.log.entries(since) if e.kind in WRITES]


def test_list_views_follow_the_definition_and_the_records(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    sandbox = fresh_sandboxes.salesforce
    dry = _provision(config, "--dry-run")
    planned = {r["name"] for r in dry["native"] if r["action"] == "create"}
    assert "Account.Segsync_Tier_Tier_1" in planned and "Contact.Segsync_Tier_Tier_1" in planned
    assert sandbox.app.listviews is not None and not sandbox.app.listviews.views()

    first = _provision(config)
    views = {r["name"]: r["id"] for r in first["native"] if r["action"] == "create"}
    assert views.keys() == planned and all(views.values())

    sync = _invoke("sync", "--config", str(config), "--crm", "salesforce", "--format", "json")
    assert sync.exit_code == 0, sync.output
    sf = sandbox.client()
    org = sandbox.org
    seen_members = 0
    for name, view_id in views.items():
        sobject = name.partition(".")[0]
        meta = sandbox.app.listviews.views()[name.lower()]
        field, _, value = meta.filters[0]
        expected = {r["Id"] for r in org.records(sobject) if r.get(field) == value}
        assert _results(sf, sobject, view_id) == expected, name
        seen_members += len(expected)
        assert "CORE.USERS.ALIAS" in meta.columns and "Segsync_Reason__c" in meta.columns
        assert meta.shared_to == {"allInternalUsers": ["true"]}
    assert seen_members > 0

    # A second provision changes nothing.
    mark = sandbox.app.log.entries()[-1].seq
    again = _provision(config)
    assert {r["action"] for r in again["native"]} == {"ok"}
    assert _writes(fresh_sandboxes, mark) == []

    # A person adds a filter to one view: reported, not overwritten.
    md = sf.mdapi
    # zeep keeps its own session: trust the sandbox CA there too.
    md._client.transport.session.verify = str(sandbox.ca_file)
    md._client.transport.session.trust_env = False
    tier1 = md.ListView.read(["Account.Segsync_Tier_Tier_1"])
    tier1.filters.append(
        md.ListViewFilter(field="Segsync_Segment__c", operation="equals", value="SMB")
    )
    md.ListView.update([tier1])
    mark = sandbox.app.log.entries()[-1].seq
    report = _provision(config)
    flagged = [r["name"] for r in report["native"] if r["action"] == "edited"]
    assert flagged == ["Account.Segsync_Tier_Tier_1"]
    assert _writes(fresh_sandboxes, mark) == []
    assert len(sandbox.app.listviews.views()["account.segsync_tier_tier_1"].filters) == 2


def test_a_new_segment_adds_its_list_views_and_nothing_else(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    config = _config(fresh_sandboxes, first_dir, _mappings(first_dir))
    before = {r["name"] for r in _provision(config)["native"]}

    config = _config(fresh_sandboxes, second_dir, _mappings(second_dir, extra_segment="Giants"))
    mark = fresh_sandboxes.salesforce.app.log.entries()[-1].seq
    report = _provision(config)
    changed = {(r["name"], r["action"]) for r in report["native"] if r["action"] != "ok"}
    assert changed == {
        ("Account.Segsync_Segment_Giants", "create"),
        ("Contact.Segsync_Segment_Giants", "create"),
    }
    assert {r["name"] for r in report["native"] if r["action"] == "ok"} == before
    # One create per object (the two new views), and the picklists' new value: nothing else.
    writes = [
        e
        for e in fresh_sandboxes.salesforce.app.log.entries(mark)
        if e.kind in WRITES
        and any(
            f.startswith(("Account.Segsync_", "Contact.Segsync_")) and "__c" not in f
            for f in e.fields
        )
    ]
    assert sorted(f for e in writes for f in e.fields) == [
        "Account.Segsync_Segment_Giants",
        "Contact.Segsync_Segment_Giants",
    ]
    assert {e.kind for e in writes} == {"metadata.createMetadata"}


def test_lead_list_views_leave_converted_leads_out(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    config = lead_config(fresh_sandboxes, tmp_path)
    rows = _provision(config)["native"]
    views = {r["name"]: r["id"] for r in rows if r["object"] == "lead"}
    assert "Lead.Segsync_Tier_Tier_1" in views and all(views.values())
    sync = _invoke("sync", "--config", str(config), "--object", "lead", "--format", "json")
    assert sync.exit_code == 0, sync.output
    sandbox = fresh_sandboxes.salesforce
    listviews = sandbox.app.listviews
    assert listviews is not None
    meta = listviews.views()["lead.segsync_tier_tier_1"]
    assert meta.columns[:3] == ["FULL_NAME", "LEAD.COMPANY", "CORE.USERS.ALIAS"]
    sf = sandbox.client()
    shown = 0
    for name, view_id in views.items():
        field, _, value = listviews.views()[name.lower()].filters[0]
        expected = {
            r["Id"]
            for r in sandbox.org.records("Lead")
            if r.get(field) == value and not r.get("IsConverted")
        }
        assert _results(sf, "Lead", view_id) == expected, name
        shown += len(expected)
    assert shown > 0
