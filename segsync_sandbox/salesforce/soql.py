"""SOQL for the local Salesforce sandbox: a tokenizer, a recursive-descent parser and an evaluator.

Covers the subset integrations send: a SELECT list of fields and parent fields
(``Account.Name`` on Contact, any depth) or ``COUNT()``; FROM one object;
WHERE with AND / OR / NOT and parentheses (as in Salesforce, mixing operators
at one level needs parentheses); ``= != <> < <= > >=``, ``IN`` / ``NOT IN``,
``LIKE``, ``INCLUDES`` / ``EXCLUDES``; string, number, boolean, ``null``,
date, datetime literals and the common date formulas (``TODAY``,
``LAST_N_DAYS:30``...); ORDER BY with ASC / DESC and NULLS FIRST / LAST;
LIMIT and OFFSET.

Three steps, so the sandbox parses once and evaluates millions of records:

1. :func:`parse` turns text into a :class:`Query` (a plain AST). Syntax errors
   raise :class:`SoqlError` with ``error_code="MALFORMED_QUERY"`` and a message
   shaped like Salesforce's (the query line, a caret, ``ERROR at Row:1:Column:N``).
2. :func:`bind` checks the query against a schema (a mapping of object name to
   :class:`SoqlObject`, built by the app from its describe data) and compiles
   the WHERE tree and ORDER BY keys into closures. Unknown objects raise
   ``INVALID_TYPE``; unknown fields, relationships and literals of the wrong
   type raise ``INVALID_FIELD``; operators a field type does not support raise
   ``INVALID_QUERY_FILTER_OPERATOR``.
3. :class:`BoundQuery` evaluates: :meth:`~BoundQuery.matches`,
   :meth:`~BoundQuery.project` (the REST record shape),
   :meth:`~BoundQuery.row` (flat values for Bulk 2.0 CSV, see
   :attr:`~BoundQuery.columns`), :meth:`~BoundQuery.select` /
   :meth:`~BoundQuery.execute` (WHERE, ORDER BY, OFFSET, LIMIT; streams when
   there is no ORDER BY) and :meth:`~BoundQuery.count`.

Records are mappings from canonical field name to JSON-ish values, as the
sandbox stores them: ``str``, ``int``, ``float``, ``bool``, ``None``; dates as
``YYYY-MM-DD``; datetimes as the REST API prints them
(``2013-05-20T20:49:32.000+0000``; ``datetime`` / ``date`` objects are
accepted too). Parent records are found through a :data:`ParentResolver`.

Semantics follow Salesforce: string ``=`` and ordering are case-insensitive;
an empty string is null; ``!=`` and ``NOT IN`` match null values; datetimes
compare as instants whatever their offset; ids compare on their
case-sensitive 15-character prefix, so a 15- or 18-character literal matches.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "FIELD_TYPES",
    "MAX_OFFSET",
    "MAX_SOQL_LENGTH",
    "And",
    "BoundQuery",
    "CompareOp",
    "Comparison",
    "Condition",
    "DateFormula",
    "DateLiteral",
    "DateTimeLiteral",
    "FieldRef",
    "Not",
    "Or",
    "OrderItem",
    "ParentResolver",
    "Query",
    "Scalar",
    "SetComparison",
    "SetOp",
    "SoqlError",
    "SoqlField",
    "SoqlObject",
    "Value",
    "bind",
    "format_datetime",
    "parse",
]

MAX_OFFSET: Final = 2000
"""Largest OFFSET Salesforce accepts."""

MAX_SOQL_LENGTH: Final = 100_000
"""Longest SOQL statement Salesforce accepts, in characters."""

ParentResolver: TypeAlias = Callable[[str, str], Mapping[str, Any] | None]
"""Finds a parent record: ``resolve(object_name, record_id) -> record or None``."""


# --------------------------------------------------------------------------- errors


class SoqlError(Exception):
    """A query Salesforce would refuse, answered with HTTP 400.

    Attributes:
        error_code: Salesforce's ``errorCode`` (``MALFORMED_QUERY``, ``INVALID_FIELD``,
            ``INVALID_TYPE``, ``INVALID_QUERY_FILTER_OPERATOR``,
            ``NUMBER_OUTSIDE_VALID_RANGE``).
        message: The full ``message`` as Salesforce words it, with the query line,
            a caret and ``ERROR at Row:R:Column:C`` when a position is known.
        detail: The last line of ``message`` (what is wrong, without the position).
        row: 1-based row of the offending token, or None.
        column: 1-based column of the offending token, or None.

    """

    status = 400

    def __init__(
        self,
        error_code: str,
        detail: str,
        *,
        soql: str | None = None,
        pos: int | None = None,
    ) -> None:
        self.error_code = error_code
        self.detail = detail
        self.row: int | None = None
        self.column: int | None = None
        message = detail
        if soql is not None and pos is not None:
            pos = max(0, min(pos, len(soql)))
            self.row = soql.count("\n", 0, pos) + 1
            line_start = soql.rfind("\n", 0, pos) + 1
            line_end = soql.find("\n", pos)
            line = soql[line_start : line_end if line_end >= 0 else len(soql)]
            self.column = pos - line_start + 1
            message = (
                f"\n{line}\n{' ' * (self.column - 1)}^\n"
                f"ERROR at Row:{self.row}:Column:{self.column}\n{detail}"
            )
        self.message = message
        super().__init__(f"{error_code}: {message}")

    def to_json(self) -> list[dict[str, Any]]:
        """The error body the REST API sends: ``[{"message", "errorCode"}]``."""
        return [{"message": self.message, "errorCode": self.error_code}]


def _malformed(detail: str, soql: str, pos: int) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", detail, soql=soql, pos=pos)


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field path as written: ``("Name",)`` or ``("Account", "Name")``."""

    path: tuple[str, ...]
    pos: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        """The dotted path as written (``Account.Name``)."""
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Value:
    r"""A scalar literal: string, number, boolean or null.

    ``kind`` is ``"string"``, ``"number"``, ``"boolean"`` or ``"null"``.
    For strings, ``raw`` is the text between the quotes, escapes undecoded
    (LIKE reads ``\%`` and ``\_`` from it); ``value`` is the decoded text.
    For numbers, ``raw`` is the text as written.
    """

    kind: Literal["string", "number", "boolean", "null"]
    value: str | int | float | bool | None
    raw: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class DateLiteral:
    """An unquoted date literal such as ``2026-11-01``."""

    value: date


