"""``segsync status``: what a deal run removed, and where a long pull starts the next one.

The deals through the real simple-salesforce against the Salesforce sandbox
(an Opportunity deleted between two deal runs), the watermarks through a
real SQLite store; the command through its CLI, as text and as JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from connector.cli import cli
from connector.config import StoreSettings
from connector.state import Watermark
from connector.store.store import Store
from segsync_sandbox.launcher import Sandboxes


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _json(*args: str) -> Any:
    return json.loads(_invoke(*args, "--format", "json").stdout)


def _deal_runs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in doc["runs"] if r["object"] == "deal"]


def test_status_shows_the_deals_a_deal_run_removed(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        fresh_sandboxes.config_text(store_url=f"sqlite:///{tmp_path / 'state.db'}"),
        encoding="utf-8",
    )
    c = str(config)
    sync = ("sync", "--config", c, "--crm", "salesforce", "--object", "deal")
    [first] = _deal_runs(_json(*sync))
    assert first["full"] and first["removed"] == 0, first

    sf = fresh_sandboxes.salesforce.client()
    [row] = sf.query("SELECT Id FROM Opportunity ORDER BY Id LIMIT 1")["records"]
    sf.Opportunity.delete(row["Id"])
    [second] = _deal_runs(_json(*sync))
    assert not second["full"] and second["removed"] == 1, second

    # Newest first: the incremental run removed the deleted deal, the full one nothing.
    status = _json("status", "--config", c)
    runs = _deal_runs(status)
    assert [(r["connection"], r["full"], r["removed"]) for r in runs] == [
        ("salesforce", False, 1),
        ("salesforce", True, 0),
    ]
    assert status["watermarks"]["salesforce.deal"] is not None
    # Runs of other objects carry no removed count.
    assert all("removed" not in r for r in status["runs"] if r["object"] != "deal")

    text = _invoke("status", "--config", c).stdout
    lines = [line for line in text.splitlines() if "salesforce.deal" in line and "read" in line]
    assert len(lines) == 2, text
    assert f"stored {second['stored']:,} · removed 1 · calls" in lines[0], lines[0]
    assert "removed 0" in lines[1], lines[1]
    assert "watermark salesforce.deal: " in text


def test_status_shows_a_pull_start_earlier_than_its_watermark(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "config.toml"
    config.write_text(f'[connections.sf]\ncrm = "salesforce"\n[store]\nurl = "{url}"\n')
    stamp = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    began = stamp - timedelta(minutes=40)  # a pull of 40 minutes, longer than the look-back
    store = Store.from_settings(StoreSettings(url=url))
    try:
        store.advance_watermark(
            "sf", "account", Watermark(stamp, frozenset({"a"}), "v", pull_start=began)
        )
        # A quick pull began after its highest stamp: the watermark alone says where to start.
        store.advance_watermark(
            "sf",
            "contact",
            Watermark(stamp, frozenset({"c"}), "v", pull_start=stamp + timedelta(seconds=5)),
        )
        # One that began a moment before the second of its highest stamp closed (any
        # active org's pull, stamps keeping whole seconds): not worth a line.
        store.advance_watermark(
            "sf",
            "lead",
            Watermark(stamp, frozenset({"l"}), "v", pull_start=stamp - timedelta(seconds=0.02)),
        )
    finally:
        store.close()

    status = _json("status", "--config", str(config))
    assert status["watermarks"]["sf.account"] == stamp.isoformat()
    assert status["pull_starts"] == {"sf.account": began.isoformat()}

    text = _invoke("status", "--config", str(config)).stdout
    marks = {
        line.split(":", 1)[0]: line for line in text.splitlines() if line.startswith("watermark ")
    }
    assert marks["watermark sf.account"] == (
        f"watermark sf.account: {stamp.isoformat()} · pull start {began.isoformat()} "
        "(earlier: the next pull starts a look-back before it)"
    )
    assert marks["watermark sf.contact"] == f"watermark sf.contact: {stamp.isoformat()}"
    assert marks["watermark sf.lead"] == f"watermark sf.lead: {stamp.isoformat()}"
