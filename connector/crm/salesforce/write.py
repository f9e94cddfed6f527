"""sObject Collections writes: batches of 200 (allOrNone false) on a thread pool.

Each pool thread keeps its own client and connection (:meth:`.session.SalesforceSession.client`);
row-lock failures are re-sent alone with back-off. Before anything is sent,
:func:`check_writable` refuses fields the integration user cannot update;
the describe it reads may come from the state store's cache, so a write the
org refuses for a schema reason (:data:`SCHEMA_CODES`) makes
:func:`schema_refusals` describe again before anything is re-sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from connector.crm.base import RecordUpdate, WriteOutcome
from connector.crm.limits import SF_COLLECTION_BATCH
from connector.crm.salesforce.describe import Describer, lookup
from connector.crm.salesforce.errors import LOCK_ERROR
from connector.crm.salesforce.session import SalesforceSession
from connector.crm.salesforce.values import to_json
from connector.errors import FatalSyncError

log = logging.getLogger(__name__)

#: Save-result codes meaning the org's schema or field access no longer is what
#: the describe said: a field gone or hidden (INVALID_FIELD), or not editable.
SCHEMA_CODES = frozenset({"INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE"})

#: Sent with every write: no assignment rules. Without it the REST API applies
#: the org's active lead (and account) assignment rules to every record it
#: updates, so each segsync write would re-route leads a rep already works
#: (docs/crm-apis.md, "Leads"). Segsync sets fields; routing stays the admin's.
NO_ASSIGNMENT = {"Sforce-Auto-Assign": "FALSE"}


def check_writable(describer: Describer, sobject: str, updates: Sequence[RecordUpdate]) -> None:
    """FatalSyncError unless every field of ``updates`` is updateable for the integration user."""
    described = describer.fields(sobject)
    names = {n for u in updates for n in u.fields}
    bad = []
    for name in sorted(names):
        entry = lookup(described, name)
        if entry is None or not entry.get("updateable"):
            bad.append(name)
    if bad:
        # The describe may predate a provisioning run: ask once more before refusing.
        described = describer.fields(sobject, fresh=True)
        bad = [n for n in bad if not (e := lookup(described, n)) or not e.get("updateable")]
    if bad:
        raise FatalSyncError(
            f"Salesforce write {sobject}: refusing to write {', '.join(bad)}: not "
            "updateable fields for the integration user (run `segsync provision`, or "
            "grant edit access through a permission set)"
        )


def _unwritable(described: Mapping[str, dict[str, object]], names: set[str]) -> list[str]:
    return sorted(n for n in names if not (e := lookup(described, n)) or not e.get("updateable"))


def schema_refusals(
    describer: Describer,
    sobject: str,
    updates: Sequence[RecordUpdate],
    outcomes: Mapping[str, WriteOutcome],
) -> tuple[list[RecordUpdate], dict[str, WriteOutcome]]:
    """After writes refused for a schema reason: describe again (once), then decide.

    Returns the updates worth sending once more (the new describe says every
    field is still there and updateable: the refusal was not about them) and
    new outcomes for the others, naming the fields that changed. The fresh
    describe replaces the cached one, so the next batch (and the next
    process) is refused by :func:`check_writable` before anything is sent.
    """
    hit = [
        u
        for u in updates
        if (o := outcomes.get(u.id)) is not None and not o.ok and o.code in SCHEMA_CODES
    ]
    if not hit:
        return [], {}
    described = describer.fields(sobject, fresh=True)
    bad = _unwritable(described, {n for u in hit for n in u.fields})
    if not bad:
        return hit, {}
    message = (
        f"the org's schema changed: {', '.join(bad)} no longer updateable (or gone) on "
        f"{sobject} for the integration user; nothing was written to these records. Run "
        "`segsync provision`, or grant edit access through a permission set"
    )
    log.error("salesforce write %s: %s", sobject, message)
    changed = set(bad)
    refused = {
        u.id: WriteOutcome(u.id, False, outcomes[u.id].code, message)
        for u in hit
        if changed & set(u.fields)
    }
    return [u for u in hit if u.id not in refused], refused


class CollectionWriter:
    """Writes updates through sObject Collections on up to ``max_concurrency`` threads."""

    def __init__(self, session: SalesforceSession) -> None:
        self._session = session
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def write(self, sobject: str, updates: Sequence[RecordUpdate]) -> dict[str, WriteOutcome]:
        """Outcomes by id of ``updates``, sent in this order in batches of 200."""
        size = SF_COLLECTION_BATCH
        batches = [updates[i : i + size] for i in range(0, len(updates), size)]
        outcomes: dict[str, WriteOutcome] = {}
        if len(batches) == 1 or self._session.settings.max_concurrency == 1:
            for batch in batches:
                outcomes.update((o.id, o) for o in self._write_batch(sobject, batch))
            return outcomes
        for result in self._writers().map(lambda b: self._write_batch(sobject, b), batches):
            outcomes.update((o.id, o) for o in result)
        return outcomes

    def _writers(self) -> ThreadPoolExecutor:
        """The write pool, kept between calls so its threads keep their clients and connections."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._session.settings.max_concurrency, thread_name_prefix="salesforce-write"
                )
            return self._pool

    def _write_batch(self, sobject: str, batch: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        """One collection of up to 200; row-lock failures are re-sent alone with back-off."""
        retry = self._session.retry
        pending = list(batch)
        done: dict[str, WriteOutcome] = {}
        for attempt in range(1, retry.attempts + 1):
            results = self._send(sobject, pending)
            again = [u for u in pending if results[u.id].retriable]
            last = attempt == retry.attempts
            for update in pending:
                if not results[update.id].retriable or last:
                    done[update.id] = results[update.id]
            pending = again
            if not pending or last:
                break
            retry.sleep(min(retry.max_wait, retry.initial_wait * 2**attempt))
        return [done[u.id] for u in batch]

    def _send(self, sobject: str, batch: Sequence[RecordUpdate]) -> dict[str, WriteOutcome]:
        body = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": sobject},
                    "id": u.id,
                    **{k: to_json(v) for k, v in u.fields.items()},
                }
                for u in batch
            ],
        }
        results = self._session.call(
            f"update {sobject}",
            lambda c: c.sf.restful(
                "composite/sobjects", method="PATCH", json=body, headers=NO_ASSIGNMENT
            ),
        )
        if not isinstance(results, list) or len(results) != len(batch):
            raise FatalSyncError(
                f"Salesforce update {sobject}: expected {len(batch)} save results, "
                f"got {len(results) if isinstance(results, list) else 'none'}"
            )
        out: dict[str, WriteOutcome] = {}
        for update, result in zip(batch, results, strict=True):
            if result.get("success"):
                out[update.id] = WriteOutcome(update.id, True)
                continue
            errors = list(result.get("errors") or [])
            code = str(errors[0].get("statusCode") or "ERROR") if errors else "ERROR"
            message = "; ".join(str(e.get("message") or "") for e in errors)
            out[update.id] = WriteOutcome(update.id, False, code, message, code == LOCK_ERROR)
        return out

    def close(self) -> None:
        """Stop the write threads (they finish what they hold)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
