"""Every store step of a run survives a transient store failure (PostgreSQL, real wire).

Real hubspot-api-client against a HubSpot sandbox of the test's own, a real
PostgreSQL store in a schema of the test's own, under a one-second lock
timeout. A second session locks the table a step needs, so the step's
statement is cancelled (``StoreUnavailable``); the step is tried again until
the lock is released, and the run succeeds with everything recorded once:

- the deal sync's page of deals (``DealStore.record``), checked against the
  same sync into a store nobody locks;
- the watermark an account run reads before anything else;
- the stored parents a HubSpot contact run reads mid-pull (``StoreParents``);
- a rollback's batch, and the lookup of the run to roll back (before the job is claimed).

And a rollback's batch whose COMMIT lands while its answer is lost (a relay
drops the connection right after the server completed it,
``store_faults.CommitCut``): the try after it finds the batch recorded, and
no ledger row or failure is recorded twice.

Every wait is for a condition (a log line, a blocked session), bounded by ``PATIENCE``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sandbox_fixtures import hubspot_adapter, provision, seeded_hubspot, shipped_engines
from service_helpers import PATIENCE, until
from store_faults import (
    CommitCut,
    Lines,
    companies_written,
    contacts_written,
    ledger_rows,
    log_lines,
    schema_of,
)

from connector.config import StoreSettings, SyncSettings
from connector.crm.retry import RetryPolicy
from connector.engine import Engine
from connector.store.deals import DEAL_MARKS, DEAL_OBJECT, DealStore
from connector.store.store import Store
from connector.sync.deals import DealSyncResult, sync_deals
from connector.sync.rollback import Rollback, RollbackResult, reason_of, run_to_undo
from connector.sync.runner import Job, Runner, RunResult
from segsync_sandbox import deals as deal_data
from segsync_sandbox.hubspot import HubSpotSandbox

pytestmark = [pytest.mark.postgres]

#: Two write chunks of 100 for the rollback: the first one's batch is the one hit.
COMPANIES = 150
#: Inputs that make a company Enterprise SaaS, Tier 1.
TIER_1 = {
    "industry": "COMPUTER_SOFTWARE",
    "numberofemployees": "5000",
    "intent_score": "95",
    "tech_stack": "Salesforce;Snowflake;AWS;Segment",
}
#: Patient enough to outlast the lock whatever the machine's load; quick back-off.
PATIENT = RetryPolicy(attempts=10_000, initial_wait=0.05, max_wait=0.2)


@pytest.fixture
def lines() -> Iterator[Lines]:
    with log_lines("segsync.sync") as handler:
        yield handler


@pytest.fixture(scope="module")
def engines() -> dict[str, Engine]:
    return shipped_engines()


@pytest.fixture
def holder(pg_conninfo: str) -> Iterator[psycopg.Connection[Any]]:
    """A second session, to lock a table of the store (released at the end)."""
    conn = psycopg.connect(pg_conninfo)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _store(url: str) -> Store:
    """The store under a one-second lock timeout (a blocked statement is cancelled)."""
    return Store.from_settings(
        StoreSettings(url=url, statement_timeout_seconds=60, lock_timeout_seconds=1)
    )


def _lock(conn: psycopg.Connection[Any], url: str, table: str, mode: str) -> None:
    conn.execute(f'LOCK TABLE "{schema_of(url)}".{table} IN {mode} MODE')


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:
            outcome["result"] = exc

    thread = threading.Thread(target=run, name="blocked-step")
    thread.start()
    return thread, outcome


def _blocked_until_released(
    holder: psycopg.Connection[Any], lines: Lines, step: str, work: Callable[[], Any]
) -> Any:
    """Run ``work`` while ``holder`` holds its lock, released once ``step`` failed (retried)."""
    thread, outcome = _in_thread(work)
    try:
        failed = until(
            lambda: lines.having(f"store step {step} failed"),
            PATIENCE,
            f"the step {step!r} to time out and be tried again",
        )
        assert "canceling statement due to lock timeout" in failed[0]
        assert "(store.lock_timeout_seconds = 1)" in failed[0]
    finally:
        holder.rollback()
        thread.join(PATIENCE)
    assert not thread.is_alive()
    return outcome["result"]


# -- the deal sync's page of deals ---------------------------------------------


def _deal_view(store: Store, result: DealSyncResult) -> tuple[Any, ...]:
    """What a deal sync left in the store, and said it did (run ids left out)."""
    deals = sorted(DealStore(store).deals("hs"), key=lambda d: d.id)
    marks = sorted(account for account, _ in store.changed_parents("hs", DEAL_MARKS))
    mark = store.watermark("hs", DEAL_OBJECT)
    runs = [(r.status, r.counts) for r in store.runs(10, object=DEAL_OBJECT)]
    counts = (result.read, result.stored, result.removed, result.skipped, result.problems)
    return deals, marks, mark.stamp if mark else None, runs, counts


def test_a_deal_page_whose_record_times_out_is_retried_and_kept_once(
    pg_schema_url: str,
    holder: psycopg.Connection[Any],
    lines: Lines,
    tmp_path: Path,
) -> None:
    with seeded_hubspot(31, 40, contacts_per_company=0) as sandbox:
        seeded = list(deal_data.deals(31, 40))
        sandbox.portal.load_deals(
            (deal_data.hubspot_deal_props(d), deal_data.hubspot_deal_company(d)) for d in seeded
        )

        def sync(store: Store) -> DealSyncResult:
            adapter = hubspot_adapter(sandbox)
            return sync_deals(
                adapter, store, "hs", lookback=timedelta(0), mark_accounts=True, retry=PATIENT
            )

        # What the same sync keeps when nothing is in its way.
        with Store.open(f"sqlite:///{tmp_path / 'reference.db'}") as reference:
            expected = _deal_view(reference, sync(reference))
        store = _store(pg_schema_url)
        try:
            # EXCLUSIVE: reads go on, the page's upsert waits.
            _lock(holder, pg_schema_url, "deals", "EXCLUSIVE")
            result = _blocked_until_released(
                holder, lines, "record a page of deals", lambda: sync(store)
            )
            assert isinstance(result, DealSyncResult), result
            assert result.status == "succeeded"
            assert result.stored > 0
            assert _deal_view(store, result) == expected
        finally:
            store.close()


# -- a read at the start of an account run -------------------------------------


def test_an_account_run_whose_watermark_read_times_out_is_retried_and_writes_once(
    engines: dict[str, Engine],
    pg_schema_url: str,
    holder: psycopg.Connection[Any],
    lines: Lines,
) -> None:
    with seeded_hubspot(37, COMPANIES, contacts_per_company=0) as sandbox:
        provision(hubspot_adapter(sandbox), engines, "hubspot", objects=("account",))
        store = _store(pg_schema_url)
        try:
            runner = Runner(store, SyncSettings(), retry=PATIENT)
            job = Job("hs", hubspot_adapter(sandbox), engines["account"])
            # ACCESS EXCLUSIVE: even a read of the watermark waits.
            _lock(holder, pg_schema_url, "watermarks", "ACCESS EXCLUSIVE")
            result = _blocked_until_released(
                holder, lines, "read the watermark", lambda: runner.run(job, full=True)
            )
            assert isinstance(result, RunResult), result
            assert result.status == "succeeded" and result.written == COMPANIES
            assert result.run_id is not None
            assert [r.id for r in store.runs(10)] == [result.run_id]
            companies = {r.id for r in sandbox.portal.snapshot("companies")}
            assert companies_written(sandbox) == Counter(dict.fromkeys(companies, 1))
            ledger = ledger_rows(store, result.run_id)
            assert {record for record, _ in ledger} == companies
            assert set(ledger.values()) == {1}
            assert store.watermark("hs", "account") is not None
        finally:
            store.close()


# -- the stored parents a contact run reads mid-pull -----------------------------


def test_a_contact_run_whose_stored_parents_read_times_out_is_retried_and_writes_once(
    engines: dict[str, Engine],
    pg_schema_url: str,
    holder: psycopg.Connection[Any],
    lines: Lines,
) -> None:
    with seeded_hubspot(47, 60, contacts_per_company=2) as sandbox:
        provision(hubspot_adapter(sandbox), engines, "hubspot")
        store = _store(pg_schema_url)
        try:
            runner = Runner(store, SyncSettings(), retry=PATIENT)
            accounts = Job("hs", hubspot_adapter(sandbox), engines["account"])
            assert runner.run(accounts, full=True).status == "succeeded"
            # One company written later: the store vouches for the others
            # (connector/sync/parents.py), so the contact run reads their values from it.
            target = next(
                r
                for r in sandbox.portal.snapshot("companies")
                if r.props["segsync_tier"] != "Tier 1"
            )
            sandbox.portal.update("companies", target.id, TIER_1)
            assert runner.run(accounts).written == 1
            sandbox.app.log.clear()
            contacts = Job("hs", hubspot_adapter(sandbox), engines["contact"], engines["account"])
            # ACCESS EXCLUSIVE on the noted values: the pull's read of them waits.
            _lock(holder, pg_schema_url, "inherited_values", "ACCESS EXCLUSIVE")
            result = _blocked_until_released(
                holder,
                lines,
                "read the stored parents' values",
                lambda: runner.run(contacts, full=True),
            )
            assert isinstance(result, RunResult), result
            assert result.status == "succeeded" and result.deferred == 0
            people = {r.id for r in sandbox.portal.snapshot("contacts")}
            assert result.written == len(people) > 0
            assert contacts_written(sandbox) == Counter(dict.fromkeys(people, 1))
            assert not companies_written(sandbox)
            assert [r.id for r in store.runs(1, object="contact")] == [result.run_id]
        finally:
            store.close()


# -- a rollback's batch --------------------------------------------------------


def _synced(sandbox: HubSpotSandbox, engines: dict[str, Engine], store: Store) -> int:
    """A first account run over the whole portal; its run id."""
    provision(hubspot_adapter(sandbox), engines, "hubspot", objects=("account",))
    job = Job("hs", hubspot_adapter(sandbox), engines["account"])
    result = Runner(store, SyncSettings(), write_chunk=100).run(job, full=True)
    assert result.status == "succeeded" and result.written == COMPANIES
    assert result.run_id is not None
    return result.run_id


def _rollback(sandbox: HubSpotSandbox, engine: Engine, store: Store, run_id: int) -> Any:
    settings = SyncSettings(max_change_share=1.0)
    rollback = Rollback(store, settings, hubspot_adapter(sandbox), engine, retry=PATIENT)
    return rollback.run(run_id)


def _rolled_back_once(
    sandbox: HubSpotSandbox, store: Store, run_id: int, result: RollbackResult
) -> None:
    assert isinstance(result, RollbackResult), result
    assert result.status == "succeeded" and result.written == COMPANIES
    assert result.run_id is not None
    row = store.run(result.run_id)
    assert row is not None and row.status == "succeeded" and row.counts.written == COMPANIES
    companies = {r.id for r in sandbox.portal.snapshot("companies")}
    # Written by the run, then by its rollback: twice each, never a third time.
    assert companies_written(sandbox) == Counter(dict.fromkeys(companies, 2))
    restored = ledger_rows(store, result.run_id)
    assert restored == ledger_rows(store, run_id)  # each field the run set, restored once
    rows = store.history(None, None, run_id=result.run_id)
    assert {t.reason for t in rows} == {reason_of(run_id)}
    assert store.intent_ids("hs", "account") == []
    assert store.open_errors("hs", "account") == []


def test_a_rollback_batch_that_times_out_is_retried_and_recorded_once(
    engines: dict[str, Engine],
    pg_schema_url: str,
    holder: psycopg.Connection[Any],
    lines: Lines,
) -> None:
    with seeded_hubspot(41, COMPANIES, contacts_per_company=0) as sandbox:
        store = _store(pg_schema_url)
        try:
            run_id = _synced(sandbox, engines, store)
            _lock(holder, pg_schema_url, "transitions", "EXCLUSIVE")
            result = _blocked_until_released(
                holder,
                lines,
                "record the batch",
                lambda: _rollback(sandbox, engines["account"], store, run_id),
            )
            _rolled_back_once(sandbox, store, run_id, result)
        finally:
            store.close()


def test_a_rollback_batch_whose_commit_answer_is_lost_is_recorded_once(
    engines: dict[str, Engine], pg_schema_url: str, lines: Lines
) -> None:
    url = sa.make_url(pg_schema_url)
    relay = CommitCut(url.host or "127.0.0.1", url.port or 5432)
    with seeded_hubspot(43, COMPANIES, contacts_per_company=0) as sandbox:
        store = _store(pg_schema_url)
        cut = Store.from_settings(StoreSettings(url=relay.url(pg_schema_url)))
        try:
            run_id = _synced(sandbox, engines, store)
            # The rollback's first batch commits; the connection drops before its answer.
            relay.arm(b"INSERT INTO transitions")
            result = _rollback(sandbox, engines["account"], cut, run_id)
            assert relay.cut.is_set()
            assert lines.having("store step record the batch failed")
            _rolled_back_once(sandbox, store, run_id, result)
            # Found recorded by the settled intents (it was not recorded again).
            assert lines.having("the batch was recorded by the try whose answer was lost")
        finally:
            cut.close()
            store.close()
            relay.close()


def test_the_lookup_of_the_run_to_roll_back_times_out_is_retried_and_the_rollback_runs(
    engines: dict[str, Engine],
    pg_schema_url: str,
    holder: psycopg.Connection[Any],
    lines: Lines,
) -> None:
    with seeded_hubspot(53, COMPANIES, contacts_per_company=0) as sandbox:
        store = _store(pg_schema_url)
        try:
            run_id = _synced(sandbox, engines, store)
            # ACCESS EXCLUSIVE: the read of the run (before any job is claimed) waits.
            _lock(holder, pg_schema_url, "runs", "ACCESS EXCLUSIVE")
            found = _blocked_until_released(
                holder,
                lines,
                "read the run to roll back",
                lambda: run_to_undo(store, run_id, PATIENT),
            )
            assert found is not None and found.id == run_id, found
            result = _rollback(sandbox, engines["account"], store, found.id)
            _rolled_back_once(sandbox, store, run_id, result)
        finally:
            store.close()
