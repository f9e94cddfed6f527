"""Alembic environment: runs on the connection :meth:`Store.open` hands over.

There is no ``alembic.ini``: the store builds the Alembic config in code and
passes its open connection in ``config.attributes["connection"]``, so
migrations run in the store's own transaction (and, on PostgreSQL, under its
advisory lock).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from connector.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    """Run the migrations on the given connection (online mode only)."""
    if context.is_offline_mode():
        raise RuntimeError("segsync migrations run online, on the store's connection")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("open the store with Store.open(url); it runs the migrations")
    _run(connection)


run()
