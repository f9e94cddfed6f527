"""Parsing of raw CRM values shared by the loader (for literals) and the engine.

Every function returns ``None`` for a value it cannot read instead of raising:
the engine treats such a value as blank, and the loader turns ``None`` into a
problem for the file.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch values at or above this are milliseconds (HubSpot); below, seconds.
# 1e11 seconds is the year 5138; 1e11 milliseconds is March 1973.
_MS_THRESHOLD = 100_000_000_000
_TRUE = frozenset({"true", "t", "yes", "y", "1", "on", "checked"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off", "unchecked"})


def norm_key(text: str) -> str:
    """The lookup form of a text value: whitespace collapsed, case-folded."""
    return " ".join(text.split()).casefold()


def is_blank(raw: Any) -> bool:
    """Whether a raw CRM value means "no value": None, empty or whitespace text, empty list."""
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    if isinstance(raw, list | tuple | set | frozenset):
        return len(raw) == 0
    return False


# A number as people and exports write it (after trimming; see parse_number):
# optional sign, optional currency (a symbol or an ISO code, before or after),
# digits with optional comma thousands groups of exactly three, an optional
# decimal part after a dot, an optional exponent, or a trailing percent sign.
_NUMBER_RE = re.compile(
    r"(?P<s1>[+-]?)\s*(?P<c1>[$€£¥]|[A-Z]{3}(?=[\s+\-.\d]))?\s*(?P<s2>[+-]?)"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<frac>\d*))?(?P<exp>[eE][+-]?\d+)?"
    r"\s*(?P<c2>[$€£¥%]|[A-Z]{3})?",
    re.ASCII,
)
# Spaces some spreadsheets put between a currency and its amount.
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


def parse_number(raw: Any) -> int | float | None:
    """A finite number from an int, float or numeric text; ``None`` when unreadable.

    Text is read after trimming: ``"1200"``, ``"-5"``, ``"3.5"``, ``".5"``,
    ``"1e3"``, ``"1,200,000.50"`` (commas only in groups of three), ``"45%"``
    (45, the number as written, like a Salesforce percent field), and amounts
    with one currency symbol or ISO code, before or after (``"$100,000,000"``,
    ``"USD 1,200"``, ``"1200 €"``), which take no exponent and at most two
    decimals. Everything else is unreadable rather than guessed: European
    notation (``"1.000,50"``, ``"€1.000"``: a thousand, or one euro?),
    ``"1,5"``, ``"1 000"``, ``"1_000"``, accounting ``"(5)"``, non-ASCII
    digits, NaN and infinities.
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else None
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.isdigit() and text.isascii():
        return int(text)  # the common HubSpot case, without a regular expression
    m = _NUMBER_RE.fullmatch(text.translate(_SPACES).strip())
    if m is None:
        return None
    whole, frac, exp = m["int"], m["frac"], m["exp"]
    if not whole and not frac:
        return None  # no digit at all: "$", ".", "%"
    if m["s1"] and m["s2"]:
        return None
    if m["c1"] and m["c2"]:
        return None  # "$5%", "$5 USD"
    money = bool(m["c1"]) or (m["c2"] is not None and m["c2"] != "%")
    if money and (exp or (frac is not None and len(frac) > 2)):
        return None
    number = (m["s1"] or m["s2"]) + whole.replace(",", "") + ("." + frac if frac else "")
    try:
        value = float(number + (exp or ""))
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def parse_integer(raw: Any) -> int | None:
    """An integer; a float or numeric text is accepted when it is integral (``"1200.0"``)."""
    value = parse_number(raw)
    if value is None:
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        return int(value)
    return value


def parse_boolean(raw: Any) -> bool | None:
    """A boolean from a bool, 0/1, or text such as ``"true"``, ``"false"``, ``"yes"``."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        key = raw.strip().casefold()
        if key in _TRUE:
            return True
        if key in _FALSE:
            return False
    return None


def _from_epoch(number: int | float) -> datetime | None:
    seconds = number / 1000 if abs(number) >= _MS_THRESHOLD else number
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


def parse_datetime(raw: Any) -> datetime | None:
    """An aware UTC datetime from text, a date, or an epoch number.

    Text may be ISO 8601 with any offset (``Z``, ``+0000``, ``+02:00``) or none
    (taken as UTC), or digits of epoch seconds / milliseconds (HubSpot).
    """
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            return raw.replace(tzinfo=UTC)
        return raw.astimezone(UTC)
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day, tzinfo=UTC)
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        if isinstance(raw, float) and not math.isfinite(raw):
            return None
        return _from_epoch(raw)
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text:
        return None
    digits = text[1:] if text[:1] == "-" else text
    # Eight digits is a basic ISO date (20240131); longer digit runs are epoch values.
    if digits.isdigit() and digits.isascii() and len(digits) != 8:
        return _from_epoch(int(text))
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


def parse_date(raw: Any, zone: tzinfo = UTC) -> date | None:
    """A calendar date: ISO date text as written, or the day of any datetime form in ``zone``.

    ``zone`` is the mapping's ``timezone``: a HubSpot timestamp of
    2026-11-22T03:00Z is 22 November in UTC but 21 November in New York.
    """
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) == 10:
            try:
                return date.fromisoformat(text)
            except ValueError:
                return None
    value = parse_datetime(raw)
    if value is None:
        return None
    try:
        return value.astimezone(zone).date()
    except OverflowError:
        return None
