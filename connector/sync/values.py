"""Comparing CRM field values the way a person would.

A CRM hands values back in its own spelling: HubSpot sends numbers as strings
(``"80"``), Salesforce pads nothing but trims text, a blank text field may be
``None`` or ``""``, a date-time comes back with millisecond precision. The
planner must not see a change in any of these, or every run would rewrite
every record. :func:`same_value` is that comparison; :func:`as_text` gives the
one spelling used for transition ledgers and matrices.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any

# A plain decimal number as text; deliberately rejects "nan", "inf", "1_000"
# and the other spellings float() accepts, which are text, not numbers.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_REL_TOL = 1e-9
_ABS_TOL = 1e-9


def is_blank(value: Any) -> bool:
    """Whether ``value`` is empty: ``None`` or text that is only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def _clean(value: Any) -> Any:
    """Blank → None; text stripped with line endings normalized; other values as they are."""
    if isinstance(value, str):
        text = value.replace("\r\n", "\n").strip()
        return text or None
    return value


def _as_number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def _utc(value: datetime) -> datetime:
    # A naive date-time from a CRM or a database is UTC by convention.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_instant(value: Any) -> datetime | None:
    """A UTC date-time truncated to milliseconds, the precision both CRMs keep."""
    if isinstance(value, datetime):
        moment = _utc(value)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        moment = _utc(parsed)
    else:
        return None
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def same_value(left: Any, right: Any) -> bool:
    r"""Whether two field values mean the same thing.

    Blank equals blank (``None == "" == "  "``); text compares stripped, with
    ``\r\n`` equal to ``\n``; numbers compare by value whatever their type or
    spelling (``80 == 80.0 == "80"``), with a relative tolerance of 1e-9;
    booleans equal their text (``True == "true"``); date-times compare as
    instants at millisecond precision (a naive one is UTC), and a date equals
    midnight UTC of that day. Anything else compares as text.

    The relation is reflexive and symmetric, which the planner relies on:
    a value always equals itself, so applying a plan makes the next plan empty.
    """
    a, b = _clean(left), _clean(right)
    if a is None or b is None:
        return a is None and b is None
    if a is b or (type(a) is type(b) and a == b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        truth = _as_bool(a)
        return truth is not None and truth == _as_bool(b)
    na, nb = _as_number(a), _as_number(b)
    if na is not None and nb is not None:
        if isinstance(na, int) and isinstance(nb, int):
            return na == nb
        if math.isnan(na) or math.isnan(nb):
            # NaN equals itself here, or a NaN output would be rewritten every run.
            return math.isnan(na) and math.isnan(nb)
        return math.isclose(na, nb, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)
    if isinstance(a, int | float) or isinstance(b, int | float):
        # A number never equals text that is not a number ("nan", "80 users").
        return False
    if isinstance(a, date | datetime) or isinstance(b, date | datetime):
        ia, ib = _as_instant(a), _as_instant(b)
        return ia is not None and ia == ib
    return _text(a) == _text(b)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return _utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def as_text(value: Any) -> str | None:
    """One spelling of a value for ledgers, matrices and messages; ``None`` when blank.

    ``80`` and ``80.0`` both read ``"80"``; a date-time reads as ISO 8601 in UTC
    with a ``Z``; text is stripped.
    """
    cleaned = _clean(value)
    if cleaned is None:
        return None
    return _text(cleaned)
