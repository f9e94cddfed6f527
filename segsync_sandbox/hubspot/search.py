"""The CRM search endpoint: filter groups, operators, sorts and offset paging.

Filter groups are OR-ed, filters within a group AND-ed. Values are typed by
the property: numbers compare numerically, dates and datetimes as epoch
milliseconds (filter values are epoch-ms strings; ISO text is accepted too),
everything else as case-insensitive text; a multi-select matches when any of
its options does. A missing value fails EQ / LT / … / IN / HAS_PROPERTY /
CONTAINS_TOKEN and passes NEQ / NOT_IN / NOT_HAS_PROPERTY /
NOT_CONTAINS_TOKEN. One query returns at most ``max_results`` (10,000)
results: asking for a page at or past that offset is a 400.

The matched, sorted ids of recent queries are cached against the portal's
write version, so walking the pages of one query filters once.
"""

from __future__ import annotations

import fnmatch
import json
import operator
import random
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from segsync_sandbox.hubspot.errors import ValidationError
from segsync_sandbox.hubspot.portal import Portal, Record
from segsync_sandbox.hubspot.schema import (
    SEARCHABLE_BY_QUERY,
    is_multi,
    sort_key,
    to_decimal,
    to_epoch_ms,
)

JsonObj = dict[str, Any]
Props = Mapping[str, str]
Predicate = Callable[[Props], bool]
Hit = tuple[Record, Props]

OPERATORS = (
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
)


@dataclass
class SearchLimits:
    """Documented search limits (HubSpot's changelog of August 2024), configurable."""

    max_filter_groups: int = 5
    max_filters_per_group: int = 10
    max_filters_total: int = 25
    max_sorts: int = 1
    max_limit: int = 200
    default_limit: int = 10
    max_results: int = 10_000
    shuffle: bool = False
    """Serve ties in the sort (records with equal values) in a new random
    order on every request, even between the pages of one query, and each
    page's results in a random order: the docs promise no more than the sort
    itself, and a walk must not depend on it."""


def _typed(prop: Mapping[str, Any], value: Any, name: str) -> Any:
    """A filter value in the property's comparison domain; 400 when it does not fit."""
    text = str(value)
    kind = prop.get("type")
    if kind == "number":
        number = to_decimal(text)
        if number is None:
            raise ValidationError(f"{text} is not a valid number for property {name}")
        return number
    if kind in ("date", "datetime"):
        ms = to_epoch_ms(text)
        if ms is None:
            raise ValidationError(f"{text} is not a valid epoch-millisecond value for {name}")
        return Decimal(ms)
    return text.lower()


def _stored(prop: Mapping[str, Any], text: str) -> list[Any]:
    """A stored value in the comparison domain; a multi-select gives one item per option."""
    kind = prop.get("type")
    if kind == "number":
        number = to_decimal(text)
        return [number] if number is not None else []
    if kind in ("date", "datetime"):
        ms = to_epoch_ms(text)
        return [Decimal(ms)] if ms is not None else []
    if is_multi(prop):
        return [part.lower() for part in text.split(";")]
    return [text.lower()]


def _tokens(text: str) -> set[str]:
    lowered = text.lower()
    return {lowered, *lowered.split(), *(t for t in re.split(r"[^0-9a-z]+", lowered) if t)}


def _token_match(pattern: str, text: str) -> bool:
    wanted = pattern.lower().strip()
    tokens = _tokens(text)
    if "*" in wanted:
        return any(fnmatch.fnmatchcase(token, wanted) for token in tokens)
    return wanted in tokens


_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
}


def _compare(op: str, left: Any, right: Any) -> bool:
    # Text and numbers never meet: _typed and _stored use the same domain per property.
    if op == "LT":
        return bool(left < right)
    if op == "LTE":
        return bool(left <= right)
    if op == "GT":
        return bool(left > right)
    return bool(left >= right)


