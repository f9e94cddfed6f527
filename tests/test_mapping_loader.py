"""The mapping loader: the shipped files load, and bad files say exactly what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector import templates
from connector.errors import MappingError, Problem, UserError
from connector.mapping import (
    AllOf,
    AnyOf,
    Leaf,
    MappingDef,
    NotOf,
    load_mapping,
    loads_mapping,
)

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = templates.ACCOUNTS
CONTACTS = templates.CONTACTS

# A small valid account mapping; tests break one thing at a time.
BASE = """
object = "account"
version = "t-1"

[attributes.employees]
type = "integer"
salesforce = "NumberOfEmployees"
hubspot = "numberofemployees"

[attributes.industry]
type = "enum"
salesforce = "Industry"
hubspot = "industry"
values = ["Software", "Banking", "Other"]
unknown = "Other"

[attributes.tech_stack]
type = "set"
salesforce = "Tech_Stack__c"

[attributes.last_activity]
type = "date"
salesforce = "LastActivityDate"

[[segments]]
name = "Big"
when = { attr = "employees", gte = 1000 }

[[segments]]
name = "Rest"
default = true

[scores.fit]
rules = [ { points = 10, when = { attr = "employees", gte = 100 } } ]

[[tiers]]
name = "Tier 1"
when = { score = "fit", gte = 10 }

[[tiers]]
name = "Tier 2"
default = true

