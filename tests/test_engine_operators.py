"""Every operator, through the generated fast path and the explained slow path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.engine import Engine, compile_mapping
from connector.mapping import loads_mapping

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

ATTRIBUTES = """
object = "account"
version = "ops"

[attributes.s]
type = "string"
salesforce = "S"
hubspot = "s"
synonyms = { "usa" = "United States" }

[attributes.e]
type = "enum"
salesforce = "E"
hubspot = "e"
values = ["Software", "Banking", "Other"]
unknown = "Other"

[attributes.i]
type = "integer"
salesforce = "I"
hubspot = "i"

[attributes.n]
type = "number"
salesforce = "N"
hubspot = "n"

[attributes.b]
type = "boolean"
salesforce = "B"
hubspot = "b"

[attributes.d]
type = "date"
salesforce = "D"
hubspot = "d"

[attributes.t]
type = "datetime"
salesforce = "T"
hubspot = "t"

[attributes.z]
type = "set"
salesforce = "Z"
hubspot = "z"
values = ["AWS", "GCP", "Slack", "Stripe"]
"""

HS_FIELD = {"S": "s", "E": "e", "I": "i", "N": "n", "B": "b", "D": "d", "T": "t", "Z": "z"}


def engine_for(when: str) -> Engine:
    text = (
        ATTRIBUTES
        + f"""
[[segments]]
name = "Hit"
when = {when}

[[segments]]
name = "Miss"
default = true

[[tiers]]
name = "Only"
default = true
"""
    )
    return compile_mapping(loads_mapping(text, "ops.toml"))


def as_hubspot(fields: dict[str, Any]) -> dict[str, str]:
    """The same record the way HubSpot sends it: every value a string, blank = ""."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        out[HS_FIELD[key]] = text
    return out


def hit(engine: Engine, fields: dict[str, Any], crm: str = "salesforce") -> bool:
    result = engine.evaluate(fields, crm, NOW).segment == "Hit"
    explained = engine.explain(fields, crm, NOW)
    assert (explained.segment.value == "Hit") is result, "explain disagrees with evaluate"
    assert explained.assignment.segment == explained.segment.value
    return result


