"""The state store: runs, watermarks, last-written values, the transition ledger, errors.

One :class:`Store` per process, shared by the jobs in it (SQLAlchemy's pool is
thread-safe). Every method is one transaction; :meth:`Store.record_batch` is
the one that matters for crash safety: after it returns, a batch's outcome
(written values, errors, ledger entries, hysteresis state) is durable, and a
watermark is advanced by a separate, later call
(:meth:`Store.advance_watermark`) only once every record before it is recorded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from connector.config import StoreSettings, check_store_url
from connector.errors import ConfigError, Problem, StoreError, StoreUnavailable, redact_url
from connector.state import Candidate, KnownPairs, Pending, Watermark, from_micros, micros
from connector.store.known import pack as pack_known
from connector.store.known import unpack as unpack_known
from connector.store.records import (
    RUN_STATUSES,
    ErrorRow,
    FailedRecord,
    LandedWrite,
    RunCounts,
    RunRow,
    RunStatus,
    Transition,
    TransitionRow,
    WriteIntent,
    WrittenRecord,
)
from connector.store.schema import (
    KEY,
    bulk_jobs,
    changed_parents,
    connector_cache,
    errors,
    owned_fields,
    record_state,
    runs,
    watermarks,
    write_intents,
)
from connector.store.schema import transitions as transitions_table
from connector.store.session import SessionLimits, bound

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_URL = "sqlite:///segsync.db"

# Ids per IN (...) list: well under SQLite's bound-parameter limit and small
# enough for PostgreSQL to plan quickly.
CHUNK = 500

# pg_advisory_xact_lock key taken while migrating, so replicas starting
# together do not race to create the same tables ("segsync" in ASCII).
_MIGRATION_LOCK_KEY = 0x7365677379_6E63

# Alembic keeps its migration context in module globals: one migration per
# process at a time.
_MIGRATE_LOCK = threading.Lock()
_IMMEDIATE = "segsync_sqlite_immediate"

_COUNT_COLUMNS = (
    "read",
    "changed",
    "written",
    "failed",
    "skipped",
    "overrides",
    "locked",
    "held",
    "changed_since_plan",
    "removed",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_POSTGRES_EXTRA = "pip install 'segsync[postgres]'"


def parse_url(url: str | URL) -> URL:
    """``url`` as an SQLAlchemy URL of a supported database; ``postgresql://`` means psycopg 3.

    Raises:
        ValueError: not a database URL, or not SQLite or PostgreSQL (see
            :func:`connector.config.check_store_url`); no password in the message.

    """
    if isinstance(url, str):
        check_store_url(url)
        try:
            parsed = make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            raise ValueError(
                f"{redact_url(url)!r} is not a database URL; use sqlite:///PATH "
                "or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
            ) from None
    else:
        parsed = url
        check_store_url(parsed.render_as_string(hide_password=True))
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def normalize_url(url: str | URL) -> URL:
    """The SQLAlchemy URL to use (see :func:`parse_url`); a bad one is a ConfigError."""
    try:
        return parse_url(url)
    except ValueError as exc:
        raise ConfigError([Problem("store.url", "", str(exc))]) from None


def _prepare_sqlite_file(url: URL) -> None:
    """Create the SQLite file's directory; say which path is not writable, and why."""
    database = url.database
    if database in (None, "", ":memory:") or str(database).startswith("file:"):
        return
    path = Path(str(database)).expanduser()
    where = f"store.url = {url.render_as_string(hide_password=True)!r}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError(
            f"the state store's directory {path.parent} is a file, not a directory; "
            f"choose another path in {where}"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot create the state store's directory {path.parent}: "
            f"{exc.strerror or exc}; choose a writable path in {where}"
        ) from None
    if path.is_dir():
        raise StoreError(f"the state store {path} is a directory; {where} must name a file")
    target = path if path.exists() else path.parent
    if not os.access(target, os.R_OK | os.W_OK):
        raise StoreError(
            f"permission denied: this user cannot write {target}; make it writable "
            f"or choose another path in {where}"
        )


def _open_hint(url: URL, reason: str) -> str:
    """What to do about a store that would not open, from the driver's reason."""
    lowered = reason.lower()
    if url.get_backend_name() == "sqlite":
        if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
            return (
                f"{url.database} is not a segsync state store or is damaged: restore it from "
                "a backup, or move it aside to start a new store (the next runs are then full)"
            )
        if "readonly" in lowered or "unable to open" in lowered or "disk i/o" in lowered:
            return f"check that this user can write {url.database} and its directory"
        return f"check {url.database}"
    if "password" in lowered or "authentication" in lowered or "role" in lowered:
        return "check the user and password in store.url (or SEGSYNC_STORE__URL)"
    if "does not exist" in lowered:
        return "create the database, or correct its name in store.url"
    return (
        "check that PostgreSQL is running and reachable from here, and the host, "
        "port and database in store.url (or SEGSYNC_STORE__URL)"
    )


#: SQLSTATEs of failures a retry may fix: the statement was cancelled and its
#: transaction rolled back (a timeout, a deadlock, a serialization failure), or
#: the session ended (the server shut it down, or is starting). Class 08
#: (connection exceptions) too.
TRANSIENT_SQLSTATES = {
    "57014": "statement_timeout",  # query_canceled: statement_timeout (or a cancel)
    "55P03": "lock_timeout",  # lock_not_available
    "25P03": "idle_in_transaction_session_timeout",
    "40001": "",  # serialization_failure
    "40P01": "",  # deadlock_detected
    "57P01": "",  # admin_shutdown (pg_terminate_backend, a restart)
    "57P02": "",  # crash_shutdown
    "57P03": "",  # cannot_connect_now (starting up)
    "53300": "",  # too_many_connections
}


#: SQLite's primary result codes of a lock another connection held past the
#: busy timeout: SQLITE_BUSY ("database is locked"; also its extended codes,
#: e.g. SQLITE_BUSY_SNAPSHOT: a read transaction that may not become a write
#: one because another connection wrote since) and SQLITE_LOCKED (a conflict
#: inside one shared cache). The transaction is rolled back; tried again, it
#: starts afresh.
SQLITE_BUSY_CODES = frozenset({5, 6})

_SQLITE_HINT = (
    "; another connection holds the SQLite file's write lock (another segsync "
    "process on the same file, or a shell or tool inside a transaction)"
)


