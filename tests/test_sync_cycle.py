"""Sync cycles in both CRMs, through the production path (config → adapters → runner → store).

Every test runs against the shared sandboxes (real simple-salesforce over
HTTPS, real hubspot-api-client over HTTP), restored to a fresh state first.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector import templates
from connector.commands.crm import Context, open_context
from connector.crm.base import ObjectName
from connector.engine import Engine
from connector.store.store import Store
from connector.sync.provision import output_specs
from connector.sync.runner import Runner, RunResult
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
CRMS = ("salesforce", "hubspot")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: int = 10) -> None:
        self.now += timedelta(minutes=minutes)


class World:
    """One CRM of the shared sandboxes, seen through the production wiring."""

    def __init__(self, crms: Sandboxes, ctx: Context, crm: str) -> None:
        self.crms, self.ctx, self.crm = crms, ctx, crm
        self.clock = Clock()
        self.runner = Runner(ctx.store, ctx.settings.sync, clock=self.clock)
        self.adapter = ctx.adapters[crm]

    @property
    def app(self) -> Any:
        return self.crms.salesforce.app if self.crm == "salesforce" else self.crms.hubspot.app

    @property
    def store(self) -> Store:
        return self.ctx.store

    def engine(self, obj: str) -> Engine:
        return self.ctx.engines[obj]

    def provision(self) -> None:
        objects: tuple[ObjectName, ...] = ("account", "contact")
        for obj in objects:
            parent = self.engine("account") if obj == "contact" else None
            report = self.adapter.provision(
                obj,
                output_specs(self.engine(obj), self.crm, parent),
                self.engine(obj).input_fields(self.crm),
                dry_run=False,
            )
            assert not report.problems, report.problems

    def sync(self, obj: str = "account", **options: Any) -> RunResult:
        (job,) = [j for j in self.ctx.jobs(self.crm, obj)]
        return self.runner.run(job, **options)

    def records(self, obj: str = "account") -> dict[str, dict[str, Any]]:
        """Every record's raw fields, read from the sandbox's own store."""
        if self.crm == "salesforce":
            name = "Account" if obj == "account" else "Contact"
            return {r["Id"]: r for r in self.crms.salesforce.org.records(name)}
        kind = "companies" if obj == "account" else "contacts"
        return {r.id: dict(r.props) for r in self.crms.hubspot.portal.snapshot(kind)}

    def edit(self, record_id: str, **inputs: Any) -> None:
        """A person edits an account's inputs in the CRM."""
        if self.crm == "salesforce":
            self.crms.salesforce.org.update("Account", record_id, inputs)
        else:
            self.crms.hubspot.portal.update(
                "companies", record_id, {k: "" if v is None else str(v) for k, v in inputs.items()}
            )

    def field(self, key: str, obj: str = "account") -> str:
        return self.engine(obj).output_fields(self.crm)[key]

    def expected(self, fields: dict[str, Any], obj: str = "account") -> Any:
        return self.engine(obj).evaluate(fields, self.crm, self.clock.now)

    def assert_state(self, obj: str = "account") -> int:
        """Every record holds what the engine computes, or has an open error. Returns errors."""
        open_errors = {e.record_id for e in self.store.open_errors(self.crm, obj)}
        segment, tier = self.field("segment", obj), self.field("tier", obj)
        for record_id, fields in self.records(obj).items():
            if record_id in open_errors:
                continue
            if obj == "account":
                want = self.expected(fields)
                assert (fields.get(segment), fields.get(tier)) == (want.segment, want.tier), (
                    record_id
                )
            else:
                assert fields.get(tier) in self.engine("account").tier_names, record_id
        return len(open_errors)


def _edit_inputs(crm: str) -> dict[str, Any]:
    if crm == "salesforce":
        return {"Industry": "Computer Software", "NumberOfEmployees": 5000, "Intent_Score__c": 95}
    return {"industry": "COMPUTER_SOFTWARE", "numberofemployees": 5000, "intent_score": 95}


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    fresh_sandboxes: Sandboxes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    monkeypatch.chdir(ROOT)
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    with config.open("a") as out:
        # Fast back-off: the tests inject failures and should not sleep for real.
        out.write(
            "retry_attempts = 8\nretry_initial_wait_seconds = 0.01\nretry_max_wait_seconds = 0.05\n"
        )
    with open_context(config, crm=request.param) as ctx:
        yield World(fresh_sandboxes, ctx, request.param)


both = pytest.mark.parametrize("world", CRMS, indirect=True)