[outputs.salesforce]
segment = "Segsync_Segment__c"
tier = "Segsync_Tier__c"
scores = { fit = "Segsync_Fit_Score__c" }
"""


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(MappingError) as info:
        loads_mapping(text, "m.toml")
    return info.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_base_fixture_is_valid() -> None:
    m = loads_mapping(BASE, "m.toml")
    assert m.segment_names == ("Big", "Rest")
    assert m.tier_names == ("Tier 1", "Tier 2")
    assert m.outputs["salesforce"]["score.fit"] == "Segsync_Fit_Score__c"


@pytest.mark.parametrize("path", [ACCOUNTS, CONTACTS])
def test_shipped_mappings_load(path: Path) -> None:
    m = load_mapping(path)
    assert isinstance(m, MappingDef)
    assert m.path == str(path)
    assert re.fullmatch(r"\d{4}-\d{2}-[a-z]", m.version)
    assert m.segments[-1].default
    assert sum(s.default for s in m.segments) == 1


def test_shipped_accounts_shape() -> None:
    m = load_mapping(ACCOUNTS)
    assert m.object == "account"
    assert 3 <= len(m.segments) <= 5
    assert set(m.scores) == {"fit", "intent", "value", "engagement"}
    assert m.tier_matrix is not None
    value = m.classifications["value"]
    assert value.matrix is not None and value.matrix.rows.subject == "value"
    assert value.tier_names == ("Strategic", "Develop", "Re-engage", "Maintain")
    assert m.tier_names == ("Tier 1", "Tier 2", "Tier 3")
    assert m.lock == "locked"
    assert m.outputs["salesforce"] == {
        "segment": "Segsync_Segment__c",
        "tier": "Segsync_Tier__c",
        "score.fit": "Segsync_Fit_Score__c",
        "score.intent": "Segsync_Intent_Score__c",
        "reason": "Segsync_Reason__c",
        "classification.value": "Segsync_Value_Tier__c",
        "classification_reason.value": "Segsync_Value_Reason__c",
        "version": "Segsync_Version__c",
        "updated_at": "Segsync_Updated_At__c",
    }
    assert m.outputs["hubspot"]["score.intent"] == "segsync_intent_score"


def test_shipped_contacts_shape() -> None:
    m = load_mapping(CONTACTS)
    assert m.object == "contact"
    assert m.inherit == frozenset({"segment", "tier"})
    assert m.persona_names == (
        "Economic Buyer",
        "Technical Evaluator",
        "Executive Sponsor",
        "End User",
        "Other",
    )
    assert m.outputs["salesforce"]["persona"] == "Segsync_Persona__c"
    assert m.outputs["hubspot"]["persona"] == "segsync_persona"
    # The no-account fallbacks reuse the account file's names (same picklists).
    accounts = load_mapping(ACCOUNTS)
    assert set(m.segment_names) <= set(accounts.segment_names)
    assert set(m.tier_names) <= set(accounts.tier_names)


def test_conditions_are_parsed_into_a_tree() -> None:
    m = loads_mapping(
        BASE.replace(
            'when = { attr = "employees", gte = 1000 }',
            'when = { all = [ { attr = "employees", gte = 10, lt = 20 }, '
            '{ any = [ { attr = "industry", eq = "software" }, '
            '{ not = { attr = "tech_stack", contains = "AWS" } } ] } ] }',
        )
    )
    when = m.segments[0].when
    assert isinstance(when, AllOf)
    first, second = when.items
    assert isinstance(first, AllOf)  # two operators in one table: both must hold
    assert [(x.op, x.value) for x in first.items if isinstance(x, Leaf)] == [
        ("gte", 10),
        ("lt", 20),
    ]
    assert isinstance(second, AnyOf)
    eq, negated = second.items
    # Enum literals are canonicalized: "software" is the value "Software".
    assert isinstance(eq, Leaf) and eq.value == "Software"
    assert isinstance(negated, NotOf)


# ------------------------------------------------------------------ the bad files


def test_typo_in_attribute_names_location_and_suggestion() -> None:
    p = only_problem(
        BASE.replace('{ attr = "employees", gte = 1000 }', '{ attr = "employes", gte = 1000 }')
    )
    assert p.file == "m.toml"
    assert p.location == "segments[0].when.attr"
    assert "unknown attribute 'employes'" in p.message
    assert p.suggestion == "employees"
    assert str(p) == (
        "m.toml: segments[0].when.attr: unknown attribute 'employes' (did you mean 'employees'?)"
    )


def test_typo_in_nested_attribute_location() -> None:
    text = BASE.replace(
        'when = { attr = "employees", gte = 1000 }',
        'when = { all = [ { attr = "employes", gte = 1 } ] }',
    )
    p = only_problem(text)
    assert p.location == "segments[0].when.all[0].attr"


def test_typo_in_operator() -> None:
    p = only_problem(
        BASE.replace('{ attr = "employees", gte = 1000 }', '{ attr = "employees", gtee = 1000 }')
    )
    assert p.location == "segments[0].when.gtee"
    assert "unknown operator 'gtee'" in p.message
    assert p.suggestion == "gte"


def test_operator_not_valid_for_type() -> None:
    p = only_problem(
        BASE.replace('{ attr = "employees", gte = 1000 }', '{ attr = "tech_stack", gte = 3 }')
    )
    assert p.location == "segments[0].when.gte"
    assert "does not apply to a set attribute" in p.message
    assert "contains_any" in p.message  # says what would work


def test_date_operator_on_a_string_is_an_error() -> None:
    text = BASE.replace(
        '{ attr = "employees", gte = 1000 }', '{ attr = "industry", within_days = 30 }'
    )
    p = only_problem(text)
    assert "'within_days' does not apply to a enum attribute" in p.message


def test_wrong_value_type() -> None:
    p = only_problem(
        BASE.replace('{ attr = "employees", gte = 1000 }', '{ attr = "employees", gte = "1000" }')
    )
    assert p.location == "segments[0].when.gte"
    assert "expected a number, not a string '1000'" in p.message


def test_in_values_must_be_enum_values() -> None:
    text = BASE.replace(
        '{ attr = "employees", gte = 1000 }', '{ attr = "industry", in = ["Software", "Bankign"] }'
    )
    p = only_problem(text)
    assert p.location == "segments[0].when.in[1]"
    assert "'Bankign' is not a value of industry" in p.message
    assert p.suggestion == "Banking"


def test_no_default_segment() -> None:
    p = only_problem(
        BASE.replace(
            'name = "Rest"\ndefault = true', 'name = "Rest"\nwhen = { attr = "employees", lt = 5 }'
        )
    )
    assert p.location == "segments"
    assert "no default segment" in p.message


def test_two_defaults() -> None:
    text = BASE.replace(
        '[[segments]]\nname = "Rest"',
        '[[segments]]\nname = "Other"\ndefault = true\n\n[[segments]]\nname = "Rest"',
    )
    problems = problems_of(text)
    messages = [str(p) for p in problems]
    assert any("segments[2].default: a second default segment" in m for m in messages), messages
    assert any("segment 'Rest' is unreachable" in m for m in messages), messages


def test_segment_unreachable_after_catch_all() -> None:
    text = BASE.replace(
        '[[segments]]\nname = "Big"',
        '[[segments]]\nname = "Everyone"\ndefault = true\n\n[[segments]]\nname = "Big"',
    )
    problems = problems_of(text)
    messages = [str(p) for p in problems]
    assert (
        "m.toml: segments[1]: segment 'Big' is unreachable: segments[0] above it matches "
        "every record (the default must be last)" in messages
    )


def test_segment_unreachable_after_identical_condition() -> None:
    text = BASE.replace(
        '[[segments]]\nname = "Rest"',
        '[[segments]]\nname = "Big again"\nwhen = { attr = "employees", gte = 1000 }\n\n'
        '[[segments]]\nname = "Rest"',
    )
    p = only_problem(text)
    assert p.location == "segments[1].when"
    assert "unreachable: segments[0] has the same condition" in p.message


def test_output_field_that_is_also_an_input() -> None:
    p = only_problem(
        BASE.replace('tier = "Segsync_Tier__c"', 'tier = "numberofemployees"')
        .replace(
            "[outputs.salesforce]",
            '[outputs.hubspot]\ntier = "NumberOfEmployees"\n\n[outputs.salesforce]',
        )
        .replace('tier = "numberofemployees"', 'tier = "Segsync_Tier__c"')
    )
    assert p.location == "outputs.hubspot.tier"
    assert "'NumberOfEmployees' is also the input of attribute 'employees'" in p.message


def test_output_field_that_is_also_an_input_same_crm() -> None:
    p = only_problem(BASE.replace('tier = "Segsync_Tier__c"', 'tier = "Industry"'))
    assert p.location == "outputs.salesforce.tier"
    assert "also the input of attribute 'industry'" in p.message


def test_duplicate_segment_names() -> None:
    text = BASE.replace(
        '[[segments]]\nname = "Rest"',
        '[[segments]]\nname = "Big"\nwhen = { attr = "employees", gte = 5 }\n\n'
        '[[segments]]\nname = "Rest"',
    )
    p = only_problem(text)
    assert p.location == "segments[1].name"
    assert "duplicate segment name 'Big' (also segments[0])" in p.message


def test_duplicate_output_field() -> None:
    p = only_problem(BASE.replace('tier = "Segsync_Tier__c"', 'tier = "Segsync_Segment__c"'))
    assert p.location == "outputs.salesforce.tier"
    assert "already used for 'segment'" in p.message


def test_output_naming_undefined_score() -> None:
    p = only_problem(
        BASE.replace('scores = { fit = "Segsync_Fit_Score__c" }', 'scores = { fitt = "X__c" }')
    )
    assert p.location == "outputs.salesforce.scores.fitt"
    assert "undefined score 'fitt'" in p.message
    assert p.suggestion == "fit"


def test_score_output_as_dotted_key() -> None:
    m = loads_mapping(
        BASE.replace('scores = { fit = "Segsync_Fit_Score__c" }', '"score.fit" = "F__c"')
    )
    assert m.outputs["salesforce"]["score.fit"] == "F__c"


def test_unknown_keys_everywhere_with_suggestions() -> None:
    text = (
        BASE.replace('version = "t-1"', 'version = "t-1"\ndescripton = "x"')
        .replace('type = "integer"', 'type = "integer"\nsalesfroce = "X"')
        .replace('name = "Big"', 'name = "Big"\nwhn = 1')
        .replace('segment = "Segsync_Segment__c"', 'segmnt = "Segsync_Segment__c"')
        .replace("[outputs.salesforce]", "[outputs.salesfroce]\n[outputs.salesforce]")
    )
    problems = problems_of(text)
    found = {(p.location, p.suggestion) for p in problems}
    assert ("descripton", "description") in found
    assert ("attributes.employees.salesfroce", "salesforce") in found
    assert ("segments[0].whn", "when") in found
    assert ("outputs.salesforce.segmnt", "segment") in found
    assert ("outputs.salesfroce", "salesforce") in found


def test_all_problems_are_reported_together() -> None:
    text = (
        BASE.replace('{ attr = "employees", gte = 1000 }', '{ attr = "employes", gte = 1000 }')
        .replace(
            'name = "Rest"\ndefault = true',
            'name = "Rest"\nwhen = { attr = "industry", eq = "Sofware" }',
        )
        .replace('tier = "Segsync_Tier__c"', 'tier = "Industry"')
        .replace('type = "date"', 'type = "datee"')
    )
    problems = problems_of(text)
    locations = [p.location for p in problems]
    assert "segments[0].when.attr" in locations
    assert "segments[1].when.eq" in locations
    assert "segments" in locations  # no default
    assert "outputs.salesforce.tier" in locations
    assert "attributes.last_activity.type" in locations
    assert len(problems) == 5
    # The error text lists each problem on its own line, and is a UserError for the CLI.
    with pytest.raises(UserError) as info:
        loads_mapping(text, "m.toml")
    assert str(info.value).count("\n") == 4


def test_unknown_type_suggests() -> None:
    p = only_problem(BASE.replace('type = "date"', 'type = "datetim"'))
    assert p.location == "attributes.last_activity.type"
    assert p.suggestion == "datetime"


def test_invalid_regex_is_reported_at_load() -> None:
    text = BASE.replace(
        "[attributes.employees]",
        '[attributes.title]\ntype = "string"\nsalesforce = "Title"\n\n[attributes.employees]',
    ).replace('{ attr = "employees", gte = 1000 }', '{ attr = "title", matches = "(vp" }')
    p = only_problem(text)
    assert p.location == "segments[0].when.matches"
    assert "invalid regular expression" in p.message


def test_between_needs_ordered_pair() -> None:
    p = only_problem(BASE.replace("gte = 1000 }", "between = [10, 5] }"))
    assert "low ≤ high" in p.message
    p = only_problem(BASE.replace("gte = 1000 }", "between = [10] }"))
    assert "between takes [low, high]" in p.message


def test_exists_takes_true() -> None:
    p = only_problem(BASE.replace("gte = 1000 }", "exists = false }"))
    assert p.message.startswith("exists takes true")


def test_score_test_outside_tiers_is_rejected() -> None:
    p = only_problem(
        BASE.replace('{ attr = "employees", gte = 1000 }', '{ score = "fit", gte = 1 }')
    )
    assert p.location == "segments[0].when.score"
    assert "'score' cannot be tested here" in p.message


def test_unknown_segment_in_tier_rule() -> None:
    p = only_problem(
        BASE.replace('when = { score = "fit", gte = 10 }', 'when = { segment = "Bigg" }')
    )
    assert p.location == "tiers[0].when.segment"
    assert p.suggestion == "Big"


def test_unknown_score_in_tier_rule() -> None:
    p = only_problem(
        BASE.replace('when = { score = "fit", gte = 10 }', 'when = { score = "fitt", gte = 10 }')
    )
    assert p.suggestion == "fit"


def test_tier_matrix_shape_is_checked() -> None:
    text = BASE.replace(
        '[[tiers]]\nname = "Tier 2"\ndefault = true',
        '[tier_matrix]\nrows = { score = "fit", at_least = [10] }\n'
        'columns = { attr = "employees", at_least = [100, 10] }\n'
        'cells = [["Tier 1", "Tier 2", "Tier 3"], ["Tier 2", "Tier 3"]]',
    )
    p = only_problem(text)
    assert p.location == "tier_matrix.cells[1]"
    assert "expected 3 cells" in p.message


def test_tier_matrix_with_default_tier_is_unreachable() -> None:
    text = BASE + (
        '\n[tier_matrix]\nrows = { score = "fit", at_least = [10] }\n'
        'columns = { score = "fit", at_least = [5] }\ncells = [["A", "B"], ["C", "D"]]\n'
    )
    p = only_problem(text)
    assert p.location == "tiers[1].default"
    assert "unreachable" in p.message


def test_tier_matrix_bands_must_descend() -> None:
    text = BASE.replace(
        '[[tiers]]\nname = "Tier 2"\ndefault = true',
        '[tier_matrix]\nrows = { score = "fit", at_least = [10, 20] }\n'
        'columns = { score = "fit", at_least = [5] }\ncells = [["A", "B"], ["C", "D"], ["E", "F"]]',
    )
    p = only_problem(text)
    assert p.location == "tier_matrix.rows.at_least"


def test_personas_only_for_contacts() -> None:
    p = only_problem(BASE + '\n[[personas]]\nname = "X"\ndefault = true\n')
    assert p.location == "personas"


def test_contact_needs_personas_and_checks_inherit() -> None:
    text = BASE.replace('object = "account"', 'object = "contact"\ninherit = ["segment", "tierr"]')
    problems = problems_of(text)
    by_location = {p.location: p for p in problems}
    assert "personas" in by_location
    assert by_location["inherit[1]"].suggestion == "tier"


def test_lock_must_be_boolean_attribute() -> None:
    p = only_problem(BASE.replace('version = "t-1"', 'version = "t-1"\nlock = "employees"'))
    assert p.location == "lock"
    assert "must be boolean" in p.message


def test_enum_needs_values_and_synonym_targets_are_checked() -> None:
    text = BASE.replace('unknown = "Other"', 'unknown = "Other"\nsynonyms = { "SaaS" = "Sofware" }')
    p = only_problem(text)
    assert p.location == "attributes.industry.synonyms.SaaS"
    assert p.suggestion == "Software"
    p = only_problem(
        BASE.replace('values = ["Software", "Banking", "Other"]\nunknown = "Other"', "")
    )
    assert "needs 'values'" in p.message


def test_blank_default_is_type_checked() -> None:
    p = only_problem(
        BASE.replace('type = "integer"', 'type = "integer"\nblank = { value = "zero" }')
    )
    assert p.location == "attributes.employees.blank.value"
    m = loads_mapping(BASE.replace('type = "integer"', 'type = "integer"\nblank = { value = 0 }'))
    assert m.attributes["employees"].blank == 0


def test_version_limits() -> None:
    p = only_problem(BASE.replace('version = "t-1"', f'version = "{"x" * 41}"'))
    assert p.location == "version"
    assert "longer than 40" in p.message


def test_toml_syntax_error_has_a_line() -> None:
    p = only_problem('object = "account"\nversion = \n')
    assert p.location.startswith("line 2")
    assert p.message.startswith("invalid TOML")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping(tmp_path / "nope.toml")
    assert info.value.problems[0].message == "file not found"


def test_load_from_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace("gte = 1000 }", "gtee = 1000 }"), encoding="utf-8")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert info.value.problems[0].file == str(path)


def test_top_level_key_after_a_table_gets_a_hint() -> None:
    p = only_problem(
        BASE.replace(
            'salesforce = "LastActivityDate"', 'salesforce = "LastActivityDate"\nversion = "x"'
        )
    )
    assert p.location == "attributes.last_activity.version"
    assert "top-level keys must come before the first [table]" in p.message


def test_string_literals_are_normalized_like_values() -> None:
    text = BASE.replace(
        "[attributes.employees]",
        '[attributes.country]\ntype = "string"\nsalesforce = "BillingCountry"\n'
        'synonyms = { "USA" = "United States" }\n\n[attributes.employees]',
    ).replace(
        '{ attr = "employees", gte = 1000 }', '{ attr = "country", in = ["usa", " Canada  "] }'
    )
    m = loads_mapping(text)
    when = m.segments[0].when
    assert isinstance(when, Leaf)
    assert when.value == frozenset({"United States", "Canada"})


def test_set_blank_default() -> None:
    m = loads_mapping(BASE.replace('type = "set"', 'type = "set"\nblank = { value = ["none"] }'))
    assert m.attributes["tech_stack"].blank == frozenset({"none"})
    p = only_problem(BASE.replace('type = "set"', 'type = "set"\nblank = { value = 3 }'))
    assert p.location == "attributes.tech_stack.blank.value"
