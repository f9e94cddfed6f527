from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simple_salesforce.format import format_soql, quote_soql_value

from segsync_sandbox.salesforce.soql import (
    MAX_OFFSET,
    MAX_SOQL_LENGTH,
    And,
    BoundQuery,
    Comparison,
    Condition,
    DateFormula,
    DateLiteral,
    DateTimeLiteral,
    FieldRef,
    Not,
    Or,
    OrderItem,
    Query,
    Scalar,
    SetComparison,
    SoqlError,
    SoqlField,
    SoqlObject,
    Value,
    bind,
    format_datetime,
    parse,
)

# --------------------------------------------------------------------------- fixtures

ACCOUNT = SoqlObject(
    "Account",
    [
        SoqlField("Id", "id"),
        SoqlField("Name", "string"),
        SoqlField("Website", "url"),
        SoqlField("Industry", "picklist"),
        SoqlField("Type", "picklist"),
        SoqlField("NumberOfEmployees", "int"),
        SoqlField("AnnualRevenue", "currency"),
        SoqlField("BillingCountry", "string"),
        SoqlField("OwnerId", "reference", "User", "Owner"),
        SoqlField("LastActivityDate", "date"),
        SoqlField("CreatedDate", "datetime"),
        SoqlField("SystemModstamp", "datetime"),
        SoqlField("IsDeleted", "boolean"),
        SoqlField("Tech_Stack__c", "multipicklist", sortable=False),
        SoqlField("Intent_Score__c", "double"),
        SoqlField("Segsync_Lock__c", "boolean"),
        SoqlField("Segsync_Tier__c", "picklist"),
        SoqlField("Segsync_Reason__c", "textarea", filterable=False, sortable=False),
    ],
)
CONTACT = SoqlObject(
    "Contact",
    [
        SoqlField("Id", "id"),
        SoqlField("AccountId", "reference", "Account", "Account"),
        SoqlField("LastName", "string"),
        SoqlField("Email", "email"),
        SoqlField("Seniority__c", "picklist"),
        SoqlField("SystemModstamp", "datetime"),
    ],
)
SCHEMA = {"Account": ACCOUNT, "Contact": CONTACT}
TODAY = date(2026, 11, 18)  # a Wednesday


def acc_id(n: int) -> str:
    # Ids differ within their first 15 characters, which is what SOQL compares.
    return f"001{n:012d}AAA"


def con_id(n: int) -> str:
    return f"003{n:012d}AAA"


def account(n: int, **values: Any) -> dict[str, Any]:
    return {"Id": acc_id(n), "Name": f"Acme {n}", **values}


def run(soql: str, records: list[dict[str, Any]], resolve: Any = None) -> list[dict[str, Any]]:
    return list(bind(parse(soql), SCHEMA, today=TODAY).execute(records, resolve))


def ids(soql: str, records: list[dict[str, Any]], resolve: Any = None) -> list[str]:
    return [row["Id"] for row in run(soql, records, resolve)]


def where(clause: str) -> Condition:
    cond = parse(f"SELECT Id FROM Account WHERE {clause}").where
    assert cond is not None
    return cond


def f(name: str) -> FieldRef:
    return FieldRef(tuple(name.split(".")))


def s(text: str) -> Value:
    return Value("string", text)


