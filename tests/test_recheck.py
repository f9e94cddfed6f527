"""Write only what is still true: a person's edit between pull and write survives (issue 16).

Both sandboxes, the production wiring (config → adapters → runner → store),
real clients over HTTP. The runner's progress callback is the hook: it edits
records in the CRM, as a person in the UI would, after the plan is made and
between write chunks. Each edited record is held back, reported, and
re-planned by the next run; segsync's own writes in between are not edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.commands.crm import Context, open_context
from connector.config import SyncSettings
from connector.crm.base import Current, RecordUpdate
from connector.store.records import RunCounts, WrittenRecord
from connector.sync.provision import output_specs
from connector.sync.recheck import moved
from connector.sync.runner import Runner, RunResult
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CHUNK = 50


class Crm:
    """One CRM of the sandboxes through the production wiring, with a person at the keyboard."""

    def __init__(self, crms: Sandboxes, ctx: Context, crm: str) -> None:
        self.crms, self.ctx, self.crm = crms, ctx, crm
        self.adapter = ctx.adapters[crm]
        self.now = NOW

    def provision(self) -> None:
        engine = self.ctx.engines["account"]
        report = self.adapter.provision(
            "account",
            output_specs(engine, self.crm, None),
            engine.input_fields(self.crm),
            dry_run=False,
        )
        assert not report.problems, report.problems

    def runner(self, hook: Callable[[str, int], None], **sync: Any) -> Runner:
        settings = SyncSettings(**{**self.ctx.settings.sync.model_dump(), **sync})
        return Runner(
            self.ctx.store, settings, clock=lambda: self.now, write_chunk=CHUNK, progress=hook
        )

    def sync(self, runner: Runner) -> RunResult:
        self.now += timedelta(minutes=1)
        (job,) = self.ctx.jobs(self.crm, "account")
        return runner.run(job)

    def ids(self) -> list[str]:
        if self.crm == "salesforce":
            return [r["Id"] for r in self.crms.salesforce.org.records("Account")]
        return [r.id for r in self.crms.hubspot.portal.snapshot("companies")]

    def field(self, key: str) -> str:
        engine = self.ctx.engines["account"]
        return engine.lock_field(self.crm) if key == "lock" else engine.output_fields(self.crm)[key]

    def value(self, record_id: str, name: str) -> Any:
        if self.crm == "salesforce":
            return self.crms.salesforce.org.get("Account", record_id).get(name)
        return self.crms.hubspot.portal.get("companies", record_id)["properties"].get(name)

    def edit(self, record_id: str, name: str, value: Any) -> None:
        """A person edits one field in the CRM's UI."""
        if self.crm == "salesforce":
            self.crms.salesforce.org.update("Account", record_id, {name: value})
        else:
            self.crms.hubspot.portal.update("companies", record_id, {name: str(value)})

    def lock(self) -> tuple[str, Any]:
        return self.field("lock"), True if self.crm == "salesforce" else "true"

    def headcount(self) -> str:
        return "NumberOfEmployees" if self.crm == "salesforce" else "numberofemployees"

    def unwritten(self) -> list[str]:
        """Accounts segsync has not written yet (no last-written values in the store)."""
        ids = self.ids()
        last = self.ctx.store.last_written(self.ctx.adapters[self.crm].connection, "account", ids)
        return [i for i in ids if i not in last]


@pytest.fixture
def crm(
    request: pytest.FixtureRequest,
    fresh_sandboxes: Sandboxes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Crm]:
    monkeypatch.chdir(ROOT)
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    with open_context(config, crm=request.param) as ctx:
        yield Crm(fresh_sandboxes, ctx, request.param)


both = pytest.mark.parametrize("crm", ["salesforce", "hubspot"], indirect=True)


def _other(crm: Crm, record_id: str) -> str:
    """A tier the mapping does not compute for the record: a person's choice."""
    if crm.crm == "salesforce":
        fields = dict(crm.crms.salesforce.org.get("Account", record_id))
    else:
        fields = crm.crms.hubspot.portal.get("companies", record_id)["properties"]
    computed = crm.ctx.engines["account"].evaluate(fields, crm.crm, crm.now).tier
    return "Tier 3" if computed != "Tier 3" else "Tier 2"


