"""The state store, on SQLite and on the machine's PostgreSQL (``-m postgres``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connector.state import Candidate, Pending, Watermark
from connector.store import (
    FailedRecord,
    RunCounts,
    Store,
    StoreError,
    Transition,
    WrittenRecord,
    normalize_url,
)
from connector.store.migrations.__main__ import main as migrations_main
from connector.store.schema import decode, encode, metadata, watermarks
from connector.store.store import alembic_config

T0 = datetime(2026, 11, 22, 5, 0, 0, 123456, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a uniquely named PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state/segsync.db"
        return
    yield request.getfixturevalue("pg_schema_url")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[Store]:
    opened = Store.open(url, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def _state(store: Store, ids: list[str]) -> tuple[Any, ...]:
    """Everything record_batch touches, to compare before and after."""
    return (
        store.last_written("sf", "account", ids),
        store.pending("sf", "account", ids),
        store.open_errors("sf", "account"),
        [store.history(i) for i in ids],
    )


# -- schema and migrations ------------------------------------------------------------


def test_open_migrates_an_empty_database_to_head(store: Store) -> None:
    assert store.revision() == Store.head() is not None
    with store.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert {"runs", "watermarks", "record_state", "transitions", "errors"} <= tables
        # The migrations build exactly the schema the code uses.
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_reopening_is_a_no_op_and_keeps_data(url: str, clock: Clock) -> None:
    with Store.open(url, clock=clock) as first:
        run_id = first.start_run("sf", "salesforce", "account", "v1", full=True)
    with Store.open(url, clock=clock) as second:
        assert second.revision() == Store.head()
        assert [r.id for r in second.runs()] == [run_id]
        with second.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_threads_opening_one_database_together_migrate_once(url: str) -> None:
    failures: list[BaseException] = []

    def open_and_close() -> None:
        try:
            Store.open(url).close()
        except BaseException as exc:  # reported below, with the thread's error
            failures.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with Store.open(url) as store:
        assert store.revision() == Store.head()


def test_maintainer_command_reports_the_revision(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrations_main(["current", "--url", url]) == 0
    assert "revision None" in capsys.readouterr().out
    assert migrations_main(["upgrade", "--url", url]) == 0
    assert f"revision {Store.head()} (head {Store.head()})" in capsys.readouterr().out


def test_open_reports_an_unreachable_database_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(
            "postgresql://segsync:s3cret-pw@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
        )
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


def test_urls_default_to_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


@pytest.mark.parametrize(
    "value",
    [
        {"when": T0, "day": date(2026, 1, 2), "n": [1, 2.5, None, "x"], "ok": True},
        {"big": Decimal("12.50"), "odd": float("inf"), "tags": frozenset({"a", "b"})},
        {"nested": {"$not_a_tag": 1, "deep": [{"t": T0}]}},
    ],
)
def test_json_encoding_round_trips(value: dict[str, Any]) -> None:
    assert decode(encode(value)) == value
    with pytest.raises(TypeError, match="cannot store"):
        encode({"x": object()})


# -- runs ------------------------------------------------------------------------------


def test_runs_are_recorded_and_listed_newest_first(store: Store, clock: Clock) -> None:
    first = store.start_run("sf", "salesforce", "account", "v1", full=True)
    clock.tick(60)
    counts = RunCounts(read=10, changed=4, written=3, failed=1, overrides=2, locked=1, held=1)
    store.finish_run(first, "partial", counts, api_calls=3, api_calls_minimum=2, message="1 failed")
    clock.tick(60)
    second = store.start_run("hs", "hubspot", "account", "v1", full=False)

    latest, earlier = store.runs()
    assert (latest.id, earlier.id) == (second, first)
    assert latest.status == "running" and latest.finished_at is None
    assert earlier.counts == counts
    assert (earlier.api_calls, earlier.api_calls_minimum) == (3, 2)
    assert earlier.started_at == T0 and earlier.finished_at == T0 + timedelta(seconds=60)
    assert earlier.message == "1 failed" and earlier.full and not latest.full
    assert [r.id for r in store.runs(connection="hs")] == [second]
    assert store.runs(limit=1) == [latest]
    assert store.run(first) == earlier
    assert store.last_success("sf", "account") == T0 + timedelta(seconds=60)
    assert store.last_success("hs", "account") is None
    assert store.last_full_run("sf", "account") == earlier


def test_a_run_left_running_is_marked_interrupted(store: Store, clock: Clock) -> None:
    # Only a run that holds the job's claim may conclude that a `running`
    # row of its job is a dead process's (the claim would not be free otherwise).
    dead = store.start_run("sf", "salesforce", "account", "v1", full=False)
    other = store.start_run("sf", "salesforce", "contact", "v1", full=False)
    clock.tick()
    store.start_run("sf", "salesforce", "account", "v1", full=False, claimed=True)
    dead_row, other_row = store.run(dead), store.run(other)
    assert dead_row is not None and dead_row.status == "interrupted"
    assert dead_row.message == "the process stopped before the run finished"
    assert other_row is not None and other_row.status == "running"


def test_a_run_without_the_claim_never_marks_another_run(store: Store, clock: Clock) -> None:
    live = store.start_run("sf", "salesforce", "account", "v1", full=False)
    clock.tick()
    store.start_run("sf", "salesforce", "account", "v1", full=False)
    row = store.run(live)
    assert row is not None and row.status == "running" and row.finished_at is None


def test_finish_run_rejects_bad_status_and_unknown_run(store: Store) -> None:
    run_id = store.start_run("sf", "salesforce", "account", "v1", full=True)
    with pytest.raises(ValueError, match="final run status"):
        store.finish_run(run_id, "running", RunCounts(), 0, 0)
    with pytest.raises(StoreError, match="no run"):
        store.finish_run(run_id + 100, "succeeded", RunCounts(), 0, 0)


# -- watermarks ------------------------------------------------------------------------


def test_watermark_round_trip_and_update(store: Store) -> None:
    assert store.watermark("sf", "account") is None
    mark = Watermark(T0, frozenset({"001A", "001B"}), "v1")
    store.advance_watermark("sf", "account", mark)
    assert store.watermark("sf", "account") == mark
    later = Watermark(T0 + timedelta(milliseconds=1), frozenset({"001C"}), "v2")
    store.advance_watermark("sf", "account", later)
    assert store.watermark("sf", "account") == later
    assert store.watermark("sf", "contact") is None
    store.reset_watermark("sf", "account")
    assert store.watermark("sf", "account") is None


def test_a_watermark_keeps_its_known_pairs_compact_and_reads_those_stored_as_json(
    store: Store,
) -> None:
    # 50,000 records written (HubSpot ids, a stamp per batch of 100, microseconds
    # kept) and two Salesforce ids: every pair back, a few bytes each.
    pairs = [
        (str(30_000_000_000 + 3 * n), T0 + timedelta(seconds=n // 100 * 0.12, microseconds=n % 7))
        for n in range(50_000)
    ]
    pairs += [("001000000000001AAA", T0), ("001000000000002AAA", T0 + timedelta(seconds=4))]
    store.advance_watermark("hs", "account", Watermark(T0, frozenset(), "v1", pairs))
    back = store.watermark("hs", "account")
    assert back is not None and len(back.known) == len(pairs) and dict(back.known) == dict(pairs)
    with store._engine.begin() as conn:  # the stored form is the point
        packed = conn.execute(sa.select(watermarks.c.known_packed)).scalar_one()
        assert len(packed) < 4 * 50_000, len(packed)  # as JSON: about 60 bytes a pair
        # A watermark written before migration 0015: every pair in the JSON column.
        conn.execute(sa.update(watermarks).values(known=[[i, s] for i, s in pairs[:3]]))
        conn.execute(sa.update(watermarks).values(known_packed=None))
    older = store.watermark("hs", "account")
    assert older is not None and dict(older.known) == dict(pairs[:3])


# -- record batches ----------------------------------------------------------------------


def test_record_batch_stores_values_ledger_and_pending(store: Store, clock: Clock) -> None:
    run_id = store.start_run("sf", "salesforce", "account", "v1", full=True)
    pending = Pending({"Segment__c": Candidate("SMB", 2, T0 - timedelta(days=1))})
    store.record_batch(
        run_id,
        "sf",
        "account",
        written=[WrittenRecord("001A", {"Tier__c": "Tier 1", "Fit__c": 80.5, "Updated__c": T0})],
        transitions=[Transition("001A", "Tier__c", "Tier 2", "Tier 1", "fit 80", "v1")],
        pending={"001A": pending, "001B": pending},
    )
    assert store.last_written("sf", "account", ["001A", "001B", "zzz"]) == {
        "001A": {"Tier__c": "Tier 1", "Fit__c": 80.5, "Updated__c": T0}
    }
    assert store.pending("sf", "account", ["001A", "001B"]) == {"001A": pending, "001B": pending}
    assert store.pending_ids("sf", "account") == ["001A", "001B"]
    assert store.pending("sf", "contact", ["001A"]) == {}
    (entry,) = store.history("001A")
    assert (entry.field, entry.from_value, entry.to_value, entry.reason) == (
        "Tier__c",
        "Tier 2",
        "Tier 1",
        "fit 80",
    )
    assert (entry.run_id, entry.mapping_version, entry.at) == (run_id, "v1", T0)
    assert store.record_count("sf", "account") == 1

    # Clearing pending keeps the last-written values; a new write keeps the pending state.
    clock.tick()
    store.record_batch(run_id, "sf", "account", pending={"001A": None})
    store.record_batch(run_id, "sf", "account", written=[WrittenRecord("001B", {"Tier__c": "T"})])
    assert store.pending_ids("sf", "account") == ["001B"]
    assert store.last_written("sf", "account", ["001A"])["001A"]["Tier__c"] == "Tier 1"
    assert store.pending("sf", "account", ["001B"]) == {"001B": pending}


def test_last_written_reads_many_ids_in_chunks(store: Store) -> None:
    run_id = store.start_run("hs", "hubspot", "contact", "v1", full=True)
    ids = [str(n) for n in range(1, 1201)]
    store.record_batch(
        run_id, "hs", "contact", written=[WrittenRecord(i, {"segsync_tier": i}) for i in ids]
    )
    found = store.last_written("hs", "contact", [*ids, "0", "1"])
    assert len(found) == 1200
    assert all(found[i] == {"segsync_tier": i} for i in ids)


def test_repeated_ids_in_a_batch_keep_the_last(store: Store) -> None:
    run_id = store.start_run("sf", "salesforce", "account", "v1", full=True)
    store.record_batch(
        run_id,
        "sf",
        "account",
        written=[WrittenRecord("001A", {"v": 1}), WrittenRecord("001A", {"v": 2})],
        failed=[FailedRecord("001B", "X", "first"), FailedRecord("001B", "Y", "second")],
    )
    assert store.last_written("sf", "account", ["001A"]) == {"001A": {"v": 2}}
    (error,) = store.open_errors()
    assert (error.code, error.message, error.attempts) == ("Y", "second", 1)


def test_errors_count_attempts_and_resolve_on_a_later_write(store: Store, clock: Clock) -> None:
    run_id = store.start_run("sf", "salesforce", "account", "v1", full=False)
    fail = FailedRecord("001A", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "bad value: Tier 9")
    store.record_batch(run_id, "sf", "account", failed=[fail, FailedRecord("001B", "E", "x")])
    clock.tick(3600)
    store.record_batch(run_id, "sf", "account", failed=[fail])
    errors = {e.record_id: e for e in store.open_errors("sf", "account")}
    assert errors["001A"].attempts == 2 and errors["001B"].attempts == 1
    assert errors["001A"].first_seen == T0 and errors["001A"].last_seen == clock.now
    assert errors["001A"].code == fail.code and errors["001A"].run_id == run_id
    assert store.open_errors("hs") == [] and store.open_errors("sf", "contact") == []
    # Newest first.
    assert [e.record_id for e in store.open_errors()] == ["001A", "001B"]

    store.record_batch(run_id, "sf", "account", written=[WrittenRecord("001A", {"t": 1})])
    assert [e.record_id for e in store.open_errors()] == ["001B"]

    # Failing again after being resolved is a new error.
    clock.tick()
    store.record_batch(run_id, "sf", "account", failed=[fail])
    again = {e.record_id: e for e in store.open_errors()}["001A"]
    assert again.attempts == 1 and again.first_seen == clock.now and not again.resolved


def test_history_is_newest_first_limited_and_filtered(store: Store, clock: Clock) -> None:
    run_id = store.start_run("sf", "salesforce", "account", "v1", full=True)
    steps = [(None, "Tier 3"), ("Tier 3", "Tier 2"), ("Tier 2", "Tier 1")]
    for old, new in steps:
        clock.tick()
        store.record_batch(
            run_id, "sf", "account", transitions=[Transition("001A", "Tier__c", old, new, "", "v1")]
        )
    store.record_batch(
        run_id, "sf", "account", transitions=[Transition("001B", "Tier__c", None, "x", "", "v1")]
    )
    rows = store.history("001A")
    assert [(r.from_value, r.to_value) for r in rows] == list(reversed(steps))
    assert rows[0].at > rows[-1].at
    assert len(store.history("001A", limit=2)) == 2
    assert store.history("001A", connection="hs") == []
    assert store.history("nope") == []
    assert [r.record_id for r in store.history(None, limit=2)] == ["001B", "001A"]


def test_record_batch_is_atomic(store: Store) -> None:
    run_id = store.start_run("sf", "salesforce", "account", "v1", full=True)
    ids = ["001A", "001B"]
    store.record_batch(
        run_id,
        "sf",
        "account",
        written=[WrittenRecord("001A", {"t": "old"})],
        failed=[FailedRecord("001B", "E", "x")],
        pending={"001A": Pending({"t": Candidate("new", 1, T0)})},
    )
    before = _state(store, ids)

    def fail_on_ledger(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Fails after the record_state upsert, the error updates and the
        # pending upsert have run inside the transaction.
        if statement.lstrip().upper().startswith("INSERT INTO TRANSITIONS"):
            raise RuntimeError("disk unplugged")

    sa.event.listen(store.engine, "before_cursor_execute", fail_on_ledger)
    try:
        with pytest.raises(RuntimeError, match="disk unplugged"):
            store.record_batch(
                run_id,
                "sf",
                "account",
                written=[WrittenRecord("001A", {"t": "new"}), WrittenRecord("001B", {"t": 1})],
                failed=[FailedRecord("001C", "E", "y")],
                transitions=[Transition("001A", "t", "old", "new", "", "v1")],
                pending={"001A": None},
            )
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", fail_on_ledger)
    assert _state(store, ids) == before
    assert [e.record_id for e in store.open_errors()] == ["001B"]


# -- due dates -------------------------------------------------------------------------


def test_due_dates_are_recorded_with_the_batch_and_listed_when_passed(store: Store) -> None:
    run_id = store.start_run("sf", "salesforce", "account", "v1", full=True)
    soon, later = T0 + timedelta(days=1), T0 + timedelta(days=30)
    store.record_batch(
        run_id,
        "sf",
        "account",
        written=[WrittenRecord("001A", {"Tier__c": "Tier 1"})],
        due={"001A": later, "001B": soon, "001C": None},
    )
    assert store.due("sf", "account", ["001A", "001B", "001C", "zzz"]) == {
        "001A": later,
        "001B": soon,
    }
    assert store.due_ids("sf", "account", T0) == []
    assert store.due_ids("sf", "account", soon) == ["001B"]
    assert store.due_ids("sf", "account", later) == ["001B", "001A"]  # earliest first
    assert store.due_ids("sf", "contact", later) == []
    # A due date alone does not make a record "written" (the guard's count).
    assert store.record_count("sf", "account") == 1
    store.record_batch(run_id, "sf", "account", due={"001B": None})
    assert store.due_ids("sf", "account", later) == ["001A"]
    assert store.last_written("sf", "account", ["001A"])["001A"] == {"Tier__c": "Tier 1"}


def test_reading_due_dates_by_id_looks_records_up_by_key(tmp_path: Any, clock: Clock) -> None:
    # Per page of a pull: with the not-null test in the query, SQLite walked the
    # due-date index (every record with a due date) instead of the key.
    with Store.open(f"sqlite:///{tmp_path}/s.db", clock=clock) as store:
        run_id = store.start_run("sf", "salesforce", "account", "v1", full=True)
        store.record_batch(run_id, "sf", "account", due={"001A": T0, "001B": None})
        plans: list[str] = []

        def explain(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "record_state" in statement and statement.lstrip().upper().startswith("SELECT"):
                rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, params)
                plans.extend(str(row[-1]) for row in rows)

        sa.event.listen(store.engine, "before_cursor_execute", explain)
        try:
            assert store.due("sf", "account", ["001A", "001B", "zzz"]) == {"001A": T0}
            assert store.echo_stamps("sf", "account", ["001A"]) == {}
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", explain)
        assert plans and all("due_at" not in plan for plan in plans), plans
        assert all("sqlite_autoindex_record_state" in plan for plan in plans), plans


def test_upgrade_from_the_first_schema_keeps_the_records(url: str, clock: Clock) -> None:
    config = alembic_config()
    with Store.open(url, clock=clock, migrate=False) as old:
        with old.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        assert old.revision() == "0001"
        with old.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO record_state (connection, object, record_id, last_written)"
                    " VALUES ('sf', 'account', '001A', '{\"Tier__c\": \"Tier 1\"}')"
                )
            )
    with Store.open(url, clock=clock) as store:
        assert store.revision() == Store.head()
        assert store.last_written("sf", "account", ["001A"]) == {"001A": {"Tier__c": "Tier 1"}}
        assert store.due("sf", "account", ["001A"]) == {}
        assert store.due_ids("sf", "account", T0 + timedelta(days=36500)) == []


# -- changed parents -------------------------------------------------------------------


def test_changed_parents_survive_until_cleared_and_a_later_mark_survives_that(
    store: Store,
) -> None:
    first = store.start_run("sf", "salesforce", "account", "v1", full=True)
    store.record_batch(
        first,
        "sf",
        "account",
        written=[WrittenRecord("001A", {"Tier__c": "Tier 1"})],
        changed=["001A", "001B", "001A"],
    )
    store.finish_run(first, "succeeded", RunCounts(), 0, 0)
    marks = store.changed_parents("sf", "account")
    assert marks == [("001A", first), ("001B", first)]
    assert store.changed_parents("sf", "contact") == []
    assert store.changed_parents("hs", "account") == []
    # A contact run read the marks; meanwhile another account run marks 001B again.
    second = store.start_run("sf", "salesforce", "account", "v1", full=False)
    store.record_batch(second, "sf", "account", changed=["001B"])
    store.clear_changed_parents("sf", "account", marks)
    assert store.changed_parents("sf", "account") == [("001B", second)]
    store.clear_changed_parents("sf", "account", [("001B", second)])
    assert store.changed_parents("sf", "account") == []


def test_many_changed_parents_clear_in_chunks(store: Store) -> None:
    run_id = store.start_run("hs", "hubspot", "account", "v1", full=True)
    ids = [str(n) for n in range(1, 1202)]
    store.record_batch(run_id, "hs", "account", changed=ids)
    marks = store.changed_parents("hs", "account")
    assert len(marks) == len(ids)
    store.clear_changed_parents("hs", "account", marks)
    assert store.changed_parents("hs", "account") == []
