"""Real `segsync run` processes: graceful SIGTERM, and two replicas sharing one PostgreSQL store.

The sandboxes run in the test process; each `segsync run` is a subprocess
pointed at them by a config file. Slow runs are made with the sandbox's
latency fault, so a signal or a SIGKILL lands while a run is in flight.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from service_helpers import PATIENCE, freeze_when, start_service, started, until

from connector.cli import cli
from connector.service.scheduler import EPOCH
from connector.store import Store
from connector.store.records import RunRow
from connector.store.schema import job_leases
from segsync_sandbox.common import Faults
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
SHUTDOWN_TIMEOUT = 10.0
INTERVAL_SECONDS = 2.0


def _config(sandboxes: Sandboxes, tmp_path: Path, store_url: str, interval_minutes: float) -> Path:
    path = sandboxes.write_config(tmp_path / "config.toml", store_url=store_url)
    with path.open("a") as out:
        out.write(
            f"\n[service]\nport = 0\nshutdown_timeout_seconds = {SHUTDOWN_TIMEOUT}\n"
            "[[service.jobs]]\n"
            f'connection = "hubspot"\nobject = "account"\ninterval_minutes = {interval_minutes}\n'
            "[[service.jobs]]\n"
            f'connection = "hubspot"\nobject = "contact"\ninterval_minutes = {interval_minutes}\n'
        )
    result = CliRunner().invoke(cli, ["provision", "--config", str(path), "--crm", "hubspot"])
    assert result.exit_code == 0, result.output
    return path


def _log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.fixture
def slow_hubspot(fresh_sandboxes: Sandboxes) -> Callable[[float], None]:
    def set_latency(ms: float) -> None:
        fresh_sandboxes.hubspot.app.faults.set(Faults(latency_ms=ms))

    return set_latency


def test_sigterm_lets_the_run_record_and_exits_zero(
    fresh_sandboxes: Sandboxes, tmp_path: Path, slow_hubspot: Callable[[float], None]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = _config(fresh_sandboxes, tmp_path, url, interval_minutes=60)
    slow_hubspot(250)  # every call a quarter second: the first full run takes seconds
    log = tmp_path / "service.log"
    process = start_service(config, log)
    store = Store.open(url)
    try:
        running = until(
            lambda: [r for r in store.runs(5) if r.status == "running"], 30, "a run in flight"
        )[0]
        signalled = datetime.now(UTC)
        process.send_signal(signal.SIGTERM)
        # The bound: the service's shutdown timeout (plus process start-up slack).
        assert process.wait(timeout=SHUTDOWN_TIMEOUT + 5) == 0
        row = store.run(running.id)
    finally:
        if process.poll() is None:
            process.kill()
        store.close()
    assert row is not None and row.finished_at is not None
    # Stopped between batches and recorded as such (never left "running"); on a
    # loaded machine the run may have finished just before the signal landed.
    if row.finished_at > signalled:
        assert row.status == "aborted" and "stopping" in (row.message or "")
    else:
        assert row.status == "succeeded"
    assert all(r.status != "running" for r in Store.open(url).runs(10))
    lines = _log_lines(log)
    assert any(line["message"] == "SIGTERM received: stopping" for line in lines)
    assert any(line["message"].startswith("segsync service stopped") for line in lines)
    assert fresh_sandboxes.hubspot.access_token not in log.read_text()


def test_run_once_runs_each_job_and_reports_by_exit_status(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = _config(fresh_sandboxes, tmp_path, url, interval_minutes=60)
    command = [sys.executable, "-m", "connector", "run", "--once", "--config", str(config)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    with Store.open(url) as store:
        runs = store.runs(10)
    assert sorted((r.object, r.status) for r in runs) == [
        ("account", "succeeded"),
        ("contact", "succeeded"),
    ]
    # Accounts first: contacts inherit the tiers just written.
    assert [r.object for r in sorted(runs, key=lambda r: r.id)] == ["account", "contact"]

    fresh_sandboxes.hubspot.app.faults.set(Faults(error_rate=1.0))  # every call a 500
    config.write_text(config.read_text().replace("[sync]", "[sync]\nretry_attempts = 1"))
    failed = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert failed.returncode == 1
    assert fresh_sandboxes.hubspot.access_token.encode() not in failed.stderr
    errors = [json.loads(line) for line in failed.stderr.decode().splitlines() if line[:1] == "{"]
    assert any(e["level"] == "error" and e.get("object") == "account" for e in errors)


# -- two replicas on one PostgreSQL store -------------------------------------------


def _lock_holder(conninfo: str, pids: set[int], job: str) -> int | None:
    """The pid of the replica holding ``job``'s advisory lock (from its application_name)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        names = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE %s",
            (f"segsync[%] {job} @%",),
        ).fetchall()
    for (name,) in names:
        pid = int(name[len("segsync[") : name.index("]")])
        if pid in pids:
            return pid
    return None


