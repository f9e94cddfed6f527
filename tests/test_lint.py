"""Definition lint: unreachable rules, impossible conditions, caps and tiers out of reach.

Each warning names its file and table; the shipped definitions lint clean;
and the property tests check the contract the warnings rest on: what lint
calls unreachable, the engine never assigns, on any record.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector import cli as cli_module
from connector import templates
from connector.analysis.lint import LintWarning, lint_mapping
from connector.commands.offline import COMMANDS
from connector.engine import compile_mapping
from connector.mapping import load_mapping, loads_mapping

HEAD = """
object = "account"
version = "t-1"

[attributes.employees]
type = "integer"
salesforce = "NumberOfEmployees"

[attributes.industry]
type = "enum"
salesforce = "Industry"
values = ["Software", "Banking", "Other"]
unknown = "Other"

[attributes.tech_stack]
type = "set"
salesforce = "Tech_Stack__c"
values = ["AWS", "GCP", "Slack"]

[attributes.last_activity]
type = "date"
salesforce = "LastActivityDate"
"""

TAIL = """
[outputs.salesforce]
segment = "Segsync_Segment__c"
tier = "Segsync_Tier__c"
"""

SCORE = """
[scores.fit]
rules = [ { points = 10, when = { attr = "employees", gte = 100 } },
          { points = 20, when = { attr = "industry", eq = "Software" } } ]
"""

TIERS = """
[[tiers]]
name = "Tier 1"
when = { score = "fit", gte = 20 }

[[tiers]]
name = "Tier 2"
default = true
"""


def lint(segments: str, scores: str = SCORE, tiers: str = TIERS) -> list[LintWarning]:
    return lint_mapping(loads_mapping(HEAD + segments + scores + tiers + TAIL, "m.toml"))


def where(warnings: list[LintWarning]) -> list[tuple[str, str]]:
    return [(w.location, w.kind) for w in warnings]


DEFAULT = """
[[segments]]
name = "Rest"
default = true
"""


def test_shipped_definitions_lint_clean() -> None:
    for path in (templates.ACCOUNTS, templates.CONTACTS, templates.LEADS):
        assert lint_mapping(load_mapping(path)) == []


def test_a_clean_definition_has_no_warning() -> None:
    segments = (
        """
[[segments]]
name = "Big"
when = { attr = "employees", gte = 1000 }
"""
        + DEFAULT
    )
    assert lint(segments) == []


def test_segment_shadowed_by_a_broader_one_above() -> None:
    segments = (
        """
[[segments]]
name = "Big"
when = { attr = "employees", gte = 1000 }

[[segments]]
name = "Huge"
when = { all = [ { attr = "employees", gte = 5000 }, { attr = "industry", eq = "Software" } ] }
"""
        + DEFAULT
    )
    (w,) = lint(segments)
    assert (w.file, w.location, w.kind) == ("m.toml", "segments[1]", "shadowed")
    assert "'Huge' is never reached" in w.message
    assert "segments[0] 'Big'" in w.message
    assert str(w).startswith("m.toml: segments[1]: segment 'Huge'")


def test_segment_covered_by_several_above_together() -> None:
    segments = (
        """
[[segments]]
name = "Small"
when = { attr = "employees", lt = 100 }

[[segments]]
name = "Large"
when = { attr = "employees", gte = 100 }

[[segments]]
name = "Software"
when = { all = [ { attr = "industry", eq = "Software" }, { attr = "employees", exists = true } ] }
"""
        + DEFAULT
    )
    (w,) = lint(segments)
    assert (w.location, w.kind) == ("segments[2]", "shadowed")
    assert "segments[0] 'Small'" in w.message and "segments[1] 'Large'" in w.message


def test_a_blank_value_escapes_a_split_so_the_rule_after_is_reached() -> None:
    # employees < 100 or >= 100 leaves the blank headcount: "Software" stays reachable.
    segments = (
        """
[[segments]]
name = "Small"
when = { attr = "employees", lt = 100 }

