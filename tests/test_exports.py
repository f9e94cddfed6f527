from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from connector.commands.exports import (
    ExportReader,
    export_kind,
    flatten,
    record_id,
    same_id,
    sniff_delimiter,
)
from connector.errors import UserError


def read(path: Path) -> tuple[list[tuple[int, dict[str, object]]], ExportReader]:
    with ExportReader(path) as reader:
        records = [(r.line, dict(r.fields)) for r in reader]
    return records, reader


@pytest.mark.parametrize(
    ("name", "kind", "gzipped"),
    [
        ("a.csv", "csv", False),
        ("a.CSV", "csv", False),
        ("a.jsonl", "jsonl", False),
        ("a.ndjson", "jsonl", False),
        ("export.2026.csv.gz", "csv", True),
        ("a.jsonl.gz", "jsonl", True),
    ],
)
def test_export_kind_from_extension(name: str, kind: str, gzipped: bool) -> None:
    assert export_kind(name) == (kind, gzipped)


@pytest.mark.parametrize("name", ["a.json", "a.xlsx", "a", "a.gz", "a.txt.gz"])
def test_unknown_extension_is_a_user_error(name: str) -> None:
    with pytest.raises(UserError) as info:
        export_kind(name)
    assert name in str(info.value)
    assert ".jsonl" in str(info.value)


def test_csv_records_keep_strings_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(
        'Id,Name,Tech_Stack__c\n001A,"Acme, Inc.","Salesforce;Slack"\n'
        '001B,"Multi\nline",\n\n001C,Zeta,AWS\n',
        encoding="utf-8",
    )
    records, reader = read(path)
    assert records == [
        (2, {"Id": "001A", "Name": "Acme, Inc.", "Tech_Stack__c": "Salesforce;Slack"}),
        (3, {"Id": "001B", "Name": "Multi\nline", "Tech_Stack__c": ""}),
        (6, {"Id": "001C", "Name": "Zeta", "Tech_Stack__c": "AWS"}),
    ]
    assert reader.bad_rows == []
    assert list(reader.fields_seen) == ["Id", "Name", "Tech_Stack__c"]
    assert reader.records_read == 3


def test_csv_bad_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"Id,Name,Industry\n"
        b"1,Good,Software\n"  # line 2
        b"2,Too,Many,Columns\n"  # line 3
        b"3,Short\n"  # line 4
        b'4,"bad"quote,Retail\n'  # line 5
        b"5,\xff\xfe,Retail\n"  # line 6: not UTF-8
        b"6,Fine,Banking\n"  # line 7
    )
    records, reader = read(path)
    assert [line for line, _ in records] == [2, 7]
    assert [b.line for b in reader.bad_rows] == [3, 4, 5, 6]
    assert reader.bad_count == 4
    assert "expected 3 columns, found 4" in reader.bad_rows[0].message
    assert "found 2" in reader.bad_rows[1].message
    assert "UTF-8" in reader.bad_rows[3].message


def test_csv_bom_and_semicolon_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b'\xef\xbb\xbfId;Name;Tech_Stack__c\n001A;Acme;"Salesforce;Slack"\n')
    records, reader = read(path)
    assert reader.delimiter == ";"
    assert records == [(2, {"Id": "001A", "Name": "Acme", "Tech_Stack__c": "Salesforce;Slack"})]


def test_sniff_delimiter_only_trusts_the_header() -> None:
    assert sniff_delimiter("Id,Name\n") == ","
    assert sniff_delimiter("Id\tName\n") == "\t"
    assert sniff_delimiter("Id;Name\n") == ";"
    assert sniff_delimiter("Id\n") == ","


def test_csv_duplicate_header_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("Id,Name,Name\n1,a,b\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        read(path)
    assert "'Name' appears more than once" in str(info.value)


def test_jsonl_bad_lines_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "companies.jsonl"
    lines = [
        json.dumps({"hs_object_id": "101", "numberofemployees": "250"}),
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({"hs_object_id": "102", "industry": "BANKING"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, reader = read(path)
    assert records == [
        (1, {"hs_object_id": "101", "numberofemployees": "250"}),
        (5, {"hs_object_id": "102", "industry": "BANKING"}),
    ]
    assert [(b.line, "JSON" in b.message) for b in reader.bad_rows] == [(2, True), (4, True)]
    assert list(reader.fields_seen) == ["hs_object_id", "numberofemployees", "industry"]


def test_jsonl_keeps_json_types(tmp_path: Path) -> None:
    path = tmp_path / "sf.ndjson"
    row = {
        "Id": "001A",
        "NumberOfEmployees": 1200,
        "AnnualRevenue": 5.5e7,
        "Segsync_Lock__c": False,
    }
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    records, _ = read(path)
    assert records == [(1, row)]


def test_gzipped_exports_stream(tmp_path: Path) -> None:
    csv_path = tmp_path / "a.csv.gz"
    with gzip.open(csv_path, "wt", encoding="utf-8") as fh:
        fh.write("Id,Name\n")
        for i in range(500):
            fh.write(f"{i},name {i}\n")
    records, reader = read(csv_path)
    assert len(records) == 500
    assert records[-1] == (501, {"Id": "499", "Name": "name 499"})
    assert reader.gzipped

    jsonl_path = tmp_path / "a.jsonl.gz"
    with gzip.open(jsonl_path, "wt", encoding="utf-8") as fh:
        fh.write('{"id": "1"}\n{"id": "2"}\n')
    records, _ = read(jsonl_path)
    assert [r[1]["id"] for r in records] == ["1", "2"]


def test_corrupt_gzip_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(UserError) as info:
        read(path)
    assert "broken.csv.gz" in str(info.value)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        ExportReader(tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)


def test_flatten_hubspot_api_objects_and_salesforce_parents() -> None:
    hubspot = {"id": "55", "archived": False, "properties": {"name": "Acme", "hs_object_id": "55"}}
    assert flatten(hubspot) == {"id": "55", "archived": False, "name": "Acme", "hs_object_id": "55"}
    salesforce = {
        "attributes": {"type": "Contact", "url": "/x"},
        "Id": "003A",
        "Account": {"attributes": {"type": "Account"}, "Name": "Acme", "Owner": {"Name": "Ann"}},
    }
    assert flatten(salesforce) == {
        "Id": "003A",
        "Account.Name": "Acme",
        "Account.Owner.Name": "Ann",
    }


def test_record_id_per_crm() -> None:
    assert record_id({"Id": " 001A "}, "salesforce") == "001A"
    assert record_id({"Id": ""}, "salesforce") is None
    assert record_id({"hs_object_id": "9", "id": "8"}, "hubspot") == "9"
    assert record_id({"hs_object_id": "", "id": 8}, "hubspot") == "8"
    assert record_id({"Id": "001A"}, "hubspot") is None


def test_same_id_accepts_salesforce_15_character_ids() -> None:
    long_id = "001Ab00000XyZ01AAQ"
    assert same_id(long_id, long_id, "salesforce")
    assert same_id(long_id[:15], long_id, "salesforce")
    assert not same_id(long_id[:15].lower(), long_id, "salesforce")
    assert not same_id(long_id[:15], long_id, "hubspot")


def test_csv_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b'Id,Name\r\n1,"two\r\nlines"\r\n2,c\r\n')
    records, reader = read(path)
    assert records == [(2, {"Id": "1", "Name": "two\r\nlines"}), (4, {"Id": "2", "Name": "c"})]
    assert reader.bad_rows == []
