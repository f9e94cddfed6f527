"""Bulk API 2.0: query jobs for large pulls and ingest jobs for large writes.

A query's CSV values are converted back to what REST returns, so a bulk pull
yields the same records a REST pull would. A query that fails mid-stream
restarts as a new job from the last stamp it yielded, skipping the ids
already yielded there. An ingest job's failed and unprocessed rows are
reported so the caller can re-send them through sObject Collections.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from simple_salesforce.format import format_soql

from connector.crm.base import CrmRecord, ObjectName, RecordUpdate, WriteOutcome
from connector.crm.limits import SF_QUERY_PAGE
from connector.crm.salesforce.describe import Describer
from connector.crm.salesforce.errors import LOCK_ERROR, is_expired
from connector.crm.salesforce.session import SalesforceSession
from connector.crm.salesforce.soql import (
    PARENT,
    PARENT_ID,
    SOBJECTS,
    STAMP,
    ParentMemory,
    Resume,
    finish,
    soql,
)
from connector.crm.salesforce.values import from_cell, to_cell
from connector.errors import RetriableError

#: Updates per Bulk 2.0 ingest job when the bulk path is taken.
BULK_WRITE_CHUNK = 50_000
# Rows per Bulk 2.0 result page; each is re-cut into CrmRecord pages of 2,000.
BULK_RESULT_PAGE = 10_000


class Bulk:
    """Bulk 2.0 jobs against one org.

    Args:
        session: the org's session.
        describer: describes, for the types that turn CSV cells back into values.
        parents: where pulled contacts' accounts are remembered.
        wait: seconds simple-salesforce waits before polling a job.

    """

    def __init__(
        self, session: SalesforceSession, describer: Describer, parents: ParentMemory, wait: int
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
    ) -> Iterator[list[CrmRecord]]:
        """Pages of up to 2,000 records from a query job on ``selected``, after ``resume``."""
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
                where = f"{STAMP} >= {{}}" if resume.floor is not None else ""
                args = [resume.floor] if resume.floor is not None else []
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
                record = self._record(header, row, types, names, fields, parents, obj)
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
        return finish(values, parent, fields, obj == "contact", self._parents)

    def ingest(self, sobject: str, updates: Sequence[RecordUpdate]) -> dict[str, WriteOutcome]:
        """Update ``updates`` (in this order) through ingest jobs; unprocessed rows are absent."""
        rows = [{"Id": u.id, **{k: to_cell(v) for k, v in u.fields.items()}} for u in updates]
        jobs = self._session.call(
            f"bulk update {sobject}",
            lambda c: c.bulk(sobject).update(records=rows, wait=self._wait),
        )
        outcomes: dict[str, WriteOutcome] = {}
        for job in jobs or []:
            outcomes.update(self._ingest_results(sobject, str(job["job_id"])))
        return outcomes

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