@dataclass(frozen=True, slots=True)
class DateTimeLiteral:
    """An unquoted datetime literal such as ``2026-11-01T00:00:00Z`` (always timezone-aware)."""

    value: datetime


@dataclass(frozen=True, slots=True)
class DateFormula:
    """A relative date literal: ``TODAY``, ``LAST_N_DAYS:30``... (``n`` is None without ``:n``)."""

    name: str
    n: int | None = None


Scalar: TypeAlias = Value | DateLiteral | DateTimeLiteral | DateFormula
"""Any value that can stand on the right of a comparison."""

CompareOp: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">=", "LIKE"]
SetOp: TypeAlias = Literal["IN", "NOT IN", "INCLUDES", "EXCLUDES"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``. ``op`` is ``=  !=  <  <=  >  >=  LIKE`` (``<>`` is read as ``!=``)."""

    field: FieldRef
    op: CompareOp
    value: Scalar


@dataclass(frozen=True, slots=True)
class SetComparison:
    """``field IN (...)``, ``NOT IN``, ``INCLUDES`` or ``EXCLUDES`` with a value list."""

    field: FieldRef
    op: SetOp
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` (two or more)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``items`` (two or more)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The negation of ``item``."""

    item: Condition


Condition: TypeAlias = Comparison | SetComparison | And | Or | Not
"""A WHERE tree node."""


@dataclass(frozen=True, slots=True)
class OrderItem:
    """One ORDER BY key. ``nulls_first`` None means the default (first when ascending)."""

    field: FieldRef
    descending: bool = False
    nulls_first: bool | None = None

    @property
    def effective_nulls_first(self) -> bool:
        """Where nulls go: Salesforce puts them first ascending and last descending."""
        return (not self.descending) if self.nulls_first is None else self.nulls_first


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed SOQL query (not yet checked against a schema).

    Attributes:
        object: The FROM object as written.
        fields: The SELECT list as written (empty for ``COUNT()``).
        where: The WHERE tree, or None.
        order_by: The ORDER BY keys, most significant first.
        limit: The LIMIT, or None.
        offset: The OFFSET, or None.
        count: True for ``SELECT COUNT()``.
        soql: The text parsed (for error positions in :func:`bind`).
        object_pos: Offset of the FROM object in ``soql``.

    """

    object: str
    fields: list[FieldRef]
    where: Condition | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    count: bool = False
    soql: str = field(default="", compare=False, repr=False)
    object_pos: int = field(default=0, compare=False, repr=False)

    def to_soql(self) -> str:
        """The query as canonical SOQL text (parses back to an equal Query)."""
        select = "COUNT()" if self.count else ", ".join(f.name for f in self.fields)
        parts = [f"SELECT {select} FROM {self.object}"]
        if self.where is not None:
            parts.append(f"WHERE {_condition_soql(self.where)}")
        if self.order_by:
            keys = []
            for item in self.order_by:
                text = item.field.name + (" DESC" if item.descending else " ASC")
                if item.nulls_first is not None:
                    text += " NULLS FIRST" if item.nulls_first else " NULLS LAST"
                keys.append(text)
            parts.append("ORDER BY " + ", ".join(keys))
        if self.limit is not None:
            parts.append(f"LIMIT {self.limit}")
        if self.offset is not None:
            parts.append(f"OFFSET {self.offset}")
        return " ".join(parts)


def _scalar_soql(value: Scalar) -> str:
    if isinstance(value, Value):
        if value.kind == "string":
            return "'" + value.raw + "'"
        if value.kind == "number":
            return value.raw or repr(value.value)
        if value.kind == "boolean":
            return "true" if value.value else "false"
        return "null"
    if isinstance(value, DateLiteral):
        return value.value.isoformat()
    if isinstance(value, DateTimeLiteral):
        return value.value.isoformat().replace("+00:00", "Z")
    return value.name if value.n is None else f"{value.name}:{value.n}"


def _condition_soql(cond: Condition) -> str:
    if isinstance(cond, Comparison):
        return f"{cond.field.name} {cond.op} {_scalar_soql(cond.value)}"
    if isinstance(cond, SetComparison):
        values = ", ".join(_scalar_soql(v) for v in cond.values)
        return f"{cond.field.name} {cond.op} ({values})"
    if isinstance(cond, Not):
        return f"NOT ({_condition_soql(cond.item)})"
    joiner = " AND " if isinstance(cond, And) else " OR "
    return joiner.join(f"({_condition_soql(item)})" for item in cond.items)


# --------------------------------------------------------------------------- tokenizer

_TokKind: TypeAlias = Literal[
    "ident", "string", "number", "date", "datetime", "op", "(", ")", ",", ":", "eof"
]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _TokKind
    text: str
    pos: int
    value: Any = None

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""


_WS = re.compile(r"\s+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
# A date literal, optionally followed by the time part; validated after matching
# so that a malformed datetime is reported as one token, not as a date plus junk.
_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}(?:T[0-9:.+\-Z]*)?")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:(Z)|([+-])(\d{2}):?(\d{2}))$"
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?![A-Za-z0-9_.])")
_OPS = ("<=", ">=", "!=", "<>", "=", "<", ">")
_STRING_ESCAPES: Final = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
    "%": "%",
    "_": "_",
}


def _tokenize(soql: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(soql)
    while True:
        m = _WS.match(soql, i)
        if m:
            i = m.end()
        if i >= n:
            tokens.append(_Token("eof", "<EOF>", n))
            return tokens
        ch = soql[i]
        if ch == "'":
            tokens.append(_read_string(soql, i))
            i += len(tokens[-1].text)
            continue
        if ch in "(),:":
            tokens.append(_Token(ch, ch, i))  # type: ignore[arg-type]
            i += 1
            continue
        op = next((o for o in _OPS if soql.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, i, "!=" if op == "<>" else op))
            i += len(op)
            continue
        m = _DATE_START.match(soql, i)
        if m:
            tokens.append(_read_date(soql, i, m.group()))
            i = m.end()
            continue
        m = _NUMBER.match(soql, i)
        if m:
            text = m.group()
            value: int | float = float(text) if "." in text else int(text)
            tokens.append(_Token("number", text, i, value))
            i = m.end()
            continue
        m = _IDENT.match(soql, i)
        if m:
            tokens.append(_Token("ident", m.group(), i))
            i = m.end()
            continue
        # Salesforce's lexer names the character it could not read.
        end = i + 1
        while end < n and not soql[end].isspace() and soql[end] not in "(),'":
            end += 1
        raise _malformed(f"unexpected token: '{soql[i:end]}'", soql, i)


def _read_string(soql: str, start: int) -> _Token:
    out: list[str] = []
    i, n = start + 1, len(soql)
    while i < n:
        ch = soql[i]
        if ch == "'":
            raw = soql[start + 1 : i]
            return _Token("string", soql[start : i + 1], start, ("".join(out), raw))
        if ch == "\\":
            if i + 1 >= n:
                break
            esc = soql[i + 1]
            if esc in ("u", "U"):
                hexdigits = soql[i + 2 : i + 6]
                if len(hexdigits) == 4 and all(c in "0123456789abcdefABCDEF" for c in hexdigits):
                    out.append(chr(int(hexdigits, 16)))
                    i += 6
                    continue
            decoded = _STRING_ESCAPES.get(esc) or _STRING_ESCAPES.get(esc.lower())
            if decoded is None:
                raise _malformed(
                    f"Invalid string literal '{soql[start + 1 : i + 2]}'. "
                    f"Illegal character sequence '\\{esc}' in string literal.",
                    soql,
                    i,
                )
            out.append(decoded)
            i += 2
            continue
        out.append(ch)
        i += 1
    raise _malformed(f"unexpected token: '{soql[start:]}'", soql, start)


def _read_date(soql: str, start: int, text: str) -> _Token:
    try:
        if "T" not in text:
            return _Token("date", text, start, date.fromisoformat(text))
        m = _DATETIME.match(text)
        if m is None:
            raise ValueError(text)
        year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
        micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
        if m.group(8):
            offset = timedelta(0)
        else:
            sign = -1 if m.group(9) == "-" else 1
            offset = sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if abs(offset) >= timedelta(hours=24):
            raise ValueError(text)
        naive = datetime(year, month, day, hour, minute, second, micro)
        value = (naive - offset).replace(tzinfo=UTC)
        return _Token("datetime", text, start, value)
    except (ValueError, OverflowError):
        raise _malformed(f"unexpected token: '{text}'", soql, start) from None


# --------------------------------------------------------------------------- parser

_DATE_FORMULAS: Final = frozenset(
    {
        "YESTERDAY",
        "TODAY",
        "TOMORROW",
        "LAST_WEEK",
        "THIS_WEEK",
        "NEXT_WEEK",
        "LAST_MONTH",
        "THIS_MONTH",
        "NEXT_MONTH",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
        "THIS_QUARTER",
        "LAST_QUARTER",
        "NEXT_QUARTER",
        "THIS_YEAR",
        "LAST_YEAR",
        "NEXT_YEAR",
    }
)
_DATE_FORMULAS_N: Final = frozenset(
    {
        "LAST_N_DAYS",
        "NEXT_N_DAYS",
        "N_DAYS_AGO",
        "LAST_N_WEEKS",
        "NEXT_N_WEEKS",
        "N_WEEKS_AGO",
        "LAST_N_MONTHS",
        "NEXT_N_MONTHS",
        "N_MONTHS_AGO",
        "LAST_N_YEARS",
        "NEXT_N_YEARS",
        "N_YEARS_AGO",
    }
)
# Words that end a field list or expression; never read as a field name, so a
# misplaced clause is reported where Salesforce reports it.
_RESERVED: Final = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "ORDER",
        "GROUP",
        "HAVING",
        "LIMIT",
        "OFFSET",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "INCLUDES",
        "EXCLUDES",
        "NULL",
        "TRUE",
        "FALSE",
        "WITH",
        "USING",
        "FOR",
    }
)


class _Parser:
    def __init__(self, soql: str) -> None:
        self.soql = soql
        self.tokens = _tokenize(soql)
        self.i = 0

    # -- helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def error(self, tok: _Token | None = None) -> SoqlError:
        tok = tok or self.tok
        return _malformed(f"unexpected token: '{tok.text}'", self.soql, tok.pos)

    def at_keyword(self, *words: str) -> bool:
        return self.tok.upper in words

    def keyword(self, word: str) -> _Token:
        if self.tok.upper != word:
            raise self.error()
        return self.advance()

    def expect(self, kind: _TokKind) -> _Token:
        if self.tok.kind != kind:
            raise self.error()
        return self.advance()

    # -- grammar
    def query(self) -> Query:
        self.keyword("SELECT")
        fields: list[FieldRef] = []
        count = False
        if self.at_keyword("COUNT") and self.tokens[self.i + 1].kind == "(":
            self.advance()
            self.advance()
            self.expect(")")
            count = True
        else:
            fields.append(self.field_ref())
            while self.tok.kind == ",":
                self.advance()
                fields.append(self.field_ref())
        self.keyword("FROM")
        obj = self.tok
        if obj.kind != "ident" or "." in obj.text or obj.upper in _RESERVED:
            raise self.error()
        self.advance()
        where = None
        if self.at_keyword("WHERE"):
            self.advance()
            where = self.logical()
        order_by: list[OrderItem] = []
        if self.at_keyword("ORDER"):
            self.advance()
            self.keyword("BY")
            order_by.append(self.order_item())
            while self.tok.kind == ",":
                self.advance()
                order_by.append(self.order_item())
        limit = offset = None
        if self.at_keyword("LIMIT"):
            self.advance()
            limit = self.non_negative_int()
        if self.at_keyword("OFFSET"):
            self.advance()
            offset_tok = self.tok
            offset = self.non_negative_int()
            if offset > MAX_OFFSET:
                raise SoqlError(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"Maximum SOQL offset allowed is {MAX_OFFSET}",
                    soql=self.soql,
                    pos=offset_tok.pos,
                )
        if self.tok.kind != "eof":
            raise self.error()
        return Query(
            object=obj.text,
            fields=fields,
            where=where,
            order_by=order_by,
            limit=limit,
            offset=offset,
            count=count,
            soql=self.soql,
            object_pos=obj.pos,
        )

    def field_ref(self) -> FieldRef:
        tok = self.tok
        if tok.kind != "ident" or tok.upper in _RESERVED:
            raise self.error()
        self.advance()
        return FieldRef(tuple(tok.text.split(".")), tok.pos)

    def non_negative_int(self) -> int:
        tok = self.tok
        if tok.kind != "number" or not isinstance(tok.value, int) or not tok.text.isdigit():
            raise self.error()
        self.advance()
        return int(tok.value)

    def order_item(self) -> OrderItem:
        ref = self.field_ref()
        descending = False
        nulls_first: bool | None = None
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().upper == "DESC"
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.error()
            nulls_first = self.advance().upper == "FIRST"
        return OrderItem(ref, descending, nulls_first)

    def logical(self) -> Condition:
        # logicalExpression: c (AND c)* | c (OR c)* | NOT c  -- one kind of
        # operator per level, as Salesforce's grammar demands.
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.conditional())
        first = self.conditional()
        if not self.at_keyword("AND", "OR"):
            return first
        joiner = self.tok.upper
        items = [first]
        while self.at_keyword(joiner):
            self.advance()
            items.append(self.conditional())
        return And(tuple(items)) if joiner == "AND" else Or(tuple(items))

    def conditional(self) -> Condition:
        if self.tok.kind == "(":
            self.advance()
            inner = self.logical()
            self.expect(")")
            return inner
        return self.field_expression()

    def field_expression(self) -> Condition:
        ref = self.field_ref()
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            op: CompareOp = tok.value
            return Comparison(ref, op, self.scalar())
        word = tok.upper
        if word == "LIKE":
            self.advance()
            return Comparison(ref, "LIKE", self.scalar())
        if word == "NOT" and self.tokens[self.i + 1].upper == "IN":
            self.advance()
            self.advance()
            return SetComparison(ref, "NOT IN", self.value_list())
        if word in ("IN", "INCLUDES", "EXCLUDES"):
            self.advance()
            set_op: SetOp = word  # type: ignore[assignment]
            return SetComparison(ref, set_op, self.value_list())
        raise self.error()

    def value_list(self) -> tuple[Scalar, ...]:
        self.expect("(")
        if self.at_keyword("SELECT"):
            # Semi-joins are real SOQL, but not in this sandbox's subset.
            raise SoqlError(
                "MALFORMED_QUERY",
                "semi-join sub-selects are not supported by the sandbox",
                soql=self.soql,
                pos=self.tok.pos,
            )
        values = [self.scalar()]
        while self.tok.kind == ",":
            self.advance()
            values.append(self.scalar())
        self.expect(")")
        return tuple(values)

    def scalar(self) -> Scalar:
        tok = self.tok
        if tok.kind == "string":
            self.advance()
            decoded, raw = tok.value
            return Value("string", decoded, raw)
        if tok.kind == "number":
            self.advance()
            return Value("number", tok.value, tok.text)
        if tok.kind == "date":
            self.advance()
            return DateLiteral(tok.value)
        if tok.kind == "datetime":
            self.advance()
            return DateTimeLiteral(tok.value)
        word = tok.upper
        if word == "NULL":
            self.advance()
            return Value("null", None, "null")
        if word in ("TRUE", "FALSE"):
            self.advance()
            return Value("boolean", word == "TRUE", tok.text)
        if word in _DATE_FORMULAS:
            self.advance()
            return DateFormula(word)
        if word in _DATE_FORMULAS_N:
            self.advance()
            self.expect(":")
            n_tok = self.tok
            if n_tok.kind != "number" or not isinstance(n_tok.value, int):
                raise self.error()
            self.advance()
            return DateFormula(word, int(n_tok.value))
        raise self.error()


def parse(soql: str) -> Query:
    """Parse SOQL text into a :class:`Query`.

    Raises:
        SoqlError: ``MALFORMED_QUERY`` with Salesforce's ``unexpected token: 'X'``
            wording and position, or for a statement over 100,000 characters;
            ``NUMBER_OUTSIDE_VALID_RANGE`` for an OFFSET above 2,000.

    """
    if len(soql) > MAX_SOQL_LENGTH:
        raise SoqlError(
            "MALFORMED_QUERY",
            f"SOQL statements cannot be longer than {MAX_SOQL_LENGTH:,} characters.",
        )
    return _Parser(soql).query()


# --------------------------------------------------------------------------- schema

FIELD_TYPES: Final = frozenset(
    {
        "id",
        "reference",
        "string",
        "picklist",
        "multipicklist",
        "combobox",
        "textarea",
        "email",
        "phone",
        "url",
        "encryptedstring",
        "int",
        "long",
        "double",
        "currency",
        "percent",
        "boolean",
        "date",
        "datetime",
        "time",
        "base64",
        "address",
        "location",
        "anyType",
    }
)
"""Field types as describe names them (``describe()["fields"][i]["type"]``)."""

_TEXT_TYPES: Final = frozenset(
    {"string", "picklist", "combobox", "textarea", "email", "phone", "url", "encryptedstring"}
)
_NUMBER_TYPES: Final = frozenset({"int", "long", "double", "currency", "percent"})
# Types that are selectable but have no comparable value in this sandbox.
_OPAQUE_TYPES: Final = frozenset({"time", "base64", "address", "location", "anyType"})


@dataclass(frozen=True, slots=True)
class SoqlField:
    """What the SOQL engine needs to know about one field.

    Attributes:
        name: Canonical API name (``NumberOfEmployees``); queries may use any casing.
        type: A describe type from :data:`FIELD_TYPES`.
        reference_to: For ``reference`` fields, the parent object (``Account``).
        relationship_name: For ``reference`` fields, the name used in paths
            (``Account`` for ``AccountId``, ``Parent__r`` for ``Parent__c``).
        filterable: False for fields describe marks unfilterable (long text areas).
        sortable: False for fields describe marks unsortable (long text areas,
            multi-select picklists).

    """

    name: str
    type: str
    reference_to: str | None = None
    relationship_name: str | None = None
    filterable: bool = True
    sortable: bool = True

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name!r}: unknown SOQL field type {self.type!r}")


@dataclass(frozen=True)
class SoqlObject:
    """An sObject's name and fields, as the SOQL engine sees them.

    Build one per object from describe data, e.g.::

        SoqlObject("Contact", [SoqlField(f["name"], f["type"],
            (f["referenceTo"] or [None])[0], f["relationshipName"],
            f["filterable"], f["sortable"]) for f in describe["fields"]])
    """

    name: str
    fields: Sequence[SoqlField]
    _by_name: dict[str, SoqlField] = field(init=False, repr=False, compare=False)
    _by_relationship: dict[str, SoqlField] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name.lower(): f for f in self.fields})
        object.__setattr__(
            self,
            "_by_relationship",
            {
                f.relationship_name.lower(): f
                for f in self.fields
                if f.relationship_name and f.reference_to
            },
        )

    def get_field(self, name: str) -> SoqlField | None:
        """The field called ``name`` in any casing, or None."""
        return self._by_name.get(name.lower())

    def get_relationship(self, name: str) -> SoqlField | None:
        """The reference field whose relationship is called ``name`` in any casing, or None."""
        return self._by_relationship.get(name.lower())


def _find_object(schema: Mapping[str, SoqlObject], name: str) -> SoqlObject | None:
    found = schema.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    return next((obj for key, obj in schema.items() if key.lower() == lowered), None)


# --------------------------------------------------------------------------- values


def format_datetime(value: datetime) -> str:
    """A datetime as the REST API prints it: ``2013-05-20T20:49:32.000+0000`` (UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


@lru_cache(maxsize=65536)
def _parse_stored_datetime(text: str) -> str | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return format_datetime(parsed)


def _norm_datetime(value: Any) -> str | None:
    """A stored datetime as its canonical UTC text, which sorts like the instant."""
    # Fast path: the sandbox stores the REST format, already canonical and in UTC.
    if value.__class__ is str and len(value) == 28 and value.endswith("+0000") and value[10] == "T":
        return value
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, str):
        return _parse_stored_datetime(value)
    return None


def _norm_date(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value[:10]
    return None


def _norm_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value).casefold()


def _norm_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:15]