def bind_error(soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as info:
        bind(parse(soql), SCHEMA, today=TODAY)
    return info.value


def parse_error(soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as info:
        parse(soql)
    return info.value


# --------------------------------------------------------------------------- parsing


def test_parse_field_list_object_and_clauses() -> None:
    q = parse(
        "SELECT Id, Name, Account.Owner.Name FROM Contact WHERE Name = 'x' "
        "ORDER BY Name LIMIT 10 OFFSET 20"
    )
    assert q.object == "Contact"
    assert [ref.path for ref in q.fields] == [("Id",), ("Name",), ("Account", "Owner", "Name")]
    assert q.fields[2].name == "Account.Owner.Name"
    assert q.where == Comparison(f("Name"), "=", s("x"))
    assert q.order_by == [OrderItem(f("Name"))]
    assert (q.limit, q.offset, q.count) == (10, 20, False)


def test_keywords_are_case_insensitive() -> None:
    lower = parse(
        "select id from account where not (name like 'a%' or industry in ('x')) "
        "order by name desc nulls last limit 5 offset 1"
    )
    upper = parse(
        "SELECT id FROM account WHERE NOT (name LIKE 'a%' OR industry IN ('x')) "
        "ORDER BY name DESC NULLS LAST LIMIT 5 OFFSET 1"
    )
    assert lower == upper
    assert lower.order_by == [OrderItem(f("name"), descending=True, nulls_first=False)]


def test_count_query() -> None:
    q = parse("SELECT COUNT() FROM Account WHERE IsDeleted = false")
    assert q.count and q.fields == []


@pytest.mark.parametrize(
    ("text", "op"),
    [("=", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<="), (">", ">"), (">=", ">=")],
)
def test_comparison_operators(text: str, op: str) -> None:
    assert where(f"NumberOfEmployees {text} 5") == Comparison(
        f("NumberOfEmployees"),
        op,  # type: ignore[arg-type]
        Value("number", 5),
    )


def test_operators_need_no_surrounding_spaces() -> None:
    assert where("Name='a'") == Comparison(f("Name"), "=", s("a"))
    assert where("NumberOfEmployees>=10") == Comparison(
        f("NumberOfEmployees"), ">=", Value("number", 10)
    )


def test_set_operators() -> None:
    assert where("Industry IN ('A', 'B')") == SetComparison(f("Industry"), "IN", (s("A"), s("B")))
    assert where("Industry NOT IN ('A')") == SetComparison(f("Industry"), "NOT IN", (s("A"),))
    assert where("Tech_Stack__c INCLUDES ('AWS;Slack', 'SAP')") == SetComparison(
        f("Tech_Stack__c"), "INCLUDES", (s("AWS;Slack"), s("SAP"))
    )
    assert where("Tech_Stack__c excludes ('SAP')") == SetComparison(
        f("Tech_Stack__c"), "EXCLUDES", (s("SAP"),)
    )


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        (r"'O\'Brien'", "O'Brien"),
        (r"'back\\slash'", "back\\slash"),
        (r"'line\nbreak'", "line\nbreak"),
        (r"'tab\tand\rcr'", "tab\tand\rcr"),
        (r"'\"quoted\"'", '"quoted"'),
        (r"'\b\f'", "\b\f"),
        (r"'caf\u00e9'", "café"),
        ("''", ""),
        ("'ünïcödé ✓'", "ünïcödé ✓"),
    ],
)
def test_string_escapes(literal: str, expected: str) -> None:
    cond = where(f"Name = {literal}")
    assert isinstance(cond, Comparison)
    assert cond.value == s(expected)


def test_scalars() -> None:
    cases: dict[str, Scalar] = {
        "42": Value("number", 42),
        "-3.5": Value("number", -3.5),
        "true": Value("boolean", True),
        "FALSE": Value("boolean", False),
        "null": Value("null", None),
        "NULL": Value("null", None),
        "2026-11-01": DateLiteral(date(2026, 11, 1)),
        "TODAY": DateFormula("TODAY"),
        "last_n_days:30": DateFormula("LAST_N_DAYS", 30),
    }
    for text, expected in cases.items():
        cond = where(f"X = {text}")
        assert isinstance(cond, Comparison)
        assert cond.value == expected, text


@pytest.mark.parametrize(
    "literal",
    [
        "2026-11-01T00:00:00Z",
        "2026-11-01T00:00:00.000Z",
        "2026-11-01T00:00:00.000+0000",
        "2026-11-01T00:00:00+00:00",
        "2026-11-01T01:00:00+01:00",
        "2026-11-01T01:00:00.000+0100",
        "2026-10-31T16:00:00-08:00",
    ],
)
def test_datetime_literals_are_instants(literal: str) -> None:
    cond = where(f"SystemModstamp >= {literal}")
    assert isinstance(cond, Comparison)
    assert cond.value == DateTimeLiteral(datetime(2026, 11, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "literal",
    ["2026-11-01T00:00:00", "2026-13-01", "2026-02-30", "2026-11-01T25:00:00Z", "2026-11-01T"],
)
def test_malformed_date_literals(literal: str) -> None:
    err = parse_error(f"SELECT Id FROM Account WHERE SystemModstamp > {literal}")
    assert err.error_code == "MALFORMED_QUERY"
    assert err.detail == f"unexpected token: '{literal}'"
    assert err.column == len("SELECT Id FROM Account WHERE SystemModstamp > ") + 1


def test_order_by_keys() -> None:
    q = parse(
        "SELECT Id FROM Account ORDER BY SystemModstamp, Id ASC, Name DESC, "
        "Industry ASC NULLS LAST, Type DESC NULLS FIRST"
    )
    assert q.order_by == [
        OrderItem(f("SystemModstamp")),
        OrderItem(f("Id")),
        OrderItem(f("Name"), descending=True),
        OrderItem(f("Industry"), nulls_first=False),
        OrderItem(f("Type"), descending=True, nulls_first=True),
    ]
    assert [item.effective_nulls_first for item in q.order_by] == [True, True, False, False, True]


def test_and_binds_its_parenthesized_or() -> None:
    a, b, c = (Comparison(f(n), "=", s("1")) for n in ("A", "B", "C"))
    assert where("A = '1' AND (B = '1' OR C = '1')") == And((a, Or((b, c))))
    assert where("(A = '1' AND B = '1') OR C = '1'") == Or((And((a, b)), c))
    assert where("A = '1' AND B = '1' AND C = '1'") == And((a, b, c))
    assert where("A = '1' OR B = '1' OR C = '1'") == Or((a, b, c))
    assert where("((A = '1'))") == a


def test_not_applies_to_one_condition() -> None:
    a, b = (Comparison(f(n), "=", s("1")) for n in ("A", "B"))
    assert where("NOT A = '1'") == Not(a)
    assert where("NOT (A = '1' OR B = '1')") == Not(Or((a, b)))
    assert where("(NOT A = '1') AND B = '1'") == And((Not(a), b))
    assert where("A = '1' AND (NOT B = '1')") == And((a, Not(b)))


@pytest.mark.parametrize(
    ("clause", "token"),
    [
        # Salesforce requires parentheses whenever AND, OR and NOT are mixed.
        ("A = '1' AND B = '1' OR C = '1'", "OR"),
        ("A = '1' OR B = '1' AND C = '1'", "AND"),
        ("NOT A = '1' AND B = '1'", "AND"),
        ("A = '1' AND NOT B = '1'", "NOT"),
        ("NOT NOT A = '1'", "NOT"),
    ],
)
def test_mixing_logical_operators_without_parentheses_is_malformed(clause: str, token: str) -> None:
    prefix = "SELECT Id FROM Account WHERE "
    err = parse_error(prefix + clause)
    assert err.error_code == "MALFORMED_QUERY"
    assert err.detail == f"unexpected token: '{token}'"
    # The caret points at the offending operator (the last one of its kind for NOT NOT).
    assert err.column == len(prefix) + clause.rfind(token) + 1


@pytest.mark.parametrize(
    ("soql", "token", "column"),
    [
        ("SELECT Id FORM Account", "FORM", 11),
        ("SELECT Id FROM Account WHERE", "<EOF>", 29),
        ("SELECT FROM Account", "FROM", 8),
        ("SELECT Id, FROM Account", "FROM", 12),
        ("SELECT Id FROM Account WHERE Name = ", "<EOF>", 37),
        ("SELECT Id FROM Account WHERE Name 'x'", "'x'", 35),
        ("SELECT Id FROM Account WHERE (Name = 'x'", "<EOF>", 41),
        ("SELECT Id FROM Account WHERE Name = 'x')", ")", 40),
        ("SELECT Id FROM Account LIMIT -1", "-1", 30),
        ("SELECT Id FROM Account LIMIT 1.5", "1.5", 30),
        ("SELECT Id FROM Account LIMIT 10abc", "10abc", 30),
        ("SELECT Id FROM Account WHERE Name <> <> 'x'", "<>", 38),
        ("SELECT Id FROM Account ORDER Name", "Name", 30),
        ("SELECT Id FROM Account ORDER BY Name NULLS", "<EOF>", 43),
        ("SELECT Id FROM Account WHERE Name IN 'x'", "'x'", 38),
        ("SELECT Id FROM Account WHERE Name IN ()", ")", 39),
        ("SELECT Id FROM Account WHERE X = LAST_N_DAYS", "<EOF>", 45),
        ("SELECT Id FROM Account WHERE Name = #", "#", 37),
        ("SELECT Id FROM Account WHERE Name = 'open", "'open", 37),
        ("SELECT Id FROM Account Account2", "Account2", 24),
        ("SELECT Id FROM Account.Name", "Account.Name", 16),
        ("", "<EOF>", 1),
    ],
)
def test_malformed_queries_name_the_token_and_position(soql: str, token: str, column: int) -> None:
    err = parse_error(soql)
    assert err.error_code == "MALFORMED_QUERY"
    assert err.detail == f"unexpected token: '{token}'"
    assert (err.row, err.column) == (1, column)
    assert err.message == (
        f"\n{soql}\n{' ' * (column - 1)}^\nERROR at Row:1:Column:{column}\n{err.detail}"
    )
    assert err.to_json() == [{"message": err.message, "errorCode": "MALFORMED_QUERY"}]


def test_error_position_on_a_later_line() -> None:
    err = parse_error("SELECT Id\nFROM Account\n  WHERE Name == 'x'")
    assert (err.row, err.column) == (3, 15)
    assert err.message.startswith(
        "\n  WHERE Name == 'x'\n              ^\nERROR at Row:3:Column:15"
    )


def test_invalid_string_escape() -> None:
    err = parse_error(r"SELECT Id FROM Account WHERE Name = 'a\qb'")
    assert err.error_code == "MALFORMED_QUERY"
    assert "Illegal character sequence '\\q'" in err.detail


def test_offset_above_limit() -> None:
    assert parse(f"SELECT Id FROM Account OFFSET {MAX_OFFSET}").offset == MAX_OFFSET
    err = parse_error(f"SELECT Id FROM Account OFFSET {MAX_OFFSET + 1}")
    assert err.error_code == "NUMBER_OUTSIDE_VALID_RANGE"


def test_statement_length_limit() -> None:
    base = "SELECT Id FROM Account WHERE Name = ''"
    assert parse(base[:-1] + "x" * (MAX_SOQL_LENGTH - len(base)) + "'").where is not None
    err = parse_error(base[:-1] + "x" * (MAX_SOQL_LENGTH - len(base) + 1) + "'")
    assert err.error_code == "MALFORMED_QUERY"
    assert "cannot be longer than 100,000 characters" in err.detail


def test_semi_joins_are_refused_as_malformed() -> None:
    err = parse_error("SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Account)")
    assert err.error_code == "MALFORMED_QUERY"


# --------------------------------------------------------------------------- binding


def test_unknown_object_is_invalid_type() -> None:
    err = bind_error("SELECT Id FROM Acount")
    assert err.error_code == "INVALID_TYPE"
    assert err.detail.startswith("sObject type 'Acount' is not supported.")
    assert err.column == 16


@pytest.mark.parametrize(
    ("soql", "column"),
    [
        ("SELECT Id, Foo FROM Account", 12),
        ("SELECT Id FROM Account WHERE Foo = 'x'", 30),
        ("SELECT Id FROM Account ORDER BY Foo", 33),
    ],
)
def test_unknown_field_is_invalid_field(soql: str, column: int) -> None:
    err = bind_error(soql)
    assert err.error_code == "INVALID_FIELD"
    assert err.detail.startswith("No such column 'Foo' on entity 'Account'.")
    assert err.column == column


def test_unknown_parent_field_names_the_parent_entity() -> None:
    err = bind_error("SELECT Id, Account.Nmae FROM Contact")
    assert err.error_code == "INVALID_FIELD"
    assert err.detail.startswith("No such column 'Nmae' on entity 'Account'.")


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id, Acount.Name FROM Contact",
        # The referenced object is not in the schema.
        "SELECT Id, Owner.Name FROM Account",
        # A plain field is not a relationship.
        "SELECT Id, LastName.Foo FROM Contact",
    ],
)
def test_unknown_relationship(soql: str) -> None:
    err = bind_error(soql)
    assert err.error_code == "INVALID_FIELD"
    assert err.detail.startswith("Didn't understand relationship")


@pytest.mark.parametrize(
    ("clause", "detail"),
    [
        ("SystemModstamp > '2026-01-01'", "must be of type dateTime and should not be enclosed"),
        ("SystemModstamp > 2026-01-01", "must be of type dateTime and should not be enclosed"),
        ("SystemModstamp > 5", "must be of type dateTime and should not be enclosed"),
        ("LastActivityDate = '2026-01-01'", "must be of type date and should not be enclosed"),
        ("LastActivityDate = 2026-01-01T00:00:00Z", "must be of type date and should not"),
        ("NumberOfEmployees = '5'", "must be of type integer and should not be enclosed"),
        ("AnnualRevenue > '5'", "must be of type double and should not be enclosed"),
        ("IsDeleted = 'false'", "must be of type boolean and should not be enclosed"),
        ("Name = 5", "must be of type string and should be enclosed in quotes"),
        ("Industry IN ('a', 5)", "must be of type string and should be enclosed in quotes"),
        ("Name = TODAY", "must be of type string and should be enclosed in quotes"),
    ],
)
def test_literal_of_the_wrong_type_is_invalid_field(clause: str, detail: str) -> None:
    err = bind_error(f"SELECT Id FROM Account WHERE {clause}")
    assert err.error_code == "INVALID_FIELD"
    field = clause.split()[0]
    assert err.detail.startswith(f"value of filter criterion for field '{field}' {detail}")
    assert err.column == len("SELECT Id FROM Account WHERE ") + 1


@pytest.mark.parametrize(
    "clause",
    [
        "Id LIKE '001%'",
        "IsDeleted < true",
        "IsDeleted IN (true)",
        "Tech_Stack__c < 'AWS'",
        "Tech_Stack__c LIKE 'AWS%'",
        "Industry INCLUDES ('Retail')",
        "Id = 'not-an-id'",
        "OwnerId = '005'",
    ],
)
def test_unsupported_operator_or_bad_id(clause: str) -> None:
    assert bind_error(f"SELECT Id FROM Account WHERE {clause}").error_code == (
        "INVALID_QUERY_FILTER_OPERATOR"
    )


def test_unfilterable_and_unsortable_fields() -> None:
    err = bind_error("SELECT Id FROM Account WHERE Segsync_Reason__c = 'x'")
    assert (err.error_code, err.detail) == (
        "INVALID_FIELD",
        "field 'Segsync_Reason__c' can not be filtered in a query call",
    )
    err = bind_error("SELECT Id FROM Account ORDER BY tech_stack__c")
    assert (err.error_code, err.detail) == (
        "INVALID_FIELD",
        "field 'Tech_Stack__c' can not be sorted in a query call",
    )
    # Selecting them is fine.
    bind(parse("SELECT Segsync_Reason__c, Tech_Stack__c FROM Account"), SCHEMA)


def test_duplicate_field_in_any_casing() -> None:
    err = bind_error("SELECT Id, Name, NAME FROM Account")
    assert (err.error_code, err.detail) == ("MALFORMED_QUERY", "duplicate field selected: Name")


def test_canonical_columns_and_record_keys() -> None:
    q = bind(parse("select ID, lastname, account.NAME from CONTACT"), SCHEMA)
    assert q.object == "Contact"
    assert q.columns == ["Id", "LastName", "Account.Name"]
    assert q.selected_fields == [CONTACT.fields[0], CONTACT.fields[2], ACCOUNT.fields[1]]
    rec = {"Id": con_id(1), "LastName": "Doe", "AccountId": acc_id(1)}
    row = q.project(rec, lambda obj, rid: account(1) if obj == "Account" else None)
    assert list(row) == ["attributes", "Id", "LastName", "Account"]
    assert row["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v59.0/sobjects/Contact/{con_id(1)}",
    }
    assert row["Account"] == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v59.0/sobjects/Account/{acc_id(1)}",
        },
        "Name": "Acme 1",
    }


