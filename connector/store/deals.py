"""The deals table: what a deal sync read, kept for the outcome analyses.

One :meth:`DealStore.record` per page, one transaction: the page's readable
deals are upserted and the rows that could not be judged, or were deleted in
the CRM, are removed (they may have been readable before). A full pull lists
every live deal: :meth:`DealStore.keep_only` then removes the stored deals it
did not list (deleted in the CRM and purged since, or archived). A removed
deal is gone from every rollup and outcome; restored in the CRM, it is read
and stored again. The watermark is advanced separately, after.
Unreadable rows are not open errors: segsync writes nothing to a deal, so
there is nothing to retry; the run reports them (``segsync sync``, ``status``).

With ``mark_run`` (the account mapping has rollup attributes), the same
transaction marks the accounts whose deals changed (a new deal, a rollup
input edited, a deal moved to another account or gone): the next account run
re-evaluates them though the accounts themselves did not change
(``connector/sync/rollups.py``). Marks live beside the contact runs' in
``changed_parents``, under the object :data:`DEAL_MARKS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Set
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from connector.state import DealProblem, DealRecord
from connector.store.schema import changed_parents
from connector.store.schema import deals as deals_table
from connector.store.store import CHUNK, Store

DEAL_OBJECT = "deal"
"""The object name of deals in runs, watermarks and errors."""
DEAL_MARKS = "account.deals"
"""The ``changed_parents`` object of accounts whose deals changed."""
#: What a rollup reads of a stored deal: a deal whose row changes only
#: elsewhere (its stage name, loss reason, stamp) marks nothing.
_ROLLUP_INPUTS = (
    "account_id",
    "pipeline",
    "type",
    "is_closed",
    "is_won",
    "amount",
    "created_at",
    "closed_at",
)


class DealStore:
    """Deals of a store's connections (a view over a :class:`Store`)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine = store.engine

    def record(
        self,
        connection: str,
        crm: str,
        deals: Sequence[DealRecord],
        problems: Sequence[DealProblem],
        mark_run: int | None = None,
        gone: Sequence[str] = (),
    ) -> int:
        """Keep one page's outcome: readable deals stored, the unreadable and ``gone`` removed.

        ``mark_run``: the deal run marking the accounts whose deals changed
        (none: no marks, nothing reads them). ``gone``: deals deleted in the CRM.
        Returns how many of ``gone`` were stored (and are removed now).
        """
        rows = [
            {
                "connection": connection,
                "id": d.id,
                "crm": crm,
                "account_id": d.account_id,
                "pipeline": d.pipeline,
                "type": d.type,
                "stage": d.stage,
                "is_closed": d.is_closed,
                "is_won": d.is_won,
                "amount": d.amount,
                "created_at": d.created_at,
                "closed_at": d.closed_at,
                "lost_reason": d.lost_reason,
                "modstamp": d.stamp,
            }
            for d in deals
        ]
        skipped = [p.id for p in problems if not p.kept]
        with self._engine.begin() as conn:
            if mark_run is not None:
                self._mark(conn, connection, rows, [*skipped, *gone], mark_run)
            if rows:
                stmt = _insert(conn)(deals_table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(deals_table.primary_key.columns),
                    set_={
                        c.name: stmt.excluded[c.name]
                        for c in deals_table.columns
                        if c.name not in ("connection", "id")
                    },
                )
                conn.execute(stmt, rows)
            _delete(conn, connection, skipped)
            return _delete(conn, connection, gone)

    def keep_only(self, connection: str, present: Set[str], mark_run: int | None = None) -> int:
        """Remove the connection's stored deals not in ``present``; how many were removed.

        ``present``: every deal a complete (full) pull listed, readable or not.
        One transaction; ``mark_run`` marks the removed deals' accounts as
        :meth:`record` does.
        """
        query = sa.select(deals_table.c.id).where(deals_table.c.connection == connection)
        with self._engine.begin() as conn:
            absent = [row.id for row in conn.execute(query) if row.id not in present]
            if absent:
                if mark_run is not None:
                    self._mark(conn, connection, [], absent, mark_run)
                _delete(conn, connection, absent)
        return len(absent)

    def _mark(
        self,
        conn: Connection,
        connection: str,
        rows: Sequence[dict[str, Any]],
        gone: Sequence[str],
        run_id: int,
    ) -> None:
        """Mark the accounts of the page's deals whose rollup inputs changed (before the upsert)."""
        ids = [r["id"] for r in rows] + list(gone)
        before: dict[str, dict[str, Any]] = {}
        columns = [deals_table.c[name] for name in ("id", *_ROLLUP_INPUTS)]
        for chunk in _chunks(ids):
            query = sa.select(*columns).where(
                deals_table.c.connection == connection, deals_table.c.id.in_(chunk)
            )
            before.update({row.id: dict(row._mapping) for row in conn.execute(query)})
        accounts: set[str] = set()
        for row in rows:
            old = before.get(row["id"])
            if old is None or any(not _same(old[name], row[name]) for name in _ROLLUP_INPUTS):
                accounts.add(row["account_id"])
                if old is not None:
                    accounts.add(old["account_id"])
        accounts.update(before[i]["account_id"] for i in gone if i in before)
        if not accounts:
            return
        now = datetime.now(UTC)
        marks = [
            {
                "connection": connection,
                "object": DEAL_MARKS,
                "record_id": account,
                "run_id": run_id,
                "marked_at": now,
            }
            for account in sorted(accounts)
        ]
        stmt = _insert(conn)(changed_parents)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(changed_parents.primary_key.columns),
            set_={"run_id": stmt.excluded.run_id, "marked_at": stmt.excluded.marked_at},
        )
        conn.execute(stmt, marks)

    def by_account(self, connection: str, accounts: Sequence[str]) -> dict[str, list[DealRecord]]:
        """The stored deals of ``accounts`` (those with none are left out), in id order."""
        out: dict[str, list[DealRecord]] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(sorted(set(accounts))):
                query = (
                    sa.select(deals_table)
                    .where(
                        deals_table.c.connection == connection,
                        deals_table.c.account_id.in_(chunk),
                    )
                    .order_by(deals_table.c.id)
                )
                for row in conn.execute(query):
                    out.setdefault(row.account_id, []).append(_deal(row))
        return out

    def deals(self, connection: str) -> Iterator[DealRecord]:
        """Every stored deal of a connection, in id order, streamed."""
        query = (
            sa.select(deals_table)
            .where(deals_table.c.connection == connection)
            .order_by(deals_table.c.id)
        )
        with self._engine.connect() as conn:
            for row in conn.execution_options(yield_per=5000).execute(query):
                yield _deal(row)

    def accounts_with_closed(self, connection: str) -> set[str]:
        """The accounts that have at least one closed deal (one query, no deal read)."""
        query = (
            sa.select(deals_table.c.account_id)
            .where(deals_table.c.connection == connection, deals_table.c.is_closed.is_(True))
            .distinct()
        )
        with self._engine.connect() as conn:
            return {str(row.account_id) for row in conn.execute(query)}

    def count(self, connection: str) -> int:
        """How many deals of a connection are stored."""
        query = sa.select(sa.func.count()).where(deals_table.c.connection == connection)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def _deal(row: Any) -> DealRecord:
    return DealRecord(
        id=row.id,
        account_id=row.account_id,
        pipeline=row.pipeline,
        stage=row.stage,
        is_closed=bool(row.is_closed),
        is_won=bool(row.is_won),
        amount=None if row.amount is None else float(row.amount),
        created_at=row.created_at,
        closed_at=row.closed_at,
        lost_reason=row.lost_reason,
        stamp=row.modstamp,
        type=row.type,
    )


def _same(old: Any, new: Any) -> bool:
    """Equal as a rollup reads them (a stored time comes back in UTC, a float as stored)."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return _utc(old) == _utc(new)
    if isinstance(old, int | float) and isinstance(new, int | float):
        return float(old) == float(new)
    return bool(old == new)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _insert(conn: Connection) -> Any:
    """The dialect's INSERT construct, which has ``on_conflict_do_update``."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _delete(conn: Connection, connection: str, ids: Sequence[str]) -> int:
    """Delete the connection's deals ``ids``; how many there were."""
    deleted = 0
    for chunk in _chunks(ids):
        done = conn.execute(
            sa.delete(deals_table).where(
                deals_table.c.connection == connection, deals_table.c.id.in_(chunk)
            )
        )
        deleted += done.rowcount
    return deleted


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
