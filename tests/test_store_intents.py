"""Write intents in the store: recorded before a write, settled with its outcome (issue 16)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.store.records import LandedWrite, Transition, WriteIntent, WrittenRecord
from connector.store.store import Store

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path}/segsync.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    with Store.open(url, clock=lambda: T0) as opened:
        yield opened


def _intent(record_id: str, run: int, tier: str = "Tier 1") -> WriteIntent:
    return WriteIntent(record_id, run, (("tier", None, tier),), "big", "v1")


def test_an_outcome_settles_its_intents_in_the_same_transaction(store: Store) -> None:
    run = store.start_run("hs", "hubspot", "account", "v1", full=True)
    store.record_intents("hs", "account", [_intent("1", run), _intent("2", run)])
    assert store.intent_ids("hs", "account") == ["1", "2"]
    assert store.intent_ids("hs", "contact") == []
    assert store.intents("hs", "account", ["2", "9"]) == {"2": _intent("2", run)}
    store.record_batch(
        run, "hs", "account", [WrittenRecord("1", {"tier": "Tier 1"})], settled=["1"]
    )
    assert store.intent_ids("hs", "account") == ["2"]


def test_a_newer_intent_replaces_an_older_and_old_ones_are_cleared(store: Store) -> None:
    crashed = store.start_run("hs", "hubspot", "account", "v1", full=True)
    store.record_intents("hs", "account", [_intent("1", crashed), _intent("2", crashed)])
    resumed = store.start_run("hs", "hubspot", "account", "v1", full=True)
    store.record_intents("hs", "account", [_intent("2", resumed, "Tier 2")])
    assert store.intents("hs", "account", ["2"])["2"].run_id == resumed
    # Only the crashed run's intents go: the resumed run's own is still in flight.
    store.clear_intents("hs", "account", ["1", "2"], before_run=resumed)
    assert store.intent_ids("hs", "account") == ["2"]


def test_an_adopted_transition_is_recorded_under_the_run_that_wrote_it(store: Store) -> None:
    crashed = store.start_run("hs", "hubspot", "account", "v1", full=True)
    resumed = store.start_run("hs", "hubspot", "account", "v1", full=True)
    store.record_batch(
        resumed,
        "hs",
        "account",
        [WrittenRecord("1", {"tier": "Tier 1"}), WrittenRecord("2", {"tier": "Tier 2"})],
        transitions=[
            Transition("1", "tier", None, "Tier 1", "big", "v1", crashed),
            Transition("2", "tier", None, "Tier 2", "small", "v1"),
        ],
    )
    rows = {t.record_id: t.run_id for t in store.history(None, connection="hs")}
    assert rows == {"1": crashed, "2": resumed}


def test_an_intent_keeps_every_value_its_write_sends(store: Store) -> None:
    run = store.start_run("hs", "hubspot", "account", "v1", full=True)
    sent = {"tier": "Tier 1", "fit": 80, "at": T0}
    store.record_intents("hs", "account", [WriteIntent("1", run, (), "big", "v1", sent)])
    assert store.intents("hs", "account", ["1"])["1"].written == sent


def test_a_landed_write_is_adopted_once_under_the_run_that_wrote_it(store: Store) -> None:
    dead = store.start_run("hs", "hubspot", "account", "v1", full=True)
    store.record_intents("hs", "account", [_intent("1", dead), _intent("2", dead)])
    first = store.start_run("hs", "hubspot", "account", "v1", full=True)
    second = store.start_run("hs", "hubspot", "account", "v1", full=True)
    read = store.intents("hs", "account", ["1", "2"])  # both runs read the same intents
    landed = [LandedWrite(read["1"], {"tier": "Tier 1", "fit": 80})]
    assert store.adopt_landed(first, "hs", "account", landed, changed=["1"]) == ["1"]
    # The other run (a replica racing, the same run's retry) finds it settled: nothing twice.
    assert store.adopt_landed(second, "hs", "account", landed, changed=["1"]) == []
    rows = store.history(None, connection="hs")
    assert [(t.record_id, t.field, t.to_value, t.run_id) for t in rows] == [
        ("1", "tier", "Tier 1", dead)
    ]
    assert store.last_written("hs", "account", ["1"]) == {"1": {"tier": "Tier 1", "fit": 80}}
    assert store.intent_ids("hs", "account") == ["2"]
    assert store.changed_parents("hs", "account") == [("1", first)]


def test_an_intent_replaced_since_it_was_read_is_not_adopted(store: Store) -> None:
    dead = store.start_run("hs", "hubspot", "account", "v1", full=True)
    store.record_intents("hs", "account", [_intent("1", dead)])
    read = store.intents("hs", "account", ["1"])["1"]
    # A live run's write of the record is in flight: its intent replaced the dead one's.
    live = store.start_run("hs", "hubspot", "account", "v1", full=True)
    store.record_intents("hs", "account", [_intent("1", live, "Tier 2")])
    adopter = store.start_run("hs", "hubspot", "account", "v1", full=True)
    landed = [LandedWrite(read, {"tier": "Tier 1"})]
    assert store.adopt_landed(adopter, "hs", "account", landed) == []
    assert store.history(None, connection="hs") == []
    assert store.last_written("hs", "account", ["1"]) == {}
    # The live run's intent is still there, for its own batch to record its rows.
    assert store.intents("hs", "account", ["1"])["1"].run_id == live
