"""Contract tests: batch read / update and v4 associations with the real client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObject,
    BatchResponseSimplePublicObjectWithErrors,
    SimplePublicObjectBatchInput,
)
from hubspot_fixtures import api_error, body_of, running, seeded_portal

from segsync_sandbox.hubspot import HubSpotSandbox


@pytest.fixture
def world() -> Iterator[tuple[HubSpotSandbox, list[str], list[str]]]:
    portal, company_ids, contact_ids = seeded_portal(12)
    with running(portal) as sb:
        yield sb, company_ids, contact_ids


def _read(ids: list[str], properties: list[str]) -> BatchReadInputSimplePublicObjectId:
    return BatchReadInputSimplePublicObjectId(
        inputs=[{"id": i} for i in ids], properties=properties, properties_with_history=[]
    )


def _update(inputs: list[tuple[str, dict[str, str]]]) -> BatchInputSimplePublicObjectBatchInput:
    return BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": i, "properties": p} for i, p in inputs]
    )


# Batch read ------------------------------------------------------------


def test_batch_read_all_found_is_200_plain_model(world: Any) -> None:
    sb, company_ids, _ = world
    batch = sb.client().crm.companies.batch_api
    result, status, _headers = batch.read_with_http_info(_read(company_ids[:3], ["industry"]))
    assert status == 200
    assert type(result) is BatchResponseSimplePublicObject
    assert result.status == "COMPLETE"
    assert result.started_at is not None and result.completed_at is not None
    assert [r.id for r in result.results] == company_ids[:3]
    assert result.results[0].properties["industry"] == "COMPUTER_SOFTWARE"
    assert "hs_lastmodifieddate" in result.results[0].properties


def test_batch_read_missing_ids_is_207_with_errors(world: Any) -> None:
    sb, company_ids, _ = world
    batch = sb.client().crm.companies.batch_api
    result = batch.read(_read([company_ids[0], "404", "405"], ["name"]))
    assert type(result) is BatchResponseSimplePublicObjectWithErrors
    assert [r.id for r in result.results] == [company_ids[0]]
    assert result.num_errors == 1
    error = result.errors[0]
    assert error.status == "error"
    assert error.category == "OBJECT_NOT_FOUND"
    assert error.context == {"ids": ["404", "405"]}
    assert sb.app.log.entries()[-1].status == 207


def test_batch_read_over_100_inputs_is_400(world: Any) -> None:
    sb, company_ids, _ = world
    batch = sb.client().crm.companies.batch_api
    exc = api_error(batch.read, _read([company_ids[0]] * 101, ["name"]))
    assert exc.status == 400
    assert body_of(exc)["category"] == "VALIDATION_ERROR"


def test_batch_read_by_email_id_property(world: Any) -> None:
    sb, _, contact_ids = world
    batch = sb.client().crm.contacts.batch_api
    body = {
        "inputs": [{"id": "person2@company2.example.com"}],
        "properties": ["seniority"],
        "idProperty": "email",
    }
    result = batch.read(body)
    assert [r.id for r in result.results] == [contact_ids[2]]


# Batch update ----------------------------------------------------------


def test_batch_update_all_good_is_200_and_persists(world: Any) -> None:
    sb, company_ids, _ = world
    api = sb.client().crm.companies
    before = api.basic_api.get_by_id(company_ids[0])
    result, status, _ = api.batch_api.update_with_http_info(
        _update([(company_ids[0], {"intent_score": "77"}), (company_ids[1], {"city": "Berlin"})])
    )
    assert status == 200
    assert type(result) is BatchResponseSimplePublicObject
    assert {r.id for r in result.results} == set(company_ids[:2])
    updated = {r.id: r for r in result.results}[company_ids[0]]
    assert updated.properties["intent_score"] == "77"
    assert updated.updated_at > before.updated_at
    after = api.basic_api.get_by_id(company_ids[0], properties=["intent_score"])
    assert after.properties["intent_score"] == "77"
    entry = sb.app.log.entries()[-2]
    assert entry.kind == "batch.update"
    assert set(entry.records) == set(company_ids[:2])
    assert entry.fields == ("city", "intent_score")


def _traced(inputs: list[tuple[str, dict[str, str]]]) -> BatchInputSimplePublicObjectBatchInput:
    """Inputs that each carry an objectWriteTraceId (``t-<id>``)."""
    return BatchInputSimplePublicObjectBatchInput(
        inputs=[
            SimplePublicObjectBatchInput(id=i, properties=p, object_write_trace_id=f"t-{i}")
            for i, p in inputs
        ]
    )


_BAD_VALUES = {
    "undefined option": ({"industry": "Banking & Finance"}, "INVALID_OPTION"),
    "not a number": ({"numberofemployees": "lots"}, "INVALID_FLOAT"),
    "unknown property": ({"segsync_segment": "Enterprise"}, "PROPERTY_DOESNT_EXIST"),
    "read-only property": ({"hs_lastmodifieddate": "1700000000000"}, "READ_ONLY_VALUE"),
}


@pytest.mark.parametrize("bad", list(_BAD_VALUES))
def test_batch_update_one_bad_value_refuses_the_whole_batch_with_400(world: Any, bad: str) -> None:
    # HubSpot: without objectWriteTraceId, a validation error in any input
    # fails the request; nothing is applied (docs/crm-apis.md).
    sb, company_ids, _ = world
    api = sb.client().crm.companies
    props, code = _BAD_VALUES[bad]
    exc = api_error(
        api.batch_api.update,
        _update([(company_ids[0], {"city": "Lisbon"}), (company_ids[1], props)]),
    )
    assert exc.status == 400
    body = body_of(exc)
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"] and body["message"].startswith("Property values were not valid")
    (detail,) = body["errors"]
    assert detail["code"] == code
    assert detail["context"] == {"propertyName": [next(iter(props))]}
    # The refusal names the property, not the record: no ids to map it back with.
    assert company_ids[1] not in exc.body
    good = api.basic_api.get_by_id(company_ids[0], properties=["city"])
    assert good.properties["city"] != "Lisbon"  # its batch-mate was not applied either
    assert sb.app.log.entries()[-2].status == 400


def test_batch_update_with_trace_ids_is_207_per_input(world: Any) -> None:
    sb, company_ids, _ = world
    api = sb.client().crm.companies
    result, status, _ = api.batch_api.update_with_http_info(
        _traced(
            [
                (company_ids[0], {"industry": "BANKING"}),
                (company_ids[1], {"industry": "Banking & Finance"}),
                (company_ids[2], {"numberofemployees": "lots"}),
            ]
        )
    )
    assert status == 207
    assert type(result) is BatchResponseSimplePublicObjectWithErrors
    assert [r.id for r in result.results] == [company_ids[0]]
    assert result.results[0].object_write_trace_id == f"t-{company_ids[0]}"
    assert result.num_errors == 2
    by_trace = {e.context["objectWriteTraceId"][0]: e for e in result.errors}
    assert set(by_trace) == {f"t-{company_ids[1]}", f"t-{company_ids[2]}"}
    assert all(e.category == "VALIDATION_ERROR" and e.status == "error" for e in result.errors)
    option = by_trace[f"t-{company_ids[1]}"]
    assert "was not one of the allowed options" in option.message
    assert option.errors[0].code == "INVALID_OPTION"
    assert "was not a valid number" in by_trace[f"t-{company_ids[2]}"].message
    good = api.basic_api.get_by_id(company_ids[0], properties=["industry"])
    bad = api.basic_api.get_by_id(company_ids[1], properties=["industry"])
    assert good.properties["industry"] == "BANKING"
    assert bad.properties["industry"] == "BANKING"  # seeded value, untouched


def test_batch_update_all_bad_with_trace_ids_is_still_207(world: Any) -> None:
    sb, company_ids, _ = world
    batch = sb.client().crm.companies.batch_api
    result, status, _ = batch.update_with_http_info(
        _traced([(company_ids[0], {"segsync_segment": "Enterprise"})])
    )
    assert status == 207
    assert result.results == []
    assert result.num_errors == 1
    assert "does not exist" in result.errors[0].message


def test_batch_update_trace_ids_on_only_some_inputs_is_the_untraced_mode(world: Any) -> None:
    sb, company_ids, _ = world
    batch = sb.client().crm.companies.batch_api
    mixed = BatchInputSimplePublicObjectBatchInput(
        inputs=[
            SimplePublicObjectBatchInput(
                id=company_ids[0], properties={"city": "A"}, object_write_trace_id="t-0"
            ),
            SimplePublicObjectBatchInput(id=company_ids[1], properties={"industry": "nope"}),
        ]
    )
    assert api_error(batch.update, mixed).status == 400


def test_batch_update_duplicate_ids_is_400(world: Any) -> None:
    sb, company_ids, _ = world
    batch = sb.client().crm.companies.batch_api
    exc = api_error(
        batch.update, _update([(company_ids[0], {"city": "A"}), (company_ids[0], {"city": "B"})])
    )
    assert exc.status == 400
    body = body_of(exc)
    assert body["category"] == "VALIDATION_ERROR"
    assert "Duplicate" in body["message"]


def test_batch_update_over_100_inputs_is_400(world: Any) -> None:
    sb, _, _ = world
    batch = sb.client().crm.companies.batch_api
    exc = api_error(batch.update, _update([(str(i), {"city": "A"}) for i in range(101)]))
    assert exc.status == 400


def test_batch_update_missing_id_is_207_object_not_found(world: Any) -> None:
    sb, company_ids, _ = world
    batch = sb.client().crm.companies.batch_api
    result = batch.update(_update([(company_ids[0], {"city": "A"}), ("777", {"city": "B"})]))
    assert [r.id for r in result.results] == [company_ids[0]]
    assert result.errors[0].category == "OBJECT_NOT_FOUND"
    assert result.errors[0].context == {"ids": ["777"]}


def test_batch_update_lock_fault_is_conflict_error_until_it_clears(world: Any) -> None:
    sb, company_ids, _ = world
    sb.app.faults.update(lock_ids={company_ids[1]}, lock_failures=1)
    batch = sb.client().crm.companies.batch_api
    payload = _update([(company_ids[0], {"city": "A"}), (company_ids[1], {"city": "B"})])
    first = batch.update(payload)
    assert [r.id for r in first.results] == [company_ids[0]]
    assert first.errors[0].category == "CONFLICT"
    assert first.errors[0].context == {"ids": [company_ids[1]]}
    second = batch.update(payload)
    assert type(second) is BatchResponseSimplePublicObject
    assert {r.id for r in second.results} == set(company_ids[:2])


def test_batch_update_validation_fault(world: Any) -> None:
    sb, company_ids, _ = world
    sb.app.faults.update(validation_failures={company_ids[0]: "custom validation rule failed"})
    batch = sb.client().crm.companies.batch_api
    pair = [(company_ids[0], {"city": "A"}), (company_ids[1], {"city": "B"})]
    exc = api_error(batch.update, _update(pair))
    assert exc.status == 400
    assert body_of(exc)["message"] == "custom validation rule failed"
    result = batch.update(_traced(pair))
    assert [r.id for r in result.results] == [company_ids[1]]
    assert result.errors[0].category == "VALIDATION_ERROR"
    assert result.errors[0].message == "custom validation rule failed"
    assert result.errors[0].context["objectWriteTraceId"] == [f"t-{company_ids[0]}"]


# Associations v4 ---------------------------------------------------------


def test_contact_to_company_association_page(world: Any) -> None:
    sb, company_ids, contact_ids = world
    assoc = sb.client().crm.associations.v4.basic_api
    page = assoc.get_page("contacts", contact_ids[4], "companies", limit=500)
    assert [r.to_object_id for r in page.results] == [company_ids[4]]
    type_ids = {t.type_id for t in page.results[0].association_types}
    assert 279 in type_ids
    unlabeled = next(t for t in page.results[0].association_types if t.type_id == 279)
    assert unlabeled.category == "HUBSPOT_DEFINED" and unlabeled.label is None
    assert page.paging is None


def test_company_to_contacts_association_page(world: Any) -> None:
    sb, company_ids, contact_ids = world
    extra = sb.portal.add_contact({"email": "second@company4.example.com"}, company_ids[4])
    assoc = sb.client().crm.associations.v4.basic_api
    page = assoc.get_page("companies", company_ids[4], "contacts")
    assert [r.to_object_id for r in page.results] == [contact_ids[4], extra]
    first = assoc.get_page("companies", company_ids[4], "contacts", limit=1)
    assert first.paging.next.after == "1"


def test_association_limit_over_500_is_400(world: Any) -> None:
    sb, _, contact_ids = world
    assoc = sb.client().crm.associations.v4.basic_api
    exc = api_error(assoc.get_page, "contacts", contact_ids[0], "companies", limit=501)
    assert exc.status == 400


def test_association_follows_contact_update(world: Any) -> None:
    sb, company_ids, contact_ids = world
    contacts = sb.client().crm.contacts.basic_api
    contacts.update(contact_ids[0], {"properties": {"associatedcompanyid": company_ids[5]}})
    assoc = sb.client().crm.associations.v4.basic_api
    page = assoc.get_page("contacts", contact_ids[0], "companies")
    assert [r.to_object_id for r in page.results] == [company_ids[5]]
    back = assoc.get_page("companies", company_ids[0], "contacts")
    assert back.results == []


def test_association_batch_read_all_found_is_200(world: Any) -> None:
    sb, company_ids, contact_ids = world
    batch = sb.client().crm.associations.v4.batch_api
    body = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": c} for c in contact_ids[:3]]
    )
    result, status, _ = batch.get_page_with_http_info("contacts", "companies", body)
    assert status == 200
    assert {r._from.id: [t.to_object_id for t in r.to] for r in result.results} == {
        contact_ids[i]: [company_ids[i]] for i in range(3)
    }
    assert sb.app.log.entries()[-1].kind == "assoc.batch.read"


def test_association_batch_read_pages_each_input_with_after(world: Any) -> None:
    # As documented: a result has paging.next.after while the input has more
    # associations; the same id sent back with that after gets the next page.
    sb, company_ids, contact_ids = world
    extra = [
        sb.portal.add_contact({"email": f"c{n}@co4.example.com"}, company_ids[4]) for n in range(4)
    ]
    sb.app.assoc_batch_page = 2
    batch = sb.client().crm.associations.v4.batch_api
    seen: list[str] = []
    after: str | None = None
    while True:
        body = BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[{"id": company_ids[4], "after": after}, {"id": company_ids[5]}]
        )
        result, status, _ = batch.get_page_with_http_info("companies", "contacts", body)
        assert status == 200
        rows = {r._from.id: r for r in result.results}
        seen += [t.to_object_id for t in rows[company_ids[4]].to]
        if after is None:
            assert [t.to_object_id for t in rows[company_ids[5]].to] == [contact_ids[5]]
        if rows[company_ids[4]].paging is None:
            break
        after = rows[company_ids[4]].paging.next.after
    assert seen == [contact_ids[4], *extra]


def test_association_batch_read_without_associations_is_207(world: Any) -> None:
    sb, _, contact_ids = world
    lonely = sb.portal.add_contact({"email": "lonely@example.com"})
    batch = sb.client().crm.associations.v4.batch_api
    result, status, _ = batch.get_page_with_http_info(
        "contacts", "companies", {"inputs": [{"id": contact_ids[0]}, {"id": lonely}, {"id": "9"}]}
    )
    assert status == 207
    assert [r._from.id for r in result.results] == [contact_ids[0]]
    assert result.num_errors == 2
    assert {e.context["fromObjectId"][0] for e in result.errors} == {lonely, "9"}
    assert all(e.category == "OBJECT_NOT_FOUND" for e in result.errors)


def test_association_batch_read_over_1000_inputs_is_400(world: Any) -> None:
    sb, _, contact_ids = world
    batch = sb.client().crm.associations.v4.batch_api
    exc = api_error(
        batch.get_page, "contacts", "companies", {"inputs": [{"id": str(i)} for i in range(1001)]}
    )
    assert exc.status == 400
    ok = batch.get_page("contacts", "companies", {"inputs": [{"id": contact_ids[0]}] * 1000})
    assert len(ok.results) == 1
