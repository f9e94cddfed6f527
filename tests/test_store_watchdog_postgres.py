"""A store call that hangs cannot hold a job forever (PostgreSQL, real wire).

Real hubspot-api-client against a HubSpot sandbox of the test's own, a real
PostgreSQL store in a schema of the test's own. A second connection takes a
lock the store needs (``LOCK TABLE transitions``: every recorded batch
inserts its ledger rows there), so the run's statement blocks as it did when
a replica hung inside ``record_batch``:

- with the session bounds (``store.statement_timeout_seconds`` or
  ``store.lock_timeout_seconds``) the statement is cancelled, the step fails
  with an error naming the setting, and it is tried again until the lock is
  released; every company is written to the CRM once and has one ledger row
  per field;
- without them the statement waits; the run marks no progress, so past the
  stall limit its lease is no longer renewed, another "replica" (a second
  JobClaims on the same store) takes the job over, and ``/healthz`` says
  which job stalled and at which step, until the stuck call returns.

Every wait is for a condition (a log line, a blocked session, an HTTP
answer, a lease), bounded by ``PATIENCE``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sandbox_fixtures import hubspot_adapter, provision, seeded_hubspot, shipped_engines
from service_helpers import PATIENCE, until
from store_faults import Lines, companies_written, ledger_rows, log_lines, schema_of

from connector.config import Settings, StoreSettings, SyncSettings
from connector.crm.retry import RetryPolicy
from connector.engine import Engine
from connector.service.app import Service
from connector.store.leases import JobClaims, Lease
from connector.store.locks import locks_for
from connector.store.store import Store
from connector.sync.runner import Job, Runner, RunResult
from segsync_sandbox.hubspot import HubSpotSandbox

pytestmark = [pytest.mark.postgres]

#: Three write chunks of 100: the first one's batch is the one held up.
COMPANIES = 250


@pytest.fixture
def lines() -> Iterator[Lines]:
    with log_lines("segsync.sync", "segsync.locks") as handler:
        yield handler


@pytest.fixture(scope="module")
def engines() -> dict[str, Engine]:
    return shipped_engines()


@pytest.fixture
def sandbox(engines: dict[str, Engine]) -> Iterator[HubSpotSandbox]:
    with seeded_hubspot(23, COMPANIES, contacts_per_company=0) as running:
        provision(hubspot_adapter(running), engines, "hubspot", objects=("account",))
        yield running


@pytest.fixture
def ledger_lock(pg_conninfo: str, pg_schema_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A second session ready to lock the store's ledger table (released at the end)."""
    conn = psycopg.connect(pg_conninfo)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _lock_ledger(conn: psycopg.Connection[Any], url: str) -> None:
    # EXCLUSIVE: reads go on, every INSERT of a ledger row waits.
    conn.execute(f'LOCK TABLE "{schema_of(url)}".transitions IN EXCLUSIVE MODE')


def _blocked_by(conn: psycopg.Connection[Any], store: Store) -> int:
    """How many sessions wait for a lock ``conn``'s session holds."""
    with store.engine.connect() as c:
        return int(
            c.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
                ),
                {"pid": conn.info.backend_pid},
            ).scalar_one()
        )


def _blocked_pid(conn: psycopg.Connection[Any], store: Store) -> int | None:
    """The session waiting for a lock ``conn``'s session holds, if any."""
    return _blocked_by_pid(conn.info.backend_pid, store)


def _blocked_by_pid(pid: int, store: Store) -> int | None:
    """A session waiting for a lock session ``pid`` holds, if any."""
    with store.engine.connect() as c:
        found = c.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid)) LIMIT 1"
            ),
            {"pid": pid},
        ).scalar()
    return None if found is None else int(found)


def _written_once(sandbox: HubSpotSandbox, store: Store) -> None:
    companies = {r.id for r in sandbox.portal.snapshot("companies")}
    writes = companies_written(sandbox)
    assert set(writes) == companies
    assert set(writes.values()) == {1}, {k: v for k, v in writes.items() if v > 1}
    ledger = ledger_rows(store)
    assert {record for record, _ in ledger} == companies
    assert set(ledger.values()) == {1}, {k: v for k, v in ledger.items() if v > 1}
    assert store.intent_ids("hs", "account") == []
    assert store.record_count("hs", "account") == COMPANIES


