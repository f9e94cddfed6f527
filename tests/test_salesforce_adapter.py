"""The Salesforce adapter against the in-process sandbox, through the real simple-salesforce.

Every test talks HTTPS to a sandbox on an ephemeral port (one server per
worker, a fresh org per test) with a retry policy that never sleeps.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce.exceptions import SalesforceRefusedRequest

from connector.config import SalesforceConnection
from connector.crm.base import CrmAdapter, CrmRecord, OutputField, RecordUpdate
from connector.crm.limits import BudgetExhausted
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce import (
    SalesforceAdapter,
    from_cell,
    parse_stamp,
    scrub,
    to_cell,
    to_json,
)
from connector.crm.salesforce.errors import translate
from connector.crm.salesforce.session import NEVER, answered_at
from connector.errors import FatalSyncError, RetriableError
from connector.sync.window import read_open, settled
from segsync_sandbox.salesforce import CustomFieldSpec, Org, SalesforceSandbox, start_salesforce
from segsync_sandbox.salesforce.bulk import bulk_service

CLIENT_SECRET = "S3cr3t-Client-Value-0123456789ABCDEF"
TIERS = ("Tier 1", "Tier 2", "Tier 3")
ACCOUNT_FIELDS = [
    "Name",
    "Industry",
    "NumberOfEmployees",
    "AnnualRevenue",
    "BillingCountry",
    "Tech_Stack__c",
    "Intent_Score__c",
    "Segsync_Lock__c",
    "CreatedDate",
    "Website",
]


class FakeClock:
    """A settable clock (epoch seconds) for the org's modification stamps."""

    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def _server() -> Iterator[SalesforceSandbox]:
    sandbox = start_salesforce(client_id="adapter-test-client", client_secret=CLIENT_SECRET)
    try:
        yield sandbox
    finally:
        sandbox.stop()


_OPEN: list[SalesforceAdapter] = []


@pytest.fixture
def sfbox(_server: SalesforceSandbox) -> Iterator[SalesforceSandbox]:
    """The module's sandbox serving a fresh, empty org (adapters made for it closed after)."""
    _server.reset()
    bulk_service(_server.app).reset()
    yield _server
    while _OPEN:
        _OPEN.pop().close()
    _server.reset()


@pytest.fixture
def clock(sfbox: SalesforceSandbox) -> FakeClock:
    """A fake clock driving a fresh org's stamps."""
    fake = FakeClock()
    sfbox.reset(Org(clock=fake))
    return fake


def _policy(attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, initial_wait=0.0, max_wait=0.0, sleep=lambda _s: None)


def _settings(sandbox: SalesforceSandbox, auth: str = "jwt", **extra: Any) -> SalesforceConnection:
    values: dict[str, Any] = {
        "auth": auth,
        "login_url": sandbox.login_url,
        "ca_file": sandbox.ca_file,
        "timeout_seconds": 10.0,
    }
    if auth == "jwt":
        values.update(
            client_id=sandbox.client_id,
            username=sandbox.username,
            private_key_file=sandbox.private_key_file,
        )
    elif auth == "client_credentials":
        values.update(client_id=sandbox.client_id, client_secret=sandbox.client_secret)
    elif auth == "refresh_token":
        values.update(
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            refresh_token=sandbox.refresh_token,
        )
    else:
        values.update(instance_url=sandbox.instance_url, session_id=sandbox.access_token)
    values.update(extra)
    return SalesforceConnection(**values)


def _adapter(
    sandbox: SalesforceSandbox, auth: str = "jwt", attempts: int = 4, **extra: Any
) -> SalesforceAdapter:
    adapter = SalesforceAdapter(
        "sf", _settings(sandbox, auth, **extra), retry=_policy(attempts), bulk_wait=0
    )
    _OPEN.append(adapter)
    return adapter


def _mark(sandbox: SalesforceSandbox) -> int:
    """The request log's last sequence number (``entries(since)`` takes one)."""
    entries = sandbox.app.log.entries()
    return entries[-1].seq if entries else 0


def _kinds(sandbox: SalesforceSandbox, since: int = 0) -> list[str]:
    return [e.kind for e in sandbox.app.log.entries(since)]


def _add_tier(sandbox: SalesforceSandbox, sobject: str = "Account") -> None:
    sandbox.org.add_custom_field(
        sobject,
        CustomFieldSpec(
            f"{sobject}.Segsync_Tier__c",
            "Picklist",
            "Tier",
            picklist_values=TIERS,
            restricted=True,
        ),
    )


def _accounts(sandbox: SalesforceSandbox, n: int) -> list[str]:
    industries = (" technology ", "Banking", None, "SaaS")
    rows = [
        {
            "Name": f'Acme, "Unit" {i:04d}',
            "Industry": industries[i % len(industries)],
            "NumberOfEmployees": i * 7 if i % 5 else None,
            "AnnualRevenue": 1_000_000.5 * i,
            "BillingCountry": "Germany" if i % 2 else "United States",
            "Tech_Stack__c": "Salesforce;Slack" if i % 3 == 0 else None,
            "Intent_Score__c": (i * 13) % 101,
            "Segsync_Lock__c": i % 4 == 0,
            "Website": f"https://acme{i}.example.com" if i % 2 else None,
        }
        for i in range(n)
    ]
    return [sandbox.org.insert("Account", row) for row in rows]


