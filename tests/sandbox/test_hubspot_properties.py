"""Contract tests: the Properties API (read, create, update options, groups)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hubspot_fixtures import api_error, body_of, running, seeded_portal

from segsync_sandbox.hubspot import HubSpotSandbox

SEGMENT = {
    "name": "segsync_segment",
    "label": "Segment",
    "type": "enumeration",
    "fieldType": "select",
    "groupName": "segmentation",
    "options": [
        {
            "label": "Enterprise SaaS",
            "value": "Enterprise SaaS",
            "displayOrder": 0,
            "hidden": False,
        },
        {"label": "Mid-Market", "value": "Mid-Market", "displayOrder": 1, "hidden": False},
    ],
}


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    portal, _, _ = seeded_portal(3)
    with running(portal) as sb:
        yield sb


@pytest.fixture
def props(sandbox: HubSpotSandbox) -> Any:
    return sandbox.client().crm.properties


def _with_group(props: Any) -> None:
    props.groups_api.create("companies", {"name": "segmentation", "label": "Segmentation"})


def test_fresh_portal_has_inputs_but_no_outputs(props: Any) -> None:
    names = {p.name: p for p in props.core_api.get_all("companies").results}
    for name in (
        "name",
        "domain",
        "industry",
        "numberofemployees",
        "annualrevenue",
        "notes_last_updated",
        "tech_stack",
        "intent_score",
        "segsync_lock",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ):
        assert name in names
    assert not [n for n in names if n.startswith("segsync_") and n != "segsync_lock"]
    industry = names["industry"]
    assert industry.type == "enumeration" and industry.field_type == "select"
    assert "COMPUTER_SOFTWARE" in {o.value for o in industry.options}
    assert names["tech_stack"].field_type == "checkbox"
    assert names["hs_object_id"].modification_metadata.read_only_value is True
    assert names["notes_last_updated"].type == "datetime"
    contact_names = {p.name for p in props.core_api.get_all("contacts").results}
    assert {"seniority", "lastmodifieddate", "associatedcompanyid", "jobtitle"} <= contact_names


def test_get_one_property_and_404(props: Any) -> None:
    seniority = props.core_api.get_by_name("contacts", "seniority")
    assert [o.value for o in seniority.options] == [
        "Executive",
        "VP",
        "Director",
        "Manager",
        "Individual Contributor",
    ]
    exc = api_error(props.core_api.get_by_name, "companies", "segsync_tier")
    assert exc.status == 404
    assert body_of(exc)["category"] == "OBJECT_NOT_FOUND"


def test_create_is_201_and_then_writable(sandbox: HubSpotSandbox, props: Any) -> None:
    companies = sandbox.client().crm.companies.basic_api
    record_id = companies.get_page(limit=1).results[0].id
    before = api_error(
        companies.update, record_id, {"properties": {"segsync_segment": "Mid-Market"}}
    )
    assert before.status == 400
    _with_group(props)
    created, status, headers = props.core_api.create_with_http_info("companies", SEGMENT)
    assert status == 201
    # The spec gives a 201 a Location header: the new property's URL.
    assert headers["Location"] == f"{sandbox.base_url}/crm/v3/properties/companies/segsync_segment"
    assert created.name == "segsync_segment"
    assert created.group_name == "segmentation"
    assert [o.value for o in created.options] == ["Enterprise SaaS", "Mid-Market"]
    assert created.modification_metadata.read_only_value is False
    updated = companies.update(record_id, {"properties": {"segsync_segment": "Mid-Market"}})
    assert updated.properties["segsync_segment"] == "Mid-Market"
    assert sandbox.app.log.entries()[-2].kind == "property.create"


def test_duplicate_is_409(props: Any) -> None:
    _with_group(props)
    props.core_api.create("companies", SEGMENT)
    exc = api_error(props.core_api.create, "companies", SEGMENT)
    assert exc.status == 409
    body = body_of(exc)
    assert body["category"] == "OBJECT_ALREADY_EXISTS"
    assert "segsync_segment" in body["message"]
    hubspot_one = dict(SEGMENT, name="industry")
    assert api_error(props.core_api.create, "companies", hubspot_one).status == 409


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"name": "Segsync-Segment"}, "invalid"),
        ({"name": "9lives"}, "invalid"),
        ({"type": "text"}, "Invalid type"),
        ({"fieldType": "text"}, "fieldType"),
        ({"type": "number", "fieldType": "select"}, "fieldType"),
        ({"options": []}, "at least one option"),
        ({"groupName": "nope"}, "group"),
        ({"label": ""}, "label"),
        ({"options": [{"label": "A", "value": "A"}, {"label": "B", "value": "A"}]}, "Duplicate"),
    ],
)
def test_create_validation(props: Any, changes: dict[str, Any], fragment: str) -> None:
    _with_group(props)
    exc = api_error(props.core_api.create, "companies", dict(SEGMENT, **changes))
    assert exc.status == 400
    body = body_of(exc)
    assert body["category"] == "VALIDATION_ERROR"
    assert fragment in body["message"]


@pytest.mark.parametrize(
    ("type_", "field_type"),
    [
        ("number", "number"),
        ("string", "textarea"),
        ("string", "text"),
        ("datetime", "date"),
        ("date", "date"),
        ("bool", "booleancheckbox"),
    ],
)
def test_create_valid_type_combinations(props: Any, type_: str, field_type: str) -> None:
    _with_group(props)
    spec = {
        "name": f"segsync_{type_}_{field_type}",
        "label": "X",
        "type": type_,
        "fieldType": field_type,
        "groupName": "segmentation",
    }
    created = props.core_api.create("companies", spec)
    assert (created.type, created.field_type) == (type_, field_type)


def test_update_options_keeps_stored_values(sandbox: HubSpotSandbox, props: Any) -> None:
    _with_group(props)
    props.core_api.create("companies", SEGMENT)
    companies = sandbox.client().crm.companies.basic_api
    record_id = companies.get_page(limit=1).results[0].id
    companies.update(record_id, {"properties": {"segsync_segment": "Mid-Market"}})
    new_options = [
        {
            "label": "Enterprise SaaS",
            "value": "Enterprise SaaS",
            "displayOrder": 0,
            "hidden": False,
        },
        {"label": "SMB", "value": "SMB", "displayOrder": 1, "hidden": False},
    ]
    updated = props.core_api.update(
        "companies", "segsync_segment", {"options": new_options, "label": "Segment (segsync)"}
    )
    assert [o.value for o in updated.options] == ["Enterprise SaaS", "SMB"]
    assert updated.label == "Segment (segsync)"
    kept = companies.get_by_id(record_id, properties=["segsync_segment"])
    assert kept.properties["segsync_segment"] == "Mid-Market"
    assert companies.update(record_id, {"properties": {"segsync_segment": "SMB"}})
    exc = api_error(companies.update, record_id, {"properties": {"segsync_segment": "Mid-Market"}})
    assert exc.status == 400


def test_update_errors(props: Any) -> None:
    assert api_error(props.core_api.update, "companies", "nope", {"label": "x"}).status == 404
    exc = api_error(props.core_api.update, "companies", "industry", {"label": "x"})
    assert exc.status == 400
    _with_group(props)
    props.core_api.create("companies", SEGMENT)
    bad = api_error(props.core_api.update, "companies", "segsync_segment", {"fieldType": "text"})
    assert bad.status == 400


def test_groups(sandbox: HubSpotSandbox, props: Any) -> None:
    names = {g.name for g in props.groups_api.get_all("companies").results}
    assert "companyinformation" in names and "segmentation" not in names
    created, status, headers = props.groups_api.create_with_http_info(
        "companies", {"name": "segmentation", "label": "Segmentation", "displayOrder": 3}
    )
    assert status == 201
    location = f"{sandbox.base_url}/crm/v3/properties/companies/groups/segmentation"
    assert headers["Location"] == location
    assert (created.name, created.label, created.archived) == (
        "segmentation",
        "Segmentation",
        False,
    )
    assert props.groups_api.get_by_name("companies", "segmentation").label == "Segmentation"
    dup = api_error(props.groups_api.create, "companies", {"name": "segmentation", "label": "S"})
    assert dup.status == 409
    renamed = props.groups_api.update("companies", "segmentation", {"label": "Segments"})
    assert renamed.label == "Segments"
    assert api_error(props.groups_api.get_by_name, "companies", "nope").status == 404
    contact_groups = {g.name for g in props.groups_api.get_all("contacts").results}
    assert "segmentation" not in contact_groups


def test_group_update_missing_is_404(props: Any) -> None:
    exc = api_error(props.groups_api.update, "companies", "nope", {"label": "x"})
    assert exc.status == 404


def test_archived_properties_take_a_spec_boolean(props: Any) -> None:
    assert props.core_api.get_all("companies", archived="false").results
    assert props.core_api.get_all("companies", archived="true").results == []
    assert api_error(props.core_api.get_all, "companies", archived=False).status == 400
