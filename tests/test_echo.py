"""No echo: an incremental run does not re-read or re-plan what segsync itself wrote.

Both sandboxes, the production wiring (config → adapters → runner → store),
real clients over HTTP. Two incremental runs with no edits in between: the
second reads nothing; a person's edit after our write is still picked up.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.commands.crm import Context, open_context
from connector.crm.base import ObjectName
from connector.sync.provision import output_specs
from connector.sync.runner import Runner, RunResult
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Crm:
    """One CRM of the shared sandboxes through the production wiring, with a settable clock."""

    def __init__(self, crms: Sandboxes, ctx: Context, crm: str) -> None:
        self.crms, self.ctx, self.crm = crms, ctx, crm
        self.now = NOW
        self.runner = Runner(ctx.store, ctx.settings.sync, clock=lambda: self.now)
        self.adapter = ctx.adapters[crm]

    @property
    def app(self) -> Any:
        return self.crms.salesforce.app if self.crm == "salesforce" else self.crms.hubspot.app

    def provision(self) -> None:
        objects: tuple[ObjectName, ...] = ("account", "contact")
        engines = self.ctx.engines
        for obj in objects:
            parent = engines["account"] if obj == "contact" else None
            report = self.adapter.provision(
                obj,
                output_specs(engines[obj], self.crm, parent),
                engines[obj].input_fields(self.crm),
                dry_run=False,
            )
            assert not report.problems, report.problems

    def sync(self, obj: str = "account", **options: Any) -> RunResult:
        self.now += timedelta(minutes=1)
        (job,) = self.ctx.jobs(self.crm, obj)
        return self.runner.run(job, **options)

    def ids(self, obj: str = "account") -> list[str]:
        if self.crm == "salesforce":
            name = "Account" if obj == "account" else "Contact"
            return [r["Id"] for r in self.crms.salesforce.org.records(name)]
        kind = "companies" if obj == "account" else "contacts"
        return [r.id for r in self.crms.hubspot.portal.snapshot(kind)]

    def edit_by_person(self, record_id: str) -> None:
        """A person edits an account's headcount in the CRM's UI."""
        if self.crm == "salesforce":
            self.crms.salesforce.org.update("Account", record_id, {"NumberOfEmployees": 4321})
        else:
            self.crms.hubspot.portal.update("companies", record_id, {"numberofemployees": "4321"})

    def requests(self) -> list[Any]:
        return list(self.app.log.entries())


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


@both
def test_a_second_quiet_run_reads_nothing(crm: Crm) -> None:
    crm.provision()
    accounts = len(crm.ids())
    first = crm.sync()
    assert first.full and first.written == accounts
    # The first incremental run after the writes: every record changed since
    # the watermark is our own write, so nothing is planned.
    second = crm.sync()
    assert not second.full and second.summary.counts.read == 0 and second.written == 0
    # Salesforce leaves them out of the query; HubSpot skips them by stamp.
    assert second.echoes == (0 if crm.crm == "salesforce" else accounts)
    third = crm.sync()
    assert third.summary.counts.read == 0 and third.written == 0
    assert second.api_calls <= 2 and third.api_calls <= 2

    # A person's edit after our write is not an echo: it is read and planned.
    edited = crm.ids()[5]
    crm.edit_by_person(edited)
    fourth = crm.sync()
    assert fourth.summary.counts.read == 1 and fourth.echoes <= accounts


@both
def test_contact_runs_skip_echoes_before_their_parent_lookups(crm: Crm) -> None:
    crm.provision()
    crm.sync()
    contacts = len(crm.ids("contact"))
    first = crm.sync("contact")
    assert first.written == contacts
    crm.app.log.clear()
    second = crm.sync("contact")
    assert second.summary.counts.read == 0 and second.written == 0
    kinds = [e.kind for e in crm.requests()]
    # No association or company reads for records nobody touched since our write.
    assert not [k for k in kinds if k.startswith("assoc") or k == "batch.read"], kinds
    if crm.crm == "hubspot":
        assert second.echoes == contacts and second.api_calls == -(-contacts // 200)
    else:
        assert second.api_calls <= 2