CASES: list[tuple[str, dict[str, Any], bool]] = [
    # eq / ne on each scalar type
    ('{ attr = "s", eq = "United States" }', {"S": " USA "}, True),
    ('{ attr = "s", eq = "United States" }', {"S": "Canada"}, False),
    ('{ attr = "s", eq = "United States" }', {"S": None}, False),
    ('{ attr = "s", ne = "United States" }', {"S": "Canada"}, True),
    ('{ attr = "s", ne = "United States" }', {"S": "usa"}, False),
    ('{ attr = "s", ne = "United States" }', {"S": ""}, True),  # blank is "not equal"
    ('{ attr = "e", eq = "Software" }', {"E": "software"}, True),
    ('{ attr = "e", eq = "Other" }', {"E": "Agriculture"}, True),  # outside the list → Other
    ('{ attr = "i", eq = 5 }', {"I": 5}, True),
    ('{ attr = "i", eq = 5 }', {"I": 5.0}, True),
    ('{ attr = "i", ne = 5 }', {"I": None}, True),
    ('{ attr = "n", eq = 2.5 }', {"N": 2.5}, True),
    ('{ attr = "b", eq = true }', {"B": True}, True),
    ('{ attr = "b", eq = true }', {"B": False}, False),
    ('{ attr = "b", eq = false }', {"B": None}, False),  # blank is not false
    ('{ attr = "b", ne = true }', {"B": None}, True),
    ('{ attr = "d", eq = 2024-01-31 }', {"D": "2024-01-31"}, True),
    ('{ attr = "d", ne = 2024-01-31 }', {"D": "2024-02-01"}, True),
    ('{ attr = "t", eq = 2024-01-31T10:00:00Z }', {"T": "2024-01-31T12:00:00+02:00"}, True),
    # in / not_in
    ('{ attr = "e", in = ["Software", "Banking"] }', {"E": "BANKING"}, True),
    ('{ attr = "e", in = ["Software", "Banking"] }', {"E": "Other"}, False),
    ('{ attr = "e", in = ["Software", "Banking"] }', {"E": None}, False),
    ('{ attr = "e", not_in = ["Software"] }', {"E": "Banking"}, True),
    ('{ attr = "e", not_in = ["Software"] }', {"E": None}, True),
    ('{ attr = "s", in = ["a", "b"] }', {"S": "b"}, True),
    ('{ attr = "i", in = [1, 2, 3] }', {"I": 2}, True),
    ('{ attr = "i", not_in = [1, 2, 3] }', {"I": 4}, True),
    ('{ attr = "i", not_in = [1, 2, 3] }', {"I": 3}, False),
    # ordering on numbers
    ('{ attr = "i", gt = 10 }', {"I": 11}, True),
    ('{ attr = "i", gt = 10 }', {"I": 10}, False),
    ('{ attr = "i", gte = 10 }', {"I": 10}, True),
    ('{ attr = "i", gte = 10 }', {"I": None}, False),
    ('{ attr = "i", lt = 10 }', {"I": 9}, True),
    ('{ attr = "i", lt = 10 }', {"I": None}, False),  # blank is not "less than"
    ('{ attr = "i", lte = 10 }', {"I": 10}, True),
    ('{ attr = "i", lte = 10 }', {"I": 11}, False),
    ('{ attr = "n", between = [1.5, 2.5] }', {"N": 1.5}, True),
    ('{ attr = "n", between = [1.5, 2.5] }', {"N": 2.5}, True),
    ('{ attr = "n", between = [1.5, 2.5] }', {"N": 2.6}, False),
    ('{ attr = "n", between = [1.5, 2.5] }', {"N": None}, False),
    ('{ attr = "n", gte = 10, lt = 20 }', {"N": 15}, True),
    ('{ attr = "n", gte = 10, lt = 20 }', {"N": 20}, False),
    # ordering on dates and datetimes
    ('{ attr = "d", gt = 2024-01-31 }', {"D": "2024-02-01"}, True),
    ('{ attr = "d", lte = 2024-01-31 }', {"D": "2024-01-31T23:00:00Z"}, True),
    ('{ attr = "d", between = [2024-01-01, 2024-01-31] }', {"D": "2024-01-15"}, True),
    ('{ attr = "t", gte = 2024-01-31T10:00:00Z }', {"T": "2024-01-31T10:00:00.000+0000"}, True),
    ('{ attr = "t", lt = 2024-01-31T10:00:00Z }', {"T": "2024-01-31T09:59:59Z"}, True),
    ('{ attr = "t", lt = "2024-01-31" }', {"T": "2024-01-30T23:59:59Z"}, True),
    # sets
    ('{ attr = "z", contains = "AWS" }', {"Z": "AWS;Slack"}, True),
    ('{ attr = "z", contains = "AWS" }', {"Z": "GCP;Slack"}, False),
    ('{ attr = "z", contains = "AWS" }', {"Z": None}, False),
    ('{ attr = "z", contains_any = ["AWS", "GCP"] }', {"Z": "Slack;gcp"}, True),
    ('{ attr = "z", contains_any = ["AWS", "GCP"] }', {"Z": "Slack"}, False),
    ('{ attr = "z", contains_all = ["AWS", "GCP"] }', {"Z": "GCP;AWS;Slack"}, True),
    ('{ attr = "z", contains_all = ["AWS", "GCP"] }', {"Z": "AWS"}, False),
    ('{ attr = "z", contains_all = ["AWS", "GCP"] }', {"Z": ""}, False),
    # substring on text (case-insensitive)
    ('{ attr = "s", contains = "states" }', {"S": "usa"}, True),
    ('{ attr = "s", contains = "states" }', {"S": None}, False),
    # presence
    ('{ attr = "i", exists = true }', {"I": 0}, True),
    ('{ attr = "i", exists = true }', {"I": "n/a"}, False),  # unreadable = blank
    ('{ attr = "i", missing = true }', {"I": None}, True),
    ('{ attr = "i", missing = true }', {"I": 3}, False),
    ('{ attr = "z", exists = true }', {"Z": "AWS"}, True),
    ('{ attr = "z", missing = true }', {"Z": ";"}, True),
    ('{ attr = "s", exists = true }', {"S": "  "}, False),
    ('{ attr = "d", missing = true }', {"D": "not a date"}, True),
    # regex
    ('{ attr = "s", matches = "^vp\\\\b" }', {"S": "VP Sales"}, True),
    ('{ attr = "s", matches = "^vp\\\\b" }', {"S": "SVP Sales"}, False),
    ('{ attr = "s", matches = "chief" }', {"S": None}, False),
    ('{ attr = "e", matches = "^soft" }', {"E": "SaaS-less software"}, False),
    ('{ attr = "e", matches = "^soft" }', {"E": "software"}, True),
    # relative dates (NOW = 2026-11-22 12:00 UTC)
    ('{ attr = "d", within_days = 30 }', {"D": "2026-10-23"}, True),
    ('{ attr = "d", within_days = 30 }', {"D": "2026-10-22"}, False),
    ('{ attr = "d", within_days = 30 }', {"D": None}, False),
    ('{ attr = "d", older_than_days = 30 }', {"D": "2026-10-22"}, True),
    ('{ attr = "d", older_than_days = 30 }', {"D": "2026-10-23"}, False),
    ('{ attr = "d", older_than_days = 30 }', {"D": None}, False),
    ('{ attr = "t", within_days = 1 }', {"T": "2026-11-21T12:00:00Z"}, True),
    ('{ attr = "t", within_days = 1 }', {"T": "2026-11-21T11:59:59Z"}, False),
    ('{ attr = "t", older_than_days = 1 }', {"T": "2026-11-21T11:59:59Z"}, True),
    (
        '{ attr = "t", within_days = 1 }',
        {"T": str(int(datetime(2026, 11, 22, tzinfo=UTC).timestamp() * 1000))},
        True,
    ),
    # combinators
    (
        '{ all = [ { attr = "i", gte = 1 }, { attr = "e", eq = "Software" } ] }',
        {"I": 2, "E": "Software"},
        True,
    ),
    (
        '{ all = [ { attr = "i", gte = 1 }, { attr = "e", eq = "Software" } ] }',
        {"I": 2, "E": "Banking"},
        False,
    ),
    (
        '{ any = [ { attr = "i", gte = 1 }, { attr = "e", eq = "Software" } ] }',
        {"I": 0, "E": "Software"},
        True,
    ),
    (
        '{ any = [ { attr = "i", gte = 1 }, { attr = "e", eq = "Software" } ] }',
        {"I": 0, "E": "Banking"},
        False,
    ),
    ('{ not = { attr = "i", gte = 1 } }', {"I": 0}, True),
    ('{ not = { attr = "i", gte = 1 } }', {"I": None}, True),
    ('{ not = { attr = "i", gte = 1 } }', {"I": 5}, False),
    (
        '{ all = [ { not = { attr = "z", contains = "AWS" } }, '
        '{ any = [ { attr = "b", eq = true }, { attr = "n", lt = 0 } ] } ] }',
        {"Z": "GCP", "B": False, "N": -1},
        True,
    ),
]


