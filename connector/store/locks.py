"""Job locks: a job runs on at most one replica (and in one thread) at a time.

Which lock depends on the state store, because the store is what replicas share:

- **PostgreSQL** (several replicas): a session advisory lock,
  ``pg_try_advisory_lock(<namespace>, hashtext(<schema>/<job key>))``
  (advisory locks are database-wide: the store's schema keeps two stores in
  one database, e.g. two deployments or parallel tests, apart), taken on a
  dedicated connection and held for the whole run. A replica that dies
  releases it with no action from anyone: its connection closes and the
  server drops the session's locks. While it is held the connection's
  ``application_name`` says which process holds it
  (``segsync[<pid>] <job key> @<host>``), so ``pg_stat_activity`` joined
  with ``pg_locks`` shows an operator who runs what.
- **SQLite file**: an exclusive ``flock`` on a file next to the database
  (``<db>.locks/<job key>.lock``). SQLite is one machine by nature; the
  file lock still keeps two ``segsync run`` processes on it (or a
  ``segsync run`` and a crashed one's successor) from running one job
  together, and the kernel releases it when a process dies.
- **SQLite in memory**: a plain in-process lock.

A try-lock never waits: a replica that finds a job held skips that tick.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.errors import StoreError
from connector.store.session import bound, limits_of

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; in-process locks only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("segsync.locks")

#: The first key of segsync's two-key advisory locks ("SEGS" in ASCII). The
#: two-key space does not overlap the one-key space of the store's migration lock.
ADVISORY_NAMESPACE = 0x53454753
#: The second key: the job key within the store's schema.
_LOCK_KEY = "hashtext(current_schema() || '/' || :key)"


class JobLocks(Protocol):
    """Try-locks by job key."""

    def hold(self, key: str) -> contextlib.AbstractContextManager[bool]:
        """A context that yields True while this process holds ``key``, False when it is taken."""
        ...

    def close(self) -> None:
        """Release everything still held."""
        ...


class LocalLocks:
    """In-process try-locks (one process, e.g. an in-memory SQLite store)."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[bool]:
        """Yield whether ``key`` was free (and is now held until the block ends)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()

    def close(self) -> None:
        """Nothing to release: the locks live and die with the process."""


class FileLocks:
    """``flock`` try-locks on files in one directory (processes on one machine)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        # flock conflicts between two open files of one process too, but a
        # thread lock in front keeps the file count at one per job.
        self._local = LocalLocks()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[bool]:
        """Yield whether ``key`` was free; the kernel releases it if the process dies."""
        with self._local.hold(key) as mine:
            if not mine:
                yield False
                return
            self._directory.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock"
            fd = os.open(self._directory / name, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Nothing to release: every lock is released when its block ends."""


def _holder_name(key: str) -> str:
    # PostgreSQL truncates application_name to 63 bytes.
    return f"segsync[{os.getpid()}] {key} @{socket.gethostname()}"[:63]


class AdvisoryLocks:
    """PostgreSQL session advisory try-locks, each on its own connection."""

    def __init__(self, engine: Engine) -> None:
        # A separate small engine: a lock's connection is busy for a whole run
        # and must not starve the store's pool. AUTOCOMMIT, so the connection
        # does not sit "idle in transaction" for the run's duration.
        locks = sa.create_engine(engine.url, pool_size=1, max_overflow=20, pool_pre_ping=True)
        # The store's bounds (connector/store/session.py): keepalives notice a
        # dead server on a connection that is idle for the whole run.
        limits = limits_of(engine)
        if limits is not None:
            bound(locks, limits)
        self._engine = locks.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[bool]:
        """Yield whether the lock on ``key`` was free; held on a dedicated connection."""
        conn = self._engine.connect()
        acquired = False
        try:
            acquired = bool(
                conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:ns, " + _LOCK_KEY + ")"),
                    {"ns": ADVISORY_NAMESPACE, "key": key},
                ).scalar()
            )
            if acquired:
                conn.execute(
                    sa.text("SELECT set_config('application_name', :name, false)"),
                    {"name": _holder_name(key)},
                )
            yield acquired
        finally:
            try:
                if acquired:
                    conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:ns, " + _LOCK_KEY + ")"),
                        {"ns": ADVISORY_NAMESPACE, "key": key},
                    )
                    conn.execute(sa.text("SELECT set_config('application_name', 'segsync', false)"))
            except (sa.exc.SQLAlchemyError, StoreError):
                # The connection broke: the server has already dropped the lock
                # with the session. Never hand a possibly-locked session back.
                log.warning("releasing the lock on %s failed; dropping its connection", key)
                conn.invalidate()
            finally:
                conn.close()

    def close(self) -> None:
        """Close the lock connections (which releases any lock still held)."""
        self._engine.dispose()


def locks_for(engine: Engine) -> JobLocks:
    """The job locks that fit the state store's database (see the module docstring)."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine)
    database = engine.url.database
    if (
        engine.dialect.name == "sqlite"
        and database not in (None, "", ":memory:")
        and fcntl is not None
    ):
        path = Path(str(database)).expanduser().resolve()
        return FileLocks(path.with_name(path.name + ".locks"))
    return LocalLocks()
