"""A write a dead run landed, whose record's inputs change before the next run (SQLite store).

The run dies right after a chunk's write landed and before its batch is
recorded (its lease's progress note after the write raises, as a kill would
end it there), so the write's intent is left behind. Then a person changes
the record's inputs back, and the next run plans the old value again.

That run must tell segsync's own write from a person's edit: when the CRM
holds exactly what the dead run's intent sent, the write was segsync's; it is
adopted (its values taken as the last written, its ledger rows recorded once
under the dead run) and the record planned from there, so the new plan's
write goes out and nothing is reported as an override. When a person also
edited an output after the dead write, the CRM holds something else: that
edit is the person's and is kept (an override), as always. Before the fix the
first case was read as a person's edit (every output kept as an override, the
intent cleared, the dead run's ledger rows lost).

Over the real wire: hubspot-api-client on the HubSpot sandbox, simple-salesforce
on the Salesforce sandbox.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sandbox_fixtures import (
    hubspot_adapter,
    provision,
    salesforce_adapter,
    seeded_hubspot,
    shipped_engines,
)

from connector.config import SyncSettings
from connector.store.store import Store
from connector.sync.runner import Job, Runner
from segsync_sandbox import data
from segsync_sandbox.hubspot import HubSpotSandbox
from segsync_sandbox.salesforce import Org, SalesforceSandbox, start_salesforce

#: Inputs that put a company in Tier 1 (HubSpot's property names).
EDIT = {
    "industry": "COMPUTER_SOFTWARE",
    "numberofemployees": "5000",
    "intent_score": "95",
    "tech_stack": "Salesforce;Snowflake;AWS;Segment",
}
#: The same for a Salesforce account.
SF_EDIT = {
    "Industry": "Technology",
    "NumberOfEmployees": 5000,
    "Intent_Score__c": 95.0,
    "Tech_Stack__c": "Salesforce;Snowflake;AWS;Segment",
}
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _tier(sandbox: HubSpotSandbox, record_id: str) -> str:
    return str(sandbox.portal.get("companies", record_id)["properties"]["segsync_tier"])


class Killed(BaseException):
    """The process ends here (as kill -9 would)."""


class DiesAfterTheWrite:
    """A held lease whose run dies right after its first chunk's write landed."""

    def fence(self) -> None:
        pass

    def progress(self, step: str) -> None:
        if step.startswith("wrote a chunk"):
            raise Killed(step)

    def watch(self, calls: Callable[[], int]) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _tiers(store: Store, record_id: str, field: str) -> list[tuple[str | None, int]]:
    """The record's ledger rows of ``field``, newest first: (new value, run)."""
    rows = store.history(record_id, None, object="account")
    return [(r.to_value, r.run_id) for r in rows if r.field == field]


@contextlib.contextmanager
def _hubspot_killed_after_the_write(
    tmp_path: Path,
) -> Iterator[tuple[HubSpotSandbox, Store, Runner, Job, str, dict[str, Any], str, int]]:
    """A first run, then a run that dies once its write of a company's new Tier 1 landed."""
    engines = shipped_engines()
    with seeded_hubspot(61, 20, contacts_per_company=0) as sandbox:
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
        portal.update("companies", target.id, EDIT)
        with pytest.raises(Killed):
            runner.run(job, full=True, lease=DiesAfterTheWrite())  # type: ignore[arg-type]
        assert _tier(sandbox, target.id) == "Tier 1"  # landed
        assert store.intent_ids("hs", "account") == [target.id]  # left behind
        dead = store.intents("hs", "account", [target.id])[target.id].run_id
        yield sandbox, store, runner, job, target.id, before, tier_before, dead


