"""The engine's public API: names, fields, scores, tiers, inheritance, reasons, outputs."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector import templates
from connector.engine import REASON_LIMIT, Assignment, Engine, compile_mapping, reason_line
from connector.mapping import load_mapping, loads_mapping

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def accounts() -> Engine:
    return compile_mapping(load_mapping(templates.ACCOUNTS))


@pytest.fixture(scope="module")
def contacts() -> Engine:
    return compile_mapping(load_mapping(templates.CONTACTS))


def test_names_and_fields(accounts: Engine, contacts: Engine) -> None:
    assert accounts.object == "account"
    assert accounts.version == "2026-11-b"
    assert accounts.path.endswith("accounts.toml")
    assert accounts.segment_names == (
        "Enterprise SaaS",
        "Financial Services",
        "Mid-Market Tech",
        "SMB",
        "Everyone else",
    )
    assert accounts.tier_names == ("Tier 1", "Tier 2", "Tier 3")
    assert accounts.persona_names == ()
    assert accounts.score_names == ("fit", "intent", "value", "engagement")
    assert accounts.classification_names == {
        "value": ("Strategic", "Develop", "Re-engage", "Maintain")
    }
    assert accounts.output_fields("salesforce")["classification.value"] == "Segsync_Value_Tier__c"
    assert accounts.output_fields("hubspot")["classification_reason.value"] == (
        "segsync_value_reason"
    )
    assert accounts.inherits == frozenset()
    assert set(accounts.input_fields("salesforce")) == {
        "Industry",
        "NumberOfEmployees",
        "AnnualRevenue",
        "BillingCountry",
        "Tech_Stack__c",
        "Intent_Score__c",
        "LastActivityDate",
        "Segsync_Lock__c",
    }
    assert "numberofemployees" in accounts.input_fields("hubspot")
    assert accounts.output_fields("salesforce")["score.fit"] == "Segsync_Fit_Score__c"
    assert accounts.lock_field("salesforce") == "Segsync_Lock__c"
    assert accounts.lock_field("hubspot") == "segsync_lock"
    assert contacts.inherits == frozenset({"segment", "tier"})
    assert contacts.persona_names[-1] == "Other"
    assert set(contacts.output_fields("hubspot")) == {
        "persona",
        "segment",
        "tier",
        "reason",
        "version",
        "updated_at",
    }
    # No input is ever an output.
    for engine in (accounts, contacts):
        for crm in ("salesforce", "hubspot"):
            assert not set(engine.input_fields(crm)) & set(engine.output_fields(crm).values())


def test_unknown_crm_is_a_value_error(accounts: Engine) -> None:
    with pytest.raises(ValueError, match="unknown CRM 'pipedrive'"):
        accounts.evaluate({}, "pipedrive", NOW)
    with pytest.raises(ValueError, match="unknown CRM"):
        accounts.input_fields("pipedrive")


def test_assignment_is_frozen_and_outputs_exactly_the_declared_fields(accounts: Engine) -> None:
    record = {
        "Industry": "Computer Software",
        "NumberOfEmployees": 2400,
        "BillingCountry": "U.S.",
        "Tech_Stack__c": "Salesforce;Snowflake",
        "Intent_Score__c": 80,
        "LastActivityDate": "2026-11-20",
    }
    a = accounts.evaluate(record, "salesforce", NOW)
    with pytest.raises(FrozenInstanceError):
        a.segment = "x"  # type: ignore[misc]
    # fit: 30 (≥1000) + 20 (industry) + 10 (US) + 20 (Salesforce) + 10 (Snowflake) = 90
    # intent: 50 (≥70) + 30 (≤30 days) + 10 (≤90 days) = 90
    # value: 30 (≥1000) + 20 (enterprise software) = 50; engagement: 50 + 20 + 30 = 100
    assert (a.segment, a.tier, dict(a.scores)) == (
        "Enterprise SaaS",
        "Tier 1",
        {"fit": 90, "intent": 90, "value": 50, "engagement": 100},
    )
    # value × engagement: medium value (30 ≤ 50 < 60) × engaged (≥ 50)
    assert a.classifications == {"value": "Develop"}
    out = a.outputs("salesforce", NOW)
    assert out == {
        "Segsync_Segment__c": "Enterprise SaaS",
        "Segsync_Tier__c": "Tier 1",
        "Segsync_Fit_Score__c": 90,
        "Segsync_Intent_Score__c": 90,
        "Segsync_Reason__c": a.reason,
        "Segsync_Value_Tier__c": "Develop",
        "Segsync_Value_Reason__c": a.classification_reasons["value"],
        "Segsync_Version__c": "2026-11-b",
        "Segsync_Updated_At__c": NOW,
    }
    assert set(a.outputs("hubspot", NOW)) == set(accounts.output_fields("hubspot").values())
    assert a.reason.startswith("Tier 1 · Enterprise SaaS · fit 90 (employees ≥ 1000 +30, ")
    assert "intent 90 (strong intent +50" in a.reason
    # the main reason shows only what the tier reads; the classification's reason its scores
    assert "value" not in a.reason and "engagement" not in a.reason
    assert a.classification_reasons["value"].startswith("Develop · value 50 (employees ≥ 1000 +30")
    assert "engagement 100 (active ≤ 30 days +50" in a.classification_reasons["value"]
    assert hash(a) == hash(accounts.evaluate(dict(record), "salesforce", NOW))


def test_hand_built_assignment_without_outputs() -> None:
    a = Assignment("S", "T", {"fit": 1}, None, "v1", "why")
    assert a.outputs("salesforce", NOW) == {}
    assert a == Assignment("S", "T", {"fit": 1}, None, "v1", "why")


def test_contacts_inherit_from_parent(accounts: Engine, contacts: Engine) -> None:
    parent = accounts.evaluate({"Industry": "Banking", "NumberOfEmployees": 800}, "salesforce", NOW)
    assert parent.segment == "Financial Services"
    c = contacts.evaluate({"Title": "CFO"}, "salesforce", NOW, parent)
    assert (c.segment, c.tier, c.persona) == ("Financial Services", parent.tier, "Economic Buyer")
    assert (
        c.reason
        == f"Economic Buyer · {parent.tier} · Financial Services · segment and tier from account"
    )
    orphan = contacts.evaluate({"Title": "CFO"}, "salesforce", NOW)
    assert (orphan.segment, orphan.tier) == ("Everyone else", "Tier 3")
    assert orphan.reason.endswith("no account")
    assert c.outputs("salesforce", NOW)["Segsync_Persona__c"] == "Economic Buyer"
    explained = contacts.explain({"Title": "CFO"}, "salesforce", NOW, parent)
    assert explained.inherited == frozenset({"segment", "tier"})
    assert explained.segment.how == "inherited from the parent account"
    # An account ignores a parent.
    again = accounts.evaluate(
        {"Industry": "Banking", "NumberOfEmployees": 800}, "salesforce", NOW, c
    )
    assert again == parent


def test_contact_personas(contacts: Engine) -> None:
    cases = {
        "CEO": "Executive Sponsor",
        "Chief Revenue Officer": "Executive Sponsor",
        "CFO": "Economic Buyer",
        "CTO": "Technical Evaluator",
        "VP Sales": "Executive Sponsor",
        "VP of Engineering": "Technical Evaluator",
        "Head of Marketing Operations": "End User",
        "Director of IT": "Technical Evaluator",
        "Sales Operations Manager": "End User",
        "Software Engineer": "Technical Evaluator",
        "Account Executive": "End User",
        "Data Analyst": "End User",
        "Procurement Manager": "Economic Buyer",
        "": "Other",
        "Gardener": "Other",
    }
    got = {t: contacts.evaluate({"jobtitle": t}, "hubspot", NOW).persona for t in cases}
    assert got == cases
    # Seniority alone decides when the title says nothing.
    assert (
        contacts.evaluate({"Seniority__c": "VP"}, "salesforce", NOW).persona == "Executive Sponsor"
    )
    assert (
        contacts.evaluate({"Seniority__c": "Individual Contributor"}, "salesforce", NOW).persona
        == "End User"
    )
    assert (
        contacts.evaluate({"Department": "Purchasing"}, "salesforce", NOW).persona
        == "Economic Buyer"
    )


def test_score_cap_floor_and_tier_rules() -> None:
    text = """
