"""Writing output properties: batch updates of 100, in parallel, one outcome per record.

Every input carries an ``objectWriteTraceId`` (its record id), which asks
HubSpot to judge each input on its own: the valid ones are applied and each
refused one comes back in a 207 with its trace id, so the refusal lands on
its record with HubSpot's reason. Without trace ids HubSpot refuses a whole
batch with 400 when any one input holds a bad value; should that happen
anyway, the batch is split in halves until the bad records stand alone
(:class:`_Isolator`), so their batch-mates still land. Records that failed
for a passing reason (a conflict, a lock, a rate limit) are sent again, alone
of their batch, with the retry policy's backoff.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from connector.crm.base import RecordUpdate, WriteOutcome, parse_stamp
from connector.crm.hubspot.errors import RequestRefused
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import to_wire
from connector.crm.limits import HS_BATCH

# Batch error categories (and statuses) that name a passing condition.
_RETRIABLE_CATEGORIES = frozenset({"CONFLICT", "LOCKED", "RATE_LIMITS"})
_RETRIABLE_STATUSES = frozenset({"409", "423", "429"})
# How many bad records one batch's split may isolate before it gives up
# (each costs at most two calls per halving: about 14 for a batch of 100).
_ISOLATE_RECORDS = 3

Failures = dict[str, WriteOutcome]


def write(
    session: HubSpotSession, object_type: str, updates: Sequence[RecordUpdate]
) -> list[WriteOutcome]:
    """Batch updates of 100, in parallel up to the connection's concurrency."""
    requested = updates
    outcomes: dict[str, WriteOutcome] = {}
    unwritable = dict(session.unwritable)
    for update in updates:
        known = unwritable.get((object_type, update.id))
        if known is not None:
            outcomes[update.id] = WriteOutcome(update.id, False, *known)
    updates = [u for u in updates if u.id not in outcomes]
    batches = [updates[i : i + HS_BATCH] for i in range(0, len(updates), HS_BATCH)]
    workers = max(1, min(session.settings.max_concurrency, len(batches)))
    with ThreadPoolExecutor(workers, thread_name_prefix="hubspot-write") as pool:
        for result in pool.map(lambda b: _write_batch(session, object_type, b), batches):
            outcomes.update((o.id, o) for o in result)
    return [outcomes[u.id] for u in requested]


def write_chunk(session: HubSpotSession) -> int:
    """Enough batches of 100 to keep every parallel writer busy for a few rounds."""
    return HS_BATCH * session.settings.max_concurrency * 2


def split_budget(size: int) -> int:
    """The most extra calls isolating bad records in a refused batch of ``size`` may make."""
    return 2 * max(1, math.ceil(math.log2(max(size, 2)))) * _ISOLATE_RECORDS


def _write_batch(
    session: HubSpotSession, object_type: str, batch: Sequence[RecordUpdate]
) -> list[WriteOutcome]:
    """One batch, its retriable failures sent again until done or out of attempts."""
    retry = session.retry
    pending = list(batch)
    done: dict[str, WriteOutcome] = {}
    for attempt in range(1, retry.attempts + 1):
        failures = _Isolator(session, object_type, len(pending)).write(pending)
        retry_ids = {i for i, o in failures.items() if o.retriable}
        for update in pending:
            if update.id not in retry_ids or attempt == retry.attempts:
                done[update.id] = failures.get(update.id, WriteOutcome(update.id, True))
        pending = [u for u in pending if u.id in retry_ids]
        if not pending or attempt == retry.attempts:
            break
        retry.sleep(min(retry.max_wait, retry.initial_wait * 2**attempt))
    return [done[u.id] for u in batch]


