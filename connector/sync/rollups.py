"""Rollup attributes in live account runs: each account's deals, from the store.

An account mapping with rollup attributes is computed from the deals its
connection's deal syncs keep (``connector/sync/deals.py``); ``segsync sync``
and ``segsync run`` pull the deals first. The account run then:

- refuses to start, before any read or write, while the connection's deals
  were never synced in full (:class:`DealsNotSynced`): every rollup would
  read as 0 or blank and rewrite tiers wrongly;
- reads each page's deals from the store (one query a page) and evaluates
  with :meth:`~connector.engine.Engine.assign_with_deals`: rollups as of the
  run time, and a due date that covers deals entering or leaving a window
  and ``days_since`` counts crossing a test (``connector/engine/rollup_due.py``),
  so time alone makes an account due, as ``within_days`` does on a field;
- re-plans the accounts whose deals changed since (new, edited, moved to
  another account, or gone), though the accounts did not: the deal sync
  marks them in the same transaction as the deals (``DealStore.record``);
  an incremental run fetches them by id, like due records, and clears the
  marks it consumed once its outcomes are recorded. A mark made again
  meanwhile (by a later deal run) survives the clearing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connector.crm.ids import well_formed_id
from connector.engine import Assignment, Engine
from connector.errors import FatalSyncError
from connector.state import DealRecord
from connector.store.deals import DEAL_MARKS, DEAL_OBJECT, DealStore
from connector.store.store import Store
from connector.sync.steps import StoreSteps


def rollups_need_deals(engines: Mapping[str, Engine]) -> bool:
    """Whether the account mapping has rollup attributes (its runs read the deals)."""
    account = engines.get("account")
    return account is not None and bool(account.rollups)


class DealsNotSynced(FatalSyncError):
    """An account mapping with rollups, and no complete deal sync of the connection yet."""


class RollupFeed:
    """The deals of one account run's records, and the accounts whose deals changed."""

    def __init__(
        self, store: Store, connection: str, engine: Engine, steps: StoreSteps | None = None
    ) -> None:
        self._store = store
        self._deals = DealStore(store)
        self._connection = connection
        self._engine = engine
        # Reads (and the marks' clearing, a delete) retried while they fail for now.
        self._steps = steps = steps or StoreSteps.once()
        self._page: dict[str, list[DealRecord]] = {}
        self.marks: list[tuple[str, int]] = steps(
            "read the deal marks", store.changed_parents, connection, DEAL_MARKS
        )
        """(account id, marking deal run) read at the start of the run."""

    @classmethod
    def of(
        cls, store: Store, connection: str, engine: Engine, steps: StoreSteps | None = None
    ) -> RollupFeed | None:
        """The feed of an account job whose mapping has rollups, else None.

        Raises:
            DealsNotSynced: the connection's deals were never synced in full.

        """
        if engine.object != "account" or not engine.rollups:
            return None
        steps = steps or StoreSteps.once()
        if (
            steps("read the last full deal run", store.last_full_run, connection, DEAL_OBJECT)
            is None
        ):
            names = ", ".join(engine.rollups)
            raise DealsNotSynced(
                f"the account mapping has rollup attributes ({names}) computed from the "
                f"deals of connection {connection!r}, which were never synced: run "
                f"`segsync sync --connection {connection} --object deal` first (`segsync sync` "
                "and `segsync run` pull the deals before the accounts)"
            )
        return cls(store, connection, engine, steps)

    def marked_ids(self, crm: str) -> list[str]:
        """The accounts to re-plan because their deals changed (well-formed ids only)."""
        return [i for i, _ in self.marks if well_formed_id(crm, i)]

    def load(self, ids: Sequence[str]) -> None:
        """Read the deals of a page's accounts (the previous page's are dropped)."""
        self._page = self._steps(
            "read the page's deals", self._deals.by_account, self._connection, ids
        )

    def assign(
        self,
        record_id: str,
        fields: Mapping[str, Any],
        crm: str,
        now: datetime,
        parent: Assignment | None = None,
    ) -> Assignment:
        """The account's assignment with its rollups (the page must be :meth:`load`-ed)."""
        deals = self._page.get(record_id, [])
        return self._engine.assign_with_deals(fields, deals, crm, now, parent)

    def clear(self) -> None:
        """Forget the marks read at the start: the run's outcomes are recorded."""
        if self.marks:
            self._steps(
                "clear the deal marks",
                self._store.clear_changed_parents,
                self._connection,
                DEAL_MARKS,
                self.marks,
            )
