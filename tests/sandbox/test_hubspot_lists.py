"""Contract tests: the Lists API (segments) through hubspot-api-client, strict as documented."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hubspot_fixtures import api_error, body_of, running, seeded_portal

from segsync_sandbox.hubspot import HubSpotSandbox


def _branch(prop: str, values: list[str], **operation: Any) -> dict[str, Any]:
    op = {
        "operationType": "ENUMERATION",
        "operator": "IS_ANY_OF",
        "values": values,
        "includeObjectsWithNoValueSet": False,
        **operation,
    }
    return {
        "filterBranchType": "OR",
        "filters": [],
        "filterBranches": [
            {
                "filterBranchType": "AND",
                "filterBranches": [],
                "filters": [{"filterType": "PROPERTY", "property": prop, "operation": op}],
            }
        ],
    }


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    portal, _, _ = seeded_portal(30)
    with running(portal) as sb:
        yield sb


def _raw(call: Any, *args: Any, **kwargs: Any) -> Any:
    response = call(*args, _preload_content=False, **kwargs)
    return json.loads(response.data) if response.data else None


def _create(lists: Any, name: str, branch: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"name": name, "objectTypeId": "0-2", "processingType": "DYNAMIC"}
    body.update(filterBranch=branch, **extra)
    created: dict[str, Any] = _raw(lists.create, body)["list"]
    return created


def _members(memberships: Any, list_id: str, limit: int) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        kwargs: dict[str, Any] = {"limit": limit}
        if after:
            kwargs["after"] = after
        page = memberships.get_page(list_id, **kwargs)
        ids.extend(str(r.record_id) for r in page.results)
        after = page.paging.next.after if page.paging and page.paging.next else None
        if not after:
            return ids


def test_a_dynamic_list_follows_the_records(sandbox: HubSpotSandbox) -> None:
    client = sandbox.client()
    lists, memberships = client.crm.lists.lists_api, client.crm.lists.memberships_api
    portal = sandbox.portal
    industry = "COMPUTER_SOFTWARE"
    created = _create(lists, "Software", _branch("industry", [industry]))
    assert created["processingType"] == "DYNAMIC" and created["listVersion"] == 1
    assert created["filterBranch"]["filterBranchOperator"] == "OR"
    want = [r.id for r in portal.snapshot("companies") if r.props.get("industry") == industry]
    assert want and _members(memberships, created["listId"], 2) == want

    # A record that changes its value leaves the list at the next read.
    portal.update("companies", want[0], {"industry": "BANKING"})
    assert _members(memberships, created["listId"], 250) == want[1:]

    # Read back: without filters by default, with them on request; by name; by ids.
    plain = _raw(lists.get_by_id, created["listId"])["list"]
    assert "filterBranch" not in plain and plain["size"] == len(want) - 1
    full = _raw(lists.get_by_id, created["listId"], include_filters="true")["list"]
    assert full["filterBranch"] == created["filterBranch"]
    named = _raw(lists.get_by_name, "Software", "0-2")["list"]
    assert named["listId"] == created["listId"]
    many = _raw(lists.get_all, list_ids=[created["listId"], "999999"])["lists"]
    assert [m["listId"] for m in many] == [created["listId"]]


def test_filters_name_delete_restore_and_search(sandbox: HubSpotSandbox) -> None:
    lists = sandbox.client().crm.lists.lists_api
    created = _create(lists, "Banks", _branch("industry", ["BANKING"]))
    list_id = created["listId"]
    updated = _raw(
        lists.update_list_filters, list_id, {"filterBranch": _branch("industry", ["RETAIL"])}
    )["updatedList"]
    assert updated["listVersion"] == 2
    assert updated["filterBranch"]["filterBranches"][0]["filters"][0]["operation"]["values"] == [
        "RETAIL"
    ]
    renamed = _raw(lists.update_name, list_id, list_name="Shops")["updatedList"]
    assert renamed["name"] == "Shops" and renamed["listVersion"] == 3

    found = _raw(lists.do_search, {"query": "sho", "offset": 0, "additionalProperties": []})
    assert [f["listId"] for f in found["lists"]] == [list_id] and not found["hasMore"]
    assert "hs_list_size" in found["lists"][0]["additionalProperties"]

    lists.remove(list_id)
    assert api_error(lists.get_by_id, list_id).status == 404
    gone = _raw(lists.do_search, {"query": "Shops", "offset": 0, "additionalProperties": []})
    assert gone["total"] == 0
    lists.restore(list_id)
    assert _raw(lists.get_by_id, list_id)["list"]["name"] == "Shops"
    assert api_error(lists.restore, list_id).status == 400  # not deleted


def test_folders_hold_lists(sandbox: HubSpotSandbox) -> None:
    client = sandbox.client()
    folders, lists = client.crm.lists.folders_api, client.crm.lists.lists_api
    folder = _raw(folders.create, {"name": "segsync · accounts"})["folder"]
    created = _create(
        lists, "In a folder", _branch("industry", ["RETAIL"]), listFolderId=int(folder["id"])
    )
    root = _raw(folders.get_all)["folder"]
    assert [n["name"] for n in root["childNodes"]] == ["segsync · accounts"]
    inside = _raw(folders.get_all, folder_id=folder["id"])["folder"]
    assert inside["childLists"] == [int(created["listId"])]
    assert api_error(folders.create, {"name": "segsync · accounts"}).status == 409


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "x", "objectTypeId": "0-2"}, "processingType"),
        ({"name": "x", "objectTypeId": "0-9", "processingType": "DYNAMIC"}, "objectTypeId"),
        ({"name": "x", "objectTypeId": "0-2", "processingType": "DYNAMIC"}, "needs a filterBranch"),
        (
            {
                "name": "x",
                "objectTypeId": "0-2",
                "processingType": "DYNAMIC",
                "filterBranch": {**_branch("industry", ["RETAIL"]), "filterBranchType": "AND"},
            },
            "root filter branch",
        ),
        (
            {
                "name": "x",
                "objectTypeId": "0-2",
                "processingType": "DYNAMIC",
                "filterBranch": _branch("industry", ["RETAIL"], operationType="NUMBER"),
            },
            "operator",
        ),
        (
            {
                "name": "x",
                "objectTypeId": "0-2",
                "processingType": "DYNAMIC",
                "filterBranch": _branch("no_such_property", ["RETAIL"]),
            },
            "does not exist",
        ),
        (
            {
                "name": "x",
                "objectTypeId": "0-2",
                "processingType": "DYNAMIC",
                "filterBranch": _branch("industry", ["NOT_AN_OPTION"]),
            },
            "not an option",
        ),
    ],
)
def test_bad_lists_are_400(sandbox: HubSpotSandbox, body: dict[str, Any], needle: str) -> None:
    lists = sandbox.client().crm.lists.lists_api
    error = api_error(lists.create, body)
    assert error.status == 400
    payload = body_of(error)
    assert needle in payload["message"] and payload["category"] == "VALIDATION_ERROR"
    assert payload["correlationId"]


def test_strict_paging_names_and_booleans(sandbox: HubSpotSandbox) -> None:
    client = sandbox.client()
    lists, memberships = client.crm.lists.lists_api, client.crm.lists.memberships_api
    created = _create(lists, "Retail", _branch("industry", ["RETAIL"]))
    assert api_error(memberships.get_page, created["listId"], limit=251).status == 400
    assert api_error(lists.get_by_id, created["listId"], include_filters=True).status == 400
    assert api_error(lists.do_search, {"query": "x", "additionalProperties": []}).status == 400
    duplicate = api_error(
        lists.create, {"name": "retail", "objectTypeId": "0-1", "processingType": "MANUAL"}
    )
    assert duplicate.status == 409
    assert api_error(lists.get_by_id, "424242").status == 404
