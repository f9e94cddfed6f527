"""Write only what is still true: re-read a write chunk right before writing it.

The runner plans every record first and writes afterwards; between the pull
and the write a person may edit a record (set a value by hand, set the lock,
change an input). Writing the plan then would overwrite that edit unseen (a
lost update). So, immediately before each write chunk, the chunk's records
are read again by id (:meth:`~connector.crm.base.CrmAdapter.current`: their
stamp, output fields and lock field, one cheap call per chunk) and a record
is held back when it moved since the plan:

- it no longer exists;
- its lock or an output value differs from what the plan saw;
- its stamp moved, and not by segsync itself: an input may have changed, so
  the plan may be stale.

segsync's own changes are not edits (no echo): on Salesforce the last
editor is the integration user (``LastModifiedById``), on HubSpot the stamp
is the one segsync's last write returned (``record_state.echo_stamp``).

Held-back records are counted ("changed since plan"), not written and not
recorded; their stamp moved past the watermark, so the next run pulls and
plans them again from what the CRM then holds. Neither CRM offers a
conditional batch write (see docs/crm-apis.md), so this is the check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.crm.base import CrmAdapter, Current, ObjectName
from connector.state import utc
from connector.store.store import Store
from connector.sync.values import same_value

Seen = tuple[datetime, dict[str, Any]]
"""What the plan saw of a record: its stamp, and its output and lock values."""


def moved(seen: Seen, now: Current | None, echo_stamp: datetime | None) -> str | None:
    """Why the record is no longer as planned (``None``: still as planned).

    ``echo_stamp``: the stamp segsync's own last write gave the record, if known.
    """
    if now is None:
        return "deleted"
    stamp, values = seen
    if now.own or (echo_stamp is not None and utc(now.stamp) == echo_stamp):
        return None
    for name, value in values.items():
        if not same_value(now.fields.get(name), value):
            return f"{name} changed"
    if utc(now.stamp) != utc(stamp):
        return "edited"
    return None


@dataclass
class Recheck:
    """Re-reads write chunks of one run; counts and samples what it held back."""

    adapter: CrmAdapter
    store: Store
    connection: str
    object: ObjectName
    fields: Sequence[str]
    sample_size: int = 10
    held: int = 0
    calls: int = 0

    def __post_init__(self) -> None:
        self.sample: list[tuple[str, str]] = []

    def stale(self, seen: Mapping[str, Seen]) -> set[str]:
        """The ids of ``seen`` (record id → what the plan saw) changed since the plan."""
        if not seen:
            return set()
        ids = list(seen)
        before = self.adapter.api_calls
        now = self.adapter.current(self.object, ids, self.fields)
        self.calls += self.adapter.api_calls - before
        echoes = self.store.echo_stamps(self.connection, self.object, ids)
        out: set[str] = set()
        for record_id in ids:
            why = moved(seen[record_id], now.get(record_id), echoes.get(record_id))
            if why is not None:
                out.add(record_id)
                if len(self.sample) < self.sample_size:
                    self.sample.append((record_id, why))
        self.held += len(out)
        return out
