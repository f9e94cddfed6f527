"""The offline commands and a real sync assign the same values to the same records.

A hypothesis property over both sandboxes: generated account and contact
inputs that sit on the documented rules' edges (text in any case, number
formats that read and that are blank, dates around the `within_days` /
`older_than_days` boundaries in a non-UTC mapping time zone, timestamps,
lock values that are true, false, blank and unreadable, contact exports that
name their account by the 15- or 18-character id) are written into the CRM;
then a full sync runs through the production path (real clients over HTTP,
runner, store) at a generated instant, the CRM's records are exported, and
`segsync preview --out --now` over that export must show, for every record,
exactly what the sync left in the CRM (a locked record: what it held before).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.cli import cli
from connector.commands.crm import Context, open_context
from connector.sync.provision import output_specs
from connector.sync.runner import Runner
from segsync_sandbox.launcher import Sandboxes
from segsync_sandbox.salesforce.org import CustomFieldSpec

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ACCOUNTS_PER_EXAMPLE = 6

ACCOUNTS = """
object = "account"
version = "sem-agree"
lock = "pin"
timezone = "America/New_York"

[attributes.label]
type = "string"
salesforce = "BillingCity"
hubspot = "city"

[attributes.count]
type = "number"
salesforce = "Sem_Count__c"
hubspot = "sem_count"

[attributes.seen]
type = "date"
salesforce = "Sem_Seen__c"
hubspot = "sem_seen"

[attributes.pin]
type = "boolean"
salesforce = "Sem_Pin__c"
hubspot = "sem_pin"
blank = { value = false }

[[segments]]
name = "Berlin"
when = { attr = "label", eq = "Berlin" }

[[segments]]
name = "Nordic"
when = { attr = "label", in = ["Oslo", "Stockholm"] }

[[segments]]
name = "Elsewhere"
default = true

# One bit per rule: the score shows every test's outcome.
[scores.bits]
rules = [
  { points = 1, label = "count ≥ 1000", when = { attr = "count", gte = 1000 } },
  { points = 2, label = "count blank", when = { attr = "count", missing = true } },
  { points = 4, label = "seen ≤ 7 days", when = { attr = "seen", within_days = 7 } },
  { points = 8, label = "seen > 30 days", when = { attr = "seen", older_than_days = 30 } },
  { points = 16, label = "seen blank", when = { attr = "seen", missing = true } },
  { points = 32, label = "not berlin", when = { attr = "label", ne = "berlin" } },
  { points = 64, label = "seen today", when = { attr = "seen", within_days = 0 } },
]

[[tiers]]
name = "Tier 1"
when = { score = "bits", gte = 64 }

[[tiers]]
name = "Tier 2"
when = { score = "bits", gte = 4 }

[[tiers]]
name = "Tier 3"
default = true

[outputs.salesforce]
segment = "Sem_Segment__c"
tier = "Sem_Tier__c"
scores = { bits = "Sem_Bits__c" }
reason = "Sem_Reason__c"

[outputs.hubspot]
segment = "sem_segment"
tier = "sem_tier"
scores = { bits = "sem_bits" }
reason = "sem_reason"
"""

CONTACTS = """
object = "contact"
version = "sem-agree"
inherit = ["segment", "tier"]

[attributes.dept]
type = "string"
salesforce = "Department"
hubspot = "department"
synonyms = { "Accounting" = "Finance" }

[[segments]]
name = "Elsewhere"
default = true

[[tiers]]
name = "Tier 3"
default = true

[[personas]]
name = "Finance"
when = { attr = "dept", in = ["Finance"] }

[[personas]]
name = "Other"
default = true

[outputs.salesforce]
segment = "Sem_Segment__c"
tier = "Sem_Tier__c"
persona = "Sem_Persona__c"

