"""A stopped replica (SIGSTOP) loses its jobs within the lease and writes nothing after it resumes.

Two real `segsync run` processes share one PostgreSQL store. The one running
the account job is stopped mid-run (it keeps its PostgreSQL session, so its
advisory lock stays held); the other takes the job over once the lease
expired, without the lock. Resumed, the stopped one finds its lease gone at
its next write chunk and ends its run ``aborted``; the request log shows no
write from it.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from service_helpers import PATIENCE, freeze_when, start_service, until

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from connector.store import Store
from connector.store.schema import job_leases
from segsync_sandbox.launcher import Sandboxes

LEASE_SECONDS = 6
INTERVAL_SECONDS = 2.0
ENTERPRISE_SAAS = {
    "industry": "COMPUTER_SOFTWARE",
    "numberofemployees": "5000",
    "intent_score": "95",
}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _config(sandboxes: Sandboxes, tmp_path: Path, store_url: str) -> Path:
    path = sandboxes.write_config(tmp_path / "config.toml", store_url=store_url)
    text = path.read_text().replace("[sync]", f"[sync]\nlease_seconds = {LEASE_SECONDS}")
    minutes = INTERVAL_SECONDS / 60
    text += (
        "\n[service]\nport = 0\nshutdown_timeout_seconds = 10\n"
        "[[service.jobs]]\n"
        f'connection = "hubspot"\nobject = "account"\ninterval_minutes = {minutes}\n'
        "[[service.jobs]]\n"
        f'connection = "hubspot"\nobject = "contact"\ninterval_minutes = {minutes}\n'
    )
    path.write_text(text)
    result = CliRunner().invoke(cli, ["provision", "--config", str(path), "--crm", "hubspot"])
    assert result.exit_code == 0, result.output
    return path


def _lease(store: Store, job: str) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(job_leases).where(job_leases.c.job == job)).first()


def test_a_stopped_replica_loses_its_job_and_writes_nothing_after(
    fresh_sandboxes: Sandboxes, tmp_path: Path, pg_schema_url: str
) -> None:
    app = fresh_sandboxes.hubspot.app
    portal = fresh_sandboxes.hubspot.portal
    config = _config(fresh_sandboxes, tmp_path, pg_schema_url)
    store = Store.open(pg_schema_url)
    replicas = [start_service(config, tmp_path / f"replica-{i}.log") for i in (1, 2)]
    try:
        until(
            lambda: (
                {r.object for r in store.runs(100) if r.status == "succeeded"}
                == {"account", "contact"}
            ),
            PATIENCE,
            "the first (full) runs of both jobs",
            alive=replicas,
        )
        # People make 30 companies Enterprise SaaS; every call now takes 0.4 s,
        # so the next account run spends seconds pulling before it writes.
        segment = compile_mapping(load_mapping(templates.ACCOUNTS)).output_fields("hubspot")[
            "segment"
        ]
        companies = [
            r.id for r in portal.snapshot("companies") if r.props.get(segment) != "Enterprise SaaS"
        ][:30]
        app.faults.update(latency_ms=400)
        for company in companies:
            portal.update("companies", company, ENTERPRISE_SAAS)
        pids = {p.pid: p for p in replicas}
        since = max(r.id for r in store.runs(100))

        def victim_mid_pull() -> tuple[int, int] | None:
            running = [
                r for r in store.runs(5, object="account") if r.id > since and r.status == "running"
            ]
            lease = _lease(store, "hubspot.account")
            if not running or lease is None or lease.expires_at < datetime.now(UTC):
                return None
            pid = int(lease.holder.split()[2].split("@")[0])
            return (pid, running[0].id) if pid in pids else None

        # Stopped while its run is in flight (checked again once it is stopped).
        victim_pid, victim_run = freeze_when(victim_mid_pull, PATIENCE, "an account run in flight")
        victim = pids.pop(victim_pid)
        (survivor,) = pids.values()
        stolen = _lease(store, "hubspot.account")

        # The survivor takes the job over once the lease expired, and does its work.
        def taken_over() -> Any:
            lease = _lease(store, "hubspot.account")
            taken = lease.token > stolen.token and str(survivor.pid) in lease.holder
            # "pending" is the moment between taking the lease and trying the lock.
            return lease if taken and lease.mode != "pending" else None

        lease = until(taken_over, PATIENCE, "the takeover")
        assert lease.mode == "steal"
        # Not before the stopped replica's lease ran out (however long that took here).
        assert lease.acquired_at >= stolen.expires_at, (lease, stolen)
        app.faults.update(latency_ms=0)
        # The survivor's run after the takeover. It may have nothing left to write:
        # a run that started while the test was editing can already have written
        # the 30 companies before the victim's run began (the ticks are 2 s apart).
        done = until(
            lambda: [
                r
                for r in store.runs(20, object="account")
                if r.id > victim_run and r.status == "succeeded"
            ],
            60,
            "the survivor's account run",
        )
        until(
            lambda: [
                r
                for r in store.runs(20, object="contact")
                if r.id > done[0].id and r.status == "succeeded"
            ],
            60,
            "a contact run after it",
        )
        # Only the stopped replica is left to write anything.
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0
        log_mark = len(app.log.entries())
        victim.send_signal(signal.SIGCONT)

        def ended() -> Any:
            # Its lease ran out by its own clock, or its renewal (in flight when it
            # stopped) found the token moved on: either way the run says so.
            row = store.run(victim_run)
            return row if row is not None and "writes nothing more" in (row.message or "") else None

        row = until(ended, PATIENCE, "the resumed replica to end its run", alive=[victim])
        time.sleep(2 * INTERVAL_SECONDS)  # and a tick or two of it running on
        after = [e for e in app.log.entries()[log_mark:] if e.kind == "batch.update"]
        victim.send_signal(signal.SIGTERM)
        assert victim.wait(timeout=30) == 0
    finally:
        app.faults.update(latency_ms=0)
        for process in replicas:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(timeout=10)
        store.close()

    assert row.status in ("aborted", "interrupted"), row
    assert "lost its lease" in (row.message or "") or "took the job over" in (row.message or "")
    assert after == [], [(e.kind, len(e.records)) for e in after]
    # The 30 changed companies now carry their new values (whichever live run wrote them).
    with Store.open(pg_schema_url) as check:
        history = check.history(None, 10_000, connection="hubspot", object="account")
        runs = {r.id: r for r in check.runs(1000)}
    assert all(runs[t.run_id].status != "running" for t in history)
    now_held = {r.id: r.props.get(segment) for r in portal.snapshot("companies")}
    assert {now_held[c] for c in companies} == {"Enterprise SaaS"}
