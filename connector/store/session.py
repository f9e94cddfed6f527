"""Bounds on every PostgreSQL connection of the store: no store call may hang forever.

A statement of the store can wait on a lock another session holds, on a
server that stopped answering, or on a network that drops packets without a
word. Unbounded, the job's thread waits forever while its lease heartbeat
(another thread) keeps the job from every other replica. So each connection
the store opens (its pool's and the job locks') is bounded on both sides:

- **server side**, set on the session when it opens: ``statement_timeout``
  (a statement running longer is cancelled), ``lock_timeout`` (a statement
  waiting longer for a lock is cancelled), ``idle_in_transaction_session_timeout``
  (a session idle inside a transaction, e.g. a stopped process's, is ended
  and its locks released);
- **client side**, libpq connection parameters: ``connect_timeout``, TCP
  keepalives (a silent connection is probed and given up) and, with a
  statement timeout, ``tcp_user_timeout`` (data sent and never acknowledged
  for longer than the statement may run, plus the keepalives' grace).

A statement cancelled by a bound raises :class:`~connector.errors.StoreUnavailable`
(see ``store._store_failures``), which the runner retries as a transient
failure.

SQLite (the embedded default) has one bound of these: how long a statement
waits for the database file's lock another connection holds (a second
segsync process on the same file, a ``segsync status`` or ``sqlite3`` shell
inside a write transaction). It is SQLite's ``busy_timeout``, set from
``lock_timeout_seconds`` as PostgreSQL's lock wait is (0: the statement
timeout bounds it instead, as on PostgreSQL; both 0: SQLite's longest wait,
about 24 days): :meth:`SessionLimits.sqlite_busy_ms`. A lock that outlasts it
("database is locked", SQLite's ``SQLITE_BUSY`` and ``SQLITE_LOCKED``) is
:class:`~connector.errors.StoreUnavailable` too, and the step is retried.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.config import StoreSettings

#: Probes sent before a silent connection is given up (libpq ``keepalives_count``).
KEEPALIVE_PROBES = 3

#: SQLite's longest busy timeout (its argument is a C int of milliseconds).
SQLITE_MAX_BUSY_MS = 2**31 - 1

#: The server-side settings, by the [store] key that sets each (seconds).
_SERVER = (
    ("statement_timeout", "statement_timeout_seconds"),
    ("lock_timeout", "lock_timeout_seconds"),
    ("idle_in_transaction_session_timeout", "idle_in_transaction_timeout_seconds"),
)

_BOUNDS: weakref.WeakKeyDictionary[Engine, SessionLimits] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class SessionLimits:
    """The ``[store]`` bounds of a PostgreSQL session (0: that server-side bound is off)."""

    connect_timeout_seconds: int = 10
    statement_timeout_seconds: float = 300.0
    lock_timeout_seconds: float = 60.0
    idle_in_transaction_timeout_seconds: float = 300.0
    keepalive_seconds: int = 30

    @classmethod
    def of(cls, settings: StoreSettings | None = None) -> SessionLimits:
        """The bounds ``settings`` (default: the defaults of ``[store]``) ask for."""
        chosen = settings if settings is not None else StoreSettings()
        return cls(
            connect_timeout_seconds=chosen.connect_timeout_seconds,
            statement_timeout_seconds=chosen.statement_timeout_seconds,
            lock_timeout_seconds=chosen.lock_timeout_seconds,
            idle_in_transaction_timeout_seconds=chosen.idle_in_transaction_timeout_seconds,
            keepalive_seconds=chosen.keepalive_seconds,
        )

    def connect_params(self) -> dict[str, Any]:
        """Libpq connection parameters: the connect timeout and TCP keepalives."""
        idle = self.keepalive_seconds
        interval = max(1, idle // KEEPALIVE_PROBES)
        params: dict[str, Any] = {
            "connect_timeout": self.connect_timeout_seconds,
            "keepalives": 1,
            "keepalives_idle": idle,
            "keepalives_interval": interval,
            "keepalives_count": KEEPALIVE_PROBES,
        }
        if self.statement_timeout_seconds:
            # Data sent and never acknowledged (a request into a dead network).
            # Not sooner than the statement timeout: a backend waiting for a
            # lock does not read, and a large batch fills its socket buffer.
            silent = idle + interval * KEEPALIVE_PROBES
            params["tcp_user_timeout"] = round((self.statement_timeout_seconds + silent) * 1000)
        return params

    def server_settings(self) -> dict[str, str]:
        """The session settings, in milliseconds as PostgreSQL reads them ("0": off)."""
        return {name: str(round(getattr(self, key) * 1000)) for name, key in _SERVER}

    def sqlite_busy_ms(self) -> int:
        """SQLite's ``busy_timeout``: how long a statement waits for the file's lock (ms).

        The lock timeout; when that is off (0), the statement timeout, which
        bounds a lock wait on PostgreSQL then; when both are off, SQLite's
        longest wait.
        """
        seconds = self.lock_timeout_seconds or self.statement_timeout_seconds
        if not seconds:
            return SQLITE_MAX_BUSY_MS
        return max(1, min(SQLITE_MAX_BUSY_MS, round(seconds * 1000)))

    def describe(self, setting: str) -> str:
        """``store.<key> = <seconds>``: the config key behind a server-side setting.

        ``busy_timeout`` (SQLite's) names the key :meth:`sqlite_busy_ms` took it from.
        """
        if setting == "busy_timeout":
            key = (
                "lock_timeout_seconds" if self.lock_timeout_seconds else "statement_timeout_seconds"
            )
            return f"store.{key} = {getattr(self, key):g}"
        for name, key in _SERVER:
            if name == setting:
                return f"store.{key} = {getattr(self, key):g}"
        return setting


def bound(engine: Engine, limits: SessionLimits) -> None:
    """Apply ``limits`` to every connection ``engine`` opens from now on (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        return
    _BOUNDS[engine] = limits
    params = limits.connect_params()
    settings = limits.server_settings()

    @sa.event.listens_for(engine, "do_connect")
    def _params(_dialect: Any, _record: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        for key, value in params.items():
            kwargs.setdefault(key, value)  # a parameter given in store.url wins

    @sa.event.listens_for(engine, "connect", insert=True)
    def _session(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's recipe for session settings: outside a transaction, so
        # the pool's rollback on check-in does not undo them.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                for name, value in settings.items():
                    cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
        finally:
            dbapi_connection.autocommit = autocommit


def limits_of(engine: Engine) -> SessionLimits | None:
    """The bounds :func:`bound` applied to ``engine`` (None: none, or not PostgreSQL)."""
    return _BOUNDS.get(engine)
