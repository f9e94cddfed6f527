"""Kill -9 a real `segsync sync` mid Bulk 2.0 write: the next run resumes the job (issue 16).

The Salesforce connection writes through one ingest job (``bulk_write_threshold``
below the org's size). The job's id is in the state store right after the
create, before the upload, and each later step is noted too. The process is
killed once the store shows a step; the next `segsync sync` finishes the
job it finds (closes it, waits for it) instead of making another, so every
record is written exactly once, and has exactly one ledger row per change.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sandbox_fixtures import sandbox_config
from service_helpers import PATIENCE, freeze_when

from connector.cli import cli
from connector.store.store import Store
from segsync_sandbox.launcher import Sandboxes, start_sandboxes
from segsync_sandbox.salesforce.bulk import bulk_service

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 400


@pytest.fixture(scope="module")
def crm() -> Iterator[Sandboxes]:
    with start_sandboxes(accounts=ACCOUNTS, contacts_per_account=0, seed=17) as running:
        yield running


def _step(store_path: Path) -> str | None:
    """The step the running sync last noted for its ingest job, read from its store."""
    try:
        with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=0.1) as db:
            row = db.execute("SELECT step FROM bulk_jobs").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


@pytest.mark.parametrize(
    ("kill_at", "jobs_created"),
    [("uploaded", 1), ("closed", 1), ("created", 2)],
)
def test_a_killed_bulk_write_resumes_its_job_and_writes_each_record_once(
    crm: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: str, jobs_created: int
) -> None:
    monkeypatch.chdir(ROOT)
    snapshot = crm.snapshot(tmp_path / "snapshot")
    config = sandbox_config(crm, tmp_path, salesforce={"bulk_write_threshold": 100})
    store_path = tmp_path / "state.db"
    app = crm.salesforce.app
    service = bulk_service(app)
    service.reset()
    args = ["sync", "--config", str(config), "--crm", "salesforce", "--object", "account"]
    try:
        result = CliRunner().invoke(
            cli, ["provision", "--config", str(config), "--crm", "salesforce"]
        )
        assert result.exit_code == 0, result.output
        app.log.clear()
        # Each call takes a while, so the process is surely between two steps when it dies.
        app.faults.update(latency_ms=300)
        process = subprocess.Popen(
            [sys.executable, "-m", "connector", *args, "--force"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def at_the_step() -> tuple[int, str] | None:
            assert process.poll() is None, "the sync ended before the step"
            return (process.pid, kill_at) if _step(store_path) == kill_at else None

        try:
            # Stopped once the store shows the step, and checked again while stopped:
            # killed at that step, never at one it reached between a look and the kill.
            freeze_when(at_the_step, PATIENCE, f"the sync to reach {kill_at!r}", every=0.005)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        app.faults.update(latency_ms=0)
        ingest = [j for j in service.jobs() if j.kind == "ingest"]
        # Killed mid-job: the job exists and has not ended (a close in flight may land).
        assert len(ingest) == 1 and ingest[0].state in ("Open", "UploadComplete", "InProgress")

        resumed = CliRunner().invoke(cli, [*args, "--force"], catch_exceptions=False)
        assert resumed.exit_code == 0, resumed.output

        ingest = [j for j in service.jobs() if j.kind == "ingest"]
        creates = [e for e in app.log.entries() if e.kind == "bulk.ingest.create"]
        assert len(creates) == len(ingest) == jobs_created
        states = Counter(j.state for j in ingest)
        assert states["JobComplete"] == 1 and states["Open"] == 0
        # Every account written exactly once, by the one job that completed.
        applied = Counter(r for j in ingest for r, _row in j.successes)
        applied.update(
            r for e in app.log.entries() if e.kind == "collections.update" for r in e.records
        )
        ids = [r["Id"] for r in crm.salesforce.org.records("Account")]
        assert applied == Counter(ids)
        with Store.open(f"sqlite:///{store_path}") as store:
            ledger = store.history(None, limit=100_000, connection="salesforce", object="account")
            assert store.job_notes("salesforce", "account") == []
            assert store.intent_ids("salesforce", "account") == []
        per_field = Counter((t.record_id, t.field) for t in ledger)
        assert max(per_field.values()) == 1
        assert {r for r, _ in per_field} == set(ids)
    finally:
        app.faults.update(latency_ms=0)
        service.reset()
        crm.restore(snapshot)