def _ids(pages: list[list[CrmRecord]]) -> list[str]:
    return [r.id for page in pages for r in page]


# --------------------------------------------------------------------------- protocol & helpers


def test_adapter_satisfies_the_protocol(sfbox: SalesforceSandbox) -> None:
    adapter: CrmAdapter = _adapter(sfbox)
    assert adapter.crm == "salesforce"
    assert adapter.minimum_calls(0, 0) == 0
    assert adapter.minimum_calls(2_000, 200) == 2
    assert adapter.minimum_calls(2_001, 201) == 4
    # Bulk API 2.0's own floor where a run uses it (default thresholds 50,000 / 10,000):
    # a query job (create, a poll, 10,000 rows a result page), an ingest job (5 steps).
    assert adapter.minimum_calls(100_000, 20_000) == 2 + 10 + 5


def test_values_are_formatted_for_rest_and_bulk() -> None:
    moment = datetime(2026, 11, 22, 4, 19, 0, 123456, tzinfo=UTC)
    assert to_json(moment) == "2026-11-22T04:19:00.123+0000"
    assert to_json(datetime(2026, 11, 22, 5, 19)) == "2026-11-22T05:19:00.000+0000"
    assert to_json(None) is None
    assert to_cell(None) == "#N/A"
    assert to_cell(True) == "true"
    assert to_cell(87.0) == "87"
    assert from_cell("", "string") is None
    assert from_cell("false", "boolean") is False
    assert from_cell("12", "int") == 12
    assert from_cell("12.5", "currency") == 12.5
    assert from_cell("2026-11-22T04:19:00.000Z", "datetime") == "2026-11-22T04:19:00.000+0000"
    assert parse_stamp("2026-11-22T04:19:00.000+0000") == parse_stamp("2026-11-22T04:19:00.000Z")
    assert parse_stamp("2026-11-22T04:19:00.250Z").microsecond == 250_000


