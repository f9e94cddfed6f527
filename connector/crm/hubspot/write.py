"""Writing output properties: batch updates of 100, in parallel, retried per record.

A batch update answers for the whole batch, with the records that failed
listed in its errors. Records that failed for a passing reason (a conflict, a
lock, a rate limit) are sent again, alone of their batch, with the retry
policy's backoff; the others get their outcome at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from hubspot.crm.companies.models import (
    BatchInputSimplePublicObjectBatchInput,
    SimplePublicObjectBatchInput,
)

from connector.crm.base import RecordUpdate, WriteOutcome, parse_stamp
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import to_wire
from connector.crm.limits import HS_BATCH

# Batch error categories (and statuses) that name a passing condition.
_RETRIABLE_CATEGORIES = frozenset({"CONFLICT", "LOCKED", "RATE_LIMITS"})
_RETRIABLE_STATUSES = frozenset({"409", "423", "429"})


def write(
    session: HubSpotSession, object_type: str, updates: Sequence[RecordUpdate]
) -> list[WriteOutcome]:
    """Batch updates of 100, in parallel up to the connection's concurrency."""
    batches = [updates[i : i + HS_BATCH] for i in range(0, len(updates), HS_BATCH)]
    workers = max(1, min(session.settings.max_concurrency, len(batches)))
    outcomes: dict[str, WriteOutcome] = {}
    with ThreadPoolExecutor(workers, thread_name_prefix="hubspot-write") as pool:
        for result in pool.map(lambda b: _write_batch(session, object_type, b), batches):
            outcomes.update((o.id, o) for o in result)
    return [outcomes[u.id] for u in updates]


def write_chunk(session: HubSpotSession) -> int:
    """Enough batches of 100 to keep every parallel writer busy for a few rounds."""
    return HS_BATCH * session.settings.max_concurrency * 2


def _write_batch(
    session: HubSpotSession, object_type: str, batch: Sequence[RecordUpdate]
) -> list[WriteOutcome]:
    """One batch, its retriable failures sent again until done or out of attempts."""
    retry = session.retry
    pending = list(batch)
    done: dict[str, WriteOutcome] = {}
    for attempt in range(1, retry.attempts + 1):
        failures = _send(session, object_type, pending)
        retry_ids = {i for i, o in failures.items() if o.retriable}
        for update in pending:
            if update.id not in retry_ids or attempt == retry.attempts:
                done[update.id] = failures.get(update.id, WriteOutcome(update.id, True))
        pending = [u for u in pending if u.id in retry_ids]
        if not pending or attempt == retry.attempts:
            break
        retry.sleep(min(retry.max_wait, retry.initial_wait * 2**attempt))
    return [done[u.id] for u in batch]


def _send(
    session: HubSpotSession, object_type: str, batch: Sequence[RecordUpdate]
) -> dict[str, WriteOutcome]:
    """One batch update call; each record's outcome by id (those it failed, and its results)."""
    request = BatchInputSimplePublicObjectBatchInput(
        inputs=[
            SimplePublicObjectBatchInput(
                id=u.id, properties={k: to_wire(v) for k, v in u.fields.items()}
            )
            for u in batch
        ]
    )
    result = session.call(
        "batch update",
        session.batch[object_type].update_with_http_info,
        request,
    )
    failures: dict[str, WriteOutcome] = {}
    for item in getattr(result, "results", None) or []:
        # updatedAt is the record's new hs_lastmodifieddate: kept so the next
        # incremental pull knows this version for our own write (an echo).
        stamp = getattr(item, "updated_at", None)
        failures[str(item.id)] = WriteOutcome(
            str(item.id), True, stamp=parse_stamp(stamp) if stamp else None
        )
    for error in getattr(result, "errors", None) or []:
        context = error.context or {}
        category = error.category or "ERROR"
        retriable = (
            category in _RETRIABLE_CATEGORIES
            or str(getattr(error, "status", "")) in _RETRIABLE_STATUSES
        )
        for record_id in context.get("ids", []) or context.get("id", []):
            failures[str(record_id)] = WriteOutcome(
                str(record_id), False, category, error.message or "", retriable
            )
    return failures
