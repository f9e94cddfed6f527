"""A REST pull that selects two or more long text areas: its columns split over one Composite call.

Salesforce caps the pages of a query selecting two long text areas at 200
rows; split into queries of one long text area each, sent as query
subrequests of one Composite call and paged by keyset, the pull reads 2,000
rows a call (connector/crm/salesforce/pull.py, docs/crm-apis.md "Long text
areas split across one Composite call"). Real simple-salesforce, the
sandbox over HTTPS, the sandbox's hook for changes between subrequests.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sandbox_fixtures import OrgClock, hold_clock, running_salesforce, salesforce_adapter

from connector.crm.base import CrmRecord, TimedPages
from connector.crm.salesforce import SalesforceAdapter
from connector.crm.salesforce.pull import join_page, split_columns
from connector.errors import FatalSyncError
from connector.sync.window import read_open
from segsync_sandbox.salesforce import CustomFieldSpec, SalesforceSandbox
from segsync_sandbox.salesforce.bulk import bulk_service

LONG = ("Reason_A__c", "Reason_B__c")
FIELDS = ["Name", "NumberOfEmployees", *LONG]


@pytest.fixture(scope="module")
def _server() -> Iterator[SalesforceSandbox]:
    with running_salesforce("split-pull-client") as sandbox:
        yield sandbox


_OPEN: list[SalesforceAdapter] = []


@pytest.fixture
def sfbox(_server: SalesforceSandbox) -> Iterator[SalesforceSandbox]:
    """A fresh org whose accounts have two long text areas (adapters closed after)."""
    _server.reset()
    bulk_service(_server.app).reset()
    for name in LONG:
        _server.org.add_custom_field(
            "Account",
            CustomFieldSpec(f"Account.{name}", "LongTextArea", name[:-3], length=32768),
        )
    yield _server
    while _OPEN:
        _OPEN.pop().close()
    _server.reset()


def _adapter(sandbox: SalesforceSandbox, *, described: bool = True) -> SalesforceAdapter:
    """An adapter; ``described``: it has read the Account describe (as a run's provision does)."""
    adapter = salesforce_adapter(sandbox, attempts=2, bulk_write_threshold=10_000)
    _OPEN.append(adapter)
    if described:
        adapter.describe("account", FIELDS)
    return adapter


def _load(sandbox: SalesforceSandbox, clock: OrgClock, n: int, per_second: int = 2_500) -> None:
    """``n`` accounts, ``per_second`` of them on each stamp (the clock moves on after each)."""
    for start in range(0, n, per_second):
        rows = [
            {
                "Name": f"Account {i:05d}",
                "NumberOfEmployees": i,
                LONG[0]: f"a{i} " * 40,
                LONG[1]: f"b{i} " * 40,
            }
            for i in range(start, min(n, start + per_second))
        ]
        sandbox.org.load_records("Account", rows)
        clock.advance(1)


def _mark(sandbox: SalesforceSandbox) -> int:
    entries = sandbox.app.log.entries()
    return entries[-1].seq if entries else 0


def _kinds(sandbox: SalesforceSandbox, since: int) -> Counter[str]:
    return Counter(e.kind for e in sandbox.app.log.entries(since))


def _records(pages: Iterator[list[CrmRecord]]) -> list[CrmRecord]:
    return [r for page in pages for r in page]


def _seen(records: list[CrmRecord]) -> list[tuple[str, datetime, dict[str, Any]]]:
    return [(r.id, r.stamp, dict(r.fields)) for r in records]


def test_a_full_pull_reads_2000_rows_a_call_and_agrees_with_one_query(
    sfbox: SalesforceSandbox,
) -> None:
    clock = hold_clock(sfbox)
    _load(sfbox, clock, 5_000)
    # Without a describe the pull cannot tell the long text areas: one query, pages of 200.
    mark = _mark(sfbox)
    single = _records(_adapter(sfbox, described=False).pull("account", FIELDS, None))
    assert _kinds(sfbox, mark) == Counter({"query": 1, "queryMore": 24, "token": 1})

    adapter = _adapter(sfbox)
    mark = _mark(sfbox)
    split = _records(adapter.pull("account", FIELDS, None))
    assert _kinds(sfbox, mark) == Counter({"composite": 3})
    assert sfbox.app.open_cursors() == 0
    assert len(split) == 5_000
    assert _seen(split) == _seen(single)


def test_a_window_of_whole_pages_needs_no_empty_page(sfbox: SalesforceSandbox) -> None:
    """Each call counts what is left: 4,000 rows are two calls, not a third empty one."""
    clock = hold_clock(sfbox)
    _load(sfbox, clock, 4_000)
    adapter = _adapter(sfbox)
    mark = _mark(sfbox)
    assert len(_records(adapter.pull("account", FIELDS, None))) == 4_000
    assert _kinds(sfbox, mark) == Counter({"composite": 2})


def test_an_incremental_pull_of_1000_edits_is_one_call(sfbox: SalesforceSandbox) -> None:
    clock = hold_clock(sfbox)
    _load(sfbox, clock, 5_000)
    since = datetime.fromtimestamp(int(clock.now), tz=UTC)  # the edits' second
    edited = sorted(r["Id"] for r in sfbox.org.records("Account"))[::5]
    for record_id in edited:
        sfbox.org.update("Account", record_id, {LONG[1]: "edited"})
    adapter = _adapter(sfbox)
    mark = _mark(sfbox)
    pulled = _records(adapter.pull("account", FIELDS, since))
    assert _kinds(sfbox, mark) == Counter({"composite": 1})
    assert sorted(r.id for r in pulled) == edited
    assert {r.fields[LONG[1]] for r in pulled} == {"edited"}


def test_contacts_keep_their_parent_columns_in_the_first_query(sfbox: SalesforceSandbox) -> None:
    for name in LONG:
        sfbox.org.add_custom_field(
            "Contact",
            CustomFieldSpec(f"Contact.{name}", "LongTextArea", name[:-3], length=32768),
        )
    clock = hold_clock(sfbox)
    _load(sfbox, clock, 300)
    accounts = sorted(r["Id"] for r in sfbox.org.records("Account"))
    rows = [
        {
            "LastName": f"Person {i:04d}",
            "AccountId": accounts[i % 300] if i % 7 else None,
            LONG[0]: f"x{i}",
            LONG[1]: f"y{i}",
        }
        for i in range(2_500)
    ]
    sfbox.org.load_records("Contact", rows)
    fields = ["LastName", *LONG]
    parents = ["Account.Name"]
    single = _records(_adapter(sfbox, described=False).pull("contact", fields, None, parents))
    adapter = _adapter(sfbox, described=False)
    adapter.describe("contact", [*fields, *parents])
    mark = _mark(sfbox)
    split = _records(adapter.pull("contact", fields, None, parents))
    assert _kinds(sfbox, mark) == Counter({"composite": 2})
    assert len(split) == 2_500
    assert [(*seen, r.parent) for seen, r in zip(_seen(split), split, strict=True)] == [
        (*seen, r.parent) for seen, r in zip(_seen(single), single, strict=True)
    ]
    assert any(r.parent and r.parent["Name"] for r in split)


def test_five_long_text_areas_keep_one_query(sfbox: SalesforceSandbox) -> None:
    """Five queries and the count would pass Composite's five queries: today's path."""
    more = ("Reason_C__c", "Reason_D__c", "Reason_E__c")
    for name in more:
        sfbox.org.add_custom_field(
            "Account",
            CustomFieldSpec(f"Account.{name}", "LongTextArea", name[:-3], length=32768),
        )
    clock = hold_clock(sfbox)
    _load(sfbox, clock, 450)
    adapter = _adapter(sfbox)
    adapter.describe("account", [*FIELDS, *more])
    mark = _mark(sfbox)
    pulled = _records(adapter.pull("account", [*FIELDS, *more], None))
    assert len(pulled) == 450
    assert _kinds(sfbox, mark) == Counter({"query": 1, "queryMore": 2})


def test_a_record_changed_between_subrequests_is_read_later_and_none_is_lost(
    sfbox: SalesforceSandbox,
) -> None:
    """Between the first query and the second of the first call, a person edits two records
    and deletes one: a later stamp (read later in the walk), the same second (read before
    it closed: not known), gone (never yielded). Over this pull and the next from its start,
    every record of the org is read at its current stamp and values."""
    clock = hold_clock(sfbox)
    _load(sfbox, clock, 5_000, per_second=5_000)
    clock.advance(-1)  # still the load's second: a save now keeps the loaded stamp
    first_page = sorted(r["Id"] for r in sfbox.org.records("Account"))[:2_000]
    moved, same_second, gone = first_page[10], first_page[20], first_page[30]
    changes: list[str] = []

    def change(ref: str) -> None:
        if ref != "q1" or changes:
            return
        changes.append(ref)
        sfbox.org.update("Account", same_second, {LONG[1]: "same second"})
        clock.advance(1)
        sfbox.org.update("Account", moved, {LONG[1]: "moved", "NumberOfEmployees": 7})
        sfbox.org.delete("Account", gone)

    adapter = _adapter(sfbox)
    sfbox.app.after_subrequest = change
    pages = adapter.pull("account", FIELDS, None)
    assert isinstance(pages, TimedPages)
    pulled = _records(pages)
    sfbox.app.after_subrequest = None
    assert changes == ["q1"]
    ids = [r.id for r in pulled]
    assert len(ids) == len(set(ids)) == 4_999
    assert gone not in ids
    by_id = {r.id: r for r in pulled}
    # Dropped from the first page, read where its new stamp put it: the end of the walk.
    assert ids[-1] == moved and by_id[moved].fields[LONG[1]] == "moved"
    # Its second had not closed when read: never taken as processed at that stamp.
    kept = by_id[same_second]
    assert read_open(kept.stamp, kept.read_at)

    # The next run's pull from this one's start reads what changed during it.
    began = pages.began()
    assert began is not None
    clock.advance(2)
    again = _records(adapter.pull("account", FIELDS, began))
    latest = {r.id: r for r in [*pulled, *again]}
    org = {r["Id"]: r for r in sfbox.org.records("Account")}
    assert set(latest) == set(org)
    for record_id, row in org.items():
        record = latest[record_id]
        assert record.stamp == datetime.fromisoformat(
            row["SystemModstamp"].replace("+0000", "+00:00")
        )
        assert {f: record.fields[f] for f in LONG} == {f: row.get(f) for f in LONG}


# -- the pure parts ----------------------------------------------------------


def test_split_columns_puts_one_long_text_area_in_each_query() -> None:
    own = {
        "Id": {"type": "id"},
        "SystemModstamp": {"type": "datetime"},
        "Name": {"type": "string", "length": 255},
        "Notes__c": {"type": "textarea", "length": 255},
        "A__c": {"type": "textarea", "length": 32768, "extraTypeInfo": "plaintextarea"},
        "B__c": {"type": "textarea", "length": 131072, "extraTypeInfo": "richtextarea"},
    }
    selected = ["Id", "SystemModstamp", "Name", "a__c", "Notes__c", "B__c"]
    assert split_columns(selected, own) == [
        ["Id", "SystemModstamp", "Name", "a__c", "Notes__c"],
        ["Id", "SystemModstamp", "B__c"],
    ]
    assert split_columns(selected, None) is None  # describe unknown
    assert split_columns(["Id", "SystemModstamp", "Name", "A__c"], own) is None  # one long
    assert split_columns([*selected, "Gone__c"], own) is None  # not in the describe
    parent = {"Id": {"type": "id"}, "Description": {"type": "textarea", "length": 32000}}
    assert split_columns([*selected, "Account.Id"], own, parent) is not None
    assert split_columns([*selected, "Account.Description"], own, parent) is None
    assert split_columns([*selected, "Account.Id"], own, None) is None


def _row(stamp: int, record_id: str, **values: Any) -> dict[str, Any]:
    moment = datetime.fromtimestamp(1_795_000_000 + stamp, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return {"attributes": {}, "Id": record_id, "SystemModstamp": text, **values}


def _answer(rows: list[dict[str, Any]], done: bool = True) -> dict[str, Any]:
    return {"totalSize": len(rows), "done": done, "records": rows}


def test_join_page_keeps_rows_every_query_read_alike_up_to_the_lowest_full_answer() -> None:
    first = [_row(0, f"001{n:015d}", Name=f"n{n}", A=f"a{n}") for n in range(4)]
    second = [_row(0, f"001{n:015d}", B=f"b{n}") for n in (0, 2, 3, 4)]
    second[1] = _row(1, second[1]["Id"], B="moved")  # record 2 changed between them
    # Record 1 is missing from the second (deleted or moved), record 4 lies beyond the
    # first's last key: ignored. Neither answer is full: the walk is done.
    rows, after = join_page([_answer(first), _answer(second)], page=5)
    assert [(r["Id"][-1], r["Name"], r["B"]) for r in rows] == [
        ("0", "n0", "b0"),
        ("3", "n3", "b3"),
    ]
    assert after is None
    # The second answer is full at record 2 (a row committed late made it one row longer):
    # the page ends there, and the next starts after it.
    rows, after = join_page([_answer(first), _answer(second[:2], done=False)], page=5)
    assert [r["Id"][-1] for r in rows] == ["0"]
    assert after == (datetime.fromtimestamp(1_795_000_001, tz=UTC), second[1]["Id"])
    # A full first answer ends the page at its own last key.
    rows, after = join_page([_answer(first[:2]), _answer(second)], page=2)
    assert [r["Id"][-1] for r in rows] == ["0"]
    assert after == (datetime.fromtimestamp(1_795_000_000, tz=UTC), first[1]["Id"])


def test_a_walk_that_cannot_move_on_fails_instead_of_reading_again(
    sfbox: SalesforceSandbox,
) -> None:
    """2,500 rows on one stamp with milliseconds (no org sends one): an error, not a loop.

    The keyset's literal keeps whole seconds, so the next page's condition
    would match the same rows again and again (a bench's data once did).
    """
    stamp = "2026-11-29T10:00:00.123+0000"
    rows = [
        {
            "Name": f"Account {i:05d}",
            LONG[0]: "a",
            LONG[1]: "b",
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }
        for i in range(2_500)
    ]
    sfbox.org.load_records("Account", rows)
    pages = _adapter(sfbox).pull("account", FIELDS, None)
    with pytest.raises(FatalSyncError, match="did not move past"):
        for _ in itertools.islice(pages, 4):
            pass
