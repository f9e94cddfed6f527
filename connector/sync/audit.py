"""Overrides from the CRM's own audit trail, for values the state store does not know.

The store remembers what segsync last wrote; a CRM value that differs from it
is a person's override. With no memory (a first sync, a new or lost store),
the CRM's audit trail answers instead: HubSpot property history, Salesforce
field history (the adapters' ``set_by_person``). It is asked only where it
can change the plan: an unlocked record whose output field holds a value
that differs from the desired one and that the store has no last-written
value for. Those are a handful on an incremental run and only the foreign
values on a first sync. Records with a question are held back (at most
:data:`HOLD_RECORDS`) until :data:`BATCH` of them gather, so the questions go out in
full batches however the pages fall, and the cost stays bounded (see
BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from connector.crm.base import CrmAdapter, ObjectName
from connector.sync.planner import PlanInput, Policy
from connector.sync.values import is_blank, same_value

T = TypeVar("T")

BATCH = 300
"""Records asked about at once (Salesforce: one history query; HubSpot: six batch reads)."""
HOLD_RECORDS = 2_000
"""Records held back at most while questions gather (one Salesforce page)."""


class AuditTrail:
    """Fills :attr:`PlanInput.set_by_person` from the CRM; counts the records it asked about."""

    def __init__(self) -> None:
        self._adapter: CrmAdapter | None = None
        self._object: ObjectName = "account"
        self._policy = Policy()
        self.asked = 0
        self.found = 0
        self._held: list[tuple[PlanInput, Any]] = []
        self._questions = 0

    def bind(self, adapter: CrmAdapter, obj: ObjectName, policy: Policy) -> None:
        """The CRM, object and policy of the run being planned."""
        self._adapter, self._object, self._policy = adapter, obj, policy

    def questions(self, item: PlanInput) -> dict[str, object]:
        """Output field → current value, for the fields of ``item`` worth asking about."""
        if item.locked:
            return {}
        last = item.last_written or {}
        out: dict[str, object] = {}
        for name, want in item.desired.items():
            if name in self._policy.volatile or name in last:
                continue
            have = item.current.get(name)
            if not is_blank(have) and not same_value(have, want):
                out[name] = have
        return out

    def hold(self, planned: Sequence[tuple[PlanInput, T]]) -> list[tuple[PlanInput, T]]:
        """Take a page; the records ready to plan (all held ones once a batch is full).

        Only records with a question wait: the others pass at once, so their
        writes can start (connector/sync/pipeline.py) before the pull ends.
        """
        ready: list[tuple[PlanInput, T]] = []
        for entry in planned:
            if self.questions(entry[0]):
                self._held.append(entry)
                self._questions += 1
            else:
                ready.append(entry)
        if self._questions < BATCH and len(self._held) < HOLD_RECORDS:
            return ready
        return [*ready, *self.release()]

    def release(self) -> list[tuple[PlanInput, Any]]:
        """Every record held, answered: call once the pull is done."""
        held, self._held, self._questions = self._held, [], 0
        return self.apply(held)

    def apply(self, planned: Sequence[tuple[PlanInput, T]]) -> list[tuple[PlanInput, T]]:
        """``planned`` with ``set_by_person`` filled in where the CRM names a person."""
        wanted = {}
        for item, _ in planned:
            fields = self.questions(item)
            if fields:
                wanted[item.record_id] = fields
        if not wanted or self._adapter is None:
            return list(planned)
        self.asked += len(wanted)
        found = self._adapter.set_by_person(self._object, wanted)
        self.found += len(found)
        return [
            (replace(item, set_by_person=found[item.record_id]), extra)
            if item.record_id in found
            else (item, extra)
            for item, extra in planned
        ]