@both
def test_full_then_incremental(world: World) -> None:
    world.provision()
    first = world.sync()
    assert first.full and first.status == "succeeded"
    assert first.written == len(world.records()) == first.summary.counts.read
    assert world.assert_state() == 0
    accounts = world.records()
    _, some = next(iter(accounts.items()))
    assert some[world.field("reason")] == world.expected(some).reason
    assert some[world.field("version")] == "2026-11-b"

    world.clock.tick()
    second = world.sync()
    assert not second.full and second.written == 0 and second.summary.counts.changed == 0

    contacts = world.sync("contact")
    assert contacts.status == "succeeded" and contacts.written == len(world.records("contact"))
    parent_key = "AccountId" if world.crm == "salesforce" else None
    if parent_key:  # Salesforce: check inheritance record by record
        for fields in world.records("contact").values():
            account = accounts.get(fields.get(parent_key) or "")
            if account is not None:
                assert fields[world.field("tier", "contact")] == account[world.field("tier")]
    world.assert_state("contact")

    target = next(i for i, f in accounts.items() if f[world.field("segment")] != "Enterprise SaaS")
    world.edit(target, **_edit_inputs(world.crm))
    world.clock.tick()
    third = world.sync()
    assert third.summary.counts.changed == 1 and third.written == 1
    assert world.records()[target][world.field("segment")] == "Enterprise SaaS"
    moves = {t.field: t for t in world.store.history(target) if t.run_id == third.run_id}
    assert moves[world.field("segment")].to_value == "Enterprise SaaS"
    assert "Enterprise SaaS" in moves[world.field("segment")].reason


@both
def test_only_declared_fields_are_ever_written(world: World) -> None:
    world.provision()
    world.app.log.clear()
    world.sync()
    world.sync("contact")
    declared = {
        f
        for obj in ("account", "contact")
        for f in world.engine(obj).output_fields(world.crm).values()
    }
    written = [e for e in world.app.log.entries() if e.fields]
    assert written
    for entry in written:
        assert set(entry.fields) <= declared, entry


FAULTS: dict[str, dict[str, Any]] = {
    "5xx": {"error_rate": 0.2, "seed": 3},
    "locks": {"lock_failures": 1},
    "timeouts": {"timeout_rate": 0.05, "timeout_seconds": 1.5, "seed": 4},
}


