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
from collections.abc import Iterator
from typing import Any

import pytest

from connector.config import SalesforceConnection
from connector.crm.base import RecordUpdate
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce import SalesforceAdapter
from segsync_sandbox.common import LogEntry
from segsync_sandbox.salesforce import CustomFieldSpec, SalesforceSandbox, start_salesforce
from segsync_sandbox.salesforce.bulk import Job, bulk_service

TIERS = ("Tier 1", "Tier 2", "Tier 3")


@pytest.fixture(scope="module")
def _server() -> Iterator[SalesforceSandbox]:
    sandbox = start_salesforce(client_id="bulk-write-test")
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def sfbox(_server: SalesforceSandbox) -> Iterator[SalesforceSandbox]:
    """The module's sandbox serving a fresh org with a tier picklist, no jobs, no faults."""
    _server.reset()
    bulk_service(_server.app).reset()
    _server.org.add_custom_field(
        "Account",
        CustomFieldSpec(
            "Account.Segsync_Tier__c", "Picklist", "Tier", picklist_values=TIERS, restricted=True
        ),
    )
    yield _server
    _server.reset()
    bulk_service(_server.app).reset()


def _adapter(sandbox: SalesforceSandbox, **extra: Any) -> SalesforceAdapter:
    settings = SalesforceConnection(
        auth="jwt",
        login_url=sandbox.login_url,
        ca_file=sandbox.ca_file,
        client_id=sandbox.client_id,
        username=sandbox.username,
        private_key_file=sandbox.private_key_file,
        bulk_write_threshold=10,
        **extra,
    )
    policy = RetryPolicy(attempts=30, initial_wait=0.0, max_wait=0.0, sleep=lambda _s: None)
    return SalesforceAdapter("sf", settings, retry=policy, bulk_wait=0)


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
    sfbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connector.crm.salesforce.bulk.BULK_WRITE_CHUNK", 400)
    ids = _accounts(sfbox, 1_000)
    adapter = _adapter(sfbox)
    adapter.authenticate()
    # Jobs stay InProgress for many polls, so faults land on polls of closed jobs.
    bulk_service(sfbox.app).settings.polls_per_state = 6
    sfbox.app.faults.update(error_rate=0.2, session_expiry_after=7, seed=11)
    try:
        updates = _write(sfbox, adapter, ids)
    finally:
        adapter.close()

    polls = Counter(e.status for e in sfbox.app.log.entries() if _is_poll(e))
    assert polls[500] + polls[503] >= 3, "too few polls of a closed job failed"
    assert polls[401] >= 1, "no session expired while polling"
    # Three chunks (400 + 400 + 200): exactly three jobs, every row applied exactly once.
    jobs = _ingest_jobs(sfbox)
    assert [len(j.successes) for j in jobs] == [400, 400, 200]
    assert all(j.state == "JobComplete" for j in jobs)
    assert _written(sfbox) == Counter(ids)
    uploads = [e for e in sfbox.app.log.entries() if e.kind == "bulk.ingest.upload"]
    assert Counter(r for e in uploads if e.status == 201 for r in e.records) == Counter(ids)
    _landed(sfbox, updates)


def test_dropped_connections_on_every_step_still_make_one_job(sfbox: SalesforceSandbox) -> None:
    ids = _accounts(sfbox, 300)
    adapter = _adapter(sfbox, timeout_seconds=0.3)
    adapter.authenticate()
    bulk_service(sfbox.app).settings.polls_per_state = 4
    sfbox.app.faults.update(timeout_rate=0.25, timeout_seconds=0.5, error_rate=0.1, seed=5)
    try:
        updates = _write(sfbox, adapter, ids)
    finally:
        adapter.close()

    # The server logs a dropped request once its injected stall ends.
    deadline = time.monotonic() + 5
    while not any(_is_poll(e) and e.status == 0 for e in sfbox.app.log.entries()):
        assert time.monotonic() < deadline, "no poll lost its connection"
        time.sleep(0.05)
    assert len(_ingest_jobs(sfbox)) == 1
    assert _written(sfbox) == Counter(ids)
    _landed(sfbox, updates)


