"""Every type coercion: Salesforce JSON types, HubSpot strings, blanks, sets, dates."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from connector.engine.coerce import MEMO_LIMIT, make_coercer
from connector.mapping import AttributeDef
from connector.mapping.models import AttrType
from connector.mapping.values import norm_key

ENUM_VALUES = ("Software", "Financial Services", "Other")


def attr(type_: AttrType, **kw: Any) -> AttributeDef:
    values = kw.pop("values", None)
    synonyms = dict(kw.pop("synonyms", {}))
    if values is not None:
        synonyms.update({norm_key(v): v for v in values})
    return AttributeDef("x", type_, {"salesforce": "X"}, synonyms, values, **kw)


def both(a: AttributeDef, raw: Any) -> Any:
    """The value through the fast and the detailed path (they must agree)."""
    c = make_coercer(a)
    fast = c.fast(raw)
    fast_again = c.fast(raw)  # second call hits the memo for text
    detailed, _note = c.detailed(raw)
    assert fast == detailed and fast_again == detailed
    return detailed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1200, 1200),
        ("1200", 1200),
        (" 1,200 ", 1200),
        ("1200.0", 1200),
        (1200.0, 1200),
        ("12.5", None),  # not integral: unreadable as an integer → blank
        ("", None),
        ("   ", None),
        (None, None),
        ("n/a", None),
        (True, None),  # a checkbox is not a headcount
        ("1e3", 1000),
        ("-5", -5),
        (float("nan"), None),
        ("inf", None),
        ([1], None),
    ],
)
def test_integer(raw: Any, expected: Any) -> None:
    assert both(attr("integer"), raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3.5, 3.5),
        ("3.5", 3.5),
        ("1234567.89", 1234567.89),
        ("42", 42),
        (7, 7),
        ("", None),
        ("abc", None),
        (float("inf"), None),
        ("NaN", None),
        ({"a": 1}, None),
    ],
)
def test_number(raw: Any, expected: Any) -> None:
    assert both(attr("number"), raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        (" Yes ", True),
        ("0", False),
        (1, True),
        (0, False),
        ("", None),
        (None, None),
        ("maybe", None),
        (2, None),
    ],
)
def test_boolean(raw: Any, expected: Any) -> None:
    assert both(attr("boolean"), raw) == expected


def test_boolean_blank_default() -> None:
    a = attr("boolean", blank=False)
    assert both(a, None) is False
    assert both(a, "") is False
    assert both(a, "garbage") is False  # uncoercible counts as blank → the default
    assert both(a, "true") is True
    _, note = make_coercer(a).detailed("garbage")
    assert "cannot read 'garbage' as boolean" in note


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-31", date(2024, 1, 31)),
        (" 2024-01-31 ", date(2024, 1, 31)),
        ("2013-05-20T20:49:32.000+0000", date(2013, 5, 20)),  # Salesforce datetime
        ("2024-01-31T23:30:00-05:00", date(2024, 2, 1)),  # the UTC day
        ("1706659200000", date(2024, 1, 31)),  # HubSpot epoch ms
        (1706659200000, date(2024, 1, 31)),
        ("20240131", date(2024, 1, 31)),
        (date(2024, 1, 31), date(2024, 1, 31)),
        ("31/01/2024", None),
        ("2024-02-30", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_date(raw: Any, expected: Any) -> None:
    assert both(attr("date"), raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2013-05-20T20:49:32.000+0000", datetime(2013, 5, 20, 20, 49, 32, tzinfo=UTC)),
        ("2013-05-20T20:49:32Z", datetime(2013, 5, 20, 20, 49, 32, tzinfo=UTC)),
        ("2013-05-20T22:49:32+02:00", datetime(2013, 5, 20, 20, 49, 32, tzinfo=UTC)),
        ("2013-05-20T20:49:32", datetime(2013, 5, 20, 20, 49, 32, tzinfo=UTC)),  # naive = UTC
        ("2013-05-20", datetime(2013, 5, 20, tzinfo=UTC)),
        ("1369082972000", datetime(2013, 5, 20, 20, 49, 32, tzinfo=UTC)),  # epoch ms
        ("1369082972", datetime(2013, 5, 20, 20, 49, 32, tzinfo=UTC)),  # epoch s
        (1369082972000, datetime(2013, 5, 20, 20, 49, 32, tzinfo=UTC)),
        (
            datetime(2013, 5, 20, 22, 49, 32, tzinfo=timezone(timedelta(hours=2))),
            datetime(2013, 5, 20, 20, 49, 32, tzinfo=UTC),
        ),
        ("99999999999999999999999", None),  # out of range: blank, not an exception
        ("yesterday", None),
        ("", None),
        (float("nan"), None),
    ],
)
def test_datetime(raw: Any, expected: Any) -> None:
    value = both(attr("datetime"), raw)
    assert value == expected
    if value is not None:
        assert value.utcoffset() == timedelta(0)


def test_string_synonyms_are_case_and_space_insensitive() -> None:
    a = attr("string", synonyms={norm_key("USA"): "United States"})
    assert both(a, "USA") == "United States"
    assert both(a, "  usa ") == "United States"
    assert both(a, "U s A") is not None and both(a, "U s A") != "United States"
    assert both(a, "Berlin  City") == "Berlin City"  # whitespace collapsed, case kept
    assert both(a, 42) == "42"  # a number in a text field is read as text
    assert both(a, "") is None
    assert both(a, ["a"]) is None


def test_enum_known_synonym_and_unknown_values() -> None:
    with_other = attr(
        "enum",
        values=ENUM_VALUES,
        synonyms={norm_key("COMPUTER_SOFTWARE"): "Software"},
        unknown="Other",
    )
    assert both(with_other, "software") == "Software"
    assert both(with_other, "COMPUTER_SOFTWARE") == "Software"
    assert both(with_other, "Agriculture") == "Other"
    _, note = make_coercer(with_other).detailed("Agriculture")
    assert "not a known value" in note or "→ 'Other'" in note
    strict = attr("enum", values=ENUM_VALUES)
    assert both(strict, "Agriculture") is None
    _, note = make_coercer(strict).detailed("Agriculture")
    assert note == "'Agriculture' is not one of the values; treated as blank"
    assert both(strict, "") is None


def test_set_from_semicolons_lists_and_synonyms() -> None:
    a = attr(
        "set",
        values=("AWS", "Slack", "GCP"),
        synonyms={norm_key("Google Cloud"): "GCP"},
    )
    assert both(a, "AWS;Slack") == frozenset({"AWS", "Slack"})
    assert both(a, " aws ; slack ;") == frozenset({"AWS", "Slack"})
    assert both(a, "Google Cloud") == frozenset({"GCP"})
    assert both(a, ["AWS", "Slack"]) == frozenset({"AWS", "Slack"})
    assert both(a, "AWS;Unknown Thing") == frozenset({"AWS"})
    _, note = make_coercer(a).detailed("AWS;Unknown Thing")
    assert "ignored unknown 'Unknown Thing'" in note
    assert both(a, "Unknown Thing") is None  # nothing known left: blank
    assert both(a, ";;") is None
    assert both(a, "") is None
    assert both(a, 5) is None
    free = attr("set")
    assert both(free, "x; y") == frozenset({"x", "y"})


def test_fast_coercer_never_confuses_equal_keys_of_different_types() -> None:
    # 1 == 1.0 == True as dict keys; only text is memoized, so each is read by its type.
    c = make_coercer(attr("integer"))
    assert c.fast(True) is None
    assert c.fast(1) == 1
    assert c.fast("1") == 1
    assert c.fast(True) is None


def test_memo_is_bounded() -> None:
    c = make_coercer(attr("integer"))
    for i in range(MEMO_LIMIT + 10):
        assert c.fast(str(i)) == i
    assert len(c.memo) == MEMO_LIMIT
    assert c.fast(str(MEMO_LIMIT + 5)) == MEMO_LIMIT + 5


def test_a_raising_value_is_blank() -> None:
    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    for type_ in ("string", "integer", "number", "boolean", "date", "datetime", "set"):
        assert both(attr(type_), Weird()) is None


def test_nan_float_number_is_blank() -> None:
    assert both(attr("number"), math.nan) is None