def test_object_name_prefix_is_accepted() -> None:
    q = bind(parse("SELECT Account.Name FROM Account"), SCHEMA)
    assert q.columns == ["Name"]


def test_api_version_in_urls() -> None:
    q = bind(parse("SELECT Id FROM Account"), SCHEMA, api_version="v62.0")
    assert q.project(account(1))["attributes"]["url"] == (
        f"/services/data/v62.0/sobjects/Account/{acc_id(1)}"
    )


def test_unknown_field_type_is_refused_at_schema_build() -> None:
    with pytest.raises(ValueError, match="unknown SOQL field type"):
        SoqlField("X", "integer")


# --------------------------------------------------------------------------- evaluation

NULLS = [
    account(1, Industry="Retail", NumberOfEmployees=10),
    account(2, Industry=None, NumberOfEmployees=None),
    account(3, Industry="", NumberOfEmployees=30),
    account(4, NumberOfEmployees=40),  # Industry missing from the record altogether
    account(5, Industry="Banking", NumberOfEmployees=50),
]


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("Industry = null", [2, 3, 4]),
        ("Industry != null", [1, 5]),
        # SOQL's != and NOT IN keep records whose value is null.
        ("Industry != 'Retail'", [2, 3, 4, 5]),
        ("Industry NOT IN ('Retail')", [2, 3, 4, 5]),
        ("Industry IN ('Retail', null)", [1, 2, 3, 4]),
        ("Industry NOT IN ('Retail', null)", [5]),
        ("Industry = 'Retail'", [1]),
        ("NOT Industry = 'Retail'", [2, 3, 4, 5]),
        ("NumberOfEmployees < 35", [1, 3]),
        ("NumberOfEmployees >= 30", [3, 4, 5]),
        ("NumberOfEmployees > null", []),
        ("NumberOfEmployees IN (10, 50)", [1, 5]),
        ("Industry < 'c'", [5]),
    ],
)
def test_null_semantics(clause: str, expected: list[int]) -> None:
    got = ids(f"SELECT Id FROM Account WHERE {clause}", NULLS)
    assert got == [acc_id(n) for n in expected]


