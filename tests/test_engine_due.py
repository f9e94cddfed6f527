"""``due_at``: the earliest instant at which time alone changes a record's assignment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector import templates
from connector.engine import Engine, compile_mapping
from connector.engine.due import flip_instants
from connector.mapping import load_mapping, loads_mapping

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)

TIMED_TEXT = """
object = "account"
version = "due"

[attributes.d]
type = "date"
salesforce = "D"
hubspot = "d"

[attributes.t]
type = "datetime"
salesforce = "T"
hubspot = "t"

[attributes.n]
type = "integer"
salesforce = "N"
hubspot = "n"

[[segments]]
name = "Fresh"
when = { all = [ { attr = "n", gte = 10 }, { attr = "t", within_days = 7 } ] }

[[segments]]
name = "Stale"
when = { attr = "d", older_than_days = 60 }

[[segments]]
name = "Other"
default = true

[scores.activity]
cap = 40
rules = [ { points = 30, label = "d ≤ 30 days", when = { attr = "d", within_days = 30 } },
          { points = 30, label = "t ≤ 3 days", when = { attr = "t", within_days = 3 } },
          { points = 5, label = "not d ≤ 90", when = { not = { attr = "d", within_days = 90 } } } ]

[[tiers]]
name = "Hot"
when = { score = "activity", gte = 30 }

[[tiers]]
name = "Cold"
default = true
"""
TIMED = compile_mapping(loads_mapping(TIMED_TEXT, "due.toml"))
# The same rules counting calendar days in a zone half an hour off the hour.
ZONED = compile_mapping(
    loads_mapping(
        TIMED_TEXT.replace('version = "due"', 'version = "due"\ntimezone = "Asia/Kolkata"')
    )
)
ACCOUNTS = compile_mapping(load_mapping(templates.ACCOUNTS))


def _later(now: datetime) -> list[datetime]:
    """Instants after ``now`` to compare against: spread out up to about a century."""
    return [now + timedelta(days=days) for days in (0.5, 1, 3, 7, 29, 31, 61, 91, 400, 36600)]


DATES = st.one_of(
    st.none(),
    st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    st.sampled_from(["2026-11-22", "2026-10-23", "2026-09-23", "2026-08-24", "n/a", ""]),
)
DATETIMES = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(2026, 10, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["2026-11-15T12:00:00Z", "2026-11-19T12:00:00.000+0000", "garbage"]),
)
NOWS = st.datetimes(
    min_value=datetime(2026, 10, 1), max_value=datetime(2027, 3, 1), timezones=st.just(UTC)
)


def _check(engine: Engine, fields: dict[str, Any], crm: str, now: datetime) -> None:
    assignment = engine.assign(fields, crm, now)
    assert assignment == engine.evaluate(fields, crm, now)
    due = assignment.due_at
    if due is None:
        for moment in _later(now):
            assert engine.evaluate(fields, crm, moment) == assignment, moment
        return
    assert due > now
    # Unchanged until the instant before, changed at it.
    assert engine.evaluate(fields, crm, due - TICK) == assignment
    assert engine.evaluate(fields, crm, due) != assignment
    step = (due - now) / 7
    for i in range(1, 7):
        assert engine.evaluate(fields, crm, now + step * i) == assignment


@settings(max_examples=400, deadline=None)
@given(d=DATES, t=DATETIMES, n=st.sampled_from([None, 5, 10, 50]), now=NOWS)
def test_due_at_is_exactly_the_next_change(d: Any, t: Any, n: Any, now: datetime) -> None:
    for engine in (TIMED, ZONED):
        _check(engine, {"D": d, "T": t, "N": n}, "salesforce", now)
        _check(engine, {"d": d, "t": t, "n": None if n is None else str(n)}, "hubspot", now)


@settings(max_examples=300, deadline=None)
@given(
    activity=DATES,
    intent=st.sampled_from([None, 10, 45, 80]),
    employees=st.sampled_from([None, 50, 1500]),
    now=NOWS,
)
def test_shipped_mapping_due_at(activity: Any, intent: Any, employees: Any, now: datetime) -> None:
    fields = {
        "LastActivityDate": activity,
        "Intent_Score__c": intent,
        "NumberOfEmployees": employees,
        "Industry": "Software",
    }
    _check(ACCOUNTS, fields, "salesforce", now)


def test_a_date_flips_at_utc_midnight_after_the_last_day_within() -> None:
    # Active 2026-11-20: "within 30 days" still holds on 2026-12-20 (UTC), not on the 21st.
    fields = {"D": "2026-11-20", "T": None, "N": None}
    assignment = TIMED.assign(fields, "salesforce", NOW)
    assert assignment.scores["activity"] == 30 and assignment.tier == "Hot"
    assert assignment.due_at == datetime(2026, 12, 21, tzinfo=UTC)
    assert flip_instants("date", 30, date(2026, 11, 20)) == (
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 12, 21, tzinfo=UTC),
    )


def test_a_datetime_flips_just_after_the_exact_boundary() -> None:
    seen = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert flip_instants("datetime", 3, seen) == (seen, seen + timedelta(days=3) + TICK)
    assignment = TIMED.assign({"T": seen.isoformat(), "N": 50}, "salesforce", NOW)
    assert assignment.segment == "Fresh"
    assert assignment.due_at == seen + timedelta(days=3) + TICK  # the t ≤ 3 days points go first


def test_a_hidden_boundary_is_not_a_due_date() -> None:
    # N < 10 makes "Fresh" impossible and there is no score rule left to flip on t
    # after 3 days: the 7-day boundary changes nothing, so only the 3-day one counts.
    seen = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assignment = TIMED.assign({"T": seen.isoformat(), "N": 5}, "salesforce", NOW)
    assert assignment.due_at == seen + timedelta(days=3) + TICK
    later = TIMED.assign({"T": seen.isoformat(), "N": 5}, "salesforce", assignment.due_at)
    assert later.due_at is None  # the 7-day boundary would change nothing


def test_missing_values_and_timeless_mappings_never_come_due() -> None:
    assert TIMED.assign({}, "salesforce", NOW).due_at is None
    assert TIMED.assign({"D": "n/a", "T": "garbage"}, "hubspot", NOW).due_at is None
    assert TIMED.time_dependent
    timeless = compile_mapping(
        loads_mapping(
            """
