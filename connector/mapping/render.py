"""Human-readable text for conditions, shared by score labels and explanations."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from connector.mapping.models import AllOf, AnyOf, Condition, Leaf

_SYMBOLS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


def literal_text(value: Any) -> str:
    """A literal as a person would write it: no quotes, ISO dates, integral floats bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, re.Pattern):
        return f"/{value.pattern}/"
    if isinstance(value, frozenset | set | tuple | list):
        return ", ".join(sorted(literal_text(v) for v in value))
    return str(value)


def _sorted_text(values: Iterable[Any]) -> str:
    return ", ".join(sorted(literal_text(v) for v in values))


def leaf_text(leaf: Leaf) -> str:
    """One test as text: ``employees ≥ 500``, ``tech_stack has any of AWS, GCP``."""
    subject = leaf.subject
    op = leaf.op
    value = leaf.value
    if op in _SYMBOLS:
        return f"{subject} {_SYMBOLS[op]} {literal_text(value)}"
    if op == "in":
        return f"{subject} in {_sorted_text(value)}"
    if op == "not_in":
        return f"{subject} not in {_sorted_text(value)}"
    if op == "between":
        return f"{subject} {literal_text(value[0])}–{literal_text(value[1])}"
    if op == "contains":
        return f"{subject} has {literal_text(value)}"
    if op == "contains_any":
        return f"{subject} has any of {_sorted_text(value)}"
    if op == "contains_all":
        return f"{subject} has all of {_sorted_text(value)}"
    if op == "exists":
        return f"{subject} known"
    if op == "missing":
        return f"{subject} blank"
    if op == "matches":
        return f"{subject} matches {literal_text(value)}"
    if op == "within_days":
        return f"{subject} within {value} days"
    if op == "older_than_days":
        return f"{subject} older than {value} days"
    return f"{subject} {op} {literal_text(value)}"


def condition_text(cond: Condition) -> str:
    """A whole condition as one line, with parentheses where nesting needs them."""
    if isinstance(cond, Leaf):
        return leaf_text(cond)
    if isinstance(cond, AllOf):
        return " and ".join(_nested(c) for c in cond.items)
    if isinstance(cond, AnyOf):
        return " or ".join(_nested(c) for c in cond.items)
    return f"not {_nested(cond.item)}"


def _nested(cond: Condition) -> str:
    text = condition_text(cond)
    if isinstance(cond, AllOf | AnyOf) and len(cond.items) > 1:
        return f"({text})"
    return text
