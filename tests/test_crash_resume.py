"""Kill -9 a real `segsync sync` process mid-run, run again: nothing lost, nothing written twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from segsync_sandbox.launcher import Sandboxes, start_sandboxes

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 600


@pytest.fixture(scope="module")
def crm() -> Iterator[Sandboxes]:
    with start_sandboxes(accounts=ACCOUNTS, contacts_per_account=0, seed=11) as running:
        yield running


# What each CRM's request log calls a read page and a write batch, and the batch size.
# (Salesforce's pull pages are Composite calls: the reason fields are long text areas.)
KINDS = {
    "hubspot": ("list", "batch.update", 100),
    "salesforce": ("composite", "collections.update", 200),
}


def _start_sync(config: Path, crm_name: str) -> subprocess.Popen[bytes]:
    command = ["sync", "--config", str(config), "--crm", crm_name, "--object", "account"]
    return subprocess.Popen(
        [sys.executable, "-m", "connector", *command],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.005)
    raise AssertionError("the sync never reached the point to kill it at")


@pytest.mark.parametrize(
    ("crm_name", "kill_after_writes"),
    [
        ("hubspot", 0),
        ("hubspot", 1),
        ("hubspot", 3),
        ("hubspot", 5),
        ("salesforce", 0),
        ("salesforce", 1),
        ("salesforce", 2),
    ],
)
def test_kill_mid_run_then_resume(
    crm: Sandboxes, tmp_path: Path, crm_name: str, kill_after_writes: int
) -> None:
    read_kind, write_kind, batch = KINDS[crm_name]
    snapshot = crm.snapshot(tmp_path / "snapshot")
    config = crm.write_config(tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 's.db'}")
    try:
        result = CliRunner().invoke(
            cli, ["provision", "--config", str(config), "--crm", crm_name], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        app = crm.hubspot.app if crm_name == "hubspot" else crm.salesforce.app
        app.log.clear()
        # Slow every call down so the process is surely mid-run when it dies.
        app.faults.update(latency_ms=40)
        process = _start_sync(config, crm_name)

        def batches() -> int:
            return sum(1 for e in app.log.entries() if e.kind == write_kind)

        if kill_after_writes == 0:
            _wait_for(lambda: any(e.kind == read_kind for e in app.log.entries()))
        else:
            _wait_for(lambda: batches() >= kill_after_writes)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        app.faults.update(latency_ms=0)

        resumed = CliRunner().invoke(
            cli,
            ["sync", "--config", str(config), "--crm", crm_name, "--object", "account"],
            catch_exceptions=False,
        )
        assert resumed.exit_code == 0, resumed.output

        # Every account holds what the engine computes from its inputs.
        engine = compile_mapping(load_mapping(templates.ACCOUNTS))
        outputs = engine.output_fields(crm_name)
        records = (
            {r.id: r.props for r in crm.hubspot.portal.snapshot("companies")}
            if crm_name == "hubspot"
            else {r["Id"]: r for r in crm.salesforce.org.records("Account")}
        )
        for record_id, fields in records.items():
            expected = engine.evaluate(fields, crm_name, datetime.now(UTC))
            assert fields.get(outputs["segment"]) == expected.segment, record_id
            assert fields.get(outputs["tier"]) == expected.tier, record_id
        # Each record was written once, except at most the batch in flight.
        writes = Counter(
            record_id
            for e in app.log.entries()
            if e.kind == write_kind and e.status == 200
            for record_id in e.records
        )
        assert set(writes) == set(records)
        assert sum(n - 1 for n in writes.values()) <= batch
    finally:
        crm.restore(snapshot)