def compile_filter(portal: Portal, object_type: str, spec: Any) -> Predicate:
    """A predicate for one filter; 400 for an unknown property, operator or a bad value."""
    if not isinstance(spec, dict):
        raise ValidationError("Each filter must be an object")
    name = spec.get("propertyName")
    op = spec.get("operator")
    if op not in OPERATORS:
        raise ValidationError(f"Invalid operator {op!r}; expected one of {list(OPERATORS)}")
    if not isinstance(name, str) or name not in portal.property_names(object_type):
        raise ValidationError(f"Property {name!r} does not exist on {object_type}")
    prop = portal.get_property(object_type, name)

    def values_of(record: Props) -> list[Any] | None:
        text = record.get(name)
        return None if text is None else _stored(prop, text)

    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        want = op == "HAS_PROPERTY"
        return lambda record: bool((name in record) == want)
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        if spec.get("value") in (None, ""):
            raise ValidationError(f"{op} on {name} needs a value")
        pattern = str(spec["value"])
        negate = op == "NOT_CONTAINS_TOKEN"

        def token_filter(record: Props) -> bool:
            text = record.get(name)
            found = text is not None and _token_match(pattern, text)
            return bool(found != negate)

        return token_filter
    if op in ("IN", "NOT_IN"):
        raw = spec.get("values")
        if not isinstance(raw, list) or not raw:
            raise ValidationError(f"{op} on {name} needs a non-empty values list")
        choices = [_typed(prop, v, name) for v in raw]
        negate = op == "NOT_IN"

        def in_filter(record: Props) -> bool:
            stored = values_of(record)
            found = stored is not None and any(v in choices for v in stored)
            return bool(found != negate)

        return in_filter
    if spec.get("value") is None:
        raise ValidationError(f"{op} on {name} needs a value")
    low = _typed(prop, spec["value"], name)
    if op == "BETWEEN":
        if spec.get("highValue") is None:
            raise ValidationError(f"BETWEEN on {name} needs a highValue")
        high = _typed(prop, spec["highValue"], name)

        def between(record: Props) -> bool:
            stored = values_of(record)
            return stored is not None and any(low <= v <= high for v in stored)

        return between
    if op in ("EQ", "NEQ"):
        negate = op == "NEQ"

        def equals(record: Props) -> bool:
            stored = values_of(record)
            found = stored is not None and low in stored
            return bool(found != negate)

        return equals

    if prop.get("type") in ("date", "datetime"):
        # The common case (a stamp window), without a Decimal per record.
        bound = int(low)
        compare = _ORDERED[op]

        def moment(record: Props) -> bool:
            text = record.get(name)
            ms = to_epoch_ms(text) if text is not None else None
            return ms is not None and compare(ms, bound)

        return moment

    def ordered(record: Props) -> bool:
        stored = values_of(record)
        return stored is not None and any(_compare(op, v, low) for v in stored)

    return ordered


ID = "hs_object_id"


def _id_range(groups: list[list[Any]]) -> tuple[int | None, int | None, list[Any]]:
    """``above < id <= upto`` that one filter group's id bounds imply, and its other filters.

    Only for a single group (groups are OR-ed) whose id bounds are whole numbers;
    otherwise no range and the group unchanged.
    """
    if len(groups) != 1:
        return None, None, groups[0] if groups else []
    above: int | None = None
    upto: int | None = None
    rest: list[Any] = []
    for spec in groups[0]:
        bound = (
            isinstance(spec, dict)
            and spec.get("propertyName") == ID
            and spec.get("operator") in ("GT", "GTE", "LT", "LTE")
        )
        if not bound:
            rest.append(spec)
            continue
        op = spec["operator"]
        try:
            number = int(str(spec.get("value")))
        except ValueError:
            return None, None, groups[0]
        if op in ("GT", "GTE"):
            low = number if op == "GT" else number - 1
            above = low if above is None else max(above, low)
        else:
            high = number if op == "LTE" else number - 1
            upto = high if upto is None else min(upto, high)
    return above, upto, rest


