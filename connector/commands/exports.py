"""Reading CRM exports: CSV or JSON Lines files, optionally gzipped, streamed row by row.

An export is what a RevOps person pulls out of a CRM by hand (Salesforce Data
Loader or a report export, a HubSpot export, an API dump) with the CRM's own
field names. :class:`ExportReader` streams it, one record at a time, so a
multi-gigabyte export never sits in memory. Rows that cannot be read (a JSON
line that does not parse, a CSV row with the wrong number of columns, bytes
that are not UTF-8) are skipped and remembered as :class:`BadRow` with their
line number; everything else still counts.

Values are kept as the file gives them: strings in CSV, JSON types in JSON
Lines. Coercion is the engine's job, which already handles HubSpot's string
numbers and Salesforce's typed values. Two shapes are flattened so they read
like a Data Loader CSV: a HubSpot API object (``{"id", "properties": {...}}``)
and nested Salesforce parent records (``{"Account": {"Name": ...}}`` becomes
``Account.Name``).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

from connector.crm.ids import link_key
from connector.errors import Problem, UserError

ExportKind = Literal["csv", "jsonl"]
CRM_CHOICES: tuple[str, ...] = ("salesforce", "hubspot")

_KINDS: dict[str, ExportKind] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
SUPPORTED_SUFFIXES: tuple[str, ...] = (*_KINDS, *(f"{s}.gz" for s in _KINDS))

# Fields that identify a record, in order of preference, per CRM.
_ID_FIELDS: dict[str, tuple[str, ...]] = {
    "salesforce": ("Id",),
    "hubspot": ("hs_object_id", "id"),
}

# The field of a contact that names its account, per CRM.
_PARENT_FIELDS: dict[str, str] = {"salesforce": "AccountId", "hubspot": "associatedcompanyid"}

# Python's csv module refuses fields above 128 KiB by default; long-text CRM
# fields (notes, descriptions) legitimately exceed it.
csv.field_size_limit(16 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """One readable record of an export.

    Attributes:
        line: the 1-based line the record starts on in the (decompressed) file.
        fields: field name → value as the file gives it.

    """

    line: int
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BadRow:
    """One row that could not be read and was skipped."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def export_kind(path: str | Path) -> tuple[ExportKind, bool]:
    """The format of an export from its name, and whether it is gzipped.

    Raises:
        UserError: the extension is not one of :data:`SUPPORTED_SUFFIXES`.

    """
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    kind = _KINDS.get(suffixes[-1]) if suffixes else None
    if kind is None:
        expected = ", ".join(SUPPORTED_SUFFIXES)
        raise UserError(
            [Problem(str(path), "", f"unknown export format; expected a file ending in {expected}")]
        )
    return kind, gzipped


def record_id(fields: Mapping[str, Any], crm: str) -> str | None:
    """The record's id: Salesforce ``Id``; HubSpot ``hs_object_id``, else ``id``."""
    for name in _ID_FIELDS.get(crm, ()):
        value = fields.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def parent_id(fields: Mapping[str, Any], crm: str) -> str | None:
    """The id of a contact's account: Salesforce ``AccountId``, HubSpot ``associatedcompanyid``."""
    name = _PARENT_FIELDS.get(crm)
    value = fields.get(name) if name is not None else None
    if value is None or not str(value).strip():
        return None
    return str(value).strip()


def parent_field(crm: str) -> str:
    """The contact field naming its account in ``crm``."""
    return _PARENT_FIELDS[crm]


def id_fields(crm: str) -> tuple[str, ...]:
    """The field names that may carry a record's id in ``crm``'s exports."""
    return _ID_FIELDS.get(crm, ())


def same_id(wanted: str, found: str, crm: str) -> bool:
    """Whether ``found`` is the record ``wanted`` names (the one rule: :func:`link_key`).

    Salesforce ids come in a case-sensitive 15-character form (what the
    browser's address bar shows) and an 18-character case-safe form (what
    exports and the API use); either form matches the other.
    """
    return wanted == found or link_key(wanted, crm) == link_key(found, crm)


