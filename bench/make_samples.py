"""Regenerate the bundled sample exports in ``connector/samples/``.

Usage::

    .venv/bin/python bench/make_samples.py [--out connector/samples] [--seed 2026]

The samples come from the seeded sandbox dataset (``segsync_sandbox.data``),
so they hold the same messy values the sandboxes serve, and the same ids:

- ``salesforce_accounts.csv``: a Data Loader style Account export (every value
  a string, booleans ``true`` / ``false``, blanks empty);
- ``hubspot_companies.jsonl``: HubSpot company properties, one JSON object a
  line, every value a string (as HubSpot sends them), with ``hs_object_id``;
- ``salesforce_contacts.jsonl``: Contact records as the REST API returns them
  (JSON types, ``null`` blanks, the parent ``Account.Name``), for the contacts
  of the first accounts of the accounts sample.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segsync_sandbox import data

ROOT = Path(__file__).resolve().parent.parent
SEED = 2026
ACCOUNTS = 1_000
CONTACT_COMPANIES = 250
LIMIT_BYTES = 500_000


def _csv_value(value: Any) -> str:
    """A value as a Salesforce Data Loader export writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _write_csv(path: Path, rows: list[Mapping[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row.get(col)) for col in columns])


def _write_jsonl(path: Path, rows: list[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def make(out: Path, seed: int = SEED) -> list[Path]:
    """Write the three samples into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    companies = list(data.companies(seed, ACCOUNTS))

    accounts = out / "salesforce_accounts.csv"
    _write_csv(accounts, [data.salesforce_account_row(c) for c in companies])

    hubspot = out / "hubspot_companies.jsonl"
    _write_jsonl(
        hubspot,
        [
            {"hs_object_id": data.hubspot_company_id(c.index), **data.hubspot_company_props(c)}
            for c in companies
        ],
    )

    contacts = out / "salesforce_contacts.jsonl"
    rows: list[dict[str, Any]] = []
    for c in companies[:CONTACT_COMPANIES]:
        for ct in data.contacts_of(c, seed):
            row = {"attributes": {"type": "Contact"}, **data.salesforce_contact_row(ct)}
            row["Account"] = {"attributes": {"type": "Account"}, "Name": c.name}
            rows.append(row)
    _write_jsonl(contacts, rows)

    paths = [accounts, hubspot, contacts]
    for path in paths:
        size = path.stat().st_size
        if size > LIMIT_BYTES:
            raise SystemExit(f"{path} is {size:,} bytes, over the {LIMIT_BYTES:,} limit")
    return paths


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "connector" / "samples")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for path in make(args.out, args.seed):
        lines = sum(1 for _ in path.open(encoding="utf-8"))
        print(f"{path}: {lines:,} lines, {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
