"""Who set a value: Salesforce field history (``AccountHistory``, ``ContactHistory``).

With history tracking on a field (``trackHistory``, which provisioning turns
on for the output fields it creates), every change of it leaves a row in the
object's history: ``Field``, ``OldValue``, ``NewValue``, ``CreatedById``,
``CreatedDate``. The newest row of a field is its current value's; when its
author is not the integration user, a person (or another user's
automation) set the value.

**Rows of one second.** ``CreatedDate`` keeps whole seconds, and Salesforce
documents no order of ``Id`` in time, so when several rows of a field share
the newest second (segsync's write and a person's edit in that second) no
query says which came last. It is decided without guessing
(:func:`_set_by_person`): of the rows in the newest second, the ones whose
``NewValue`` is the field's current value are the candidates (the last
change of that second left it, and an earlier one in the same second only if
the value came back to it); if no row there holds the current value, every
row of that second is. The value is a person's when any candidate is not the
integration user's: so where the rows cannot tell, the reading taken is the
one that never overwrites a person's value (under ``respect`` it is kept; a
value wrongly taken for ours would be overwritten).

An org without history on those fields, or a user who cannot read the
history objects, answers ``INVALID_TYPE`` / ``INVALID_FIELD``: then nothing
is known, and the store alone decides, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from simple_salesforce.format import format_soql

from connector.crm.base import ObjectName, parse_stamp
from connector.crm.limits import BudgetExhausted
from connector.crm.salesforce.pull import FETCH_CHUNK
from connector.crm.salesforce.session import Client, SalesforceSession
from connector.crm.salesforce.soql import SOBJECTS, check_names
from connector.errors import FatalSyncError

log = logging.getLogger(__name__)

# What an org answers when the history object is off, unknown or not readable
# by the integration user: then the store alone decides (the run goes on).
_UNAVAILABLE = (
    "INVALID_TYPE",
    "INVALID_FIELD",
    "INSUFFICIENT_ACCESS",
    "not supported",
    "does not exist",
)


class FieldHistory:
    """Reads one org's field history to tell a person's values from segsync's."""

    def __init__(self, session: SalesforceSession) -> None:
        self._session = session
        self._unavailable: set[str] = set()

    def set_by_person(
        self, obj: ObjectName, current: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, frozenset[str]]:
        """Record id → the fields of ``current`` whose newest history row is not ours."""
        sobject = SOBJECTS[obj]
        history = f"{sobject}History"
        if not current or history in self._unavailable:
            return {}
        self._session.authenticate()
        own = self._session.user_id
        if not own:
            # A given session id names no user: ours cannot be told from a person's.
            return {}
        names = sorted({name for fields in current.values() for name in fields})
        check_names(names, "history")
        by_lower = {n.lower(): n for n in names}
        ids = list(current)
        newest: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        parent = f"{sobject}Id"
        for start in range(0, len(ids), FETCH_CHUNK):
            chunk = ids[start : start + FETCH_CHUNK]
            query = format_soql(
                f"SELECT {parent}, Field, NewValue, CreatedById, CreatedDate FROM {history} "
                f"WHERE {parent} IN {{}} AND Field IN {{}} ORDER BY CreatedDate DESC",
                chunk,
                names,
            )
            try:
                rows = self._session.call(f"query {history}", partial(_query_all, query=query))
            except BudgetExhausted:
                raise
            except FatalSyncError as exc:
                if not any(marker in str(exc) for marker in _UNAVAILABLE):
                    raise
                self._unavailable.add(history)
                log.warning(
                    "%s is not readable (%s): manual values are told from the state store "
                    "alone; turn on field history for the output fields",
                    history,
                    exc,
                )
                return {}
            for row in rows.get("records") or []:
                field = by_lower.get(str(row.get("Field") or "").lower())
                record_id = _same_id(str(row.get(parent) or ""), current)
                if field is None or record_id is None:
                    continue
                rows_of = newest.setdefault((record_id, field), [])
                # Newest first: only the rows of the newest second are kept.
                if not rows_of or _second(row) == _second(rows_of[0]):
                    rows_of.append(row)
        found: dict[str, set[str]] = {}
        for (record_id, field), rows_of in newest.items():
            if _set_by_person(rows_of, current[record_id].get(field), own):
                found.setdefault(record_id, set()).add(field)
        return {record_id: frozenset(fields) for record_id, fields in found.items()}


def _set_by_person(rows: Sequence[Mapping[str, Any]], value: Any, own: str) -> bool:
    """Whether a person set ``value``, by a field's history rows of its newest second.

    The rows holding ``value`` are the candidates for the newest (all of the
    second's rows when none does); a person's among them decides for the
    person: the reading that never overwrites a person's value (module doc).
    """
    holding = [row for row in rows if _same(row.get("NewValue"), value)]
    return any(row.get("CreatedById") != own for row in holding or rows)


def _second(row: Mapping[str, Any]) -> datetime:
    """A history row's ``CreatedDate``, to the second (all it keeps)."""
    return parse_stamp(row.get("CreatedDate")).replace(microsecond=0)


def _query_all(client: Client, query: str) -> Any:
    return client.sf.query_all(query)


def _same_id(record_id: str, current: Mapping[str, Any]) -> str | None:
    """The key of ``current`` naming ``record_id`` (15- or 18-character spellings)."""
    if record_id in current:
        return record_id
    short = record_id[:15]
    return next((k for k in current if k[:15] == short), None)


def _same(history_value: Any, value: Any) -> bool:
    """Whether a history ``NewValue`` is the value the record holds (numbers as numbers)."""
    if history_value is None or value is None:
        return history_value is None and value is None
    try:
        return float(history_value) == float(value)
    except (TypeError, ValueError):
        return str(history_value) == str(value)