object = "account"
version = "caps"

[attributes.n]
type = "integer"
salesforce = "N"

[attributes.size]
type = "number"
salesforce = "Size"

[[segments]]
name = "All"
default = true

[scores.value]
cap = 50
floor = 0
rules = [
  { points = 40, when = { attr = "n", gte = 1 } },
  { points = 40, when = { attr = "n", gte = 2 } },
  { points = -100, when = { attr = "n", lt = 0 } },
]

[scores.engagement]
rules = [ { points = 2.5, when = { attr = "n", exists = true } } ]

[[tiers]]
name = "Special"
when = { all = [ { segment = ["All"] }, { attr = "n", eq = 7 } ] }

[tier_matrix]
rows = { score = "value", at_least = [50, 25] }
columns = { attr = "size", at_least = [100] }
cells = [["A", "B"], ["C", "D"], ["E", "F"]]
"""
    engine = compile_mapping(loads_mapping(text))
    assert engine.tier_names == ("Special", "A", "B", "C", "D", "E", "F")

    def run(n: object, size: object = None) -> Assignment:
        a = engine.evaluate({"N": n, "Size": size}, "salesforce", NOW)
        e = engine.explain({"N": n, "Size": size}, "salesforce", NOW)
        assert e.tier.value == a.tier
        assert {s.name: s.value for s in e.scores} == dict(a.scores)
        return a

    assert dict(run(2).scores) == {"value": 50, "engagement": 2.5}  # 80 capped at 50
    assert dict(run(-3).scores) == {"value": 0, "engagement": 2.5}  # -100 floored at 0
    assert dict(run(None).scores) == {"value": 0, "engagement": 0}
    assert run(2, 150).tier == "A"
    assert run(2, None).tier == "B"  # a missing axis attribute is the last band
    assert run(1, 100).tier == "C"
    assert run(0, 5).tier == "F"
    assert run(7, 500).tier == "Special"  # the override rule comes before the matrix
    assert run(7).reason.startswith(
        "Special · All · value 50 (n ≥ 1 +40, n ≥ 2 +40) · engagement 2.5"
    )


def test_reason_line_truncates_cleanly() -> None:
    hits = [f"rule number {i} +10" for i in range(40)]
    line = reason_line(
        ["Tier 1", "Enterprise SaaS"], [("fit", 400, hits), ("intent", 64, hits[:3])]
    )
    assert len(line) <= REASON_LIMIT
    assert line.startswith("Tier 1 · Enterprise SaaS · fit 400 (rule number 0 +10, ")
    assert "…)" in line
    assert line.endswith("· intent 64 (…)")
    short = reason_line(["Tier 1", "X"], [("fit", 80, ["a +30", "b +20"]), ("intent", 64, [])])
    assert short == "Tier 1 · X · fit 80 (a +30, b +20) · intent 64"
    huge = reason_line(["T" * 300], [])
    assert len(huge) == REASON_LIMIT and huge.endswith("…")


def test_long_labels_keep_the_reason_within_255(accounts: Engine) -> None:
    text = (templates.ACCOUNTS).read_text(encoding="utf-8")
    text = text.replace('label = "target industry"', f'label = "{"very long label " * 30}"')
    engine = compile_mapping(loads_mapping(text))
    a = engine.evaluate({"Industry": "Software", "NumberOfEmployees": 5000}, "salesforce", NOW)
    assert len(a.reason) <= REASON_LIMIT
    assert a.reason.startswith("Tier")


def test_explanation_dict_is_json_and_render_is_text(accounts: Engine) -> None:
    record = {
        "Industry": " banking ",
        "NumberOfEmployees": "lots",
        "Tech_Stack__c": "AWS;Nope",
        "LastActivityDate": "2026-11-01",
    }
    e = accounts.explain(record, "salesforce", NOW)
    doc = json.loads(json.dumps(e.to_dict()))
    attrs = {a["name"]: a for a in doc["attributes"]}
    assert attrs["industry"]["raw"] == " banking "
    assert attrs["industry"]["value"] == "Financial Services"
    assert attrs["employees"]["value"] is None
    assert "cannot read 'lots' as integer" in attrs["employees"]["note"]
    assert attrs["tech_stack"]["value"] == ["AWS"]
    assert doc["assignment"]["segment"] == e.assignment.segment
    statuses = {r["name"]: r["status"] for r in doc["segment"]["rules"]}
    assert statuses["Financial Services"] == "no match"  # employees is blank
    assert statuses["Everyone else"] == "default"
    assert doc["tier"]["matrix"]["cell"] == e.assignment.tier
    text = e.render()
    assert "cannot read 'lots' as integer" in text
    assert "Segment: 'Everyone else' (default)" in text
    assert f"reason: {e.assignment.reason}" in text


def test_generated_source_holds_no_mapping_text(accounts: Engine) -> None:
    source = accounts.source()
    assert "Enterprise SaaS" not in source
    assert "NumberOfEmployees" not in source
    assert source.startswith("def evaluate(fields, crm, now, parent=None):")


def test_nested_parent_fields_are_read() -> None:
    text = """