def test_logical_operators_evaluate() -> None:
    recs = [
        account(n, NumberOfEmployees=n, Industry="Retail" if n % 2 else "Banking")
        for n in range(1, 9)
    ]
    got = ids(
        "SELECT Id FROM Account WHERE (Industry = 'retail' AND NumberOfEmployees > 4) "
        f"OR (NOT (NumberOfEmployees > 1)) OR Id = '{acc_id(8)}'",
        recs,
    )
    assert got == [acc_id(n) for n in (1, 5, 7, 8)]


def test_string_equality_and_in_are_case_insensitive() -> None:
    recs = [
        account(1, Industry="Retail"),
        account(2, Industry="RETAIL "),
        account(3, Industry="retail"),
    ]
    assert ids("SELECT Id FROM Account WHERE Industry = 'rEtAiL'", recs) == [acc_id(1), acc_id(3)]
    assert ids("SELECT Id FROM Account WHERE Industry IN ('RETAIL')", recs) == [
        acc_id(1),
        acc_id(3),
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("'acme%'", [1, 2, 3, 4, 5]),
        ("'%CORP'", [3]),
        ("'acme _'", [1, 2]),
        ("'%.%'", [4]),
        ("'acme 5\\%'", [5]),
        ("'acme\\_%'", []),
        ("'Acme 1'", [1]),
        ("'%'", [1, 2, 3, 4, 5]),
    ],
)
def test_like(pattern: str, expected: list[int]) -> None:
    names = {1: "Acme 1", 2: "ACME 2", 3: "Acme Big Corp", 4: "Acme.io", 5: "Acme 5%"}
    recs = [account(n, Name=name) for n, name in names.items()] + [account(6, Name=None)]
    assert ids(f"SELECT Id FROM Account WHERE Name LIKE {pattern}", recs) == [
        acc_id(n) for n in expected
    ]


