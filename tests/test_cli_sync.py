"""The CRM commands end to end: provision, sync, status, history, errors, through `segsync`."""

from __future__ import annotations

import json
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
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)  # the config names mappings/*.toml relative to the project
    return fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )


def test_provision_then_sync_hubspot(fresh_sandboxes: Sandboxes, config: Path) -> None:
    dry = _json(
        _invoke(
            "provision",
            "--config",
            str(config),
            "--crm",
            "hubspot",
            "--dry-run",
            "--format",
            "json",
        )
    )
    created = {(a["object"], a["field"]) for a in dry["actions"] if a["action"] == "create"}
    assert ("account", "segsync_tier") in created and ("contact", "segsync_persona") in created
    portal = fresh_sandboxes.hubspot.portal
    assert "segsync_tier" not in portal.property_names("companies")  # a dry run changes nothing

    _json(_invoke("provision", "--config", str(config), "--crm", "hubspot", "--format", "json"))
    assert "segsync_tier" in portal.property_names("companies")
    again = _json(
        _invoke("provision", "--config", str(config), "--crm", "hubspot", "--format", "json")
    )
    assert {a["action"] for a in again["actions"]} == {"ok"}

    plan = _json(
        _invoke(
            "sync", "--config", str(config), "--crm", "hubspot", "--dry-run", "--format", "json"
        )
    )
    assert [(r["object"], r["written"]) for r in plan["runs"]] == [("account", 0), ("contact", 0)]
    assert plan["runs"][0]["changed"] == portal.count("companies")
    assert all(not r.props.get("segsync_tier") for r in portal.snapshot("companies"))

    first = _json(_invoke("sync", "--config", str(config), "--crm", "hubspot", "--format", "json"))
    accounts, contacts = first["runs"]
    assert accounts["status"] == "succeeded" and accounts["written"] == portal.count("companies")
    assert contacts["status"] == "succeeded" and contacts["written"] == portal.count("contacts")
    assert accounts["api_calls"] >= accounts["api_calls_minimum"]

    second = _json(_invoke("sync", "--config", str(config), "--crm", "hubspot", "--format", "json"))
    assert [r["written"] for r in second["runs"]] == [0, 0]
    assert all(not r["full"] for r in second["runs"])

    status = _json(_invoke("status", "--config", str(config), "--format", "json"))
    assert [r["status"] for r in status["runs"][:4]] == ["succeeded"] * 4
    assert status["watermarks"]["hubspot.account"] is not None

    some_company = portal.snapshot("companies")[0].id
    ledger = _json(
        _invoke("history", "--config", str(config), "--record", some_company, "--format", "json")
    )
    assert {e["field"] for e in ledger} == {"segsync_segment", "segsync_tier"}
    assert all(e["from"] is None and e["mapping_version"] == "2026-11-b" for e in ledger)

    assert _json(_invoke("errors", "--config", str(config), "--format", "json")) == []


def test_sync_before_provisioning_fails_cleanly(fresh_sandboxes: Sandboxes, config: Path) -> None:
    app = fresh_sandboxes.hubspot.app
    app.log.clear()
    result = _invoke("sync", "--config", str(config), "--crm", "hubspot", "--object", "account")
    assert result.exit_code == 1
    # Refused before any read or write: the output fields are not segsync's yet.
    assert "does not exist (run segsync provision)" in result.output
    assert not [e for e in app.log.entries() if e.method != "GET"]
    assert _json(_invoke("errors", "--config", str(config), "--format", "json")) == []
    assert access_token_absent(result.output, fresh_sandboxes)


def access_token_absent(output: str, sandboxes: Sandboxes) -> bool:
    return sandboxes.hubspot.access_token not in output


def test_bad_config_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('[connections.x]\ncrm = "hubspot"\ntimeout_seconds = "soon"\n')
    result = CliRunner().invoke(cli, ["sync", "--config", str(bad)])
    assert result.exit_code == 2
    assert (
        "connections.x.hubspot.timeout_seconds" in result.output
        or "timeout_seconds" in result.output
    )
    assert "Traceback" not in result.output