#: What libpq says when the server does not answer the connection at all: not
#: listening (yet: a service started before its database, a restart) or not
#: answering within ``connect_timeout_seconds``. A name that does not resolve,
#: a refused login or a missing database are not among them: tried again they
#: fail again.
UNREACHABLE = ("connection refused", "timeout expired")


def _unreachable(origin: BaseException | None) -> bool:
    """Whether ``origin`` is a PostgreSQL server that did not answer the connection (for now)."""
    text = str(origin).lower() if origin is not None else ""
    return any(marker in text for marker in UNREACHABLE)


def _sqlite_busy(origin: BaseException | None) -> bool:
    """Whether ``origin`` is SQLite's answer to a lock held past the busy timeout."""
    code = getattr(origin, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in SQLITE_BUSY_CODES


def _transient_text(where: str, reason: str, sqlstate: str | None, limits: SessionLimits) -> str:
    """What a transient store failure says: what happened, which bound, what follows.

    ``sqlstate`` ``"sqlite-busy"``: SQLite's file lock held past its busy timeout;
    ``"unreachable"``: a PostgreSQL server that did not answer the connection.
    """
    detail = _transient_detail(reason, sqlstate, limits)
    return f"the state store at {where} failed for now: {detail}; the step is retried"


def _transient_detail(reason: str, sqlstate: str | None, limits: SessionLimits) -> str:
    """The driver's reason, the bound that cut it short (its ``[store]`` key) and a hint."""
    setting = TRANSIENT_SQLSTATES.get(sqlstate or "", "")
    if sqlstate == "sqlite-busy":
        setting = "busy_timeout"
    why = f" ({limits.describe(setting)})" if setting else ""
    hint = _SQLITE_HINT if sqlstate == "sqlite-busy" else ""
    if sqlstate == "unreachable":
        if "timeout" in reason.lower():
            why = f" (store.connect_timeout_seconds = {limits.connect_timeout_seconds:g})"
        hint = (
            "; check that PostgreSQL is running and reachable from here, and the host and "
            "port in store.url (or SEGSYNC_STORE__URL)"
        )
    if sqlstate in ("57014", "55P03"):
        hint = (
            "; another session may hold a lock it needs (pg_locks and pg_stat_activity show which)"
        )
    return f"{reason}{why}{hint}"


def _unopened_text(where: str, exc: StoreUnavailable, limits: SessionLimits) -> str:
    """What a store that did not open for now says: which store, what held it, which setting."""
    origin = exc.__cause__
    sqlstate = getattr(origin, "sqlstate", None)
    if _sqlite_busy(origin):
        sqlstate = "sqlite-busy"
    elif sqlstate is None and _unreachable(origin):
        sqlstate = "unreachable"
    detail = str(exc) if origin is None else _transient_detail(_reason(origin), sqlstate, limits)
    return f"cannot open the state store at {where} for now: {detail}"


def _store_failures(engine: Engine, limits: SessionLimits) -> None:
    """Turn the database's own failures (unreachable, locked, read-only, damaged) into StoreError.

    Those a retry may fix (a statement or lock timeout, a deadlock, a lost
    connection: :data:`TRANSIENT_SQLSTATES`; SQLite's file lock held past its
    busy timeout: :data:`SQLITE_BUSY_CODES`; a PostgreSQL server that does not
    answer the connection: :data:`UNREACHABLE`) become :class:`StoreUnavailable`.
    Otherwise only ``OperationalError``, the DBAPI's class for trouble outside
    the program; anything else (an integrity or programming error) is a bug and
    keeps its traceback.
    """
    where = engine.url.render_as_string(hide_password=True)

    @sa.event.listens_for(engine, "handle_error")
    def _translate(context: sa.engine.ExceptionContext) -> None:
        if context.is_pre_ping:
            return  # the pool's check of an idle session: a dead one is replaced
        error = context.sqlalchemy_exception
        origin = context.original_exception
        sqlstate = getattr(origin, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")
        ):
            transient = True
        elif _sqlite_busy(origin):
            transient, sqlstate = True, "sqlite-busy"
        elif engine.dialect.name == "postgresql" and _unreachable(origin):
            transient, sqlstate = True, "unreachable"
        else:
            transient = bool(context.is_disconnect) and engine.dialect.name == "postgresql"
        if transient:
            reason = _reason(origin)
            raise StoreUnavailable(_transient_text(where, reason, sqlstate, limits)) from origin
        if not isinstance(error, sa.exc.OperationalError):
            return
        reason = _reason(error.orig or error)
        raise StoreError(
            f"the state store at {where} failed: {reason}; {_open_hint(engine.url, reason)}"
        ) from error.orig


def _reason(error: BaseException) -> str:
    """The driver's message, first line only, without any password."""
    text = str(error).strip().splitlines()
    return redact_url(text[0].strip() if text else type(error).__name__)


def _sqlite_events(engine: Engine, limits: SessionLimits) -> None:
    """Make SQLite behave: real transactions (also for DDL), foreign keys, waiting on locks.

    pysqlite's own transaction handling starts transactions lazily and commits
    DDL implicitly; SQLAlchemy's documented recipe hands the BEGIN to SQLAlchemy.
    A statement waits for another connection's lock up to ``limits``' busy
    timeout (:meth:`SessionLimits.sqlite_busy_ms`), then fails for now.
    """
    busy_ms = limits.sqlite_busy_ms()

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms:d}")
        if engine.url.database not in (None, "", ":memory:"):
            # Readers (segsync status) never block the writer, nor it them.
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front (waiting up to busy_timeout),
        # where a deferred transaction that read first could not upgrade later.
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config() -> Config:
    """The Alembic configuration of the store's migrations, built in code."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def _pending_json(pending: Pending) -> dict[str, Any]:
    return {
        name: {"value": c.value, "count": c.count, "first_seen": c.first_seen}
        for name, c in pending.candidates.items()
    }


def _pending_from_json(raw: Mapping[str, Any]) -> Pending:
    return Pending(
        {name: Candidate(c["value"], int(c["count"]), c["first_seen"]) for name, c in raw.items()}
    )


def _known(pairs: list[list[Any]] | None, packed: bytes | None) -> KnownPairs:
    """A watermark's known pairs: the JSON column's (other ids) and the packed (numeric ids)."""
    listed = [(str(i), stamp) for i, stamp in pairs or ()]
    if packed is None:
        return KnownPairs.of(listed)  # written before 0015: every pair in the JSON column
    return unpack_known(packed, {i: micros(stamp) for i, stamp in listed})


def _run_row(row: sa.Row[Any]) -> RunRow:
    return RunRow(
        id=int(row.id),
        connection=row.connection,
        crm=row.crm,
        object=row.object,
        mapping_version=row.mapping_version,
        full=bool(row.full),
        started_at=row.started_at,
        finished_at=row.finished_at,
        status=row.status,
        counts=RunCounts(**{name: int(getattr(row, name)) for name in _COUNT_COLUMNS}),
        api_calls=int(row.api_calls),
        api_calls_minimum=int(row.api_calls_minimum),
        api_calls_read_floor=int(row.api_calls_read_floor),
        message=row.message,
    )


def _resolve_errors(conn: Connection, connection: str, object: str, ids: Sequence[str]) -> None:
    """Close the open errors of ``ids`` (written, adopted or dropped), in ``conn``'s transaction."""
    for chunk in _chunks(list(ids)):
        conn.execute(
            sa.update(errors)
            .where(
                errors.c.connection == connection,
                errors.c.object == object,
                errors.c.record_id.in_(chunk),
                errors.c.resolved.is_(False),
            )
            .values(resolved=True)
        )


