"""The agreement policy: both records of a matched pair get the same values (``[parity] source``).

Runs are per connection × object, so a run for one CRM reads what it needs
of the other through the other connection's adapter:

1. :meth:`Agreement.prepare`, once a run: the identity keys of every record
   in both CRMs (key fields only), matched as ``segsync parity`` matches
   them; on an incremental run also the other CRM's records modified since
   the run's start (less the look-back), whose counterparts in this CRM the
   run re-plans (fetched by id, like records come due), so a change on the
   deciding side reaches the other CRM on its next run without a full sync.
2. :meth:`Agreement.resolve`, once a page: the counterparts' inputs, fetched
   by id, and for each record with a counterpart the fields to evaluate:
   the deciding CRM's record (``salesforce`` / ``hubspot``), or the two
   merged attribute by attribute (``merge``: the first non-blank raw value in
   the configured order, in the namespace of the first CRM of
   ``merge_order``, so both runs evaluate the very same input).

Both CRMs' runs then compute the same assignment for the pair, and the reason
says which side decided ("decided by Salesforce", "merged: industry from
HubSpot"), so every output, the reason included, is identical in both CRMs.
A record with no counterpart (unmatched, ambiguous) is computed from its own
data as without the policy. The lock stays each record's own: a record a
person pinned in one CRM is not written there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from connector.config import ParitySettings, Settings
from connector.crm.base import CrmAdapter, CrmRecord, ObjectName
from connector.crm.ids import link_key
from connector.engine import Assignment, Engine
from connector.engine.assignment import REASON_LIMIT
from connector.mapping.values import is_blank
from connector.sync.identity import IDENTITY_FIELDS, identify, read_all, readable_fields

CRM_LABELS = {"salesforce": "Salesforce", "hubspot": "HubSpot"}


@dataclass(frozen=True, slots=True)
class Decided:
    """What to evaluate for one record: the fields, whose names they are, and the note."""

    fields: Mapping[str, Any]
    crm: str
    note: str


@dataclass
class Agreement:
    """One job's view of the other CRM under an agreement policy.

    Attributes:
        settings: the ``[parity]`` settings (``source`` set).
        this: the adapter of the job's own connection.
        other: the adapter of the other CRM's connection.
        engine: the job's compiled mapping.

    """

    settings: ParitySettings
    this: CrmAdapter
    other: CrmAdapter
    engine: Engine
    counterpart: dict[str, str] = field(default_factory=dict)
    """This CRM's id → the matched record's id in the other CRM (after :meth:`prepare`)."""

    @property
    def source(self) -> str:
        """``salesforce``, ``hubspot`` or ``merge``."""
        return self.settings.source or "merge"

    def prepare(self, since: datetime | None) -> list[str]:
        """Match the two CRMs' records; this CRM's ids whose counterpart changed since ``since``.

        ``since`` None (a full pull reads every record anyway): none.
        """
        obj: ObjectName = self.engine.object  # type: ignore[assignment]
        match = self.settings.match_on.get(obj)  # type: ignore[arg-type]
        sides: dict[str, Mapping[str, Mapping[str, Any]]] = {}
        for adapter in (self.this, self.other):
            fields = readable_fields(adapter, obj, (), match)
            sides[adapter.crm] = read_all(adapter, obj, fields)
        identity = identify(obj, sides["salesforce"], sides["hubspot"], match)
        if self.this.crm == "salesforce":
            self.counterpart = {m.salesforce_id: m.hubspot_id for m in identity.matches}
        else:
            self.counterpart = {m.hubspot_id: m.salesforce_id for m in identity.matches}
        if since is None or self.source == self.this.crm:
            return []  # the deciding side reads its own changes
        changed = read_all(self.other, obj, readable_fields(self.other, obj, (), None), since)
        back = {theirs: mine for mine, theirs in self.counterpart.items()}
        return sorted(back[i] for i in changed if i in back)

    def resolve(self, records: Sequence[CrmRecord]) -> dict[str, Decided]:
        """For the records that have a counterpart: what to evaluate instead of their own fields."""
        mine = {link_key(r.id, self.this.crm) or r.id: r for r in records}
        wanted = {i: self.counterpart[i] for i in mine if i in self.counterpart}
        if not wanted:
            return {}
        other_crm = self.other.crm
        fields = self.engine.input_fields(other_crm)
        fetched = self.other.fetch(self.engine.object, sorted(set(wanted.values())), fields)  # type: ignore[arg-type]
        theirs = {link_key(r.id, other_crm) or r.id: r.fields for r in fetched}
        out: dict[str, Decided] = {}
        for my_id, their_id in wanted.items():
            other_fields = theirs.get(their_id)
            if other_fields is None:
                continue  # gone since the keys were read: its own data decides
            by_crm: dict[str, Mapping[str, Any]] = {
                self.this.crm: mine[my_id].fields,
                other_crm: other_fields,
            }
            out[mine[my_id].id] = self.decide(by_crm)
        return out

    def decide(self, by_crm: Mapping[str, Mapping[str, Any]]) -> Decided:
        """The fields to evaluate for a pair whose two records' fields are ``by_crm``."""
        source = self.source
        if source != "merge":
            return Decided(by_crm[source], source, f"decided by {CRM_LABELS[source]}")
        home = self.settings.merge_order[0]
        merged: dict[str, Any] = {}
        taken: dict[str, list[str]] = {}
        for name, attr in self.engine.definition.attributes.items():
            target = attr.sources.get(home)
            if target is None:
                continue  # read only from another CRM: not part of the shared input
            order = self.settings.attribute_order.get(name, self.settings.merge_order)
            for crm in order:
                source_field = attr.sources.get(crm)
                raw = by_crm[crm].get(source_field) if source_field else None
                if not is_blank(raw):
                    merged[target] = raw
                    taken.setdefault(crm, []).append(name)
                    break
        other = next(c for c in CRM_LABELS if c != home)
        moved = taken.get(other, [])
        note = (
            f"merged: {', '.join(sorted(moved))} from {CRM_LABELS[other]}"
            if moved
            else f"merged: all from {CRM_LABELS[home]}"
        )
        return Decided(merged, home, note)


