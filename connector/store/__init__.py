"""The state store: runs, watermarks, last-written values, the transition ledger, errors.

SQLite by default (``sqlite:///segsync.db``), PostgreSQL by URL
(``postgresql+psycopg://…``); the schema is migrated with Alembic when the
store opens::

    store = Store.from_settings(settings.store)
"""

from __future__ import annotations

from connector.errors import StoreError
from connector.store.records import (
    RUN_STATUSES,
    ErrorRow,
    FailedRecord,
    RunCounts,
    RunRow,
    RunStatus,
    Transition,
    TransitionRow,
    WrittenRecord,
)
from connector.store.store import DEFAULT_URL, Store, normalize_url

__all__ = [
    "DEFAULT_URL",
    "RUN_STATUSES",
    "ErrorRow",
    "FailedRecord",
    "RunCounts",
    "RunRow",
    "RunStatus",
    "Store",
    "StoreError",
    "Transition",
    "TransitionRow",
    "WrittenRecord",
    "normalize_url",
]
