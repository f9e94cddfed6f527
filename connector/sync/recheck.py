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
Salesforce's ``SystemModstamp`` keeps whole seconds, though, and a change
becomes visible when its transaction commits: a second change in the same
second as the one the plan saw, committed after the plan read, carries the
same stamp. So a record is *settled* when the plan read it after its stamp's
second had closed plus the commit lag the look-back allows, on the org's
clock: ``floor(stamp) + 1 s + lookback <= read_at``
(:func:`connector.sync.window.settled`, the rule the pull keeps its known
pairs by). That is exact, not a margin: a change carrying the planned stamp
was written in that second, so (as the look-back assumes) it was visible by
``floor(stamp) + 1 s + lookback``; ``read_at`` (the answer's ``Date`` less the
request's time: :attr:`~connector.crm.base.CrmRecord.read_at`) is no later
than the read, so the plan saw it, and any change it did not see carries a
later stamp. Only the org's clock is compared with the org's stamps: this
host's clock and its skew play no part. Settled records are re-read without
their output values (Salesforce: no long text areas, 2,000-row pages, about
440 ids a query); the lock is read always (it may be a field whose change
does not move the stamp). The others are compared value by value, their
inputs too when the plan read them before their second closed
(:func:`connector.sync.window.read_open`). Salesforce's fetches by id (due
dates, earlier failures, contacts of changed accounts) carry their query's
read time as pulls do; a record read without one (an answer without a
``Date``) is never settled. HubSpot's stamps keep
milliseconds, its records carry none, and its re-read reads every value
anyway (one batch read per 100 ids whatever it selects).

**The re-read's calls are its own.** :attr:`Recheck.calls` counts the calls
made inside :meth:`~connector.crm.base.CrmAdapter.current` only
(:func:`connector.crm.tally.tallied`): the pull's pages read alongside
(``sync/pipeline.py``) are not among them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector.crm.base import CrmAdapter, Current, ObjectName
from connector.crm.tally import tallied
from connector.state import utc
from connector.store.store import Store
from connector.sync.steps import StoreSteps
from connector.sync.values import same_value
from connector.sync.window import settled

Seen = tuple[datetime, dict[str, Any], datetime | None]
"""What the plan saw of a record: its stamp, its output and lock values (its
inputs too when read before its stamp's second closed), and when it was read
(:attr:`~connector.crm.base.CrmRecord.read_at`: the org's clock; None when
the read does not say)."""


def moved(seen: Seen, now: Current | None, echo_stamp: datetime | None) -> str | None:
    """Why the record is no longer as planned (``None``: still as planned).

    ``echo_stamp``: the stamp segsync's own last write gave the record, if known.
    A ``partial`` ``now`` leaves out fields it did not read; a change of them
    is named ``edited`` (by the stamp) rather than by the field.
    """
    if now is None:
        return "deleted"
    stamp, values = seen[0], seen[1]
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
    lag: timedelta | None = None
    """The commit lag the look-back allows (``lookback_seconds``); None: no
    record counts as settled."""
    steps: StoreSteps = field(default_factory=StoreSteps.once)
    """How the store is read (the runner's: retried while it fails for now)."""

    def __post_init__(self) -> None:
        self.sample: list[tuple[str, str]] = []

    def stale(self, seen: Mapping[str, Seen]) -> set[str]:
        """The ids of ``seen`` (record id → what the plan saw) changed since the plan."""
        if not seen:
            return set()
        ids = list(seen)
        lean: set[str] = set()
        if self.lag is not None:
            lag = self.lag
            lean = {i for i in ids if _settled(seen[i], lag)}
        with tallied() as tally:
            now = self.adapter.current(self.object, ids, self.fields, lean, self.keep)
        self.calls += tally.calls
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


def _settled(seen: Seen, lag: timedelta) -> bool:
    """Whether the plan read the record after its stamp's second closed, plus ``lag``.

    Only with a read time: without one (a fetch by id, or a CRM whose stamps
    tell every change apart) the record is compared value by value.
    """
    read_at = seen[2]
    return read_at is not None and settled(seen[0], read_at, lag)