def test_concurrent_request_limit_is_retriable_but_the_daily_one_is_fatal() -> None:
    def refused(message: str) -> SalesforceRefusedRequest:
        content = [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": message}]
        return SalesforceRefusedRequest("https://x/services/data", 403, "query", content)  # type: ignore[arg-type]

    concurrent = translate(refused("ConcurrentPerOrgLongTxn Limit exceeded."), "query")
    daily = translate(refused("TotalRequests Limit exceeded."), "query")
    assert isinstance(concurrent, RetriableError)
    assert isinstance(daily, BudgetExhausted)


def test_scrub_blanks_every_secret_and_pem_line() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    text = f"bad secret {CLIENT_SECRET} and MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    cleaned = scrub(text, [CLIENT_SECRET, key, None])
    assert CLIENT_SECRET not in cleaned
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in cleaned


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("auth", ["jwt", "client_credentials", "refresh_token", "session"])
def test_each_auth_flow_reaches_the_org(sfbox: SalesforceSandbox, auth: str) -> None:
    _accounts(sfbox, 3)
    adapter = _adapter(sfbox, auth)

    pages = list(adapter.pull("account", ["Name"], None))

    assert len(_ids(pages)) == 3
    tokens = _kinds(sfbox).count("token")
    assert tokens == (0 if auth == "session" else 1)
    # Every request the sandbox served was counted, the token request included.
    assert adapter.api_calls == len(sfbox.app.log.entries())
    adapter.close()


def test_a_bad_client_secret_is_fatal_and_never_quoted(
    sfbox: SalesforceSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-Secret-Value-9876543210-XYZ"
    adapter = _adapter(sfbox, "client_credentials", client_secret=wrong)

    with pytest.raises(FatalSyncError) as info:
        adapter.authenticate()

    message = str(info.value)
    assert "invalid_client" in message
    assert "client_credentials grant" in message
    assert "client_secret" in message  # says what to check
    assert wrong not in message
    assert wrong not in repr(adapter)
    assert wrong not in caplog.text
    # A refused credential is not retried.
    assert _kinds(sfbox).count("token") == 1


def test_a_jwt_signed_with_the_wrong_key_is_fatal_without_key_material(
    sfbox: SalesforceSandbox, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "other.pem"
    path.write_text(pem)
    adapter = _adapter(sfbox, "jwt", private_key_file=path)

    with pytest.raises(FatalSyncError) as info:
        adapter.describe("account", ["Name"])

    assert "invalid_grant" in str(info.value)
    assert pem.splitlines()[1] not in str(info.value)


def test_missing_settings_are_named_up_front(sfbox: SalesforceSandbox) -> None:
    settings = SalesforceConnection(auth="client_credentials", client_id="x")
    with pytest.raises(FatalSyncError, match="client_secret"):
        SalesforceAdapter("prod", settings)


def test_session_expiry_mid_pull_reauthenticates_once_and_completes(
    sfbox: SalesforceSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ids = _accounts(sfbox, 4_100)  # three REST pages
    adapter = _adapter(sfbox, "client_credentials")
    adapter.authenticate()
    sfbox.app.faults.update(session_expiry_after=2)

    pages = list(adapter.pull("account", ["Name"], None))

    assert sorted(_ids(pages)) == sorted(ids)
    assert [len(p) for p in pages] == [2_000, 2_000, 100]
    entries = sfbox.app.log.entries()
    expired = [e for e in entries if e.status == 401]
    assert expired, "the fault never fired"
    # One new token per refused call, and each refused call was repeated and succeeded.
    assert [e.kind for e in entries].count("token") == 1 + len(expired)
    for refused in expired:
        later = [e for e in entries if e.seq > refused.seq and e.kind == refused.kind]
        assert later and later[0].status == 200
    assert sfbox.client_secret not in caplog.text


def test_an_expired_given_session_is_fatal_with_a_clear_message(
    sfbox: SalesforceSandbox,
) -> None:
    adapter = _adapter(sfbox, "session")
    sfbox.app.tokens.expire_all()

    with pytest.raises(FatalSyncError, match="cannot re-authenticate"):
        adapter.describe("account", ["Name"])
    assert "token" not in _kinds(sfbox)


# --------------------------------------------------------------------------- describe & pull


def test_describe_reports_types_access_options_and_missing_fields(
    sfbox: SalesforceSandbox,
) -> None:
    _add_tier(sfbox)
    adapter = _adapter(sfbox)

    specs = adapter.describe("account", ["Name", "Segsync_Tier__c", "CreatedDate", "Nope__c"])

    assert specs["Name"].type == "string" and specs["Name"].length == 255
    assert specs["Segsync_Tier__c"].options == TIERS
    assert not specs["CreatedDate"].updateable
    assert not specs["Nope__c"].exists


def test_full_pull_returns_every_record_in_stamp_order_with_raw_values(
    sfbox: SalesforceSandbox,
) -> None:
    ids = _accounts(sfbox, 30)
    adapter = _adapter(sfbox)

    records = [r for page in adapter.pull("account", ACCOUNT_FIELDS, None) for r in page]

    assert [r.id for r in records] == ids
    stamps = [r.stamp for r in records]
    assert stamps == sorted(stamps) and all(s.tzinfo is not None for s in stamps)
    first = records[3]
    stored = sfbox.org.get("Account", first.id)
    assert stored is not None
    assert first.fields["Name"] == stored["Name"]
    assert first.fields["Tech_Stack__c"] == "Salesforce;Slack"
    assert first.fields["Segsync_Lock__c"] is False
    assert first.fields["Industry"] == "SaaS"
    assert first.parent is None
    assert "attributes" not in first.fields


def test_incremental_pull_is_inclusive_at_the_boundary(
    sfbox: SalesforceSandbox, clock: FakeClock
) -> None:
    ids = _accounts(sfbox, 10)
    clock.advance(3600.25)
    changed = [ids[2], ids[5], ids[7], ids[8]]
    for record_id in changed[:3]:  # three stamps, a second apart (stamps keep whole seconds)
        sfbox.org.update("Account", record_id, {"BillingCity": "Berlin"})
        clock.advance(1)
    clock.advance(-1)
    sfbox.org.update("Account", ids[8], {"BillingCity": "Berlin"})  # ids[7]'s second
    stamps = {i: parse_stamp(sfbox.org.get("Account", i)["SystemModstamp"]) for i in changed}  # type: ignore[index]
    assert stamps[ids[7]] == stamps[ids[8]] and stamps[ids[7]].microsecond == 0
    adapter = _adapter(sfbox)

    later = _ids(list(adapter.pull("account", ["BillingCity"], stamps[ids[2]])))
    boundary = _ids(list(adapter.pull("account", ["BillingCity"], stamps[ids[5]])))
    shared = list(adapter.pull("account", ["BillingCity"], stamps[ids[7]]))
    after_all = list(adapter.pull("account", ["BillingCity"], stamps[ids[7]] + timedelta(0, 1)))

    assert later == changed
    # The watermark equals ids[5]'s stamp exactly: included; ids[2], a second
    # earlier, is not.
    assert boundary == [ids[5], ids[7], ids[8]]
    # Two records saved in one second share the stamp: both at the boundary.
    assert _ids(shared) == [ids[7], ids[8]]
    assert after_all == []
    # Each record says when it was read, on the org's clock: the answer's Date
    # (whole seconds) less the time the request took, so never after the read.
    read_at = {r.read_at for page in shared for r in page}
    (moment,) = read_at
    assert moment is not None
    assert int(clock.now) - 60 < moment.timestamp() <= int(clock.now)


def test_the_read_time_is_the_answer_s_date_less_the_request_s_time() -> None:
    """The earliest the org's clock can have shown when a request was served; no host clock."""
    response = requests.Response()
    response.headers["Date"] = "Mon, 30 Nov 2026 06:00:10 GMT"
    response.elapsed = timedelta(seconds=2.5)
    assert answered_at(response) == datetime(2026, 11, 30, 6, 0, 7, 500_000, tzinfo=UTC)
    response.headers["Date"] = "not a date"
    assert answered_at(response) == NEVER  # then no second counts as closed
    del response.headers["Date"]
    assert answered_at(response) == NEVER


def test_contacts_carry_their_account_fields_as_parent(sfbox: SalesforceSandbox) -> None:
    _add_tier(sfbox)
    account = sfbox.org.insert("Account", {"Name": "Parent Co", "Segsync_Tier__c": "Tier 2"})
    with_parent = sfbox.org.insert(
        "Contact", {"LastName": "Ng", "AccountId": account, "Title": "CTO"}
    )
    orphan = sfbox.org.insert("Contact", {"LastName": "Solo", "Title": "VP Sales"})
    adapter = _adapter(sfbox)

    records = {
        r.id: r
        for page in adapter.pull("contact", ["Title"], None, ["Segsync_Tier__c", "Name"])
        for r in page
    }

    assert records[with_parent].parent == {"Segsync_Tier__c": "Tier 2", "Name": "Parent Co"}
    assert records[orphan].parent is None
    for record in records.values():
        assert "Account" not in record.fields
        assert "AccountId" not in record.fields  # not asked for
        assert record.fields["Title"] in ("CTO", "VP Sales")


def test_a_field_the_org_lacks_is_named_in_the_error(sfbox: SalesforceSandbox) -> None:
    _accounts(sfbox, 2)
    adapter = _adapter(sfbox)

    with pytest.raises(FatalSyncError, match="Segsync_Segment__c"):
        list(adapter.pull("account", ["Name", "Segsync_Segment__c"], None))


def test_bulk_pull_returns_what_rest_returns(sfbox: SalesforceSandbox) -> None:
    _add_tier(sfbox)
    _accounts(sfbox, 25)
    accounts = [r["Id"] for r in sfbox.org.records("Account")]
    sfbox.org.update("Account", accounts[1], {"Segsync_Tier__c": "Tier 3"})
    for i, account in enumerate(accounts[:10]):
        sfbox.org.insert("Contact", {"LastName": f"C{i}", "AccountId": account})
    sfbox.org.insert("Contact", {"LastName": "Orphan", "Email": "o@example.com"})
    rest = _adapter(sfbox)
    bulk = _adapter(sfbox, bulk_read_threshold=1)
    fields = [*ACCOUNT_FIELDS, "Segsync_Tier__c", "LastActivityDate"]

    rest_accounts = list(rest.pull("account", fields, None))
    before = _mark(sfbox)
    bulk_accounts = list(bulk.pull("account", fields, None))
    assert "bulk.query.create" in _kinds(sfbox, before)
    rest_contacts = list(rest.pull("contact", ["LastName", "Email"], None, ["Segsync_Tier__c"]))
    bulk_contacts = list(bulk.pull("contact", ["LastName", "Email"], None, ["Segsync_Tier__c"]))

    # The same records, each read at its own pull's time.
    flat = lambda pages: [replace(r, read_at=None) for p in pages for r in p]  # noqa: E731
    assert all(r.read_at is not None for p in [*bulk_accounts, *rest_accounts] for r in p)
    assert flat(bulk_accounts) == flat(rest_accounts)
    assert flat(bulk_contacts) == flat(rest_contacts)
    assert sum(1 for r in flat(bulk_contacts) if r.parent is not None) == 10


def test_fields_come_back_spelled_as_asked_on_both_paths(sfbox: SalesforceSandbox) -> None:
    _add_tier(sfbox)
    account = sfbox.org.insert("Account", {"Name": "Acme", "Segsync_Tier__c": "Tier 1"})
    sfbox.org.insert("Contact", {"LastName": "Ng", "AccountId": account, "Title": "CTO"})

    for adapter in (_adapter(sfbox), _adapter(sfbox, bulk_read_threshold=1)):
        pages = list(adapter.pull("contact", ["title", "LASTNAME"], None, ["segsync_tier__c"]))
        record = pages[0][0]
        assert (record.fields["title"], record.fields["LASTNAME"]) == ("CTO", "Ng")
        assert record.parent == {"segsync_tier__c": "Tier 1"}


def test_bulk_pull_resumes_after_a_failure_without_repeating_records(
    sfbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connector.crm.salesforce.bulk.BULK_RESULT_PAGE", 5)
    ids = _accounts(sfbox, 12)

    def back_off(_seconds: float) -> None:
        sfbox.app.faults.update(error_rate=0.0)  # the outage ends while we wait

    policy = RetryPolicy(attempts=3, initial_wait=0.0, max_wait=0.0, sleep=back_off)
    adapter = SalesforceAdapter(
        "sf", _settings(sfbox, bulk_read_threshold=1), retry=policy, bulk_wait=0
    )
    stream = adapter.pull("account", ["Name"], None)

    first = next(stream)
    sfbox.app.faults.update(error_rate=1.0)
    rest = [r for page in stream for r in page]

    assert [r.id for r in first] == ids[:5]
    assert [r.id for r in first + rest] == ids
    assert _kinds(sfbox).count("bulk.query.create") == 2


def _one_stamp_accounts(sfbox: SalesforceSandbox, n: int) -> list[str]:
    """``n`` accounts loaded by one call: they share one SystemModstamp."""
    sfbox.org.load_records("Account", [{"Name": f"One stamp {i:03d}"} for i in range(n)])
    return [r["Id"] for r in sfbox.org.records("Account")]


@pytest.mark.parametrize("remembered", [100, 3])
def test_a_bulk_pull_resumes_inside_one_stamp_only_while_it_remembers_the_ids(
    sfbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch, remembered: int
) -> None:
    monkeypatch.setattr("connector.crm.salesforce.bulk.BULK_RESULT_PAGE", 5)
    monkeypatch.setattr("connector.crm.salesforce.soql.MAX_RESUME_IDS", remembered)
    ids = _one_stamp_accounts(sfbox, 12)
    assert len({sfbox.org.get("Account", i)["SystemModstamp"] for i in ids}) == 1  # type: ignore[index]

    def back_off(_seconds: float) -> None:
        sfbox.app.faults.update(error_rate=0.0)

    policy = RetryPolicy(attempts=3, initial_wait=0.0, max_wait=0.0, sleep=back_off)
    adapter = SalesforceAdapter(
        "sf", _settings(sfbox, bulk_read_threshold=1), retry=policy, bulk_wait=0
    )
    stream = adapter.pull("account", ["Name"], None)
    first = next(stream)
    sfbox.app.faults.update(error_rate=1.0)

    if remembered >= 5:
        rest = [r for page in stream for r in page]
        assert sorted(r.id for r in first + rest) == sorted(ids)  # each once, none lost
        assert len(first + rest) == len(ids)
    else:
        # 5 yielded on one stamp, 3 remembered: a restart could not tell the
        # other 2 apart, so the pull stops (nothing written yet) instead.
        with pytest.raises(FatalSyncError, match="cannot resume inside that stamp"):
            list(stream)
    assert _kinds(sfbox).count("bulk.query.create") == (2 if remembered >= 5 else 1)


def test_fetch_reads_records_by_id(sfbox: SalesforceSandbox) -> None:
    ids = _accounts(sfbox, 8)
    adapter = _adapter(sfbox)

    records = adapter.fetch("account", [ids[6], ids[1], "001000000000ZZZAAA"], ["Name"])

    assert sorted(r.id for r in records) == sorted([ids[1], ids[6]])


def test_reads_by_id_carry_when_they_were_read(sfbox: SalesforceSandbox, clock: FakeClock) -> None:
    """Fetches and contacts by account carry the read time pulls carry (the org's clock).

    The re-read before a write compares a record's inputs when it was read in
    its stamp's own second (a later save in that second keeps the stamp), and
    re-reads it lean once that second had closed: both by ``read_at``. A
    record read by id without one had its inputs never compared.
    """
    ids = _accounts(sfbox, 3)
    sfbox.org.insert("Contact", {"LastName": "Ng", "AccountId": ids[0]})
    adapter = _adapter(sfbox)

    def reads() -> list[CrmRecord]:
        fetched = adapter.fetch("account", ids, ["Name"])
        contacts = [r for page in adapter.children([ids[0]], ["LastName"]) for r in page]
        assert len(fetched) == 3 and len(contacts) == 1
        return fetched + contacts

    same_second = reads()  # the org's clock has not left the records' second
    assert all(r.read_at is not None and read_open(r.stamp, r.read_at) for r in same_second)
    clock.advance(2)
    later = reads()
    assert all(r.read_at is not None and not read_open(r.stamp, r.read_at) for r in later)
    assert all(settled(r.stamp, r.read_at, timedelta(0)) for r in later)


# --------------------------------------------------------------------------- write


def test_writes_land_and_a_restricted_picklist_failure_spares_its_batch_mates(
    sfbox: SalesforceSandbox,
) -> None:
    _add_tier(sfbox)
    ids = _accounts(sfbox, 5)
    adapter = _adapter(sfbox)
    updates = [RecordUpdate(i, {"Segsync_Tier__c": "Tier 1"}) for i in ids]
    updates[2] = RecordUpdate(ids[2], {"Segsync_Tier__c": "Tier 9"})

    outcomes = adapter.write("account", updates)

    assert [o.id for o in outcomes] == ids
    assert [o.ok for o in outcomes] == [True, True, False, True, True]
    assert outcomes[2].code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert not outcomes[2].retriable
    tiers = [sfbox.org.get("Account", i).get("Segsync_Tier__c") for i in ids]  # type: ignore[union-attr]
    assert tiers == ["Tier 1", "Tier 1", None, "Tier 1", "Tier 1"]


def test_a_row_lock_is_retried_alone_and_lands(sfbox: SalesforceSandbox) -> None:
    _add_tier(sfbox)
    ids = _accounts(sfbox, 4)
    sfbox.app.faults.update(lock_ids={ids[1]}, lock_failures=1)
    adapter = _adapter(sfbox)

    outcomes = adapter.write(
        "account", [RecordUpdate(i, {"Segsync_Tier__c": "Tier 2"}) for i in ids]
    )

    assert all(o.ok for o in outcomes)
    writes = [e for e in sfbox.app.log.entries() if e.kind == "collections.update"]
    assert [len(e.records) for e in writes] == [4, 1]
    assert writes[1].records == (ids[1],)
    assert sfbox.org.get("Account", ids[1])["Segsync_Tier__c"] == "Tier 2"  # type: ignore[index]


def test_a_row_locked_forever_is_recorded_as_a_retriable_failure(
    sfbox: SalesforceSandbox,
) -> None:
    _add_tier(sfbox)
    ids = _accounts(sfbox, 3)
    sfbox.app.faults.update(lock_ids={ids[0]}, lock_failures=0)
    adapter = _adapter(sfbox, attempts=3)

    outcomes = adapter.write(
        "account", [RecordUpdate(i, {"Segsync_Tier__c": "Tier 3"}) for i in ids]
    )

    assert (outcomes[0].ok, outcomes[0].code, outcomes[0].retriable) == (
        False,
        "UNABLE_TO_LOCK_ROW",
        True,
    )
    assert all(o.ok for o in outcomes[1:])
    assert _kinds(sfbox).count("collections.update") == 3


def test_only_the_declared_fields_are_written(sfbox: SalesforceSandbox) -> None:
    _add_tier(sfbox)
    ids = _accounts(sfbox, 450)
    adapter = _adapter(sfbox, max_concurrency=3)
    now = datetime(2026, 11, 22, 4, 19, tzinfo=UTC)
    sfbox.org.add_custom_field(
        "Account",
        CustomFieldSpec("Account.Segsync_Updated_At__c", "DateTime", "Updated At"),
    )

    outcomes = adapter.write(
        "account",
        [RecordUpdate(i, {"Segsync_Tier__c": "Tier 3", "Segsync_Updated_At__c": now}) for i in ids],
    )

    assert all(o.ok for o in outcomes)
    writes = [e for e in sfbox.app.log.entries() if e.kind == "collections.update"]
    assert sorted(len(e.records) for e in writes) == [50, 200, 200]
    assert {e.fields for e in writes} == {("Segsync_Tier__c", "Segsync_Updated_At__c")}
    stored = sfbox.org.get("Account", ids[-1])
    assert stored is not None
    assert stored["Segsync_Updated_At__c"] == "2026-11-22T04:19:00.000+0000"


def test_contact_writes_keep_contacts_of_one_account_in_one_batch(
    sfbox: SalesforceSandbox,
) -> None:
    _add_tier(sfbox, "Contact")
    accounts = _accounts(sfbox, 100)
    contacts = [
        sfbox.org.insert("Contact", {"LastName": f"C{n}-{i}", "AccountId": account})
        for n in range(4)
        for i, account in enumerate(accounts)
    ]
    adapter = _adapter(sfbox)
    list(adapter.pull("contact", ["LastName"], None))
    shuffled = list(contacts)
    random.Random(7).shuffle(shuffled)

    outcomes = adapter.write(
        "contact", [RecordUpdate(c, {"Segsync_Tier__c": "Tier 1"}) for c in shuffled]
    )

    assert [o.id for o in outcomes] == shuffled and all(o.ok for o in outcomes)
    batch_of = {
        record: n
        for n, entry in enumerate(
            e for e in sfbox.app.log.entries() if e.kind == "collections.update"
        )
        for record in entry.records
    }
    for account in accounts:
        mates = [r["Id"] for r in sfbox.org.records("Contact") if r.get("AccountId") == account]
        assert len({batch_of[m] for m in mates}) == 1


def test_a_field_that_is_not_updateable_is_refused_before_any_write(
    sfbox: SalesforceSandbox,
) -> None:
    ids = _accounts(sfbox, 2)
    adapter = _adapter(sfbox)

    with pytest.raises(FatalSyncError, match="CreatedDate"):
        adapter.write("account", [RecordUpdate(ids[0], {"CreatedDate": "2020-01-01"})])
    assert "collections.update" not in _kinds(sfbox)


def test_server_errors_are_retried_until_the_calls_succeed(sfbox: SalesforceSandbox) -> None:
    _add_tier(sfbox)
    ids = _accounts(sfbox, 20)
    adapter = _adapter(sfbox, attempts=8)
    sfbox.app.faults.update(error_rate=0.4, seed=7)

    records = _ids(list(adapter.pull("account", ["Name"], None)))
    outcomes = adapter.write(
        "account", [RecordUpdate(i, {"Segsync_Tier__c": "Tier 1"}) for i in ids]
    )

    assert records == ids
    assert all(o.ok for o in outcomes)
    statuses = [e.status for e in sfbox.app.log.entries()]
    assert {500, 503} & set(statuses), "no server error was injected"
    assert adapter.api_calls == len(statuses)


def test_a_timeout_is_retried_and_counted(sfbox: SalesforceSandbox) -> None:
    ids = _accounts(sfbox, 3)

    def back_off(_seconds: float) -> None:
        sfbox.app.faults.update(timeout_rate=0.0)

    policy = RetryPolicy(attempts=3, initial_wait=0.0, max_wait=0.0, sleep=back_off)
    adapter = SalesforceAdapter("sf", _settings(sfbox, timeout_seconds=0.3), retry=policy)
    adapter.authenticate()
    sfbox.app.faults.update(timeout_rate=1.0, timeout_seconds=0.6)

    records = _ids(list(adapter.pull("account", ["Name"], None)))

    assert records == ids
    # The server logs the dropped request once its injected stall ends.
    deadline = time.monotonic() + 10
    while not any(e.status == 0 for e in sfbox.app.log.entries()) and time.monotonic() < deadline:
        time.sleep(0.05)
    entries = sfbox.app.log.entries()
    assert [e.status for e in entries].count(0) == 1
    assert adapter.api_calls == len(entries)


def test_persistent_server_errors_give_up_after_the_policy_attempts(
    sfbox: SalesforceSandbox,
) -> None:
    _accounts(sfbox, 2)
    adapter = _adapter(sfbox, attempts=3)
    adapter.authenticate()
    sfbox.app.faults.update(error_rate=1.0)

    with pytest.raises(RetriableError):
        list(adapter.pull("account", ["Name"], None))
    assert [e.status >= 500 for e in sfbox.app.log.entries() if e.kind != "token"] == [True] * 3


def test_request_limit_exceeded_is_fatal_and_not_retried(sfbox: SalesforceSandbox) -> None:
    _accounts(sfbox, 2)
    adapter = _adapter(sfbox)
    adapter.authenticate()
    sfbox.app.faults.update(rate_limit_next=1)

    with pytest.raises(BudgetExhausted):
        list(adapter.pull("account", ["Name"], None))
    assert [e.status for e in sfbox.app.log.entries() if e.kind != "token"] == [403]


def test_the_daily_share_stops_calls_before_the_org_refuses_them(
    sfbox: SalesforceSandbox,
) -> None:
    _accounts(sfbox, 2)
    adapter = _adapter(sfbox, daily_api_share=0.5)
    sfbox.org.set_usage(49_999)  # of 100,000: our half is nearly spent

    adapter.describe("account", ["Name"])  # the 50,000th call, and the reading
    with pytest.raises(BudgetExhausted, match="50000 of 100000"):
        adapter.describe("account", ["Name"])
    assert sfbox.org.usage()[0] == 50_000


def test_bulk_write_lands_and_parses_failures(sfbox: SalesforceSandbox) -> None:
    _add_tier(sfbox)
    ids = _accounts(sfbox, 6)
    sfbox.app.faults.update(lock_ids={ids[4]}, lock_failures=1)
    adapter = _adapter(sfbox, bulk_write_threshold=3)
    updates = [RecordUpdate(i, {"Segsync_Tier__c": "Tier 2"}) for i in ids]
    updates[1] = RecordUpdate(ids[1], {"Segsync_Tier__c": "Nope"})
    updates[3] = RecordUpdate(ids[3], {"Segsync_Tier__c": None})

    outcomes = adapter.write("account", updates)

    assert [o.ok for o in outcomes] == [True, False, True, True, True, True]
    assert outcomes[1].code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert "Nope" in outcomes[1].message
    kinds = _kinds(sfbox)
    assert "bulk.ingest.upload" in kinds
    # The locked row went back through the REST path, alone.
    locked = [e for e in sfbox.app.log.entries() if e.kind == "collections.update"]
    assert [e.records for e in locked] == [(ids[4],)]
    tiers = [sfbox.org.get("Account", i).get("Segsync_Tier__c") for i in ids]  # type: ignore[union-attr]
    assert tiers == ["Tier 2", None, "Tier 2", None, "Tier 2", "Tier 2"]


# --------------------------------------------------------------------------- provision


def _outputs(segments: tuple[str, ...] = ("Enterprise", "Mid-Market", "SMB")) -> list[OutputField]:
    return [
        OutputField("Segsync_Segment__c", "picklist", "Segment", "Segment by segsync", segments),
        OutputField("Segsync_Tier__c", "picklist", "Tier", "Tier by segsync", TIERS),
        OutputField("Segsync_Fit_Score__c", "number", "Fit Score", "0-100"),
        OutputField("Segsync_Intent_Score__c", "number", "Intent Score", "0-100"),
        OutputField("Segsync_Reason__c", "longtext", "Reason", "Why"),
        OutputField("Segsync_Version__c", "text", "Version", "Mapping version"),
        OutputField("Segsync_Updated_At__c", "datetime", "Updated At", "Last change"),
    ]


def _picklist(sandbox: SalesforceSandbox, name: str) -> dict[str, bool]:
    field = sandbox.org.field("Account", name)
    assert field is not None
    return {p.value: p.active for p in field.picklist_values}


def test_provision_creates_exactly_the_fields_then_is_a_no_op(sfbox: SalesforceSandbox) -> None:
    adapter = _adapter(sfbox)
    inputs = ["Name", "Industry", "Tech_Stack__c"]

    report = adapter.provision("account", _outputs(), inputs, dry_run=False)

    assert [(a.field, a.action) for a in report.actions] == [
        *((o.name, "create") for o in _outputs()),
        ("permission set Segsync", "grant"),
    ]
    assert not report.problems
    # Created through the Metadata API, the fields are visible only through the grant.
    assert sfbox.org.access.restricted
    described = adapter.describe("account", [o.name for o in _outputs()])
    assert all(spec.updateable for spec in described.values())
    granted = sfbox.org.read_permission_set("Segsync")
    assert granted is not None
    assert {(p.field, p.readable, p.editable) for p in granted.field_permissions.values()} == {
        (f"Account.{o.name}", True, True) for o in _outputs()
    }
    created = {s.full_name: s for s in sfbox.org.custom_field_specs()}
    assert set(created) == {f"Account.{o.name}" for o in _outputs()}
    assert created["Account.Segsync_Segment__c"].restricted
    assert created["Account.Segsync_Segment__c"].picklist_values == (
        "Enterprise",
        "Mid-Market",
        "SMB",
    )
    assert created["Account.Segsync_Fit_Score__c"].precision == 3
    assert created["Account.Segsync_Reason__c"].length == 32768
    assert created["Account.Segsync_Tier__c"].label == "Tier"
    assert created["Account.Segsync_Tier__c"].description == "Tier by segsync"

    before = _mark(sfbox)
    again = adapter.provision("account", _outputs(), inputs, dry_run=False)

    assert {a.action for a in again.actions} == {"ok"}
    assert not again.problems
    changes = [
        k
        for k in _kinds(sfbox, before)
        if k in ("metadata.createMetadata", "metadata.updateMetadata")
    ]
    assert changes == []


def test_a_new_segment_extends_the_picklist_and_deletes_nothing(sfbox: SalesforceSandbox) -> None:
    adapter = _adapter(sfbox)
    adapter.provision("account", _outputs(), [], dry_run=False)
    ids = _accounts(sfbox, 1)
    adapter.write("account", [RecordUpdate(ids[0], {"Segsync_Segment__c": "SMB"})])

    report = adapter.provision(
        "account", _outputs(("Enterprise", "Mid-Market", "Strategic")), [], dry_run=False
    )

    segment = [(a.action, a.detail) for a in report.actions if a.field == "Segsync_Segment__c"]
    assert ("add_options", "Strategic") in segment
    assert any(action == "stale_options" and "SMB" in detail for action, detail in segment)
    assert _picklist(sfbox, "Segsync_Segment__c") == {
        "Enterprise": True,
        "Mid-Market": True,
        "SMB": True,
        "Strategic": True,
    }
    assert sfbox.org.get("Account", ids[0])["Segsync_Segment__c"] == "SMB"  # type: ignore[index]


def test_dry_run_reports_but_changes_nothing(sfbox: SalesforceSandbox) -> None:
    _add_tier(sfbox)
    adapter = _adapter(sfbox)
    before = _mark(sfbox)

    report = adapter.provision("account", _outputs(), ["Name"], dry_run=True)

    actions = {a.field: a.action for a in report.actions}
    assert actions["Segsync_Segment__c"] == "create"
    assert actions["Segsync_Tier__c"] == "ok"
    assert [s.full_name for s in sfbox.org.custom_field_specs()] == ["Account.Segsync_Tier__c"]
    assert not [
        k
        for k in _kinds(sfbox, before)
        if k in ("metadata.createMetadata", "metadata.updateMetadata")
    ]

    extended = adapter.provision(
        "account",
        [OutputField("Segsync_Tier__c", "picklist", "Tier", "", (*TIERS, "Tier 4"))],
        [],
        True,
    )
    assert [a.action for a in extended.actions] == ["add_options"]
    assert "Tier 4" not in _picklist(sfbox, "Segsync_Tier__c")


def test_provision_lists_missing_inputs_and_conflicting_fields(sfbox: SalesforceSandbox) -> None:
    sfbox.org.add_custom_field(
        "Contact", CustomFieldSpec("Contact.Segsync_Persona__c", "Text", "Persona", length=80)
    )
    adapter = _adapter(sfbox)

    report = adapter.provision(
        "contact",
        [OutputField("Segsync_Persona__c", "picklist", "Persona", "", ("Buyer", "User"))],
        ["Title", "Account.Name", "Account.Nope__c", "Shoe_Size__c"],
        dry_run=False,
    )

    problems = {a.field: a.detail for a in report.problems}
    assert set(problems) == {"Account.Nope__c", "Shoe_Size__c", "Segsync_Persona__c"}
    assert "string" in problems["Segsync_Persona__c"]
    assert sfbox.org.field("Contact", "Segsync_Persona__c").type == "string"  # type: ignore[union-attr]


def test_provision_reauthenticates_when_the_metadata_api_refuses_the_session(
    sfbox: SalesforceSandbox,
) -> None:
    adapter = _adapter(sfbox, "refresh_token")
    adapter.authenticate()
    sfbox.app.faults.update(session_expiry_after=1)  # every session serves one call

    report = adapter.provision("account", _outputs()[:2], [], dry_run=False)

    assert [a.action for a in report.actions] == ["create", "create", "grant"]
    assert len(sfbox.org.custom_field_specs()) == 2
    assert _kinds(sfbox).count("token") >= 3