def test_like_escaped_wildcards_match_literally() -> None:
    recs = [account(1, Name="50%_off"), account(2, Name="50% off"), account(3, Name="50xxoff")]
    soql = format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}%'", "50%_")
    assert soql.endswith(r"LIKE '50\%\_%'")
    assert ids(soql, recs) == [acc_id(1)]


def test_datetime_comparison_across_offsets_and_storage_formats() -> None:
    recs = [
        account(1, SystemModstamp="2026-10-31T23:59:59.999+0000"),
        account(2, SystemModstamp="2026-11-01T00:00:00.000+0000"),
        account(3, SystemModstamp="2026-11-01T00:30:00+01:00"),  # 2026-10-31T23:30Z
        account(4, SystemModstamp="2026-11-01T00:00:00Z"),
        account(5, SystemModstamp=datetime(2026, 11, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))),
        account(6, SystemModstamp=None),
        account(7, SystemModstamp="2026-11-02T09:00:00.000+0000"),
    ]
    for literal in (
        "2026-11-01T00:00:00Z",
        "2026-11-01T01:00:00+01:00",
        "2026-10-31T19:00:00-05:00",
    ):
        assert ids(f"SELECT Id FROM Account WHERE SystemModstamp >= {literal}", recs) == [
            acc_id(2),
            acc_id(4),
            acc_id(7),
        ]
        assert ids(f"SELECT Id FROM Account WHERE SystemModstamp < {literal}", recs) == [
            acc_id(1),
            acc_id(3),
            acc_id(5),
        ]
        assert ids(f"SELECT Id FROM Account WHERE SystemModstamp = {literal}", recs) == [
            acc_id(2),
            acc_id(4),
        ]


def test_datetime_order_is_by_instant() -> None:
    recs = [
        account(1, SystemModstamp="2026-11-01T02:00:00+03:00"),  # 2026-10-31T23:00Z
        account(2, SystemModstamp="2026-11-01T00:00:00.000+0000"),
        account(3, SystemModstamp="2026-10-31T23:30:00.000+0000"),
    ]
    assert ids("SELECT Id FROM Account ORDER BY SystemModstamp", recs) == [
        acc_id(1),
        acc_id(3),
        acc_id(2),
    ]