@pytest.mark.parametrize(("when", "fields", "expected"), CASES)
def test_operator_salesforce(when: str, fields: dict[str, Any], expected: bool) -> None:
    assert hit(engine_for(when), fields, "salesforce") is expected


@pytest.mark.parametrize(("when", "fields", "expected"), CASES)
def test_operator_hubspot_strings(when: str, fields: dict[str, Any], expected: bool) -> None:
    assert hit(engine_for(when), as_hubspot(fields), "hubspot") is expected


def test_every_operator_is_covered() -> None:
    from connector.mapping import OPERATORS

    used = " ".join(when for when, _, _ in CASES)
    missing = [op for op in OPERATORS if f"{op} =" not in used]
    assert missing == []


def test_naive_now_is_utc() -> None:
    engine = engine_for('{ attr = "t", within_days = 1 }')
    fields = {"T": "2026-11-21T12:00:00Z"}
    naive = NOW.replace(tzinfo=None)
    assert engine.evaluate(fields, "salesforce", naive).segment == "Hit"
    assert engine.explain(fields, "salesforce", naive).segment.value == "Hit"


def test_now_changes_are_seen() -> None:
    engine = engine_for('{ attr = "d", within_days = 30 }')
    fields = {"D": "2026-10-23"}
    assert engine.evaluate(fields, "salesforce", NOW).segment == "Hit"
    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert engine.evaluate(fields, "salesforce", later).segment == "Miss"
    assert engine.evaluate(fields, "salesforce", NOW).segment == "Hit"


def test_attribute_without_a_source_in_this_crm_is_blank() -> None:
    text = ATTRIBUTES.replace(
        '[attributes.s]\ntype = "string"\nsalesforce = "S"\nhubspot = "s"',
        '[attributes.s]\ntype = "string"\nsalesforce = "S"',
    )
    text += """
[[segments]]
name = "Hit"
when = { attr = "s", missing = true }

[[segments]]
name = "Miss"
default = true

[[tiers]]
name = "Only"
default = true
"""
    engine = compile_mapping(loads_mapping(text))
    assert engine.evaluate({"S": "x", "s": "x"}, "hubspot", NOW).segment == "Hit"
    assert engine.evaluate({"S": "x"}, "salesforce", NOW).segment == "Miss"
    assert "S" not in engine.input_fields("hubspot")


TRICKY_NUMBERS = [
    "12", " 12 ", "+5", "-5", "1_000", "1,200", "1200.0", "12.5", "1e3", "0x10", "nan",
    "inf", "-Infinity", "", "  ", "١٢", "99999999999999999999", "123456789012345",
    "1.7976931348623157e309", "5.", ".5", "abc",
]  # fmt: skip


@pytest.mark.parametrize("raw", TRICKY_NUMBERS)
@pytest.mark.parametrize("attr", ["i", "n"])
def test_numeric_text_fast_path_matches_the_coercer(raw: str, attr: str) -> None:
    from connector.mapping.values import parse_integer, parse_number

    expected = (parse_integer if attr == "i" else parse_number)(raw)
    if expected is None:
        when = f'{{ attr = "{attr}", missing = true }}'
    else:
        when = f'{{ attr = "{attr}", between = [{expected!r}, {expected!r}] }}'
    engine = engine_for(when)
    assert hit(engine, {attr: raw}, "hubspot")
    assert hit(engine, {attr.upper(): raw}, "salesforce")