[[segments]]
name = "Large"
when = { attr = "employees", gte = 100 }

[[segments]]
name = "Software"
when = { attr = "industry", eq = "Software" }
"""
        + DEFAULT
    )
    assert lint(segments) == []


def test_default_segment_nothing_is_left_for() -> None:
    segments = (
        """
[[segments]]
name = "Known"
when = { attr = "employees", exists = true }

[[segments]]
name = "Unknown"
when = { attr = "employees", missing = true }
"""
        + DEFAULT
    )
    (w,) = lint(segments)
    assert (w.location, w.kind) == ("segments[2]", "unreachable-default")


def test_impossible_condition_is_reported_at_its_when() -> None:
    segments = (
        """
[[segments]]
name = "Never"
when = { attr = "employees", gt = 10, lt = 5 }
"""
        + DEFAULT
    )
    (w,) = lint(segments)
    assert (w.location, w.kind) == ("segments[0].when", "impossible")
    assert "can never hold" in w.message and "employees" in w.message


def test_a_date_tested_only_for_presence_can_be_present() -> None:
    # Found by the property test below: with no date to compare with, lint gave
    # the date no value but blank, and called `exists` impossible.
    segments = (
        """
[[segments]]
name = "Active"
when = { all = [ { attr = "last_activity", exists = true },
                 { attr = "industry", not_in = ["Banking"] } ] }
"""
        + DEFAULT
    )
    assert lint(segments) == []


def test_impossible_part_of_a_condition_is_reported_where_it_is() -> None:
    segments = (
        """
[[segments]]
name = "Odd"
when = { any = [ { all = [ { attr = "industry", eq = "Software" },
                           { attr = "industry", eq = "Banking" } ] },
                 { attr = "tech_stack", contains = "AWS" } ] }
"""
        + DEFAULT
    )
    (w,) = lint(segments)
    assert (w.location, w.kind) == ("segments[0].when.any[0]", "impossible")
    assert "industry" in w.message


def test_contradictions_in_sets_and_dates() -> None:
    segments = (
        """
[[segments]]
name = "No stack"
when = { all = [ { attr = "tech_stack", contains = "AWS" },
                 { attr = "tech_stack", missing = true } ] }

[[segments]]
name = "Time travel"
when = { all = [ { attr = "last_activity", within_days = 7 },
                 { attr = "last_activity", older_than_days = 30 } ] }

[[segments]]
name = "Fine"
when = { all = [ { attr = "last_activity", within_days = 30 },
                 { attr = "last_activity", older_than_days = 7 } ] }
"""
        + DEFAULT
    )
    assert where(lint(segments)) == [
        ("segments[0].when", "impossible"),
        ("segments[1].when", "impossible"),
    ]


def test_unreachable_cap() -> None:
    scores = """
[scores.fit]
cap = 100
rules = [ { points = 10, when = { attr = "employees", gte = 100 } },
          { points = 20, when = { attr = "industry", eq = "Software" } },
          { points = 50, when = { attr = "employees", lt = 0, gt = 10 } } ]
"""
    warnings = lint(DEFAULT, scores)
    assert where(warnings) == [
        ("scores.fit.rules[2].when", "impossible"),
        ("scores.fit.cap", "unreachable-cap"),
    ]
    assert "adds up to 30" in warnings[1].message


def test_impossible_tier_given_the_score_range() -> None:
    tiers = """
[[tiers]]
name = "Tier 1"
when = { score = "fit", gte = 50 }

[[tiers]]
name = "Tier 2"
default = true
"""
    (w,) = lint(DEFAULT, SCORE, tiers)
    assert (w.location, w.kind) == ("tiers[0].when", "unreachable-tier")


def test_tier_matrix_cells_the_scores_cannot_reach() -> None:
    tiers = """
[scores.intent]
rules = [ { points = 60, when = { attr = "last_activity", within_days = 30 } } ]

