"""Identity matching across the CRMs: normalization and the order of keys (pure)."""

from __future__ import annotations

import pytest

from connector.analysis.identity import (
    Keys,
    match_records,
    normalize_domain,
    normalize_email,
    normalize_text,
)


@pytest.mark.parametrize(
    "value",
    [
        "acme.com",
        "ACME.COM",
        "www.acme.com",
        "https://www.Acme.com/about?x=1#top",
        "http://acme.com:8080/",
        "acme.com.",
        "  https://user@acme.com/  ",
        "HTTPS://WWW.ACME.COM",
    ],
)
def test_domains_normalize_to_the_host(value: str) -> None:
    assert normalize_domain(value) == "acme.com"


@pytest.mark.parametrize("value", [None, "", "   ", "n/a", "localhost", "http:///path"])
def test_values_naming_no_domain(value: str | None) -> None:
    assert normalize_domain(value) is None


def test_subdomains_other_than_www_are_kept() -> None:
    assert normalize_domain("https://eu.acme.com") == "eu.acme.com"
    assert normalize_domain("wwwacme.com") == "wwwacme.com"


def test_emails_and_text() -> None:
    assert normalize_email(" Jane.Doe@Acme.COM ") == "jane.doe@acme.com"
    assert normalize_email("mailto:jane@acme.com") == "jane@acme.com"
    assert normalize_email("jane") is None
    assert normalize_email("jane@localhost") is None
    assert normalize_text("  Acme   Apps ") == normalize_text("acme apps")


def test_keys_are_tried_in_order_and_each_record_pairs_once() -> None:
    sf = [
        Keys("001A", "001A", "acme.com", attribute="acme"),
        Keys("001B", "001B", "beta.io", attribute="beta"),
        Keys("001C", "001C", None, attribute="gamma inc"),
        Keys("001D", "001D", "delta.ai"),
    ]
    hs = [
        # The integration's id wins over a domain that names another account.
        Keys("1", "001A", "beta.io"),
        Keys("2", None, "beta.io"),
        Keys("3", None, None, attribute="gamma inc"),
        # A stored id of an account that is gone: the domain still matches.
        Keys("4", "001ZZZ", "delta.ai"),
    ]
    identity = match_records(sf, hs)
    pairs = {(m.salesforce_id, m.hubspot_id, m.by) for m in identity.matches}
    assert pairs == {
        ("001A", "1", "integration_id"),
        ("001B", "2", "domain"),
        ("001C", "3", "attribute"),
        ("001D", "4", "domain"),
    }
    assert not identity.ambiguous
    assert not identity.unmatched_salesforce and not identity.unmatched_hubspot
    assert identity.counts_by_method() == {"integration_id": 1, "domain": 2, "attribute": 1}


def test_several_candidates_are_ambiguous_not_guessed() -> None:
    sf = [Keys("001A", "001A", "acme.com"), Keys("001B", "001B", "acme.com"), Keys("001C", "001C")]
    hs = [Keys("1", None, "acme.com"), Keys("2", None, "solo.com")]
    identity = match_records(sf, hs)
    assert identity.matches == []
    ambiguous = {(a.crm, a.id): a for a in identity.ambiguous}
    assert set(ambiguous) == {("salesforce", "001A"), ("salesforce", "001B"), ("hubspot", "1")}
    assert ambiguous["hubspot", "1"].candidates == ("001A", "001B")
    assert ambiguous["hubspot", "1"].by == "domain"
    assert identity.unmatched_salesforce == ["001C"]
    assert identity.unmatched_hubspot == ["2"]


def test_a_later_key_settles_an_ambiguous_record() -> None:
    sf = [
        Keys("001A", "001A", "acme.com", attribute="acme east"),
        Keys("001B", "001B", "acme.com", attribute="acme west"),
    ]
    hs = [Keys("1", None, "acme.com", attribute=normalize_text("ACME  West"))]
    identity = match_records(sf, hs, ("integration_id", "domain", "attribute"))
    assert [(m.salesforce_id, m.hubspot_id, m.by) for m in identity.matches] == [
        ("001B", "1", "attribute")
    ]
    # The other account is still in doubt: it shared a domain with the company.
    assert [(a.crm, a.id) for a in identity.ambiguous] == [("salesforce", "001A")]


def test_two_companies_claiming_one_account() -> None:
    sf = [Keys("001A", "001A", "acme.com")]
    hs = [Keys("1", "001A", None), Keys("2", "001A", None)]
    identity = match_records(sf, hs)
    assert identity.matches == []
    assert {(a.crm, a.id, a.by) for a in identity.ambiguous} == {
        ("hubspot", "1", "integration_id"),
        ("hubspot", "2", "integration_id"),
        ("salesforce", "001A", "integration_id"),
    }


def test_contacts_match_by_email() -> None:
    sf = [Keys("003A", "003A", email="jane@acme.com"), Keys("003B", "003B", email=None)]
    hs = [Keys("7", None, email="jane@acme.com"), Keys("8", "003B", email="x@y.com")]
    identity = match_records(sf, hs, ("integration_id", "email"))
    assert {(m.salesforce_id, m.hubspot_id, m.by) for m in identity.matches} == {
        ("003A", "7", "email"),
        ("003B", "8", "integration_id"),
    }


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown identity keys"):
        match_records([], [], ("name",))
