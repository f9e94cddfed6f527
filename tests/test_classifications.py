"""Several classifications per object: loading, evaluation, explanation, outputs, provisioning.

The end-to-end part (provisioned and written in both CRMs through the real
clients) lives in tests/test_sync_cycle.py beside the other sync cycles.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.errors import MappingError
from connector.mapping import load_mapping, loads_mapping
from connector.sync.provision import output_specs

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# Two classifications beside the tier: one by rules only, one by a matrix with an override.
MAPPING = """
object = "account"
version = "c-1"

[attributes.employees]
type = "integer"
salesforce = "NumberOfEmployees"
hubspot = "numberofemployees"

[attributes.revenue]
type = "number"
salesforce = "AnnualRevenue"
hubspot = "annualrevenue"

[attributes.visits]
type = "integer"
salesforce = "Visits__c"
hubspot = "visits"

[[segments]]
name = "Big"
when = { attr = "employees", gte = 1000 }

[[segments]]
name = "Rest"
default = true

[scores.size]
rules = [
  { points = 50, label = "big", when = { attr = "employees", gte = 1000 } },
  { points = 20, label = "mid", when = { attr = "employees", between = [100, 999] } },
]

[scores.value]
rules = [
  { points = 60, label = "rich", when = { attr = "revenue", gte = 1_000_000 } },
  { points = 30, label = "some", when = { attr = "revenue", between = [100_000, 999_999] } },
]

[scores.engagement]
rules = [ { points = 10, label = "visit", when = { attr = "visits", gte = 1 } },
          { points = 40, label = "regular", when = { attr = "visits", gte = 10 } } ]

[[tiers]]
name = "Tier 1"
when = { score = "size", gte = 50 }

[[tiers]]
name = "Tier 2"
default = true

[classifications.value]
description = "Value × engagement."

[[classifications.value.tiers]]
name = "Strategic"
when = { all = [ { segment = "Big" }, { score = "value", gte = 60 } ] }

[classifications.value.matrix]
rows = { score = "value", at_least = [60, 30], labels = ["high", "medium", "low"] }
columns = { score = "engagement", at_least = [50], labels = ["engaged", "quiet"] }
cells = [
  ["Grow", "Re-engage"],
  ["Grow", "Nurture"],
  ["Nurture", "Monitor"],
]

[classifications.support]
[[classifications.support.tiers]]
name = "Premium"
when = { attr = "employees", gte = 500 }
[[classifications.support.tiers]]
name = "Standard"
default = true

[outputs.salesforce]
segment = "Segsync_Segment__c"
tier = "Segsync_Tier__c"
reason = "Segsync_Reason__c"
classifications = { value = "Segsync_Value_Tier__c", support = "Segsync_Support_Tier__c" }
classification_reasons = { value = "Segsync_Value_Reason__c" }