def test_dates() -> None:
    recs = [
        account(1, LastActivityDate="2026-10-31"),
        account(2, LastActivityDate="2026-11-01"),
        account(3, LastActivityDate=date(2026, 11, 2)),
        account(4, LastActivityDate=None),
    ]
    assert ids("SELECT Id FROM Account WHERE LastActivityDate >= 2026-11-01", recs) == [
        acc_id(2),
        acc_id(3),
    ]
    assert ids("SELECT Id FROM Account WHERE LastActivityDate != 2026-11-01", recs) == [
        acc_id(1),
        acc_id(3),
        acc_id(4),
    ]


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("LastActivityDate = TODAY", [3]),
        ("LastActivityDate = YESTERDAY", [2]),
        ("LastActivityDate > TODAY", [4]),
        ("LastActivityDate < TODAY", [0, 1, 2]),
        ("LastActivityDate <= TODAY", [0, 1, 2, 3]),
        ("LastActivityDate = LAST_N_DAYS:7", [1, 2, 3]),
        ("LastActivityDate >= LAST_N_DAYS:7", [1, 2, 3, 4]),
        ("LastActivityDate = THIS_WEEK", [2, 3, 4]),
        ("LastActivityDate = LAST_MONTH", [0]),
        ("LastActivityDate = THIS_YEAR", [0, 1, 2, 3, 4]),
        ("LastActivityDate = N_DAYS_AGO:1", [2]),
        ("LastActivityDate = NEXT_N_DAYS:3", [4]),
        ("LastActivityDate IN (YESTERDAY, TOMORROW)", [2, 4]),
        ("LastActivityDate != TODAY", [0, 1, 2, 4, 5]),
        ("CreatedDate = TODAY", [3]),
        ("CreatedDate >= LAST_N_DAYS:7", [1, 2, 3, 4]),
        ("CreatedDate < YESTERDAY", [0, 1]),
    ],
)
def test_date_formulas(clause: str, expected: list[int]) -> None:
    days = {
        0: date(2026, 10, 20),
        1: date(2026, 11, 11),  # 7 days before TODAY
        2: date(2026, 11, 17),  # yesterday (Tuesday)
        3: date(2026, 11, 18),  # TODAY
        4: date(2026, 11, 19),
    }
    recs = [
        account(
            n,
            LastActivityDate=d.isoformat(),
            CreatedDate=format_datetime(
                datetime.combine(d, datetime.min.time(), UTC) + timedelta(hours=23)
            ),
        )
        for n, d in days.items()
    ] + [account(5)]
    assert ids(f"SELECT Id FROM Account WHERE {clause}", recs) == [acc_id(n) for n in expected]


def test_ids_match_on_15_characters_case_sensitively() -> None:
    recs = [{"Id": "001Ab000000AbCdEAQ"}, {"Id": "001Ab000000abcdEAQ"}]
    for literal in ("001Ab000000AbCd", "001Ab000000AbCdEAQ"):
        assert ids(f"SELECT Id FROM Account WHERE Id = '{literal}'", recs) == ["001Ab000000AbCdEAQ"]
    assert ids("SELECT Id FROM Account WHERE Id IN ('001Ab000000abcd')", recs) == [
        "001Ab000000abcdEAQ"
    ]


def test_booleans() -> None:
    recs = [account(1, IsDeleted=False), account(2, IsDeleted=True), account(3, IsDeleted="true")]
    assert ids("SELECT Id FROM Account WHERE IsDeleted = false", recs) == [acc_id(1)]
    assert ids("SELECT Id FROM Account WHERE IsDeleted = TRUE", recs) == [acc_id(2), acc_id(3)]


def test_multipicklist() -> None:
    recs = [
        account(1, Tech_Stack__c="AWS;Slack"),
        account(2, Tech_Stack__c="Slack;AWS;SAP"),
        account(3, Tech_Stack__c="SAP"),
        account(4, Tech_Stack__c=None),
    ]

    def q(clause: str) -> list[int]:
        got = ids(f"SELECT Id FROM Account WHERE Tech_Stack__c {clause}", recs)
        return [int(i[3:15]) for i in got]

    assert q("INCLUDES ('aws')") == [1, 2]
    assert q("INCLUDES ('AWS;SAP')") == [2]
    assert q("INCLUDES ('AWS;SAP', 'Slack')") == [1, 2]
    assert q("EXCLUDES ('Slack')") == [3, 4]
    assert q("= 'slack;aws'") == [1]
    assert q("!= 'SAP'") == [1, 2, 4]
    assert q("= null") == [4]


ORDER_RECS = [
    account(1, Industry="banking", NumberOfEmployees=5),
    account(2, Industry=None, NumberOfEmployees=5),
    account(3, Industry="Retail", NumberOfEmployees=1),
    account(4, Industry="Apparel", NumberOfEmployees=None),
    account(5, Industry="retail", NumberOfEmployees=3),
]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("Industry", [2, 4, 1, 3, 5]),  # ASC NULLS FIRST by default, case-insensitive, stable
        ("Industry ASC NULLS LAST", [4, 1, 3, 5, 2]),
        ("Industry DESC", [3, 5, 1, 4, 2]),  # DESC NULLS LAST by default
        ("Industry DESC NULLS FIRST", [2, 3, 5, 1, 4]),
        ("NumberOfEmployees DESC, Industry DESC", [1, 2, 5, 3, 4]),
        ("NumberOfEmployees NULLS LAST, Id DESC", [3, 5, 2, 1, 4]),
        ("Name DESC", [5, 4, 3, 2, 1]),
    ],
)
def test_order_by(order: str, expected: list[int]) -> None:
    assert ids(f"SELECT Id FROM Account ORDER BY {order}", ORDER_RECS) == [
        acc_id(n) for n in expected
    ]


def test_limit_and_offset() -> None:
    recs = [account(n, NumberOfEmployees=n) for n in range(10)]
    base = "SELECT Id FROM Account WHERE NumberOfEmployees > 0 ORDER BY NumberOfEmployees DESC"
    assert ids(base + " LIMIT 3", recs) == [acc_id(n) for n in (9, 8, 7)]
    assert ids(base + " LIMIT 3 OFFSET 2", recs) == [acc_id(n) for n in (7, 6, 5)]
    assert ids(base + " OFFSET 7", recs) == [acc_id(n) for n in (2, 1)]
    assert ids(base + " LIMIT 0", recs) == []
    bound = bind(parse(base + " LIMIT 3 OFFSET 7"), SCHEMA)
    assert bound.count(recs) == 2
    assert bind(parse(base), SCHEMA).count(recs) == 9


