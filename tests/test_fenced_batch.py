"""A run that lost its job records no batch, not even its first try (HubSpot, SQLite store).

A run writes a chunk; before it records the chunk's outcome its lease is
taken over (it was stopped past its lease), and the new holder runs in full:
it adopts the write the old run left in flight (the CRM holds exactly what it
sent) and writes the record's new value, which a person's change of its
inputs asks for. When the old run resumes, its batch would put its own
last-written values back over the new holder's. A store step's first try
was not fenced (only its re-tries were), so it did, and the next run read the
new holder's write as a person's edit: kept as an override, segsync no
longer managing the record. Now a step that writes the store is fenced
before its first try too (``connector/sync/steps.py``): the old run ends with
``LeaseLost`` and records nothing.

Real leases (``JobClaims`` on the store, the takeover as
``tests/test_job_claims.py`` makes it), real hubspot-api-client on the
sandbox. The old run's lease is the real one, seen through a :class:`Fence`
that makes the takeover happen right after the chunk's write (the runner's
seam for its lease, as ``tests/test_intent_left_behind.py`` uses it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sandbox_fixtures import hubspot_adapter, provision, seeded_hubspot, shipped_engines
from store_faults import expire_lease

from connector.config import SyncSettings
from connector.store.leases import JobClaims, Lease, LeaseLost
from connector.store.locks import locks_for
from connector.store.store import Store
from connector.sync.runner import Job, Runner

EDIT = {
    "industry": "COMPUTER_SOFTWARE",
    "numberofemployees": "5000",
    "intent_score": "95",
    "tech_stack": "Salesforce;Snowflake;AWS;Segment",
}
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
JOB = "hs.account"


class TakenOverAfterTheWrite:
    """The run's real lease; right after its first chunk's write landed, ``takeover`` runs."""

    def __init__(self, lease: Lease, takeover: Callable[[], None]) -> None:
        self.lease = lease
        self.takeover: Callable[[], None] | None = takeover

    def fence(self) -> None:
        self.lease.fence()

    def progress(self, step: str) -> None:
        self.lease.progress(step)
        if step.startswith("wrote a chunk") and self.takeover is not None:
            takeover, self.takeover = self.takeover, None
            takeover()

    def watch(self, calls: Callable[[], int]) -> contextlib.AbstractContextManager[None]:
        return self.lease.watch(calls)


def _claims(store: Store) -> JobClaims:
    # One per would-be process: its own locks.
    return JobClaims(store.engine, locks_for(store.engine), lease_seconds=60, purpose="segsync run")


def test_a_run_that_lost_its_job_after_its_write_records_no_batch(tmp_path: Path) -> None:
    engines = shipped_engines()
    with seeded_hubspot(67, 20, contacts_per_company=0) as sandbox:
        adapter = hubspot_adapter(sandbox)
        provision(adapter, engines, "hubspot", objects=("account",))
        store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
        runner = Runner(store, SyncSettings(), clock=lambda: NOW)
        job = Job("hs", adapter, engines["account"])
        assert runner.run(job, full=True).status == "succeeded"
        portal = sandbox.portal
        target = next(
            r for r in portal.snapshot("companies") if r.props["segsync_tier"] != "Tier 1"
        )
        before = {k: target.props.get(k) for k in EDIT}
        tier_before = str(target.props["segsync_tier"])
        portal.update("companies", target.id, EDIT)  # the definition now wants Tier 1
        stopped, taker = _claims(store), _claims(store)
        taken: list[int] = []

        def takeover() -> None:
            # The old holder was stopped past its lease: the job is taken over.
            expire_lease(store, JOB)
            with taker.claim(JOB) as new:
                assert isinstance(new, Lease) and new.mode == "steal"
                # A person puts the inputs back; the new holder's run writes the old tier.
                portal.update("companies", target.id, before)
                result = runner.run(job, full=True, lease=new)
                assert result.status == "succeeded"
                assert not [o for o in result.sample_overrides if o.record_id == target.id]
                assert result.run_id is not None
                taken.append(result.run_id)

        try:
            with stopped.claim(JOB) as old:
                assert isinstance(old, Lease)
                with pytest.raises(LeaseLost):
                    runner.run(job, full=True, lease=TakenOverAfterTheWrite(old, takeover))  # type: ignore[arg-type]
        finally:
            stopped.close()
            taker.close()
        assert taken, "the takeover ran"
        tier = portal.get("companies", target.id)["properties"]["segsync_tier"]
        assert tier == tier_before  # the new holder's write is the last
        # The store says so too: the old run put nothing of its own back.
        last = store.last_written("hs", "account", [target.id])[target.id]
        assert last["segsync_tier"] == tier_before
        # So the next run has nothing to write and no person's edit to keep.
        again = runner.run(job, full=True)
        assert again.summary.counts.overrides == 0
        assert again.summary.counts.changed == 0