[outputs.hubspot]
tier = "segsync_tier"
classifications = { value = "segsync_value_tier" }
"""


def independent(employees: int | None, revenue: float | None, visits: int | None) -> dict[str, str]:
    """The two classifications, computed by hand from the rules above (not by the engine)."""
    value = 0
    if revenue is not None and revenue >= 1_000_000:
        value += 60
    if revenue is not None and 100_000 <= revenue <= 999_999:
        value += 30
    engagement = 0
    if visits is not None and visits >= 1:
        engagement += 10
    if visits is not None and visits >= 10:
        engagement += 40
    big = employees is not None and employees >= 1000
    if big and value >= 60:
        value_tier = "Strategic"
    else:
        row = 0 if value >= 60 else 1 if value >= 30 else 2
        column = 0 if engagement >= 50 else 1
        value_tier = [["Grow", "Re-engage"], ["Grow", "Nurture"], ["Nurture", "Monitor"]][row][
            column
        ]
    support = "Premium" if employees is not None and employees >= 500 else "Standard"
    return {"value": value_tier, "support": support}


def test_classifications_equal_an_independent_computation_in_both_crms() -> None:
    engine = compile_mapping(loads_mapping(MAPPING, "c.toml"))
    seen: set[str] = set()
    grid = itertools.product(
        [None, 50, 499, 500, 999, 1000, 5000],
        [None, 50_000, 100_000, 999_999, 1_000_000],
        [None, 0, 1, 9, 10],
    )
    for employees, revenue, visits in grid:
        want = independent(employees, revenue, visits)
        sf = {"NumberOfEmployees": employees, "AnnualRevenue": revenue, "Visits__c": visits}
        hs = {  # HubSpot sends numbers as text
            "numberofemployees": "" if employees is None else str(employees),
            "annualrevenue": "" if revenue is None else str(revenue),
            "visits": "" if visits is None else str(visits),
        }
        for crm, fields in (("salesforce", sf), ("hubspot", hs)):
            a = engine.evaluate(fields, crm, NOW)
            assert dict(a.classifications) == want, (crm, fields)
            # The traced path reaches the same decisions as the compiled one.
            e = engine.explain(fields, crm, NOW)
            assert {k: d.value for k, d in e.classifications.items()} == want
        seen.add(want["value"])
    assert seen == {"Strategic", "Grow", "Re-engage", "Nurture", "Monitor"}
    assert engine.classification_names == {
        "value": ("Strategic", "Grow", "Re-engage", "Nurture", "Monitor"),
        "support": ("Premium", "Standard"),
    }


def test_each_classification_has_its_output_field_and_reason() -> None:
    engine = compile_mapping(loads_mapping(MAPPING, "c.toml"))
    fields = {"NumberOfEmployees": 2000, "AnnualRevenue": 300_000, "Visits__c": 12}
    a = engine.evaluate(fields, "salesforce", NOW)
    out = a.outputs("salesforce", NOW)
    assert out["Segsync_Value_Tier__c"] == "Grow"
    assert out["Segsync_Support_Tier__c"] == "Premium"
    assert out["Segsync_Value_Reason__c"] == (
        "Grow · value 30 (some +30) · engagement 50 (visit +10, regular +40)"
    )
    # The main reason keeps to what the tier reads: the classifications' scores stay out.
    assert out["Segsync_Reason__c"] == "Tier 1 · Big · size 50 (big +50)"
    assert set(a.outputs("hubspot", NOW)) == {"segsync_tier", "segsync_value_tier"}
    # Equality covers the classifications: same segment/tier/scores, other support tier.
    other = engine.evaluate(dict(fields, NumberOfEmployees=1000), "salesforce", NOW)
    assert (other.tier, other.classifications["support"]) == ("Tier 1", "Premium")
    smaller = engine.evaluate({**fields, "NumberOfEmployees": 499}, "salesforce", NOW)
    assert smaller.classifications["support"] == "Standard"


def test_explain_shows_how_each_classification_was_decided() -> None:
    engine = compile_mapping(loads_mapping(MAPPING, "c.toml"))
    fields = {"NumberOfEmployees": 20, "AnnualRevenue": 2_000_000, "Visits__c": 0}
    text = engine.explain(fields, "salesforce", NOW).render()
    assert "Classification value: 'Re-engage' (tier matrix)" in text
    assert "Classification support: 'Standard' (default)" in text
    assert "reason: Re-engage · value 60 (rich +60) · engagement 0" in text
    doc = engine.explain(fields, "salesforce", NOW).to_dict()
    assert doc["assignment"]["classifications"] == {"value": "Re-engage", "support": "Standard"}
    matrix = doc["classifications"]["value"]["matrix"]
    assert (matrix["row_label"], matrix["column_label"]) == ("high", "quiet")


def test_a_mapping_without_classifications_is_unchanged() -> None:
    text = MAPPING.split("[classifications.value]")[0] + (
        '[outputs.salesforce]\nsegment = "Segsync_Segment__c"\ntier = "Segsync_Tier__c"\n'
    )
    engine = compile_mapping(loads_mapping(text, "plain.toml"))
    a = engine.evaluate({"NumberOfEmployees": 2000}, "salesforce", NOW)
    assert a.classifications == {} and engine.classification_names == {}
    assert a.outputs("salesforce", NOW) == {
        "Segsync_Segment__c": "Big",
        "Segsync_Tier__c": "Tier 1",
    }


def test_provision_declares_a_picklist_and_a_reason_per_classification() -> None:
    engine = compile_mapping(loads_mapping(MAPPING, "c.toml"))
    specs = {s.name: s for s in output_specs(engine, "salesforce")}
    value = specs["Segsync_Value_Tier__c"]
    assert value.kind == "picklist"
    assert value.options == ("Strategic", "Grow", "Re-engage", "Nurture", "Monitor")
    assert "high × quiet" in value.help  # the matrix is explained on hover
    assert specs["Segsync_Support_Tier__c"].options == ("Premium", "Standard")
    assert specs["Segsync_Value_Reason__c"].kind == "longtext"
    shipped = compile_mapping(load_mapping(templates.ACCOUNTS))
    hubspot = {s.name: s for s in output_specs(shipped, "hubspot")}
    assert hubspot["segsync_value_tier"].options == shipped.classification_names["value"]


def problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as info:
        loads_mapping(text, "c.toml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'rows = { score = "value"',
            'rows = { score = "valeu"',
            "c.toml: classifications.value.matrix.rows.score: unknown score 'valeu' "
            "(did you mean 'value'?)",
        ),
        (
            "[classifications.support]\n[[classifications.support.tiers]]\n"
            'name = "Premium"\nwhen = { attr = "employees", gte = 500 }\n'
            '[[classifications.support.tiers]]\nname = "Standard"\ndefault = true\n',
            "[classifications.support]\n",
            "c.toml: classifications.support.tiers: missing [[classifications.support.tiers]]",
        ),
        (
            "[classifications.support]",
            "[classifications.tier]",
            "c.toml: classifications.tier: 'tier' is a built-in dimension",
        ),
        (
            "[classifications.support]",
            "[classifications.Support]",
            "c.toml: classifications.Support: classification name 'Support' must be lowercase",
        ),
        (
            'support = "Segsync_Support_Tier__c"',
            'suport = "Segsync_Support_Tier__c"',
            "c.toml: outputs.salesforce.classifications.suport: output for undefined "
            "classification 'suport' (did you mean 'support'?)",
        ),
        (
            'name = "Strategic"\nwhen = { all',
            'name = "Strategic"\ndefault = true\nwhen = { all',
            "c.toml: classifications.value.tiers[0].default: a default tier would make",
        ),
        (
            '[classifications.value]\ndescription = "Value × engagement."',
            '[classifications.value]\ndescription = "Value × engagement."\ncolour = "red"',
            "c.toml: classifications.value.colour",
        ),
    ],
)
def test_bad_classifications_name_file_table_and_key(old: str, new: str, expected: str) -> None:
    assert old in MAPPING
    found = problems(MAPPING.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_validate_reports_a_bad_classification_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "accounts.toml"
    broken.write_text(
        templates.ACCOUNTS.read_text(encoding="utf-8").replace(
            'columns = { score = "engagement"', 'columns = { score = "engagment"'
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["validate", str(broken)])
    assert result.exit_code == 2
    assert "classifications.value.matrix.columns.score: unknown score 'engagment'" in (
        result.stderr
    )
    assert "Traceback" not in result.output