# -- the bounds are on every session ------------------------------------------


def test_every_store_session_carries_the_configured_bounds(pg_schema_url: str) -> None:
    settings = StoreSettings(
        url=pg_schema_url,
        statement_timeout_seconds=7,
        lock_timeout_seconds=3,
        idle_in_transaction_timeout_seconds=11,
        connect_timeout_seconds=4,
        keepalive_seconds=9,
    )
    store = Store.from_settings(settings)
    locks = locks_for(store.engine)
    try:
        names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
        with store.engine.connect() as conn:
            shown = [conn.execute(sa.text(f"SHOW {n}")).scalar() for n in names]
            params = conn.connection.driver_connection.info.get_parameters()  # type: ignore[union-attr]
        assert shown == ["7s", "3s", "11s"]
        assert params["connect_timeout"] == "4"
        assert (params["keepalives"], params["keepalives_idle"]) == ("1", "9")
        assert (params["keepalives_interval"], params["keepalives_count"]) == ("3", "3")
        # Not before the statement timeout: a backend waiting for a lock reads nothing.
        assert params["tcp_user_timeout"] == str((7 + 9 + 3 * 3) * 1000)
        # The job locks' own connections too (held for a whole run).
        with locks.hold("t.account") as held:
            assert held
            pool = locks._engine  # type: ignore[attr-defined]
            with pool.connect() as conn:
                assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "7s"
    finally:
        locks.close()
        store.close()


def test_the_stall_limit_must_exceed_the_store_timeouts() -> None:
    with pytest.raises(ValidationError, match=r"sync.stall_seconds \(300\) must be above"):
        Settings.model_validate(
            {"store": {"statement_timeout_seconds": 600}, "sync": {"stall_seconds": 300}}
        )
    # Off on the server (0): any limit will do.
    Settings.model_validate(
        {
            "store": {"statement_timeout_seconds": 0, "lock_timeout_seconds": 0},
            "sync": {"stall_seconds": 5},
        }
    )


def test_a_renewal_that_times_out_does_not_end_the_heartbeat(
    pg_schema_url: str, ledger_lock: psycopg.Connection[Any], lines: Lines
) -> None:
    store = Store.from_settings(
        StoreSettings(url=pg_schema_url, statement_timeout_seconds=1, lock_timeout_seconds=0)
    )
    # Renewed every 10 s: a slow test thread has 19 s to release the row in time.
    claims = JobClaims(
        store.engine, locks_for(store.engine), lease_seconds=30, purpose="segsync run"
    )
    job = f"t{time.monotonic_ns()}.account"
    try:
        with claims.claim(job) as lease:
            assert isinstance(lease, Lease)
            # Another session holds the lease row: the renewal's UPDATE times out.
            ledger_lock.execute(
                f'SELECT 1 FROM "{schema_of(pg_schema_url)}".job_leases WHERE job = %s FOR UPDATE',
                (job,),
            )
            until(
                lambda: lines.having(f"renewing the lease of {job} failed"),
                PATIENCE,
                "a renewal to time out",
            )
            holder = claims.holder(job)
            assert holder is not None
            ledger_lock.rollback()
            # The heartbeat lives on: the next renewal pushes the expiry on.
            until(
                lambda: (
                    (now := claims.holder(job)) is not None and now.expires_at > holder.expires_at
                ),
                PATIENCE,
                "the next renewal",
            )
            failed = lines.having(f"renewing the lease of {job} failed")[0]
            assert "canceling statement due to statement timeout" in failed
            lease.fence()
    finally:
        claims.close()
        store.close()


# -- (a) a timed-out statement is retried, and nothing is recorded twice -------