def _tick(moment: datetime) -> int:
    return int((moment - EPOCH.replace(tzinfo=UTC)).total_seconds() // INTERVAL_SECONDS)


def _lease(store: Store, job: str) -> Any:
    """The job's lease row (holder, expires_at, token, mode)."""
    with store.engine.connect() as conn:
        return conn.execute(sa.select(job_leases).where(job_leases.c.job == job)).one()


@pytest.mark.postgres
def test_two_replicas_share_the_jobs_and_survive_a_kill(
    fresh_sandboxes: Sandboxes,
    tmp_path: Path,
    pg_schema_url: str,
    pg_conninfo: str,
    slow_hubspot: Callable[[float], None],
) -> None:
    config = _config(
        fresh_sandboxes, tmp_path, pg_schema_url, interval_minutes=INTERVAL_SECONDS / 60
    )
    store = Store.open(pg_schema_url)
    logs = [tmp_path / f"replica-{i}.log" for i in (1, 2)]
    replicas = [start_service(config, log) for log in logs]
    try:
        # Phase 1: both replicas up, then a few runs of each job.
        until(lambda: all(started(log) for log in logs), PATIENCE, "both replicas", alive=replicas)
        until(
            lambda: (
                {r.object for r in store.runs(100) if r.status == "succeeded"}
                == {"account", "contact"}
            ),
            PATIENCE,
            "the first (full) runs of both jobs",
            alive=replicas,
        )
        first = max(r.id for r in store.runs(1))

        def runs_since_first() -> Counter[str]:
            return Counter(
                r.object for r in store.runs(100) if r.id > first and r.status == "succeeded"
            )

        until(
            lambda: min(runs_since_first()[job] for job in ("account", "contact")) >= 3,
            PATIENCE,
            "three more runs of each job",
            alive=replicas,
        )

        # Phase 2: slow runs; SIGKILL whichever replica runs the account job, mid-run.
        slow_hubspot(400)
        pids = {p.pid for p in replicas}

        def account_run_in_flight() -> tuple[int, RunRow] | None:
            holder = _lock_holder(pg_conninfo, pids, "hubspot.account")
            in_flight = [r for r in store.runs(5, object="account") if r.status == "running"]
            # Only the holder of the account lock can have an account run going.
            return (holder, in_flight[0]) if holder and in_flight else None

        # Frozen (SIGSTOP) while its run is in flight: the run cannot end before the kill.
        victim_pid, victim_run = freeze_when(
            account_run_in_flight, PATIENCE, "an account run in flight"
        )
        lease = _lease(store, "hubspot.account")
        assert str(victim_pid) in lease.holder
        victim = next(p for p in replicas if p.pid == victim_pid)
        survivor = next(p for p in replicas if p.pid != victim_pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        killed_at = datetime.now(UTC)
        slow_hubspot(0)

        # Phase 3: the survivor takes the job over at its next tick.
        takeover = until(
            lambda: [
                r
                for r in store.runs(5, object="account")
                if r.started_at > killed_at and r.status == "succeeded"
            ],
            PATIENCE,
            "the survivor to run the account job",
            alive=[survivor],
        )
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=SHUTDOWN_TIMEOUT + 5) == 0
        runs = store.runs(1000)
    finally:
        for process in replicas:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        store.close()

    by_job: dict[str, list[RunRow]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        by_job.setdefault(run.object, []).append(run)
    assert set(by_job) == {"account", "contact"}
    for job_runs in by_job.values():
        # Never two runs of one job at once, on any replica.
        for before, after in itertools.pairwise(job_runs):
            assert before.finished_at is not None
            assert before.finished_at <= after.started_at, (before, after)
        # At most one run per tick.
        ticks = [_tick(r.started_at) for r in job_runs]
        assert len(ticks) == len(set(ticks)), ticks
    # The killed replica's run was found unfinished and marked so by the takeover ...
    killed = next(r for r in runs if r.id == victim_run.id)
    assert killed.status == "interrupted"
    assert killed.finished_at is not None and killed.finished_at <= takeover[0].started_at
    # ... which came from the freed lock, not from the lease running out.
    assert killed_at <= takeover[0].started_at < lease.expires_at
