"""Raw CRM value → canonical attribute value, one precomputed coercer per attribute.

A coercer never raises. ``None`` means "missing"; a blank or unreadable raw
value becomes the attribute's ``blank`` value (``None`` unless the mapping
gives a default). Each attribute gets two functions built once at compile
time: a fast one for :meth:`Engine.evaluate` (memoized for text, because CRM
exports repeat the same picklist and date strings millions of times) and a
detailed one for explanations that also says *why* a value became what it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from connector.mapping.models import AttributeDef
from connector.mapping.values import (
    is_blank,
    norm_key,
    parse_boolean,
    parse_date,
    parse_datetime,
    parse_integer,
    parse_number,
)

#: Distinct text values remembered per attribute. Beyond this the coercer still
#: works, it just stops remembering (memory stays bounded on unique values).
MEMO_LIMIT = 50_000

Converter = Callable[[Any], tuple[Any, str]]
#: Memo-miss marker (``None`` is a legitimate memoized value: "missing").
MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Coercer:
    """The two coercion functions of one attribute.

    Attributes:
        fast: raw → canonical value (``None`` = missing).
        detailed: raw → (canonical value, note); the note is empty when the
            raw value was taken as is, else a short phrase for explanations.
        memo: text raw value → canonical value, filled by ``fast`` (generated
            code reads it inline to skip a call on a hit).
        text: text raw value missing from ``memo`` → canonical value. For
            ``date`` and ``datetime`` attributes it reads an ISO 8601 timestamp
            (as both APIs send them, each one unique) directly, without
            filling the memo; otherwise it is ``fast``.

    """

    fast: Callable[[Any], Any]
    detailed: Converter
    memo: dict[str, Any]
    text: Callable[[str], Any]


def _text_of(raw: Any) -> str | None:
    """The text form of a raw value for text-like attributes (numbers are accepted)."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float):
        return str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
    return None


def _converter(attr: AttributeDef, zone: tzinfo) -> Converter:
    """The core conversion for one attribute, before blank defaults."""
    synonyms = dict(attr.synonyms)
    values = frozenset(attr.values) if attr.values is not None else None
    t = attr.type

    if t in ("string", "enum"):
        unknown = attr.unknown

        def text(raw: Any) -> tuple[Any, str]:
            s = _text_of(raw)
            if s is None:
                return None, f"cannot read {type(raw).__name__} as text"
            key = norm_key(s)
            if not key:
                return None, "blank"
            canonical = synonyms.get(key)
            if canonical is not None:
                note = "" if canonical == s else f"normalized {s!r} → {canonical!r}"
                return canonical, note
            if values is None:
                collapsed = " ".join(s.split())
                return collapsed, "" if collapsed == s else "whitespace trimmed"
            if unknown is not None:
                return unknown, f"{s!r} is not a known value → {unknown!r}"
            return None, f"{s!r} is not one of the values"

        return text

    if t == "set":
        # element text → canonical element, "" for an empty element, None for
        # one outside `values`; bounded like the record-level memo.
        elements: dict[str, str | None] = {}

        def element(s: str) -> str | None:
            key = norm_key(s)
            if not key:
                return ""
            canonical = synonyms.get(key)
            if canonical is not None:
                return canonical
            if values is None:
                return " ".join(s.split())
            return None

        def members(raw: Any) -> tuple[Any, str]:
            if isinstance(raw, str):
                parts: list[Any] = raw.split(";")
            elif isinstance(raw, list | tuple | set | frozenset):
                parts = list(raw)
            else:
                return None, f"cannot read {type(raw).__name__} as a ;-separated list"
            out: set[str] = set()
            dropped: list[str] = []
            for part in parts:
                s = _text_of(part)
                if s is None:
                    dropped.append(repr(part))
                    continue
                canonical = elements.get(s, MISSING)
                if canonical is MISSING:
                    canonical = element(s)
                    if len(elements) < MEMO_LIMIT:
                        elements[s] = canonical
                if canonical is None:
                    dropped.append(repr(s))
                elif canonical:
                    out.add(canonical)
            note = f"ignored unknown {', '.join(sorted(dropped))}" if dropped else ""
            if not out:
                return None, note or "blank"
            return frozenset(out), note

        return members

    parse: Callable[[Any], Any] = {
        "integer": parse_integer,
        "number": parse_number,
        "boolean": parse_boolean,
        "date": lambda raw: parse_date(raw, zone),
        "datetime": parse_datetime,
    }[t]

    def scalar(raw: Any) -> tuple[Any, str]:
        value = parse(raw)
        if value is None:
            return None, f"cannot read {raw!r} as {t}"
        return value, ""

    return scalar


