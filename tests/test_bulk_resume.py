"""Bulk 2.0 ingest jobs survive a crash and a lost create answer (issue 16).

Real simple-salesforce over real HTTP against the Salesforce sandbox. Each
ingest job is noted in a journal before each step (its id right after the
create, before the upload); ``resume`` finishes what a crashed process left:
an uploaded job is closed and waited for (its rows land once), an Open job
whose upload is unknown or whose id was never learned is aborted. A create
whose answer is lost is found by listing the org's jobs and reused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sandbox_fixtures import TIERS, salesforce_adapter

from connector.crm.base import JobNote, RecordUpdate
from connector.crm.salesforce import SalesforceAdapter
from connector.crm.salesforce.bulk import IngestJob, _ingest_csv
from segsync_sandbox.salesforce import SalesforceSandbox
from segsync_sandbox.salesforce.bulk import Job, bulk_service
from segsync_sandbox.salesforce.org import UI_USER_ID


class Journal:
    """An in-memory journal (the runner's is the state store: connector/sync/bulkjobs.py)."""

    def __init__(self) -> None:
        self.kept: dict[str, JobNote] = {}
        self.steps: list[str] = []

    def note(self, note: JobNote) -> None:
        self.kept[note.marker] = note
        self.steps.append(note.step)

    def done(self, marker: str) -> None:
        self.kept.pop(marker, None)

    def notes(self) -> list[JobNote]:
        return list(self.kept.values())


@pytest.fixture
def adapter(tier_org: SalesforceSandbox) -> Iterator[SalesforceAdapter]:
    made = salesforce_adapter(tier_org, attempts=10)
    made.authenticate()
    yield made
    made.close()


def _updates(sandbox: SalesforceSandbox, n: int) -> list[RecordUpdate]:
    ids = [sandbox.org.insert("Account", {"Name": f"Acme {i:05d}"}) for i in range(n)]
    return [RecordUpdate(i, {"Segsync_Tier__c": TIERS[k % 3]}) for k, i in enumerate(ids)]


def _jobs(sandbox: SalesforceSandbox) -> list[Job]:
    return [j for j in bulk_service(sandbox.app).jobs() if j.kind == "ingest"]


def _applied(sandbox: SalesforceSandbox) -> Counter[str]:
    return Counter(r for job in _jobs(sandbox) for r, _row in job.successes)


def _note(job: IngestJob) -> JobNote:
    return JobNote("m", job.job_id, "created", job._note.since)


def _session(adapter: SalesforceAdapter) -> Any:
    return adapter._session  # the adapter's one session, to drive a job step by step


def test_a_lost_create_answer_reuses_the_job_it_made(
    tier_org: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    updates = _updates(tier_org, 50)
    tier_org.app.faults.update(lost_answers={"bulk.ingest.create": 1})
    journal = Journal()
    outcomes = adapter.write("account", updates, journal)
    assert all(o.ok for o in outcomes)
    # The create landed but its answer did not: the retry listed the jobs and
    # used the one it had made. One job, complete, nothing left Open.
    creates = [e for e in tier_org.app.log.entries() if e.kind == "bulk.ingest.create"]
    assert len(creates) == 1
    assert any(e.kind == "bulk.ingest.list" for e in tier_org.app.log.entries())
    assert [j.state for j in _jobs(tier_org)] == ["JobComplete"]
    assert _applied(tier_org) == Counter(u.id for u in updates)
    # Noted before each step, forgotten once its results were read.
    assert journal.steps == ["creating", "created", "uploaded", "closed"]
    assert journal.notes() == []


def test_an_uploaded_job_left_by_a_crash_is_finished_not_repeated(
    tier_org: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    updates = _updates(tier_org, 40)
    journal = Journal()
    # A process uploads its chunk and dies before closing the job.
    job = IngestJob(_session(adapter), "Account", 0, journal)
    job.create()
    job.upload(_ingest_csv(updates))
    assert [j.state for j in _jobs(tier_org)] == ["Open"]
    (note,) = journal.notes()
    assert (note.job_id, note.step) == (job.job_id, "uploaded")

    done = adapter.resume("account", journal)
    assert len(done) == 1 and job.job_id in done[0]
    assert [j.state for j in _jobs(tier_org)] == ["JobComplete"]
    assert _applied(tier_org) == Counter(u.id for u in updates)
    assert journal.notes() == []
    # A second resume finds nothing to do.
    assert adapter.resume("account", journal) == []


def test_a_closed_job_left_by_a_crash_is_waited_for(
    tier_org: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    updates = _updates(tier_org, 30)
    journal = Journal()
    bulk_service(tier_org.app).settings.polls_per_state = 3
    job = IngestJob(_session(adapter), "Account", 0, journal)
    job.create()
    job.upload(_ingest_csv(updates))
    job.close()
    assert journal.notes()[0].step == "closed"
    adapter.resume("account", journal)
    assert [j.state for j in _jobs(tier_org)] == ["JobComplete"]
    assert _applied(tier_org) == Counter(u.id for u in updates)
    assert journal.notes() == []


def test_an_open_job_whose_upload_is_unknown_is_aborted(
    tier_org: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    journal = Journal()
    job = IngestJob(_session(adapter), "Account", 0, journal)
    job.create()
    assert journal.notes()[0].step == "created"
    adapter.resume("account", journal)
    assert [j.state for j in _jobs(tier_org)] == ["Aborted"]
    assert journal.notes() == []


def test_a_job_whose_id_was_never_learned_is_found_and_aborted(
    tier_org: SalesforceSandbox, adapter: SalesforceAdapter
) -> None:
    journal = Journal()
    service = bulk_service(tier_org.app)
    # An org with many jobs: the list comes 1,000 a page, ours on the second.
    first = IngestJob(_session(adapter), "Account", 0)
    first.create()
    template = service.jobs()[0]
    for n in range(1_200):
        other = replace(template, id=f"750Busy{n:011d}", created_by=UI_USER_ID)
        service._jobs[other.id] = other
    IngestJob(_session(adapter), "Account", 0, None, _note(first)).abort()
    job = IngestJob(_session(adapter), "Account", 0, journal)
    job.create()
    # The process died before the create's answer was noted: no id in the journal.
    (note,) = journal.notes()
    journal.kept[note.marker] = replace(note, job_id=None, step="creating")
    # A person's Open job and one of ours on another object are not this one: left alone.
    ours = next(j for j in service.jobs() if j.id == job.job_id)
    for object_name, user in (("Account", UI_USER_ID), ("Contact", ours.created_by)):
        other = replace(ours, id=f"750{object_name[:3]}00000Other", object=object_name)
        service._jobs[other.id] = replace(other, created_by=user)
    tier_org.app.log.clear()
    done = adapter.resume("account", journal)
    assert len(done) == 1 and str(job.job_id) in done[0]
    lists = [e for e in tier_org.app.log.entries() if e.kind == "bulk.ingest.list"]
    assert len(lists) == 2
    states = Counter(j.state for j in _jobs(tier_org) if j.id != first.job_id)
    assert states == {"Open": 1_202, "Aborted": 1}
    assert next(j for j in _jobs(tier_org) if j.id == job.job_id).state == "Aborted"
    assert journal.notes() == []