@both
def test_a_person_s_edit_between_pull_and_write_survives_and_is_reported(crm: Crm) -> None:
    crm.provision()
    accounts = crm.ids()
    tier, segment = crm.field("tier"), crm.field("segment")
    lock_field, locked = crm.lock()
    # Three people at work once the plan is made, one more after the first chunk.
    pinned, lockee, retyped = accounts[3], accounts[10], accounts[20]
    late: list[str] = []
    pinned_to = _other(crm, pinned)

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == len(accounts):
            crm.edit(pinned, tier, pinned_to)
            crm.edit(lockee, lock_field, locked)
            crm.edit(retyped, crm.headcount(), 4321)
        elif phase == "write" and not late:  # after the first chunk
            late.append(next(i for i in crm.unwritten() if i not in (pinned, lockee, retyped)))
            crm.edit(late[0], tier, _other(crm, late[0]))

    first = crm.sync(crm.runner(hook))
    assert first.summary.counts.changed == len(accounts)
    held = {pinned, lockee, retyped, *late}
    assert first.changed_since_plan == len(held) == 4
    assert {record_id for record_id, _ in first.sample_changed} == held
    assert dict(first.sample_changed)[pinned] == f"{tier} changed"
    assert dict(first.sample_changed)[lockee] == f"{lock_field} changed"
    assert dict(first.sample_changed)[retyped] == "edited"
    assert first.written == len(accounts) - len(held) and first.status == "succeeded"
    # The people's values stand; segsync wrote nothing on those records.
    assert crm.value(pinned, tier) == pinned_to
    assert crm.value(lockee, segment) in (None, "")
    assert crm.value(retyped, segment) in (None, "")
    (row,) = crm.ctx.store.runs(limit=1)
    assert row.counts.changed_since_plan == 4 and row.counts.written == first.written
    conn = crm.adapter.connection
    assert crm.ctx.store.last_written(conn, "account", list(held)) == {}

    # The next run pulls them again (their stamps moved) and plans them afresh:
    # the pinned tier is a person's value (kept), the lock holds, the edit is written.
    second = crm.sync(crm.runner(lambda phase, done: None))
    assert second.changed_since_plan == 0
    assert crm.value(pinned, tier) == pinned_to
    assert crm.value(lockee, segment) in (None, "")
    assert crm.value(retyped, segment) not in (None, "")
    assert second.summary.counts.locked >= 1 and second.summary.counts.overrides >= 1


@both
def test_without_the_recheck_the_edit_is_lost(crm: Crm) -> None:
    """The same edit with ``recheck_before_write = false``: overwritten, as before."""
    crm.provision()
    accounts = crm.ids()
    tier = crm.field("tier")
    pinned = accounts[3]
    pinned_to = _other(crm, pinned)

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == len(accounts):
            crm.edit(pinned, tier, pinned_to)

    result = crm.sync(crm.runner(hook, recheck_before_write=False))
    assert result.changed_since_plan == 0 and result.written == len(accounts)
    assert crm.value(pinned, tier) != pinned_to


@both
def test_segsync_s_own_write_in_between_is_not_an_edit(crm: Crm) -> None:
    """A write by segsync's integration user between plan and write is not held back."""
    crm.provision()
    accounts = crm.ids()
    reason = crm.field("reason")
    ours = accounts[7]
    conn = crm.adapter.connection

    def hook(phase: str, done: int) -> None:
        if phase == "plan" and done == len(accounts):
            # segsync itself (another job of the same integration user) writes it.
            (outcome,) = crm.adapter.write("account", [RecordUpdate(ours, {reason: "ours"})])
            assert outcome.ok
            if outcome.stamp is not None:  # HubSpot returns the stamp: kept as our echo
                run = crm.ctx.store.start_run(conn, crm.crm, "account", "x", full=False)
                crm.ctx.store.record_batch(
                    run, conn, "account", [WrittenRecord(ours, {}, outcome.stamp)]
                )
                crm.ctx.store.finish_run(run, "succeeded", RunCounts(written=1), 1, 1, None)

    result = crm.sync(crm.runner(hook))
    assert result.changed_since_plan == 0 and result.written == len(accounts)
    assert crm.value(ours, reason) != "ours"


def test_moved_names_what_changed() -> None:
    t0, t1 = NOW, NOW + timedelta(seconds=1)
    seen = (t0, {"Tier__c": "Tier 1", "Lock__c": False})
    assert moved(seen, Current("1", t0, {"Tier__c": "Tier 1", "Lock__c": False}), None) is None
    assert moved(seen, None, None) == "deleted"
    assert (
        moved(seen, Current("1", t1, {"Tier__c": "Tier 1", "Lock__c": True}), None)
        == "Lock__c changed"
    )
    assert moved(seen, Current("1", t1, {"Tier__c": "Tier 1", "Lock__c": False}), None) == "edited"
    # Our own write: by the integration user, or at the stamp our write returned.
    assert moved(seen, Current("1", t1, {"Tier__c": "T9"}, own=True), None) is None
    assert moved(seen, Current("1", t1, {"Tier__c": "T9"}), t1) is None