class _Isolator:
    """Sends one batch; if HubSpot refuses it whole for a bad value, finds the bad records.

    A refused batch is halved: a half that is accepted is done, a refused
    half is halved again, down to single records, which fail with HubSpot's
    own reason. When the first half is accepted the refusal must lie in the
    second, which is then split without being sent whole again. Each bad
    record costs at most two calls per halving (log2 of the batch size);
    past :func:`split_budget` extra calls the records still in doubt fail
    with the batch's reason and are tried again on the next run. Every call
    goes through the session, so the split is paced like any other write.
    """

    def __init__(self, session: HubSpotSession, object_type: str, size: int) -> None:
        self._session = session
        self._object_type = object_type
        self._budget = split_budget(size)

    def write(self, batch: Sequence[RecordUpdate]) -> Failures:
        """The records of ``batch`` that failed, by id; the rest were applied."""
        sent = self._send(batch)
        if isinstance(sent, RequestRefused):
            return self._isolate(batch, sent, confirmed=True)
        return sent

    def _send(self, batch: Sequence[RecordUpdate]) -> Failures | RequestRefused:
        """One batch update: its per-record failures, or the refusal of the whole."""
        try:
            return _send(self._session, self._object_type, batch)
        except RequestRefused as refused:
            if refused.status != 400 or refused.category != "VALIDATION_ERROR":
                raise
            return refused

    def _isolate(
        self, batch: Sequence[RecordUpdate], refused: RequestRefused, *, confirmed: bool
    ) -> Failures:
        """``batch`` holds at least one bad record (seen refused if ``confirmed``)."""
        if len(batch) == 1 and not confirmed and self._budget > 0:
            # Inferred, never sent alone: hear HubSpot's reason for this record.
            self._budget -= 1
            sent = self._send(batch)
            if not isinstance(sent, RequestRefused):
                return sent
            refused = sent
        if len(batch) == 1 or self._budget <= 0:
            return {u.id: _refused_outcome(u.id, refused, alone=len(batch) == 1) for u in batch}
        half = len(batch) // 2
        first, second = batch[:half], batch[half:]
        self._budget -= 1
        sent = self._send(first)
        if not isinstance(sent, RequestRefused):
            return {**sent, **self._isolate(second, refused, confirmed=False)}
        failures = self._isolate(first, sent, confirmed=True)
        if self._budget <= 0:
            return {**failures, **self._isolate(second, refused, confirmed=False)}
        self._budget -= 1
        rest = self._send(second)
        if isinstance(rest, RequestRefused):
            return {**failures, **self._isolate(second, rest, confirmed=True)}
        return {**failures, **rest}


def _refused_outcome(record_id: str, refused: RequestRefused, *, alone: bool) -> WriteOutcome:
    """A record's failure taken from a whole-batch refusal."""
    code, reason = _reason(refused.category, refused.reason, refused.details)
    if not alone:
        reason = f"batch refused, record not isolated: {reason}"
    return WriteOutcome(record_id, False, code, reason)


def _send(session: HubSpotSession, object_type: str, batch: Sequence[RecordUpdate]) -> Failures:
    """One batch update call; each record's outcome by id (those it failed, and its results).

    The request is plain JSON (no model per input) and the answer is read raw:
    a 200 and a 207 (multi-status) carry the same ``results`` and ``errors``.
    """
    request = {
        "inputs": [
            {
                "id": u.id,
                "properties": {k: to_wire(v) for k, v in u.fields.items()},
                # The record id is unique in the batch: the error for this
                # input comes back tagged with it.
                "objectWriteTraceId": u.id,
            }
            for u in batch
        ]
    }
    result = session.call(
        "batch update",
        session.batch[object_type].update_with_http_info,
        request,
        raw=True,
    )
    in_batch = {u.id for u in batch}
    failures: Failures = {}
    for item in result.get("results") or []:
        # updatedAt is the record's new hs_lastmodifieddate: kept so the next
        # incremental pull knows this version for our own write (an echo).
        stamp = item.get("updatedAt")
        failures[str(item["id"])] = WriteOutcome(
            str(item["id"]), True, stamp=parse_stamp(stamp) if stamp else None
        )
    for error in result.get("errors") or []:
        context = error.get("context") or {}
        category = error.get("category") or "ERROR"
        retriable = (
            category in _RETRIABLE_CATEGORIES or str(error.get("status", "")) in _RETRIABLE_STATUSES
        )
        details = [_detail(d) for d in error.get("errors") or [] if isinstance(d, dict)]
        code, reason = _reason(category, error.get("message") or "", details)
        ids = context.get("objectWriteTraceId") or context.get("ids") or context.get("id") or []
        for record_id in ids:
            if str(record_id) in in_batch:
                failures[str(record_id)] = WriteOutcome(
                    str(record_id), False, code, reason, retriable
                )
    return failures


def _detail(detail: dict[str, Any]) -> dict[str, str]:
    """One ``ErrorDetail`` of a multi-status answer as the two fields a reason needs."""
    return {"message": str(detail.get("message") or ""), "code": str(detail.get("code") or "")}


def _reason(category: str, message: str, details: Sequence[dict[str, str]]) -> tuple[str, str]:
    """The code and message to record: the per-property details when HubSpot gives them.

    ``Property values were not valid: [...]`` embeds its problems as JSON;
    the details say the same in words (``Tier 9 was not one of the allowed
    options``) with a code (``INVALID_OPTION``) worth more than the category.
    """
    said = [d for d in details if d.get("message")]
    if not said:
        return category, message
    codes = {d["code"] for d in said if d.get("code")}
    code = codes.pop() if len(codes) == 1 else category
    return code, "; ".join(d["message"] for d in said)