[outputs.hubspot]
segment = "sem_segment"
tier = "sem_tier"
persona = "sem_persona"
"""

# Inputs on the rules' edges.
LABELS = ["Berlin", "berlin", "  BERLIN ", "Oslo", "oslo ", "STOCKHOLM", "Paris", ""]
COUNTS = [
    "1000", "999", "1,000", "1e3", "$1,000", "USD 999", "1000 €", "45%", "-1000", "1000.5",
    "€1.000", "1,5", "1 000", "1_000", "(1000)", "n/a", "",
]  # fmt: skip
PINS = ["", "true", "false", "yes", "No", "maybe", "0", "1"]
DEPARTMENTS = ["Finance", "finance", " FINANCE ", "Accounting", "accounting", "Sales", ""]


@dataclass(frozen=True)
class AccountInput:
    label: str
    count: str
    seen: str
    pin: str
    id_form: str  # how the contact export names the account: "18", "15", "lower"
    departments: tuple[str, ...]


def _seen(now: datetime, days: int, hours: int, form: str) -> str:
    """A date `days` before `now` (negative: after) in one of the shapes CRMs send."""
    moment = now - timedelta(days=days, hours=hours)
    if form == "date":
        return moment.date().isoformat()
    if form == "iso":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "offset":
        return moment.astimezone(timezone(timedelta(hours=-5))).isoformat()
    return str(int(moment.timestamp() * 1000))  # epoch milliseconds (HubSpot)


@st.composite
def accounts_and_now(draw: st.DrawFn) -> tuple[datetime, list[AccountInput]]:
    # Any hour of two days: the New York day boundary falls at 04:00 / 05:00 UTC.
    now = NOW + timedelta(hours=draw(st.integers(0, 47)), minutes=draw(st.sampled_from([0, 59])))
    inputs = []
    for _ in range(ACCOUNTS_PER_EXAMPLE):
        seen = ""
        if draw(st.booleans()) or draw(st.booleans()):
            days = draw(st.sampled_from([-3, -1, 0, 1, 6, 7, 8, 29, 30, 31, 32]))
            hours = draw(st.sampled_from([-12, -5, -4, 0, 4, 5, 12, 23]))
            seen = _seen(
                now, days, hours, draw(st.sampled_from(["date", "iso", "offset", "epoch"]))
            )
        inputs.append(
            AccountInput(
                label=draw(st.sampled_from(LABELS)),
                count=draw(st.sampled_from(COUNTS)),
                seen=seen,
                pin=draw(st.sampled_from(PINS)),
                id_form=draw(st.sampled_from(["18", "15", "lower"])),
                departments=tuple(
                    draw(st.lists(st.sampled_from(DEPARTMENTS), min_size=3, max_size=3))
                ),
            )
        )
    return now, inputs


class Agreement:
    """One CRM of the sandboxes with the test mappings provisioned and a controllable clock."""

    def __init__(self, crms: Sandboxes, ctx: Context, crm: str, tmp: Path) -> None:
        self.crms, self.ctx, self.crm, self.tmp = crms, ctx, crm, tmp
        self.now = NOW
        self.runner = Runner(ctx.store, ctx.settings.sync, clock=lambda: self.now)
        self.adapter = ctx.adapters[crm]
        accounts = ctx.engines["account"]
        for obj in ("account", "contact"):
            engine = ctx.engines[obj]
            report = self.adapter.provision(
                obj,  # type: ignore[arg-type]
                output_specs(engine, crm, accounts if obj == "contact" else None),
                engine.input_fields(crm),
                dry_run=False,
            )
            assert not report.problems, report.problems
        self.account_ids = self._account_ids()[:ACCOUNTS_PER_EXAMPLE]

    # -- the CRM's own records -----------------------------------------------------------
    def _account_ids(self) -> list[str]:
        if self.crm == "salesforce":
            return [r["Id"] for r in self.crms.salesforce.org.records("Account")]
        return [r.id for r in self.crms.hubspot.portal.snapshot("companies")]

    def contact_ids(self, account_id: str) -> list[str]:
        if self.crm == "salesforce":
            return [
                r["Id"]
                for r in self.crms.salesforce.org.records("Contact")
                if r.get("AccountId") == account_id
            ]
        return list(self.crms.hubspot.portal.associated("companies", account_id, "contacts") or [])

    def fields(self, obj: str, record_id: str) -> dict[str, Any]:
        if self.crm == "salesforce":
            record = self.crms.salesforce.org.get(
                "Account" if obj == "account" else "Contact", record_id
            )
            assert record is not None
            return {k: v for k, v in record.items() if k != "attributes"}
        kind = "companies" if obj == "account" else "contacts"
        return {"id": record_id, **self.crms.hubspot.portal.get(kind, record_id)["properties"]}

    def edit(self, obj: str, record_id: str, values: dict[str, str]) -> None:
        if self.crm == "salesforce":
            sobject = "Account" if obj == "account" else "Contact"
            self.crms.salesforce.org.update(
                sobject, record_id, {k: (v or None) for k, v in values.items()}
            )
        else:
            kind = "companies" if obj == "account" else "contacts"
            self.crms.hubspot.portal.update(kind, record_id, values)

    def field(self, obj: str, key: str) -> str:
        return self.ctx.engines[obj].output_fields(self.crm)[key]

    # -- one example ---------------------------------------------------------------------
    def apply(self, inputs: list[AccountInput]) -> None:
        names = {
            "salesforce": (
                "BillingCity",
                "Sem_Count__c",
                "Sem_Seen__c",
                "Sem_Pin__c",
                "Department",
            ),
            "hubspot": ("city", "sem_count", "sem_seen", "sem_pin", "department"),
        }[self.crm]
        for account_id, given_ in zip(self.account_ids, inputs, strict=True):
            values = dict(
                zip(names[:4], (given_.label, given_.count, given_.seen, given_.pin), strict=True)
            )
            self.edit("account", account_id, values)
            for contact_id, dept in zip(
                self.contact_ids(account_id), given_.departments, strict=False
            ):
                self.edit("contact", contact_id, {names[4]: dept})

    def sync(self) -> None:
        for obj in ("account", "contact"):
            (job,) = self.ctx.jobs(self.crm, obj)
            result = self.runner.run(job, full=True, force=True)
            assert result.status == "succeeded", result.message

    def export(self, inputs: list[AccountInput]) -> tuple[Path, Path]:
        """The CRM's records as JSON Lines exports; contacts name their account as drawn."""
        accounts = self.tmp / f"{self.crm}-accounts.jsonl"
        contacts = self.tmp / f"{self.crm}-contacts.jsonl"
        parent_field = "AccountId" if self.crm == "salesforce" else "associatedcompanyid"
        with accounts.open("w") as a_out, contacts.open("w") as c_out:
            for account_id, given_ in zip(self.account_ids, inputs, strict=True):
                a_out.write(json.dumps(self.fields("account", account_id)) + "\n")
                for contact_id in self.contact_ids(account_id):
                    fields = self.fields("contact", contact_id)
                    fields[parent_field] = _id_form(account_id, given_.id_form, self.crm)
                    c_out.write(json.dumps(fields) + "\n")
        return accounts, contacts


