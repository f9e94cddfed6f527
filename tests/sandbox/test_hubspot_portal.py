"""The Portal API used by data loaders: loading, validation, stamps, persistence."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hubspot_fixtures import FakeClock, company_rows, running, seeded_portal

from segsync_sandbox.hubspot import (
    AlreadyExists,
    ObjectNotFound,
    Portal,
    PropertyValuesError,
    ValidationError,
)


def test_add_company_and_contact_assign_ids_stamps_and_association() -> None:
    clock = FakeClock(1_700_000_000.0)
    portal = Portal(clock=clock)
    company = portal.add_company({"name": "Acme", "industry": "RETAIL", "createdate": "2020-01-02"})
    contact = portal.add_contact({"email": "a@acme.example"}, company)
    assert company.isdigit() and contact.isdigit() and company != contact
    record = portal.get("companies", company)
    assert record["properties"]["hs_object_id"] == company
    assert record["properties"]["createdate"] == "2020-01-02T00:00:00.000Z"
    assert record["properties"]["hs_lastmodifieddate"] == "2023-11-14T22:13:20.000Z"
    person = portal.get("contacts", contact)
    assert person["properties"]["associatedcompanyid"] == company
    assert person["properties"]["lastmodifieddate"] == person["properties"]["hs_lastmodifieddate"]
    assert portal.associated("contacts", contact, "companies") == [company]
    assert portal.associated("companies", company, "contacts") == [contact]
    assert portal.associated("contacts", "1", "companies") is None


def test_load_returns_ids_in_order_and_links_contacts() -> None:
    portal, company_ids, contact_ids = seeded_portal(5)
    assert [int(i) for i in company_ids] == sorted(int(i) for i in company_ids)
    assert portal.count("companies") == 5 and portal.count("contacts") == 5
    for company, contact in zip(company_ids, contact_ids, strict=True):
        assert portal.associated("contacts", contact, "companies") == [company]


def test_load_validates_rows() -> None:
    portal = Portal()
    with pytest.raises(PropertyValuesError) as info:
        portal.load_companies([{"name": "ok"}, {"industry": "Software"}])
    assert info.value.problems[0]["error"] == "INVALID_OPTION"
    with pytest.raises(PropertyValuesError):
        portal.load_contacts([{"email": "x@y.z", "associatedcompanyid": "123"}])


@pytest.mark.parametrize(
    ("props", "code"),
    [
        ({"unknown": "1"}, "PROPERTY_DOESNT_EXIST"),
        ({"intent_score": "high"}, "INVALID_FLOAT"),
        ({"industry": "Technology"}, "INVALID_OPTION"),
        ({"name": "x" * 65_537}, "INVALID_STRING_TOO_LONG"),
        ({"hs_lastmodifieddate": "1700000000000"}, "READ_ONLY_VALUE"),
        ({"createdate": "1700000000000"}, "READ_ONLY_VALUE"),
    ],
)
def test_update_rejects(props: dict[str, str], code: str) -> None:
    portal, company_ids, _ = seeded_portal(1)
    before = portal.get("companies", company_ids[0])
    with pytest.raises(PropertyValuesError) as info:
        portal.update("companies", company_ids[0], props)
    assert info.value.problems[0]["error"] == code
    assert info.value.status == 400 and info.value.category == "VALIDATION_ERROR"
    assert portal.get("companies", company_ids[0]) == before


def test_update_accepts_limits_and_lists_every_problem() -> None:
    portal, company_ids, _ = seeded_portal(1)
    ok = portal.update("companies", company_ids[0], {"name": "x" * 65_536})
    assert len(ok["properties"]["name"]) == 65_536
    with pytest.raises(PropertyValuesError) as info:
        portal.update("companies", company_ids[0], {"intent_score": "x", "industry": "y"})
    assert {p["name"] for p in info.value.problems} == {"intent_score", "industry"}


def test_stamps_advance_strictly_even_with_a_frozen_clock() -> None:
    clock = FakeClock(1_700_000_000.0)
    portal = Portal(clock=clock)
    company = portal.add_company({"name": "Acme"})
    stamps = [portal.get("companies", company)["updatedAt"]]
    for i in range(3):
        record = portal.update("companies", company, {"city": f"City {i}"})
        assert record["properties"]["hs_lastmodifieddate"] == record["updatedAt"]
        stamps.append(record["updatedAt"])
    assert stamps == sorted(set(stamps))
    assert len(set(stamps)) == 4


def test_empty_string_and_none_clear() -> None:
    portal, company_ids, _ = seeded_portal(1)
    portal.update("companies", company_ids[0], {"country": "", "domain": None})
    props = portal.get("companies", company_ids[0])["properties"]
    assert "country" not in props and "domain" not in props


def test_multi_select_and_dates() -> None:
    portal, company_ids, _ = seeded_portal(1)
    record = portal.update(
        "companies",
        company_ids[0],
        {"tech_stack": "AWS;Stripe", "notes_last_updated": "2024-03-01T10:00:00Z"},
    )
    assert record["properties"]["tech_stack"] == "AWS;Stripe"
    assert record["properties"]["notes_last_updated"] == "2024-03-01T10:00:00.000Z"
    portal.create_group("companies", {"name": "segmentation", "label": "Segmentation"})
    portal.create_property(
        "companies",
        {
            "name": "renewal_date",
            "label": "Renewal",
            "type": "date",
            "fieldType": "date",
            "groupName": "segmentation",
        },
    )
    midnight = portal.update("companies", company_ids[0], {"renewal_date": "1709251200000"})
    assert midnight["properties"]["renewal_date"] == "2024-03-01"
    with pytest.raises(PropertyValuesError):
        portal.update("companies", company_ids[0], {"renewal_date": "1709251200001"})


def test_archive_and_not_found() -> None:
    portal, company_ids, _ = seeded_portal(2)
    portal.archive("companies", company_ids[0])
    with pytest.raises(ObjectNotFound):
        portal.get("companies", company_ids[0])
    assert portal.get("companies", company_ids[0], archived=True)["archived"] is True
    with pytest.raises(ObjectNotFound):
        portal.update("companies", company_ids[0], {"name": "x"})
    with pytest.raises(ObjectNotFound):
        portal.archive("companies", "12")
    assert portal.count("companies") == 1


def test_property_and_group_errors() -> None:
    portal = Portal()
    portal.create_group("contacts", {"name": "segmentation", "label": "Segmentation"})
    with pytest.raises(AlreadyExists):
        portal.create_group("contacts", {"name": "segmentation", "label": "Again"})
    spec = {
        "name": "segsync_persona",
        "label": "Persona",
        "type": "enumeration",
        "fieldType": "radio",
        "groupName": "segmentation",
        "options": [{"label": "Buyer", "value": "Buyer"}],
    }
    portal.create_property("contacts", spec)
    with pytest.raises(AlreadyExists):
        portal.create_property("contacts", spec)
    with pytest.raises(ValidationError):
        portal.create_property(
            "contacts",
            dict(
                spec, name="big", options=[{"label": str(i), "value": str(i)} for i in range(5_001)]
            ),
        )


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    portal, company_ids, contact_ids = seeded_portal(4)
    portal.create_group("companies", {"name": "segmentation", "label": "Segmentation"})
    portal.create_property(
        "companies",
        {
            "name": "segsync_tier",
            "label": "Tier",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "segmentation",
            "options": [{"label": "A", "value": "A"}],
        },
    )
    portal.update("companies", company_ids[1], {"segsync_tier": "A"})
    portal.archive("companies", company_ids[3])
    portal.save(tmp_path)
    lines = (tmp_path / "companies.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["id"] == company_ids[0]

    restored = Portal.from_dir(tmp_path)
    assert restored.get("companies", company_ids[1]) == portal.get("companies", company_ids[1])
    assert restored.get_property("companies", "segsync_tier")["options"][0]["value"] == "A"
    assert restored.count("companies") == 3
    assert restored.get("companies", company_ids[3], archived=True)["archived"] is True
    assert restored.associated("contacts", contact_ids[2], "companies") == [company_ids[2]]
    new_id = restored.add_company({"name": "After restart"})
    assert int(new_id) > max(int(i) for i in company_ids)
    before = restored.get("companies", company_ids[1])["updatedAt"]
    after = restored.update("companies", company_ids[1], {"city": "Paris"})["updatedAt"]
    assert after > before


def test_loaded_portal_serves_over_http(tmp_path: Path) -> None:
    portal = Portal()
    ids = portal.load_companies(company_rows(3))
    portal.save(tmp_path)
    with running(Portal.from_dir(tmp_path)) as sb:
        page = sb.client().crm.companies.basic_api.get_page(limit=10)
        assert [r.id for r in page.results] == ids


def test_concurrent_writes_keep_every_stamp_distinct() -> None:
    portal, company_ids, _ = seeded_portal(4)
    errors: list[BaseException] = []

    def writer(record_id: str) -> None:
        try:
            for i in range(50):
                portal.update("companies", record_id, {"intent_score": str(i)})
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in company_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stamps = [portal.get("companies", i)["updatedAt"] for i in company_ids]
    assert len(set(stamps)) == 4
    assert all(
        portal.get("companies", i)["properties"]["intent_score"] == "49" for i in company_ids
    )