@pytest.mark.parametrize(
    ("bound", "said"),
    [
        ({"statement_timeout_seconds": 1, "lock_timeout_seconds": 0}, "statement timeout"),
        ({"statement_timeout_seconds": 60, "lock_timeout_seconds": 1}, "lock timeout"),
    ],
    ids=["statement_timeout", "lock_timeout"],
)
def test_a_timed_out_store_step_is_retried_and_writes_once(
    bound: dict[str, float],
    said: str,
    sandbox: HubSpotSandbox,
    engines: dict[str, Engine],
    pg_schema_url: str,
    pg_conninfo: str,
    ledger_lock: psycopg.Connection[Any],
    lines: Lines,
) -> None:
    store = Store.from_settings(StoreSettings(url=pg_schema_url, **bound))
    # Patient enough to outlast the lock whatever the machine's load; quick back-off.
    runner = Runner(
        store,
        SyncSettings(),
        write_chunk=100,
        retry=RetryPolicy(attempts=10_000, initial_wait=0.05, max_wait=0.2),
    )
    job = Job("hs", hubspot_adapter(sandbox), engines["account"])
    outcome: dict[str, RunResult | BaseException] = {}

    def run() -> None:
        try:
            outcome["result"] = runner.run(job, full=True)
        except BaseException as exc:
            outcome["result"] = exc

    _lock_ledger(ledger_lock, pg_schema_url)
    row_lock = psycopg.connect(pg_conninfo)
    thread = threading.Thread(target=run, name="blocked-run")
    thread.start()
    try:
        failed = until(
            lambda: lines.having("store step record the batch failed"),
            PATIENCE,
            "the blocked batch to time out and be tried again",
        )
        # The first chunk went out before its batch blocked; nothing more was written.
        assert sum(companies_written(sandbox).values()) == 100
        assert store.record_count("hs", "account") == 0
        # Hold the run's own row too: recording its end will time out in turn.
        # (NO KEY: the ledger rows' foreign key checks on it go on.)
        (started,) = store.runs(1)
        row_lock.execute(
            f'SELECT 1 FROM "{schema_of(pg_schema_url)}".runs WHERE id = %s FOR NO KEY UPDATE',
            (started.id,),
        )
        ledger_lock.rollback()  # the ledger is free: the next try goes through
        ended = until(
            lambda: lines.having("store step record the run's end failed"),
            PATIENCE,
            "the run's end to time out and be tried again",
        )
    finally:
        ledger_lock.rollback()
        row_lock.rollback()  # and its row: the run's end is recorded
        row_lock.close()
        thread.join(PATIENCE)
    try:
        assert not thread.is_alive()
        result = outcome["result"]
        assert isinstance(result, RunResult), result
        assert result.status == "succeeded" and result.written == COMPANIES
        assert f"canceling statement due to {said}" in failed[0]
        setting = "statement" if said == "statement timeout" else "lock"
        key = f"{setting}_timeout_seconds = 1"
        assert f"(store.{key})" in failed[0] and "the step is retried" in failed[0]
        assert f"(store.{key})" in ended[0]
        row = store.run(started.id)
        assert row is not None and row.status == "succeeded" and row.counts.written == COMPANIES
        _written_once(sandbox, store)
    finally:
        store.close()


