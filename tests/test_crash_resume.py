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

from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from connector.sandbox.launcher import Sandboxes, start_sandboxes

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 600


@pytest.fixture(scope="module")
def crm() -> Iterator[Sandboxes]:
    with start_sandboxes(accounts=ACCOUNTS, contacts_per_account=0, seed=11) as running:
        yield running


def _start_sync(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector",
            "sync",
            "--config",
            str(config),
            "--crm",
            "hubspot",
            "--object",
            "account",
        ],
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


@pytest.mark.parametrize("kill_after_writes", [0, 1, 3, 5])
def test_kill_mid_run_then_resume(crm: Sandboxes, tmp_path: Path, kill_after_writes: int) -> None:
    snapshot = crm.snapshot(tmp_path / "snapshot")
    config = crm.write_config(tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 's.db'}")
    try:
        result = CliRunner().invoke(
            cli, ["provision", "--config", str(config), "--crm", "hubspot"], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        app = crm.hubspot.app
        app.log.clear()
        # Slow every call down so the process is surely mid-run when it dies.
        app.faults.update(latency_ms=40)
        process = _start_sync(config)

        def batches() -> int:
            return sum(1 for e in app.log.entries() if e.kind == "batch.update")

        if kill_after_writes == 0:
            _wait_for(lambda: any(e.kind == "list" for e in app.log.entries()))
        else:
            _wait_for(lambda: batches() >= kill_after_writes)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        app.faults.update(latency_ms=0)

        resumed = CliRunner().invoke(
            cli,
            ["sync", "--config", str(config), "--crm", "hubspot", "--object", "account"],
            catch_exceptions=False,
        )
        assert resumed.exit_code == 0, resumed.output

        # Every company holds what the engine computes from its inputs.
        engine = compile_mapping(load_mapping(ROOT / "mappings/accounts.toml"))
        portal = crm.hubspot.portal
        for record in portal.snapshot("companies"):
            props = record.props
            expected = engine.evaluate(props, "hubspot", datetime.now(UTC))
            assert props.get("segsync_segment") == expected.segment, record.id
            assert props.get("segsync_tier") == expected.tier, record.id
        # Each record was written once, except at most the batch in flight.
        writes = Counter(
            record_id
            for e in app.log.entries()
            if e.kind == "batch.update" and e.status in (200, 207)
            for record_id in e.records
        )
        assert set(writes) == {r.id for r in portal.snapshot("companies")}
        assert sum(n - 1 for n in writes.values()) <= 100
    finally:
        crm.restore(snapshot)
