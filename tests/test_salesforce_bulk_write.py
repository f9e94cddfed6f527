"""Bulk 2.0 writes are idempotent: under faults, one ingest job per chunk, each row written once.

Real simple-salesforce over real HTTP against the Salesforce sandbox, with its
fault injection: 5xx answers, dropped connections and expired sessions. The
sandbox's jobs are the record of what was written: every row an ingest job
processed was applied to the org.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import pytest
from sandbox_fixtures import TIERS, salesforce_adapter

from connector.crm.base import RecordUpdate
from connector.crm.salesforce import SalesforceAdapter
from segsync_sandbox.common import LogEntry
from segsync_sandbox.salesforce import SalesforceSandbox
from segsync_sandbox.salesforce.bulk import Job, bulk_service


def _adapter(sandbox: SalesforceSandbox, **extra: Any) -> SalesforceAdapter:
    return salesforce_adapter(sandbox, attempts=30, **extra)


def _accounts(sandbox: SalesforceSandbox, n: int) -> list[str]:
    return [sandbox.org.insert("Account", {"Name": f"Acme {i:05d}"}) for i in range(n)]


def _ingest_jobs(sandbox: SalesforceSandbox) -> list[Job]:
    return [j for j in bulk_service(sandbox.app).jobs() if j.kind == "ingest"]


def _is_poll(entry: LogEntry) -> bool:
    """A status poll of an ingest job (refused and faulted calls carry no kind in the log)."""
    return entry.method == "GET" and re.fullmatch(r".*/jobs/ingest/\w+/?", entry.path) is not None


def _written(sandbox: SalesforceSandbox) -> Counter[str]:
    """How many times each record id was applied by an ingest job or a Collections call."""
    applied: Counter[str] = Counter()
    for job in _ingest_jobs(sandbox):
        applied.update(record_id for record_id, _row in job.successes)
        applied.update(record_id for record_id, _error, _row in job.failures)
    for entry in sandbox.app.log.entries():
        if entry.kind == "collections.update" and entry.status == 200:
            applied.update(entry.records)
    return applied


def _write(
    sandbox: SalesforceSandbox, adapter: SalesforceAdapter, ids: list[str]
) -> list[RecordUpdate]:
    updates = [RecordUpdate(i, {"Segsync_Tier__c": TIERS[n % 3]}) for n, i in enumerate(ids)]
    outcomes = adapter.write("account", updates)
    assert [o.id for o in outcomes] == ids
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
    return updates


def _landed(sandbox: SalesforceSandbox, updates: list[RecordUpdate]) -> None:
    for update in updates:
        record = sandbox.org.get("Account", update.id)
        assert record is not None
        assert record.get("Segsync_Tier__c") == update.fields["Segsync_Tier__c"]


def test_five_xx_and_expired_sessions_while_polling_make_one_job_per_chunk(
    tier_org: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connector.crm.salesforce.bulk.BULK_WRITE_CHUNK", 400)
    ids = _accounts(tier_org, 1_000)
    adapter = _adapter(tier_org)
    adapter.authenticate()
    # Jobs stay InProgress for many polls, so faults land on polls of closed jobs.
    bulk_service(tier_org.app).settings.polls_per_state = 6
    tier_org.app.faults.update(error_rate=0.2, session_expiry_after=7, seed=11)
    try:
        updates = _write(tier_org, adapter, ids)
    finally:
        adapter.close()

    polls = Counter(e.status for e in tier_org.app.log.entries() if _is_poll(e))
    assert polls[500] + polls[503] >= 3, "too few polls of a closed job failed"
    assert polls[401] >= 1, "no session expired while polling"
    # Three chunks (400 + 400 + 200): exactly three jobs, every row applied exactly once.
    jobs = _ingest_jobs(tier_org)
    assert [len(j.successes) for j in jobs] == [400, 400, 200]
    assert all(j.state == "JobComplete" for j in jobs)
    assert _written(tier_org) == Counter(ids)
    uploads = [e for e in tier_org.app.log.entries() if e.kind == "bulk.ingest.upload"]
    assert Counter(r for e in uploads if e.status == 201 for r in e.records) == Counter(ids)
    _landed(tier_org, updates)


def test_dropped_connections_on_every_step_still_make_one_job(tier_org: SalesforceSandbox) -> None:
    ids = _accounts(tier_org, 300)
    adapter = _adapter(tier_org, timeout_seconds=0.3)
    adapter.authenticate()
    bulk_service(tier_org.app).settings.polls_per_state = 4
    tier_org.app.faults.update(timeout_rate=0.25, timeout_seconds=0.5, error_rate=0.1, seed=5)
    try:
        updates = _write(tier_org, adapter, ids)
    finally:
        adapter.close()

    # The server logs a dropped request once its injected stall ends.
    deadline = time.monotonic() + 60
    while not any(_is_poll(e) and e.status == 0 for e in tier_org.app.log.entries()):
        assert time.monotonic() < deadline, "no poll lost its connection"
        time.sleep(0.05)
    assert len(_ingest_jobs(tier_org)) == 1
    assert _written(tier_org) == Counter(ids)
    _landed(tier_org, updates)


def test_a_step_whose_answer_was_lost_is_checked_before_it_is_repeated(
    tier_org: SalesforceSandbox,
) -> None:
    ids = _accounts(tier_org, 300)
    adapter = _adapter(tier_org)
    adapter.authenticate()
    bulk_service(tier_org.app).settings.polls_per_state = 3
    # The sandbox serves the call, then drops the connection: upload and close
    # landed, but the client cannot know.
    tier_org.app.faults.update(lost_answer_rate=0.4, seed=3)
    try:
        updates = _write(tier_org, adapter, ids)
    finally:
        adapter.close()

    lost = {(e.method, e.kind) for e in tier_org.app.log.entries() if e.status == 0}
    assert {("PUT", "bulk.ingest.upload"), ("PATCH", "bulk.ingest.close")} <= lost
    repeats = [
        e for e in tier_org.app.log.entries() if e.kind == "bulk.ingest.upload" and e.status == 409
    ]
    jobs = _ingest_jobs(tier_org)
    with_data = [j for j in jobs if j.columns]
    assert len(with_data) == 1
    # A create whose answer was lost leaves an Open job with no rows: it writes nothing.
    assert all(j.state == "Open" and not j.columns for j in jobs if j not in with_data)
    assert _written(tier_org) == Counter(ids)
    # The upload was sent again once and refused (a job takes one upload); the
    # close was not sent again: reading the job showed it closed.
    assert len(repeats) == 1
    closes = [e for e in tier_org.app.log.entries() if e.kind == "bulk.ingest.close"]
    assert len(closes) == 1
    _landed(tier_org, updates)


def _kinds(sandbox: SalesforceSandbox) -> Counter[str]:
    return Counter(e.kind for e in sandbox.app.log.entries())


@pytest.mark.parametrize(("org_rate", "most_polls"), [(125.0, 1), (50.0, 3)])
def test_status_polls_wait_as_long_as_the_job_should_take(
    tier_org: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch, org_rate: float, most_polls: int
) -> None:
    # segsync expects 100 rows / s: 40 rows, a first poll after 0.4 s. An org at
    # 125 rows / s is done by then (one poll); one at 50 rows / s takes 0.8 s,
    # and the polls after the first back off (0.2 s, 0.4 s, ...) instead of
    # coming every 50 ms (about 16 polls).
    monkeypatch.setattr("connector.crm.salesforce.bulk.BULK_ROWS_PER_SECOND", 100)
    ids = _accounts(tier_org, 40)
    bulk_service(tier_org.app).settings.ingest_rows_per_second = org_rate
    adapter = salesforce_adapter(tier_org, attempts=3, sleep=time.sleep, bulk_wait=0.05)
    tier_org.app.log.clear()

    updates = _write(tier_org, adapter, ids)

    _landed(tier_org, updates)
    kinds = _kinds(tier_org)
    assert 1 <= kinds["bulk.ingest.status"] <= most_polls
    assert kinds["bulk.ingest.create"] == 1
    # The job's counters say all 40 landed: no result CSV is read.
    assert kinds["bulk.ingest.results"] == 0


def test_a_job_with_failed_rows_reads_its_results(tier_org: SalesforceSandbox) -> None:
    ids = _accounts(tier_org, 20)
    adapter = _adapter(tier_org)
    updates = [RecordUpdate(i, {"Segsync_Tier__c": TIERS[n % 3]}) for n, i in enumerate(ids)]
    updates[3] = RecordUpdate(ids[3], {"Segsync_Tier__c": "Tier 9"})  # not in the picklist
    tier_org.app.log.clear()

    outcomes = adapter.write("account", updates)

    assert [o.ok for o in outcomes] == [n != 3 for n in range(20)]
    assert outcomes[3].code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert _kinds(tier_org)["bulk.ingest.results"] >= 1
