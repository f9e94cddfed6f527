"""The query vocabulary: object names, SELECT lists, SOQL templates and records as CrmRecords.

Pulls are SOQL ordered by ``SystemModstamp, Id`` with an inclusive ``>=``
watermark. Field names go into the query text only after :func:`check_names`
accepted them; values only through ``format_soql``. REST (:mod:`.pull`) and
Bulk 2.0 (:mod:`.bulk`) produce the same :class:`~connector.crm.base.CrmRecord`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.crm.base import CrmRecord, ObjectName, RecordUpdate, parse_stamp
from connector.errors import FatalSyncError

SOBJECTS: dict[str, str] = {"account": "Account", "contact": "Contact", "lead": "Lead"}
#: What every query of an object keeps to. A converted lead is read-only in
#: Salesforce (an update answers CANNOT_UPDATE_CONVERTED_LEAD) and lives on as
#: the contact it became: segsync never reads, plans or writes one
#: (docs/crm-apis.md, "Leads").
SCOPES: dict[str, str] = {"Lead": "IsConverted = false"}
STAMP = "SystemModstamp"
EDITED_BY = "LastModifiedById"
EDITED_AT = "LastModifiedDate"
PARENT = "Account"
PARENT_ID = "AccountId"
# Contacts remembered with their account, so writes can group batch-mates by parent.
PARENT_MEMORY = 500_000

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def check_names(names: Sequence[str], what: str) -> None:
    """Refuse anything but plain field names before they go into query text."""
    bad = [n for n in names if not _IDENT.fullmatch(n)]
    if bad:
        raise FatalSyncError(f"Salesforce {what}: not valid field names: {', '.join(bad)}")


def columns(
    obj: ObjectName, fields: Sequence[str], parent_fields: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The SELECT list and the bare parent field names."""
    if parent_fields and obj != "contact":
        raise FatalSyncError("Salesforce: parent fields are only pulled for contacts")
    parents = [p.removeprefix(PARENT + ".") for p in parent_fields]
    check_names(fields, "pull")
    check_names(parents, "pull")
    selected = ["Id", STAMP, *fields]
    if obj == "contact":
        selected.append(PARENT_ID)
    if parents:
        selected += [f"{PARENT}.{p}" for p in ["Id", *parents]]
    seen: set[str] = set()
    unique = []
    for column in selected:
        if column.lower() not in seen:
            seen.add(column.lower())
            unique.append(column)
    return unique, list(dict.fromkeys(parents))


def soql(selected: Sequence[str], sobject: str, where: str, order: bool = True) -> str:
    """A query template: identifiers are checked names; values go through format_soql.

    The object's scope (:data:`SCOPES`: no converted leads) joins every condition.
    """
    text = f"SELECT {', '.join(selected)} FROM {sobject}"
    scope = SCOPES.get(sobject)
    if scope and where:
        where = f"{scope} AND ({where})"
    elif scope:
        where = scope
    if where:
        text += f" WHERE {where}"
    if order:
        text += f" ORDER BY {STAMP}, Id"
    return text


class ParentMemory:
    """Each contact's account as last pulled: an ordering hint for writes."""

    def __init__(self, limit: int = PARENT_MEMORY) -> None:
        self._limit = limit
        self._parent_of: dict[str, str] = {}

    def remember(self, record_id: str, parent_id: Any) -> None:
        """Note ``record_id``'s parent (nothing when it has none)."""
        if not parent_id:
            return
        if len(self._parent_of) >= self._limit:
            # Only an ordering hint for writes: forgetting costs nothing but contention.
            self._parent_of.clear()
        self._parent_of[record_id] = str(parent_id)

    def order(self, sobject: str, updates: Sequence[RecordUpdate]) -> list[RecordUpdate]:
        """Contacts grouped by account (as last pulled); other objects as given."""
        ordered = list(updates)
        if sobject == "Contact":
            # Updating a contact locks its account: batch-mates that share accounts
            # contend inside one transaction instead of across parallel ones.
            ordered.sort(key=lambda u: (self._parent_of.get(u.id, ""), u.id))
        return ordered


