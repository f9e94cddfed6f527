"""A run where HubSpot refuses a few records: partial, listed, not stuck, healed by provision.

Someone deletes an option of segsync's tier property in the portal after
provisioning. HubSpot then refuses every record whose tier is that option
(``INVALID_OPTION``) and, because segsync tags each input of a batch with an
``objectWriteTraceId``, applies the batch-mates. Everything runs through
``segsync`` against the shared sandboxes with the real hubspot-api-client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
DELETED = "Tier 3"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _sync(config: Path) -> dict[str, Any]:
    result = _invoke(
        "sync",
        "--config",
        str(config),
        "--crm",
        "hubspot",
        "--object",
        "account",
        "--format",
        "json",
    )
    (run,) = json.loads(result.output)["runs"]
    # A partial run exits 1; the JSON report is there either way.
    assert result.exit_code == (0 if run["status"] == "succeeded" else 1), result.output
    return dict(run)


def _errors(config: Path) -> list[dict[str, Any]]:
    result = _invoke("errors", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)  # the config names mappings/*.toml relative to the project
    return fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )


def test_a_deleted_option_makes_a_partial_run_until_provision_restores_it(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    portal = fresh_sandboxes.hubspot.portal
    provision = _invoke("provision", "--config", str(config), "--crm", "hubspot")
    assert provision.exit_code == 0, provision.output
    tier = portal.get_property("companies", "segsync_tier")
    portal.update_property(
        "companies",
        "segsync_tier",
        {"options": [o for o in tier["options"] if o["value"] != DELETED]},
    )
    companies = portal.count("companies")

    first = _sync(config)
    assert first["status"] == "partial"
    tiers = {r.id: r.props.get("segsync_tier") for r in portal.snapshot("companies")}
    refused = {i for i, t in tiers.items() if t is None}
    assert 0 < len(refused) < companies
    assert first["failed"] == len(refused) and first["written"] == companies - len(refused)
    # The batch-mates landed: one batch call per 100 records, no split, no retry storm.
    updates = [e for e in fresh_sandboxes.hubspot.app.log.entries() if e.kind == "batch.update"]
    assert len(updates) == -(-companies // 100)
    assert {e.status for e in updates} == {207}
    errors = _errors(config)
    assert {e["record"] for e in errors} == refused
    for error in errors:
        assert error["code"] == "INVALID_OPTION"
        assert error["message"].startswith(f"{DELETED} was not one of the allowed options")

    # Nothing is stuck: the next run retries only the refused records.
    second = _sync(config)
    assert second["status"] == "partial"
    assert second["failed"] == len(refused) and second["written"] == 0
    assert {e["attempts"] for e in _errors(config)} == {2}

    restored = _invoke("provision", "--config", str(config), "--crm", "hubspot")
    assert restored.exit_code == 0, restored.output
    assert DELETED in restored.output
    third = _sync(config)
    assert third["status"] == "succeeded"
    assert third["written"] == len(refused) and third["failed"] == 0
    assert _errors(config) == []
    assert all(r.props.get("segsync_tier") for r in portal.snapshot("companies"))
    assert {portal.get("companies", i)["properties"]["segsync_tier"] for i in refused} == {DELETED}