def is_blank(value: Any) -> bool:
    """Whether a raw export value carries no information (missing, empty, whitespace)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | set | frozenset | dict):
        return len(value) == 0
    return False


#: The deepest a JSON Lines record may nest (objects and arrays). Real exports
#: nest two or three levels (a contact's ``Account``); far deeper input is
#: hostile or broken, and recursive code downstream would overflow on it.
MAX_JSON_DEPTH = 32


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _strict_json(text: str) -> Any:
    """Standard JSON only: no NaN / Infinity, no number that overflows to infinity."""
    return json.loads(text, parse_float=_finite, parse_constant=_no_constant)


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects or arrays more than ``limit`` levels (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def flatten(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON export object flattened to ``Field`` / ``Parent.Field`` keys.

    HubSpot API objects keep their ``id`` and lift ``properties`` to the top;
    Salesforce ``attributes`` metadata is dropped; nested parent records
    (``{"Account": {"Name": "Acme"}}``) become dotted keys (``Account.Name``).
    """
    out: dict[str, Any] = {}
    props = obj.get("properties")
    if isinstance(props, Mapping):
        for key, value in obj.items():
            if key != "properties" and not isinstance(value, Mapping):
                out[key] = value
        out.update(props)
        return out
    for key, value in obj.items():
        if key == "attributes" and isinstance(value, Mapping):
            continue
        if isinstance(value, Mapping):
            for sub_key, sub_value in flatten(value).items():
                out[f"{key}.{sub_key}"] = sub_value
        else:
            out[key] = value
    return out


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a CSV export, from its header line.

    Comma unless the header has no comma but tabs or semicolons: spreadsheet
    tools in many locales save "CSV" with semicolons, and TSV exports are
    common. Values are never sniffed (``;`` separates multi-select values).
    """
    if "," in header_line:
        return ","
    if "\t" in header_line:
        return "\t"
    if ";" in header_line:
        return ";"
    return ","


class ExportReader:
    """A streamed export: iterate for records; bad rows collect in :attr:`bad_rows`.

    Use as a context manager (or call :meth:`close`). Iterating reads the file
    once, from the start; :attr:`fields_seen` holds the CSV header, or the
    union of JSON keys read so far.

    Attributes:
        path: the export file.
        kind: ``"csv"`` or ``"jsonl"``.
        gzipped: whether the file is gzip-compressed.
        bad_rows: the first ``max_bad_rows`` rows skipped, in file order.
        bad_count: every row skipped so far.
        delimiter: the CSV delimiter found in the header (``,``, ``;`` or tab).
        records_read: good records yielded so far.
        fields_seen: field names the file has shown so far, in first-seen order.

    """

    def __init__(self, path: str | Path, max_bad_rows: int = 1000) -> None:
        self.path = Path(path)
        self.kind, self.gzipped = export_kind(self.path)
        self.bad_rows: list[BadRow] = []
        self.bad_count = 0
        self.delimiter = ","
        self._max_bad_rows = max_bad_rows
        self.records_read = 0
        self.fields_seen: dict[str, None] = {}
        try:
            self._raw: IO[bytes] = self.path.open("rb")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UserError(
                [Problem(str(self.path), "", f"cannot open the export: {reason}")]
            ) from None
        self._stream: IO[bytes] = self._raw
        if self.gzipped:
            # GzipFile is a binary file object; typeshed just doesn't say IO[bytes].
            self._stream = cast(IO[bytes], gzip.GzipFile(fileobj=self._raw, mode="rb"))
        try:
            self.size = self.path.stat().st_size
        except OSError:
            self.size = 0

    def __enter__(self) -> ExportReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._stream.close()
        self._raw.close()

    @property
    def bytes_read(self) -> int:
        """Bytes of the file on disk consumed so far (compressed bytes for gzip), for progress."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[ExportRecord]:
        try:
            if self.kind == "csv":
                yield from self._csv()
            else:
                yield from self._jsonl()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            # A truncated or corrupt gzip stream cannot be resynchronized.
            raise UserError(
                [Problem(str(self.path), "", f"cannot read the export: {exc}")]
            ) from None

    def _bad(self, row: BadRow) -> None:
        self.bad_count += 1
        if len(self.bad_rows) < self._max_bad_rows:
            self.bad_rows.append(row)

    def _lines(self) -> Iterator[tuple[int, str | None, bytes]]:
        """(line number, decoded text or None if not UTF-8, raw bytes) per physical line."""
        for number, raw in enumerate(self._stream, start=1):
            data = raw[3:] if number == 1 and raw.startswith(codecs.BOM_UTF8) else raw
            try:
                yield number, data.decode("utf-8"), raw
            except UnicodeDecodeError:
                yield number, None, raw

    def _jsonl(self) -> Iterator[ExportRecord]:
        for number, text, _raw in self._lines():
            if text is None:
                self._bad(BadRow(number, "not valid UTF-8 text"))
                continue
            if not text.strip():
                continue
            try:
                obj = _strict_json(text)
            except RecursionError:
                self._bad(BadRow(number, f"nested more than {MAX_JSON_DEPTH} levels deep"))
                continue
            except ValueError as exc:
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                if "integer string conversion" in msg:
                    msg = "a number has more than 4,300 digits"
                self._bad(BadRow(number, f"not valid JSON ({msg})"))
                continue
            if _depth_over(obj, MAX_JSON_DEPTH):
                self._bad(BadRow(number, f"nested more than {MAX_JSON_DEPTH} levels deep"))
                continue
            if not isinstance(obj, dict):
                kind = type(obj).__name__
                self._bad(BadRow(number, f"expected a JSON object, found {kind}"))
                continue
            fields = flatten(obj)
            for key in fields:
                if key not in self.fields_seen:
                    self.fields_seen[key] = None
            self.records_read += 1
            yield ExportRecord(number, fields)

    def _csv(self) -> Iterator[ExportRecord]:
        undecodable: set[int] = set()

        # The csv module tracks physical lines itself (a quoted value may span
        # several), so feed it text and remember which lines failed to decode.
        def text_lines() -> Iterator[str]:
            for number, text, raw in self._lines():
                if text is None:
                    undecodable.add(number)
                    text = raw.decode("utf-8", errors="replace")
                yield text

        lines = text_lines()
        first = next(lines, None)
        if first is None:
            return
        self.delimiter = sniff_delimiter(first)
        reader = csv.reader(itertools.chain([first], lines), delimiter=self.delimiter, strict=True)
        header: list[str] | None = None
        end = 0
        while True:
            start = end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                end = reader.line_num
                self._bad(BadRow(start, f"malformed CSV ({exc})"))
                continue
            end = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if any(n in undecodable for n in range(start, end + 1)):
                self._bad(BadRow(start, "not valid UTF-8 text"))
                if header is None:
                    header = []  # an unreadable header: every data row will be reported
                continue
            if header is None:
                header = [name.strip() for name in row]
                self._check_header(header)
                self.fields_seen = dict.fromkeys(header)
                continue
            if len(row) != len(header):
                self._bad(BadRow(start, f"expected {len(header)} columns, found {len(row)}"))
                continue
            self.records_read += 1
            yield ExportRecord(start, dict(zip(header, row, strict=True)))

    def _check_header(self, header: list[str]) -> None:
        problems: list[Problem] = []
        seen: set[str] = set()
        for index, name in enumerate(header, start=1):
            if not name:
                problems.append(Problem(str(self.path), "line 1", f"column {index} has no name"))
            elif name in seen:
                problems.append(
                    Problem(str(self.path), "line 1", f"column {name!r} appears more than once")
                )
            seen.add(name)
        if problems:
            raise UserError(problems)
