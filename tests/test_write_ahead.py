"""Writes overlap reads once the mass-change guard cannot refuse the run (sync/pipeline.py).

The arithmetic of "certain" on its own, then whole runs against the HubSpot
sandbox through the real client: an incremental run whose guard outcome is
certain from its first page writes while its search pages still come in,
and one that would trip the guard writes nothing at all.
"""

from __future__ import annotations

import pickle
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from connector import templates
from connector.config import HubSpotConnection, SyncSettings
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.retry import RetryPolicy
from connector.engine import Engine, compile_mapping
from connector.mapping import load_mapping
from connector.store.store import Store
from connector.sync.guard import MassChangeError
from connector.sync.pipeline import _Tail, certain
from connector.sync.planner import PlanCounts, PlanSummary
from connector.sync.provision import output_specs
from connector.sync.runner import Job, Runner
from segsync_sandbox import data
from segsync_sandbox.common import Request
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
COMPANIES = 3_000


def _summary(read: int, rewritten: int) -> PlanSummary:
    return PlanSummary(counts=PlanCounts(read=read, changed=rewritten, rewritten=rewritten))


def test_certain_only_when_every_record_left_rewritten_stays_within_the_share() -> None:
    # 1,000 known, 100 read, 10 rewritten: 10 + 900 left > 500.
    assert not certain(_summary(100, 10), 100, 900, 1_000, 0.5)
    # 700 read, 70 rewritten, 300 left: at most 370 of 1,000.
    assert certain(_summary(700, 70), 700, 300, 1_000, 0.5)
    # Records read but held back from planning (a person's edit being asked
    # about) count as rewritten in the worst case.
    assert not certain(_summary(600, 70), 700, 300, 1_000, 0.4)
    # The population is what is known now, never what the rest might add.
    assert not certain(_summary(700, 70), 700, 300, None, 0.5)
    assert not certain(_summary(0, 0), 0, 0, 1_000, 0.5)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return compile_mapping(load_mapping(templates.ACCOUNTS))


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    portal = Portal(requests_per_10s=100_000, search_per_second=100_000)
    portal.load_companies(data.hubspot_company_props(c) for c in data.companies(3, COMPANIES))
    with start_hubspot(portal=portal) as running:
        yield running


def _job(sandbox: HubSpotSandbox, engine: Engine, search_per_second: int = 100_000) -> Job:
    connection = HubSpotConnection(
        base_url=sandbox.base_url,
        access_token=SecretStr(sandbox.access_token),
        requests_per_10s=100_000,
        search_per_second=search_per_second,
    )
    # Windows of 500 records and more are read in parts, at once, and counted.
    adapter = HubSpotAdapter(
        "hs", connection, retry=RetryPolicy(sleep=lambda s: None), partition_min=500
    )
    report = adapter.provision(
        "account", output_specs(engine, "hubspot"), engine.input_fields("hubspot"), dry_run=False
    )
    assert not report.problems
    return Job("hs", adapter, engine)


def _edit(sandbox: HubSpotSandbox, engine: Engine, count: int) -> list[str]:
    """Change the intent score of ``count`` companies so that their outputs must change."""
    edited: list[str] = []
    for record in sandbox.portal.snapshot("companies"):
        if len(edited) == count:
            break
        before = engine.evaluate(record.props, "hubspot", NOW)
        old = int(float(record.props.get("intent_score") or 0))
        for value in ((old + 50) % 100, 97, 3, 55):
            if (
                engine.evaluate({**record.props, "intent_score": str(value)}, "hubspot", NOW)
                != before
            ):
                sandbox.portal.update("companies", record.id, {"intent_score": str(value)})
                edited.append(record.id)
                break
    assert len(edited) == count
    return edited


def test_the_writer_reads_each_spooled_entry_whole_as_pages_are_published() -> None:
    # Publications may end anywhere (here: mid-entry); the writer's view blocks
    # there, reads on in blocks once more is published, and ends at the last.
    entries = [("write", str(i), {"tier": "x" * (i % 50)}) for i in range(3_000)]
    got: list[object] = []
    with tempfile.TemporaryFile() as spool:
        tail = _Tail(spool)

        def writer() -> None:
            while True:
                try:
                    got.append(pickle.load(tail))
                except EOFError:
                    return

        thread = threading.Thread(target=writer)
        thread.start()
        for start in range(0, len(entries), 700):
            for entry in entries[start : start + 700]:
                pickle.dump(entry, spool, protocol=pickle.HIGHEST_PROTOCOL)
            spool.flush()
            tail.publish(spool.tell() - 3)  # the last entry's end not yet published
        spool.flush()
        tail.publish(spool.tell(), last=True)
        thread.join(timeout=30)
    assert got == entries