def _norm_number(value: Any) -> int | float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _norm_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return None


def _norm_multipicklist(value: Any) -> frozenset[str] | None:
    if value is None or value == "":
        return None
    return frozenset(part.strip().casefold() for part in str(value).split(";") if part.strip())


def _norm_opaque(value: Any) -> Any:
    return value


_NORMALIZERS: Final[dict[str, Callable[[Any], Any]]] = {
    **dict.fromkeys(_TEXT_TYPES, _norm_text),
    **dict.fromkeys(_NUMBER_TYPES, _norm_number),
    **dict.fromkeys(_OPAQUE_TYPES, _norm_opaque),
    "id": _norm_id,
    "reference": _norm_id,
    "boolean": _norm_boolean,
    "date": _norm_date,
    "datetime": _norm_datetime,
    "multipicklist": _norm_multipicklist,
}

_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def _project_value(ftype: str, value: Any) -> Any:
    """A stored value as the REST API prints it."""
    if value == "" and ftype not in _OPAQUE_TYPES:
        return None  # Salesforce stores no empty strings: blank reads back as null
    if ftype == "datetime" and isinstance(value, datetime):
        return format_datetime(value)
    if ftype == "date" and isinstance(value, date | datetime):
        return _norm_date(value)
    return value


# --------------------------------------------------------------------------- date formulas