def test_a_step_whose_answer_was_lost_is_checked_before_it_is_repeated(
    sfbox: SalesforceSandbox,
) -> None:
    ids = _accounts(sfbox, 300)
    adapter = _adapter(sfbox)
    adapter.authenticate()
    bulk_service(sfbox.app).settings.polls_per_state = 3
    # The sandbox serves the call, then drops the connection: upload and close
    # landed, but the client cannot know.
    sfbox.app.faults.update(lost_answer_rate=0.4, seed=3)
    try:
        updates = _write(sfbox, adapter, ids)
    finally:
        adapter.close()

    lost = {(e.method, e.kind) for e in sfbox.app.log.entries() if e.status == 0}
    assert {("PUT", "bulk.ingest.upload"), ("PATCH", "bulk.ingest.close")} <= lost
    repeats = [
        e for e in sfbox.app.log.entries() if e.kind == "bulk.ingest.upload" and e.status == 409
    ]
    jobs = _ingest_jobs(sfbox)
    with_data = [j for j in jobs if j.columns]
    assert len(with_data) == 1
    # A create whose answer was lost leaves an Open job with no rows: it writes nothing.
    assert all(j.state == "Open" and not j.columns for j in jobs if j not in with_data)
    assert _written(sfbox) == Counter(ids)
    # The upload was sent again once and refused (a job takes one upload); the
    # close was not sent again: reading the job showed it closed.
    assert len(repeats) == 1
    closes = [e for e in sfbox.app.log.entries() if e.kind == "bulk.ingest.close"]
    assert len(closes) == 1
    _landed(sfbox, updates)


def _kinds(sandbox: SalesforceSandbox) -> Counter[str]:
    return Counter(e.kind for e in sandbox.app.log.entries())


@pytest.mark.parametrize(("org_rate", "most_polls"), [(125.0, 1), (50.0, 3)])
def test_status_polls_wait_as_long_as_the_job_should_take(
    sfbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch, org_rate: float, most_polls: int
) -> None:
    # segsync expects 100 rows / s: 40 rows, a first poll after 0.4 s. An org at
    # 125 rows / s is done by then (one poll); one at 50 rows / s takes 0.8 s,
    # and the polls after the first back off (0.2 s, 0.4 s, ...) instead of
    # coming every 50 ms (about 16 polls).
    monkeypatch.setattr("connector.crm.salesforce.bulk.BULK_ROWS_PER_SECOND", 100)
    ids = _accounts(sfbox, 40)
    bulk_service(sfbox.app).settings.ingest_rows_per_second = org_rate
    settings = SalesforceConnection(
        auth="jwt",
        login_url=sfbox.login_url,
        ca_file=sfbox.ca_file,
        client_id=sfbox.client_id,
        username=sfbox.username,
        private_key_file=sfbox.private_key_file,
        bulk_write_threshold=10,
    )
    policy = RetryPolicy(attempts=3, initial_wait=0.0, max_wait=0.0, sleep=time.sleep)
    adapter = SalesforceAdapter("sf", settings, retry=policy, bulk_wait=0.05)
    sfbox.app.log.clear()

    updates = _write(sfbox, adapter, ids)

    _landed(sfbox, updates)
    kinds = _kinds(sfbox)
    assert 1 <= kinds["bulk.ingest.status"] <= most_polls
    assert kinds["bulk.ingest.create"] == 1
    # The job's counters say all 40 landed: no result CSV is read.
    assert kinds["bulk.ingest.results"] == 0


def test_a_job_with_failed_rows_reads_its_results(sfbox: SalesforceSandbox) -> None:
    ids = _accounts(sfbox, 20)
    adapter = _adapter(sfbox)
    updates = [RecordUpdate(i, {"Segsync_Tier__c": TIERS[n % 3]}) for n, i in enumerate(ids)]
    updates[3] = RecordUpdate(ids[3], {"Segsync_Tier__c": "Tier 9"})  # not in the picklist
    sfbox.app.log.clear()

    outcomes = adapter.write("account", updates)

    assert [o.ok for o in outcomes] == [n != 3 for n in range(20)]
    assert outcomes[3].code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert _kinds(sfbox)["bulk.ingest.results"] >= 1