def agreement_for(
    settings: Settings, name: str, engine: Engine, adapter: Callable[[str], CrmAdapter]
) -> Agreement | None:
    """The agreement policy's view for connection ``name``'s job (None without ``[parity] source``).

    ``adapter`` gives the adapter of a connection by name (opening it if need be).
    """
    pair = settings.policy_connections()
    if name not in pair or engine.object not in IDENTITY_FIELDS:
        return None  # leads have no counterpart: HubSpot has no lead object to pair
    other = next(n for n in pair if n != name)
    return Agreement(settings.parity, adapter(name), adapter(other), engine)


#: Noted assignments a :class:`Notes` remembers (each a copy of an interned one).
NOTES_LIMIT = 20_000


class Notes:
    """:func:`with_note` for one run: one noted copy per assignment and note.

    Records share assignments (the engine interns them) and a pair's note is
    one of a few ("decided by Salesforce", "merged: industry from HubSpot"),
    so the copies repeat. Handing out the same copy lets the planner's
    per-assignment cache (``RecordPlanner``) hit for them, where a fresh copy
    per record filled it with entries that never hit again. Keyed by the
    assignment's identity (an entry holds it, so its id is not reused).
    """

    def __init__(self) -> None:
        self._noted: dict[tuple[int, str], tuple[Assignment, Assignment]] = {}

    def __call__(self, assignment: Assignment, note: str) -> Assignment:
        """``with_note(assignment, note)``, the same object for the same pair."""
        key = (id(assignment), note)
        entry = self._noted.get(key)
        if entry is not None and entry[0] is assignment:
            return entry[1]
        noted = with_note(assignment, note)
        if len(self._noted) < NOTES_LIMIT:
            self._noted[key] = (assignment, noted)
        return noted


def with_note(assignment: Assignment, note: str) -> Assignment:
    """The assignment with ``note`` at the end of its reason (the reason stays within its limit)."""
    if not note:
        return assignment
    suffix = f" · {note}"
    reason = assignment.reason
    if len(reason) + len(suffix) > REASON_LIMIT:
        reason = reason[: max(0, REASON_LIMIT - len(suffix) - 1)].rstrip() + "…"
    return replace(assignment, reason=(reason + suffix)[:REASON_LIMIT])