def make_coercer(attr: AttributeDef, zone: tzinfo = UTC) -> Coercer:
    """Build the fast and detailed coercers of one attribute.

    ``zone`` is the mapping's time zone: the calendar day of a timestamp read
    into a ``date`` attribute is its day there.
    """
    convert = _converter(attr, zone)
    blank_value = attr.blank
    blank_note = "blank → missing" if blank_value is None else f"blank → {blank_value!r}"

    def detailed(raw: Any) -> tuple[Any, str]:
        try:
            if is_blank(raw):
                return blank_value, blank_note
            value, note = convert(raw)
        except Exception as exc:
            return blank_value, f"unreadable ({type(exc).__name__}); treated as blank"
        if value is None:
            if note == "blank":
                return blank_value, blank_note
            suffix = "treated as blank" if blank_value is None else f"treated as {blank_value!r}"
            return blank_value, f"{note}; {suffix}"
        return value, note

    memo: dict[str, Any] = {}
    memo_get = memo.get
    missing = MISSING

    def fast(raw: Any) -> Any:
        # Only exact str keys are memoized: 1, 1.0 and True are equal dict keys
        # but coerce differently.
        if raw.__class__ is str:
            value = memo_get(raw, missing)
            if value is missing:
                value = detailed(raw)[0]
                if len(memo) < MEMO_LIMIT:
                    memo[raw] = value
            return value
        return detailed(raw)[0]

    text = _timestamp_reader(attr.type, zone, fast) if attr.type in ("date", "datetime") else fast
    return Coercer(fast, detailed, memo, text)


def reader(coercer: Coercer) -> Callable[[Any], Any]:
    """``coercer.fast`` the way generated code calls it: the memo, then ``coercer.text``."""
    memo_get, text, fast, missing = coercer.memo.get, coercer.text, coercer.fast, MISSING

    def read(raw: Any) -> Any:
        if raw.__class__ is str:
            value = memo_get(raw, missing)
            return text(raw) if value is missing else value
        return fast(raw)

    return read


def _timestamp_reader(
    attr_type: str, zone: tzinfo, fallback: Callable[[Any], Any]
) -> Callable[[str], Any]:
    """A ``date`` / ``datetime`` attribute's reader of text that is not in its memo.

    An ISO 8601 timestamp (a ``T`` after the date) is read with
    ``datetime.fromisoformat`` alone: the same value :func:`parse_datetime` /
    :func:`parse_date` give, because ``fromisoformat`` refuses the
    surrounding whitespace they trim and the text is neither a date alone
    nor epoch digits. Anything else (or a timestamp it refuses) goes to
    ``fallback``, the memoizing coercer. Timestamps are not memoized: a sync
    sees each one once.
    """
    fromiso = datetime.fromisoformat
    utc = UTC
    local = None if zone is UTC else zone

    if attr_type == "datetime":

        def instant(raw: str) -> Any:
            if len(raw) > 10 and raw[10] == "T":
                try:
                    value = fromiso(raw)
                    if value.tzinfo is None:
                        return value.replace(tzinfo=utc)
                    return value.astimezone(utc)
                except (ValueError, OverflowError):
                    pass
            return fallback(raw)

        return instant

    def day(raw: str) -> Any:
        if len(raw) > 10 and raw[10] == "T":
            try:
                value = fromiso(raw)
                # Through UTC first, like parse_date: the same overflow at the year's ends.
                value = value.replace(tzinfo=utc) if value.tzinfo is None else value.astimezone(utc)
                return (value if local is None else value.astimezone(local)).date()
            except (ValueError, OverflowError):
                pass
        return fallback(raw)

    return day