def _id_form(record_id: str, form: str, crm: str) -> str:
    if crm == "hubspot":
        return {"18": record_id, "15": f"{record_id}.0", "lower": f"00{record_id}"}[form]
    return {"18": record_id, "15": record_id[:15], "lower": record_id.lower()}[form]


def _preview(
    mapping: Path, export: Path, crm: str, now: datetime, *extra: str | Path
) -> list[dict[str, str]]:
    out = export.with_suffix(".out.csv")
    result = CliRunner().invoke(
        cli,
        [
            "preview",
            "-m",
            str(mapping),
            "-i",
            str(export),
            "--crm",
            crm,
            "--now",
            now.isoformat(),
            "--out",
            str(out),
            "--format",
            "json",
            *(str(e) for e in extra),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _number(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


@pytest.fixture(params=["salesforce", "hubspot"])
def agreement(
    request: pytest.FixtureRequest, fresh_sandboxes: Sandboxes, tmp_path: Path
) -> Iterator[Agreement]:
    crm = request.param
    for name, text in (("accounts.toml", ACCOUNTS), ("contacts.toml", CONTACTS)):
        (tmp_path / name).write_text(text)
    if crm == "salesforce":
        org = fresh_sandboxes.salesforce.org
        for field in ("Sem_Count__c", "Sem_Seen__c", "Sem_Pin__c"):
            org.add_custom_field(
                "Account", CustomFieldSpec(f"Account.{field}", "Text", field, length=255)
            )
    else:
        portal = fresh_sandboxes.hubspot.portal
        for name in ("sem_count", "sem_seen", "sem_pin"):
            portal.create_property(
                "companies",
                {
                    "name": name,
                    "label": name,
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "companyinformation",
                },
            )
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    text = config.read_text().replace(
        "[sync]\n",
        f'[sync]\nmappings = ["{tmp_path / "accounts.toml"}", "{tmp_path / "contacts.toml"}"]\n',
    )
    config.write_text(text)
    with open_context(config, crm=crm) as ctx:
        yield Agreement(fresh_sandboxes, ctx, crm, tmp_path)


@pytest.mark.slow
def test_preview_shows_what_a_sync_writes(agreement: Agreement) -> None:
    a = agreement
    crm = a.crm
    out_keys = ("segment", "tier", "reason")

    # The examples share one sandbox and one store, as consecutive runs would;
    # each one sets every input it depends on.
    @settings(
        max_examples=8,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(accounts_and_now())
    def check(case: tuple[datetime, list[AccountInput]]) -> None:
        now, inputs = case
        a.now = now
        a.apply(inputs)
        before = {
            i: {k: a.fields("account", i).get(a.field("account", k)) for k in out_keys}
            for i in a.account_ids
        }
        a.sync()
        accounts_export, contacts_export = a.export(inputs)
        rows = _preview(a.tmp / "accounts.toml", accounts_export, crm, now)
        assert [r["id"] for r in rows] == a.account_ids
        for row in rows:
            crm_now = a.fields("account", row["id"])
            got = {k: crm_now.get(a.field("account", k)) for k in out_keys}
            if row["locked"] == "true":
                assert got == before[row["id"]], row
                continue
            assert got == {k: row[k] for k in out_keys}, (row, crm_now)
            assert _number(crm_now.get(a.field("account", "score.bits"))) == _number(
                row["bits_score"]
            )
        contact_rows = _preview(
            a.tmp / "contacts.toml",
            contacts_export,
            crm,
            now,
            "--accounts",
            accounts_export,
            "--accounts-mapping",
            a.tmp / "accounts.toml",
        )
        assert contact_rows
        for row in contact_rows:
            crm_now = a.fields("contact", row["id"])
            got = {k: crm_now.get(a.field("contact", k)) for k in ("segment", "tier", "persona")}
            assert got == {k: row[k] for k in ("segment", "tier", "persona")}, (row, crm_now)

    check()