class Store:
    """The state store on one database (see the module docstring).

    Build it with :meth:`open`; ``clock`` is the time source for every stamp
    the store sets (a seam for tests).
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _now) -> None:
        self._engine = engine
        self._clock = clock

    # -- lifecycle -------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str | URL = DEFAULT_URL,
        *,
        clock: Callable[[], datetime] = _now,
        migrate: bool = True,
        limits: SessionLimits | None = None,
        **engine_options: Any,
    ) -> Store:
        """Connect to ``url`` and bring the schema up to date.

        Args:
            url: an SQLAlchemy URL: ``sqlite:///segsync.db`` (the default; the
                directory is created if needed) or ``postgresql+psycopg://…``
                (``postgresql://`` also means psycopg 3).
            clock: returns the current time (aware) for the stamps the store sets.
            migrate: run pending migrations (a no-op at head); with ``False``
                the schema is trusted as it is.
            limits: the bounds of each PostgreSQL session, and SQLite's busy
                timeout (connector/store/session.py); default: the defaults of ``[store]``.
            **engine_options: passed to :func:`sqlalchemy.create_engine`.

        Raises:
            StoreUnavailable: the migration failed for now (SQLite's file lock
                held past its busy timeout, a PostgreSQL timeout or lost
                connection): nothing was migrated, opening again may succeed
                (:func:`connector.sync.steps.open_store` does, under the retry policy).
            StoreError: the database cannot be reached or migrated.

        """
        parsed = normalize_url(url)
        if parsed.get_backend_name() == "sqlite":
            _prepare_sqlite_file(parsed)
        if parsed.get_backend_name() == "postgresql":
            # A pooled session the server ended (a restart, a failover) is
            # replaced before use, not met by the next statement as an error.
            engine_options.setdefault("pool_pre_ping", True)
        try:
            engine = sa.create_engine(parsed, **engine_options)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            if parsed.get_backend_name() == "postgresql":
                raise StoreError(
                    "the state store is PostgreSQL but its driver (psycopg) is not installed: "
                    f"{_POSTGRES_EXTRA}"
                ) from None
            raise StoreError(f"the state store's database driver is missing: {exc}") from None
        limits = limits if limits is not None else SessionLimits.of()
        if engine.dialect.name == "sqlite":
            _sqlite_events(engine, limits)
        bound(engine, limits)
        _store_failures(engine, limits)
        store = cls(engine, clock=clock)
        if migrate:
            try:
                store.upgrade()
            except StoreUnavailable as exc:
                # Locked or cut off for now: the migration's one transaction
                # was rolled back, so opening again starts afresh (open_store
                # in connector/sync/steps.py does, under the retry policy).
                engine.dispose()
                raise StoreUnavailable(_unopened_text(store.url, exc, limits)) from exc.__cause__
            except (StoreError, sa.exc.SQLAlchemyError) as exc:
                engine.dispose()
                origin = getattr(exc, "orig", None) or exc.__cause__ or exc
                reason = _reason(origin)
                raise StoreError(
                    f"cannot open the state store at {store.url}: {reason}; "
                    f"{_open_hint(parsed, reason)}"
                ) from None
        return store

    @classmethod
    def from_settings(cls, settings: StoreSettings, **options: Any) -> Store:
        """:meth:`open` the store ``[store]`` names, with its bounds; ``options`` as for open."""
        return cls.open(settings.url, limits=SessionLimits.of(settings), **options)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for the service's advisory locks and for tests)."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def revision(self) -> str | None:
        """The schema revision the database is at (``None``: empty)."""
        with self._engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head() -> str | None:
        """The newest schema revision this version of segsync knows."""
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    def upgrade(self) -> None:
        """Run the migrations up to :meth:`head`, in one transaction; a no-op when there."""
        config = alembic_config()
        head = ScriptDirectory.from_config(config).get_current_head()
        # Processes opening one database together serialize on a database
        # lock (PostgreSQL advisory lock, SQLite write lock); the first
        # migrates, the others then find it at head.
        with (
            _MIGRATE_LOCK,
            self._engine.connect().execution_options(**{_IMMEDIATE: True}) as conn,
            conn.begin(),
        ):
            if conn.dialect.name == "postgresql":
                # A migration may rewrite a large table, and waits for another
                # process's: unbounded, for this transaction only.
                conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
                conn.execute(sa.text("SET LOCAL lock_timeout = 0"))
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    # -- runs ------------------------------------------------------------

    def start_run(
        self,
        connection: str,
        crm: str,
        object: str,
        mapping_version: str,
        *,
        full: bool,
        claimed: bool = False,
    ) -> int:
        """Record a run as started and return its id.

        ``claimed``: the caller holds the job's claim (its lock and lease,
        :mod:`connector.store.leases`). Then a run of the same connection and
        object still marked ``running`` cannot be live: its process either
        died (which freed the lock) or lost its lease to us (and writes
        nothing more), so it is marked ``interrupted``. Without the claim
        nothing else is touched: that row may be another process's live run.
        """
        now = self._clock()
        with self._engine.begin() as conn:
            if claimed:
                self._interrupt_running(conn, connection, object, now)
            result = conn.execute(
                sa.insert(runs).values(
                    connection=connection,
                    crm=crm,
                    object=object,
                    mapping_version=mapping_version,
                    full=full,
                    started_at=now,
                    status="running",
                )
            )
            key = result.inserted_primary_key
            if key is None:
                raise StoreError("the database returned no id for the new run")
            return int(key[0])

    @staticmethod
    def _interrupt_running(conn: Connection, connection: str, object: str, now: datetime) -> None:
        conn.execute(
            sa.update(runs)
            .where(
                runs.c.connection == connection,
                runs.c.object == object,
                runs.c.status == "running",
            )
            .values(
                status="interrupted",
                finished_at=now,
                message="the process stopped before the run finished",
            )
        )

    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        counts: RunCounts,
        api_calls: int,
        api_calls_minimum: int,
        message: str | None = None,
        api_calls_read_floor: int | None = None,
    ) -> None:
        """Record a run's end: its status, counts and API calls (used, and the minimum needed).

        ``api_calls_minimum`` is the floor for what changed in the CRM since
        the last run; ``api_calls_read_floor`` the floor for what the run read
        (re-reads included; the minimum when not given).
        """
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"not a final run status: {status!r}")
        values: dict[str, Any] = {name: getattr(counts, name) for name in _COUNT_COLUMNS}
        with self._engine.begin() as conn:
            result = conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id)
                .values(
                    status=status,
                    finished_at=self._clock(),
                    api_calls=api_calls,
                    api_calls_minimum=api_calls_minimum,
                    api_calls_read_floor=api_calls_minimum
                    if api_calls_read_floor is None
                    else api_calls_read_floor,
                    message=message,
                    **values,
                )
            )
            if result.rowcount != 1:
                raise StoreError(f"no run with id {run_id}")

    def run(self, run_id: int) -> RunRow | None:
        """One run by id."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        return None if row is None else _run_row(row)

    def runs(
        self,
        limit: int = 20,
        *,
        connection: str | None = None,
        object: str | None = None,
        mapping_version: str | None = None,
    ) -> list[RunRow]:
        """The latest runs, newest first; optionally of one connection, object, mapping version."""
        query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        if mapping_version is not None:
            query = query.where(runs.c.mapping_version == mapping_version)
        if connection is not None:
            query = query.where(runs.c.connection == connection)
        if object is not None:
            query = query.where(runs.c.object == object)
        with self._engine.connect() as conn:
            return [_run_row(row) for row in conn.execute(query)]

    def last_success(self, connection: str, object: str) -> datetime | None:
        """When the last completed run of a connection and object finished.

        Completed means ``succeeded`` or ``partial``: the cycle went through,
        and any failed record is an open error that the next run retries.
        """
        query = sa.select(sa.func.max(runs.c.finished_at)).where(
            runs.c.connection == connection,
            runs.c.object == object,
            runs.c.status.in_(("succeeded", "partial")),
        )
        with self._engine.connect() as conn:
            value: datetime | None = conn.execute(query).scalar()
        return value

    def last_full_run(self, connection: str, object: str) -> RunRow | None:
        """The last completed full run (its ``counts.read`` feeds the mass-change guard)."""
        query = (
            sa.select(runs)
            .where(
                runs.c.connection == connection,
                runs.c.object == object,
                runs.c.full.is_(True),
                runs.c.status.in_(("succeeded", "partial")),
            )
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _run_row(row)

    # -- watermarks ------------------------------------------------------

    def watermark(self, connection: str, object: str) -> Watermark | None:
        """Where the next incremental pull of a connection and object starts."""
        query = sa.select(watermarks).where(
            watermarks.c.connection == connection, watermarks.c.object == object
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Watermark(
            row.stamp,
            frozenset(row.boundary_ids),
            row.mapping_version,
            _known(row.known, row.known_packed),
            pull_start=row.pull_start,
        )

    def advance_watermark(self, connection: str, object: str, watermark: Watermark) -> None:
        """Store a new watermark; call it only once every record up to it is recorded."""
        row = {
            "connection": connection,
            "object": object,
            "stamp": watermark.stamp,
            "boundary_ids": sorted(watermark.boundary_ids),
            "mapping_version": watermark.mapping_version,
            "updated_at": self._clock(),
            "known": [[i, from_micros(at)] for i, at in watermark.known.other.items()] or None,
            "known_packed": pack_known(watermark.known),
            "pull_start": watermark.pull_start,
        }
        with self._engine.begin() as conn:
            self._upsert(
                conn,
                watermarks,
                [row],
                (
                    "stamp",
                    "boundary_ids",
                    "mapping_version",
                    "updated_at",
                    "known",
                    "known_packed",
                    "pull_start",
                ),
            )

    def reset_watermark(self, connection: str, object: str) -> None:
        """Forget the watermark, so the next pull is full."""
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(watermarks).where(
                    watermarks.c.connection == connection, watermarks.c.object == object
                )
            )

    # -- record state ----------------------------------------------------

    def _column_by_id(
        self, connection: str, object: str, ids: Sequence[str], column: sa.Column[Any]
    ) -> dict[str, Any]:
        """Record id → ``column``'s value, for those of ``ids`` where it is not null.

        Nulls are left out here, not in the query: with ``column IS NOT NULL``
        in it, SQLite chose the ``due_at`` index over the primary key and read
        every record with a due date for each page (2.5 s a page of 200 at
        100,000 records on a loaded machine, against 4 ms by key).
        """
        found: dict[str, Any] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                query = sa.select(record_state.c.record_id, column).where(
                    record_state.c.connection == connection,
                    record_state.c.object == object,
                    record_state.c.record_id.in_(chunk),
                )
                for record_id, value in conn.execute(query):
                    if value is not None:
                        found[str(record_id)] = value
        return found

    def last_written(
        self, connection: str, object: str, ids: Sequence[str]
    ) -> dict[str, Mapping[str, Any]]:
        """Record id → the values last written, for those of ``ids`` ever written."""
        return self._column_by_id(connection, object, ids, record_state.c.last_written)

    def echo_stamps(self, connection: str, object: str, ids: Sequence[str]) -> dict[str, datetime]:
        """Record id → the stamp segsync's own last write gave it, for those of ``ids`` known."""
        return self._column_by_id(connection, object, ids, record_state.c.echo_stamp)

    def pending(self, connection: str, object: str, ids: Sequence[str]) -> dict[str, Pending]:
        """Record id → hysteresis state, for those of ``ids`` that have one."""
        found: dict[str, Pending] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                query = sa.select(record_state.c.record_id, record_state.c.pending).where(
                    record_state.c.connection == connection,
                    record_state.c.object == object,
                    record_state.c.record_id.in_(chunk),
                    record_state.c.pending_since.is_not(None),
                )
                for row in conn.execute(query):
                    if row.pending:
                        found[str(row.record_id)] = _pending_from_json(row.pending)
        return found

    def pending_ids(self, connection: str, object: str) -> list[str]:
        """Ids of records waiting out hysteresis: re-plan them even when unmodified."""
        query = (
            sa.select(record_state.c.record_id)
            .where(
                record_state.c.connection == connection,
                record_state.c.object == object,
                record_state.c.pending_since.is_not(None),
            )
            .order_by(record_state.c.record_id)
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def due(self, connection: str, object: str, ids: Sequence[str]) -> dict[str, datetime]:
        """Record id → its stored ``due_at``, for those of ``ids`` that have one."""
        return self._column_by_id(connection, object, ids, record_state.c.due_at)

    def due_ids(self, connection: str, object: str, now: datetime) -> list[str]:
        """Ids of records whose ``due_at`` is at or before ``now``: time has changed them."""
        query = (
            sa.select(record_state.c.record_id)
            .where(
                record_state.c.connection == connection,
                record_state.c.object == object,
                record_state.c.due_at <= now,
            )
            .order_by(record_state.c.due_at, record_state.c.record_id)
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def changed_parents(self, connection: str, object: str) -> list[tuple[str, int]]:
        """(parent id, marking run) of the ``object`` records whose inherited values changed.

        A child run re-plans the children of these parents, then hands the
        same pairs to :meth:`clear_changed_parents`.
        """
        query = (
            sa.select(changed_parents.c.record_id, changed_parents.c.run_id)
            .where(changed_parents.c.connection == connection, changed_parents.c.object == object)
            .order_by(changed_parents.c.record_id)
        )
        with self._engine.connect() as conn:
            return [(str(row.record_id), int(row.run_id)) for row in conn.execute(query)]

    def clear_changed_parents(
        self, connection: str, object: str, marks: Sequence[tuple[str, int]]
    ) -> None:
        """Forget the marks a child run read, once its outcomes are recorded.

        Only the exact (parent, run) pairs go: a parent marked again by a later
        run since they were read keeps its mark for the next child run.
        """
        pairs = list(dict.fromkeys(marks))
        with self._engine.begin() as conn:
            for start in range(0, len(pairs), CHUNK):
                conn.execute(
                    sa.delete(changed_parents).where(
                        changed_parents.c.connection == connection,
                        changed_parents.c.object == object,
                        sa.tuple_(changed_parents.c.record_id, changed_parents.c.run_id).in_(
                            pairs[start : start + CHUNK]
                        ),
                    )
                )

    def record_count(self, connection: str, object: str) -> int:
        """How many records of a connection and object the connector has ever written."""
        query = sa.select(sa.func.count()).where(
            record_state.c.connection == connection,
            record_state.c.object == object,
            record_state.c.last_written.is_not(None),
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def record_batch(
        self,
        run_id: int,
        connection: str,
        object: str,
        written: Sequence[WrittenRecord] = (),
        failed: Sequence[FailedRecord] = (),
        transitions: Sequence[Transition] = (),
        pending: Mapping[str, Pending | None] | None = None,
        due: Mapping[str, datetime | None] | None = None,
        changed: Sequence[str] = (),
        settled: Sequence[str] = (),
        ledger_by_intent: bool = False,
    ) -> None:
        """Record a batch's outcome in ONE transaction: all of it is durable, or none.

        Args:
            run_id: the run the batch belongs to.
            connection: the connection name.
            object: the object (``account`` / ``contact``).
            written: records written successfully; their values replace the
                last-written values, and their open errors are resolved.
            failed: records whose write failed: opened as errors, or their
                attempts counted up.
            transitions: ledger entries of the written records.
            pending: record id → new hysteresis state (``None`` clears it), for
                records whose state changed (``Plan.pending``).
            due: record id → new ``due_at`` (``None`` clears it), for records
                whose due date changed; recorded with the outcome it follows
                from, so a crash never loses a re-plan that time asked for.
            changed: ids of records of ``object`` whose values their children
                inherit changed in this batch (see :meth:`changed_parents`).
            settled: ids whose write intents (:meth:`record_intents`) this
                outcome settles: removed in the same transaction.
            ledger_by_intent: record a transition only while its record's write
                intent is still there (locked until the transaction ends). A
                landed write gets its ledger rows from whoever settles its
                intent first: a run that lost its job and resumes, its
                successor adopting the same write, a retry whose first try
                committed unheard; never from two of them.

        """
        now = self._clock()
        # One row per record: a repeated key would fail an upsert on PostgreSQL.
        by_written = {w.record_id: w for w in written}
        by_failed = {f.record_id: f for f in failed}
        scope = {"connection": connection, "object": object}
        with self._engine.begin() as conn:
            if by_written:
                rows = [
                    {
                        **scope,
                        "record_id": record_id,
                        "last_written": dict(w.values),
                        "written_at": now,
                        "run_id": run_id,
                        "echo_stamp": w.stamp,
                    }
                    for record_id, w in by_written.items()
                ]
                self._upsert(
                    conn,
                    record_state,
                    rows,
                    ("last_written", "written_at", "run_id", "echo_stamp"),
                )
                _resolve_errors(conn, connection, object, list(by_written))
            if pending:
                rows = [
                    {
                        **scope,
                        "record_id": record_id,
                        "pending": None if state is None else _pending_json(state),
                        "pending_since": None
                        if state is None or not state.candidates
                        else min(c.first_seen for c in state.candidates.values()),
                    }
                    for record_id, state in pending.items()
                ]
                self._upsert(conn, record_state, rows, ("pending", "pending_since"))
            if due:
                rows = [
                    {**scope, "record_id": record_id, "due_at": moment}
                    for record_id, moment in due.items()
                ]
                self._upsert(conn, record_state, rows, ("due_at",))
            if changed:
                rows = [
                    {**scope, "record_id": record_id, "run_id": run_id, "marked_at": now}
                    for record_id in dict.fromkeys(changed)
                ]
                self._upsert(conn, changed_parents, rows, ("run_id", "marked_at"))
            if by_failed:
                self._record_failures(conn, run_id, scope, by_failed, now)
            if transitions and ledger_by_intent:
                held = self._held_intents(conn, scope, [t.record_id for t in transitions])
                transitions = [t for t in transitions if t.record_id in held]
            if transitions:
                conn.execute(
                    sa.insert(transitions_table),
                    [
                        {
                            **scope,
                            "record_id": t.record_id,
                            "field": t.field,
                            "from_value": t.from_value,
                            "to_value": t.to_value,
                            "reason": t.reason,
                            "mapping_version": t.mapping_version,
                            "run_id": t.run_id if t.run_id is not None else run_id,
                            "at": now,
                        }
                        for t in transitions
                    ],
                )

            for chunk in _chunks(list(dict.fromkeys(settled))):
                conn.execute(
                    sa.delete(write_intents).where(
                        write_intents.c.connection == connection,
                        write_intents.c.object == object,
                        write_intents.c.record_id.in_(chunk),
                    )
                )

    @staticmethod
    def _held_intents(conn: Connection, scope: Mapping[str, str], ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` with a write intent, locked (PostgreSQL) until the transaction ends.

        Another transaction settling the same intents waits here for this one,
        then finds them gone: read committed reads the latest commit.
        """
        held: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(ids))):
            query = (
                sa.select(write_intents.c.record_id)
                .where(
                    write_intents.c.connection == scope["connection"],
                    write_intents.c.object == scope["object"],
                    write_intents.c.record_id.in_(chunk),
                )
                .with_for_update()
            )
            found: Sequence[Any] = conn.execute(query).scalars().all()
            held.update(str(record) for record in found)
        return held

    # -- write intents: what a chunk is about to write, before it is sent ----
    def record_intents(self, connection: str, object: str, intents: Sequence[WriteIntent]) -> None:
        """Record the writes about to be sent, in one transaction (newer replaces older).

        One intent per record (connection, object, record id). Replacing an
        older one loses nothing the ledger needs, because of who can hold one:

        - *The same run*: a try of this step after one whose commit landed
          unheard writes the same rows again.
        - *A crashed run* (its intent left behind, no run alive to settle it):
          the next run re-reads the record while it plans. When the CRM holds
          exactly what the intent wrote (every field it sent), the write was
          segsync's: before the record is planned it is adopted
          (:meth:`adopt_landed`: its values become the last written, its
          ledger rows are recorded under the crashed run, the intent is
          removed), whatever the plan now wants, so nothing is left here to
          replace. When the CRM holds something else, a person (or a later
          change) moved it: the usual rules apply (an edit of an output is an
          override), and the intent is cleared at the run's end.
        - *Another live run of the job*: one holder per job (the lease and its
          token, ``connector/store/leases.py``), fenced right before each
          chunk's intents are recorded, so two live runs meet here only inside
          the window fencing cannot close: a holder that passed its fence and
          stopped past its lease before this call (a resumed run and the run
          that took its job over). Both runs' CRM writes then land, and no
          store order can tell which landed last. The ledger still records the
          change once: :meth:`record_batch` (``ledger_by_intent``) looks only
          at whether an intent is there, not whose it is, and the first batch
          to settle it records its rows while the other records none. Keeping
          the older intent instead would change nothing of that; the content
          only matters to the adoption above, which records rows only when the
          CRM holds exactly the intent's new values. The window (one chunk)
          is the lease's documented limit.
        """
        if not intents:
            return
        now = self._clock()
        rows = [
            {
                "connection": connection,
                "object": object,
                "record_id": i.record_id,
                "run_id": i.run_id,
                "changes": [list(change) for change in i.changes],
                "reason": i.reason,
                "mapping_version": i.mapping_version,
                "recorded_at": now,
                "written": None if i.written is None else dict(i.written),
            }
            for i in {i.record_id: i for i in intents}.values()
        ]
        with self._engine.begin() as conn:
            self._upsert(
                conn,
                write_intents,
                rows,
                ("run_id", "changes", "reason", "mapping_version", "recorded_at", "written"),
            )

    def intent_ids(self, connection: str, object: str) -> list[str]:
        """Ids of records with a write intent left behind (a process died with it in flight)."""
        query = (
            sa.select(write_intents.c.record_id)
            .where(write_intents.c.connection == connection, write_intents.c.object == object)
            .order_by(write_intents.c.record_id)
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def intents(self, connection: str, object: str, ids: Sequence[str]) -> dict[str, WriteIntent]:
        """The write intents of ``ids`` that are recorded, by record id."""
        out: dict[str, WriteIntent] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                query = sa.select(write_intents).where(
                    write_intents.c.connection == connection,
                    write_intents.c.object == object,
                    write_intents.c.record_id.in_(chunk),
                )
                for row in conn.execute(query):
                    out[row.record_id] = WriteIntent(
                        row.record_id,
                        int(row.run_id),
                        tuple((str(f), old, new) for f, old, new in row.changes),
                        row.reason,
                        row.mapping_version,
                        row.written,
                    )
        return out

    def adopt_landed(
        self,
        run_id: int,
        connection: str,
        object: str,
        landed: Sequence[LandedWrite],
        changed: Sequence[str] = (),
    ) -> list[str]:
        """Take dead runs' landed writes as segsync's, in ONE transaction; the ids adopted.

        For each write whose intent is still the one the caller read (same
        run; locked until the transaction ends, as :meth:`record_batch` does):
        its values become the record's last written (under the run that wrote
        them; no echo stamp, the CRM's answer to that write was never heard),
        its open errors are resolved, its ledger rows are recorded under the
        run that wrote them, those of its ids in ``changed`` (a value their
        children inherit moved) are marked for their children to be planned
        again (under ``run_id``, the run adopting it: see
        :meth:`changed_parents`), and the intent is removed. An intent already gone
        (settled by another run adopting the same write) or replaced by a
        newer one (a live run's write in flight) is left alone, and nothing of
        its write is recorded: the ledger gets a landed write's rows once,
        whichever run settles the intent first.
        """
        if not landed:
            return []
        now = self._clock()
        scope = {"connection": connection, "object": object}
        wanted = {w.intent.record_id: w for w in landed}
        with self._engine.begin() as conn:
            held: dict[str, int] = {}
            for chunk in _chunks(list(wanted)):
                query = (
                    sa.select(write_intents.c.record_id, write_intents.c.run_id)
                    .where(
                        write_intents.c.connection == connection,
                        write_intents.c.object == object,
                        write_intents.c.record_id.in_(chunk),
                    )
                    .with_for_update()
                )
                held.update((str(r.record_id), int(r.run_id)) for r in conn.execute(query))
            adopted = [w for i, w in wanted.items() if held.get(i) == w.intent.run_id]
            if not adopted:
                return []
            ids = [w.intent.record_id for w in adopted]
            self._upsert(
                conn,
                record_state,
                [
                    {
                        **scope,
                        "record_id": w.intent.record_id,
                        "last_written": dict(w.values),
                        "written_at": now,
                        "run_id": w.intent.run_id,
                        "echo_stamp": None,
                    }
                    for w in adopted
                ],
                ("last_written", "written_at", "run_id", "echo_stamp"),
            )
            rows = [
                {
                    **scope,
                    "record_id": w.intent.record_id,
                    "field": field,
                    "from_value": old,
                    "to_value": new,
                    "reason": w.intent.reason,
                    "mapping_version": w.intent.mapping_version,
                    "run_id": w.intent.run_id,
                    "at": now,
                }
                for w in adopted
                for field, old, new in w.intent.changes
            ]
            if rows:
                conn.execute(sa.insert(transitions_table), rows)
            adopted_ids = set(ids)
            marked = [i for i in dict.fromkeys(changed) if i in adopted_ids]
            if marked:
                self._upsert(
                    conn,
                    changed_parents,
                    [
                        {**scope, "record_id": record_id, "run_id": run_id, "marked_at": now}
                        for record_id in marked
                    ],
                    ("run_id", "marked_at"),
                )
            _resolve_errors(conn, connection, object, ids)
            for w in adopted:
                conn.execute(
                    sa.delete(write_intents).where(
                        write_intents.c.connection == connection,
                        write_intents.c.object == object,
                        write_intents.c.record_id == w.intent.record_id,
                        write_intents.c.run_id == w.intent.run_id,
                    )
                )
        return ids

    def clear_intents(
        self, connection: str, object: str, ids: Sequence[str], *, before_run: int
    ) -> None:
        """Forget the intents of ``ids`` recorded by runs before ``before_run`` (re-planned now)."""
        with self._engine.begin() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                conn.execute(
                    sa.delete(write_intents).where(
                        write_intents.c.connection == connection,
                        write_intents.c.object == object,
                        write_intents.c.record_id.in_(chunk),
                        write_intents.c.run_id < before_run,
                    )
                )

    # -- bulk write jobs: noted before each step, resumed after a crash ------
    def note_job(
        self,
        connection: str,
        object: str,
        run_id: int,
        marker: str,
        job_id: str | None,
        step: str,
        since: datetime,
    ) -> None:
        """Record (or move on) a bulk job's note; committed when this returns."""
        row = {
            "connection": connection,
            "object": object,
            "marker": marker,
            "job_id": job_id,
            "step": step,
            "since": since,
            "run_id": run_id,
            "updated_at": self._clock(),
        }
        with self._engine.begin() as conn:
            self._upsert(
                conn, bulk_jobs, [row], ("job_id", "step", "since", "run_id", "updated_at")
            )

    def job_done(self, connection: str, object: str, marker: str) -> None:
        """Forget a bulk job that has ended."""
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(bulk_jobs).where(
                    bulk_jobs.c.connection == connection,
                    bulk_jobs.c.object == object,
                    bulk_jobs.c.marker == marker,
                )
            )

    def job_notes(
        self, connection: str, object: str
    ) -> list[tuple[str, str | None, str, datetime]]:
        """The bulk jobs noted and not done: (marker, job id, step, since), oldest first."""
        query = (
            sa.select(bulk_jobs.c.marker, bulk_jobs.c.job_id, bulk_jobs.c.step, bulk_jobs.c.since)
            .where(bulk_jobs.c.connection == connection, bulk_jobs.c.object == object)
            .order_by(bulk_jobs.c.since, bulk_jobs.c.marker)
        )
        with self._engine.connect() as conn:
            return [(r.marker, r.job_id, r.step, r.since) for r in conn.execute(query)]

    def _record_failures(
        self,
        conn: Connection,
        run_id: int,
        scope: Mapping[str, str],
        failed: Mapping[str, FailedRecord],
        now: datetime,
    ) -> None:
        rows = [
            {
                **scope,
                "record_id": record_id,
                "code": f.code[:KEY],
                "message": f.message,
                "attempts": 1,
                "first_seen": now,
                "last_seen": now,
                "resolved": False,
                "run_id": run_id,
            }
            for record_id, f in failed.items()
        ]
        stmt = self._insert(conn)(errors)
        # A record failing again after it was resolved starts a new error.
        reopened = errors.c.resolved.is_(True)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(errors.primary_key.columns),
            set_={
                "code": stmt.excluded.code,
                "message": stmt.excluded.message,
                "last_seen": stmt.excluded.last_seen,
                "run_id": stmt.excluded.run_id,
                "resolved": False,
                "attempts": sa.case((reopened, 1), else_=errors.c.attempts + 1),
                "first_seen": sa.case(
                    (reopened, stmt.excluded.first_seen), else_=errors.c.first_seen
                ),
            },
        )
        conn.execute(stmt, rows)

    @staticmethod
    def _insert(conn: Connection) -> Callable[[sa.Table], Any]:
        """The dialect's INSERT construct, which has ``on_conflict_do_update``."""
        name = conn.dialect.name
        if name == "postgresql":
            return postgresql.insert
        if name == "sqlite":
            return sqlite.insert
        raise StoreError(f"the state store supports SQLite and PostgreSQL, not {name}")

    def _upsert(
        self,
        conn: Connection,
        table: sa.Table,
        rows: Sequence[Mapping[str, Any]],
        update: Sequence[str],
    ) -> None:
        stmt = self._insert(conn)(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={name: stmt.excluded[name] for name in update},
        )
        conn.execute(stmt, list(rows))

    # -- owned output fields ---------------------------------------------

    def owned_fields(self, connection: str, object: str) -> set[str]:
        """The output fields segsync provisioned on ``object`` (case-folded names)."""
        query = sa.select(owned_fields.c.field).where(
            owned_fields.c.connection == connection, owned_fields.c.object == object
        )
        with self._engine.connect() as conn:
            return {row.field for row in conn.execute(query)}

    def record_owned(self, connection: str, object: str, fields: Sequence[str]) -> None:
        """Record ``fields`` as provisioned by segsync (idempotent)."""
        names = sorted({f.strip().casefold() for f in fields})
        if not names:
            return
        now = self._clock()
        rows = [
            {"connection": connection, "object": object, "field": f, "recorded_at": now}
            for f in names
        ]
        with self._engine.begin() as conn:
            self._upsert(conn, owned_fields, rows, ("recorded_at",))

    # -- the connectors' cache --------------------------------------------

    def cache_get(self, key: str) -> tuple[str, datetime] | None:
        """The cached value under ``key`` and when it was last known good (None: nothing)."""
        query = sa.select(connector_cache.c.value, connector_cache.c.stamp).where(
            connector_cache.c.key == key
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (str(row.value), row.stamp)

    def cache_put(self, key: str, value: str, stamp: datetime) -> None:
        """Keep ``value`` under ``key``, last known good at ``stamp`` (replacing any)."""
        row = {"key": key, "value": value, "stamp": stamp, "updated_at": self._clock()}
        with self._engine.begin() as conn:
            self._upsert(conn, connector_cache, [row], ("value", "stamp", "updated_at"))

    def cache_drop(self, key: str) -> None:
        """Forget the value under ``key`` (nothing when there is none)."""
        with self._engine.begin() as conn:
            conn.execute(sa.delete(connector_cache).where(connector_cache.c.key == key))

    # -- errors and history ----------------------------------------------

    def open_errors(
        self, connection: str | None = None, object: str | None = None
    ) -> list[ErrorRow]:
        """Unresolved record errors, most recent first, optionally of one connection and object."""
        query = (
            sa.select(errors)
            .where(errors.c.resolved.is_(False))
            .order_by(errors.c.last_seen.desc(), errors.c.record_id)
        )
        if connection is not None:
            query = query.where(errors.c.connection == connection)
        if object is not None:
            query = query.where(errors.c.object == object)
        with self._engine.connect() as conn:
            return [
                ErrorRow(
                    connection=row.connection,
                    object=row.object,
                    record_id=row.record_id,
                    code=row.code,
                    message=row.message,
                    attempts=int(row.attempts),
                    first_seen=row.first_seen,
                    last_seen=row.last_seen,
                    resolved=bool(row.resolved),
                    run_id=None if row.run_id is None else int(row.run_id),
                )
                for row in conn.execute(query)
            ]

    def drop_errors(self, connection: str, object: str, ids: Sequence[str]) -> None:
        """Close the open errors of ``ids`` without a write (ids that can never be fetched)."""
        with self._engine.begin() as conn:
            _resolve_errors(conn, connection, object, list(ids))

    def history(
        self,
        record_id: str | None,
        limit: int | None = 50,
        *,
        connection: str | None = None,
        object: str | None = None,
        mapping_version: str | None = None,
        run_id: int | None = None,
    ) -> list[TransitionRow]:
        """A record's ledger entries (every record's, with ``None``), newest first.

        ``mapping_version`` keeps the entries a definition made; ``run_id`` one run's.
        """
        query = sa.select(transitions_table).order_by(transitions_table.c.id.desc()).limit(limit)
        if mapping_version is not None:
            query = query.where(transitions_table.c.mapping_version == mapping_version)
        if run_id is not None:
            query = query.where(transitions_table.c.run_id == run_id)
        if record_id is not None:
            query = query.where(transitions_table.c.record_id == record_id)
        if connection is not None:
            query = query.where(transitions_table.c.connection == connection)
        if object is not None:
            query = query.where(transitions_table.c.object == object)
        with self._engine.connect() as conn:
            return [
                TransitionRow(
                    id=int(row.id),
                    connection=row.connection,
                    object=row.object,
                    record_id=row.record_id,
                    field=row.field,
                    from_value=row.from_value,
                    to_value=row.to_value,
                    reason=row.reason,
                    mapping_version=row.mapping_version,
                    run_id=int(row.run_id),
                    at=row.at,
                )
                for row in conn.execute(query)
            ]

    def transition_counts(
        self, mapping_version: str
    ) -> list[tuple[str, str | None, str | None, int]]:
        """What a definition changed: (field, from, to, records) over its ledger entries."""
        t = transitions_table
        query = (
            sa.select(t.c.field, t.c.from_value, t.c.to_value, sa.func.count().label("n"))
            .where(t.c.mapping_version == mapping_version)
            .group_by(t.c.field, t.c.from_value, t.c.to_value)
            .order_by(t.c.field, sa.func.count().desc(), t.c.from_value, t.c.to_value)
        )
        with self._engine.connect() as conn:
            return [
                (row.field, row.from_value, row.to_value, int(row.n)) for row in conn.execute(query)
            ]

    def run_transitions(self, run_id: int) -> list[TransitionRow]:
        """Every ledger entry of one run, oldest first."""
        rows = self.history(None, limit=None, run_id=run_id)
        rows.reverse()
        return rows

    def later_transitions(
        self, connection: str, object: str, run_id: int, ids: Sequence[str]
    ) -> dict[tuple[str, str], int]:
        """(record, field) → the latest run after ``run_id`` that moved it, for ``ids``."""
        t = transitions_table
        found: dict[tuple[str, str], int] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(list(ids)):
                query = (
                    sa.select(t.c.record_id, t.c.field, sa.func.max(t.c.run_id).label("run"))
                    .where(
                        t.c.connection == connection,
                        t.c.object == object,
                        t.c.run_id > run_id,
                        t.c.record_id.in_(chunk),
                    )
                    .group_by(t.c.record_id, t.c.field)
                )
                for row in conn.execute(query):
                    found[(row.record_id, row.field)] = int(row.run)
        return found
