"""What a record id of each CRM looks like, checked before an id goes into a query.

Record ids come back from the state store (open errors, pending hysteresis
state) and go into a Salesforce ``Id IN (…)`` filter or a HubSpot batch read.
One malformed id there fails the whole call, and with it the job, on every
run; the runner drops such ids with a warning instead.

Salesforce ids are 15 case-sensitive or 18 case-insensitive alphanumeric
characters; HubSpot object ids are positive integers (sent as text).
"""

from __future__ import annotations

import re

_PATTERNS: dict[str, re.Pattern[str]] = {
    "salesforce": re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?"),
    "hubspot": re.compile(r"[1-9][0-9]{0,19}"),
}


def well_formed_id(crm: str, record_id: str) -> bool:
    """Whether ``record_id`` has the shape of a record id of ``crm``."""
    pattern = _PATTERNS.get(crm)
    return pattern is None or (
        isinstance(record_id, str) and pattern.fullmatch(record_id) is not None
    )
