"""Contacts synced before their accounts are computed: deferred, never given fallback values."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from connector.store.store import Store
from connector.sync.runner import DEFERRED
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path) -> Iterator[Path]:
    yield fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _contacts(crms: Sandboxes, crm: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """Contact id → (its account id, its fields), read from the sandbox itself."""
    if crm == "salesforce":
        return {r["Id"]: (r.get("AccountId"), r) for r in crms.salesforce.org.records("Contact")}
    portal = crms.hubspot.portal
    out: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for record in portal.snapshot("contacts"):
        companies = portal.associated("contacts", record.id, "companies") or []
        out[record.id] = (companies[0] if companies else None, dict(record.props))
    return out


def _accounts(crms: Sandboxes, crm: str) -> dict[str, dict[str, Any]]:
    if crm == "salesforce":
        return {r["Id"]: r for r in crms.salesforce.org.records("Account")}
    return {r.id: dict(r.props) for r in crms.hubspot.portal.snapshot("companies")}


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_contacts_before_accounts_are_deferred_then_inherit(
    fresh_sandboxes: Sandboxes, config: Path, tmp_path: Path, crm: str
) -> None:
    accounts_engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    contacts_engine = compile_mapping(load_mapping(templates.CONTACTS))
    account_out = accounts_engine.output_fields(crm)
    contact_out = contacts_engine.output_fields(crm)
    result = _cli("provision", "--config", str(config), "--crm", crm)
    assert result.exit_code == 0, result.output
    with_account = {
        cid for cid, (aid, _) in _contacts(fresh_sandboxes, crm).items() if aid is not None
    }
    assert with_account

    # Contacts first: those with an account are deferred, nothing fallback is written.
    first = _cli(
        "sync", "--config", str(config), "--crm", crm, "--object", "contact", "--format", "json"
    )
    assert first.exit_code == 0, first.output
    (run,) = json.loads(first.output)["runs"]
    assert run["status"] == "succeeded" and run["deferred"] == len(with_account)
    for cid, (_aid, fields) in _contacts(fresh_sandboxes, crm).items():
        if cid in with_account:
            assert not fields.get(contact_out["segment"]), cid
            assert not fields.get(contact_out["tier"]), cid
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        deferred = {e.record_id for e in store.open_errors(crm, "contact") if e.code == DEFERRED}
        transitions = store.history(None, 100_000, connection=crm, object="contact")
    assert deferred == with_account
    assert not {t.record_id for t in transitions} & with_account

    # Accounts, then contacts: every deferred contact now carries its account's values.
    assert _cli("sync", "--config", str(config), "--crm", crm, "--object", "account").exit_code == 0
    second = _cli(
        "sync", "--config", str(config), "--crm", crm, "--object", "contact", "--format", "json"
    )
    assert second.exit_code == 0, second.output
    (run,) = json.loads(second.output)["runs"]
    assert run["deferred"] == 0 and run["written"] >= len(with_account)
    accounts = _accounts(fresh_sandboxes, crm)
    for cid, (aid, fields) in _contacts(fresh_sandboxes, crm).items():
        if aid is None:
            continue
        account = accounts[aid]
        assert fields.get(contact_out["segment"]) == account[account_out["segment"]], cid
        assert fields.get(contact_out["tier"]) == account[account_out["tier"]], cid
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        assert not [e for e in store.open_errors(crm, "contact") if e.code == DEFERRED]


def test_the_service_defers_contacts_until_an_account_run(
    fresh_sandboxes: Sandboxes, config: Path, tmp_path: Path
) -> None:
    """`segsync run --once` with only the contact job: deferred; with both: inherited."""
    crm = "hubspot"
    assert _cli("provision", "--config", str(config), "--crm", crm).exit_code == 0
    base = config.read_text()
    job = '[[service.jobs]]\nconnection = "hubspot"\nobject = "{}"\ninterval_minutes = 60\n'
    contact_out = compile_mapping(load_mapping(templates.CONTACTS)).output_fields(crm)
    account_out = compile_mapping(load_mapping(templates.ACCOUNTS)).output_fields(crm)
    command = [sys.executable, "-m", "connector", "run", "--once", "--config", str(config)]

    config.write_text(base + "\n[service]\nport = 0\n" + job.format("contact"))
    alone = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120, check=False)
    assert alone.returncode == 0, alone.stderr.decode()
    contacts = _contacts(fresh_sandboxes, crm)
    with_account = {cid for cid, (aid, _) in contacts.items() if aid is not None}
    assert with_account
    assert all(not contacts[c][1].get(contact_out["tier"]) for c in with_account)
    assert b"deferred" in alone.stderr

    config.write_text(
        base + "\n[service]\nport = 0\n" + job.format("contact") + job.format("account")
    )
    both = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120, check=False)
    assert both.returncode == 0, both.stderr.decode()
    accounts = _accounts(fresh_sandboxes, crm)
    for cid, (aid, fields) in _contacts(fresh_sandboxes, crm).items():
        if aid is not None:
            assert fields.get(contact_out["tier"]) == accounts[aid][account_out["tier"]], cid
