"""Salesforce end to end through `segsync`: provision grants access, refused values recover.

The sandbox enforces field-level security as a real org does, so a sync right
after provisioning only works because provisioning granted and assigned the
Segsync permission set. Then an admin deletes a picklist value segsync uses:
the run ends ``partial``, the refused records are listed with Salesforce's
reason, and once provisioning restores the value the next run writes them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _json(result: Result) -> Any:
    return json.loads(result.output)


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)  # the config names mappings/*.toml relative to the project
    return fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )


def _provision(config: Path) -> list[dict[str, str]]:
    result = _invoke(
        "provision", "--config", str(config), "--crm", "salesforce", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    return list(_json(result)["actions"])


def _sync(config: Path) -> tuple[int, dict[str, Any]]:
    result = _invoke(
        "sync",
        "--config",
        str(config),
        "--crm",
        "salesforce",
        "--object",
        "account",
        "--format",
        "json",
    )
    return result.exit_code, _json(result)["runs"][0]


def test_provision_grants_then_a_deleted_value_ends_partial_and_recovers(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    org = fresh_sandboxes.salesforce.org
    actions = _provision(config)
    assert not [a for a in actions if a["action"] == "missing_access"], actions
    assert [a["object"] for a in actions if a["action"] == "grant"] == ["account", "contact"]
    tier = org.field("Account", "Segsync_Tier__c")
    assert tier is not None
    assert [p.value for p in tier.picklist_values] == ["Tier 1", "Tier 2", "Tier 3"]
    contact_tier = org.field("Contact", "Segsync_Tier__c")
    assert contact_tier is not None
    assert [p.value for p in contact_tier.picklist_values] == ["Tier 1", "Tier 2", "Tier 3"]
    assert contact_tier.inline_help.startswith("The tier segsync assigned")

    # An admin deletes "Tier 3" after provisioning.
    spec = org.read_custom_field("Account.Segsync_Tier__c")
    assert spec is not None
    org.update_custom_field("Account", replace(spec, picklist_values=("Tier 1", "Tier 2")))

    code, run = _sync(config)
    assert code == 1
    assert run["status"] == "partial" and run["failed"] > 0 and run["written"] > 0
    errors = _json(_invoke("errors", "--config", str(config), "--format", "json"))
    assert len(errors) == run["failed"]
    assert {e["code"] for e in errors} == {"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"}
    assert all("Tier 3" in e["message"] for e in errors)
    refused = [e["record"] for e in errors]

    again = _provision(config)
    rows = {(a["object"], a["field"], a["action"], a["detail"]) for a in again}
    assert ("account", "Segsync_Tier__c", "add_options", "Tier 3") in rows
    code, run = _sync(config)
    assert (code, run["status"]) == (0, "succeeded")
    assert _json(_invoke("errors", "--config", str(config), "--format", "json")) == []
    assert {org.get("Account", r)["Segsync_Tier__c"] for r in refused} == {"Tier 3"}  # type: ignore[index]
