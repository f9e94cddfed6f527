"""One deal sync: pull a connection's deals incrementally and keep them in the store.

Deals are read-only: nothing is evaluated or written to the CRM. The cycle is
the first and last steps of an account run: pull from the watermark
(inclusive, boundary ids de-duplicated, with the configured look-back), record
each page in one transaction (:class:`~connector.store.deals.DealStore`), and
advance the watermark after it. An incremental pull comes in stamp order, so
the watermark follows each page; a full pull (the list endpoint, in id
order) moves it once, at the end. A crash re-reads from the old watermark:
upserts make a repeat harmless. So does a store step that fails for now (a
statement or lock timeout): each is tried again (``connector/sync/steps.py``).

A deal deleted in the CRM leaves the store, and so every rollup and outcome:
an incremental pull names the deals deleted since (``DealPage.gone``: the
Salesforce rows ``queryAll`` returns with ``IsDeleted``, HubSpot's archived
list), and a full pull, which lists every live deal, removes the stored deals
it did not list (:meth:`~connector.store.deals.DealStore.keep_only`, before
the watermark moves). Their accounts are marked like those of changed deals.

A deal that cannot be judged (no account, an unknown stage, a deleted
pipeline) is reported and skipped; an amount that is not a number keeps the
deal without an amount. Either way the page lands and the run goes on; the
run's message counts them by kind and its sample lists the first few.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from connector.crm.base import DealSource, pull_began
from connector.crm.retry import RetryPolicy
from connector.errors import SegsyncError
from connector.state import DealProblem, Watermark
from connector.store.deals import DEAL_OBJECT, DealStore
from connector.store.leases import Fence, watching
from connector.store.records import RunCounts, RunStatus
from connector.store.store import Store
from connector.sync.echo import known_window
from connector.sync.steps import StoreSteps
from connector.sync.watermark import WatermarkTracker, needs_full, query_start
from connector.sync.window import Known, Recent

log = logging.getLogger("segsync.sync")

DEALS_VERSION = "deals-2"
"""Stands in for a mapping version in the deal watermark: a change of what is
stored bumps it, and the next deal sync is full. ``deals-2``: the deal type
is kept (HubSpot's ``dealtype`` was not read before)."""

SAMPLE = 20
"""Problems kept in the result to show (all of them are in the store's errors)."""


@dataclass
class DealSyncResult:
    """What a deal sync did."""

    connection: str
    crm: str
    full: bool
    run_id: int | None = None
    status: str = "running"
    read: int = 0
    stored: int = 0
    removed: int = 0
    """Stored deals removed: deleted in the CRM (or, on a full pull, no longer listed)."""
    skipped: int = 0
    problems: int = 0
    sample_problems: list[DealProblem] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    """Problems by code."""
    api_calls: int = 0
    minimum_calls: int = 0
    """The floor for the deals changed since the last run (re-reads not counted)."""
    rereads: int = 0
    """Deals the look-back window met again at a stamp already recorded (not counted)."""
    seconds: float = 0.0
    message: str = ""
    object: str = DEAL_OBJECT


def sync_deals(
    source: DealSource,
    store: Store,
    connection: str,
    *,
    full: bool = False,
    lookback: timedelta = timedelta(seconds=300),
    mark_accounts: bool = False,
    lease: Fence | None = None,
    retry: RetryPolicy | None = None,
) -> DealSyncResult:
    """Pull and keep the deals of one connection; see the module docstring.

    ``mark_accounts``: the account mapping has rollup attributes; mark the
    accounts whose deals changed for the next account run to re-plan
    (``connector/sync/rollups.py``). ``lease``: the job's claim
    (``connector/store/leases.py``), fenced before each write of the store
    (each page kept, each move of the watermark, the removal of the deals a
    full pull did not list: :meth:`StoreSteps.write`), so a process that
    lost the job records nothing more.
    ``retry``: the policy its store steps are tried again under while they
    fail for now (a statement or lock timeout: ``connector/sync/steps.py``).
    """
    # Every CRM answer is progress too (connector/store/leases.py, "Stalls").
    with watching(lease, lambda: source.api_calls):
        return _sync_deals(
            source,
            store,
            connection,
            full=full,
            lookback=lookback,
            mark_accounts=mark_accounts,
            lease=lease,
            retry=retry,
        )


def _sync_deals(
    source: DealSource,
    store: Store,
    connection: str,
    *,
    full: bool,
    lookback: timedelta,
    mark_accounts: bool,
    lease: Fence | None,
    retry: RetryPolicy | None,
) -> DealSyncResult:
    """:func:`sync_deals`, the CRM's answers watched."""
    started = time.monotonic()
    calls_before = source.api_calls
    steps = StoreSteps(retry or RetryPolicy(), lease)
    previous = steps("read the watermark", store.watermark, connection, DEAL_OBJECT)
    full = full or needs_full(previous, DEALS_VERSION)
    since = None if full else query_start(previous, lookback)
    tracker = WatermarkTracker(None if full else previous, DEALS_VERSION)
    # Deals already recorded at their stamp (connector/sync/window.py): not
    # recorded again, and a look-back window of only those is not even read.
    known = Known(None if full else previous, DEALS_VERSION)
    recent = Recent(known, lookback)
    result = DealSyncResult(connection, source.crm, full)
    # A try whose commit landed unheard left a "running" row: the next try
    # (claimed) marks it interrupted, as the runner's does.
    result.run_id = steps.fenced(None)(
        "record the run's start",
        store.start_run,
        connection,
        source.crm,
        DEAL_OBJECT,
        DEALS_VERSION,
        full=full,
        claimed=lease is not None,
    )
    deals = DealStore(store)
    # A full pull: every deal it listed, readable or not (the stored rest are gone).
    listed: set[str] = set()
    try:
        pages = source.pull_deals(since, known_window(known, previous, since))
        for page in pages:
            for record_id, stamp in page.seen:
                recent.seen(record_id, stamp, page.read_at)
            if full:
                listed.update(i for i, _ in page.seen)
                listed.difference_update(page.gone)
            new = {i for i, stamp in page.seen if tracker.see(i, stamp)}
            again = {i for i, stamp in page.seen if i in new and known.has(i, stamp)}
            new -= again
            result.rereads += len(again)
            kept = [d for d in page.deals if d.id in new]
            problems = [p for p in page.problems if p.id in new]
            if lease is not None:
                lease.progress(f"read a page of {len(page.seen):,} deals")
            # Upserts and deletes: a try after one whose commit landed unheard
            # stores the same (it finds the gone deals removed already). Each
            # write of the store is fenced before its first try too.
            result.removed += steps.write(
                "record a page of deals",
                deals.record,
                connection,
                source.crm,
                kept,
                problems,
                mark_run=result.run_id if mark_accounts else None,
                gone=page.gone,
            )
            result.read += len(new)
            result.stored += len(kept)
            result.skipped += sum(1 for p in problems if not p.kept)
            result.problems += len(problems)
            room = SAMPLE - len(result.sample_problems)
            result.sample_problems.extend(problems[: max(0, room)])
            result.kinds.update(p.code for p in problems)
            # With when the pull began (the CRM's clock): its answers so far
            # include its first, so no read of the pages kept came earlier.
            mark = tracker.watermark(pull_began(pages))
            if not full and mark is not None:
                steps.write(
                    "advance the watermark",
                    store.advance_watermark,
                    connection,
                    DEAL_OBJECT,
                    _with_known(mark, recent),
                )
            if lease is not None:
                lease.progress(f"recorded {result.read:,} deals")
        mark = tracker.watermark(pull_began(pages))
        if full:
            result.removed += steps.write(
                "remove the deals not listed",
                deals.keep_only,
                connection,
                listed,
                mark_run=result.run_id if mark_accounts else None,
            )
        if mark is not None and (
            full or previous is None or mark.pull_start != previous.pull_start
        ):
            # An incremental pull that found nothing still moves the pull's
            # start up: it read the whole window after it began.
            steps.write(
                "advance the watermark",
                store.advance_watermark,
                connection,
                DEAL_OBJECT,
                _with_known(mark, recent),
            )
    except SegsyncError as exc:
        result.status, result.message = "failed", str(exc)
        _finish(steps, store, source, result, calls_before, started, since is not None)
        raise
    # Unreadable deals are the CRM's data, not a failure of the run: nothing
    # is written to a deal, so there is nothing to retry. They are reported.
    result.status = "succeeded"
    if result.problems:
        kinds = result.kinds
        result.message = f"{result.problems:,} deal(s) not read as they should: " + ", ".join(
            f"{code} {count:,}" for code, count in sorted(kinds.items())
        )
    _finish(steps, store, source, result, calls_before, started, since is not None)
    log.info(
        "deal sync done",
        extra={"connection": connection, "crm": source.crm, "read": result.read},
    )
    return result


def _with_known(mark: Watermark, recent: Recent) -> Watermark:
    """The watermark with the deals recorded in its look-back window, by id and stamp."""
    return recent.mark(mark)


def _finish(
    steps: StoreSteps,
    store: Store,
    source: DealSource,
    result: DealSyncResult,
    calls_before: int,
    started: float,
    incremental: bool,
) -> None:
    result.api_calls = source.api_calls - calls_before
    result.minimum_calls = source.deal_minimum_calls(result.read, incremental=incremental)
    result.seconds = time.monotonic() - started
    if result.run_id is None:
        return
    # Not fenced: a run that lost its job still says how it ended.
    steps.fenced(None)(
        "record the run's end",
        store.finish_run,
        result.run_id,
        cast(RunStatus, result.status),
        RunCounts(
            read=result.read,
            changed=result.stored,
            skipped=result.skipped,
            removed=result.removed,
        ),
        result.api_calls,
        result.minimum_calls,
        result.message or None,
    )
