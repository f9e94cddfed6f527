"""The inherited_values table: parents' segment and tier as the CRM holds them.

An account run notes, for every account it reads, the values of the outputs
contacts inherit as it read them, and, once a write of them has landed, the
values it wrote (:meth:`InheritedStore.note`: only rows that differ from the
stored ones are written). A contact run takes its accounts' values from here
instead of reading the accounts again (``connector/sync/parents.py`` says
when that is safe). Dry runs note nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connector.store.schema import inherited_values, record_state
from connector.store.store import CHUNK, Store


class InheritedStore:
    """Parents' inheritable values (a view over a :class:`Store`)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine = store.engine

    def values(self, connection: str, object: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Record id → its noted values, for those of ``ids`` an account run noted."""
        found: dict[str, dict[str, Any]] = {}
        table = inherited_values
        wanted = list(dict.fromkeys(ids))
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                query = sa.select(table.c.record_id, table.c.field_values).where(
                    table.c.connection == connection,
                    table.c.object == object,
                    table.c.record_id.in_(wanted[start : start + CHUNK]),
                )
                for row in conn.execute(query):
                    found[str(row.record_id)] = dict(row.field_values)
        return found

    def note(self, connection: str, object: str, values: Mapping[str, Mapping[str, Any]]) -> int:
        """Keep ``values`` (record id → field → value); only changed rows are written.

        Returns how many rows were written.
        """
        if not values:
            return 0
        known = self.values(connection, object, list(values))
        now = self._store._clock()
        rows = [
            {
                "connection": connection,
                "object": object,
                "record_id": record_id,
                "field_values": dict(fields),
                "updated_at": now,
            }
            for record_id, fields in values.items()
            if known.get(record_id) != dict(fields)
        ]
        if rows:
            with self._engine.begin() as conn:
                for start in range(0, len(rows), CHUNK):
                    self._store._upsert(
                        conn,
                        inherited_values,
                        rows[start : start + CHUNK],
                        ("field_values", "updated_at"),
                    )
        return len(rows)

    def latest_echo(self, connection: str, object: str) -> datetime | None:
        """The latest stamp a write of segsync's gave an ``object`` record (the CRM's clock)."""
        query = sa.select(sa.func.max(record_state.c.echo_stamp)).where(
            record_state.c.connection == connection, record_state.c.object == object
        )
        with self._engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        # MAX() keeps the column's type: the value comes back as an aware UTC datetime.
        return value if isinstance(value, datetime) else None
