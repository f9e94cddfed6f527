"""No echo: an incremental run does not re-plan what segsync itself wrote.

Every write moves the record's modification stamp, so the next incremental
pull finds segsync's own writes again. When the CRM returns the stamp a write
gave the record (HubSpot's ``updatedAt``), the store keeps it
(``record_state.echo_stamp``); a pulled record still at exactly that stamp
has not been touched by anyone since, and is skipped before planning (and,
for HubSpot contacts, before its parent lookups). A person's later edit
gives the record a new stamp, so it is planned as usual. Salesforce leaves
such records out of the query itself (the integration user as
``LastModifiedById``, see :func:`connector.crm.salesforce.soql.window`).

The watermark still follows skipped records, so the window moves past them.
Records the look-back window meets again at the stamp an earlier run already
processed them at (:class:`connector.sync.window.Known`) are skipped the same
way, and counted apart (:attr:`EchoFilter.rereads`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from connector.crm.base import CrmRecord, KnownWindow
from connector.state import Watermark, utc
from connector.store.store import Store
from connector.sync.steps import StoreSteps
from connector.sync.window import Known


class EchoFilter:
    """Tells which pulled records are echoes of segsync's own writes; counts the skipped ones.

    Usable as the adapter's :data:`~connector.crm.base.EchoTest` (it may be
    called from the pull's prefetch thread: it only reads the store).
    """

    def __init__(
        self,
        store: Store,
        connection: str,
        obj: str,
        known: Known | None = None,
        steps: StoreSteps | None = None,
    ) -> None:
        self._store = store
        # The read is retried while it fails for now (a timed-out statement).
        self._steps = steps or StoreSteps.once()
        self._connection = connection
        self._object = obj
        self._known = known
        self.skipped = 0
        self.rereads = 0
        """Records skipped as already processed at their stamp (not echoes)."""

    def __call__(self, records: Sequence[CrmRecord]) -> set[str]:
        """The ids of ``records`` still at the stamp our own last write gave them, or known."""
        if not records:
            return set()
        return self._echoes(records) | self._rereads(records)

    def drop(self, records: Sequence[CrmRecord]) -> list[CrmRecord]:
        """``records`` without echoes and re-reads (counted: :attr:`skipped`, :attr:`rereads`)."""
        if not records:
            return []
        echoes = self._echoes(records)
        rereads = self._rereads([r for r in records if r.id not in echoes])
        self.skipped += len(echoes)
        self.rereads += len(rereads)
        return [r for r in records if r.id not in echoes and r.id not in rereads]

    def _echoes(self, records: Sequence[CrmRecord]) -> set[str]:
        stamps = self._steps(
            "read the echo stamps",
            self._store.echo_stamps,
            self._connection,
            self._object,
            [r.id for r in records],
        )
        return {r.id for r in records if r.id in stamps and utc(r.stamp) == stamps[r.id]}

    def _rereads(self, records: Sequence[CrmRecord]) -> set[str]:
        known = self._known
        if not known:
            return set()
        return {r.id for r in records if known.has(r.id, r.stamp)}


def known_window(
    known: Known, previous: Watermark | None, since: datetime | None
) -> KnownWindow | None:
    """The look-back window an adapter may leave unread once a count proves it known.

    None without boundary ids: the run that set the watermark read its
    second before it closed (Salesforce's whole-second stamps), so a change
    in that second could still appear below the watermark unseen
    (:meth:`connector.sync.window.Recent.mark`).
    """
    if previous is None or since is None or not previous.boundary_ids:
        return None
    span = known.window(since, previous.stamp)
    if span is None:
        return None
    upto, expected = span
    return KnownWindow(
        since, upto, expected, lambda pairs: known.moved(pairs, since, upto), known.has
    )