object = "contact"
version = "nested"

[attributes.account_name]
type = "string"
salesforce = "Account.Name"

[[segments]]
name = "Acme"
when = { attr = "account_name", eq = "Acme" }

[[segments]]
name = "Other"
default = true

[[tiers]]
name = "T"
default = true

[[personas]]
name = "P"
default = true
"""
    engine = compile_mapping(loads_mapping(text))
    assert engine.evaluate({"Account": {"Name": "Acme"}}, "salesforce", NOW).segment == "Acme"
    assert engine.evaluate({"Account.Name": "Acme"}, "salesforce", NOW).segment == "Acme"
    assert engine.evaluate({"Account": "weird"}, "salesforce", NOW).segment == "Other"


def test_contact_rules_may_name_the_inherited_account_segments() -> None:
    text = """
object = "contact"
version = "inh"
inherit = ["segment", "tier"]

[attributes.title]
type = "string"
salesforce = "Title"

[[segments]]
name = "Everyone else"
default = true

[[tiers]]
name = "Tier 3"
default = true

[[personas]]
name = "Enterprise Exec"
when = { all = [ { segment = "Enterprise SaaS" }, { attr = "title", matches = "^c" } ] }

[[personas]]
name = "Other"
default = true
"""
    engine = compile_mapping(loads_mapping(text))
    parent = Assignment("Enterprise SaaS", "Tier 1", {}, None, "v")
    assert engine.evaluate({"Title": "CEO"}, "salesforce", NOW, parent).persona == "Enterprise Exec"
    assert engine.evaluate({"Title": "CEO"}, "salesforce", NOW).persona == "Other"
    e = engine.explain({"Title": "CEO"}, "salesforce", NOW, parent)
    assert e.persona is not None and e.persona.value == "Enterprise Exec"


def test_assignments_pickle_and_scores_are_read_only(accounts: Engine) -> None:
    import pickle

    a = accounts.evaluate({"Industry": "SaaS", "NumberOfEmployees": 5000}, "salesforce", NOW)
    b = pickle.loads(pickle.dumps(a))
    assert b == a
    assert b.outputs("hubspot", NOW) == a.outputs("hubspot", NOW) != {}
    assert json.loads(json.dumps(a.scores)) == dict(a.scores)
    with pytest.raises(TypeError, match="read-only"):
        a.scores["fit"] = 1  # type: ignore[index]
    # Shared between records with the same decisions, so nothing could leak anyway.
    assert (
        accounts.evaluate({"Industry": "SaaS", "NumberOfEmployees": 5000}, "salesforce", NOW) is a
    )
