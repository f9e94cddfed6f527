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
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_engine_operators import ATTRIBUTES

from connector import templates
from connector.analysis.parity import classification
from connector.engine import REASON_LIMIT, compile_mapping, reason_line
from connector.engine.assignment import points_text
from connector.engine.coerce import make_coercer
from connector.engine.compiler import score_total
from connector.errors import MappingError
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


# -- generated mappings: tests shared between rules are computed once ------------------------

_TESTS = [
    '{ attr = "i", gte = 100 }',
    '{ attr = "i", between = [10, 500] }',
    '{ attr = "i", lt = 50 }',
    '{ attr = "i", missing = true }',
    '{ attr = "n", gte = 2.5 }',
    '{ attr = "n", ne = 3 }',
    '{ attr = "e", eq = "Software" }',
    '{ attr = "e", in = ["Software", "Banking"] }',
    '{ attr = "e", not_in = ["Other"] }',
    '{ attr = "s", eq = "United States" }',
    '{ attr = "s", contains = "co" }',
    '{ attr = "s", matches = "^a" }',
    '{ attr = "z", contains = "AWS" }',
    '{ attr = "z", contains_any = ["GCP", "Slack"] }',
    '{ attr = "z", missing = true }',
    '{ attr = "d", within_days = 30 }',
    '{ attr = "d", older_than_days = 90 }',
    '{ attr = "t", within_days = 1 }',
    '{ attr = "b", eq = true }',
]
_VALUES = {
    "S": st.sampled_from([None, "", "USA", "acme co", "Alpha", "ACO"]),
    "E": st.sampled_from([None, "Software", "banking", "Retail", ""]),
    "I": st.sampled_from([None, 5, 49, 50, 100, 500, 501, "120", "n/a", 10.0]),
    "N": st.sampled_from([None, 2.5, 3, "3.0", 1, "x"]),
    "B": st.sampled_from([None, True, False, "true", "maybe"]),
    "D": st.sampled_from(
        [None, "2026-11-22", "2026-10-23", "2026-10-22", "2026-08-24", "2025-01-01"]
    ),
    "T": st.sampled_from([None, "2026-11-21T12:00:00.000Z", "2026-11-21T11:59:59Z", "2026-11-22"]),
    "Z": st.sampled_from([None, "AWS", "GCP;Slack", "Stripe", "", "aws;gcp"]),
}


@st.composite
def _conditions(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(_TESTS))
    kind = draw(st.sampled_from(["all", "any", "not"]))
    if kind == "not":
        return f"{{ not = {draw(_conditions(depth - 1))} }}"
    items = draw(st.lists(_conditions(depth - 1), min_size=1, max_size=3))
    return f"{{ {kind} = [{', '.join(items)}] }}"


@st.composite
def _mappings(draw: st.DrawFn) -> str:
    parts = [ATTRIBUTES]
    # Segments must differ (the loader refuses a rule that an earlier one shadows).
    for i, when in enumerate(draw(st.lists(_conditions(), max_size=3, unique=True))):
        parts.append(f'[[segments]]\nname = "S{i}"\nwhen = {when}\n')
    parts.append('[[segments]]\nname = "Rest"\ndefault = true\n')
    scores = draw(st.integers(1, 3))
    for k in range(scores):
        rules = [
            f'{{ points = {points}, label = "r{j}", when = {draw(_conditions())} }}'
            for j, points in enumerate(
                draw(st.lists(st.integers(-20, 40), min_size=1, max_size=14))
            )
        ]
        listed = ",\n  ".join(rules)
        parts.append(f"[scores.s{k}]\ncap = 60\nrules = [\n  {listed},\n]\n")
    parts.append(
        '[[tiers]]\nname = "High"\nwhen = { all = [ { score = "s0", gte = 30 }, '
        f"{draw(_conditions())} ] }}\n"
    )
    parts.append('[[tiers]]\nname = "Low"\ndefault = true\n')
    return "\n".join(parts)


@settings(max_examples=100, deadline=None)
@given(_mappings(), st.lists(st.fixed_dictionaries(_VALUES), min_size=1, max_size=6))
def test_generated_mappings_decide_as_the_explained_rules(
    text: str, records: list[dict[str, object]]
) -> None:
    try:
        mapping = loads_mapping(text, "generated.toml")
    except MappingError:  # two rules that read alike (the loader refuses the second)
        assume(False)
    engine = compile_mapping(mapping)
    for fields in records:
        a = engine.evaluate(fields, "salesforce", NOW)
        e = engine.explain(fields, "salesforce", NOW)
        assert (a.segment, a.tier) == (e.segment.value, e.tier.value)
        assert dict(a.scores) == {s.name: s.value for s in e.scores}
        hits = [f"{r.label} " for s in e.scores for r in s.rules if r.hit]
        assert all(h in a.reason for h in hits)


def test_a_score_too_wide_for_a_table_adds_its_points_as_it_goes() -> None:
    rules = ",\n  ".join(
        f'{{ points = {p}, label = "i ≥ {k}", when = {{ attr = "i", gte = {k} }} }}'
        for k, p in zip(range(1, 15), [1, 2.5, -1] * 5, strict=False)
    )
    text = (
        f'{ATTRIBUTES}\n[[segments]]\nname = "All"\ndefault = true\n'
        f"[scores.wide]\ncap = 12\nfloor = 1\nrules = [\n  {rules},\n]\n"
        '[[tiers]]\nname = "Only"\ndefault = true\n'
    )
    engine = compile_mapping(loads_mapping(text, "wide.toml"))
    assert "m >>" not in engine.source()  # 14 rules: no table, points added as they hit
    for i in range(16):
        e = engine.explain({"I": i}, "salesforce", NOW)
        assert engine.evaluate({"I": i}, "salesforce", NOW).scores["wide"] == e.scores[0].value