def test_select_streams_without_order_by() -> None:
    consumed: list[int] = []

    def records() -> Iterator[dict[str, Any]]:
        for n in range(1_000):
            consumed.append(n)
            yield account(n, NumberOfEmployees=n)

    q = bind(parse("SELECT Id FROM Account WHERE NumberOfEmployees >= 10 LIMIT 5"), SCHEMA)
    assert [r["Id"] for r in q.execute(records())] == [acc_id(n) for n in range(10, 15)]
    assert len(consumed) == 15


def test_count_query_counts() -> None:
    q = bind(parse("SELECT COUNT() FROM Account WHERE Industry = null"), SCHEMA)
    assert q.is_count and q.columns == []
    assert q.count(NULLS) == 3


# --------------------------------------------------------------------------- parent fields


ACCOUNTS = {acc_id(1): account(1, Industry="Retail"), acc_id(2): account(2, Industry=None)}
CONTACTS: list[dict[str, Any]] = [
    {"Id": con_id(1), "AccountId": acc_id(1), "LastName": "Ames"},
    {"Id": con_id(2), "AccountId": acc_id(2), "LastName": "Baker"},
    {"Id": con_id(3), "AccountId": None, "LastName": "Cole"},
    {"Id": con_id(4), "AccountId": acc_id(9), "LastName": "Dunn"},  # dangling
]
resolved_calls: list[tuple[str, str]] = []


def resolve(obj: str, record_id: str) -> Mapping[str, Any] | None:
    resolved_calls.append((obj, record_id))
    return ACCOUNTS.get(record_id) if obj == "Account" else None


def test_parent_fields_project_as_nested_records() -> None:
    rows = run(
        "SELECT Id, Account.Name, LastName, Account.Industry FROM Contact", CONTACTS, resolve
    )
    assert rows[0] == {
        "attributes": {
            "type": "Contact",
            "url": f"/services/data/v59.0/sobjects/Contact/{con_id(1)}",
        },
        "Id": con_id(1),
        "Account": {
            "attributes": {
                "type": "Account",
                "url": f"/services/data/v59.0/sobjects/Account/{acc_id(1)}",
            },
            "Name": "Acme 1",
            "Industry": "Retail",
        },
        "LastName": "Ames",
    }
    assert rows[1]["Account"]["Industry"] is None
    assert rows[2]["Account"] is None
    assert rows[3]["Account"] is None


def test_parent_fields_without_a_resolver_are_null() -> None:
    rows = run("SELECT Id, Account.Name FROM Contact", CONTACTS)
    assert [r["Account"] for r in rows] == [None] * 4


def test_filter_and_sort_on_parent_fields() -> None:
    assert ids("SELECT Id FROM Contact WHERE Account.Industry = null", CONTACTS, resolve) == [
        con_id(2),
        con_id(3),
        con_id(4),
    ]
    assert ids(
        "SELECT Id FROM Contact WHERE LastName = 'Cole' OR Account.Name LIKE '%1'",
        CONTACTS,
        resolve,
    ) == [con_id(1), con_id(3)]
    assert ids(
        "SELECT Id FROM Contact ORDER BY Account.Name DESC NULLS LAST, LastName", CONTACTS, resolve
    ) == [con_id(2), con_id(1), con_id(3), con_id(4)]


def test_bulk_rows_follow_columns() -> None:
    q = bind(
        parse("SELECT LastName, Account.Name, Id FROM Contact WHERE Account.Name != null"), SCHEMA
    )
    assert q.columns == ["LastName", "Account.Name", "Id"]
    assert [q.row(r, resolve) for r in q.select(CONTACTS, resolve)] == [
        ["Ames", "Acme 1", con_id(1)],
        ["Baker", "Acme 2", con_id(2)],
    ]


def test_projected_values_are_rest_shaped() -> None:
    q = bind(
        parse("SELECT Name, SystemModstamp, LastActivityDate, Segsync_Reason__c FROM Account"),
        SCHEMA,
    )
    rec = account(
        1,
        Name="",
        SystemModstamp=datetime(2026, 11, 1, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=1))),
        LastActivityDate=date(2026, 11, 1),
    )
    row = q.project(rec)
    assert row["Name"] is None
    assert row["SystemModstamp"] == "2026-11-01T00:02:03.456+0000"
    assert row["LastActivityDate"] == "2026-11-01"
    assert row["Segsync_Reason__c"] is None
    assert "Id" not in row  # only what was selected, besides attributes


# --------------------------------------------------------------------------- connector shapes


def sync_accounts() -> list[dict[str, Any]]:
    stamps = [
        "2026-10-30T12:00:00.000+0000",
        "2026-11-01T00:00:00.000+0000",
        "2026-11-01T00:00:00.000+0000",
        "2026-11-03T08:15:00.000+0000",
        "2026-11-02T00:00:00.000+0000",
    ]
    return [
        account(
            n,
            Industry="Software",
            NumberOfEmployees=n * 100,
            Segsync_Tier__c=None,
            IsDeleted=False,
            SystemModstamp=stamp,
        )
        for n, stamp in zip((5, 3, 1, 2, 4), stamps, strict=True)
    ]


def test_incremental_sync_query() -> None:
    soql = (
        "SELECT Id, Name, Industry, NumberOfEmployees, Segsync_Tier__c, SystemModstamp "
        "FROM Account WHERE SystemModstamp >= 2026-11-01T00:00:00Z ORDER BY SystemModstamp, Id"
    )
    rows = run(soql, sync_accounts())
    assert [r["Id"] for r in rows] == [acc_id(1), acc_id(3), acc_id(4), acc_id(2)]
    assert list(rows[0]) == [
        "attributes",
        "Id",
        "Name",
        "Industry",
        "NumberOfEmployees",
        "Segsync_Tier__c",
        "SystemModstamp",
    ]


