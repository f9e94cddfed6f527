"""Bulk API 2.0 of the Salesforce sandbox, driven by simple-salesforce's real bulk2 client."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
)

from segsync_sandbox.salesforce import CustomFieldSpec, SalesforceSandbox
from segsync_sandbox.salesforce.bulk import bulk_service, decode_locator, encode_locator

TIER = CustomFieldSpec(
    "Account.Segsync_Tier__c",
    "Picklist",
    "Tier",
    picklist_values=("Tier 1", "Tier 2", "Tier 3"),
    restricted=True,
)


@pytest.fixture
def sandbox(sf_sandbox: SalesforceSandbox) -> Iterator[SalesforceSandbox]:
    """The shared sandbox with a fresh org, no bulk jobs and default job pacing."""
    service = bulk_service(sf_sandbox.app)
    service.reset()
    yield sf_sandbox
    service.reset()


def _accounts(sandbox: SalesforceSandbox, n: int) -> list[str]:
    return [
        sandbox.org.insert(
            "Account", {"Name": f"Acme {i:02d}", "Industry": "Software", "NumberOfEmployees": i}
        )
        for i in range(n)
    ]


def _rows(page: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(page)))


def _jobs_url(sandbox: SalesforceSandbox, kind: str) -> str:
    return f"{sandbox.instance_url}/services/data/v{sandbox.api_version}/jobs/{kind}"


def _raw(sandbox: SalesforceSandbox) -> requests.Session:
    session = sandbox.http_session()
    session.headers["Authorization"] = f"Bearer {sandbox.access_token}"
    return session


# --------------------------------------------------------------------------- query jobs


def test_query_pages_follow_the_locator_until_null(
    sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    ids = _accounts(sandbox, 7)

    pages = list(
        sf.bulk2.Account.query(
            "SELECT Id, Name, NumberOfEmployees FROM Account ORDER BY Name", max_records=3, wait=0
        )
    )

    assert [len(_rows(p)) for p in pages] == [3, 3, 1]
    rows = [r for p in pages for r in _rows(p)]
    assert [r["Id"] for r in rows] == ids
    assert rows[4] == {"Id": ids[4], "Name": "Acme 04", "NumberOfEmployees": "4"}
    # Every page repeats the header in SELECT order.
    assert all(p.splitlines()[0] == '"Id","Name","NumberOfEmployees"' for p in pages)


def test_results_are_412_until_the_job_completes_and_walk_the_documented_states(
    sandbox: SalesforceSandbox,
) -> None:
    _accounts(sandbox, 5)
    http = _raw(sandbox)
    url = _jobs_url(sandbox, "query")

    created = http.post(url, json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
    assert created["state"] == "UploadComplete"
    early = http.get(f"{url}/{created['id']}/results")
    assert early.status_code == 412
    assert early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"

    states = [created["state"]]
    while states[-1] != "JobComplete":
        info = http.get(f"{url}/{created['id']}").json()
        states.append(info["state"])
        assert len(states) < 10
    assert states == ["UploadComplete", "UploadComplete", "InProgress", "JobComplete"]
    assert info["numberRecordsProcessed"] == 5
    assert info["jobType"] == "V2Query"

    first = http.get(f"{url}/{created['id']}/results", params={"maxRecords": 2})
    assert first.status_code == 200
    assert first.headers["Sforce-NumberOfRecords"] == "2"
    locator = first.headers["Sforce-Locator"]
    assert decode_locator(locator) == 2
    rest = http.get(f"{url}/{created['id']}/results", params={"maxRecords": 3, "locator": locator})
    assert rest.headers["Sforce-NumberOfRecords"] == "3"
    assert rest.headers["Sforce-Locator"] == "null"
    # A page asked for again (a retry) is the same page.
    again = http.get(f"{url}/{created['id']}/results", params={"maxRecords": 2})
    assert again.text == first.text


def test_exact_multiple_of_the_page_size_ends_with_a_null_locator(
    sandbox: SalesforceSandbox,
) -> None:
    _accounts(sandbox, 4)
    bulk_service(sandbox.app).settings.polls_per_state = 0
    http = _raw(sandbox)
    url = _jobs_url(sandbox, "query")
    job = http.post(url, json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
    assert http.get(f"{url}/{job['id']}").json()["state"] == "JobComplete"

    first = http.get(f"{url}/{job['id']}/results", params={"maxRecords": 2})
    second = http.get(
        f"{url}/{job['id']}/results",
        params={"maxRecords": 2, "locator": first.headers["Sforce-Locator"]},
    )
    assert second.headers["Sforce-NumberOfRecords"] == "2"
    assert second.headers["Sforce-Locator"] == "null"
    bad = http.get(f"{url}/{job['id']}/results", params={"locator": "not-a-locator!"})
    assert bad.status_code == 400


def test_query_all_includes_deleted_records(sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    ids = _accounts(sandbox, 3)
    sandbox.org.delete("Account", ids[1])

    live = [
        r["Id"] for p in sf.bulk2.Account.query("SELECT Id FROM Account", wait=0) for r in _rows(p)
    ]
    everything = [
        r
        for p in sf.bulk2.Account.query_all("SELECT Id, IsDeleted FROM Account", wait=0)
        for r in _rows(p)
    ]

    assert live == [ids[0], ids[2]]
    assert [(r["Id"], r["IsDeleted"]) for r in everything] == [
        (ids[0], "false"),
        (ids[1], "true"),
        (ids[2], "false"),
    ]


def test_parent_fields_nulls_and_datetimes_in_result_csv(
    sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    account = _accounts(sandbox, 1)[0]
    with_parent = sandbox.org.insert("Contact", {"LastName": "Smith", "AccountId": account})
    orphan = sandbox.org.insert("Contact", {"LastName": "Jones"})

    rows = [
        r
        for p in sf.bulk2.Contact.query(
            "SELECT Id, LastName, Title, Account.Name, SystemModstamp FROM Contact", wait=0
        )
        for r in _rows(p)
    ]

    by_id = {r["Id"]: r for r in rows}
    assert by_id[with_parent]["Account.Name"] == "Acme 00"
    assert by_id[orphan]["Account.Name"] == ""
    assert by_id[orphan]["Title"] == ""
    # Bulk prints datetimes in UTC with a Z, not REST's +0000.
    stored = sandbox.org.get("Contact", with_parent)["SystemModstamp"]
    assert stored.endswith("+0000")
    assert by_id[with_parent]["SystemModstamp"] == stored.removesuffix("+0000") + "Z"


def test_invalid_query_is_refused_when_the_job_is_created(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        list(sf.bulk2.Account.query("SELECT Id FRM Account", wait=0))
    assert malformed.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        list(sf.bulk2.Account.query("SELECT Id, Bogus__c FROM Account", wait=0))
    assert unknown.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_query_job_log_kinds_and_records(sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    ids = _accounts(sandbox, 3)
    sandbox.app.log.clear()

    list(sf.bulk2.Account.query("SELECT Id, Name FROM Account", max_records=2, wait=0))

    entries = sandbox.app.log.entries()
    kinds = [e.kind for e in entries]
    assert kinds[0] == "bulk.query.create"
    assert kinds.count("bulk.query.results") == 2
    assert set(kinds) == {"bulk.query.create", "bulk.query.status", "bulk.query.results"}
    assert [r for e in entries if e.kind == "bulk.query.results" for r in e.records] == ids


def test_locators_round_trip() -> None:
    for offset in (0, 1, 2000, 10_000, 1_234_567):
        assert decode_locator(encode_locator(offset)) == offset


# --------------------------------------------------------------------------- ingest jobs


def test_ingest_update_with_failing_rows(sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    sandbox.org.add_custom_field("Account", TIER)
    ids = _accounts(sandbox, 5)
    sandbox.org.update("Account", ids[3], {"Phone": "555-0100"})
    sandbox.app.faults.update(lock_ids={ids[2]}, lock_failures=0)
    records = [
        {"Id": ids[0], "Segsync_Tier__c": "Tier 1", "Phone": ""},
        {"Id": ids[1], "Segsync_Tier__c": "Gold", "Phone": ""},
        {"Id": ids[2], "Segsync_Tier__c": "Tier 2", "Phone": ""},
        {"Id": ids[3], "Segsync_Tier__c": "Tier 3", "Phone": "#N/A"},
        {"Id": "001notAnId", "Segsync_Tier__c": "Tier 1", "Phone": ""},
    ]

    [result] = sf.bulk2.Account.update(records=records, wait=0)

    assert result["numberRecordsProcessed"] == 5
    assert result["numberRecordsFailed"] == 3
    ok = _rows(sf.bulk2.Account.get_successful_records(result["job_id"]))
    failed = _rows(sf.bulk2.Account.get_failed_records(result["job_id"]))
    unprocessed = _rows(sf.bulk2.Account.get_unprocessed_records(result["job_id"]))
    assert [(r["sf__Id"], r["sf__Created"], r["Segsync_Tier__c"]) for r in ok] == [
        (ids[0], "false", "Tier 1"),
        (ids[3], "false", "Tier 3"),
    ]
    errors = {r["Id"]: r["sf__Error"] for r in failed}
    assert errors[ids[1]].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:")
    assert errors[ids[2]].startswith("UNABLE_TO_LOCK_ROW:")
    assert errors["001notAnId"].startswith("MALFORMED_ID:")
    assert unprocessed == []
    # Written rows changed; a blank cell left Phone alone, #N/A cleared it.
    assert sandbox.org.get("Account", ids[0])["Segsync_Tier__c"] == "Tier 1"
    assert sandbox.org.get("Account", ids[3]).get("Phone") is None
    assert sandbox.org.get("Account", ids[3])["Segsync_Tier__c"] == "Tier 3"
    assert sandbox.org.get("Account", ids[1]).get("Segsync_Tier__c") is None
    assert sandbox.org.get("Account", ids[2]).get("Segsync_Tier__c") is None


def test_ingest_reads_the_header_row_whatever_the_column_order(
    sandbox: SalesforceSandbox, sf: Salesforce, tmp_path: Path
) -> None:
    ids = _accounts(sandbox, 2)
    before = sandbox.org.get("Account", ids[0])["SystemModstamp"]
    # Stamps keep whole seconds: the update lands on the org's next second.
    sandbox.org.clock = lambda: time.time() + 1.0
    data = tmp_path / "accounts.csv"
    data.write_text(
        f"website,NumberOfEmployees,id\nhttps://a.example,120,{ids[0]}\n,,{ids[1]}\n",
        encoding="utf-8",
    )

    [result] = sf.bulk2.Account.update(csv_file=str(data), wait=0)

    assert result["numberRecordsFailed"] == 0
    account = sandbox.org.get("Account", ids[0])
    assert account["Website"] == "https://a.example"
    assert account["NumberOfEmployees"] == 120
    assert account["SystemModstamp"] > before
    assert sandbox.org.get("Account", ids[1])["NumberOfEmployees"] == 1


def test_ingest_with_an_unknown_column_fails_the_job_and_leaves_rows_unprocessed(
    sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    ids = _accounts(sandbox, 2)
    records = [{"Id": i, "Name": "Renamed", "Bogus__c": "x"} for i in ids]

    with pytest.raises(SalesforceOperationError, match="Field name not found : Bogus__c"):
        sf.bulk2.Account.update(records=records, wait=0)

    [job] = bulk_service(sandbox.app).jobs()
    assert job.state == "Failed"
    unprocessed = _rows(sf.bulk2.Account.get_unprocessed_records(job.id))
    assert sorted(r["Id"] for r in unprocessed) == sorted(ids)
    assert _rows(sf.bulk2.Account.get_failed_records(job.id)) == []
    assert all(sandbox.org.get("Account", i)["Name"] != "Renamed" for i in ids)


def test_wrong_type_and_read_only_fields_fail_per_row(
    sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    ids = _accounts(sandbox, 2)

    [result] = sf.bulk2.Account.update(
        records=[
            {"Id": ids[0], "NumberOfEmployees": "many", "CreatedDate": ""},
            {"Id": ids[1], "NumberOfEmployees": "", "CreatedDate": "2020-01-01T00:00:00Z"},
        ],
        wait=0,
    )

    assert result["numberRecordsFailed"] == 2
    errors = {
        r["sf__Id"]: r["sf__Error"]
        for r in _rows(sf.bulk2.Account.get_failed_records(result["job_id"]))
    }
    assert errors[ids[0]].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    assert errors[ids[1]].startswith("INVALID_FIELD_FOR_INSERT_UPDATE:")


def test_raw_ingest_flow_upload_201_abort_and_delete(sandbox: SalesforceSandbox) -> None:
    ids = _accounts(sandbox, 3)
    http = _raw(sandbox)
    url = _jobs_url(sandbox, "ingest")
    job = http.post(
        url,
        json={"object": "account", "operation": "update", "contentType": "CSV", "lineEnding": "LF"},
    ).json()
    assert (job["state"], job["object"]) == ("Open", "Account")
    assert job["contentUrl"].endswith(f"/jobs/ingest/{job['id']}/batches")

    body = "Id,Name\n" + "".join(f"{i},New {n}\n" for n, i in enumerate(ids))
    upload = http.put(f"{url}/{job['id']}/batches", data=body, headers={"Content-Type": "text/csv"})
    assert upload.status_code == 201
    again = http.put(f"{url}/{job['id']}/batches", data=body, headers={"Content-Type": "text/csv"})
    assert again.status_code == 409

    aborted = http.patch(f"{url}/{job['id']}", json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    info = http.get(f"{url}/{job['id']}").json()
    assert (info["state"], info["numberRecordsProcessed"]) == ("Aborted", 0)
    for suffix in ("unprocessedrecords/", "unprocessedRecords", "UNPROCESSEDRECORDS"):
        rows = _rows(http.get(f"{url}/{job['id']}/{suffix}").text)
        assert [r["Id"] for r in rows] == ids
    assert all(not sandbox.org.get("Account", i)["Name"].startswith("New") for i in ids)

    assert http.delete(f"{url}/{job['id']}").status_code == 204
    gone = http.get(f"{url}/{job['id']}")
    assert gone.status_code == 404
    assert gone.json()[0]["errorCode"] == "NOT_FOUND"


def test_ingest_job_validation(sandbox: SalesforceSandbox) -> None:
    http = _raw(sandbox)
    url = _jobs_url(sandbox, "ingest")

    def create(**body: Any) -> requests.Response:
        return http.post(url, json={"contentType": "CSV", **body})

    assert create(object="Campaign", operation="update").status_code == 400
    assert create(object="Account", operation="merge").status_code == 400
    assert create(object="Account", operation="update", lineEnding="CR").status_code == 400
    job = create(object="Account", operation="update").json()
    wrong_type = http.put(
        f"{url}/{job['id']}/batches", data="Id\n", headers={"Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 400
    assert http.get(f"{url}/7505g000000000ZZZZ").status_code == 404


def test_crlf_data_in_an_lf_job_fails_the_job(sandbox: SalesforceSandbox) -> None:
    ids = _accounts(sandbox, 2)
    bulk_service(sandbox.app).settings.polls_per_state = 0
    http = _raw(sandbox)
    url = _jobs_url(sandbox, "ingest")
    job = http.post(url, json={"object": "Account", "operation": "update"}).json()
    body = "Id,Name\r\n" + "".join(f"{i},X\r\n" for i in ids)
    http.put(f"{url}/{job['id']}/batches", data=body, headers={"Content-Type": "text/csv"})
    http.patch(f"{url}/{job['id']}", json={"state": "UploadComplete"})

    info = http.get(f"{url}/{job['id']}").json()

    assert info["state"] == "Failed"
    assert "LineEnding" in info["errorMessage"]


def test_ingest_log_records_the_uploaded_ids_and_fields(
    sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    ids = _accounts(sandbox, 2)
    sandbox.app.log.clear()

    sf.bulk2.Account.update(records=[{"Id": i, "Phone": "555"} for i in ids], wait=0)

    entries = sandbox.app.log.entries()
    [upload] = [e for e in entries if e.kind == "bulk.ingest.upload"]
    assert (upload.status, sorted(upload.records), upload.fields) == (201, sorted(ids), ("Phone",))
    assert [e.kind for e in entries[:3]] == [
        "bulk.ingest.create",
        "bulk.ingest.upload",
        "bulk.ingest.close",
    ]


def test_expired_session_is_refused(sandbox: SalesforceSandbox) -> None:
    sf = sandbox.client(session_id="00Dbogus!AQnotAToken")
    with pytest.raises(Exception) as refused:
        list(sf.bulk2.Account.query("SELECT Id FROM Account", wait=0))
    assert "INVALID_SESSION_ID" in str(refused.value)
    assert not isinstance(refused.value, SalesforceGeneralError)


def test_a_job_past_complete_after_completes_on_the_next_poll(sandbox: SalesforceSandbox) -> None:
    _accounts(sandbox, 2)
    settings = bulk_service(sandbox.app).settings
    settings.polls_per_state = 1000
    http = _raw(sandbox)
    url = _jobs_url(sandbox, "query")
    slow = http.post(url, json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
    assert http.get(f"{url}/{slow['id']}").json()["state"] == "UploadComplete"

    settings.complete_after = 0.0
    info = http.get(f"{url}/{slow['id']}").json()

    assert (info["state"], info["numberRecordsProcessed"]) == ("JobComplete", 2)


def test_an_ingest_job_takes_its_rows_over_the_rate_however_often_it_is_polled(
    sandbox: SalesforceSandbox,
) -> None:
    ids = _accounts(sandbox, 4)
    settings = bulk_service(sandbox.app).settings
    settings.polls_per_state = 0  # would complete on the first poll without the rate
    settings.ingest_rows_per_second = 2.0  # 4 rows: two seconds
    http = _raw(sandbox)
    url = _jobs_url(sandbox, "ingest")
    job = http.post(url, json={"object": "Account", "operation": "update"}).json()
    data = "Id,Name\n" + "".join(f"{i},Renamed {n}\n" for n, i in enumerate(ids))
    put = http.put(f"{url}/{job['id']}/batches", data=data, headers={"Content-Type": "text/csv"})
    assert put.status_code == 201
    http.patch(f"{url}/{job['id']}", json={"state": "UploadComplete"})

    early = [http.get(f"{url}/{job['id']}").json()["state"] for _ in range(3)]
    time.sleep(2.1)
    done = http.get(f"{url}/{job['id']}").json()

    assert early == ["InProgress"] * 3
    assert (done["state"], done["numberRecordsProcessed"], done["numberRecordsFailed"]) == (
        "JobComplete",
        4,
        0,
    )


def test_results_are_gzipped_for_clients_that_accept_it(sandbox: SalesforceSandbox) -> None:
    ids = _accounts(sandbox, 3)
    bulk_service(sandbox.app).settings.polls_per_state = 0
    http = _raw(sandbox)
    url = _jobs_url(sandbox, "query")
    job = http.post(url, json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
    http.get(f"{url}/{job['id']}")

    zipped = http.get(f"{url}/{job['id']}/results", headers={"Accept-Encoding": "gzip"})
    plain = http.get(f"{url}/{job['id']}/results", headers={"Accept-Encoding": "identity"})

    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain.headers
    assert [r["Id"] for r in _rows(zipped.text)] == [r["Id"] for r in _rows(plain.text)] == ids


def test_offset_and_count_are_refused_by_bulk_queries(sf: Salesforce) -> None:
    for soql in ("SELECT Id FROM Account LIMIT 5 OFFSET 2", "SELECT COUNT() FROM Account"):
        with pytest.raises(SalesforceMalformedRequest) as refused:
            list(sf.bulk2.Account.query(soql, wait=0))
        assert refused.value.content[0]["errorCode"] == "INVALIDJOB"
