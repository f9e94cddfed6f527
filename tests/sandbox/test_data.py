"""The synthetic dataset: determinism, slices, distributions, and both CRM formats."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import statistics
from collections import Counter
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync_sandbox import data
from segsync_sandbox.data import (
    COUNTRIES,
    INDUSTRIES,
    REFERENCE,
    SEEDED_DIFFERENCES,
    SENIORITIES,
    TECH_STACK,
    Company,
    Contact,
    companies,
    company,
    contacts,
    contacts_of,
    hubspot_company_id,
    hubspot_company_props,
    hubspot_contact_props,
    salesforce_account_id,
    salesforce_account_row,
    salesforce_contact_row,
)
from segsync_sandbox.hubspot import (
    INDUSTRY_OPTIONS,
    LIFECYCLE_OPTIONS,
    SENIORITY_OPTIONS,
    TECH_STACK_OPTIONS,
)
from segsync_sandbox.salesforce import make_id

N = 3000


@pytest.fixture(scope="module")
def sample() -> list[Company]:
    return list(companies(42, N))


@pytest.fixture(scope="module")
def people() -> list[Contact]:
    return list(contacts(42, 600))


def _checksum(id15: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    out = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if ch.isupper())
        out += alphabet[bits]
    return out


def _host(website: str) -> str:
    url = website if "://" in website else f"http://{website}"
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


# Determinism and slices ------------------------------------------------------


def test_same_seed_same_records() -> None:
    assert list(companies(7, 200)) == list(companies(7, 200))
    assert list(contacts(7, 100)) == list(contacts(7, 100))


def test_different_seed_different_records() -> None:
    a, b = list(companies(7, 200)), list(companies(8, 200))
    assert sum(x.domain == y.domain for x, y in zip(a, b, strict=True)) < 10
    assert sum(x.employees == y.employees for x, y in zip(a, b, strict=True)) < 100
    assert [c.email for c in contacts(7, 50)] != [c.email for c in contacts(8, 50)]


def test_generators_stream() -> None:
    stream = companies(1, 10**9)
    first = next(stream)
    assert first.index == 0 and next(stream).index == 1


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**40),
    start=st.integers(0, 80),
    n=st.integers(0, 120),
)
def test_any_slice_regenerates_identically(seed: int, start: int, n: int) -> None:
    full = list(companies(seed, n))
    assert list(companies(seed, n, start=start)) == full[start:]
    if start < n:
        assert company(seed, start) == full[start]
    people = list(contacts(seed, n))
    tail = [p for p in people if p.company_index >= start]
    assert list(contacts(seed, n, start=start)) == tail
    if start < n:
        assert list(contacts_of(full[start], seed)) == [
            p for p in people if p.company_index == start
        ]


def test_negative_positions_are_rejected() -> None:
    with pytest.raises(ValueError, match="start"):
        next(companies(1, 5, start=-1))
    with pytest.raises(ValueError, match="index"):
        company(1, -1)


def test_records_are_frozen() -> None:
    c = company(1, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.name = "x"  # type: ignore[misc]


def test_reference_moves_dates_and_must_be_aware() -> None:
    later = REFERENCE + dt.timedelta(days=10)
    a, b = company(3, 5), company(3, 5, reference=later)
    assert b.created_at - a.created_at == dt.timedelta(days=10)
    assert dataclasses.replace(b, created_at=a.created_at, last_activity=a.last_activity) == a
    with pytest.raises(ValueError, match="timezone-aware"):
        list(companies(3, 1, reference=dt.datetime(2026, 1, 1)))


# Names, domains, ids ---------------------------------------------------------


def test_domains_unique_within_and_beyond_the_name_space(sample: list[Company]) -> None:
    assert len({c.domain for c in sample}) == len(sample)
    space = data._naming(42)[0]
    wrapped = [company(42, space + i) for i in range(50)]
    assert {c.domain for c in wrapped}.isdisjoint(c.domain for c in sample)
    assert all(re.fullmatch(r"[a-z-]+[0-9]*\.[a-z]+", c.domain) for c in sample)


def test_domain_forms_are_a_bijection() -> None:
    seen = {
        data._domain(p, c, f, g)
        for p in range(len(data._PREFIXES))
        for c in range(len(data._CORES))
        for f in range(len(data._DOMAIN_FORMS))
        for g in (0, 1)
    }
    assert len(seen) == 2 * len(data._PREFIXES) * len(data._CORES) * len(data._DOMAIN_FORMS)


def test_salesforce_ids_are_18_chars_with_valid_checksum() -> None:
    for number in (0, 1, 35, 36, 123_456, 999_999, 36**11):
        account = salesforce_account_id(number)
        assert len(account) == 18 and account.startswith("001")
        assert account[15:] == _checksum(account[:15])
        assert int(account[3:15], 36) == number + 1
    assert data.salesforce_contact_id(5).startswith("003")
    assert len({salesforce_account_id(i) for i in range(5000)}) == 5000


def test_salesforce_ids_follow_the_sandbox_org_scheme() -> None:
    for number in (0, 1, 46_655, 46_656, 36**6 - 1, 36**6, 36**12 - 1):
        assert data.salesforce_id("001", number) == make_id("Account", number)
        assert data.salesforce_id("003", number) == make_id("Contact", number)
    assert salesforce_account_id(0) == make_id("Account", 1)
    with pytest.raises(ValueError, match="does not fit"):
        data.salesforce_id("001", 36**12)


def test_contact_numbers_and_ids_are_unique(people: list[Contact]) -> None:
    assert len({p.number for p in people}) == len(people)
    assert len({data.salesforce_contact_id(p.number) for p in people}) == len(people)


# Distributions ---------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["website", "industry", "employees", "annual_revenue", "country", "phone", "intent_score"],
)
def test_blank_share_per_field(sample: list[Company], field: str) -> None:
    share = sum(getattr(c, field) is None for c in sample) / len(sample)
    assert 0.04 <= share <= 0.12, share


def test_industry_labels_are_messy_but_map_back(sample: list[Company]) -> None:
    labels = [c.industry_label for c in sample if c.industry_label is not None]
    synonyms = {enum: {s.casefold() for s in spellings} for enum, _, spellings in INDUSTRIES}
    for c in sample:
        if c.industry is None:
            assert c.industry_label is None
        else:
            assert c.industry_label is not None
            assert c.industry_label.strip().casefold() in synonyms[c.industry]
    assert any(label != label.strip() for label in labels)
    assert any(label.islower() for label in labels)
    assert any(label.isupper() for label in labels)
    software = {
        c.industry_label.strip()
        for c in sample
        if c.industry == "COMPUTER_SOFTWARE" and c.industry_label
    }
    assert {"Software", "Technology", "Computer Software", "SaaS"} <= software
    assert len({c.industry for c in sample}) == len(INDUSTRIES) + 1  # every one, plus blank


def test_countries_in_several_spellings_us_heavy(sample: list[Company]) -> None:
    by_code: dict[str, Counter[str]] = {}
    for c in sample:
        if c.country is not None:
            assert c.country_label is not None
            by_code.setdefault(c.country, Counter())[c.country_label] += 1
    assert set(by_code["US"]) == {"United States", "USA", "US", "U.S.", "United States of America"}
    assert {"United Kingdom", "UK"} <= set(by_code["GB"])
    assert {"Germany", "Deutschland"} <= set(by_code["DE"])
    us = sum(by_code["US"].values()) / len(sample)
    assert 0.35 <= us <= 0.55
    assert set(by_code) == {code for code, *_ in COUNTRIES}


def test_headcount_long_tail_and_revenue_correlated(sample: list[Company]) -> None:
    heads = [c.employees for c in sample if c.employees is not None]
    assert min(heads) >= 1
    assert 0.45 <= sum(h <= 50 for h in heads) / len(heads) <= 0.75
    assert 0.01 <= sum(h > 1000 for h in heads) / len(heads) <= 0.10
    assert max(heads) >= 10_000
    small = [c.annual_revenue for c in sample if c.annual_revenue and (c.employees or 0) <= 50]
    large = [c.annual_revenue for c in sample if c.annual_revenue and (c.employees or 0) > 1000]
    assert statistics.median(large) > 20 * statistics.median(small)


def test_tech_stack_sizes_correlate_with_headcount(sample: list[Company]) -> None:
    assert all(0 <= len(c.tech_stack) <= 6 for c in sample)
    assert all(set(c.tech_stack) <= set(TECH_STACK) for c in sample)
    assert all(len(set(c.tech_stack)) == len(c.tech_stack) for c in sample)
    small = [len(c.tech_stack) for c in sample if (c.employees or 0) <= 50]
    large = [len(c.tech_stack) for c in sample if (c.employees or 0) > 1000]
    assert statistics.mean(large) > statistics.mean(small) + 1
    assert any(not c.tech_stack for c in sample)


def test_intent_skews_low_with_a_hot_tail(sample: list[Company]) -> None:
    scores = [c.intent_score for c in sample if c.intent_score is not None]
    assert all(0 <= s <= 100 for s in scores)
    assert statistics.median(scores) < 30
    assert 0.04 <= sum(s >= 70 for s in scores) / len(scores) <= 0.15


def test_dates_spread_back_from_the_reference(sample: list[Company]) -> None:
    activity = [c.last_activity for c in sample if c.last_activity is not None]
    assert all(REFERENCE - dt.timedelta(days=731) <= a <= REFERENCE for a in activity)
    assert all(c.created_at <= c.last_activity for c in sample if c.last_activity)
    recent = sum(a >= REFERENCE - dt.timedelta(days=90) for a in activity) / len(activity)
    assert 0.4 <= recent <= 0.8
    assert min(activity) < REFERENCE - dt.timedelta(days=600)


def test_contacts_about_three_per_company(people: list[Contact]) -> None:
    per_company = Counter(p.company_index for p in people)
    assert 2.6 <= len(people) / 600 <= 3.4
    assert max(per_company.values()) == 5
    assert len(list(contacts(1, 50, per_company=0))) == 0
    assert 9 <= len(list(contacts(1, 50, per_company=10))) / 50 <= 11


def test_contact_titles_seniorities_and_emails(people: list[Contact]) -> None:
    seniorities = Counter(p.seniority for p in people)
    assert set(seniorities) == {*SENIORITIES, None}
    assert seniorities["Individual Contributor"] > seniorities["Executive"]
    titles = {p.title for p in people}
    assert {"CEO", "VP Sales", "Software Engineer", None} <= titles
    assert 0.03 <= sum(p.email is None for p in people) / len(people) <= 0.12
    by_index = {c.index: c for c in companies(42, 600)}
    for p in people:
        if p.email is not None:
            local, _, domain = p.email.partition("@")
            assert domain == by_index[p.company_index].domain
            assert re.fullmatch(r"[a-z0-9._\-üö]+", local), p.email
        if p.last_activity is not None:
            assert p.created_at <= p.last_activity
    emails = [p.email for p in people if p.email]
    assert len(set(emails)) == len(emails)


# CRM formats -----------------------------------------------------------------


def test_salesforce_account_row_types(sample: list[Company]) -> None:
    for c in sample[:500]:
        row = salesforce_account_row(c)
        assert row["Id"] == salesforce_account_id(c.index)
        assert isinstance(row["Name"], str)
        assert row["NumberOfEmployees"] is None or type(row["NumberOfEmployees"]) is int
        assert row["AnnualRevenue"] is None or type(row["AnnualRevenue"]) is float
        assert row["Intent_Score__c"] is None or type(row["Intent_Score__c"]) is float
        seeded = SEEDED_DIFFERENCES.get(c.index)
        if seeded and seeded[0] == "salesforce":
            assert row[seeded[1]] == seeded[2]
        else:
            assert row["Industry"] == c.industry_label
        assert row["BillingCountry"] == c.country_label
        if row["LastActivityDate"] is not None:
            assert dt.date.fromisoformat(row["LastActivityDate"]) == c.last_activity.date()  # type: ignore[union-attr]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000", row["CreatedDate"])
        if row["Tech_Stack__c"] is not None:
            assert row["Tech_Stack__c"].split(";") == list(c.tech_stack)
        else:
            assert c.tech_stack == ()


def test_salesforce_contact_row_links_the_account(people: list[Contact]) -> None:
    for p in people:
        row = salesforce_contact_row(p)
        assert row["AccountId"] == salesforce_account_id(p.company_index)
        assert len(row["Id"]) == 18 and row["Id"].startswith("003")
        assert row["Seniority__c"] in (*SENIORITIES, None)
        assert row["LastName"] and row["Email"] == p.email


def test_hubspot_props_are_strings_and_valid_options(sample: list[Company]) -> None:
    for c in sample[:500]:
        props = hubspot_company_props(c)
        assert all(isinstance(v, str) and v != "" for v in props.values())
        assert props["domain"] == c.domain
        assert props.get("industry") in (*INDUSTRY_OPTIONS, None)
        assert props.get("lifecyclestage") in (*LIFECYCLE_OPTIONS, None)
        for value in props.get("tech_stack", "").split(";"):
            assert value in (*TECH_STACK_OPTIONS, "")
        if c.employees is not None:
            assert int(props["numberofemployees"]) == c.employees
        if c.annual_revenue is not None:
            assert float(props["annualrevenue"]) == c.annual_revenue
        seeded = SEEDED_DIFFERENCES.get(c.index)
        if seeded and seeded[0] == "hubspot":
            assert props[seeded[1]] == seeded[2]
        elif c.industry is not None:
            assert props["industry"] == c.industry
        # HubSpot's Salesforce integration linked about 70 % of the companies.
        assert props.get("salesforceaccountid") == (
            salesforce_account_id(c.index) if c.synced else None
        )
        if c.last_activity is not None:
            parsed = dt.datetime.fromisoformat(props["notes_last_updated"].replace("Z", "+00:00"))
            assert parsed == c.last_activity
        else:
            assert "notes_last_updated" not in props
    share = sum(c.synced for c in sample[:500]) / 500
    assert 0.6 < share < 0.8


def test_hubspot_contact_props(people: list[Contact]) -> None:
    for p in people:
        props = hubspot_contact_props(p)
        assert all(isinstance(v, str) for v in props.values())
        assert props["associatedcompanyid"] == hubspot_company_id(p.company_index)
        assert props.get("seniority") in (*SENIORITY_OPTIONS, None)


def test_same_company_same_domain_in_both_crms(sample: list[Company]) -> None:
    matched = 0
    for c in sample:
        website = salesforce_account_row(c)["Website"]
        if website is None:
            continue
        assert _host(website) == hubspot_company_props(c)["domain"]
        matched += 1
    assert matched > 0.9 * len(sample)
    assert len({salesforce_account_row(c)["Website"] for c in sample if c.website}) > 1