def test_a_dead_runs_landed_write_is_not_taken_for_a_persons_edit(tmp_path: Path) -> None:
    with _hubspot_killed_after_the_write(tmp_path) as (
        sandbox,
        store,
        runner,
        job,
        target,
        before,
        tier_before,
        dead,
    ):
        # A person puts the inputs back: the definition wants the old tier again.
        sandbox.portal.update("companies", target, before)
        # A dry run plans the same (no override, the write back) and records nothing.
        preview = runner.run(job, full=True, dry_run=True)
        assert not [o for o in preview.sample_overrides if o.record_id == target]
        assert [w.record_id for w in preview.sample_writes] == [target]
        assert store.intent_ids("hs", "account") == [target]
        result = runner.run(job, full=True)
        assert result.status == "succeeded"
        # segsync wrote Tier 1 itself: no person's edit to respect.
        assert not [o for o in result.sample_overrides if o.record_id == target]
        assert _tier(sandbox, target) == tier_before
        # The dead run's change once, under the dead run, then the new run's.
        rows = _tiers(store, target, "segsync_tier")
        assert rows[:2] == [(tier_before, result.run_id), ("Tier 1", dead)]
        assert [r for r in rows if r[1] == dead] == [("Tier 1", dead)]
        assert store.intent_ids("hs", "account") == []
        # Steady: segsync manages the record again, nothing to write or keep.
        again = runner.run(job, full=True)
        assert again.summary.counts.changed == 0
        assert again.summary.counts.overrides == 0


def test_a_persons_edit_after_a_dead_runs_write_is_kept(tmp_path: Path) -> None:
    with _hubspot_killed_after_the_write(tmp_path) as (
        sandbox,
        store,
        runner,
        job,
        target,
        before,
        tier_before,
        dead,
    ):
        # A person puts the inputs back and sets the tier by hand after segsync's write.
        mine = next(t for t in ("Tier 2", "Tier 3") if t != tier_before)
        sandbox.portal.update("companies", target, {**before, "segsync_tier": mine})
        result = runner.run(job, full=True)
        assert result.status == "succeeded"
        kept = [o for o in result.sample_overrides if o.record_id == target]
        assert [(o.field, o.action) for o in kept if o.field == "segsync_tier"] == [
            ("segsync_tier", "kept")
        ]
        assert _tier(sandbox, target) == mine
        # The CRM no longer shows what the dead run wrote: nothing adopted, the intent cleared.
        assert ("Tier 1", dead) not in _tiers(store, target, "segsync_tier")
        assert store.intent_ids("hs", "account") == []


# -- Salesforce ------------------------------------------------------------------


@pytest.fixture
def salesforce() -> Iterator[SalesforceSandbox]:
    org = Org()
    org.load_accounts(data.salesforce_account_row(c) for c in data.companies(61, 20))
    sandbox = start_salesforce(org=org, client_id="intent-left-behind")
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _sf_tier(sandbox: SalesforceSandbox, record_id: str) -> str:
    record = sandbox.org.get("Account", record_id)
    assert record is not None
    return str(record["Segsync_Tier__c"])


def test_a_dead_runs_landed_write_is_adopted_on_salesforce(
    tmp_path: Path, salesforce: SalesforceSandbox
) -> None:
    engines = shipped_engines()
    adapter = salesforce_adapter(salesforce, attempts=2)
    try:
        provision(adapter, engines, "salesforce", objects=("account",))
        store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
        runner = Runner(store, SyncSettings(), clock=lambda: NOW)
        job = Job("sf", adapter, engines["account"])
        assert runner.run(job, full=True).status == "succeeded"
        org = salesforce.org
        accounts = [
            org.get("Account", data.salesforce_account_id(c.index)) for c in data.companies(61, 20)
        ]
        target = next(
            str(a["Id"]) for a in accounts if a is not None and a["Segsync_Tier__c"] != "Tier 1"
        )
        record = org.get("Account", target)
        assert record is not None
        before = {k: record.get(k) for k in SF_EDIT}
        tier_before = str(record["Segsync_Tier__c"])
        org.update("Account", target, SF_EDIT)  # a person, in the UI
        with pytest.raises(Killed):
            runner.run(job, lease=DiesAfterTheWrite())  # type: ignore[arg-type]
        assert _sf_tier(salesforce, target) == "Tier 1"  # landed, by the integration user
        assert store.intent_ids("sf", "account") == [target]
        dead = store.intents("sf", "account", [target])[target].run_id
        # A person puts the inputs back (LastModifiedById: the person again).
        org.update("Account", target, before)
        result = runner.run(job)
        assert result.status == "succeeded"
        assert not [o for o in result.sample_overrides if o.record_id == target]
        assert _sf_tier(salesforce, target) == tier_before
        rows = _tiers(store, target, "Segsync_Tier__c")
        assert rows[:2] == [(tier_before, result.run_id), ("Tier 1", dead)]
        assert [r for r in rows if r[1] == dead] == [("Tier 1", dead)]
        assert store.intent_ids("sf", "account") == []
    finally:
        adapter.close()