def test_format_soql_shapes() -> None:
    watermark = datetime(2026, 11, 1, tzinfo=UTC)
    soql = format_soql(
        "SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp > {wm} "
        "OR (SystemModstamp = {wm} AND Id > {last}) ORDER BY SystemModstamp, Id LIMIT {n}",
        wm=watermark,
        last=acc_id(1),
        n=2,
    )
    assert "2026-11-01T00:00:00+00:00" in soql
    assert ids(soql, sync_accounts()) == [acc_id(3), acc_id(4)]
    soql = format_soql(
        "SELECT Id FROM Account WHERE Id IN {ids} AND Name != {name} AND IsDeleted = {deleted}",
        ids=[acc_id(2), acc_id(4)],
        name='O\'Brien \\ "Co"\n',
        deleted=False,
    )
    # No ORDER BY: rows come in storage order.
    assert ids(soql, sync_accounts()) == [acc_id(2), acc_id(4)]


# --------------------------------------------------------------------------- properties

IDENTS = st.sampled_from(
    ["Id", "Name", "Industry", "Account.Name", "Account.Owner.Name", "Tech_Stack__c", "x1", "a_b"]
)


def _number_value(d: Decimal) -> Value:
    text = format(d, "f")
    return Value("number", float(text) if "." in text else int(text), text)


def _string_value(text: str) -> Value:
    return Value("string", text, quote_soql_value(text)[1:-1])


SCALARS: st.SearchStrategy[Scalar] = st.one_of(
    st.text(max_size=12).map(_string_value),
    st.integers(min_value=-(10**12), max_value=10**12).map(lambda n: Value("number", n, str(n))),
    st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False).map(_number_value),
    st.booleans().map(lambda b: Value("boolean", b)),
    st.just(Value("null", None)),
    st.dates(min_value=date(1000, 1, 1)).map(DateLiteral),
    st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ).map(DateTimeLiteral),
    st.sampled_from(["TODAY", "LAST_WEEK", "NEXT_90_DAYS"]).map(DateFormula),
    st.tuples(st.sampled_from(["LAST_N_DAYS", "N_DAYS_AGO"]), st.integers(0, 999)).map(
        lambda t: DateFormula(*t)
    ),
)
FIELDS = IDENTS.map(f)
LEAVES: st.SearchStrategy[Condition] = st.one_of(
    st.builds(
        Comparison, FIELDS, st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "LIKE"]), SCALARS
    ),
    st.builds(
        SetComparison,
        FIELDS,
        st.sampled_from(["IN", "NOT IN", "INCLUDES", "EXCLUDES"]),
        st.lists(SCALARS, min_size=1, max_size=3).map(tuple),
    ),
)
CONDITIONS: st.SearchStrategy[Condition] = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        inner.map(Not),
    ),
    max_leaves=6,
)
QUERIES = st.builds(
    Query,
    object=st.sampled_from(["Account", "Contact", "Custom__c"]),
    fields=st.lists(FIELDS, min_size=1, max_size=4),
    where=st.none() | CONDITIONS,
    order_by=st.lists(
        st.builds(OrderItem, FIELDS, st.booleans(), st.none() | st.booleans()), max_size=3
    ),
    limit=st.none() | st.integers(0, 50_000),
    offset=st.none() | st.integers(0, MAX_OFFSET),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(QUERIES)
def test_round_trip(query: Query) -> None:
    assert parse(query.to_soql()) == query


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=30))
def test_format_soql_strings_parse_back(text: str) -> None:
    q = parse(format_soql("SELECT Id FROM Account WHERE Name = {}", text))
    assert q.where == Comparison(f("Name"), "=", s(text))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=10), st.text(max_size=10))
def test_like_prefix_matches_any_suffix(prefix: str, suffix: str) -> None:
    soql = format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}%'", prefix)
    # A shorter name never starts with the prefix; an empty one is null and matches nothing.
    recs = [account(1, Name=prefix + suffix + "x"), account(2, Name=prefix[:-1])]
    assert ids(soql, recs) == [acc_id(1)]


SOQL_ALPHABET = string.ascii_letters + string.digits + " _.,()'\\=!<>:%-+\n" + "é✓"


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(st.text(max_size=60), st.text(alphabet=SOQL_ALPHABET, max_size=60)))
def test_parser_fails_only_with_soql_error(text: str) -> None:
    try:
        q = parse("SELECT Id FROM Account WHERE " + text)
    except SoqlError as err:
        assert err.error_code in {"MALFORMED_QUERY", "NUMBER_OUTSIDE_VALID_RANGE"}
        assert err.row is not None and err.column is not None and err.column >= 1
    else:
        assert isinstance(q, Query)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(QUERIES, st.data())
def test_mutated_queries_fail_only_with_soql_error(query: Query, data: st.DataObject) -> None:
    text = query.to_soql()
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.text(alphabet=SOQL_ALPHABET, max_size=3))
    mutated = text[:cut] + junk + text[cut + data.draw(st.integers(0, 3)) :]
    try:
        bound: BoundQuery | None = bind(parse(mutated), SCHEMA, today=TODAY)
    except SoqlError as err:
        assert err.error_code in {
            "MALFORMED_QUERY",
            "NUMBER_OUTSIDE_VALID_RANGE",
            "INVALID_TYPE",
            "INVALID_FIELD",
            "INVALID_QUERY_FILTER_OPERATOR",
        }
        bound = None
    if bound is not None:
        # Whatever binds also evaluates without raising.
        list(bound.execute(NULLS + sync_accounts(), lambda o, i: None))