[tier_matrix]
rows    = { score = "fit",    at_least = [60, 30], labels = ["high fit", "medium fit", "low fit"] }
columns = { score = "intent", at_least = [50], labels = ["hot", "cold"] }
cells = [ ["Tier 1", "Tier 2"],
          ["Tier 2", "Tier 3"],
          ["Tier 3", "Tier 3"] ]
"""
    warnings = lint(DEFAULT, SCORE, tiers)
    assert where(warnings) == [
        ("tier_matrix.cells[0][0]", "unreachable-tier"),
        ("tier_matrix.cells[0][1]", "unreachable-tier"),
    ]
    assert "no record is high fit (fit is always between 0 and 30)" in warnings[0].message


def test_shadowed_persona_and_tier_rules() -> None:
    tiers = """
[[tiers]]
name = "Tier 1"
when = { segment = "Big" }

[[tiers]]
name = "Tier 2"
when = { all = [ { segment = "Big" }, { score = "fit", gte = 10 } ] }

[[tiers]]
name = "Tier 3"
default = true
"""
    segments = (
        """
[[segments]]
name = "Big"
when = { attr = "employees", gte = 1000 }
"""
        + DEFAULT
    )
    (w,) = lint(segments, SCORE, tiers)
    assert (w.location, w.kind) == ("tiers[1]", "unreachable-tier")
    assert "tiers[0] 'Tier 1'" in w.message


# --------------------------------------------------------------------------- validate


@pytest.fixture
def segsync() -> click.Group:
    group = cli_module._Group("segsync")
    for command in COMMANDS:
        group.add_command(command)
    return group


SHADOWED = (
    HEAD
    + """
[[segments]]
name = "Big"
when = { attr = "employees", gte = 1000 }

[[segments]]
name = "Huge"
when = { attr = "employees", gte = 5000 }
"""
    + DEFAULT
    + SCORE
    + TIERS
    + TAIL
)


def test_validate_prints_warnings_and_exits_0(segsync: click.Group, tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(SHADOWED)
    result = CliRunner().invoke(segsync, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"ok  {path}: account, version t-1, 3 segments, 2 tiers, 1 score, 1 warning" in (
        result.stdout
    )
    assert f"warning: {path}: segments[1]: segment 'Huge' is never reached" in result.stderr


def test_validate_strict_fails_on_warnings(segsync: click.Group, tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(SHADOWED)
    result = CliRunner().invoke(segsync, ["validate", "--strict", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{path}: segments[1]: segment 'Huge' is never reached" in result.stderr
    clean = CliRunner().invoke(segsync, ["validate", "--strict", str(templates.ACCOUNTS)])
    assert clean.exit_code == 0, clean.output


def test_validate_json_lists_warnings(segsync: click.Group, tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(SHADOWED)
    result = CliRunner().invoke(segsync, ["validate", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["problems"] == []
    assert doc["files"][0]["warnings"] == 1
    (w,) = doc["warnings"]
    assert (w["file"], w["location"], w["kind"]) == (str(path), "segments[1]", "shadowed")
    strict = CliRunner().invoke(segsync, ["validate", "--strict", str(path), "--format", "json"])
    assert strict.exit_code == 2 and json.loads(strict.stdout)["ok"] is False


# --------------------------------------------------------------------------- the contract

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TODAY = NOW.date()

PROP_HEAD = """
object = "account"
version = "p-1"

[attributes.n]
type = "integer"
salesforce = "N"

[attributes.x]
type = "number"
salesforce = "X"

[attributes.ind]
type = "enum"
salesforce = "Ind"
values = ["A", "B", "C"]
unknown = "C"

[attributes.tags]
type = "set"
salesforce = "Tags"
values = ["p", "q", "r", "s"]

[attributes.name]
type = "string"
salesforce = "Name"

[attributes.d]
type = "date"
salesforce = "D"

