"""Contract tests: list / get / create / update / archive with the real hubspot-api-client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from hubspot import HubSpot
from hubspot_fixtures import api_error, body_of, company_rows, running, seeded_portal

from segsync_sandbox.hubspot import HubSpotSandbox, Portal


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    portal, _, _ = seeded_portal(12)
    with running(portal) as sb:
        yield sb


@pytest.fixture
def companies(sandbox: HubSpotSandbox) -> Any:
    return sandbox.client().crm.companies


def _all_strings_or_null(props: dict[str, Any]) -> bool:
    return all(v is None or isinstance(v, str) for v in props.values())


# Auth ------------------------------------------------------------------


@pytest.mark.parametrize("token", ["wrong-token", ""])
def test_bad_or_missing_token_is_401_invalid_authentication(
    sandbox: HubSpotSandbox, token: str
) -> None:
    client = HubSpot(access_token=token or None, host=sandbox.base_url, retry=urllib3.Retry(0))
    exc = api_error(client.crm.companies.basic_api.get_page)
    assert exc.status == 401
    body = body_of(exc)
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found")
    assert body["correlationId"]
    assert sandbox.app.log.counters["status:401"] == 1


# List ------------------------------------------------------------------


def test_list_defaults_to_ten_with_default_properties(companies: Any) -> None:
    page = companies.basic_api.get_page()
    assert len(page.results) == 10
    first = page.results[0]
    assert set(first.properties) == {
        "createdate",
        "domain",
        "hs_lastmodifieddate",
        "hs_object_id",
        "name",
    }
    assert first.properties["hs_object_id"] == first.id
    assert first.created_at is not None and first.updated_at is not None
    assert first.archived is False
    assert page.paging.next.after
    assert "after=" in page.paging.next.link


def test_list_returns_requested_properties_as_strings_or_null(companies: Any) -> None:
    page = companies.basic_api.get_page(
        limit=5, properties=["numberofemployees", "annualrevenue", "no_such_property"]
    )
    for record in page.results:
        props = record.properties
        assert set(props) == {
            "numberofemployees",
            "annualrevenue",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        }
        assert _all_strings_or_null(props)
    assert page.results[0].properties["numberofemployees"] == "0"
    assert page.results[1].properties["annualrevenue"] is None


def test_contacts_default_properties(sandbox: HubSpotSandbox) -> None:
    page = sandbox.client().crm.contacts.basic_api.get_page(limit=1)
    assert set(page.results[0].properties) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }


def test_comma_separated_properties_are_accepted(sandbox: HubSpotSandbox) -> None:
    http = urllib3.PoolManager()
    response = http.request(
        "GET",
        f"{sandbox.base_url}/crm/v3/objects/companies?limit=1&properties=industry,country",
        headers={"Authorization": f"Bearer {sandbox.access_token}"},
    )
    assert response.status == 200
    props = json.loads(response.data)["results"][0]["properties"]
    assert props["industry"] == "COMPUTER_SOFTWARE"
    assert props["country"] == "United States"


@pytest.mark.parametrize(("count", "pages"), [(100, 1), (101, 2)])
def test_list_paging_edges_at_100(count: int, pages: int) -> None:
    portal = Portal()
    ids = portal.load_companies(company_rows(count))
    with running(portal) as sb:
        api = sb.client().crm.companies.basic_api
        seen: list[str] = []
        after = None
        calls = 0
        while True:
            kwargs: dict[str, Any] = {"limit": 100}
            if after:
                kwargs["after"] = after
            page = api.get_page(**kwargs)
            calls += 1
            seen.extend(r.id for r in page.results)
            if page.paging is None:
                break
            after = page.paging.next.after
        assert calls == pages
        assert seen == ids


def test_list_limit_over_100_is_400(companies: Any) -> None:
    exc = api_error(companies.basic_api.get_page, limit=101)
    assert exc.status == 400
    assert body_of(exc)["category"] == "VALIDATION_ERROR"


def test_list_archived_returns_only_archived(sandbox: HubSpotSandbox, companies: Any) -> None:
    victim = companies.basic_api.get_page(limit=1).results[0].id
    companies.basic_api.archive(victim)
    live = companies.basic_api.get_page(limit=100)
    # The spec types archived as a boolean: "true", not the client's "True" for a bool.
    archived = companies.basic_api.get_page(limit=100, archived="true")
    assert victim not in {r.id for r in live.results}
    assert [r.id for r in archived.results] == [victim]
    assert archived.results[0].archived is True
    assert api_error(companies.basic_api.get_by_id, victim).status == 404


@pytest.mark.parametrize("spelling", [True, False, "True", "FALSE", "1"])
def test_query_booleans_other_than_true_and_false_are_400(companies: Any, spelling: Any) -> None:
    # hubspot-api-client sends a Python bool as "True" / "False"; a server that
    # validates against the spec refuses it, so the connector never sends one.
    exc = api_error(companies.basic_api.get_page, limit=1, archived=spelling)
    assert exc.status == 400
    body = body_of(exc)
    assert body["category"] == "VALIDATION_ERROR" and "archived" in body["message"]
    assert companies.basic_api.get_page(limit=1, archived="false").results


# Get -------------------------------------------------------------------


def test_get_by_id_with_properties(companies: Any) -> None:
    first = companies.basic_api.get_page(limit=1).results[0]
    record = companies.basic_api.get_by_id(first.id, properties=["industry", "tech_stack"])
    assert record.id == first.id
    assert record.properties["industry"] == "COMPUTER_SOFTWARE"
    assert record.properties["tech_stack"] == "Salesforce;Snowflake"


def test_get_missing_is_404_object_not_found(companies: Any) -> None:
    exc = api_error(companies.basic_api.get_by_id, "1")
    assert exc.status == 404
    body = body_of(exc)
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["status"] == "error"


def test_get_contact_by_email_id_property(sandbox: HubSpotSandbox) -> None:
    contacts = sandbox.client().crm.contacts
    record = contacts.basic_api.get_by_id(
        "PERSON3@company3.example.com", id_property="email", properties=["seniority"]
    )
    assert record.properties["seniority"] == "VP"


# Create / update ---------------------------------------------------------


def test_create_answers_201_model(companies: Any) -> None:
    created = companies.basic_api.create({"properties": {"name": "New Co", "industry": "BANKING"}})
    assert created is not None, "a 201 must deserialize into SimplePublicObject"
    assert created.properties["name"] == "New Co"
    assert created.properties["hs_object_id"] == created.id


def test_update_advances_stamps_and_clears_with_empty_string(
    sandbox: HubSpotSandbox, companies: Any
) -> None:
    record = companies.basic_api.get_page(limit=1, properties=["country"]).results[0]
    assert record.properties["country"]
    first = companies.basic_api.update(record.id, {"properties": {"country": ""}})
    second = companies.basic_api.update(record.id, {"properties": {"country": "France"}})
    assert first.updated_at > record.updated_at
    assert second.updated_at > first.updated_at
    assert second.properties["hs_lastmodifieddate"] > first.properties["hs_lastmodifieddate"]
    assert "country" not in first.properties
    after = companies.basic_api.get_by_id(record.id, properties=["country"])
    assert after.properties["country"] == "France"
    entry = sandbox.app.log.entries()[-2]
    assert entry.kind == "update" and entry.records == (record.id,)
    assert entry.fields == ("country",)


@pytest.mark.parametrize(
    ("props", "error", "fragment"),
    [
        ({"no_such_property": "x"}, "PROPERTY_DOESNT_EXIST", "does not exist"),
        ({"numberofemployees": "many"}, "INVALID_FLOAT", "was not a valid number"),
        ({"industry": "Software"}, "INVALID_OPTION", "was not one of the allowed options"),
        ({"tech_stack": "Salesforce;Excel"}, "INVALID_OPTION", "Excel was not one of"),
        ({"name": "x" * 65_537}, "INVALID_STRING_TOO_LONG", "too long"),
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE", "read only"),
        ({"segsync_lock": "maybe"}, "INVALID_BOOLEAN", "not a valid boolean"),
        ({"notes_last_updated": "yesterday"}, "INVALID_DATE", "not a valid"),
    ],
)
def test_update_validation_errors(
    companies: Any, props: dict[str, str], error: str, fragment: str
) -> None:
    record = companies.basic_api.get_page(limit=1, properties=["name"]).results[0]
    exc = api_error(companies.basic_api.update, record.id, {"properties": props})
    assert exc.status == 400
    body = body_of(exc)
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    problems = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert problems[0]["error"] == error
    assert fragment in problems[0]["message"]
    unchanged = companies.basic_api.get_by_id(record.id, properties=["name"])
    assert unchanged.properties["name"] == record.properties["name"]
    assert unchanged.updated_at == record.updated_at


def test_update_typed_values_are_canonical_strings(companies: Any) -> None:
    record_id = companies.basic_api.get_page(limit=1).results[0].id
    updated = companies.basic_api.update(
        record_id,
        {
            "properties": {
                "numberofemployees": "250.0",
                "segsync_lock": "TRUE",
                "notes_last_updated": "1700000000000",
            }
        },
    )
    assert updated.properties["numberofemployees"] == "250"
    assert updated.properties["segsync_lock"] == "true"
    assert updated.properties["notes_last_updated"] == "2023-11-14T22:13:20.000Z"


def test_update_missing_is_404(companies: Any) -> None:
    exc = api_error(companies.basic_api.update, "42", {"properties": {"name": "x"}})
    assert exc.status == 404


def test_malformed_json_is_400(sandbox: HubSpotSandbox) -> None:
    http = urllib3.PoolManager()
    response = http.request(
        "POST",
        f"{sandbox.base_url}/crm/v3/objects/companies/batch/read",
        body=b"{not json",
        headers={
            "Authorization": f"Bearer {sandbox.access_token}",
            "Content-Type": "application/json",
        },
    )
    assert response.status == 400
    assert json.loads(response.data)["category"] == "VALIDATION_ERROR"


# Faults ----------------------------------------------------------------


def test_injected_rate_limit_is_hubspot_429(sandbox: HubSpotSandbox, companies: Any) -> None:
    sandbox.app.faults.update(rate_limit_next=1, retry_after=2.0)
    exc = api_error(companies.basic_api.get_page)
    assert exc.status == 429
    body = body_of(exc)
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert exc.headers["Retry-After"] == "2"
    # retry=Retry(0): urllib3 did not retry the GET despite Retry-After.
    assert sandbox.app.log.counters["requests"] == 1
    assert companies.basic_api.get_page() is not None


def test_injected_errors_are_5xx_with_hubspot_body(sandbox: HubSpotSandbox, companies: Any) -> None:
    sandbox.app.faults.update(error_rate=1.0)
    statuses = set()
    for _ in range(3):
        exc = api_error(companies.basic_api.get_page)
        body = body_of(exc)
        assert body["status"] == "error" and body["correlationId"]
        statuses.add(exc.status)
    assert statuses == {500, 502, 503}


def test_session_expiry_fault(sandbox: HubSpotSandbox, companies: Any) -> None:
    sandbox.app.faults.update(session_expiry_after=1)
    companies.basic_api.get_page()
    exc = api_error(companies.basic_api.get_page)
    assert exc.status == 401
    assert body_of(exc)["category"] == "EXPIRED_AUTHENTICATION"


def test_unknown_object_type_is_400(sandbox: HubSpotSandbox) -> None:
    http = urllib3.PoolManager()
    response = http.request(
        "GET",
        f"{sandbox.base_url}/crm/v3/objects/widgets",
        headers={"Authorization": f"Bearer {sandbox.access_token}"},
    )
    assert response.status == 400
    assert json.loads(response.data)["category"] == "VALIDATION_ERROR"


def test_object_type_aliases(sandbox: HubSpotSandbox) -> None:
    http = urllib3.PoolManager()
    response = http.request(
        "GET",
        f"{sandbox.base_url}/crm/v3/objects/0-2?limit=3",
        headers={"Authorization": f"Bearer {sandbox.access_token}"},
    )
    assert response.status == 200
    assert len(json.loads(response.data)["results"]) == 3


def test_default_client_retries_a_get_429_with_retry_after(sandbox: HubSpotSandbox) -> None:
    # urllib3 retries a GET on 429 + Retry-After unless retries are off (see
    # docs/crm-apis.md#hubspot-api-client), which is why HubSpotSandbox.client()
    # passes a no-retry policy.
    sandbox.app.faults.update(rate_limit_next=1, retry_after=0.0)
    plain = HubSpot(access_token=sandbox.access_token, host=sandbox.base_url)
    assert plain.crm.companies.basic_api.get_page(limit=1) is not None
    assert [e.status for e in sandbox.app.log.entries()] == [429, 200]
    sandbox.app.faults.update(rate_limit_next=1, retry_after=0.0)
    exc = api_error(sandbox.client().crm.companies.basic_api.get_page, limit=1)
    assert exc.status == 429
    assert [e.status for e in sandbox.app.log.entries()] == [429, 200, 429]


def test_error_correlation_id_matches_header(companies: Any) -> None:
    exc = api_error(companies.basic_api.get_by_id, "3")
    assert exc.headers["X-HubSpot-Correlation-Id"] == body_of(exc)["correlationId"]


def test_create_validates_values(companies: Any) -> None:
    exc = api_error(companies.basic_api.create, {"properties": {"industry": "Tech"}})
    assert exc.status == 400
    assert "was not one of the allowed options" in body_of(exc)["message"]


def test_session_expiry_counts_from_when_faults_are_set(
    sandbox: HubSpotSandbox, companies: Any
) -> None:
    for _ in range(3):
        companies.basic_api.get_page(limit=1)
    sandbox.app.faults.update(session_expiry_after=2)
    companies.basic_api.get_page(limit=1)
    companies.basic_api.get_page(limit=1)
    assert api_error(companies.basic_api.get_page, limit=1).status == 401