object = "account"
version = "x"
[attributes.n]
type = "integer"
salesforce = "N"
[[segments]]
name = "Big"
when = { attr = "n", gte = 10 }
[[segments]]
name = "Other"
default = true
[[tiers]]
name = "T"
default = true
"""
        )
    )
    assert not timeless.time_dependent
    assert timeless.assign({"N": 50}, "salesforce", NOW).due_at is None


def test_due_at_is_not_part_of_equality() -> None:
    fields = {"D": "2026-11-20"}
    with_due = TIMED.assign(fields, "salesforce", NOW)
    assert with_due.due_at is not None
    assert with_due == TIMED.evaluate(fields, "salesforce", NOW)


def test_flips_beyond_the_calendar_are_left_out() -> None:
    assert flip_instants("date", 36525, date(9999, 12, 1)) == (datetime(9999, 12, 1, tzinfo=UTC),)


def test_a_future_date_comes_due_when_it_arrives() -> None:
    # Within N days means up to now: a date in the future is not (yet) within.
    fields = {"D": "2026-11-25"}
    assignment = TIMED.assign(fields, "salesforce", NOW)
    assert assignment.scores["activity"] == 5  # "not d ≤ 90 days" holds
    assert assignment.due_at == datetime(2026, 11, 25, tzinfo=UTC)
    assert TIMED.evaluate(fields, "salesforce", assignment.due_at).scores["activity"] == 30


def test_date_boundaries_follow_the_mapping_time_zone() -> None:
    text = """
object = "account"
version = "tz"
timezone = "America/New_York"
[attributes.d]
type = "date"
salesforce = "D"
[[segments]]
name = "Active"
when = { attr = "d", within_days = 30 }
[[segments]]
name = "Other"
default = true
[[tiers]]
name = "T"
default = true
"""
    engine = compile_mapping(loads_mapping(text))
    fields = {"D": "2026-11-20"}
    assignment = engine.assign(fields, "salesforce", NOW)
    assert assignment.segment == "Active"
    # Midnight starting 21 December in New York (UTC-5) is 05:00 UTC.
    assert assignment.due_at == datetime(2026, 12, 21, 5, tzinfo=UTC)
    assert engine.evaluate(fields, "salesforce", assignment.due_at - TICK).segment == "Active"
    assert engine.evaluate(fields, "salesforce", assignment.due_at).segment == "Other"


# t read only in Salesforce (always blank in HubSpot, so no HubSpot probe); d from a
# nested path in Salesforce.
PARTIAL = compile_mapping(
    loads_mapping(
        TIMED_TEXT.replace('salesforce = "D"', 'salesforce = "Parent.D"').replace(
            'hubspot = "t"\n', ""
        ),
        "partial.toml",
    )
)


@settings(max_examples=300, deadline=None)
@given(
    d=DATES,
    t=DATETIMES,
    n=st.sampled_from([None, 5, 10, 50]),
    nows=st.lists(NOWS, min_size=1, max_size=3),
)
def test_due_from_the_evaluators_values_is_the_due_from_the_fields(
    d: Any, t: Any, n: Any, nows: list[datetime]
) -> None:
    """``assign`` takes the time-tested values from its evaluation, not from the fields again.

    Its due date equals the one :meth:`DueFinder.due_at` finds by reading and
    coercing the fields itself, whatever the run time (its flips after ``now``
    are cached per ``now``: several alternate here), the zone, a nested source
    or an attribute a CRM has no field for.
    """
    for engine in (TIMED, ZONED, PARTIAL):
        for now in [*nows, *nows]:
            for crm, fields in (
                ("salesforce", {"D": d, "Parent": {"D": d}, "T": t, "N": n}),
                ("hubspot", {"d": d, "t": t, "n": None if n is None else str(n)}),
            ):
                assignment = engine.assign(fields, crm, now)
                plain = engine.evaluate(fields, crm, now)
                reference = engine._due.due_at(fields, crm, now, None, plain)
                assert assignment == plain
                assert assignment.due_at == reference
