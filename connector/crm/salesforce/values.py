"""Python values on the wire: REST JSON, Bulk 2.0 ingest cells, and Bulk result cells back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# A Bulk 2.0 ingest cell with this value sets the field to null (blank leaves it unchanged).
BULK_NULL = "#N/A"

_NUMBER_TYPES = {"double", "currency", "percent"}


def to_json(value: Any) -> Any:
    """A Python value as the REST API takes it: datetimes in Salesforce's format, None → null."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ";".join(str(v) for v in value)
    return value


def to_cell(value: Any) -> str:
    """A Python value as a Bulk 2.0 ingest CSV cell (``#N/A`` clears the field)."""
    if value is None:
        return BULK_NULL
    wire = to_json(value)
    if isinstance(wire, bool):
        return "true" if wire else "false"
    if isinstance(wire, float) and wire.is_integer():
        return str(int(wire))
    return str(wire)


def from_cell(text: str, ftype: str | None) -> Any:
    """A Bulk 2.0 result CSV cell as REST would give it, by the field's describe type."""
    if text == "":
        return None
    if ftype == "boolean":
        return text.lower() == "true"
    if ftype == "int":
        try:
            return int(text)
        except ValueError:
            return int(float(text))
    if ftype in _NUMBER_TYPES:
        return float(text)
    if ftype == "datetime":
        # Bulk prints UTC with a Z; REST with +0000.
        if text.endswith("Z") and len(text) == 24:
            return text[:-1] + "+0000"
        return text
    return text
