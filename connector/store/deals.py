"""The deals table: what a deal sync read, kept for the outcome analyses.

One :meth:`DealStore.record` per page, one transaction: the page's readable
deals are upserted and the rows that could not be judged are removed (they
may have been readable before). The watermark is advanced separately, after.
Unreadable rows are not open errors: segsync writes nothing to a deal, so
there is nothing to retry; the run reports them (``segsync sync``, ``status``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from connector.state import DealProblem, DealRecord
from connector.store.schema import deals as deals_table
from connector.store.store import CHUNK, Store

DEAL_OBJECT = "deal"
"""The object name of deals in runs, watermarks and errors."""


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
    ) -> None:
        """Keep one page's outcome: readable deals stored, the unreadable ones removed."""
        rows = [
            {
                "connection": connection,
                "id": d.id,
                "crm": crm,
                "account_id": d.account_id,
                "pipeline": d.pipeline,
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
            for chunk in _chunks(skipped):
                conn.execute(
                    sa.delete(deals_table).where(
                        deals_table.c.connection == connection, deals_table.c.id.in_(chunk)
                    )
                )

    def deals(self, connection: str) -> Iterator[DealRecord]:
        """Every stored deal of a connection, in id order, streamed."""
        query = (
            sa.select(deals_table)
            .where(deals_table.c.connection == connection)
            .order_by(deals_table.c.id)
        )
        with self._engine.connect() as conn:
            for row in conn.execution_options(yield_per=5000).execute(query):
                yield DealRecord(
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
                )

    def count(self, connection: str) -> int:
        """How many deals of a connection are stored."""
        query = sa.select(sa.func.count()).where(deals_table.c.connection == connection)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def _insert(conn: Connection) -> Any:
    """The dialect's INSERT construct, which has ``on_conflict_do_update``."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
