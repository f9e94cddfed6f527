"""The engine's shortcuts on the sync path give exactly what the general rules give.

Timestamps read without the memo, decimal text read with float(), reason lines
joined from cached score texts, outputs copied from a cache, the lock's plain
values: each is compared with the general (explained) path it stands in for.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import templates
from connector.analysis.parity import classification
from connector.engine import REASON_LIMIT, compile_mapping, reason_line
from connector.engine.assignment import points_text
from connector.engine.coerce import make_coercer
from connector.engine.compiler import score_total
from connector.mapping import load_mapping, loads_mapping
from connector.mapping.models import AttributeDef

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ZONES = [UTC, ZoneInfo("America/New_York"), ZoneInfo("Pacific/Kiritimati")]


def _attr(attr_type: str) -> AttributeDef:
    mapping = loads_mapping(
        f"""
object = "account"
version = "t"
[attributes.x]
type = "{attr_type}"
salesforce = "X"
hubspot = "x"
[[segments]]
name = "All"
default = true
[[tiers]]
name = "Only"
default = true
""",
        "t.toml",
    )
    return mapping.attributes["x"]


def _spellings(moment: datetime) -> list[str]:
    """The ways APIs and exports write one instant."""
    ms = f"{moment.microsecond // 1000:03d}"
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    offset = moment.strftime("%z") or ""
    colon = f"{offset[:3]}:{offset[3:]}" if offset else ""
    return [
        f"{base}.{ms}{offset}",  # Salesforce: +0000
        f"{base}.{ms}{colon}",
        f"{base}.{ms}Z" if moment.utcoffset() == timedelta(0) else f"{base}{colon}",  # HubSpot
        base,  # naive: UTC
        f"{base}.{moment.microsecond:06d}",
        moment.strftime("%Y-%m-%dT%H:%M"),
        f" {base}Z",  # padded: the general path trims it
        f"{base}Z ",
        f"{base}Zx",  # unreadable
    ]


EDGES = [
    "9999-12-31T23:00:00-05:00",  # past year 9999 in UTC: unreadable, blank
    "9999-12-31T20:00:00+00:00",
    "0001-01-01T00:30:00+01:00",
    "0001-01-01T05:00:00Z",
    "2026-11-22T03:00:00.000Z",  # 21 November in New York
    "2026-11-29T24:00:00Z",
    "2026-W48-1T10:00",
    "20261129T101112Z",
    "1700000000000",  # epoch milliseconds: the general path
    "2026-11-29",
    "",
]


@pytest.mark.parametrize("attr_type", ["date", "datetime"])
@pytest.mark.parametrize("zone", ZONES, ids=str)
@settings(max_examples=150, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_timestamps_read_without_the_memo_as_the_general_rules_read_them(
    attr_type: str, zone: ZoneInfo, moment: datetime
) -> None:
    coercer = make_coercer(_attr(attr_type), zone)
    for text in [*_spellings(moment), *EDGES]:
        assert coercer.text(text) == coercer.detailed(text)[0], text


def test_a_sync_does_not_fill_the_memo_with_unique_timestamps() -> None:
    coercer = make_coercer(_attr("date"), UTC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1_000):
        coercer.text((start + timedelta(seconds=i * 997)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    assert coercer.memo == {}
    coercer.text("1700000000000")  # anything else still goes through the memo
    assert len(coercer.memo) == 1


def test_timestamps_in_a_mapping_time_zone_count_by_its_days() -> None:
    text = """
object = "account"
version = "tz"
timezone = "America/New_York"
[attributes.d]
type = "date"
salesforce = "D"
hubspot = "d"
[[segments]]
name = "Hit"
when = { attr = "d", eq = 2026-11-21 }
[[segments]]
name = "Miss"
default = true
[[tiers]]
name = "Only"
default = true
"""
    engine = compile_mapping(loads_mapping(text, "tz.toml"))
    for stamp in ("2026-11-22T03:00:00.000Z", "2026-11-22T03:00:00.000+0000", "1795316400000"):
        assert engine.evaluate({"d": stamp}, "hubspot", NOW).segment == "Hit", stamp
        assert engine.explain({"d": stamp}, "hubspot", NOW).segment.value == "Hit", stamp


NUMBER_MAPPING = """
object = "account"
version = "n"
[attributes.n]
type = "number"
salesforce = "N"
hubspot = "n"
[attributes.i]
type = "integer"
salesforce = "I"
hubspot = "i"
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


