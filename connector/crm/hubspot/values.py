"""HubSpot's names and wire format: object types, the stamp, values as strings.

HubSpot takes every property value as a string: numbers without a useless
``.0``, datetimes and dates as epoch milliseconds, booleans as
``"true"``/``"false"``, and a blank as ``""`` (which clears the value).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

# segsync's object names -> HubSpot's object types.
OBJECT_TYPES: dict[str, str] = {"account": "companies", "contact": "contacts"}
# The modification stamp every pull asks for and incremental pulls filter on.
STAMP = "hs_lastmodifieddate"


def epoch_ms(moment: datetime) -> str:
    """An aware datetime as epoch milliseconds, the way filters and values want it."""
    return str(int(moment.timestamp() * 1000))


def to_wire(value: Any) -> str:
    """A Python value as HubSpot wants it: always a string, ``""`` for blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return epoch_ms(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return epoch_ms(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
