"""SQLite's file lock held by another connection fails a step for now, and it is retried.

The embedded default store is one SQLite file; a second segsync process on
it, or a ``segsync status`` or shell inside a write transaction, holds its
write lock for a while. A statement waits for it up to the busy timeout
(``store.lock_timeout_seconds``), then SQLite answers "database is locked":
that is :class:`~connector.errors.StoreUnavailable`, so the run's step is
tried again (``connector/sync/steps.py``) instead of failing the run.

Real hubspot-api-client against a HubSpot sandbox of the test's own, a real
second ``sqlite3`` connection holding ``BEGIN IMMEDIATE``. Every wait is for a
condition (a log line, the run's end), bounded by ``PATIENCE``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_fixtures import hubspot_adapter, provision, seeded_hubspot, shipped_engines
from service_helpers import PATIENCE, until
from store_faults import Lines, companies_written, ledger_rows, log_lines

from connector.config import StoreSettings, SyncSettings
from connector.crm.retry import RetryPolicy
from connector.errors import StoreUnavailable
from connector.store.session import SQLITE_MAX_BUSY_MS, SessionLimits
from connector.store.store import Store
from connector.sync.runner import Job, Runner, RunResult

#: Two write chunks of 100: the lock is taken between them.
COMPANIES = 150
#: Patient enough to outlast the lock whatever the machine's load; quick back-off.
PATIENT = RetryPolicy(attempts=10_000, initial_wait=0.05, max_wait=0.2)


@pytest.fixture
def lines() -> Iterator[Lines]:
    with log_lines("segsync.sync") as handler:
        yield handler


def _store(path: Path) -> Store:
    """The store on ``path`` under a short busy timeout (0.2 s)."""
    return Store.from_settings(StoreSettings(url=f"sqlite:///{path}", lock_timeout_seconds=0.2))


def test_a_run_whose_store_file_another_connection_locks_mid_run_completes_once(
    tmp_path: Path, lines: Lines
) -> None:
    path = tmp_path / "state.db"
    engines = shipped_engines()
    with seeded_hubspot(59, COMPANIES, contacts_per_company=0) as sandbox:
        provision(hubspot_adapter(sandbox), engines, "hubspot", objects=("account",))
        store = _store(path)
        # A second connection to the same file, as another process has.
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        held = threading.Event()

        def progress(phase: str, done: int) -> None:
            # On the run's own thread, right after its first batch was recorded:
            # the file's write lock is another connection's before the next chunk.
            if phase == "write" and not held.is_set():
                holder.execute("BEGIN IMMEDIATE")
                held.set()

        runner = Runner(store, SyncSettings(), write_chunk=100, progress=progress, retry=PATIENT)
        job = Job("hs", hubspot_adapter(sandbox), engines["account"])
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = runner.run(job, full=True)
            except BaseException as exc:
                outcome["result"] = exc

        thread = threading.Thread(target=run, name="locked-run")
        thread.start()
        try:
            until(
                lambda: lines.having("database is locked") or not thread.is_alive(),
                PATIENCE,
                "a store step to find the file locked and be tried again",
            )
            failed = lines.having("database is locked")
            assert failed, outcome.get("result")
            # The next chunk's intents, or a note of the plan still reading alongside.
            assert failed[0].startswith("store step "), failed[0]
            assert "(store.lock_timeout_seconds = 0.2)" in failed[0]
            assert "the step is retried" in failed[0]
        finally:
            if held.is_set():
                holder.execute("ROLLBACK")  # released: the step's next try goes through
            thread.join(PATIENCE)
            holder.close()
        try:
            assert not thread.is_alive()
            result = outcome["result"]
            assert isinstance(result, RunResult), result
            assert result.status == "succeeded" and result.written == COMPANIES
            assert [r.id for r in store.runs(10)] == [result.run_id]
            companies = {r.id for r in sandbox.portal.snapshot("companies")}
            assert companies_written(sandbox) == Counter(dict.fromkeys(companies, 1))
            ledger = ledger_rows(store, result.run_id)
            assert {record for record, _ in ledger} == companies
            assert set(ledger.values()) == {1}
            assert store.intent_ids("hs", "account") == []
            assert store.watermark("hs", "account") is not None
        finally:
            store.close()


def test_a_lock_held_past_the_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = _store(path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="database is locked"):
            store.reset_watermark("hs", "account")
        holder.execute("ROLLBACK")
        store.reset_watermark("hs", "account")  # the lock released: it goes through
    finally:
        holder.close()
        store.close()


@pytest.mark.parametrize(
    ("lock", "statement", "busy_ms", "named"),
    [
        (60.0, 300.0, 60_000, "store.lock_timeout_seconds = 60"),
        (0.25, 0.0, 250, "store.lock_timeout_seconds = 0.25"),
        (0.0, 300.0, 300_000, "store.statement_timeout_seconds = 300"),
        (0.0, 0.0, SQLITE_MAX_BUSY_MS, "store.statement_timeout_seconds = 0"),
    ],
)
def test_sqlite_waits_for_a_lock_as_long_as_postgresql_would(
    lock: float, statement: float, busy_ms: int, named: str
) -> None:
    limits = SessionLimits(lock_timeout_seconds=lock, statement_timeout_seconds=statement)
    assert limits.sqlite_busy_ms() == busy_ms
    assert limits.describe("busy_timeout") == named