@pytest.mark.parametrize(
    ("raw", "attr", "when"),
    [
        ("1234567.89", "n", '{ attr = "n", between = [1234567.89, 1234567.89] }'),
        (".5", "n", '{ attr = "n", between = [0.5, 0.5] }'),
        ("5.", "n", '{ attr = "n", between = [5, 5] }'),
        ("1" * 310 + ".5", "n", '{ attr = "n", missing = true }'),  # beyond a float: blank
        ("1.2.3", "n", '{ attr = "n", missing = true }'),
        ("9" * 5_000, "n", '{ attr = "n", missing = true }'),  # int() refuses it: blank
        ("9" * 5_000, "i", '{ attr = "i", missing = true }'),
        ("9" * 30, "i", '{ attr = "i", gt = 1e28 }'),
        ("12.5", "i", '{ attr = "i", missing = true }'),  # not an integer
    ],
)
def test_number_text_shortcuts_never_raise_and_agree_with_the_coercer(
    raw: str, attr: str, when: str
) -> None:
    engine = compile_mapping(loads_mapping(NUMBER_MAPPING.replace("{when}", when), "n.toml"))
    assert engine.evaluate({attr: raw}, "hubspot", NOW).segment == "Hit"
    assert engine.explain({attr: raw}, "hubspot", NOW).segment.value == "Hit"


LONG_LABELS = """
object = "account"
version = "long"
[attributes.n]
type = "integer"
salesforce = "N"
hubspot = "n"
[[segments]]
name = "All"
default = true
[scores.first]
rules = [
{rules_first}
]
[scores.second]
cap = 50
rules = [
{rules_second}
]
[[tiers]]
name = "Only"
default = true
"""


def _rules(count: int, label: str) -> str:
    return ",\n".join(
        f'{{ points = {i + 1}, label = "{label} {i}", when = {{ attr = "n", gte = {i} }} }}'
        for i in range(count)
    )


@pytest.mark.parametrize(
    ("first", "second"), [(3, 2), (8, 8), (1, 20)], ids=["short", "cut", "last-score-cut"]
)
def test_reason_lines_joined_from_cached_scores_equal_reason_line(first: int, second: int) -> None:
    text = LONG_LABELS.replace("{rules_first}", _rules(first, "a rather long label")).replace(
        "{rules_second}", _rules(second, "another quite long label")
    )
    mapping = loads_mapping(text, "long.toml")
    engine = compile_mapping(mapping)
    for n in range(-1, max(first, second) + 1):
        a = engine.evaluate({"N": n}, "salesforce", NOW)
        parts = []
        for score in mapping.scores.values():
            hit = [r for r in score.rules if n >= r.when.value]  # type: ignore[union-attr]
            mask = sum(1 << j for j, r in enumerate(score.rules) if r in hit)
            value = score_total(tuple(r.points for r in score.rules), mask, score.cap, None)
            parts.append((score.name, value, [f"{r.label} {points_text(r.points)}" for r in hit]))
            assert a.scores[score.name] == value
        assert a.reason == reason_line(["Only", "All"], parts)
        assert len(a.reason) <= REASON_LIMIT


def test_outputs_are_a_new_dict_per_call_in_declared_order_stamped_with_now() -> None:
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    a = engine.evaluate({"NumberOfEmployees": 5}, "salesforce", NOW)
    decided = classification(a)
    first = a.outputs("salesforce", NOW)
    assert classification(a) == decided  # nothing cached on the assignment shows
    first["Segsync_Segment__c"] = "changed by the caller"
    later = NOW + timedelta(hours=1)
    second = a.outputs("salesforce", later)
    assert second["Segsync_Segment__c"] == a.segment
    assert second["Segsync_Updated_At__c"] == later
    assert list(second) == list(engine.output_fields("salesforce").values())
    assert a.outputs("hubspot", NOW)["segsync_tier"] == a.tier
    noted = replace(a, reason="another reason")
    assert noted.outputs("salesforce", NOW)["Segsync_Reason__c"] == "another reason"
    assert a.outputs("salesforce", NOW)["Segsync_Reason__c"] == a.reason


@pytest.mark.parametrize(
    ("raw", "locked", "unreadable"),
    [
        (False, False, False),
        ("false", False, False),
        (True, True, False),
        ("true", True, False),
        (" TRUE ", True, False),
        ("no", False, False),
        (1, True, False),
        ("maybe", True, True),
        (2, True, True),
        (None, False, False),
        ("", False, False),
    ],
)
def test_lock_reading_plain_values(raw: object, locked: bool, unreadable: bool) -> None:
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    for crm, field in (("salesforce", "Segsync_Lock__c"), ("hubspot", "segsync_lock")):
        reading = engine.lock_reading({field: raw}, crm)
        assert (reading.locked, reading.unreadable) == (locked, unreadable)
    with pytest.raises(ValueError, match="unknown CRM"):
        engine.lock_reading({}, "pipedrive")
