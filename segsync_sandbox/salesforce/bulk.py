"""Salesforce sandbox: Bulk API 2.0 query and ingest jobs.

Routes under ``/services/data/vXX.X/jobs/``, answering what simple-salesforce's
``bulk2`` client expects (docs/crm-apis.md#salesforce-bulk-api-20, #simple-salesforce):

* ``POST jobs/query`` creates a query job (``UploadComplete``); each
  ``GET jobs/query/{id}`` poll moves it one state on (``InProgress``, then
  ``JobComplete``), or straight to ``JobComplete`` once
  :attr:`BulkSettings.complete_after` seconds have passed. Results
  (``GET .../results?locator=&maxRecords=``) are CSV pages carrying
  ``Sforce-NumberOfRecords`` and ``Sforce-Locator`` (``null`` on the last
  page), 412 ``JOB_NOT_COMPLETE`` before completion. Pages are cut from a
  streaming iterator over the org, so a million-row result is never held as one
  text.
* ``POST jobs/ingest`` creates an update job (``Open``); ``PUT .../batches``
  takes the CSV (answered 201, nothing else); ``PATCH`` ``UploadComplete``
  closes it; polls move it through ``InProgress`` to ``JobComplete``, applying
  each row through the org with per-row errors. ``successfulResults``,
  ``failedResults`` and ``unprocessedrecords`` (any casing, optional slash)
  answer result CSVs. ``PATCH`` ``Aborted`` aborts, ``DELETE`` deletes.

Errors are the Bulk API's JSON list ``[{"errorCode", "message"}]``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import io
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from segsync_sandbox.common import HttpError, JsonObj, Request, Response
from segsync_sandbox.salesforce.host import SalesforceHost
from segsync_sandbox.salesforce.org import USER_ID, Org, RecordError
from segsync_sandbox.salesforce.soql import BoundQuery, SoqlError

#: maxRecords when a results request does not say.
DEFAULT_PAGE_SIZE = 50_000
#: Largest ingest upload (Salesforce: 100 MB after base64; 150 MB raw).
MAX_UPLOAD_BYTES = 150 * 1024 * 1024
#: The cell value that sets a field to null (a blank cell leaves it unchanged).
NULL_MARKER = "#N/A"

DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "SEMICOLON": ";",
    "PIPE": "|",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}

OPEN = "Open"
UPLOAD_COMPLETE = "UploadComplete"
IN_PROGRESS = "InProgress"
JOB_COMPLETE = "JobComplete"
FAILED = "Failed"
ABORTED = "Aborted"
TERMINAL_STATES = frozenset({JOB_COMPLETE, FAILED, ABORTED})


@dataclass
class BulkSettings:
    """How fast jobs move, settable at runtime (``bulk_service(app).settings``).

    Attributes:
        polls_per_state: Status polls each of ``UploadComplete`` and
            ``InProgress`` lasts before the job moves on (0: complete on the
            first poll).
        complete_after: Seconds after a job is ready (created, for a query;
            closed, for an ingest) after which the next poll completes it
            whatever the poll count; None disables.
        default_page_size: Rows per result page when ``maxRecords`` is absent.
        ingest_rows_per_second: When set, an ingest job takes its rows ÷ this
            many seconds from its close, as an org processing the rows would:
            a poll before then sees ``InProgress`` however many came before
            (``polls_per_state`` no longer moves it), the first poll after
            completes it. None: the poll-count model above.

    """

    polls_per_state: int = 1
    complete_after: float | None = None
    default_page_size: int = DEFAULT_PAGE_SIZE
    ingest_rows_per_second: float | None = None


@dataclass
class _Cursor:
    """Where the streaming result iterator of a query job stands."""

    offset: int
    rows: Iterator[list[Any]]


@dataclass
class Job:
    """One Bulk API 2.0 job (query or ingest)."""

    id: str
    kind: str  # "query" | "ingest"
    operation: str
    object: str
    created_by: str
    created: datetime
    api_version: str
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    state: str = OPEN
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    ready_at: float = field(default_factory=time.monotonic)
    polls: int = 0
    error_message: str | None = None
    processed: int = 0
    failed: int = 0
    processing_ms: int = 0
    # query jobs
    query: str = ""
    bound: BoundQuery | None = None
    total_rows: int | None = None
    cursor: _Cursor | None = None
    # ingest jobs
    data: bytes | None = None
    columns: list[str] = field(default_factory=list)
    successes: list[tuple[str, list[str]]] = field(default_factory=list)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def info(self, *, full: bool) -> JsonObj:
        """The job info JSON (``full`` adds the counters ``GET`` returns)."""
        out: JsonObj = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": _stamp(self.created),
            "systemModstamp": _stamp(self.modified),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if self.kind == "ingest":
            out["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        if full:
            out["jobType"] = "V2Query" if self.kind == "query" else "V2Ingest"
            out["numberRecordsProcessed"] = self.processed
            if self.kind == "ingest":
                out["numberRecordsFailed"] = self.failed
            out["retries"] = 0
            out["totalProcessingTime"] = self.processing_ms
            if self.kind == "ingest":
                out["apiActiveProcessingTime"] = self.processing_ms
                out["apexProcessingTime"] = 0
            if self.error_message:
                out["errorMessage"] = self.error_message
        return out


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}+0000"
    )


def _error(status: int, code: str, message: str) -> HttpError:
    return HttpError(Response.json(status, [{"errorCode": code, "message": message}]))


#: Jobs per page of "Get Information About All Ingest Jobs" (Salesforce: up to 1,000).
LIST_PAGE = 1_000


def encode_locator(offset: int) -> str:
    """A result locator for a row offset (Salesforce's look like base64 of the offset)."""
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    """The row offset a locator stands for (raise HttpError 400 when it is not ours)."""
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
        offset = int(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _error(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None
    if offset < 0:
        raise _error(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
    return offset


def format_cell(value: Any) -> str:
    """A value as Bulk API 2.0 result CSV prints it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        value = _stamp(value)
    text = str(value)
    # Bulk results print datetimes in UTC with a Z, unlike REST's +0000.
    if len(text) == 28 and text.endswith("+0000") and text[10] == "T":
        return text[:-5] + "Z"
    return text


class BulkService:
    """The Bulk API 2.0 jobs of one sandbox app."""

    def __init__(self, app: SalesforceHost, settings: BulkSettings | None = None) -> None:
        self.app = app
        self.settings = settings or BulkSettings()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    # -- plumbing ------------------------------------------------------------
    def reset(self) -> None:
        """Forget every job and restore the default settings (between tests)."""
        with self._lock:
            self._jobs.clear()
        self.settings = BulkSettings()

    def jobs(self) -> list[Job]:
        """Every job not deleted, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def _new_id(self) -> str:
        n = next(self._counter)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        text = ""
        while n:
            n, r = divmod(n, 36)
            text = digits[r] + text
        return "7505g" + text.rjust(13, "0")

    def _job(self, kind: str, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.kind != kind:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def _body(self, request: Request) -> Mapping[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise _error(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        return body

    def _format(self, body: Mapping[str, Any]) -> tuple[str, str]:
        delimiter = str(body.get("columnDelimiter") or "COMMA")
        line_ending = str(body.get("lineEnding") or "LF")
        if delimiter not in DELIMITERS:
            raise _error(400, "INVALIDJOB", f"Invalid columnDelimiter: {delimiter}")
        if line_ending not in LINE_ENDINGS:
            raise _error(400, "INVALIDJOB", f"Invalid lineEnding: {line_ending}")
        content_type = body.get("contentType", "CSV")
        if content_type != "CSV":
            raise _error(400, "INVALIDJOB", f"Invalid contentType: {content_type}")
        return delimiter, line_ending

    # -- query jobs ----------------------------------------------------------
    def create_query(self, request: Request, match: re.Match[str]) -> Response:
        """``POST jobs/query``."""
        request.kind = "bulk.query.create"
        body = self._body(request)
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise _error(400, "INVALIDJOB", f"Invalid operation for a query job: {operation}")
        soql = body.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise _error(400, "INVALIDJOB", "The query is required")
        delimiter, line_ending = self._format(body)
        bound = _bind(self.app, soql, match.group("version"))
        job = Job(
            id=self._new_id(),
            kind="query",
            operation=str(operation),
            object=bound.object,
            created_by=_user_id(self.app),
            created=datetime.now(UTC),
            api_version=match.group("version"),
            column_delimiter=delimiter,
            line_ending=line_ending,
            state=UPLOAD_COMPLETE,
            query=soql,
            bound=bound,
        )
        request.fields.update(bound.columns)
        with self._lock:
            self._jobs[job.id] = job
        _org(self.app).use_limit("DailyBulkV2QueryJobs")
        return Response.json(200, job.info(full=False))

    def query_results(self, request: Request, match: re.Match[str]) -> Response:
        """``GET jobs/query/{id}/results?locator=&maxRecords=``."""
        request.kind = "bulk.query.results"
        job = self._job("query", match.group("id"))
        max_records = self._max_records(request)
        locator = request.arg("locator") or ""
        offset = 0 if locator in ("", "null") else decode_locator(locator)
        with job.lock:
            if job.state in (UPLOAD_COMPLETE, IN_PROGRESS, OPEN):
                raise _error(412, "JOB_NOT_COMPLETE", "The job is not complete")
            if job.state != JOB_COMPLETE:
                raise _error(400, "INVALIDJOBSTATE", f"The job is {job.state}: no results")
            rows = self._page(job, offset, max_records)
        if job.bound is None:  # pragma: no cover - query jobs are always bound
            raise _error(500, "UNKNOWN_EXCEPTION", "query job without a query")
        next_offset = offset + len(rows)
        more = job.total_rows is None or next_offset < job.total_rows
        if len(rows) < max_records:
            more = False
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter=DELIMITERS[job.column_delimiter],
            lineterminator=LINE_ENDINGS[job.line_ending],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow(job.bound.columns)
        id_index = next((i for i, c in enumerate(job.bound.columns) if c.lower() == "id"), None)
        for row in rows:
            writer.writerow([format_cell(v) for v in row])
            if id_index is not None and row[id_index]:
                request.records.append(str(row[id_index]))
        headers = {
            "Content-Type": "text/csv",
            "Sforce-NumberOfRecords": str(len(rows)),
            "Sforce-Locator": encode_locator(next_offset) if more else "null",
        }
        body = buffer.getvalue().encode()
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            # Salesforce always compresses query results for clients that accept it.
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(200, body, headers)

    def _max_records(self, request: Request) -> int:
        raw = request.arg("maxRecords")
        if raw is None or raw == "":
            return self.settings.default_page_size
        try:
            value = int(raw)
        except ValueError:
            raise _error(400, "INVALIDJOB", f"Invalid maxRecords: {raw}") from None
        if value < 1:
            raise _error(400, "INVALIDJOB", f"Invalid maxRecords: {raw}")
        return value

    def _page(self, job: Job, offset: int, size: int) -> list[list[Any]]:
        """``size`` rows from ``offset``, continuing the job's iterator when it stands there."""
        cursor = job.cursor
        if cursor is None or cursor.offset != offset:
            # A locator out of sequence (a retried page): restart the scan and skip.
            rows = self._rows(job)
            cursor = _Cursor(offset, itertools.islice(rows, offset, None))
        page = list(itertools.islice(cursor.rows, size))
        cursor.offset += len(page)
        job.cursor = cursor
        return page

    def _rows(self, job: Job) -> Iterator[list[Any]]:
        bound = job.bound
        if bound is None:  # pragma: no cover - query jobs are always bound
            return iter(())
        records, resolve = _records(self.app, bound.object, job.operation == "queryAll")
        return (bound.row(r, resolve) for r in bound.select(records, resolve))

    def _complete_query(self, job: Job) -> None:
        started = time.monotonic()
        # Count without keeping rows: the count is what job info reports, the rows
        # are produced again page by page.
        job.total_rows = sum(1 for _ in self._rows(job))
        job.processed = job.total_rows
        job.cursor = None
        job.processing_ms = int((time.monotonic() - started) * 1000)

    # -- ingest jobs ---------------------------------------------------------
    def create_ingest(self, request: Request, match: re.Match[str]) -> Response:
        """``POST jobs/ingest``."""
        request.kind = "bulk.ingest.create"
        body = self._body(request)
        operation = body.get("operation")
        if operation not in ("update",):
            raise _error(
                400,
                "INVALIDJOB",
                f"Invalid operation {operation!r}: the sandbox supports update ingest jobs",
            )
        if body.get("externalIdFieldName"):
            raise _error(400, "INVALIDJOB", "externalIdFieldName is only valid for upsert jobs")
        sobject = body.get("object")
        canonical = _object_name(self.app, sobject) if isinstance(sobject, str) else None
        if canonical is None:
            raise _error(400, "INVALIDJOB", f"sObject type '{sobject}' is not supported.")
        delimiter, line_ending = self._format(body)
        job = Job(
            id=self._new_id(),
            kind="ingest",
            operation=str(operation),
            object=canonical,
            created_by=_user_id(self.app),
            created=datetime.now(UTC),
            api_version=match.group("version"),
            column_delimiter=delimiter,
            line_ending=line_ending,
            state=OPEN,
        )
        with self._lock:
            self._jobs[job.id] = job
        return Response.json(200, job.info(full=False))

    def upload(self, request: Request, match: re.Match[str]) -> Response:
        """``PUT jobs/ingest/{id}/batches``: the CSV data, answered 201."""
        request.kind = "bulk.ingest.upload"
        job = self._job("ingest", match.group("id"))
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("text/csv"):
            raise _error(400, "INVALIDJOB", f"Invalid Content-Type {content_type!r}: use text/csv")
        if not request.body:
            raise _error(400, "INVALIDJOB", "The upload is empty")
        if len(request.body) > MAX_UPLOAD_BYTES:
            raise _error(400, "INVALIDJOB", "The upload exceeds the maximum size")
        with job.lock:
            if job.state != OPEN:
                raise _error(409, "INVALIDJOBSTATE", f"The job is {job.state}: uploads need Open")
            if job.data is not None:
                raise _error(409, "INVALIDJOBSTATE", "The job already has its data uploaded")
            job.data = request.body
            job.modified = datetime.now(UTC)
        header, rows = self._split(job)
        job.columns = header
        job.unprocessed = rows
        id_col = next((i for i, c in enumerate(header) if c.strip().lower() == "id"), None)
        if id_col is not None:
            request.records.extend(r[id_col] for r in rows if id_col < len(r) and r[id_col])
        request.fields.update(c for c in header if c.strip().lower() != "id")
        return Response(201, b"", {})

    def _split(self, job: Job) -> tuple[list[str], list[list[str]]]:
        text = (job.data or b"").decode("utf-8-sig", errors="replace")
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter]
        )
        rows = [row for row in reader if row]
        if not rows:
            return [], []
        return rows[0], rows[1:]

    def _check_format(self, job: Job) -> str | None:
        """Why the upload cannot be processed at all (the job then Fails), or None."""
        text = (job.data or b"").decode("utf-8-sig", errors="replace")
        if not text.strip():
            return "InvalidBatch : Empty CSV file"
        body = text.rstrip("\r\n")
        if "\n" in body:
            crlf = "\r\n" in body
            if job.line_ending == "LF" and crlf:
                return (
                    "ClientInputError : LineEnding is invalid on user data. "
                    "Current LineEnding setting is LF"
                )
            if job.line_ending == "CRLF" and body.count("\n") != body.count("\r\n"):
                return (
                    "ClientInputError : LineEnding is invalid on user data. "
                    "Current LineEnding setting is CRLF"
                )
        fields = _field_names(self.app, job.object)
        seen: set[str] = set()
        for column in job.columns:
            name = column.strip()
            if name.lower() in seen:
                return f"InvalidBatch : Duplicate field name: {name}"
            seen.add(name.lower())
            if "." in name or name.lower() not in fields:
                return f"InvalidBatch : Field name not found : {name}"
        if "id" not in seen:
            return "InvalidBatch : Field name not found : Id"
        return None

    def _process_ingest(self, job: Job, request: Request) -> None:
        started = time.monotonic()
        problem = self._check_format(job)
        if problem is not None:
            job.state = FAILED
            job.error_message = problem
            return
        # Salesforce runs one internal batch per 10,000 records, each counted daily.
        _org(self.app).use_limit("DailyBulkApiBatches", max(1, -(-len(job.unprocessed) // 10_000)))
        fields = _field_names(self.app, job.object)
        canonical = [fields[c.strip().lower()] for c in job.columns]
        id_col = canonical.index("Id")
        for row in job.unprocessed:
            record_id = row[id_col].strip() if id_col < len(row) else ""
            error = self._apply_row(job, record_id, canonical, row)
            if error is None:
                job.successes.append((record_id, row))
            else:
                job.failures.append((record_id, error, row))
                job.failed += 1
            job.processed += 1
        job.unprocessed = []
        job.processing_ms = int((time.monotonic() - started) * 1000)

    def _apply_row(
        self, job: Job, record_id: str, canonical: Sequence[str], row: Sequence[str]
    ) -> str | None:
        if len(row) != len(canonical):
            return (
                f"INVALID_FIELD:The row has {len(row)} values but the header has "
                f"{len(canonical)} columns"
            )
        if not record_id:
            return "MISSING_ARGUMENT:Id not specified in an update call"
        values: dict[str, Any] = {}
        for name, raw in zip(canonical, row, strict=True):
            if name == "Id" or raw == "":
                # A blank cell leaves the field unchanged; #N/A sets it to null.
                continue
            if raw.strip() == NULL_MARKER:
                values[name] = None
            else:
                values[name] = _convert(self.app, job.object, name, raw)
        return _update(self.app, job.object, record_id, values)

    # -- shared job endpoints ------------------------------------------------
    def get_job(self, kind: str) -> Callable[[Request, re.Match[str]], Response]:
        """``GET jobs/{kind}/{id}``: job info; each poll may move the job on."""

        def handler(request: Request, match: re.Match[str]) -> Response:
            request.kind = f"bulk.{kind}.status"
            job = self._job(kind, match.group("id"))
            with job.lock:
                self._advance(job, request)
                return Response.json(200, job.info(full=True))

        return handler

    def _advance(self, job: Job, request: Request) -> None:
        if job.state not in (UPLOAD_COMPLETE, IN_PROGRESS):
            return
        settings = self.settings
        rate = settings.ingest_rows_per_second
        if job.kind == "ingest" and rate:
            # Time alone moves the job: the first poll sees it started, the
            # first one after rows ÷ rate seconds sees it done.
            job.state = IN_PROGRESS
            if time.monotonic() - job.ready_at >= len(job.unprocessed) / rate:
                self._complete(job, request)
            return
        due = (
            settings.complete_after is not None
            and time.monotonic() - job.ready_at >= settings.complete_after
        )
        # Each intermediate state is seen by ``polls_per_state`` polls, so a client
        # polling fast walks through every documented state.
        job.polls += 1
        if job.state == UPLOAD_COMPLETE and (due or job.polls > settings.polls_per_state):
            job.state = IN_PROGRESS
            job.polls = 1
            job.modified = datetime.now(UTC)
        if job.state == IN_PROGRESS and (due or job.polls > settings.polls_per_state):
            self._complete(job, request)

    def _complete(self, job: Job, request: Request) -> None:
        if job.kind == "query":
            self._complete_query(job)
        else:
            self._process_ingest(job, request)
            # The parsed rows live on in the results; the raw upload is not needed.
            job.data = b""
        if job.state != FAILED:
            job.state = JOB_COMPLETE
        job.modified = datetime.now(UTC)

    def patch_job(self, kind: str) -> Callable[[Request, re.Match[str]], Response]:
        """``PATCH jobs/{kind}/{id}``: ``UploadComplete`` (ingest) or ``Aborted``."""

        def handler(request: Request, match: re.Match[str]) -> Response:
            job = self._job(kind, match.group("id"))
            state = self._body(request).get("state")
            request.kind = f"bulk.{kind}." + ("close" if state == UPLOAD_COMPLETE else "abort")
            with job.lock:
                if state == ABORTED:
                    if job.state in TERMINAL_STATES:
                        raise _error(
                            409, "INVALIDJOBSTATE", f"The job is {job.state} and cannot be aborted"
                        )
                    job.state = ABORTED
                elif state == UPLOAD_COMPLETE and kind == "ingest":
                    if job.state != OPEN:
                        raise _error(409, "INVALIDJOBSTATE", f"The job is {job.state}, not Open")
                    job.state = UPLOAD_COMPLETE
                    job.ready_at = time.monotonic()
                    job.polls = 0
                else:
                    raise _error(400, "INVALIDJOBSTATE", f"Invalid state change to {state!r}")
                job.modified = datetime.now(UTC)
                return Response.json(200, job.info(full=False))

        return handler

    def delete_job(self, kind: str) -> Callable[[Request, re.Match[str]], Response]:
        """``DELETE jobs/{kind}/{id}``: only jobs that are no longer running (204)."""

        def handler(request: Request, match: re.Match[str]) -> Response:
            request.kind = f"bulk.{kind}.delete"
            job = self._job(kind, match.group("id"))
            with job.lock:
                if job.state in (OPEN, IN_PROGRESS):
                    raise _error(
                        409, "INVALIDJOBSTATE", f"The job is {job.state} and cannot be deleted"
                    )
            with self._lock:
                self._jobs.pop(job.id, None)
            return Response(204)

        return handler

    def list_jobs(self, kind: str) -> Callable[[Request, re.Match[str]], Response]:
        """``GET jobs/{kind}``: the jobs of that kind, up to 1,000 a page, in no set order.

        As Salesforce's "Get Information About All Ingest Jobs": ``jobType``
        filters (``V2Ingest``, ``V2Query``; ``Classic`` jobs: none here), and
        ``nextRecordsUrl`` carries a ``queryLocator`` while ``done`` is false.
        """

        def handler(request: Request, match: re.Match[str]) -> Response:
            request.kind = f"bulk.{kind}.list"
            job_type = request.arg("jobType", "") or ""
            if job_type and job_type not in ("V2Ingest", "V2Query", "Classic", "BigObjectIngest"):
                raise _error(400, "INVALIDJOBTYPE", f"Invalid jobType: {job_type}")
            wanted = "V2Query" if kind == "query" else "V2Ingest"
            jobs = [j for j in self.jobs() if j.kind == kind and job_type in ("", wanted)]
            locator = request.arg("queryLocator", "") or ""
            start = decode_locator(locator) if locator else 0
            page = jobs[start : start + LIST_PAGE]
            done = start + LIST_PAGE >= len(jobs)
            next_url = None
            if not done:
                query = f"queryLocator={encode_locator(start + LIST_PAGE)}"
                if job_type:
                    query += f"&jobType={job_type}"
                next_url = f"/services/data/v{match.group('version')}/jobs/{kind}?{query}"
            records = [j.info(full=False) for j in page]
            return Response.json(
                200, {"done": done, "records": records, "nextRecordsUrl": next_url}
            )

        return handler

    def ingest_results(self, request: Request, match: re.Match[str]) -> Response:
        """``GET jobs/ingest/{id}/{successfulResults|failedResults|unprocessedrecords}``."""
        which = match.group("which").lower()
        request.kind = "bulk.ingest.results"
        job = self._job("ingest", match.group("id"))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
        with job.lock:
            columns = list(job.columns)
            if which == "successfulresults":
                writer.writerow(["sf__Id", "sf__Created", *columns])
                for record_id, row in job.successes:
                    writer.writerow([record_id, "false", *row])
            elif which == "failedresults":
                writer.writerow(["sf__Id", "sf__Error", *columns])
                for record_id, error, row in job.failures:
                    writer.writerow([record_id, error, *row])
            else:
                writer.writerow(columns)
                writer.writerows(job.unprocessed)
        return Response(200, buffer.getvalue().encode(), {"Content-Type": "text/csv"})


# ---------------------------------------------------------------------------
# Org adapter (the only code that knows the Org's and the app's interfaces)
# ---------------------------------------------------------------------------


def _org(app: SalesforceHost) -> Org:
    return app.org


def _bind(app: SalesforceHost, soql: str, version: str) -> BoundQuery:
    del version  # the org's version names the record urls; Bulk CSV has none
    try:
        bound = app.bind_query(soql)
    except SoqlError as exc:
        raise HttpError(Response.json(400, exc.to_json())) from None
    # What the Bulk API 2.0 documentation lists as unsupported (of what the
    # sandbox's SOQL knows): aggregate functions and OFFSET.
    if bound.is_count:
        raise _error(400, "INVALIDJOB", "Aggregate queries such as COUNT() are not supported")
    if bound.offset is not None:
        raise _error(400, "INVALIDJOB", "The OFFSET clause is not supported by Bulk API 2.0")
    return bound


def _records(
    app: SalesforceHost, sobject: str, include_deleted: bool
) -> tuple[Iterator[Mapping[str, Any]], Callable[[str, str], Mapping[str, Any] | None]]:
    return _org(app).records(sobject, include_deleted), app.resolve_parent


def _object_name(app: SalesforceHost, sobject: str) -> str | None:
    return _org(app).canonical_sobject(sobject)


def _field_names(app: SalesforceHost, sobject: str) -> dict[str, str]:
    """Lower-case field name to canonical name."""
    return {f.name.lower(): f.name for f in _org(app).visible_fields(sobject)}


def _convert(app: SalesforceHost, sobject: str, name: str, raw: str) -> Any:
    """A CSV cell as the org's update takes it (Bulk also reads 1 / 0 as booleans)."""
    field_def = _org(app).field(sobject, name)
    if field_def is not None and field_def.type == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("1", "yes"):
            return True
        if lowered in ("0", "no"):
            return False
    return raw


def _update(
    app: SalesforceHost, sobject: str, record_id: str, values: dict[str, Any]
) -> str | None:
    try:
        _org(app).update(sobject, record_id, values, user=USER_ID)
    except RecordError as exc:
        return f"{exc.status_code}:{exc.message}"
    return None


def _user_id(app: SalesforceHost) -> str:
    del app
    return USER_ID


_services: WeakKeyDictionary[SalesforceHost, BulkService] = WeakKeyDictionary()


def bulk_service(app: SalesforceHost) -> BulkService:
    """The BulkService registered on ``app`` (to change its settings or inspect jobs)."""
    return _services[app]


def register(app: SalesforceHost) -> None:
    """Serve Bulk API 2.0 under ``/services/data/vXX.X/jobs/``."""
    service = BulkService(app)
    _services[app] = service
    job = r"/(?P<id>[A-Za-z0-9]+)"
    for kind in ("query", "ingest"):
        app.rest("GET", f"/jobs/{kind}/?", service.list_jobs(kind))
        app.rest("GET", f"/jobs/{kind}{job}/?", service.get_job(kind))
        app.rest("PATCH", f"/jobs/{kind}{job}/?", service.patch_job(kind))
        app.rest("DELETE", f"/jobs/{kind}{job}/?", service.delete_job(kind))
    app.rest("POST", "/jobs/query/?", service.create_query)
    app.rest("GET", f"/jobs/query{job}/results/?", service.query_results)
    app.rest("POST", "/jobs/ingest/?", service.create_ingest)
    app.rest("PUT", f"/jobs/ingest{job}/batches/?", service.upload)
    app.rest(
        "GET",
        f"/jobs/ingest{job}/(?P<which>(?i:successfulResults|failedResults|unprocessedRecords))/?",
        service.ingest_results,
    )