def test_a_read_past_the_published_end_waits_for_the_rest() -> None:
    # pickle takes a short read as truncated data: read(n) answers n bytes or
    # waits (the race above lost the last entry in CI when the writer caught up
    # with a publication that ended mid-entry).
    got: list[bytes] = []
    with tempfile.TemporaryFile() as spool:
        spool.write(b"0123456789")
        spool.flush()
        tail = _Tail(spool)
        tail.publish(7)
        reader = threading.Thread(target=lambda: got.append(tail.read(10)))
        reader.start()
        reader.join(timeout=0.2)
        assert reader.is_alive() and got == []
        tail.publish(10)
        reader.join(timeout=30)
        assert got == [b"0123456789"]
        tail.publish(10, last=True)
        assert tail.read(5) == b""


def test_an_incremental_run_writes_while_its_pages_still_come_in(
    sandbox: HubSpotSandbox, engine: Engine, tmp_path: Path
) -> None:
    job = _job(sandbox, engine)
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    runner = Runner(store, SyncSettings(lookback_seconds=0), clock=lambda: NOW, write_chunk=100)
    assert runner.run(job).written == COMPANIES
    runner.run(job)  # our own writes, read back
    edited = _edit(sandbox, engine, 800)  # at most 980 of 3,000 even counting a margin
    sandbox.app.log.clear()
    # Searches at 2 a second (under the real limit of 5): pages keep coming for
    # seconds while writes go out, even on a loaded machine (at 5 a second the
    # eleven searches took 2 s, and under a load average of 13 the first write
    # was ready only after them).
    sandbox.portal.limits.search_per_second = 2
    result = runner.run(_job(sandbox, engine, search_per_second=2))
    assert result.status == "succeeded"
    assert result.summary.counts.changed == result.written == len(edited)
    log = sandbox.app.log.entries()
    searches = [e.seq for e in log if e.kind == "search"]
    updates = [e.seq for e in log if e.kind == "batch.update"]
    assert len(searches) >= 3 and updates
    assert min(updates) < max(searches), "the first write waited for the last read"


def test_a_run_the_guard_refuses_writes_nothing_ahead(
    sandbox: HubSpotSandbox, engine: Engine, tmp_path: Path
) -> None:
    job = _job(sandbox, engine)
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    settings = SyncSettings(lookback_seconds=0, max_change_share=0.2)
    runner = Runner(store, settings, clock=lambda: NOW, write_chunk=100)
    runner.run(job)
    runner.run(job)
    _edit(sandbox, engine, 900)  # 30 % of them would be rewritten, more than 20 %
    sandbox.app.log.clear()
    with pytest.raises(MassChangeError):
        runner.run(job)
    assert not [e for e in sandbox.app.log.entries() if e.kind == "batch.update"]


def test_the_re_read_counts_its_own_calls_while_pages_come_in(
    sandbox: HubSpotSandbox, engine: Engine, tmp_path: Path
) -> None:
    """``recheck_calls`` is the re-reads' batch reads, not the searches read meanwhile.

    The sandbox holds the first re-read's answer until a search of the pull
    arrives: that search was sent (and counted by the connection) while the
    re-read was in progress, as happens whenever writes overlap reads. Once a
    write chunk's worth of records is read, the pull's next searches wait for
    that re-read to begin, so some always come in while it is held (on a
    loaded machine the pull could otherwise end before the first re-read).
    """
    job = _job(sandbox, engine)
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    runner = Runner(store, SyncSettings(lookback_seconds=0), clock=lambda: NOW, write_chunk=100)
    runner.run(job)
    runner.run(job)
    edited = _edit(sandbox, engine, 800)
    sandbox.app.log.clear()
    sandbox.portal.limits.search_per_second = 2
    searched = threading.Event()
    reread_began = threading.Event()
    held: list[str] = []

    def read_so_far() -> int:
        return sum(len(e.records) for e in sandbox.app.log.entries() if e.kind == "search")

    def meanwhile(request: Request) -> None:
        if request.method != "POST":
            return
        if request.path.endswith("/search"):
            if not reread_began.is_set() and read_so_far() >= 400:
                reread_began.wait(timeout=60)
            if reread_began.is_set():
                searched.set()
        elif request.path.endswith("/batch/read") and not held:
            held.append(request.path)
            reread_began.set()
            searched.wait(timeout=60)

    # Chunks of 400: each re-read is four batch reads at once, on the adapter's workers.
    runner = Runner(store, SyncSettings(lookback_seconds=0), clock=lambda: NOW, write_chunk=400)
    sandbox.app.before_serving.append(meanwhile)
    try:
        result = runner.run(_job(sandbox, engine, search_per_second=2))
    finally:
        sandbox.app.before_serving.remove(meanwhile)
    assert result.status == "succeeded" and result.written == len(edited)
    assert held and searched.is_set(), "no search came in while the first re-read was held"
    rereads = [e for e in sandbox.app.log.entries() if e.kind == "batch.read"]
    assert len(rereads) == len(edited) // 100
    assert result.recheck_calls == len(rereads)
