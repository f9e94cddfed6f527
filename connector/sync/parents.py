"""Contacts' parents from the state store: what the account run left, and when it is current.

A contact inherits its account's segment and tier as the CRM holds them.
The account run already read (or wrote) those values: it notes them in the
store (``inherited_values``: the values read, then the values written once
a write of them has landed; dry runs note nothing). A contact run takes an
account's values from there instead of reading the account again, under
this rule:

* the store vouches for an account only up to the **latest stamp the account
  runs have seen** in the CRM's own clock: the account watermark's stamp or
  the latest stamp segsync's own writes gave an account, whichever is later
  (:func:`known_parents`);
* every account modified at or after that stamp is read from the CRM by the
  contact run (HubSpot: one search walk per pull, see
  ``connector/crm/hubspot/parents.py``), and so is every account the store
  has no values for; so an account a person edited after the account run is
  never served stale;
* an edit made *while* an account run is under way, after that run read the
  account, is older than that stamp: like any such edit it is read by the
  next account run, which marks the account changed when its inherited
  values moved, and the next contact run re-plans its contacts
  (``changed_parents``). The job claims make a contact job wait for a
  running account job of its connection (``connector/store/leases.py``).

Without an account watermark (no account run has finished) every parent is
read from the CRM, as is every parent on Salesforce, whose query returns the
account's fields with each contact at no cost.

Every store read here is a store step of the contact run
(``connector/sync/steps.py``): one that fails for now (a statement or lock
timeout, a lost connection) is tried again, the lease fenced before each new
try, so a transient store failure mid-pull does not fail the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connector.crm.base import CrmRecord
from connector.store.inherited import InheritedStore
from connector.store.store import Store
from connector.sync.steps import StoreSteps

#: CRMs whose contact pulls would otherwise read each parent again. Salesforce's
#: contact query returns the account's fields with each contact at no cost:
#: nothing is noted for it, and its contact runs use no store values.
STORED_PARENTS = frozenset({"hubspot"})


def stores_parents(crm: str) -> bool:
    """Whether account runs of ``crm`` note inherited values and contact runs use them."""
    return crm in STORED_PARENTS


class StoreParents:
    """:class:`~connector.crm.base.KnownParents` from the state store, for one contact run."""

    def __init__(
        self,
        store: Store,
        connection: str,
        parent_object: str,
        since: datetime | None,
        steps: StoreSteps | None = None,
    ) -> None:
        self._inherited = InheritedStore(store)
        self._connection = connection
        self._object = parent_object
        self._since = since
        # The run's store steps: each read is tried again while it fails for now.
        self._steps = steps or StoreSteps.once()

    @property
    def since(self) -> datetime | None:
        """Accounts modified at or after this stamp are read from the CRM."""
        return self._since

    def values(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """Account id → the inherited values its last account run left, for those noted."""
        found = self._steps(
            "read the stored parents' values",
            self._inherited.values,
            self._connection,
            self._object,
            ids,
        )
        return dict(found)


def known_parents(
    store: Store, connection: str, parent_object: str, steps: StoreSteps | None = None
) -> StoreParents:
    """What the store vouches for: see the module's rule (``since`` None: nothing).

    ``steps``: the contact run's store steps, under which this read and every
    later :meth:`StoreParents.values` are tried again while the store fails for
    now (default: tried once).
    """
    steps = steps or StoreSteps.once()

    def since() -> datetime | None:
        mark = store.watermark(connection, parent_object)
        if mark is None:
            return None
        echo = InheritedStore(store).latest_echo(connection, parent_object)
        return mark.stamp if echo is None else max(mark.stamp, echo)

    return StoreParents(
        store, connection, parent_object, steps("read the stored parents", since), steps
    )


def note_read(
    store: Store,
    connection: str,
    obj: str,
    records: Sequence[CrmRecord],
    fields: Sequence[str],
) -> None:
    """Note the inheritable values of accounts as an account run read them."""
    if fields and records:
        InheritedStore(store).note(
            connection, obj, {r.id: {f: r.fields.get(f) for f in fields} for r in records}
        )


def note_written(
    store: Store,
    connection: str,
    obj: str,
    written: Mapping[str, Mapping[str, Any]],
    fields: Sequence[str],
) -> None:
    """Note the inheritable values of accounts whose write landed (``written``: id → fields sent).

    The fields not sent keep the values noted when the account was read.
    """
    wanted = {
        record_id: {f: sent[f] for f in fields if f in sent}
        for record_id, sent in written.items()
        if any(f in sent for f in fields)
    }
    if not wanted:
        return
    inherited = InheritedStore(store)
    before = inherited.values(connection, obj, list(wanted))
    inherited.note(
        connection,
        obj,
        {i: {**{f: None for f in fields}, **before.get(i, {}), **v} for i, v in wanted.items()},
    )