def _add_months(d: date, months: int) -> date:
    total = d.year * 12 + (d.month - 1) + months
    return date(total // 12, total % 12 + 1, 1)


def _formula_range(formula: DateFormula, today: date) -> tuple[date, date]:
    """The half-open day range [start, end) a date formula covers (weeks start on Sunday)."""
    name, n = formula.name, formula.n or 0
    day = timedelta(days=1)
    week_start = today - timedelta(days=(today.weekday() + 1) % 7)
    month_start = today.replace(day=1)
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    year_start = date(today.year, 1, 1)
    ranges: dict[str, tuple[date, date]] = {
        "YESTERDAY": (today - day, today),
        "TODAY": (today, today + day),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_WEEK": (week_start - 7 * day, week_start),
        "THIS_WEEK": (week_start, week_start + 7 * day),
        "NEXT_WEEK": (week_start + 7 * day, week_start + 14 * day),
        "LAST_MONTH": (_add_months(month_start, -1), month_start),
        "THIS_MONTH": (month_start, _add_months(month_start, 1)),
        "NEXT_MONTH": (_add_months(month_start, 1), _add_months(month_start, 2)),
        "LAST_90_DAYS": (today - 90 * day, today + day),
        "NEXT_90_DAYS": (today + day, today + 91 * day),
        "LAST_QUARTER": (_add_months(quarter_start, -3), quarter_start),
        "THIS_QUARTER": (quarter_start, _add_months(quarter_start, 3)),
        "NEXT_QUARTER": (_add_months(quarter_start, 3), _add_months(quarter_start, 6)),
        "LAST_YEAR": (date(today.year - 1, 1, 1), year_start),
        "THIS_YEAR": (year_start, date(today.year + 1, 1, 1)),
        "NEXT_YEAR": (date(today.year + 1, 1, 1), date(today.year + 2, 1, 1)),
        # The LAST_N ranges include today; the NEXT_N ranges start tomorrow.
        "LAST_N_DAYS": (today - n * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": (today - n * day, today - (n - 1) * day),
        "LAST_N_WEEKS": (week_start - 7 * n * day, week_start),
        "NEXT_N_WEEKS": (week_start + 7 * day, week_start + 7 * (n + 1) * day),
        "N_WEEKS_AGO": (week_start - 7 * n * day, week_start - 7 * (n - 1) * day),
        "LAST_N_MONTHS": (_add_months(month_start, -n), month_start),
        "NEXT_N_MONTHS": (_add_months(month_start, 1), _add_months(month_start, n + 1)),
        "N_MONTHS_AGO": (_add_months(month_start, -n), _add_months(month_start, 1 - n)),
        "LAST_N_YEARS": (date(today.year - n, 1, 1), year_start),
        "NEXT_N_YEARS": (date(today.year + 1, 1, 1), date(today.year + n + 1, 1, 1)),
        "N_YEARS_AGO": (date(today.year - n, 1, 1), date(today.year - n + 1, 1, 1)),
    }
    return ranges[name]


# --------------------------------------------------------------------------- binding

_Getter: TypeAlias = Callable[[Mapping[str, Any], ParentResolver | None], Any]
_Predicate: TypeAlias = Callable[[Mapping[str, Any], ParentResolver | None], bool]

_TYPE_WORDS: Final = {
    "int": "integer",
    "long": "long",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "boolean": "boolean",
    "date": "date",
    "datetime": "dateTime",
}
_CMP: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class _Hop:
    """One step through a reference field to the parent record."""

    reference_field: str
    relationship: str
    target: str


@dataclass(frozen=True, slots=True)
class _ResolvedField:
    hops: tuple[_Hop, ...]
    field: SoqlField
    object: str

    @property
    def name(self) -> str:
        return ".".join([*(h.relationship for h in self.hops), self.field.name])


@dataclass
class _ProjNode:
    """The output shape of one object in a projected record, in SELECT order."""

    object: str
    items: list[tuple[str, SoqlField | _ProjChild]] = field(default_factory=list)


@dataclass
class _ProjChild:
    hop: _Hop
    node: _ProjNode


class _Binder:
    def __init__(self, query: Query, schema: Mapping[str, SoqlObject], today: date) -> None:
        self.query = query
        self.schema = schema
        self.today = today
        root = _find_object(schema, query.object)
        if root is None:
            raise self.error(
                "INVALID_TYPE",
                f"sObject type '{query.object}' is not supported. If you are attempting to "
                "use a custom object, be sure to append the '__c' after the entity name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
                query.object_pos,
            )
        self.root = root

    def error(self, code: str, detail: str, pos: int) -> SoqlError:
        return SoqlError(code, detail, soql=self.query.soql or None, pos=pos)

    def resolve(self, ref: FieldRef) -> _ResolvedField:
        obj = self.root
        hops: list[_Hop] = []
        # Salesforce accepts the object's own name as a prefix: Account.Name FROM Account.
        path = list(ref.path)
        if (
            len(path) > 1
            and path[0].lower() == obj.name.lower()
            and obj.get_relationship(path[0]) is None
        ):
            path = path[1:]
        for part in path[:-1]:
            ref_field = obj.get_relationship(part)
            target = (
                _find_object(self.schema, ref_field.reference_to)
                if ref_field and ref_field.reference_to
                else None
            )
            if ref_field is None or target is None:
                raise self.error(
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{part}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' "
                    "after the custom relationship name. Please reference your WSDL or the "
                    "describe call for the appropriate names.",
                    ref.pos,
                )
            hops.append(_Hop(ref_field.name, ref_field.relationship_name or part, target.name))
            obj = target
        found = obj.get_field(path[-1])
        if found is None:
            raise self.error(
                "INVALID_FIELD",
                f"No such column '{path[-1]}' on entity '{obj.name}'. If you are attempting "
                "to use a custom field, be sure to append the '__c' after the custom field "
                "name. Please reference your WSDL or the describe call for the appropriate "
                "names.",
                ref.pos,
            )
        return _ResolvedField(tuple(hops), found, obj.name)

    # -- getters
    def getter(self, rf: _ResolvedField, normalize: bool = True) -> _Getter:
        name = rf.field.name
        norm = _NORMALIZERS[rf.field.type] if normalize else _norm_opaque
        if not rf.hops:
            if norm is _norm_datetime:
                # The hot path of every incremental sync: inline the canonical check.
                def get_dt(record: Mapping[str, Any], _resolve: ParentResolver | None) -> Any:
                    value = record.get(name)
                    if (
                        value.__class__ is str
                        and len(value) == 28
                        and value.endswith("+0000")
                        and value[10] == "T"
                    ):
                        return value
                    return _norm_datetime(value)

                return get_dt

            def get(record: Mapping[str, Any], _resolve: ParentResolver | None) -> Any:
                return norm(record.get(name))

            return get
        hops = rf.hops

        def get_parent(record: Mapping[str, Any], resolve: ParentResolver | None) -> Any:
            current: Mapping[str, Any] | None = record
            for hop in hops:
                parent_id = current.get(hop.reference_field) if current is not None else None
                if not parent_id or resolve is None:
                    return None
                current = resolve(hop.target, parent_id)
                if current is None:
                    return None
            return norm(current.get(name)) if current is not None else None

        return get_parent

    # -- WHERE
    def compile(self, cond: Condition) -> _Predicate:
        if isinstance(cond, And | Or):
            return _combine([self.compile(c) for c in cond.items], isinstance(cond, And))
        if isinstance(cond, Not):
            inner = self.compile(cond.item)
            return lambda r, res: not inner(r, res)
        rf = self.resolve(cond.field)
        if not rf.field.filterable or rf.field.type in _OPAQUE_TYPES:
            raise self.error(
                "INVALID_FIELD",
                f"field '{rf.field.name}' can not be filtered in a query call",
                cond.field.pos,
            )
        if isinstance(cond, SetComparison):
            return self.compile_set(cond, rf)
        return self.compile_comparison(cond, rf)

    def bad_operator(self, rf: _ResolvedField, ref: FieldRef) -> SoqlError:
        return self.error(
            "INVALID_QUERY_FILTER_OPERATOR",
            f"invalid operator on {rf.field.type} field",
            ref.pos,
        )

    def literal(self, rf: _ResolvedField, ref: FieldRef, value: Scalar) -> Any:
        """The literal, normalized like the field's stored values; type errors as Salesforce."""
        ftype = rf.field.type
        name = rf.field.name
        if isinstance(value, Value) and value.kind == "null":
            return None
        if ftype in _TEXT_TYPES or ftype in ("id", "reference", "multipicklist"):
            if not (isinstance(value, Value) and value.kind == "string"):
                raise self.error(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type string "
                    "and should be enclosed in quotes",
                    ref.pos,
                )
            text = str(value.value)
            if ftype in ("id", "reference"):
                if text == "":
                    return None
                if not _ID_RE.match(text):
                    raise self.error(
                        "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}", ref.pos
                    )
                return text[:15]
            if ftype == "multipicklist":
                return _norm_multipicklist(text)
            return _norm_text(text)
        type_word = _TYPE_WORDS[ftype]
        mismatch = self.error(
            "INVALID_FIELD",
            f"value of filter criterion for field '{name}' must be of type {type_word} "
            "and should not be enclosed in quotes",
            ref.pos,
        )
        if ftype in _NUMBER_TYPES:
            if not (isinstance(value, Value) and value.kind == "number"):
                raise mismatch
            return value.value
        if ftype == "boolean":
            if not (isinstance(value, Value) and value.kind == "boolean"):
                raise mismatch
            return value.value
        if isinstance(value, DateFormula):
            start, end = _formula_range(value, self.today)
            if ftype == "date":
                return (start.isoformat(), end.isoformat())
            return (
                format_datetime(datetime.combine(start, datetime.min.time(), UTC)),
                format_datetime(datetime.combine(end, datetime.min.time(), UTC)),
            )
        if ftype == "date" and isinstance(value, DateLiteral):
            return value.value.isoformat()
        if ftype == "datetime" and isinstance(value, DateTimeLiteral):
            return format_datetime(value.value)
        raise mismatch

    def compile_comparison(self, cond: Comparison, rf: _ResolvedField) -> _Predicate:
        ftype = rf.field.type
        op = cond.op
        get = self.getter(rf)
        if op == "LIKE":
            if ftype in ("id", "reference", "multipicklist"):
                raise self.bad_operator(rf, cond.field)
            self.literal(rf, cond.field, cond.value)  # type check only
            if not isinstance(cond.value, Value) or cond.value.kind != "string":
                return lambda r, res: get(r, res) is None
            regex = _like_regex(cond.value.raw)
            match = regex.match
            return lambda r, res: (v := get(r, res)) is not None and match(v) is not None
        if ftype == "multipicklist" and op not in ("=", "!="):
            raise self.bad_operator(rf, cond.field)
        if ftype == "boolean" and op not in ("=", "!="):
            raise self.bad_operator(rf, cond.field)
        lit = self.literal(rf, cond.field, cond.value)
        if lit is None:
            if op == "=":
                return lambda r, res: get(r, res) is None
            if op == "!=":
                return lambda r, res: get(r, res) is not None
            # Ordering against null matches nothing.
            return lambda r, res: False
        if isinstance(lit, tuple):
            return _range_predicate(get, op, lit[0], lit[1])
        if op == "!=":
            # SOQL's != keeps records where the field is null.
            return lambda r, res: get(r, res) != lit
        if op == "=":
            return lambda r, res: get(r, res) == lit
        cmp = _CMP[op]
        return lambda r, res: (v := get(r, res)) is not None and cmp(v, lit)

    def compile_set(self, cond: SetComparison, rf: _ResolvedField) -> _Predicate:
        ftype = rf.field.type
        get = self.getter(rf)
        if cond.op in ("INCLUDES", "EXCLUDES"):
            if ftype != "multipicklist":
                raise self.error(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    "includes or excludes operator only valid on multipicklist field",
                    cond.field.pos,
                )
            groups = [g for g in (self.literal(rf, cond.field, v) for v in cond.values) if g]

            def includes(record: Mapping[str, Any], resolve: ParentResolver | None) -> bool:
                have = get(record, resolve)
                return have is not None and any(g <= have for g in groups)

            if cond.op == "INCLUDES":
                return includes
            return lambda r, res: not includes(r, res)
        if ftype == "boolean":
            raise self.bad_operator(rf, cond.field)
        literals = [self.literal(rf, cond.field, v) for v in cond.values]
        scalars = {lit for lit in literals if not isinstance(lit, tuple)}
        ranges = [lit for lit in literals if isinstance(lit, tuple)]

        def member(record: Mapping[str, Any], resolve: ParentResolver | None) -> bool:
            value = get(record, resolve)
            if value in scalars:
                return True
            return value is not None and any(lo <= value < hi for lo, hi in ranges)

        if cond.op == "IN":
            return member
        return lambda r, res: not member(r, res)

    # -- ORDER BY
    def sort_key(self, item: OrderItem) -> tuple[_Getter, bool]:
        rf = self.resolve(item.field)
        if not rf.field.sortable or rf.field.type in _OPAQUE_TYPES | {"multipicklist"}:
            raise self.error(
                "INVALID_FIELD",
                f"field '{rf.field.name}' can not be sorted in a query call",
                item.field.pos,
            )
        get = self.getter(rf)
        # With reverse=True the smallest keys come last, so the null marker flips.
        null_small = item.effective_nulls_first != item.descending
        null_rank, value_rank = (0, 1) if null_small else (1, 0)

        def key(record: Mapping[str, Any], resolve: ParentResolver | None) -> Any:
            value = get(record, resolve)
            return (null_rank, 0) if value is None else (value_rank, value)

        return key, item.descending


def _combine(parts: list[_Predicate], conjunction: bool) -> _Predicate:
    """AND or OR of compiled predicates, short-circuiting (no generator per record)."""
    if len(parts) == 2:
        first, second = parts
        if conjunction:
            return lambda r, res: first(r, res) and second(r, res)
        return lambda r, res: first(r, res) or second(r, res)

    def all_of(record: Mapping[str, Any], resolve: ParentResolver | None) -> bool:
        return all(part(record, resolve) for part in parts)

    def any_of(record: Mapping[str, Any], resolve: ParentResolver | None) -> bool:
        return any(part(record, resolve) for part in parts)

    return all_of if conjunction else any_of


def _range_predicate(get: _Getter, op: str, lo: str, hi: str) -> _Predicate:
    """A comparison against a date formula's range [lo, hi)."""
    if op == "=":
        return lambda r, res: (v := get(r, res)) is not None and lo <= v < hi
    if op == "!=":
        return lambda r, res: (v := get(r, res)) is None or not lo <= v < hi
    bound, cmp = {
        "<": (lo, operator.lt),
        "<=": (hi, operator.lt),
        ">": (hi, operator.ge),
        ">=": (lo, operator.ge),
    }[op]
    return lambda r, res: (v := get(r, res)) is not None and cmp(v, bound)


def _like_regex(raw: str) -> re.Pattern[str]:
    """A LIKE pattern (raw literal text) as an anchored, case-insensitive regex."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            esc = raw[i + 1]
            out.append(re.escape(_STRING_ESCAPES.get(esc) or _STRING_ESCAPES.get(esc.lower(), esc)))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    # Values reach the matcher casefolded, so the pattern is casefolded too.
    return re.compile("".join(out).casefold() + r"\Z", re.DOTALL)


class BoundQuery:
    """A query checked against a schema and compiled for evaluation.

    Attributes:
        query: The parsed query.
        object: The queried object's canonical name.
        columns: The selected fields as canonical dotted paths, in SELECT order
            (``["Id", "Account.Name"]``): the Bulk 2.0 CSV header.
        selected_fields: The :class:`SoqlField` of each column (e.g. to shrink the
            page size when long text areas are selected).
        is_count: True for ``SELECT COUNT()``: answer ``totalSize`` with no records.
        limit: The LIMIT, or None.
        offset: The OFFSET, or None.

    """

    def __init__(
        self,
        query: Query,
        binder: _Binder,
        api_version: str,
    ) -> None:
        self.query = query
        self.object = binder.root.name
        self.is_count = query.count
        self.limit = query.limit
        self.offset = query.offset
        self._api_version = api_version
        self._predicate: _Predicate | None = (
            binder.compile(query.where) if query.where is not None else None
        )
        self._keys = [binder.sort_key(item) for item in query.order_by]
        resolved: list[_ResolvedField] = []
        seen: dict[str, FieldRef] = {}
        for ref in query.fields:
            rf = binder.resolve(ref)
            canonical = rf.name
            if canonical.lower() in seen:
                raise binder.error(
                    "MALFORMED_QUERY", f"duplicate field selected: {canonical}", ref.pos
                )
            seen[canonical.lower()] = ref
            resolved.append(rf)
        self.columns = [rf.name for rf in resolved]
        self.selected_fields = [rf.field for rf in resolved]
        self._row_getters = [binder.getter(rf, normalize=False) for rf in resolved]
        self._row_types = [rf.field.type for rf in resolved]
        self._tree = _ProjNode(self.object)
        for rf in resolved:
            node = self._tree
            for hop in rf.hops:
                child = next(
                    (
                        item
                        for key, item in node.items
                        if isinstance(item, _ProjChild) and key == hop.relationship
                    ),
                    None,
                )
                if child is None:
                    child = _ProjChild(hop, _ProjNode(hop.target))
                    node.items.append((hop.relationship, child))
                node = child.node
            node.items.append((rf.field.name, rf.field))

    def matches(
        self, record: Mapping[str, Any], resolve_parent: ParentResolver | None = None
    ) -> bool:
        """Whether ``record`` satisfies the WHERE clause (always True without one)."""
        return self._predicate is None or self._predicate(record, resolve_parent)

    def project(
        self, record: Mapping[str, Any], resolve_parent: ParentResolver | None = None
    ) -> dict[str, Any]:
        """``record`` as the REST query API returns it.

        ``{"attributes": {"type", "url"}, <selected fields in SELECT order>}``; a
        relationship becomes a nested record with its own ``attributes``, or None
        when the reference is empty or the parent cannot be found.
        """
        return self._project_node(self._tree, record, resolve_parent)

    def _project_node(
        self,
        node: _ProjNode,
        record: Mapping[str, Any],
        resolve: ParentResolver | None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": node.object,
                "url": f"/services/data/v{self._api_version}/sobjects/{node.object}/"
                f"{record.get('Id')}",
            }
        }
        for key, item in node.items:
            if isinstance(item, SoqlField):
                out[key] = _project_value(item.type, record.get(key))
                continue
            parent_id = record.get(item.hop.reference_field)
            parent = resolve(item.hop.target, parent_id) if parent_id and resolve else None
            out[key] = None if parent is None else self._project_node(item.node, parent, resolve)
        return out

    def row(
        self, record: Mapping[str, Any], resolve_parent: ParentResolver | None = None
    ) -> list[Any]:
        """The selected values of ``record`` in :attr:`columns` order (for Bulk 2.0 CSV)."""
        return [
            _project_value(ftype, get(record, resolve_parent))
            for get, ftype in zip(self._row_getters, self._row_types, strict=True)
        ]

    def sort(
        self,
        records: Iterable[Mapping[str, Any]],
        resolve_parent: ParentResolver | None = None,
    ) -> list[Mapping[str, Any]]:
        """``records`` in ORDER BY order (a stable sort: ties keep their input order)."""
        ordered = list(records)
        # One stable pass per key, least significant first: each key keeps its
        # own direction without needing an invertible key for strings.
        for key, descending in reversed(self._keys):
            ordered.sort(key=lambda r, k=key: k(r, resolve_parent), reverse=descending)  # type: ignore[misc]
        return ordered

    def select(
        self,
        records: Iterable[Mapping[str, Any]],
        resolve_parent: ParentResolver | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """The stored records the query returns: WHERE, ORDER BY, OFFSET, LIMIT applied.

        Streams (reads only as far as it must) when there is no ORDER BY.
        """
        predicate = self._predicate
        matching: Iterable[Mapping[str, Any]] = (
            records if predicate is None else (r for r in records if predicate(r, resolve_parent))
        )
        if self._keys:
            matching = self.sort(matching, resolve_parent)
        start = self.offset or 0
        stop = None if self.limit is None else start + self.limit
        return islice(matching, start, stop)

    def execute(
        self,
        records: Iterable[Mapping[str, Any]],
        resolve_parent: ParentResolver | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The query's result rows, projected as the REST API returns them."""
        for record in self.select(records, resolve_parent):
            yield self.project(record, resolve_parent)

    def count(
        self,
        records: Iterable[Mapping[str, Any]],
        resolve_parent: ParentResolver | None = None,
    ) -> int:
        """How many rows the query returns (``totalSize``), OFFSET and LIMIT included."""
        predicate = self._predicate
        total = (
            sum(1 for _ in records)
            if predicate is None
            else sum(1 for r in records if predicate(r, resolve_parent))
        )
        total = max(0, total - (self.offset or 0))
        return total if self.limit is None else min(total, self.limit)


def bind(
    query: Query,
    schema: Mapping[str, SoqlObject],
    *,
    today: date | None = None,
    api_version: str = "59.0",
) -> BoundQuery:
    """Check ``query`` against ``schema`` and compile it.

    Args:
        query: A parsed query.
        schema: Object name (any casing) to :class:`SoqlObject`.
        today: The day date formulas (``TODAY``, ``LAST_N_DAYS:n``) count from, in
            UTC; the current UTC date when None.
        api_version: The version in each record's ``attributes.url`` (``"59.0"``).

    Raises:
        SoqlError: ``INVALID_TYPE`` for an unknown object; ``INVALID_FIELD`` for an
            unknown field or relationship, a literal of the wrong type, or a field
            that cannot be filtered or sorted; ``INVALID_QUERY_FILTER_OPERATOR`` for
            an operator the field type does not support or a malformed id;
            ``MALFORMED_QUERY`` for a field selected twice.

    """
    if today is None:
        today = datetime.now(UTC).date()
    return BoundQuery(query, _Binder(query, schema, today), api_version.removeprefix("v"))