[attributes.flag]
type = "boolean"
salesforce = "Flag"
"""

PROP_TAIL = """
[outputs.salesforce]
segment = "Segsync_Segment__c"
tier = "Segsync_Tier__c"
scores = { s = "Segsync_S__c" }
"""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


NUMS = [0, 5, 10, 100]
DAYS = [0, 7, 30]


def leaf() -> st.SearchStrategy[str]:
    def t(attr: str, op: str, value: Any) -> str:
        return f'{{ attr = "{attr}", {op} = {_toml(value)} }}'

    num_op = st.sampled_from(["gt", "gte", "lt", "lte", "eq", "ne"])
    return st.one_of(
        st.builds(lambda op, v: t("n", op, v), num_op, st.sampled_from(NUMS)),
        st.builds(lambda op, v: t("x", op, v), num_op, st.sampled_from([0.5, 5, 10.25])),
        st.builds(lambda v: t("n", "in", v), st.lists(st.sampled_from(NUMS), min_size=1)),
        st.builds(
            lambda lo, hi: t("n", "between", [min(lo, hi), max(lo, hi)]),
            st.sampled_from(NUMS),
            st.sampled_from(NUMS),
        ),
        st.builds(
            lambda a, op: t(a, op, True),
            st.sampled_from(["n", "x", "ind", "tags", "d"]),
            st.sampled_from(["exists", "missing"]),
        ),
        st.builds(
            lambda op, v: t("ind", op, v),
            st.sampled_from(["eq", "ne"]),
            st.sampled_from(["A", "B", "C"]),
        ),
        st.builds(
            lambda op, v: t("ind", op, v),
            st.sampled_from(["in", "not_in"]),
            st.lists(st.sampled_from(["A", "B", "C"]), min_size=1),
        ),
        st.builds(lambda v: t("ind", "matches", v), st.sampled_from(["^a", "b|c"])),
        st.builds(lambda v: t("tags", "contains", v), st.sampled_from(["p", "q", "r"])),
        st.builds(
            lambda op, v: t("tags", op, v),
            st.sampled_from(["contains_any", "contains_all"]),
            st.lists(st.sampled_from(["p", "q", "r"]), min_size=1),
        ),
        st.builds(
            lambda op, v: t("name", op, v),
            st.sampled_from(["eq", "ne", "contains", "matches"]),
            st.sampled_from(["foo", "Bar"]),
        ),
        st.builds(
            lambda op, v: t("d", op, v),
            st.sampled_from(["within_days", "older_than_days"]),
            st.sampled_from(DAYS),
        ),
        st.builds(
            lambda op, v: t("d", op, TODAY + timedelta(days=v)),
            st.sampled_from(["gt", "lte"]),
            st.sampled_from([-30, -1, 0]),
        ),
        st.builds(lambda v: t("flag", "eq", v), st.booleans()),
    )


def condition() -> st.SearchStrategy[str]:
    return st.recursive(
        leaf(),
        lambda inner: st.one_of(
            st.builds(
                lambda xs: "{ all = [" + ", ".join(xs) + "] }",
                st.lists(inner, min_size=2, max_size=3),
            ),
            st.builds(
                lambda xs: "{ any = [" + ", ".join(xs) + "] }",
                st.lists(inner, min_size=2, max_size=3),
            ),
            st.builds(lambda x: "{ not = " + x + " }", inner),
        ),
        max_leaves=5,
    )


@st.composite
def definitions(draw: st.DrawFn) -> str:
    parts = [PROP_HEAD]
    for i, cond in enumerate(draw(st.lists(condition(), min_size=2, max_size=4, unique=True))):
        parts.append(f'[[segments]]\nname = "S{i}"\nwhen = {cond}\n')
    parts.append('[[segments]]\nname = "Rest"\ndefault = true\n')
    rules = [
        f"{{ points = {p}, when = {c} }}"
        for p, c in draw(
            st.lists(
                st.tuples(st.sampled_from([-10, 5, 10, 20]), condition()), min_size=1, max_size=3
            )
        )
    ]
    cap = draw(st.sampled_from([None, 15, 30, 100]))
    parts.append(
        "[scores.s]\n" + (f"cap = {cap}\n" if cap else "") + "rules = [" + ", ".join(rules) + "]\n"
    )
    for i, cond in enumerate(
        draw(
            st.lists(
                st.one_of(
                    condition(),
                    st.builds(
                        lambda op, v: f'{{ score = "s", {op} = {v} }}',
                        st.sampled_from(["gte", "lt"]),
                        st.sampled_from([0, 10, 25, 40]),
                    ),
                    st.builds(
                        lambda v: f'{{ segment = "{v}" }}', st.sampled_from(["S0", "S1", "Rest"])
                    ),
                ),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
    ):
        parts.append(f'[[tiers]]\nname = "T{i}"\nwhen = {cond}\n')
    parts.append('[[tiers]]\nname = "TRest"\ndefault = true\n')
    return "\n".join(parts) + PROP_TAIL


def records() -> st.SearchStrategy[dict[str, Any]]:
    days = [-2, -1, 0, 1, 6, 7, 8, 29, 30, 31, 100]
    return st.fixed_dictionaries(
        {
            "N": st.sampled_from([None, "", -1, 0, 4, 5, 6, 9, 10, 11, 99, 100, 101, "junk"]),
            "X": st.sampled_from([None, 0, 0.5, 0.6, 5, 7.5, 10.25, 11, -3]),
            "Ind": st.sampled_from([None, "A", "a", "B", "C", "Z", ""]),
            "Tags": st.lists(st.sampled_from(["p", "q", "r", "s", "zz"]), max_size=4).map(";".join),
            "Name": st.sampled_from([None, "foo", "FOO ", "Bar", "foobar", "x"]),
            "D": st.one_of(
                st.none(),
                st.sampled_from(days).map(lambda k: (TODAY - timedelta(days=k)).isoformat()),
            ),
            "Flag": st.sampled_from([None, True, False, "maybe"]),
        }
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=definitions(), data=st.data())
def test_what_lint_calls_unreachable_the_engine_never_assigns(
    text: str, data: st.DataObject
) -> None:
    m = loads_mapping(text, "p.toml")
    warnings = lint_mapping(m)
    dead_segments = {
        m.segments[int(w.location.split("[")[1].split("]")[0])].name
        for w in warnings
        if w.location.startswith("segments[") and not w.message.startswith("this part")
    }
    dead_tiers = {
        m.tiers[int(w.location.split("[")[1].split("]")[0])].name
        for w in warnings
        if w.location.startswith("tiers[") and not w.message.startswith("this part")
    }
    cap_never = any(w.location == "scores.s.cap" for w in warnings)
    engine = compile_mapping(m)
    for fields in data.draw(st.lists(records(), min_size=30, max_size=30)):
        a = engine.evaluate(fields, "salesforce", NOW)
        assert a.segment not in dead_segments, (fields, a.segment, [str(w) for w in warnings])
        assert a.tier not in dead_tiers, (fields, a.tier, [str(w) for w in warnings])
        if cap_never:
            assert m.scores["s"].cap is not None and a.scores["s"] < m.scores["s"].cap


def test_a_pipeline_filter_counts_no_salesforce_deal() -> None:
    rollups = """
[attributes.default_won]
rollup = { count = "deals", stage = "won", pipeline = ["default", "renewals"] }

[attributes.new_won]
rollup = { count = "deals", stage = "won", type = ["New Business"] }
"""
    warnings = lint_mapping(
        loads_mapping(HEAD + rollups + DEFAULT + SCORE + TIERS + TAIL, "m.toml")
    )
    assert where(warnings) == [("attributes.default_won.rollup.pipeline", "no-deals")]
    assert "default or renewals" in warnings[0].message
    assert "Salesforce opportunities have no pipeline" in warnings[0].message
    # Written to HubSpot only, the filter means what it says.
    hubspot_only = (HEAD + rollups + DEFAULT + SCORE + TIERS).replace(
        'salesforce = "', 'hubspot = "'
    ) + '\n[outputs.hubspot]\nsegment = "segsync_segment"\ntier = "segsync_tier"\n'
    assert lint_mapping(loads_mapping(hubspot_only, "m.toml")) == []
