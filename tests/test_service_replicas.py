"""Two `segsync run` replicas on PostgreSQL, accounts and contacts of both CRMs, people editing.

What must hold, whichever replica runs what: no job ever runs twice at once
(the run rows' intervals of one job never overlap), no run is stopped by the
mass-change guard or fails, and in the end every contact carries its
account's segment and tier. A longer variant of the same scenario:
``bench/replicas_bench.py``.
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from service_helpers import PATIENCE, start_service, until

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from connector.store import Store
from connector.store.records import RunRow
from segsync_sandbox.launcher import Sandboxes

INTERVAL_SECONDS = 2.0
CRMS = ("salesforce", "hubspot")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EDITS = {
    "salesforce": [
        {"Industry": "Computer Software", "NumberOfEmployees": 5000, "Intent_Score__c": 95},
        {"Industry": "Retail", "NumberOfEmployees": 40, "Intent_Score__c": 5},
    ],
    "hubspot": [
        {"industry": "COMPUTER_SOFTWARE", "numberofemployees": "5000", "intent_score": "95"},
        {"industry": "RETAIL", "numberofemployees": "40", "intent_score": "5"},
    ],
}


def _config(sandboxes: Sandboxes, tmp_path: Path, store_url: str) -> Path:
    path = sandboxes.write_config(tmp_path / "config.toml", store_url=store_url)
    minutes = INTERVAL_SECONDS / 60
    text = path.read_text().replace("[sync]", "[sync]\nlease_seconds = 20")
    text += "\n[service]\nport = 0\nshutdown_timeout_seconds = 10\n"
    for crm, obj in itertools.product(CRMS, ("account", "contact")):
        text += (
            "[[service.jobs]]\n"
            f'connection = "{crm}"\nobject = "{obj}"\ninterval_minutes = {minutes}\n'
        )
    path.write_text(text)
    result = CliRunner().invoke(cli, ["provision", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _edit(sandboxes: Sandboxes, crm: str, record_id: str, values: dict[str, Any]) -> None:
    if crm == "salesforce":
        sandboxes.salesforce.org.update("Account", record_id, values)
    else:
        sandboxes.hubspot.portal.update("companies", record_id, values)


def _accounts(sandboxes: Sandboxes, crm: str) -> dict[str, dict[str, Any]]:
    if crm == "salesforce":
        return {r["Id"]: r for r in sandboxes.salesforce.org.records("Account")}
    return {r.id: dict(r.props) for r in sandboxes.hubspot.portal.snapshot("companies")}


def _contacts(sandboxes: Sandboxes, crm: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    if crm == "salesforce":
        return {
            r["Id"]: (r.get("AccountId"), r) for r in sandboxes.salesforce.org.records("Contact")
        }
    portal = sandboxes.hubspot.portal
    out: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for record in portal.snapshot("contacts"):
        companies = portal.associated("contacts", record.id, "companies") or []
        out[record.id] = (companies[0] if companies else None, dict(record.props))
    return out


def _settled(store: Store, since: int) -> bool:
    """Each job has a succeeded run that started after run ``since`` ended."""
    runs = store.runs(500)
    ended = next((r.finished_at for r in runs if r.id == since), None)
    if ended is None:
        return False
    jobs = {(r.connection, r.object) for r in runs}
    return len(jobs) == 4 and all(
        any(
            (r.connection, r.object) == job and r.status == "succeeded" and r.started_at > ended
            for r in runs
        )
        for job in jobs
    )


def test_two_replicas_both_crms_contacts_follow_their_accounts(
    fresh_sandboxes: Sandboxes, tmp_path: Path, pg_schema_url: str
) -> None:
    config = _config(fresh_sandboxes, tmp_path, pg_schema_url)
    store = Store.open(pg_schema_url)
    replicas = [start_service(config, tmp_path / f"replica-{i}.log") for i in (1, 2)]
    rng = random.Random(16)
    try:
        until(
            lambda: (
                len({(r.connection, r.object) for r in store.runs(200) if r.status == "succeeded"})
                == 4
            ),
            PATIENCE,
            "a first successful run of every job",
            alive=replicas,
        )
        # 30 s of people editing accounts in both CRMs while both replicas run.
        ids = {crm: sorted(_accounts(fresh_sandboxes, crm)) for crm in CRMS}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for crm in CRMS:
                for record_id in rng.sample(ids[crm], 3):
                    _edit(fresh_sandboxes, crm, record_id, rng.choice(EDITS[crm]))
            time.sleep(1.5)
        last = max(r.id for r in store.runs(1))
        # Every job then runs once more after the edits (contacts after accounts).
        until(
            lambda: _settled(store, last),
            PATIENCE,
            "every job to run after the last edit",
            alive=replicas,
        )
        last = max(r.id for r in store.runs(1))
        until(lambda: _settled(store, last), PATIENCE, "every job to run once more", alive=replicas)
        for process in replicas:
            process.send_signal(signal.SIGTERM)
        for process in replicas:
            assert process.wait(timeout=30) == 0
        runs = store.runs(5000)
    finally:
        for process in replicas:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        store.close()

    by_job: dict[tuple[str, str], list[RunRow]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        by_job.setdefault((run.connection, run.object), []).append(run)
    assert len(by_job) == 4
    for job, job_runs in by_job.items():
        for before, after in itertools.pairwise(job_runs):
            assert before.finished_at is not None, before
            assert before.finished_at <= after.started_at, (job, before, after)
    # Every run succeeded; only the SIGTERM at the end may stop one (between batches).
    bad = [
        (r.connection, r.object, r.status, r.message)
        for r in runs
        if r.status != "succeeded"
        and not (r.status == "aborted" and "the service is stopping" in (r.message or ""))
    ]
    assert bad == []
    assert all(r.counts.failed == 0 for r in runs)

    accounts_engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    contacts_engine = compile_mapping(load_mapping(templates.CONTACTS))
    for crm in CRMS:
        a_out, c_out = accounts_engine.output_fields(crm), contacts_engine.output_fields(crm)
        accounts = _accounts(fresh_sandboxes, crm)
        wrong = [
            cid
            for cid, (aid, fields) in _contacts(fresh_sandboxes, crm).items()
            if aid is not None
            and (fields.get(c_out["segment"]), fields.get(c_out["tier"]))
            != (accounts[aid].get(a_out["segment"]), accounts[aid].get(a_out["tier"]))
        ]
        assert wrong == [], (crm, len(wrong))