# -- (b) a stalled run gives its job up, and the process says so ---------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_stalled_run_stops_renewing_another_replica_takes_over_and_healthz_fails(
    sandbox: HubSpotSandbox,
    engines: dict[str, Engine],
    pg_schema_url: str,
    ledger_lock: psycopg.Connection[Any],
    lines: Lines,
) -> None:
    settings = Settings.model_validate(
        {
            "connections": {
                "hs": {
                    "crm": "hubspot",
                    "base_url": sandbox.base_url,
                    "access_token": sandbox.access_token,
                    "requests_per_10s": 10_000,
                    "search_per_second": 1_000,
                }
            },
            # No server-side bound: the blocked statement waits as long as the lock is held.
            "store": {
                "url": pg_schema_url,
                "statement_timeout_seconds": 0,
                "lock_timeout_seconds": 0,
            },
            "sync": {"lease_seconds": 5, "stall_seconds": 600},
            "service": {
                "port": 0,
                "jobs": [{"connection": "hs", "object": "account", "interval_minutes": 600}],
            },
        }
    )
    store = Store.from_settings(settings.store)
    replica = JobClaims(
        store.engine, locks_for(store.engine), lease_seconds=5, purpose="segsync run"
    )
    _lock_ledger(ledger_lock, pg_schema_url)
    service = Service(settings)
    service.start()  # the account job runs at once; its first batch blocks
    taken: Any = None
    try:
        assert service.http is not None and service.context is not None
        base = f"http://127.0.0.1:{service.http.port}"
        until(lambda: _blocked_by(ledger_lock, store), PATIENCE, "the run's batch to block")
        assert _get(f"{base}/healthz") == (200, "ok\n")
        # Known blocked now: a short limit (a slow page on a loaded machine is no stall).
        service.context.claims.stall_seconds = 1.0

        _, body = until(
            lambda: (got := _get(f"{base}/healthz"))[0] == 503 and got,
            PATIENCE,
            "/healthz to report the stall",
        )
        assert body.startswith("job hs.account stalled: no progress for "), body
        assert "since its last step (wrote a chunk of " in body, body
        ready = json.loads(_get(f"{base}/readyz")[1])
        check = ready["checks"]["job:hs.account"]
        assert ready["ready"] is False and check["ok"] is False
        assert check["last_step"].startswith("wrote a chunk of ")
        assert "\nsegsync_stalled_jobs 1.0\n" in _get(f"{base}/metrics")[1]
        logged = lines.having("job hs.account stalled")
        assert logged and "its lease is no longer renewed" in logged[0]

        # Another replica takes the job over once the unrenewed lease expires;
        # the stuck session still holds the job lock, so it is taken without it.
        def claimed() -> tuple[Any, Lease] | None:
            context = replica.claim("hs.account")
            got = context.__enter__()
            if isinstance(got, Lease):
                return context, got
            context.__exit__(None, None, None)
            return None

        taken = until(claimed, PATIENCE, "the other replica to take the job over")
        holder = replica.holder("hs.account")
        assert holder is not None and holder.mode == "steal" and holder.token == taken[1].token
        stuck = [r for r in store.runs(5, object="account") if r.status == "running"]
        assert len(stuck) == 1
        writes_before = sum(companies_written(sandbox).values())

        # The taker runs the job while the stuck batch still waits: the CRM
        # already holds what the stuck run wrote, so it adopts those records,
        # and its batch waits for the stuck one's rows.
        runner = Runner(store, settings.sync)
        job = Job("hs", hubspot_adapter(sandbox), engines["account"])
        outcome: dict[str, RunResult | BaseException] = {}

        def take_over() -> None:
            try:
                outcome["result"] = runner.run(job, lease=taken[1])
            except BaseException as exc:
                outcome["result"] = exc

        thread = threading.Thread(target=take_over, name="taker-run")
        thread.start()
        stuck_pid = until(
            lambda: _blocked_pid(ledger_lock, store), PATIENCE, "the stuck batch's session"
        )
        until(lambda: _blocked_by_pid(stuck_pid, store), PATIENCE, "the taker's batch to wait")

        # The stuck call returns: its batch is recorded, then the run finds its
        # job given up and writes nothing more; the process is healthy again.
        # The taker's batch goes on, and finds the adopted writes' ledger rows
        # already recorded (their intents settled): none twice.
        ledger_lock.rollback()
        thread.join(PATIENCE)
        assert not thread.is_alive()
        result = outcome["result"]
        assert isinstance(result, RunResult), result
        assert result.status == "succeeded", result.message

        def stuck_ended() -> Any:
            # The taker marked it interrupted when it started; the stuck run's own end says why.
            row = store.run(stuck[0].id)
            return row if row is not None and "stalled" in (row.message or "") else None

        ended = until(stuck_ended, PATIENCE, "the stuck run to end")
        assert ended.status == "aborted", ended
        assert "writes nothing more" in (ended.message or "")
        until(lambda: _get(f"{base}/healthz") == (200, "ok\n"), PATIENCE, "/healthz to recover")
        assert "\nsegsync_stalled_jobs 0.0\n" in _get(f"{base}/metrics")[1]
        assert sum(companies_written(sandbox).values()) == writes_before
        _written_once(sandbox, store)
    finally:
        ledger_lock.rollback()
        service.stop()
        if taken is not None:
            taken[0].__exit__(None, None, None)
        replica.close()
        store.close()


def test_a_pooled_connection_the_server_dropped_is_replaced_unseen(
    pg_schema_url: str, pg_conninfo: str
) -> None:
    # A server restart (or a failover) ends every session: the pool's idle
    # connections are dead, and the next statement on one must not fail.
    store = Store.open(pg_schema_url)
    try:
        with store.engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect(pg_conninfo, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

            def ended() -> bool:
                row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
                return row.fetchone() == (0,)

            until(ended, PATIENCE, "the session to end")
        assert store.runs(5) == []
    finally:
        store.close()
