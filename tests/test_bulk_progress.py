"""A Bulk 2.0 job that outlasts the stall limit is progress, not a stall (real wire).

``segsync run`` in-process (the service: scheduler, claims, ``/healthz``) on a
SQLite store, real simple-salesforce against the shared Salesforce sandbox.
The account run pulls through a Bulk query job and writes through a Bulk
ingest job; the sandbox's org takes its time over one of them (the ingest
job's rows at a set rate; the query job until a set time has passed), so it
stays running for three stall limits while segsync polls it (the query
through simple-salesforce's ``query(wait=)``, the ingest job through our
``IngestJob.wait``). The run marks no step meanwhile: only the CRM's answers
(the adapter's call counter, which the lease watches) say it is alive.

Before the run counted the CRM's answers as progress, the heartbeat declared
the run stalled in the middle of the job: ``/healthz`` failed, the lease was
no longer renewed and the run ended ``aborted`` at its next fence. Now the
job completes, ``/healthz`` says ok throughout, the lease stays this
process's (another "replica" finds the job busy every time it asks) and no
stall is logged.

Every wait is for a condition (the run's end), bounded by ``PATIENCE``.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_fixtures import provision, salesforce_adapter, shipped_engines
from service_helpers import PATIENCE, until

from connector.config import SalesforceConnection, Settings
from connector.crm.base import CrmAdapter
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce import SalesforceAdapter
from connector.service.app import Service
from connector.store.leases import Busy, JobClaims
from connector.store.locks import locks_for
from connector.store.store import Store
from segsync_sandbox.launcher import Sandboxes
from segsync_sandbox.salesforce.bulk import bulk_service

#: The slow job lasts at least this many stall limits.
LENGTH = 3
#: A job's states before it is done.
RUNNING = {"UploadComplete", "InProgress"}


class Lines(logging.Handler):
    """The messages logged to a logger, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("segsync.locks")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _healthz(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


#: The stall limit. Above the longest silence a healthy run may keep with the
#: settings below (connector/config.py, ``crm_silence``): a call's
#: ``timeout_seconds`` (1.5 s) after the longest pause, a Bulk query job's poll
#: pause (2.1 s; the retry back-off is at most 0.5 s, our ingest polls 0.25 s).
STALL = 4.0


@pytest.mark.parametrize(
    ("kind", "bulk_wait"),
    [
        # Our own polls: at most 0.25 s apart (bulk_poll_max_seconds below).
        ("ingest", 0.05),
        # simple-salesforce's: its pause grows to about 2.1 s from a wait of
        # 1 s (docs/crm-apis.md#salesforce-bulk-api-20).
        ("query", 1.0),
    ],
)
def test_a_bulk_job_longer_than_the_stall_limit_keeps_its_lease_and_health(
    kind: str,
    bulk_wait: float,
    fresh_sandboxes: Sandboxes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines: Lines,
) -> None:
    sf = fresh_sandboxes.salesforce
    connection: dict[str, Any] = {
        "crm": "salesforce",
        "auth": "jwt",
        "login_url": sf.login_url,
        "ca_file": str(sf.ca_file),
        "client_id": sf.client_id,
        "username": sf.username,
        "private_key_file": str(sf.private_key_file),
        # Every pull through a Bulk query job, every write through an ingest job.
        "bulk_read_threshold": 1,
        "bulk_write_threshold": 10,
        # Short bounds on every silent wait, so that a short stall limit is valid.
        "timeout_seconds": 1.5,
        "bulk_poll_max_seconds": 0.25,
    }
    settings = Settings.model_validate(
        {
            "connections": {"sf": connection},
            # SQLite: no server-side bounds to stay above.
            "store": {
                "url": f"sqlite:///{tmp_path / 'state.db'}",
                "statement_timeout_seconds": 0,
                "lock_timeout_seconds": 0,
            },
            "sync": {
                "lease_seconds": 5,
                "stall_seconds": STALL,
                "retry_initial_wait_seconds": 0.1,
                "retry_max_wait_seconds": 0.5,
            },
            "service": {
                "port": 0,
                "jobs": [{"connection": "sf", "object": "account", "interval_minutes": 600}],
            },
        }
    )
    engines = shipped_engines()
    provisioner = salesforce_adapter(sf, attempts=3)
    try:
        provision(provisioner, engines, "salesforce", objects=("account",))
    finally:
        provisioner.close()
    rows = sum(1 for _ in sf.org.records("Account"))
    # The slow job takes LENGTH stall limits; the run marks no step until it
    # is over. The other is done at its first poll.
    bulk = bulk_service(sf.app).settings
    if kind == "ingest":
        monkeypatch.setattr(bulk, "ingest_rows_per_second", rows / (LENGTH * STALL))
    else:
        monkeypatch.setattr(bulk, "ingest_rows_per_second", 1e9)
        monkeypatch.setattr(bulk, "polls_per_state", 10**9)
        monkeypatch.setattr(bulk, "complete_after", LENGTH * STALL)

    def adapter(name: str, conn: Any, retry: RetryPolicy, cache: Store | None) -> CrmAdapter:
        assert isinstance(conn, SalesforceConnection)
        return SalesforceAdapter(name, conn, retry=retry, cache=cache, bulk_wait=bulk_wait)  # type: ignore[return-value]

    store = Store.from_settings(settings.store)
    replica = JobClaims(
        store.engine, locks_for(store.engine), lease_seconds=5, purpose="segsync run"
    )
    service = Service(settings, adapter_factory=adapter)
    health: list[tuple[str, int, str]] = []
    answers: list[str] = []
    try:
        service.start()  # the account job runs at once
        assert service.http is not None
        url = f"http://127.0.0.1:{service.http.port}/healthz"

        # From the run's start (its claim taken before) to its end.
        until(lambda: store.runs(1, object="account"), PATIENCE, "the account run to start")

        def ended() -> bool:
            jobs = [j for j in bulk_service(sf.app).jobs() if j.kind == kind]
            state = jobs[-1].state if jobs else "none"
            health.append((state, *_healthz(url)))
            runs = store.runs(1, object="account")
            if runs[0].status != "running":
                return True
            # Taken with the lock: the run ended and let it go since. Stolen:
            # its lease lapsed while it ran (it had stopped renewing it).
            with replica.claim("sf.account") as got:
                answers.append("busy" if isinstance(got, Busy) else got.mode)
            return False

        until(ended, PATIENCE, "the account run to end")
    finally:
        service.stop()
        replica.close()

    try:
        (run,) = store.runs(5, object="account")
        assert run.status == "succeeded", run.message
        assert run.counts.written == rows
        (job,) = [j for j in bulk_service(sf.app).jobs() if j.kind == "ingest"]
        assert job.state == "JobComplete" and len(job.successes) == rows
        # /healthz was asked while the slow job ran, and was ok every time.
        assert any(state in RUNNING for state, _, _ in health), health
        assert all((status, body) == (200, "ok\n") for _, status, body in health), health
        # The lease stayed the service's: the other replica never took the job over.
        assert "busy" in answers and "steal" not in answers, answers
        assert not [line for line in lines.lines if "stalled" in line], lines.lines
    finally:
        store.close()
