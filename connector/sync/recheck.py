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

**The stamp stands for the output values of settled records.** Every stored
change of a record moves its stamp, so an output value can only differ from
what the plan saw if the stamp moved too, and a moved stamp holds the record
back anyway (unless the change was segsync's, which holds back neither way).
Salesforce's ``SystemModstamp`` has one-second precision, though, and a
change becomes visible when its transaction commits: a second change in the
same second as the one the plan saw, committed after the plan read, would
carry the same stamp. That needs the plan read to fall within a second plus
the transaction's length of the stamp it saw. So only records whose planned
stamp is older than :data:`SETTLED_AFTER` before the run began (wall clock)
are *settled*: the adapter may re-read them without their output values
(Salesforce: no long text areas, 2,000-row pages, about 440 ids a query);
the lock is read always (it may be a field whose change does not move the
stamp). The others are compared value by value, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector.crm.base import CrmAdapter, Current, ObjectName
from connector.state import utc
from connector.store.store import Store
from connector.sync.steps import StoreSteps
from connector.sync.values import same_value

Seen = tuple[datetime, dict[str, Any]]
"""What the plan saw of a record: its stamp, and its output and lock values."""

SETTLED_AFTER = timedelta(minutes=15)
"""How much older than the run's start a planned stamp must be for the stamp to
stand for the output values: the commit lag the look-back allows by default
(300 s), the clock skew allowed elsewhere (10 minutes, ``crm/salesforce/bulk.py``),
and the stamp's one-second precision."""


def moved(seen: Seen, now: Current | None, echo_stamp: datetime | None) -> str | None:
    """Why the record is no longer as planned (``None``: still as planned).

    ``echo_stamp``: the stamp segsync's own last write gave the record, if known.
    A ``partial`` ``now`` leaves out fields it did not read; a change of them
    is named ``edited`` (by the stamp) rather than by the field.
    """
    if now is None:
        return "deleted"
    stamp, values = seen
    if now.own or (echo_stamp is not None and utc(now.stamp) == echo_stamp):
        return None
    for name, value in values.items():
        if now.partial and name not in now.fields:
            continue  # not read: the stamp stands for it (checked below)
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
    keep: Sequence[str] = ()
    """Of ``fields``, those read for settled records too (the lock)."""
    started: datetime | None = None
    """When the run began (wall clock, UTC); None: no record counts as settled."""
    steps: StoreSteps = field(default_factory=StoreSteps.once)
    """How the store is read (the runner's: retried while it fails for now)."""

    def __post_init__(self) -> None:
        self.sample: list[tuple[str, str]] = []

    def stale(self, seen: Mapping[str, Seen]) -> set[str]:
        """The ids of ``seen`` (record id → what the plan saw) changed since the plan."""
        if not seen:
            return set()
        ids = list(seen)
        settled: set[str] = set()
        if self.started is not None:
            cutoff = utc(self.started) - SETTLED_AFTER
            settled = {i for i in ids if utc(seen[i][0]) < cutoff}
        before = self.adapter.api_calls
        now = self.adapter.current(self.object, ids, self.fields, settled, self.keep)
        self.calls += self.adapter.api_calls - before
        echoes = self.steps(
            "read the echo stamps", self.store.echo_stamps, self.connection, self.object, ids
        )
        out: set[str] = set()
        for record_id in ids:
            why = moved(seen[record_id], now.get(record_id), echoes.get(record_id))
            if why is not None:
                out.add(record_id)
                if len(self.sample) < self.sample_size:
                    self.sample.append((record_id, why))
        self.held += len(out)
        return out
