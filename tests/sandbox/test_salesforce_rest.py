"""Contract tests: the real simple-salesforce against the Salesforce sandbox's REST API over HTTPS.

Expected shapes come from the documented wire formats (docs/crm-apis.md#salesforce).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from segsync_sandbox.salesforce import (
    CustomFieldSpec,
    Org,
    SalesforceSandbox,
    make_id,
    start_salesforce,
)
from segsync_sandbox.salesforce.org import RecordError, format_datetime

SF_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000")

TIER = CustomFieldSpec(
    "Account.Segsync_Tier__c",
    "Picklist",
    "Segsync Tier",
    picklist_values=("Tier 1", "Tier 2", "Tier 3"),
    restricted=True,
)
VERSION = CustomFieldSpec("Account.Segsync_Version__c", "Text", "Segsync Version", length=40)
FIT = CustomFieldSpec("Account.Segsync_Fit_Score__c", "Number", "Fit Score", precision=3, scale=0)


def provision(org: Org) -> None:
    for spec in (TIER, VERSION, FIT):
        org.add_custom_field("Account", spec)


def error_of(exc: Any) -> dict[str, Any]:
    content = exc.content
    assert isinstance(content, list) and content, content
    return dict(content[0])


# --------------------------------------------------------------------------- discovery


def test_versions_and_resources(sf_sandbox: SalesforceSandbox, sf_http: requests.Session) -> None:
    versions = sf_http.get(f"{sf_sandbox.instance_url}/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    assert min(float(v["version"]) for v in versions) == 52.0
    assert max(float(v["version"]) for v in versions) >= 59.0

    headers = {"Authorization": f"Bearer {sf_sandbox.access_token}"}
    resources = sf_http.get(f"{sf_sandbox.instance_url}/services/data/v59.0/", headers=headers)
    assert resources.json()["query"] == "/services/data/v59.0/query"
    old = sf_http.get(f"{sf_sandbox.instance_url}/services/data/v51.0/limits/", headers=headers)
    assert old.status_code == 404
    assert old.json()[0]["errorCode"] == "NOT_FOUND"


def test_an_older_supported_version_works(sf_sandbox: SalesforceSandbox) -> None:
    sf = sf_sandbox.client(version="52.0")
    account_id = sf_sandbox.org.insert("Account", {"Name": "Old"})
    result = sf.query("SELECT Id FROM Account")
    assert result["records"][0]["attributes"]["url"].startswith("/services/data/v52.0/")
    record = sf.Account.get(account_id)
    assert record["attributes"]["url"] == f"/services/data/v52.0/sobjects/Account/{account_id}"
    newer = sf_sandbox.client(version="62.0")
    assert newer.query("SELECT Id FROM Account")["totalSize"] == 1


def test_global_describe_lists_account_and_contact(sf: Salesforce) -> None:
    names = {s["name"]: s for s in sf.describe()["sobjects"]}
    assert names["Account"]["keyPrefix"] == "001"
    assert names["Contact"]["keyPrefix"] == "003"
    assert names["Account"]["queryable"] is True


def test_describe_fresh_org_has_inputs_but_no_outputs(sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    for name in ("Id", "Name", "Website", "Industry", "Type", "NumberOfEmployees"):
        assert name in fields
    for name in ("AnnualRevenue", "BillingCountry", "OwnerId", "LastActivityDate"):
        assert name in fields
    assert not [n for n in fields if n.startswith("Segsync_") and n != "Segsync_Lock__c"]
    assert fields["Industry"]["type"] == "picklist"
    assert fields["Industry"]["restrictedPicklist"] is False
    assert fields["NumberOfEmployees"]["type"] == "int"
    assert fields["AnnualRevenue"]["type"] == "currency"
    assert fields["Tech_Stack__c"]["type"] == "multipicklist"
    assert fields["Tech_Stack__c"]["custom"] is True
    assert "Snowflake" in {p["value"] for p in fields["Tech_Stack__c"]["picklistValues"]}
    assert fields["Intent_Score__c"]["type"] == "double"
    assert fields["Segsync_Lock__c"]["type"] == "boolean"
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["Name"]["length"] == 255

    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert contact["AccountId"]["referenceTo"] == ["Account"]
    assert contact["AccountId"]["relationshipName"] == "Account"
    assert [p["value"] for p in contact["Seniority__c"]["picklistValues"]] == [
        "Executive",
        "VP",
        "Director",
        "Manager",
        "Individual Contributor",
    ]


def test_describe_shows_custom_fields_once_created(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    provision(sf_sandbox.org)
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    tier = fields["Segsync_Tier__c"]
    assert tier["type"] == "picklist"
    assert tier["restrictedPicklist"] is True
    assert tier["updateable"] is True
    assert [p["value"] for p in tier["picklistValues"]] == ["Tier 1", "Tier 2", "Tier 3"]
    assert {"value", "label", "active", "defaultValue"} <= set(tier["picklistValues"][0])
    assert fields["Segsync_Version__c"]["length"] == 40
    assert fields["Segsync_Fit_Score__c"]["precision"] == 3
    assert fields["Segsync_Fit_Score__c"]["scale"] == 0


def test_describe_unknown_object_is_404(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Campaign.describe()
    assert error_of(info.value)["errorCode"] == "NOT_FOUND"


# --------------------------------------------------------------------------- limits


def test_limit_info_header_on_every_response_feeds_api_usage(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    sf.query("SELECT Id FROM Account")
    first = sf.api_usage["api-usage"]
    sf.query("SELECT Id FROM Account")
    second = sf.api_usage["api-usage"]
    assert first.total == 100_000
    assert second.used == first.used + 1
    account = sf.Account
    account.describe()
    assert account.api_usage["api-usage"].used == second.used + 1
    limits = sf.limits()["DailyApiRequests"]
    assert limits == {"Max": 100_000, "Remaining": 100_000 - sf_sandbox.org.usage()[0]}


def test_error_responses_carry_limit_info(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    response = sf_http.get(
        f"{sf_sandbox.instance_url}/services/data/v59.0/query/",
        params={"q": "SELECT Nope FROM Account"},
        headers={"Authorization": f"Bearer {sf_sandbox.access_token}"},
    )
    assert response.status_code == 400
    assert re.fullmatch(r"api-usage=\d+/100000", response.headers["Sforce-Limit-Info"])


def test_daily_allocation_runs_out(sf_sandbox: SalesforceSandbox) -> None:
    org = sf_sandbox.reset(Org(daily_api_limit=5))
    sf = sf_sandbox.client()
    for _ in range(5):
        sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"] == (5, 5)
    with pytest.raises(SalesforceRefusedRequest) as info:
        sf.query("SELECT Id FROM Account")
    assert error_of(info.value) == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
    }
    org.set_usage(0)
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0


# --------------------------------------------------------------------------- query


def test_query_projects_fields_in_record_format(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    account_id = sf_sandbox.org.insert(
        "Account", {"Name": "Acme", "NumberOfEmployees": 250, "Tech_Stack__c": "AWS;Slack"}
    )
    result = sf.query(
        "SELECT Id, Name, NumberOfEmployees, Tech_Stack__c, Website, SystemModstamp FROM Account"
    )
    assert result["totalSize"] == 1
    assert result["done"] is True
    assert "nextRecordsUrl" not in result
    record = result["records"][0]
    assert record["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v59.0/sobjects/Account/{account_id}",
    }
    assert record["Id"] == account_id
    assert record["NumberOfEmployees"] == 250
    assert record["Tech_Stack__c"] == "AWS;Slack"
    assert record["Website"] is None
    assert SF_DATETIME.fullmatch(record["SystemModstamp"])


def test_query_parent_fields_and_filters(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    org = sf_sandbox.org
    acme = org.insert("Account", {"Name": "Acme"})
    org.insert("Contact", {"LastName": "Doe", "FirstName": "Jane", "AccountId": acme})
    org.insert("Contact", {"LastName": "Orphan"})
    result = sf.query(
        "SELECT Id, Name, Account.Name FROM Contact WHERE LastName != null ORDER BY LastName"
    )
    rows = result["records"]
    assert [r["Name"] for r in rows] == ["Jane Doe", "Orphan"]
    assert rows[0]["Account"]["Name"] == "Acme"
    assert rows[0]["Account"]["attributes"]["type"] == "Account"
    assert rows[1]["Account"] is None


def test_query_datetime_literal_filters_on_modstamp(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, fake_clock: Any, clocked_org: Org
) -> None:
    early = clocked_org.insert("Account", {"Name": "early"})
    fake_clock.advance(3600)
    late = clocked_org.insert("Account", {"Name": "late"})
    cut = datetime.fromtimestamp(fake_clock.now - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = sf.query(f"SELECT Id FROM Account WHERE SystemModstamp >= {cut}")
    assert [r["Id"] for r in result["records"]] == [late]
    assert early != late


def test_query_all_includes_deleted(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    keep = sf_sandbox.org.insert("Account", {"Name": "keep"})
    gone = sf_sandbox.org.insert("Account", {"Name": "gone"})
    sf_sandbox.org.delete("Account", gone)
    assert [r["Id"] for r in sf.query("SELECT Id FROM Account")["records"]] == [keep]
    rows = sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)["records"]
    assert {(r["Id"], r["IsDeleted"]) for r in rows} == {(keep, False), (gone, True)}


def test_count_query(sf_sandbox: SalesforceSandbox, sf: Salesforce, add_accounts: Any) -> None:
    add_accounts(7)
    result = sf.query("SELECT COUNT() FROM Account WHERE NumberOfEmployees >= 30")
    assert result["totalSize"] == 4
    assert result["records"] == []


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM", "MALFORMED_QUERY"),
        ("SELECT Id, Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Campaign", "INVALID_TYPE"),
    ],
)
def test_query_errors(sf: Salesforce, soql: str, code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(soql)
    error = error_of(info.value)
    assert error["errorCode"] == code
    assert error["message"]


def test_query_without_q_is_malformed(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("query/")
    assert error_of(info.value)["errorCode"] == "MALFORMED_QUERY"


@pytest.mark.parametrize(
    ("total", "pages"), [(2000, [2000]), (2001, [2000, 1]), (4000, [2000, 2000])]
)
def test_query_more_paging_edges(
    sf_sandbox: SalesforceSandbox,
    sf: Salesforce,
    add_accounts: Callable[[int], list[str]],
    total: int,
    pages: list[int],
) -> None:
    ids = add_accounts(total)
    result = sf.query("SELECT Id, Name FROM Account")
    seen: list[str] = []
    sizes = []
    while True:
        assert result["totalSize"] == total
        sizes.append(len(result["records"]))
        seen.extend(r["Id"] for r in result["records"])
        if result["done"]:
            assert "nextRecordsUrl" not in result
            break
        next_url = result["nextRecordsUrl"]
        assert re.fullmatch(r"/services/data/v59\.0/query/01g[A-Za-z0-9]+-\d+", next_url)
        assert next_url.endswith(f"-{len(seen)}")
        result = sf.query_more(next_url, identifier_is_url=True)
    assert sizes == pages
    assert seen == ids
    assert sf_sandbox.app.open_cursors() == 0


def test_query_all_iter_walks_pages(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, add_accounts: Callable[[int], list[str]]
) -> None:
    ids = add_accounts(2500)
    sf_sandbox.org.delete("Account", ids[0])
    rows = list(sf.query_all_iter("SELECT Id FROM Account", include_deleted=True))
    assert [r["Id"] for r in rows] == ids
    kinds = [e.kind for e in sf_sandbox.app.log.entries()]
    assert kinds == ["queryAll", "queryMore"]
    assert "/queryAll/" in sf_sandbox.app.log.entries()[-1].path


def test_batch_size_header_is_honored_and_clamped(
    sf: Salesforce, add_accounts: Callable[[int], list[str]]
) -> None:
    add_accounts(700)
    result = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=500"})
    assert len(result["records"]) == 500
    more = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True)
    assert len(more["records"]) == 200
    assert more["done"] is True
    tiny = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(tiny["records"]) == 200


def test_two_long_text_fields_cap_pages_at_200(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, add_accounts: Callable[[int], list[str]]
) -> None:
    for name in ("Segsync_Reason__c", "Notes__c"):
        sf_sandbox.org.add_custom_field(
            "Account", CustomFieldSpec(f"Account.{name}", "LongTextArea", name[:-3], length=32768)
        )
    add_accounts(450)
    one = sf.query("SELECT Id, Segsync_Reason__c FROM Account")
    assert len(one["records"]) == 450
    two = sf.query("SELECT Id, Segsync_Reason__c, Notes__c FROM Account")
    assert len(two["records"]) == 200
    rest = list(sf.query_all_iter("SELECT Id, Segsync_Reason__c, Notes__c FROM Account"))
    assert len(rest) == 450


def _query_sub(ref: str, soql: str) -> dict[str, str]:
    return {
        "method": "GET",
        "url": f"/services/data/v59.0/query/?q={quote_plus(soql)}",
        "referenceId": ref,
    }


def test_keyset_pages_of_one_long_text_each_in_one_composite_call(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, add_accounts: Callable[[int], list[str]]
) -> None:
    """A COUNT() and two keyset queries of one long text area each: 2,000 rows apiece, one call.

    ``Id >`` compares ids, a parenthesized OR mixes with AND, LIMIT stops the
    answer (done, no query locator left open), and the hook runs after each
    subrequest.
    """
    for name in ("Segsync_Reason__c", "Notes__c"):
        sf_sandbox.org.add_custom_field(
            "Account", CustomFieldSpec(f"Account.{name}", "LongTextArea", name[:-3], length=32768)
        )
    ids = add_accounts(2500)
    order = [
        r["Id"]
        for r in sf.query_all("SELECT Id FROM Account ORDER BY SystemModstamp, Id")["records"]
    ]
    assert sorted(order) == sorted(ids)
    served: list[str] = []
    sf_sandbox.app.after_subrequest = served.append
    used_before = sf_sandbox.org.usage()[0]
    page = "ORDER BY SystemModstamp, Id LIMIT 2000"
    body = {
        "compositeRequest": [
            _query_sub("n", "SELECT COUNT() FROM Account WHERE Name != null"),
            _query_sub("a", f"SELECT Id, SystemModstamp, Segsync_Reason__c FROM Account {page}"),
            _query_sub("b", f"SELECT Id, SystemModstamp, Notes__c FROM Account {page}"),
        ]
    }
    responses = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert sf_sandbox.org.usage()[0] == used_before + 1
    assert served == ["n", "a", "b"]
    count, first, second = (r["body"] for r in responses)
    assert count == {"totalSize": 2500, "done": True, "records": []}
    for answer in (first, second):
        assert answer["done"] is True and "nextRecordsUrl" not in answer
        assert [r["Id"] for r in answer["records"]] == order[:2000]
    assert sf_sandbox.app.open_cursors() == 0
    last = first["records"][-1]
    stamp = last["SystemModstamp"].replace(".000+0000", "Z")
    after = (
        f"SELECT Id FROM Account WHERE Name != null AND (SystemModstamp > {stamp} OR "
        f"(SystemModstamp = {stamp} AND Id > '{last['Id']}')) {page}"
    )
    rest = sf.query(after)
    assert [r["Id"] for r in rest["records"]] == order[2000:]
    # The 15-character form compares alike (ids compare case-sensitively on it).
    short = sf.query(after.replace(last["Id"], last["Id"][:15]))
    assert [r["Id"] for r in short["records"]] == order[2000:]


def test_query_more_retry_repeats_page_and_bad_locator_fails(
    sf: Salesforce, add_accounts: Callable[[int], list[str]]
) -> None:
    add_accounts(5000)
    first = sf.query("SELECT Id FROM Account ORDER BY Name DESC")
    url = first["nextRecordsUrl"]
    second = sf.query_more(url, identifier_is_url=True)
    again = sf.query_more(url, identifier_is_url=True)
    assert [r["Id"] for r in again["records"]] == [r["Id"] for r in second["records"]]
    names = [r["Id"] for r in first["records"] + second["records"]]
    assert len(set(names)) == 4000
    cursor = url.rsplit("/", 1)[1].split("-")[0]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more(f"{cursor}-9999", identifier_is_url=False)
    assert error_of(info.value)["errorCode"] == "INVALID_QUERY_LOCATOR"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more("01gAAAAAAAAAAAAAAA-2000")
    assert error_of(info.value)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_oldest_cursor_is_released_past_ten(
    sf: Salesforce, add_accounts: Callable[[int], list[str]]
) -> None:
    add_accounts(2001)
    urls = [sf.query("SELECT Id FROM Account")["nextRecordsUrl"] for _ in range(11)]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more(urls[0], identifier_is_url=True)
    assert error_of(info.value)["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert len(sf.query_more(urls[1], identifier_is_url=True)["records"]) == 1


def test_expired_cursor_is_invalid(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, add_accounts: Callable[[int], list[str]]
) -> None:
    add_accounts(2001)
    first = sf.query("SELECT Id FROM Account")
    sf_sandbox.app.cursor_ttl_seconds = -1.0
    try:
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    finally:
        sf_sandbox.app.cursor_ttl_seconds = 900.0
    assert error_of(info.value)["errorCode"] == "INVALID_QUERY_LOCATOR"


# --------------------------------------------------------------------------- sObject rows


def test_get_record_and_fields_param(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    account_id = sf_sandbox.org.insert("Account", {"Name": "Acme", "Industry": "Retail"})
    account = sf.Account
    record = account.get(account_id)
    assert record["Name"] == "Acme"
    assert record["Website"] is None
    assert record["attributes"]["type"] == "Account"
    subset = sf.restful(f"sobjects/Account/{account_id}", params={"fields": "Name,Industry"})
    assert set(subset) == {"attributes", "Name", "Industry"}


def test_create_and_delete_record(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    created = sf.Contact.create({"LastName": "Doe", "FirstName": "Jane", "Seniority__c": "VP"})
    assert created["success"] is True
    record = sf.Contact.get(created["id"])
    assert record["Name"] == "Jane Doe"
    assert record["IsDeleted"] is False
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Contact.create({"FirstName": "No Last Name"})
    assert error_of(info.value)["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.Contact.delete(created["id"]) == 204
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 0
    assert sf.query_all("SELECT Id FROM Contact", include_deleted=True)["totalSize"] == 1


def test_fifteen_character_ids_are_accepted(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    account_id = sf_sandbox.org.insert("Account", {"Name": "Acme"})
    assert sf.Account.get(account_id[:15])["Id"] == account_id
    sf.Account.update(account_id[:15], {"Name": "Acme 2"})
    assert sf_sandbox.org.get("Account", account_id)["Name"] == "Acme 2"  # type: ignore[index]


def test_get_record_errors(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Account.get(make_id("Account", 999))
    assert error_of(info.value)["errorCode"] == "NOT_FOUND"
    gone = sf_sandbox.org.insert("Account", {"Name": "gone"})
    sf_sandbox.org.delete("Account", gone)
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Account.get(gone)
    assert error_of(info.value)["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.get(make_id("Contact", 1))
    assert error_of(info.value)["errorCode"] == "MALFORMED_ID"


def test_patch_record_updates_and_advances_stamps(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, fake_clock: Any, clocked_org: Org
) -> None:
    provision(clocked_org)
    account_id = clocked_org.insert("Account", {"Name": "Acme"})
    before = clocked_org.get("Account", account_id)
    assert before is not None
    fake_clock.advance(1)  # stamps keep whole seconds: the update's is a second later
    status = sf.Account.update(
        account_id, {"Segsync_Tier__c": "Tier 1", "Segsync_Fit_Score__c": 42}
    )
    assert status == 204
    after = sf.Account.get(account_id)
    assert after["Segsync_Tier__c"] == "Tier 1"
    assert after["Segsync_Fit_Score__c"] == 42.0
    assert isinstance(after["Segsync_Fit_Score__c"], float)
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["CreatedDate"] == before["CreatedDate"]
    sf.Account.update(account_id, {"Segsync_Tier__c": None})
    assert sf.Account.get(account_id)["Segsync_Tier__c"] is None
    entry = sf_sandbox.app.log.entries()[-2]
    assert entry.kind == "sobject.update"
    assert entry.records == (account_id,)
    assert entry.fields == ("Segsync_Tier__c",)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"Segsync_Tier__c": "Tier 9"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"Segsync_Version__c": "x" * 41}, "STRING_TOO_LONG"),
        ({"Segsync_Segment__c": "SMB"}, "INVALID_FIELD"),
        ({"NumberOfEmployees": "many"}, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ({"Segsync_Fit_Score__c": 1000}, "NUMBER_OUTSIDE_VALID_RANGE"),
        ({"SystemModstamp": "2026-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Name": None}, "REQUIRED_FIELD_MISSING"),
    ],
)
def test_patch_record_validation(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, fields: dict[str, Any], code: str
) -> None:
    provision(sf_sandbox.org)
    account_id = sf_sandbox.org.insert("Account", {"Name": "Acme"})
    before = sf_sandbox.org.get("Account", account_id)
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.update(account_id, fields)
    error = error_of(info.value)
    assert error["errorCode"] == code
    assert "fields" in error
    assert sf_sandbox.org.get("Account", account_id) == before


def test_unknown_field_message_matches_salesforce(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    account_id = sf_sandbox.org.insert("Account", {"Name": "Acme"})
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.update(account_id, {"Segsync_Tier__c": "Tier 1"})
    assert error_of(info.value)["message"] == (
        "No such column 'Segsync_Tier__c' on sobject of type Account"
    )


def test_patch_missing_or_deleted_record(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.update(make_id("Account", 4242), {"Name": "x"})
    gone = sf_sandbox.org.insert("Account", {"Name": "gone"})
    sf.Account.delete(gone)
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Account.update(gone, {"Name": "x"})
    assert error_of(info.value)["errorCode"] == "ENTITY_IS_DELETED"


def test_stamps_keep_whole_seconds_and_writes_in_one_second_share_them(fake_clock: Any) -> None:
    """SystemModstamp keeps whole seconds (``.000``): writes in one second carry one stamp."""
    fake_clock.now = 1_795_000_000.25
    org = Org(clock=fake_clock)
    a = org.insert("Account", {"Name": "a"})
    stamps = []
    for i in range(5):
        fake_clock.advance(0.1)  # 0.35 … 0.75: still the same second
        org.update("Account", a, {"Name": f"a{i}"})
        record = org.get("Account", a)
        assert record is not None
        stamps.append(record["SystemModstamp"])
        assert record["LastModifiedDate"] == record["SystemModstamp"]
    assert set(stamps) == {"2026-11-18T11:06:40.000+0000"}
    fake_clock.advance(0.5)  # the next second
    org.update("Account", a, {"Name": "later"})
    later = org.get("Account", a)
    assert later is not None and later["SystemModstamp"] == "2026-11-18T11:06:41.000+0000"
    fake_clock.advance(-30)  # a clock stepping back never moves a stamp back
    org.update("Account", a, {"Name": "back"})
    back = org.get("Account", a)
    assert back is not None and back["SystemModstamp"] == later["SystemModstamp"]
    assert all(SF_DATETIME.fullmatch(s) for s in stamps)


# --------------------------------------------------------------------------- collections


def _collection(records: list[dict[str, Any]], all_or_none: bool = False) -> dict[str, Any]:
    return {"allOrNone": all_or_none, "records": records}


def test_collections_partial_failure_lands_batch_mates(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    org = sf_sandbox.org
    provision(org)
    ids = [org.insert("Account", {"Name": f"A{i}"}) for i in range(8)]
    org.delete("Account", ids[4])
    sf_sandbox.app.faults.update(lock_ids={ids[5]}, lock_failures=0)
    payload = [
        {"attributes": {"type": "Account"}, "id": ids[0], "Segsync_Tier__c": "Tier 1"},
        {"attributes": {"type": "Account"}, "id": ids[1], "Segsync_Tier__c": "Platinum"},
        {"attributes": {"type": "Account"}, "id": ids[2], "Segsync_Version__c": "v" * 41},
        {"attributes": {"type": "Account"}, "id": ids[3], "Bogus__c": "x"},
        {"attributes": {"type": "Account"}, "id": ids[4], "Segsync_Tier__c": "Tier 2"},
        {"attributes": {"type": "Account"}, "id": ids[5], "Segsync_Tier__c": "Tier 2"},
        {"attributes": {"type": "Account"}, "id": ids[6], "Segsync_Tier__c": "Tier 3"},
        {"attributes": {"type": "Account"}, "Segsync_Tier__c": "Tier 3"},
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json=_collection(payload))
    assert len(results) == len(payload)
    assert [r["success"] for r in results] == [True, False, False, False, False, False, True, False]
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
    assert codes == [
        None,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "STRING_TOO_LONG",
        "INVALID_FIELD",
        "ENTITY_IS_DELETED",
        "UNABLE_TO_LOCK_ROW",
        None,
        "MISSING_ARGUMENT",
    ]
    assert results[1]["errors"][0]["fields"] == ["Segsync_Tier__c"]
    assert all("id" not in r for r in results if not r["success"])
    assert all(set(e) == {"statusCode", "message", "fields"} for r in results for e in r["errors"])
    assert org.get("Account", ids[0])["Segsync_Tier__c"] == "Tier 1"  # type: ignore[index]
    assert org.get("Account", ids[6])["Segsync_Tier__c"] == "Tier 3"  # type: ignore[index]
    assert "Segsync_Tier__c" not in org.get("Account", ids[1])  # type: ignore[operator]
    assert "Segsync_Tier__c" not in org.get("Account", ids[5])  # type: ignore[operator]
    entry = sf_sandbox.app.log.entries()[-1]
    assert entry.kind == "collections.update"
    assert entry.records == tuple(ids[:7])
    assert set(entry.fields) == {"Segsync_Tier__c", "Segsync_Version__c", "Bogus__c"}


def test_collections_lock_clears_after_configured_failures(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    provision(sf_sandbox.org)
    account_id = sf_sandbox.org.insert("Account", {"Name": "A"})
    sf_sandbox.app.faults.update(lock_ids={account_id}, lock_failures=1)
    payload = _collection(
        [{"attributes": {"type": "Account"}, "id": account_id, "Segsync_Tier__c": "Tier 2"}]
    )
    first = sf.restful("composite/sobjects", method="PATCH", json=payload)
    assert first[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    second = sf.restful("composite/sobjects", method="PATCH", json=payload)
    assert second[0]["success"] is True


def test_collections_all_or_none_rolls_back(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    org = sf_sandbox.org
    provision(org)
    ids = [org.insert("Account", {"Name": f"A{i}"}) for i in range(3)]
    before = [org.get("Account", i) for i in ids]
    payload = [
        {"attributes": {"type": "Account"}, "id": ids[0], "Segsync_Tier__c": "Tier 1"},
        {"attributes": {"type": "Account"}, "id": ids[1], "Segsync_Tier__c": "Nope"},
        {"attributes": {"type": "Account"}, "id": ids[2], "Segsync_Tier__c": "Tier 3"},
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json=_collection(payload, True))
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[2]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert [org.get("Account", i) for i in ids] == before

    payload[1]["Segsync_Tier__c"] = "Tier 2"
    results = sf.restful("composite/sobjects", method="PATCH", json=_collection(payload, True))
    assert all(r["success"] for r in results)
    stamps = {org.get("Account", i)["SystemModstamp"] for i in ids}  # type: ignore[index]
    assert len(stamps) == 1  # one transaction, one stamp


def test_collections_mixed_objects(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    org = sf_sandbox.org
    account = org.insert("Account", {"Name": "A"})
    contact = org.insert("Contact", {"LastName": "C"})
    payload = [
        {"attributes": {"type": "Account"}, "id": account, "Industry": "Media"},
        {"attributes": {"type": "Contact"}, "id": contact, "Seniority__c": "VP"},
        {"attributes": {"type": "Contact"}, "id": account, "Seniority__c": "VP"},
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json=_collection(payload))
    assert [r["success"] for r in results] == [True, True, False]
    assert results[2]["errors"][0]["statusCode"] == "MALFORMED_ID"


def test_collections_more_than_200_records_is_refused(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    account_id = sf_sandbox.org.insert("Account", {"Name": "A"})
    payload = [{"attributes": {"type": "Account"}, "id": account_id, "Name": "x"}] * 201
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="PATCH", json=_collection(payload))
    assert error_of(info.value) == {
        "message": "record limit reached. cannot submit more than 200 records into this call",
        "errorCode": "EXCEEDED_ID_LIMIT",
    }


def test_collections_need_attributes_type(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    account_id = sf_sandbox.org.insert("Account", {"Name": "A"})
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite/sobjects", method="PATCH", json=_collection([{"id": account_id}]))


def test_collections_get(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    a = sf_sandbox.org.insert("Account", {"Name": "A"})
    rows = sf.restful(
        "composite/sobjects/Account",
        params={"ids": f"{a},{make_id('Account', 777)}", "fields": "Id,Name"},
    )
    assert rows[0]["Name"] == "A"
    assert rows[1] is None


# --------------------------------------------------------------------------- composite


def test_composite_counts_as_one_call_and_resolves_references(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    org = sf_sandbox.org
    provision(org)
    ids = [org.insert("Account", {"Name": f"A{i}"}) for i in range(3)]
    used_before = org.usage()[0]
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "GET",
                "url": "/services/data/v59.0/query/?q=SELECT+Id+FROM+Account+ORDER+BY+Name",
                "referenceId": "q",
            },
            {
                "method": "PATCH",
                "url": "/services/data/v59.0/composite/sobjects",
                "referenceId": "write",
                "body": _collection(
                    [
                        {
                            "attributes": {"type": "Account"},
                            "id": i,
                            "Segsync_Tier__c": "Tier 2",
                        }
                        for i in ids
                    ]
                ),
            },
            {
                "method": "GET",
                "url": "/services/data/v59.0/sobjects/Account/@{q.records[0].Id}",
                "referenceId": "first",
            },
        ],
    }
    result = sf.restful("composite", method="POST", json=body)
    responses = result["compositeResponse"]
    assert [r["referenceId"] for r in responses] == ["q", "write", "first"]
    assert [r["httpStatusCode"] for r in responses] == [200, 200, 200]
    assert responses[0]["body"]["totalSize"] == 3
    assert all(r["success"] for r in responses[1]["body"])
    assert responses[2]["body"]["Id"] == ids[0]
    assert responses[2]["body"]["Segsync_Tier__c"] == "Tier 2"
    assert set(responses[0]) == {"body", "httpHeaders", "httpStatusCode", "referenceId"}
    assert org.usage()[0] == used_before + 1
    entry = sf_sandbox.app.log.entries()[-1]
    assert entry.kind == "composite"
    assert set(ids) <= set(entry.records)
    assert entry.fields == ("Segsync_Tier__c",)


def test_composite_all_or_none_rolls_back_every_subrequest(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    org = sf_sandbox.org
    provision(org)
    a, b = (org.insert("Account", {"Name": n}) for n in ("A", "B"))
    before = org.get("Account", a)
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"/services/data/v59.0/sobjects/Account/{a}",
                "referenceId": "ok",
                "body": {"Segsync_Tier__c": "Tier 1"},
            },
            {
                "method": "PATCH",
                "url": f"/services/data/v59.0/sobjects/Account/{b}",
                "referenceId": "bad",
                "body": {"Segsync_Tier__c": "Gold"},
            },
        ],
    }
    responses = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert responses[0]["httpStatusCode"] == 400
    assert responses[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert responses[1]["httpStatusCode"] == 400
    assert responses[1]["body"][0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert org.get("Account", a) == before

    body["allOrNone"] = False
    responses = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [204, 400]
    assert responses[0]["body"] is None
    assert org.get("Account", a)["Segsync_Tier__c"] == "Tier 1"  # type: ignore[index]


def test_composite_limits(sf: Salesforce) -> None:
    sub = {"method": "GET", "url": "/services/data/v59.0/limits/", "referenceId": "r"}
    too_many = [dict(sub, referenceId=f"r{i}") for i in range(26)]
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": too_many})
    queries = [
        {
            "method": "GET",
            "url": "/services/data/v59.0/query/?q=SELECT+Id+FROM+Account",
            "referenceId": f"q{i}",
        }
        for i in range(6)
    ]
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": queries})


def test_composite_reference_to_failed_subrequest_halts(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    body = {
        "compositeRequest": [
            {
                "method": "GET",
                "url": "/services/data/v59.0/sobjects/Account/001000000000zzzAAA",
                "referenceId": "missing",
            },
            {
                "method": "GET",
                "url": "/services/data/v59.0/sobjects/Account/@{missing.Id}",
                "referenceId": "child",
            },
        ]
    }
    responses = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert responses[0]["httpStatusCode"] == 404
    assert responses[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"


# --------------------------------------------------------------------------- sessions


def test_expired_session_then_new_token(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    sf_sandbox.app.faults.update(session_expiry_after=2)
    token = sf_sandbox.new_access_token()
    sf = sf_sandbox.client(token)
    sf.query("SELECT Id FROM Account")
    sf.query("SELECT Id FROM Account")
    with pytest.raises(SalesforceExpiredSession) as info:
        sf.query("SELECT Id FROM Account")
    assert error_of(info.value) == {
        "message": "Session expired or invalid",
        "errorCode": "INVALID_SESSION_ID",
    }
    used = sf_sandbox.org.usage()[0]
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")
    assert sf_sandbox.org.usage()[0] == used  # refused calls are not counted
    response = sf_http.post(
        sf_sandbox.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sf_sandbox.client_id,
            "client_secret": sf_sandbox.client_secret,
        },
    )
    fresh = sf_sandbox.client(response.json()["access_token"])
    assert fresh.query("SELECT Id FROM Account")["totalSize"] == 0


def test_missing_or_unknown_token_is_401(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    url = f"{sf_sandbox.instance_url}/services/data/v59.0/limits/"
    assert sf_http.get(url).status_code == 401
    response = sf_http.get(url, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"


# --------------------------------------------------------------------------- faults


def test_injected_rate_limit_and_server_errors(
    sf_sandbox: SalesforceSandbox, sf: Salesforce
) -> None:
    sf_sandbox.app.faults.update(rate_limit_next=1)
    with pytest.raises(SalesforceRefusedRequest) as info:
        sf.query("SELECT Id FROM Account")
    assert error_of(info.value)["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert sf.query("SELECT Id FROM Account")["done"] is True

    sf_sandbox.app.faults.update(error_rate=1.0, retry_after=3)
    statuses = set()
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as general:
            sf.query("SELECT Id FROM Account")
        statuses.add(general.value.status)
        assert error_of(general.value)["errorCode"] in ("UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE")
    assert statuses == {500, 503}


def test_retry_after_header_only_when_configured(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    url = f"{sf_sandbox.instance_url}/services/data/v59.0/limits/"
    headers = {"Authorization": f"Bearer {sf_sandbox.access_token}"}
    sf_sandbox.app.faults.update(rate_limit_next=1)
    assert "Retry-After" not in sf_http.get(url, headers=headers).headers
    sf_sandbox.app.faults.update(rate_limit_next=1, retry_after=2.5)
    response = sf_http.get(url, headers=headers)
    assert response.status_code == 403
    assert response.headers["Retry-After"] == "2.5"


def test_validation_failure_fault(sf_sandbox: SalesforceSandbox, sf: Salesforce) -> None:
    account_id = sf_sandbox.org.insert("Account", {"Name": "A"})
    sf_sandbox.app.faults.update(validation_failures={account_id: "Tier must be set by RevOps"})
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.update(account_id, {"Name": "B"})
    assert error_of(info.value) == {
        "message": "Tier must be set by RevOps",
        "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "fields": [],
    }


# --------------------------------------------------------------------------- replication


def test_get_updated_and_deleted(
    sf_sandbox: SalesforceSandbox, sf: Salesforce, fake_clock: Any, clocked_org: Org
) -> None:
    start = datetime.fromtimestamp(fake_clock.now, UTC)
    a = clocked_org.insert("Account", {"Name": "a"})
    b = clocked_org.insert("Account", {"Name": "b"})
    fake_clock.advance(600)
    clocked_org.update("Account", a, {"Name": "a2"})
    clocked_org.delete("Account", b)
    fake_clock.advance(600)
    end = datetime.fromtimestamp(fake_clock.now, UTC) + timedelta(minutes=5)
    account = sf.Account
    updated = account.updated(start - timedelta(minutes=1), end)
    assert updated["ids"] == [a]
    assert SF_DATETIME.fullmatch(updated["latestDateCovered"])
    assert updated["latestDateCovered"] <= format_datetime(
        datetime.fromtimestamp(fake_clock.now, UTC)
    )
    deleted = account.deleted(start - timedelta(minutes=1), end)
    assert [d["id"] for d in deleted["deletedRecords"]] == [b]
    assert SF_DATETIME.fullmatch(deleted["deletedRecords"][0]["deletedDate"])
    assert deleted["earliestDateAvailable"] < deleted["latestDateCovered"]
    narrow = account.updated(start - timedelta(minutes=1), start + timedelta(minutes=2))
    assert narrow["ids"] == []  # a's last write is outside the window; b is deleted


def test_delete_and_undelete_move_the_stamp_and_queryall_counts_deleted_rows(
    sf: Salesforce, fake_clock: Any, clocked_org: Org
) -> None:
    """Deleting moves SystemModstamp (queryAll shows the row); undelete moves it again."""
    a = clocked_org.insert("Account", {"Name": "a"})
    b = clocked_org.insert("Account", {"Name": "b"})
    fake_clock.advance(60)
    sf.Account.delete(b)
    deleted_at = datetime.fromtimestamp(fake_clock.now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    since = f"SELECT COUNT() FROM Account WHERE SystemModstamp >= {deleted_at}"
    assert sf.query(since)["totalSize"] == 0
    assert sf.query(since, include_deleted=True)["totalSize"] == 1
    rows = sf.query(
        f"SELECT Id, IsDeleted FROM Account WHERE SystemModstamp >= {deleted_at}",
        include_deleted=True,
    )["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in rows] == [(b, True)]

    fake_clock.advance(60)
    clocked_org.undelete("Account", b)
    restored = clocked_org.get("Account", b)
    assert restored is not None and not restored["IsDeleted"]
    assert restored["SystemModstamp"] > format_datetime(
        datetime.fromtimestamp(fake_clock.now - 1, UTC)
    )
    assert {r["Id"] for r in sf.query("SELECT Id FROM Account")["records"]} == {a, b}
    assert (
        sf.Account.deleted(
            datetime.fromtimestamp(fake_clock.now - 600, UTC),
            datetime.fromtimestamp(fake_clock.now + 600, UTC),
        )["deletedRecords"]
        == []
    )
    with pytest.raises(RecordError) as info:
        clocked_org.undelete("Account", a)
    assert info.value.status_code == "UNDELETE_FAILED"


def test_replication_window_rules(sf: Salesforce, fake_clock: Any, clocked_org: Org) -> None:
    now = datetime.fromtimestamp(fake_clock.now, UTC)
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.updated(now - timedelta(days=31), now)
    assert error_of(info.value)["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Account.deleted(now, now - timedelta(hours=1))
    assert sf.Account.updated(now - timedelta(days=14), now)["ids"] == []


# --------------------------------------------------------------------------- org API


def test_org_add_custom_field_rules() -> None:
    from segsync_sandbox.salesforce.org import SchemaError

    org = Org()
    org.add_custom_field("Account", TIER)
    assert org.read_custom_field("Account.Segsync_Tier__c") == TIER
    with pytest.raises(SchemaError) as dup:
        org.add_custom_field("Account", TIER)
    assert dup.value.status_code == "DUPLICATE_DEVELOPER_NAME"
    with pytest.raises(SchemaError):
        org.add_custom_field(
            "Account", CustomFieldSpec("Account." + "X" * 41 + "__c", "Text", "x", length=5)
        )
    with pytest.raises(SchemaError):
        org.add_custom_field("Account", CustomFieldSpec("Account.Bad", "Text", "x", length=5))
    with pytest.raises(SchemaError):
        org.add_custom_field("Account", CustomFieldSpec("Account.T__c", "Text", "x", length=300))
    assert org.read_custom_field("Account.Name") is None
    assert org.read_custom_field("Account.Nope__c") is None


def test_org_update_custom_field_retires_removed_values() -> None:
    org = Org()
    org.add_custom_field("Account", TIER)
    a = org.insert("Account", {"Name": "A"})
    org.update("Account", a, {"Segsync_Tier__c": "Tier 3"})
    org.update_custom_field(
        "Account",
        CustomFieldSpec(
            TIER.full_name,
            "Picklist",
            TIER.label,
            picklist_values=("Tier 1", "Tier 2", "Tier 4"),
            restricted=True,
        ),
    )
    assert org.get("Account", a)["Segsync_Tier__c"] == "Tier 3"  # type: ignore[index]
    with pytest.raises(RecordError) as info:
        org.update("Account", a, {"Segsync_Tier__c": "Tier 3"})
    assert info.value.status_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    org.update("Account", a, {"Segsync_Tier__c": "Tier 4"})
    describe = {f["name"]: f for f in org.describe("Account")["fields"]}
    values = {p["value"]: p["active"] for p in describe["Segsync_Tier__c"]["picklistValues"]}
    assert values == {"Tier 1": True, "Tier 2": True, "Tier 4": True, "Tier 3": False}


def test_org_save_and_load_round_trip(tmp_path: Any, fake_clock: Any) -> None:
    org = Org(daily_api_limit=1234, clock=fake_clock)
    provision(org)
    a = org.insert("Account", {"Name": "A", "Tech_Stack__c": "AWS"})
    b = org.insert("Account", {"Name": "B"})
    c = org.insert("Contact", {"LastName": "Doe", "AccountId": a})
    org.update("Account", a, {"Segsync_Tier__c": "Tier 1"})
    org.delete("Account", b)
    org.count_call()
    org.save(tmp_path)
    assert (tmp_path / "Account.jsonl").read_text().count("\n") == 2
    # Loaded on a clock an hour behind: its stamps still never go below the saved ones.
    loaded = Org.load(tmp_path, clock=lambda: fake_clock.now - 3600)
    assert loaded.usage() == (1, 1234)
    assert loaded.get("Account", a) == org.get("Account", a)
    assert loaded.get("Contact", c) == org.get("Contact", c)
    assert [r["Id"] for r in loaded.records("Account")] == [a]
    assert loaded.read_custom_field("Account.Segsync_Tier__c") == TIER
    assert loaded.describe("Account") == org.describe("Account")
    assert loaded.insert("Account", {"Name": "D"}) not in (a, b)
    stamp_before = loaded.get("Account", a)["SystemModstamp"]  # type: ignore[index]
    loaded.update("Account", a, {"Name": "A2"})
    assert loaded.get("Account", a)["SystemModstamp"] == stamp_before  # type: ignore[index]
    fake_clock.advance(3601)
    loaded.update("Account", a, {"Name": "A3"})
    assert loaded.get("Account", a)["SystemModstamp"] > stamp_before  # type: ignore[index]


def test_make_id_is_deterministic_and_case_safe() -> None:
    assert make_id("Account", 1) == make_id("Account", 1)
    assert make_id("Account", 1).startswith("001")
    assert len(make_id("Contact", 36**5)) == 18
    org = Org()
    a = org.insert("Account", {"Name": "A"})
    assert org.get("Account", a[:15]) == org.get("Account", a)


def test_sandbox_persists_to_data_dir_across_restarts(tmp_path: Any) -> None:
    data = tmp_path / "org"
    with start_salesforce(data_dir=data) as first:
        provision(first.org)
        account_id = first.org.insert("Account", {"Name": "Persisted"})
        first.client().Account.update(account_id, {"Segsync_Tier__c": "Tier 2"})
    assert (data / "schema.json").is_file()
    with start_salesforce(data_dir=data) as second:
        record = second.client().Account.get(account_id)
        assert record["Segsync_Tier__c"] == "Tier 2"
        assert second.org.usage()[0] >= 2
    assert not first.workdir.exists()


def test_admin_endpoints(sf_sandbox: SalesforceSandbox, sf_http: requests.Session) -> None:
    base = f"{sf_sandbox.instance_url}/__admin"
    assert sf_http.put(f"{base}/salesforce/usage", json={"used": 99_998}).json() == {
        "used": 99_998,
        "total": 100_000,
    }
    sf_http.put(f"{base}/faults", json={"rate_limit_next": 1})
    sf = sf_sandbox.client()
    with pytest.raises(SalesforceRefusedRequest):
        sf.query("SELECT Id FROM Account")  # an injected refusal still reached the org
    sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"] == (100_000, 100_000)
    with pytest.raises(SalesforceRefusedRequest) as info:
        sf.query("SELECT Id FROM Account")
    assert error_of(info.value)["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    counters = sf_http.get(f"{base}/counters").json()
    assert counters["status:403"] == 2
    log = sf_http.get(f"{base}/log").json()
    assert [e["kind"] for e in log] == ["query", "query", "query"]


def test_concurrent_collection_writes_all_land_with_one_stamp_per_chunk(
    sf_sandbox: SalesforceSandbox, add_accounts: Callable[[int], list[str]]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    provision(sf_sandbox.org)
    ids = add_accounts(800)
    chunks = [ids[i : i + 200] for i in range(0, len(ids), 200)]

    def write(chunk: list[str]) -> list[dict[str, Any]]:
        client = sf_sandbox.client()
        records = [
            {"attributes": {"type": "Account"}, "id": i, "Segsync_Version__c": "v2"} for i in chunk
        ]
        result: list[dict[str, Any]] = client.restful(
            "composite/sobjects", method="PATCH", json=_collection(records)
        )
        return result

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(write, chunks))
    assert all(r["success"] for batch in results for r in batch)
    rows = list(sf_sandbox.org.records("Account"))
    assert {r["Segsync_Version__c"] for r in rows} == {"v2"}
    stamps_per_chunk = [
        {sf_sandbox.org.get("Account", i)["SystemModstamp"] for i in chunk}  # type: ignore[index]
        for chunk in chunks
    ]
    # Each chunk is one transaction: one stamp. Chunks that land in the same
    # second share it (stamps keep whole seconds).
    assert all(len(s) == 1 for s in stamps_per_chunk)
    assert all(s.endswith(".000+0000") for s in set().union(*stamps_per_chunk))
