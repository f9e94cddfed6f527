"""Bulk API 2.0: query jobs for large pulls and ingest jobs for large writes.

A query's CSV values are converted back to what REST returns, so a bulk pull
yields the same records a REST pull would. A query that fails mid-stream
restarts as a new job from the last stamp it yielded, skipping the ids
already yielded there. An ingest job's failed and unprocessed rows are
reported so the caller can re-send them through sObject Collections.

An ingest job is driven step by step (:class:`IngestJob`): create, upload,
close, each poll and each result read are retried on their own, and once the
job exists no failure makes another one for the same rows; a step that may
have landed without an answer reads the job before repeating itself.

Each ingest job is noted in the run's :class:`~connector.crm.base.JobJournal`
(the state store) before each step: before the create (with no id yet), right
after it (its id, before the upload), after the upload and after the close.
A crashed run's notes are resumed by the next run (:meth:`Bulk.resume`)
before it plans: an uploaded job is closed and waited for, so its writes land
once; an Open job whose upload is not known to have landed is aborted (it
wrote nothing); a job whose create was never answered is found by listing
the org's ingest jobs and aborted. A create retried in the same process
first looks for the job its lost answer created, and uses it.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.format import format_soql

from connector.crm.base import (
    CrmRecord,
    JobJournal,
    JobNote,
    ObjectName,
    RecordUpdate,
    WriteOutcome,
    parse_stamp,
)
from connector.crm.limits import SF_QUERY_PAGE
from connector.crm.salesforce.describe import Describer
from connector.crm.salesforce.errors import LOCK_ERROR, is_expired
from connector.crm.salesforce.session import Client, SalesforceSession
from connector.crm.salesforce.soql import (
    PARENT,
    PARENT_ID,
    SOBJECTS,
    STAMP,
    ParentMemory,
    Resume,
    finish,
    soql,
    window,
)
from connector.crm.salesforce.values import from_cell, to_cell
from connector.errors import FatalSyncError, RetriableError, SegsyncError

#: Updates per Bulk 2.0 ingest job when the bulk path is taken.
BULK_WRITE_CHUNK = 50_000
# Rows per Bulk 2.0 result page; each is re-cut into CrmRecord pages of 2,000.
BULK_RESULT_PAGE = 10_000
#: Longest an ingest job may run before segsync gives up on it (Salesforce's own limit).
BULK_JOB_TIMEOUT = 24 * 3600
#: Rows an org is assumed to apply per second once an ingest job is closed: the
#: first status poll waits rows ÷ this (docs/crm-apis.md, "Bulk API 2.0").
BULK_ROWS_PER_SECOND = 2_000

# Bulk 2.0 job states and the ingest operation, as the API spells them.
OPEN = "Open"
JOB_COMPLETE = "JobComplete"
FAILED = "Failed"
ABORTED = "Aborted"
UPLOAD_COMPLETE = "UploadComplete"
IN_PROGRESS = "InProgress"
_UPDATE = "update"
#: How far before the noted send time a job whose create was never answered may
#: carry its ``createdDate`` (the org's clock against this machine's).
CLOCK_SKEW = timedelta(minutes=10)

T = TypeVar("T")


class Bulk:
    """Bulk 2.0 jobs against one org.

    Args:
        session: the org's session.
        describer: describes, for the types that turn CSV cells back into values.
        parents: where pulled contacts' accounts are remembered.
        wait: seconds simple-salesforce waits before polling a job.

    """

    def __init__(
        self, session: SalesforceSession, describer: Describer, parents: ParentMemory, wait: float
    ) -> None:
        self._session = session
        self._describer = describer
        self._parents = parents
        self._wait = wait

    def query(
        self,
        obj: ObjectName,
        selected: Sequence[str],
        fields: Sequence[str],
        parents: Sequence[str],
        resume: Resume,
        read_at: datetime | None = None,
    ) -> Iterator[list[CrmRecord]]:
        """Pages of up to 2,000 records from a query job on ``selected``, after ``resume``.

        ``read_at``: when the pull began (the org's clock, a lower bound), for
        every record's :attr:`~connector.crm.base.CrmRecord.read_at`.
        """
        sobject = SOBJECTS[obj]
        session = self._session
        described = self._describer.fields(sobject)
        types = {n.lower(): str(f.get("type")) for n, f in described.items()}
        # Keys as the caller spelled them, else in the org's casing (as REST does).
        names = {n.lower(): n for n in described}
        names.update({f.lower(): f for f in ("Id", STAMP, PARENT_ID, *fields)})
        if parents:
            for name, f in self._describer.fields(PARENT).items():
                types[f"{PARENT}.{name}".lower()] = str(f.get("type"))
        state: dict[str, Any] = {"pages": None, "generation": -1}

        def next_csv() -> str | None:
            """The next CSV page; after a failure, a new job resumes where the pull stands."""
            session.budget.check()
            client = session.client()
            if state["pages"] is None or state["generation"] != client.generation:
                if state["generation"] != -1 and not resume.resumable:
                    raise FatalSyncError(
                        f"Salesforce bulk query {sobject}: the query job failed after more than "
                        f"{resume.max_ids:,} records sharing the modstamp {resume.floor}; it "
                        "cannot resume inside that stamp, so this run stops before writing "
                        "anything and the next run reads again from the watermark"
                    )
                where, args = window(resume.floor, resume.own_user)
                query = format_soql(soql(selected, sobject, where), *args)
                state["pages"] = client.bulk(sobject).query(
                    query, max_records=BULK_RESULT_PAGE, wait=self._wait
                )
                state["generation"] = client.generation
            try:
                return str(next(state["pages"]))
            except StopIteration:
                return None
            except Exception as exc:
                state["pages"] = None
                if is_expired(exc):
                    session.reauthenticate(client.generation, "bulk query")
                    raise RetriableError("Salesforce bulk query: session renewed") from None
                raise session.fail(exc, "bulk query") from None

        while True:
            text = session.retry.call(next_csv)
            if text is None:
                return
            reader = csv.reader(io.StringIO(text, newline=""))
            header = next(reader, None)
            if header is None:
                continue
            batch: list[CrmRecord] = []
            for row in reader:
                if not row:
                    continue
                record = self._record(header, row, types, names, fields, parents, obj, read_at)
                if resume.keep(record):
                    batch.append(record)
                if len(batch) >= SF_QUERY_PAGE:
                    resume.advance(batch)
                    yield batch
                    batch = []
            if batch:
                resume.advance(batch)
                yield batch

    def _record(
        self,
        header: Sequence[str],
        row: Sequence[str],
        types: Mapping[str, str],
        names: Mapping[str, str],
        fields: Sequence[str],
        parents: Sequence[str],
        obj: ObjectName,
        read_at: datetime | None = None,
    ) -> CrmRecord:
        """A Bulk CSV row as the CrmRecord REST would have produced."""
        values: dict[str, Any] = {}
        relation: dict[str, Any] = {}
        for column, cell in zip(header, row, strict=False):
            value = from_cell(cell, types.get(column.lower()))
            if column.lower().startswith(PARENT.lower() + "."):
                relation[column.split(".", 1)[1].lower()] = value
            else:
                values[names.get(column.lower(), column)] = value
        parent: dict[str, Any] | None = None
        if parents and relation.get("id"):
            parent = {p: relation.get(p.lower()) for p in parents}
        return finish(values, parent, fields, obj == "contact", self._parents, read_at)

    def ingest(
        self,
        sobject: str,
        updates: Sequence[RecordUpdate],
        journal: JobJournal | None = None,
    ) -> dict[str, WriteOutcome]:
        """Update ``updates`` (in this order) through ingest jobs; unprocessed rows are absent.

        One job per chunk of :data:`BULK_WRITE_CHUNK` rows, each step (create,
        upload, close, every poll, every result read) retried on its own, so a
        failure after the job exists never makes a second job for the same rows;
        each step noted in ``journal`` first, so a crash never does either.
        """
        outcomes: dict[str, WriteOutcome] = {}
        for start in range(0, len(updates), BULK_WRITE_CHUNK):
            chunk = updates[start : start + BULK_WRITE_CHUNK]
            job = IngestJob(self._session, sobject, self._wait, journal)
            info = job.run(_ingest_csv(chunk), len(chunk))
            if _all_succeeded(info, len(chunk)):
                # The job's own counters say every row landed: no result CSV to read.
                outcomes.update((u.id, WriteOutcome(u.id, True)) for u in chunk)
            else:
                outcomes.update(self._ingest_results(sobject, job.require()))
            job.forget()
        return outcomes

    def resume(self, sobject: str, journal: JobJournal) -> list[str]:
        """Finish or abort the ingest jobs a crashed run noted in ``journal``; what was done.

        - no id (the create's answer never came): the org's Open update jobs
          on ``sobject`` created by the integration user since the note are
          aborted (they hold no rows: the upload comes after the id is noted);
        - Open and noted ``created`` (the upload may not have landed): aborted,
          its rows are planned again;
        - Open and noted ``uploaded``: closed, then waited for;
        - UploadComplete or InProgress: waited for, so its rows land once
          and the next plan finds them written;
        - ended (JobComplete, Failed, Aborted) or unknown to the org: nothing.
        """
        done: list[str] = []
        for note in journal.notes():
            job = IngestJob(self._session, sobject, self._wait, journal, note)
            if note.job_id is None:
                for found in job.find_open():
                    IngestJob(self._session, sobject, self._wait, None, found).abort()
                    done.append(f"aborted ingest job {found.job_id}: its create was never answered")
                journal.done(note.marker)
                continue
            try:
                state = job.state()
            except SegsyncError:
                done.append(f"ingest job {note.job_id} is not readable any more: left alone")
                journal.done(note.marker)
                continue
            if state == OPEN and note.step == "created":
                job.abort()
                done.append(f"aborted ingest job {note.job_id}: Open, its upload unknown")
            elif state in (OPEN, UPLOAD_COMPLETE, IN_PROGRESS):
                if state == OPEN:
                    job.close()
                try:
                    job.wait()
                    done.append(f"finished ingest job {note.job_id} a crashed run left {state}")
                except FatalSyncError as exc:
                    done.append(str(exc))
            journal.done(note.marker)
        return done

    def _ingest_results(self, sobject: str, job_id: str) -> dict[str, WriteOutcome]:
        call = self._session.call
        out: dict[str, WriteOutcome] = {}
        ok_text = call("bulk results", lambda c: c.bulk(sobject).get_successful_records(job_id))
        for row in csv.DictReader(io.StringIO(str(ok_text), newline="")):
            record_id = row.get("sf__Id") or row.get("Id") or ""
            out[record_id] = WriteOutcome(record_id, True)
        failed_text = call("bulk results", lambda c: c.bulk(sobject).get_failed_records(job_id))
        for row in csv.DictReader(io.StringIO(str(failed_text), newline="")):
            record_id = row.get("Id") or row.get("sf__Id") or ""
            code, _, message = (row.get("sf__Error") or "ERROR:").partition(":")
            out[record_id] = WriteOutcome(record_id, False, code, message, code == LOCK_ERROR)
        # Unprocessed rows are simply absent: the caller re-sends them.
        return out


def _all_succeeded(info: Mapping[str, Any], rows: int) -> bool:
    """Whether a completed job's counters show all ``rows`` processed and none failed."""
    try:
        processed = int(info.get("numberRecordsProcessed", -1))
        failed = int(info.get("numberRecordsFailed", -1))
    except (TypeError, ValueError):
        return False
    return processed == rows and failed == 0


def poll_waits(rows: int | None, floor: float, ceiling: float) -> Iterator[float]:
    """Pauses before each status poll of an ingest job of ``rows`` rows.

    The first is the time the org is expected to take (``rows`` ÷
    :data:`BULK_ROWS_PER_SECOND`), so a job that runs as expected costs one
    poll; after that, half of it doubling at each poll, up to ``ceiling``
    (the connection's ``bulk_poll_max_seconds``, which the stall limit must
    exceed: connector/config.py, ``crm_silence``). None of them is shorter
    than ``floor`` (the adapter's ``bulk_wait``; 0 polls at once, for tests)
    unless ``ceiling`` is. ``rows`` None (a job a crashed run left): ``floor``
    doubling.
    """
    if floor <= 0:
        while True:
            yield 0.0
    expected = max(floor, rows / BULK_ROWS_PER_SECOND) if rows else floor
    yield min(expected, ceiling) if rows else 0.0
    step = max(floor, expected / 2)
    while True:
        yield min(step, ceiling)
        step *= 2


def _ingest_csv(updates: Sequence[RecordUpdate]) -> str:
    """The upload: ``Id`` then every field any update sets (a blank cell leaves a field alone)."""
    columns: dict[str, None] = {"Id": None}
    for update in updates:
        columns.update(dict.fromkeys(update.fields))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for update in updates:
        cells = {k: to_cell(v) for k, v in update.fields.items()}
        writer.writerow([update.id, *(cells.get(c, "") for c in list(columns)[1:])])
    return buffer.getvalue()


class IngestJob:
    """One Bulk 2.0 update job, driven step by step so that no step repeats another.

    simple-salesforce's ``update`` runs create, upload, close and poll as one
    call; retried as a unit, a failure while polling a closed job would
    create a second job and write every row again. Here each step goes
    through the retry policy alone, and a step whose earlier try may have
    landed (no answer, a 5xx, a refused session) reads the job's state
    before it repeats itself.

    Args:
        session: the org's session.
        sobject: the object updated.
        wait: seconds to wait before the first poll and between polls.
        journal: where each step is noted before it is taken (none: not noted).
        note: the job as a crashed run noted it (to resume it), else a new job.

    """

    def __init__(
        self,
        session: SalesforceSession,
        sobject: str,
        wait: float,
        journal: JobJournal | None = None,
        note: JobNote | None = None,
    ) -> None:
        self._session = session
        self._sobject = sobject
        self._wait = wait
        self._journal = journal
        self._note = note or JobNote(uuid.uuid4().hex, None, "creating", datetime.now(UTC))
        self.job_id: str | None = self._note.job_id

    def _noted(self, step: Any) -> None:
        """Note that the job reached ``step`` (durable before the next step is sent)."""
        self._note = JobNote(self._note.marker, self.job_id, step, self._note.since)
        if self._journal is not None:
            self._journal.note(self._note)

    def forget(self) -> None:
        """The job has ended and its results are read: drop its note."""
        if self._journal is not None:
            self._journal.done(self._note.marker)

    def _api(self, client: Client) -> Any:
        # The per-step calls of simple-salesforce's Bulk 2.0 client: its public
        # ``update`` bundles them into the one unit this class takes apart.
        return client.bulk(self._sobject)._client

    def _step(self, what: str, fn: Callable[[Client], T]) -> T:
        return self._session.call(f"bulk update {self._sobject}: {what}", fn)

    def info(self) -> dict[str, Any]:
        """The job's info, read now (one GET, retried on its own)."""
        job_id = self._require()
        return dict(self._step("job status", lambda c: self._api(c).get_job(job_id, False)))

    def state(self) -> str:
        """The job's state, read now."""
        return str(self.info()["state"])

    def _require(self) -> str:
        if self.job_id is None:  # pragma: no cover - every step after create has an id
            raise FatalSyncError(f"Salesforce bulk update {self._sobject}: no job")
        return self.job_id

    def run(self, data: str, rows: int) -> dict[str, Any]:
        """Create, upload, close and wait for the job of ``rows`` rows; its final info."""
        self.create()
        self.upload(data)
        self.close()
        return self.wait(rows=rows)

    def require(self) -> str:
        """The job's id (once created)."""
        return self._require()

    def create(self) -> None:
        """``POST jobs/ingest``: the job, Open; its id noted before anything is uploaded.

        A create that got no answer may have made the job anyway: a retry first
        lists the org's Open jobs of this kind since the first try and uses
        the one it finds, so no empty Open job is left behind.
        """
        self._note = JobNote(self._note.marker, None, "creating", datetime.now(UTC))
        self._noted("creating")
        tried = False

        def attempt(client: Client) -> dict[str, Any]:
            nonlocal tried
            if tried:
                found = self.find_open()
                if found:
                    return {"id": found[-1].job_id}
            tried = True
            return dict(self._api(client).create_job(_UPDATE))

        info = self._step("create job", attempt)
        self.job_id = str(info["id"])
        self._noted("created")

    def find_open(self) -> list[JobNote]:
        """Open update jobs on this object by the integration user since the note, oldest first.

        ``GET jobs/ingest?jobType=V2Ingest`` lists the org's Bulk 2.0 ingest
        jobs (up to 1,000 a page, paged by ``nextRecordsUrl``, in no set
        order: docs/crm-apis.md); nothing but the object, the operation, the
        creator, the state and the creation time tells ours apart, so the
        window starts :data:`CLOCK_SKEW` before the create was sent.
        """
        user = self._session.user_id
        start = self._note.since - CLOCK_SKEW
        found: list[tuple[datetime, str]] = []
        path: str | None = "jobs/ingest?jobType=V2Ingest"
        while path:
            page: dict[str, Any] = dict(
                self._step("list jobs", partial(_list_page, path=path)) or {}
            )
            for job in page.get("records") or []:
                created = parse_stamp(job.get("createdDate"))
                if (
                    job.get("state") == OPEN
                    and str(job.get("object", "")).lower() == self._sobject.lower()
                    and job.get("operation") == _UPDATE
                    and (user is None or job.get("createdById") == user)
                    and created >= start
                ):
                    found.append((created, str(job["id"])))
            next_url = page.get("nextRecordsUrl")
            path = _data_path(str(next_url)) if next_url and not page.get("done", True) else None
        return [
            JobNote(self._note.marker, job_id, "created", self._note.since)
            for _, job_id in sorted(found)
        ]

    def abort(self) -> None:
        """``PATCH`` ``Aborted``: an Open job's rows, if any, are never processed."""
        job_id = self._require()
        tried = False

        def attempt(client: Client) -> None:
            nonlocal tried
            if tried and self.state() != OPEN:
                return
            tried = True
            self._api(client).abort_job(job_id, False)

        self._step("abort job", attempt)

    def upload(self, data: str) -> None:
        """``PUT .../batches``, once: a retry first checks the job is still Open."""
        job_id = self._require()
        tried = False

        def attempt(client: Client) -> None:
            nonlocal tried
            if tried and self.state() != OPEN:
                return  # an earlier try landed and the job moved on
            again, tried = tried, True
            try:
                self._api(client).upload_job_data(job_id, data)
            except SalesforceError as exc:
                # A job takes one upload: refused as a repeat, the earlier try landed.
                if again and _is_state_refusal(exc):
                    return
                raise

        self._step("upload", attempt)
        self._noted("uploaded")

    def close(self) -> None:
        """``PATCH`` ``UploadComplete``; a retry first reads whether an earlier try closed it."""
        job_id = self._require()
        tried = False

        def attempt(client: Client) -> None:
            nonlocal tried
            if tried and self.state() != OPEN:
                return
            tried = True
            self._api(client).close_job(job_id)

        self._step("close job", attempt)
        self._noted("closed")

    def wait(self, *, rows: int | None = None) -> dict[str, Any]:
        """Poll until the job ends; its final info. Every poll retried on its own.

        The pauses come from :func:`poll_waits`: sized to ``rows`` (a job just
        closed), else (a job a crashed run left) starting at once.
        """
        sleep = self._session.retry.sleep
        deadline = time.monotonic() + BULK_JOB_TIMEOUT
        waits = poll_waits(rows, self._wait, self._session.settings.bulk_poll_max_seconds)
        while True:
            pause = next(waits)
            if pause > 0:
                sleep(pause)
            info = self.info()
            state = str(info["state"])
            if state == JOB_COMPLETE:
                return info
            if state in (FAILED, ABORTED):
                reason = f": {info['errorMessage']}" if info.get("errorMessage") else ""
                raise FatalSyncError(
                    f"Salesforce bulk update {self._sobject}: job {self.job_id} {state.lower()}"
                    f"{reason}"
                )
            if time.monotonic() > deadline:
                raise FatalSyncError(
                    f"Salesforce bulk update {self._sobject}: job {self.job_id} still {state} "
                    f"after {BULK_JOB_TIMEOUT // 3600} hours"
                )


def _list_page(client: Client, path: str) -> Any:
    return client.sf.restful(path, method="GET")


def _data_path(url: str) -> str:
    """A ``nextRecordsUrl`` (``/services/data/vXX.X/jobs/ingest?…``) relative to the data URL."""
    marker = "/services/data/"
    if marker in url:
        url = url.split(marker, 1)[1]
        return url.split("/", 1)[1] if "/" in url else ""
    return url.lstrip("/")


def _is_state_refusal(exc: SalesforceError) -> bool:
    """Whether Salesforce refused an upload because the job already has its data."""
    content: Any = exc.content
    first: Any = content[0] if isinstance(content, list) and content else {}
    if not isinstance(first, dict):
        return False
    code, message = str(first.get("errorCode", "")), str(first.get("message", ""))
    return code == "INVALIDJOBSTATE" or "multiple contents" in message.lower()
