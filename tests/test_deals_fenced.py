"""A deal run that lost its job while it kept a page records nothing more (HubSpot, SQLite store).

An incremental deal run keeps each page in two store writes: the page's deals,
then the watermark past them. Its lease is fenced before each write of the
store, the first try included (``StoreSteps.write``, as the runner's are):
taken over while the page's deals are being recorded, the run ends with
``LeaseLost`` before it moves the watermark, where the new holder may already
have moved it. Before, only the page's deals were fenced and the watermark
was moved on regardless.

Real leases (``JobClaims`` on the store, the takeover as
``tests/test_fenced_batch.py`` makes it), real hubspot-api-client on the
sandbox. The run's lease is the real one, seen through a :class:`Fence` that
lets the takeover happen right after the fence before a page is kept passed
(the job lost while that write is under way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta

import pytest
from store_faults import expire_lease
from test_deals_sync import _hubspot, store  # noqa: F401 (store: a fixture)

from connector.store.deals import DEAL_OBJECT, DealStore
from connector.store.leases import JobClaims, Lease, LeaseLost, job_key
from connector.store.locks import locks_for
from connector.store.store import Store
from connector.sync.deals import sync_deals
from segsync_sandbox.launcher import Sandboxes

JOB = job_key("hs", DEAL_OBJECT)


class TakenOverWhileAPageIsKept:
    """The run's real lease; once a page is read, the job is taken over after the next fence."""

    def __init__(self, lease: Lease, takeover: Callable[[], None]) -> None:
        self.lease = lease
        self.takeover: Callable[[], None] | None = takeover
        self.armed = False

    def fence(self) -> None:
        self.lease.fence()
        if self.armed and self.takeover is not None:
            takeover, self.takeover = self.takeover, None
            takeover()

    def progress(self, step: str) -> None:
        self.lease.progress(step)
        if step.startswith("read a page"):
            self.armed = True

    def watch(self, calls: Callable[[], int]) -> contextlib.AbstractContextManager[None]:
        return self.lease.watch(calls)


def _claims(on: Store) -> JobClaims:
    # One per would-be process: its own locks.
    return JobClaims(on.engine, locks_for(on.engine), lease_seconds=60, purpose="segsync run")


def test_a_deal_run_that_lost_its_job_while_keeping_a_page_moves_no_watermark(
    fresh_sandboxes: Sandboxes,
    store: Store,  # noqa: F811 (the fixture)
) -> None:
    adapter = _hubspot(fresh_sandboxes)
    portal = fresh_sandboxes.hubspot.portal
    assert sync_deals(adapter, store, "hs", lookback=timedelta(0)).status == "succeeded"
    before = store.watermark("hs", DEAL_OBJECT)
    assert before is not None
    target = next(
        r for r in portal.snapshot("deals") if r.props["dealstage"] == "appointmentscheduled"
    )
    hs = fresh_sandboxes.hubspot.client()
    hs.crm.deals.basic_api.update(target.id, {"properties": {"dealstage": "closedlost"}})
    stopped, taker = _claims(store), _claims(store)
    taken: list[str] = []

    def takeover() -> None:
        # The run was stopped past its lease: another process takes the job.
        expire_lease(store, JOB)
        with taker.claim(JOB) as new:
            assert isinstance(new, Lease) and new.mode == "steal"
            taken.append(JOB)

    try:
        with stopped.claim(JOB) as old:
            assert isinstance(old, Lease)
            fence = TakenOverWhileAPageIsKept(old, takeover)
            with pytest.raises(LeaseLost, match="another process took the job over"):
                sync_deals(adapter, store, "hs", lookback=timedelta(0), lease=fence)  # type: ignore[arg-type]
    finally:
        stopped.close()
        taker.close()
    assert taken, "the takeover ran"
    # The page's deals were under way when the job was lost; nothing after them
    # was recorded: the watermark is where it was, for the new holder to move.
    kept = {d.id: d for d in DealStore(store).deals("hs")}[target.id]
    assert kept.is_closed
    assert store.watermark("hs", DEAL_OBJECT) == before