def finish(
    values: dict[str, Any],
    parent: dict[str, Any] | None,
    fields: Sequence[str],
    contact: bool,
    memory: ParentMemory,
    read_at: datetime | None = None,
) -> CrmRecord:
    """The CrmRecord of a row's values: the parent remembered, ``AccountId`` kept if asked.

    ``read_at``: the earliest the org's clock can have shown when the row was
    read (:attr:`CrmRecord.read_at`; None when the answer carried no ``Date``).
    """
    record_id = str(values["Id"])
    if contact:
        memory.remember(record_id, values.get(PARENT_ID))
        if not any(f.lower() == PARENT_ID.lower() for f in fields):
            values.pop(PARENT_ID, None)
    return CrmRecord(record_id, parse_stamp(values.get(STAMP)), values, parent, read_at)


def rest_record(
    raw: Mapping[str, Any],
    fields: Sequence[str],
    parents: Sequence[str],
    contact: bool,
    memory: ParentMemory,
    read_at: datetime | None = None,
) -> CrmRecord:
    """A REST record as a CrmRecord: relationship removed from fields, parent attached."""
    relation = raw.get(PARENT) if contact else None
    # Keys as the caller spelled them (the API answers in the org's casing).
    wanted = {f.lower(): f for f in ("Id", STAMP, PARENT_ID, *fields)}
    values = {
        wanted.get(k.lower(), k): v
        for k, v in raw.items()
        if k != "attributes" and not (contact and k == PARENT)
    }
    parent: dict[str, Any] | None = None
    if parents and isinstance(relation, Mapping):
        # The API answers in the org's casing; the mapping may have used another.
        lowered = {str(k).lower(): v for k, v in relation.items()}
        parent = {p: lowered.get(p.lower()) for p in parents}
    return finish(values, parent, fields, contact, memory, read_at)


def window(floor: datetime | None, own_user: str | None) -> tuple[str, list[Any]]:
    """The WHERE template and its arguments of a pull from ``floor`` (everything when None).

    With the integration user's id, records whose last edit is that user's
    own since ``floor`` are left out: they are echoes of segsync's writes.
    A person's later edit makes someone else the last modifier, and a system
    change after ours moves ``SystemModstamp`` past ``LastModifiedDate``
    only when it is not ours (see docs/crm-apis.md, "No echo").
    """
    if floor is None:
        return "", []
    if not own_user:
        return f"{STAMP} >= {{}}", [floor]
    where = f"{STAMP} >= {{}} AND ({EDITED_BY} != {{}} OR {EDITED_AT} < {{}})"
    return where, [floor, own_user, floor]


#: Ids a Bulk pull remembers at its latest stamp, to resume a failed query job
#: without yielding them again. A pull that yielded more records on one stamp
#: cannot resume mid-stamp: its failure ends the run (nothing is written before
#: the plan is complete) and the next run reads again from the watermark.
MAX_RESUME_IDS = 50_000


@dataclass
class Resume:
    """Where a pull stands: the last stamp yielded and the ids yielded at it.

    ``own_user`` (the integration user's id) leaves segsync's own last edits
    out of incremental pulls (:func:`window`). At most ``max_ids`` ids are
    kept (memory stays flat however many records share a stamp); past that
    :attr:`resumable` is false.
    """

    floor: datetime | None
    ids_at_floor: set[str] = field(default_factory=set)
    own_user: str | None = None
    max_ids: int = field(default_factory=lambda: MAX_RESUME_IDS)
    overflow: bool = False
    """More than ``max_ids`` records were yielded at ``floor``: some are not in the set."""

    @property
    def resumable(self) -> bool:
        """Whether a query restarted from the floor can tell every record already yielded."""
        return not self.overflow

    def keep(self, record: CrmRecord) -> bool:
        """False for a record before the floor, or one already yielded at it."""
        if self.floor is None:
            return True
        if record.stamp != self.floor:
            return record.stamp > self.floor
        return record.id not in self.ids_at_floor

    def advance(self, page: Sequence[CrmRecord]) -> None:
        """Move the floor past ``page`` (just yielded)."""
        for record in page:
            if self.floor is None or record.stamp > self.floor:
                self.floor, self.ids_at_floor, self.overflow = record.stamp, {record.id}, False
            elif record.stamp == self.floor:
                if len(self.ids_at_floor) < self.max_ids:
                    self.ids_at_floor.add(record.id)
                else:
                    self.overflow = True
