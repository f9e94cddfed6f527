"""Contract tests: CRM search (operators, typing, sorts, paging, the 10,000 cap)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from hubspot.crm.companies import PublicObjectSearchRequest
from hubspot_fixtures import api_error, body_of, company_rows, running, seeded_portal

from segsync_sandbox.hubspot import HubSpotSandbox, Portal

# Search has its own 5/s limit (tested in test_hubspot_ratelimit); these tests make
# several searches in quick succession, so they raise it.
FAST = 1_000

# Ten companies with known values (numbers cross the "9" < "10" string trap).
ROWS: list[dict[str, str]] = [
    {
        "name": f"Acme {i}" if i % 2 else f"Globex Corp {i}",
        "domain": f"c{i}.example.com",
        "numberofemployees": str(n),
        "industry": ind,
        "notes_last_updated": str(1_700_000_000_000 + i * 86_400_000),
        **({"tech_stack": ts} if ts else {}),
    }
    for i, (n, ind, ts) in enumerate(
        [
            (5, "RETAIL", "Salesforce"),
            (9, "BANKING", "Salesforce;AWS"),
            (10, "RETAIL", ""),
            (50, "COMPUTER_SOFTWARE", "AWS"),
            (100, "BANKING", "Snowflake;AWS"),
            (1000, "MACHINERY", ""),
            (20, "RETAIL", "HubSpot"),
            (200, "COMPUTER_SOFTWARE", "Salesforce;HubSpot"),
            (3, "HIGHER_EDUCATION", ""),
            (75, "BANKING", "Stripe"),
        ]
    )
]


@pytest.fixture
def world() -> Iterator[tuple[HubSpotSandbox, list[str], Any]]:
    portal = Portal(search_per_second=FAST)
    ids = portal.load_companies(ROWS)
    portal.add_company({"name": "Blank Inc"})  # no number, industry or date
    with running(portal) as sb:
        yield sb, ids, sb.client().crm.companies.search_api


def _search(api: Any, filters: list[dict[str, Any]], **kwargs: Any) -> Any:
    request = PublicObjectSearchRequest(
        filter_groups=[{"filters": filters}] if filters else None,
        limit=kwargs.pop("limit", 200),
        **kwargs,
    )
    return api.do_search(request)


def _indexes(result: Any, ids: list[str]) -> list[int]:
    return sorted(ids.index(r.id) for r in result.results if r.id in ids)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"propertyName": "numberofemployees", "operator": "EQ", "value": "10"}, [2]),
        ({"propertyName": "numberofemployees", "operator": "LT", "value": "10"}, [0, 1, 8]),
        ({"propertyName": "numberofemployees", "operator": "LTE", "value": "10"}, [0, 1, 2, 8]),
        ({"propertyName": "numberofemployees", "operator": "GT", "value": "100"}, [5, 7]),
        ({"propertyName": "numberofemployees", "operator": "GTE", "value": "100"}, [4, 5, 7]),
        (
            {
                "propertyName": "numberofemployees",
                "operator": "BETWEEN",
                "value": "9",
                "highValue": "50",
            },
            [1, 2, 3, 6],
        ),
        ({"propertyName": "industry", "operator": "EQ", "value": "banking"}, [1, 4, 9]),
        (
            {"propertyName": "industry", "operator": "IN", "values": ["RETAIL", "MACHINERY"]},
            [0, 2, 5, 6],
        ),
        (
            {"propertyName": "industry", "operator": "NOT_IN", "values": ["RETAIL", "BANKING"]},
            [3, 5, 7, 8],
        ),
        ({"propertyName": "tech_stack", "operator": "EQ", "value": "AWS"}, [1, 3, 4]),
        ({"propertyName": "tech_stack", "operator": "HAS_PROPERTY"}, [0, 1, 3, 4, 6, 7, 9]),
        ({"propertyName": "tech_stack", "operator": "NOT_HAS_PROPERTY"}, [2, 5, 8]),
        (
            {"propertyName": "name", "operator": "CONTAINS_TOKEN", "value": "globex"},
            [0, 2, 4, 6, 8],
        ),
        ({"propertyName": "name", "operator": "CONTAINS_TOKEN", "value": "acm*"}, [1, 3, 5, 7, 9]),
        (
            {"propertyName": "name", "operator": "NOT_CONTAINS_TOKEN", "value": "globex"},
            [1, 3, 5, 7, 9],
        ),
        (
            {
                "propertyName": "notes_last_updated",
                "operator": "GTE",
                "value": str(1_700_000_000_000 + 7 * 86_400_000),
            },
            [7, 8, 9],
        ),
        (
            {
                "propertyName": "notes_last_updated",
                "operator": "LT",
                "value": str(1_700_000_000_000 + 86_400_000),
            },
            [0],
        ),
        (
            {
                "propertyName": "hs_object_id",
                "operator": "GT",
                "value": "10000000008",
            },
            [8, 9],
        ),
    ],
)
def test_operators(world: Any, flt: dict[str, Any], expected: list[int]) -> None:
    _, ids, api = world
    result = _search(api, [flt])
    assert _indexes(result, ids) == expected


def test_neq_includes_records_without_the_value(world: Any) -> None:
    _, ids, api = world
    result = _search(api, [{"propertyName": "industry", "operator": "NEQ", "value": "BANKING"}])
    assert _indexes(result, ids) == [0, 2, 3, 5, 6, 7, 8]
    assert result.total == 8  # plus "Blank Inc"


def test_groups_are_ored_filters_anded(world: Any) -> None:
    _, ids, api = world
    request = PublicObjectSearchRequest(
        filter_groups=[
            {
                "filters": [
                    {"propertyName": "industry", "operator": "EQ", "value": "RETAIL"},
                    {"propertyName": "numberofemployees", "operator": "GT", "value": "5"},
                ]
            },
            {"filters": [{"propertyName": "industry", "operator": "EQ", "value": "MACHINERY"}]},
        ],
        limit=100,
    )
    assert _indexes(api.do_search(request), ids) == [2, 5, 6]


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("ASCENDING", [8, 0, 1, 2, 6, 3, 9, 4, 7, 5]), ("DESCENDING", [5, 7, 4, 9, 3, 6, 2, 1, 0, 8])],
)
def test_sorts_numbers_numerically_with_blanks_last(
    world: Any, direction: str, expected: list[int]
) -> None:
    _, ids, api = world
    result = _search(
        api,
        [],
        sorts=[{"propertyName": "numberofemployees", "direction": direction}],
        properties=["numberofemployees"],
    )
    order = [r.id for r in result.results]
    assert order[:10] == [ids[i] for i in expected]
    assert result.results[-1].properties["numberofemployees"] is None
    assert result.total == 11


def test_search_returns_requested_properties_and_defaults(world: Any) -> None:
    _, _, api = world
    result = _search(api, [], properties=["industry"], limit=1)
    assert set(result.results[0].properties) == {
        "industry",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    }
    default = _search(api, [], limit=1)
    assert set(default.results[0].properties) == {
        "createdate",
        "domain",
        "hs_lastmodifieddate",
        "hs_object_id",
        "name",
    }


def test_free_text_query(world: Any) -> None:
    _, ids, api = world
    result = api.do_search(PublicObjectSearchRequest(query="c7.example", limit=10))
    assert [r.id for r in result.results] == [ids[7]]


def test_paging_with_after_and_total(world: Any) -> None:
    _, ids, api = world
    seen: list[str] = []
    after = None
    while True:
        page = api.do_search(
            PublicObjectSearchRequest(
                sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                limit=4,
                after=after,
            )
        )
        assert page.total == 11
        seen.extend(r.id for r in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen[:10] == ids and len(seen) == 11


def test_search_sees_writes(world: Any) -> None:
    sb, ids, api = world
    flt = [{"propertyName": "industry", "operator": "EQ", "value": "MACHINERY"}]
    assert _indexes(_search(api, flt), ids) == [5]
    sb.client().crm.companies.basic_api.update(ids[0], {"properties": {"industry": "MACHINERY"}})
    assert _indexes(_search(api, flt), ids) == [0, 5]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"limit": 201}, "limit"),
        ({"filterGroups": [{"filters": []}] * 6}, "filter groups"),
        (
            {
                "filterGroups": [
                    {"filters": [{"propertyName": "name", "operator": "HAS_PROPERTY"}] * 11}
                ]
            },
            "filters in a group",
        ),
        (
            {
                "filterGroups": [
                    {"filters": [{"propertyName": "name", "operator": "HAS_PROPERTY"}] * 9}
                ]
                * 3
            },
            "Too many filters",
        ),
        (
            {
                "filterGroups": [
                    {"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}
                ]
            },
            "nope",
        ),
        (
            {
                "filterGroups": [
                    {"filters": [{"propertyName": "name", "operator": "LIKE", "value": "x"}]}
                ]
            },
            "operator",
        ),
        (
            {
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": "numberofemployees", "operator": "GT", "value": "x"}
                        ]
                    }
                ]
            },
            "not a valid number",
        ),
        ({"sorts": [{"propertyName": "name"}, {"propertyName": "domain"}]}, "sorts"),
        # Only the object form is documented: a bare name is refused, not guessed at.
        ({"sorts": ["hs_lastmodifieddate"]}, "Invalid sort"),
        ({"sorts": [{"propertyName": "name", "direction": "ascending"}]}, "direction"),
        ({"after": "abc"}, "paging cursor"),
    ],
)
def test_bad_search_requests_are_400(world: Any, body: dict[str, Any], fragment: str) -> None:
    sb, _, _ = world
    http = urllib3.PoolManager()
    response = http.request(
        "POST",
        f"{sb.base_url}/crm/v3/objects/companies/search",
        body=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {sb.access_token}", "Content-Type": "application/json"},
    )
    assert response.status == 400
    answer = json.loads(response.data)
    assert answer["category"] == "VALIDATION_ERROR"
    assert answer["status"] == "error"
    assert fragment in answer["message"]


def test_search_sends_no_rate_limit_headers(world: Any) -> None:
    _, _, api = world
    _, status, headers = api.do_search_with_http_info(PublicObjectSearchRequest(limit=1))
    assert status == 200
    assert not [h for h in headers if h.lower().startswith("x-hubspot-ratelimit")]


def test_paging_past_10000_results_is_400() -> None:
    portal = Portal(search_per_second=FAST)
    portal.load_companies(company_rows(10_001))
    with running(portal) as sb:
        api = sb.client().crm.companies.search_api
        flt = [{"propertyName": "name", "operator": "HAS_PROPERTY"}]
        sorts = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        last_page = api.do_search(
            PublicObjectSearchRequest(
                filter_groups=[{"filters": flt}], sorts=sorts, limit=200, after="9800"
            )
        )
        assert last_page.total == 10_001
        assert len(last_page.results) == 200
        assert last_page.paging.next.after == "10000"
        straddling = api.do_search(
            PublicObjectSearchRequest(
                filter_groups=[{"filters": flt}], sorts=sorts, limit=200, after="9900"
            )
        )
        assert len(straddling.results) == 100  # capped at result 10,000
        exc = api_error(
            api.do_search,
            PublicObjectSearchRequest(
                filter_groups=[{"filters": flt}],
                sorts=sorts,
                limit=200,
                after=last_page.paging.next.after,
            ),
        )
        assert exc.status == 400
        body = body_of(exc)
        assert body["category"] == "VALIDATION_ERROR"
        assert body["status"] == "error" and body["correlationId"]
        assert "10000" in body["message"]
        # The documented way out: restart the query from the last id seen.
        restart = api.do_search(
            PublicObjectSearchRequest(
                filter_groups=[
                    {
                        "filters": [
                            *flt,
                            {
                                "propertyName": "hs_object_id",
                                "operator": "GT",
                                "value": last_page.results[-1].id,
                            },
                        ]
                    }
                ],
                sorts=sorts,
                limit=200,
            )
        )
        assert restart.total == 10_001 - 10_000


def test_default_limit_is_10_and_datetime_sorts_by_time(world: Any) -> None:
    _, ids, api = world
    result = api.do_search(
        PublicObjectSearchRequest(
            sorts=[{"propertyName": "notes_last_updated", "direction": "DESCENDING"}],
            properties=["notes_last_updated"],
        )
    )
    assert len(result.results) == 10
    assert [r.id for r in result.results] == list(reversed(ids))
    assert result.paging.next.after == "10"


def test_search_lags_writes_when_configured() -> None:
    clock = [1_700_000_000.0]
    portal = Portal(search_lag_ms=2_000, clock=lambda: clock[0], search_per_second=FAST)
    ids = portal.load_companies(ROWS[:3])
    with running(portal) as sb:
        api = sb.client().crm.companies
        flt = [{"propertyName": "industry", "operator": "EQ", "value": "MACHINERY"}]
        assert _search(api.search_api, flt).total == 0  # nothing indexed yet
        clock[0] += 2.0
        assert _search(api.search_api, [], limit=10).total == 3
        api.basic_api.update(ids[0], {"properties": {"industry": "MACHINERY"}})
        stale = _search(api.search_api, [], properties=["industry"], limit=10)
        assert stale.results[0].properties["industry"] == "RETAIL"
        assert _search(api.search_api, flt).total == 0
        clock[0] += 2.0
        fresh = _search(api.search_api, flt, properties=["industry"])
        assert [r.id for r in fresh.results] == [ids[0]]
        assert fresh.results[0].properties["industry"] == "MACHINERY"
        # Reads other than search see the write at once.
        read = api.basic_api.get_by_id(ids[1], properties=["industry"])
        assert read.properties["industry"] == "BANKING"


def test_contacts_search_by_token_and_enumeration() -> None:
    portal, company_ids, contact_ids = seeded_portal(6, search_per_second=FAST)
    with running(portal) as sb:
        api = sb.client().crm.contacts.search_api
        result = api.do_search(
            PublicObjectSearchRequest(
                filter_groups=[
                    {
                        "filters": [
                            {"propertyName": "seniority", "operator": "EQ", "value": "VP"},
                            {
                                "propertyName": "email",
                                "operator": "CONTAINS_TOKEN",
                                "value": "*@company3.example.com",
                            },
                        ]
                    }
                ],
                properties=["associatedcompanyid"],
                limit=10,
            )
        )
        assert [r.id for r in result.results] == [contact_ids[3]]
        props = result.results[0].properties
        assert props["associatedcompanyid"] == company_ids[3]
        assert set(props) == {
            "associatedcompanyid",
            "createdate",
            "lastmodifieddate",
            "hs_object_id",
        }


def test_injected_rate_limit_on_search_uses_the_search_policy(world: Any) -> None:
    sb, _, api = world
    sb.app.faults.update(rate_limit_next=1)
    exc = api_error(api.do_search, PublicObjectSearchRequest(limit=1))
    assert exc.status == 429
    assert body_of(exc)["policyName"] == "SECONDLY"
    assert api.do_search(PublicObjectSearchRequest(limit=1)).total == 11