class Searcher:
    """Runs search requests against a portal, with a small cache of matched id lists."""

    def __init__(self, portal: Portal, limits: SearchLimits | None = None, cache_size: int = 16):
        self.portal = portal
        self.limits = limits or SearchLimits()
        self._cache: OrderedDict[str, list[Hit]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._rng = random.Random(0)  # seeded: a shuffled run can be replayed

    def _check_shape(self, groups: Any) -> list[list[Any]]:
        if groups is None:
            return []
        if not isinstance(groups, list):
            raise ValidationError("filterGroups must be a list")
        lim = self.limits
        if len(groups) > lim.max_filter_groups:
            raise ValidationError(
                f"Too many filter groups: {len(groups)}; the maximum is {lim.max_filter_groups}"
            )
        out: list[list[Any]] = []
        total = 0
        for group in groups:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list):
                raise ValidationError("Each filter group needs a filters list")
            if len(filters) > lim.max_filters_per_group:
                raise ValidationError(
                    f"Too many filters in a group: {len(filters)}; "
                    f"the maximum is {lim.max_filters_per_group}"
                )
            total += len(filters)
            out.append(filters)
        if total > lim.max_filters_total:
            raise ValidationError(
                f"Too many filters: {total}; the maximum is {lim.max_filters_total}"
            )
        return out

    def _sorts(self, object_type: str, sorts: Any) -> list[tuple[str, bool]]:
        if sorts is None:
            return []
        if not isinstance(sorts, list):
            raise ValidationError("sorts must be a list")
        if len(sorts) > self.limits.max_sorts:
            raise ValidationError(
                f"Too many sorts: {len(sorts)}; the maximum is {self.limits.max_sorts}"
            )
        out: list[tuple[str, bool]] = []
        names = self.portal.property_names(object_type)
        for sort in sorts:
            # HubSpot's search guide documents only the object form; the
            # OpenAPI spec types a sort as a string but describes no string
            # syntax, so a bare name is refused rather than guessed at.
            if not isinstance(sort, dict) or not isinstance(sort.get("propertyName"), str):
                raise ValidationError(
                    f"Invalid sort {sort!r}: each sort is an object "
                    '{"propertyName": ..., "direction": "ASCENDING" | "DESCENDING"}'
                )
            name = sort["propertyName"]
            direction = sort.get("direction", "ASCENDING")
            if direction not in ("ASCENDING", "DESCENDING"):
                raise ValidationError(f"Invalid sort direction {direction!r}")
            descending = direction == "DESCENDING"
            if name not in names:
                raise ValidationError(f"Cannot sort by unknown property {name!r}")
            out.append((name, descending))
        return out

    def _id_only(
        self, object_type: str, body: Mapping[str, Any]
    ) -> tuple[int | None, int | None] | None:
        """``(above, upto)`` when the query is only an id range sorted by ascending id."""
        if self.portal.search_lag_ms or body.get("query"):
            return None
        groups = self._check_shape(body.get("filterGroups"))
        above, upto, rest = _id_range(groups)
        if rest or (above is None and upto is None):
            return None
        if self._sorts(object_type, body.get("sorts")) != [(ID, False)]:
            return None
        return above, upto

    def matches(self, object_type: str, body: Mapping[str, Any]) -> list[Hit]:
        """Every matching record with the values search sees, sorted.

        Cached per query and portal version (not while search lags writes, when
        what a query sees changes with time alone).
        """
        groups = self._check_shape(body.get("filterGroups"))
        sorts = self._sorts(object_type, body.get("sorts"))
        query = body.get("query")
        key = json.dumps(
            [object_type, body.get("filterGroups"), sorts, query, self.portal.version],
            sort_keys=True,
            default=str,
        )
        # A single group bounding hs_object_id (keyset paging by id) reads only that
        # range of the id-ordered records, and is not cached: each page is a new query.
        above, upto, rest = _id_range(groups)
        ranged = above is not None or upto is not None
        use_cache = not self.portal.search_lag_ms and not self.limits.shuffle and not ranged
        with self._lock:
            cached = self._cache.get(key) if use_cache else None
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        if ranged:
            groups = [rest] if rest else []
        compiled = [
            [compile_filter(self.portal, object_type, f) for f in filters] for filters in groups
        ]
        hits: list[Hit] = list(self.portal.search_view(object_type, above, upto))
        if sorts == [(ID, False)] and not self.limits.shuffle:
            sorts = []  # the view is in id order already
        if compiled:
            hits = [h for h in hits if any(all(f(h[1]) for f in g) for g in compiled)]
        if query:
            needle = str(query).lower()
            fields = SEARCHABLE_BY_QUERY[object_type]
            hits = [h for h in hits if any(needle in h[1].get(f, "").lower() for f in fields)]
        if self.limits.shuffle:
            # The stable sorts below keep this order among ties: random, per request.
            with self._lock:
                self._rng.shuffle(hits)
        for name, descending in reversed(sorts):
            prop = self.portal.get_property(object_type, name)
            present = [h for h in hits if name in h[1]]
            missing = [h for h in hits if name not in h[1]]
            # .get: a concurrent write may clear the value between the split and the sort.
            present.sort(key=lambda h: sort_key(prop, h[1].get(name, "")), reverse=descending)
            hits = present + missing
        if not use_cache:
            return hits
        with self._lock:
            self._cache[key] = hits
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return hits

    def search(self, object_type: str, body: Any) -> JsonObj:
        """Answer one search request body, or raise ValidationError (400)."""
        if not isinstance(body, dict):
            raise ValidationError("The search request body must be a JSON object")
        lim = self.limits
        limit = body.get("limit")
        limit = lim.default_limit if limit is None else limit
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= lim.max_limit:
            raise ValidationError(f"limit must be between 1 and {lim.max_limit}; got {limit!r}")
        after_raw = body.get("after")
        try:
            after = int(str(after_raw)) if after_raw not in (None, "") else 0
        except (TypeError, ValueError):
            raise ValidationError(f"Invalid paging cursor after={after_raw!r}") from None
        if after < 0:
            raise ValidationError(f"Invalid paging cursor after={after_raw!r}")
        if after >= lim.max_results:
            raise ValidationError(
                f"Paging past {lim.max_results} results of one search is not supported "
                f"(after={after}). Narrow the query and search again."
            )
        properties = body.get("properties")
        if properties is not None and not isinstance(properties, list):
            raise ValidationError("properties must be a list of property names")
        names = self.portal.returned_names(object_type, properties)
        fast = self._id_only(object_type, body)
        if fast is not None:
            # Keyset paging by id with no other filter: the id-ordered records'
            # range, counted and sliced without reading the rest.
            hits_total, sliced = self.portal.id_slice(object_type, *fast, after, limit)
            page: list[Hit] = list(sliced)
            end = min(after + len(page), lim.max_results)
        else:
            hits = self.matches(object_type, body)
            hits_total = len(hits)
            end = min(after + limit, len(hits), lim.max_results)
            page = hits[after:end]
        if lim.shuffle:
            with self._lock:
                self._rng.shuffle(page)
        out: JsonObj = {
            "total": hits_total,
            "results": [record.to_api(names, values) for record, values in page],
        }
        if end < hits_total:
            out["paging"] = {"next": {"after": str(end)}}
        return out