@both
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_transient_faults_lose_nothing(
    world: World, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.provision()
    settings = dict(FAULTS[fault])
    if fault == "locks":
        settings["lock_ids"] = set(list(world.records())[::20])  # 5 % of rows
    if fault == "timeouts":
        for adapter in [world.adapter]:
            adapter._timeout = 0.5  # type: ignore[attr-defined]
    world.app.faults.update(**settings)
    result = world.sync()
    assert result.status == "succeeded", result.message
    world.app.faults.update(error_rate=0, timeout_rate=0, lock_ids=set())
    assert world.assert_state() == 0


@both
def test_permanent_record_failures_are_recorded_and_retried(world: World) -> None:
    world.provision()
    ids = list(world.records())
    locked, invalid = ids[3], ids[7]
    world.app.faults.update(
        lock_ids={locked}, lock_failures=0, validation_failures={invalid: "bad data"}
    )
    first = world.sync()
    assert first.status == "partial" and first.failed == 2
    errors = {e.record_id: e for e in world.store.open_errors(world.crm, "account")}
    assert set(errors) == {locked, invalid}
    assert world.assert_state() == 2
    # The batch-mates landed.
    assert first.written == len(ids) - 2

    world.app.faults.update(lock_ids=set(), validation_failures={})
    world.clock.tick()
    second = world.sync()
    assert second.status == "succeeded" and second.written == 2
    assert world.store.open_errors(world.crm, "account") == []
    assert world.assert_state() == 0


@pytest.mark.parametrize("world", ["salesforce"], indirect=True)
def test_salesforce_session_expiry_mid_run(world: World) -> None:
    world.provision()
    world.app.faults.update(session_expiry_after=3)
    result = world.sync()
    assert result.status == "succeeded"
    assert world.assert_state() == 0
    assert any(e.kind == "token" for e in world.app.log.entries())


@both
def test_rate_limit_storm(world: World) -> None:
    world.provision()
    world.app.faults.update(rate_limit_next=4)
    if world.crm == "hubspot":
        # 429s are retried after back-off.
        assert world.sync().status == "succeeded"
    else:
        # Salesforce's REQUEST_LIMIT_EXCEEDED is the daily allocation: stop, lose nothing.
        with pytest.raises(Exception, match="API"):
            world.sync()
        world.app.faults.update(rate_limit_next=0)
        assert world.sync().status == "succeeded"
    assert world.assert_state() == 0


@both
def test_mass_change_guard_stops_before_writing(world: World) -> None:
    world.provision()
    world.sync()
    before = world.records()
    # A broken import blanks headcount and industry: most accounts would lose their segment.
    blanks = (
        {"Industry": None, "NumberOfEmployees": None}
        if world.crm == "salesforce"
        else {"industry": None, "numberofemployees": None}
    )
    for record_id in list(before)[:150]:
        world.edit(record_id, **blanks)
    world.clock.tick()
    with pytest.raises(Exception, match="--force"):
        world.sync()
    assert world.records() == before | {i: world.records()[i] for i in list(before)[:150]}
    segment = world.field("segment")
    assert all(world.records()[i][segment] == before[i][segment] for i in before)
    forced = world.sync(force=True)
    assert forced.written >= 100


@both
def test_mapping_change_extends_picklists_and_deletes_nothing(world: World, tmp_path: Path) -> None:
    world.provision()
    world.sync()
    text = (templates.ACCOUNTS).read_text()
    marker = '[[segments]]\nname = "Financial Services"'
    assert marker in text
    new_segment = (
        '[[segments]]\nname = "Healthcare"\nwhen = { attr = "industry", eq = "Healthcare" }\n\n'
    )
    changed = tmp_path / "accounts.toml"
    changed.write_text(
        text.replace(marker, new_segment + marker).replace(
            'version = "2026-11-b"', 'version = "2026-11-c"'
        )
    )
    from connector.engine import compile_mapping
    from connector.mapping import load_mapping

    engine = compile_mapping(load_mapping(changed))
    report = world.adapter.provision(
        "account", output_specs(engine, world.crm), engine.input_fields(world.crm), False
    )
    added = [a for a in report.actions if a.action == "add_options"]
    assert [(a.field, a.detail) for a in added] == [(world.field("segment"), "Healthcare")]
    options = world.adapter.describe("account", [world.field("segment")])[
        world.field("segment")
    ].options
    assert set(engine.segment_names) <= set(options)
    # The old values are still allowed: nothing was deleted.
    assert set(world.engine("account").segment_names) <= set(options)


@both
def test_no_secret_in_logs_or_errors(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = (
        [world.crms.salesforce.client_secret, world.crms.salesforce.access_token]
        if world.crm == "salesforce"
        else [world.crms.hubspot.access_token]
    )
    world.provision()
    world.app.faults.update(error_rate=0.3, seed=9)
    world.sync()
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize("world", ["hubspot"], indirect=True)
def test_hysteresis_holds_a_tier_move_until_it_persists(world: World) -> None:
    from connector.config import SyncSettings

    world.provision()
    world.sync()
    patient = Runner(world.store, SyncSettings(hysteresis_runs=2), clock=world.clock)
    (job,) = world.ctx.jobs(world.crm, "account")
    tier = world.field("tier")
    target = next(i for i, f in world.records().items() if f[tier] == "Tier 3")
    world.edit(target, **_edit_inputs(world.crm))
    assert world.expected(world.records()[target]).tier == "Tier 1"

    world.clock.tick()
    first = patient.run(job)
    assert first.summary.counts.held == 1
    assert world.records()[target][tier] == "Tier 3"  # held: one run is not enough

    world.clock.tick()
    second = patient.run(job)  # the record is not edited again: its pending state brings it back
    assert second.summary.counts.held == 0
    assert world.records()[target][tier] == "Tier 1"


@both
def test_every_classification_is_provisioned_written_and_guarded(
    world: World, tmp_path: Path
) -> None:
    """The value × engagement tier gets its own picklist and reason field, written each sync."""
    world.provision()
    engine = world.engine("account")
    value, reason = world.field("classification.value"), world.field("classification_reason.value")
    described = world.adapter.describe("account", [value, reason])
    assert set(described[value].options) == set(engine.classification_names["value"])
    first = world.sync()
    assert first.status == "succeeded"
    held: Counter[str] = Counter()
    for record_id, fields in world.records().items():
        want = world.expected(fields)
        assert fields[value] == want.classifications["value"], record_id
        assert fields[reason] == want.classification_reasons["value"], record_id
        held[fields[value]] += 1
    assert len(held) >= 2, held  # the sandbox's accounts land in several value tiers
    # A definition change that moves only the classification is still a mass change.
    text = templates.ACCOUNTS.read_text(encoding="utf-8")
    everyone = text.replace('"Strategic"', '"Maintain"').replace('"Develop"', '"Maintain"')
    everyone = everyone.replace('"Re-engage"', '"Maintain"')
    changed = tmp_path / "accounts.toml"
    changed.write_text(everyone.replace('version = "2026-11-b"', 'version = "2026-11-z"'))
    from connector.engine import compile_mapping
    from connector.mapping import load_mapping

    (job,) = world.ctx.jobs(world.crm, "account")
    job = replace(job, engine=compile_mapping(load_mapping(changed)))
    before = world.records()
    moving = sum(1 for f in before.values() if f[value] != "Maintain")
    world.clock.tick()
    # About a quarter of the sandbox accounts move, all of them only in the classification:
    # a guard at 10 % must stop the run before any write.
    assert moving / len(before) > 0.1
    strict = world.ctx.settings.sync.model_copy(update={"max_change_share": 0.1})
    guarded = Runner(world.store, strict, clock=world.clock)
    with pytest.raises(Exception, match="--force"):
        guarded.run(job)
    assert world.records() == before
    forced = world.runner.run(job, force=True)
    assert forced.status == "succeeded"
    assert {f[value] for f in world.records().values()} == {"Maintain"}
    # the tier did not move
    tier = world.field("tier")
    assert all(world.records()[i][tier] == before[i][tier] for i in before)
