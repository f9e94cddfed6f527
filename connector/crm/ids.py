"""Record ids as each CRM spells them: their shape, and one form for linking and lookups.

Salesforce ids come in two forms. The 15-character id is case-sensitive
(``001A0000001aBcD`` and ``001A0000001abcd`` are different records); it is
what the address bar, many reports and formula fields show. The
18-character id appends a three-character suffix that encodes the case of
the first fifteen, so it identifies the record even when a tool has
lowered it; the API and Data Loader use it. :func:`salesforce_id18` turns
either form into the canonical 18-character id the way Salesforce's
``CASESAFEID()`` does, and every command that links or looks up records
(``preview``, ``explain``, ``diff`` with ``--accounts`` or ``--id``)
compares ids through :func:`link_key`. HubSpot object ids are positive
integers (sent as text): ``"00123"``, ``"123"`` and ``123.0`` (a
spreadsheet's float) are the same record.

Record ids also come back from the state store (open errors, pending
hysteresis state) and go into a Salesforce ``Id IN (…)`` filter or a
HubSpot batch read. One malformed id there fails the whole call, and with
it the job, on every run; the runner drops such ids with a warning instead
(:func:`well_formed_id`).

Pure functions, no SDK.
"""

from __future__ import annotations

import re
from typing import Any

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


#: The suffix alphabet: 5 bits per character, one bit per upper-case letter.
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?", re.ASCII)
_HUBSPOT_RE = re.compile(r"\d+(?:\.0*)?", re.ASCII)


def salesforce_suffix(id15: str) -> str:
    """The 3-character case-safe suffix of a 15-character Salesforce id."""
    out = []
    for start in (0, 5, 10):
        bits = 0
        for i, char in enumerate(id15[start : start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def salesforce_id18(value: str) -> str | None:
    """The canonical 18-character form of a Salesforce id; ``None`` if it is not one.

    A 15-character id gets its suffix. An 18-character id keeps its first
    fifteen characters (they carry the case) with the suffix they call for,
    except when the id was lowered by a tool: Salesforce writes the suffix in
    upper case, so a suffix with a lower-case letter (``001a0000001abcdiau``)
    means the case is lost, and the suffix restores it
    (``001A0000001aBcDIAU``).
    """
    text = value.strip()
    if not _ID_RE.fullmatch(text):
        return None
    head = text[:15]
    given = text[15:]
    if len(text) == 18 and given != given.upper():
        suffix = given.upper()
        if all(c in _SUFFIX for c in suffix):
            chars = []
            for i, char in enumerate(head):
                upper = _SUFFIX.index(suffix[i // 5]) >> (i % 5) & 1
                chars.append(char.upper() if upper else char.lower())
            return "".join(chars) + suffix
    return head + salesforce_suffix(head)


def link_key(value: Any, crm: str) -> str | None:
    """The form of an id that two records of ``crm`` share when they are the same record.

    Salesforce: the canonical 18-character id (text that is not an id is kept
    as written, so a test export's made-up ids still link to themselves).
    HubSpot: the number without leading zeros or a ``.0``. ``None`` for a blank.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        return None
    if crm == "salesforce":
        return salesforce_id18(text) or text
    if crm == "hubspot" and _HUBSPOT_RE.fullmatch(text):
        return str(int(text.split(".")[0]))
    return text
