"""Job claims: one run per job, on every process, with a lease and a fencing token.

A job (``<connection>.<object>``) is claimed before it runs, by ``segsync
run`` and ``segsync sync`` alike. A claim is two things:

1. **The job lock** (:mod:`connector.store.locks`): a PostgreSQL session
   advisory lock, a ``flock`` next to a SQLite file, or an in-process lock.
   A process that dies loses it at once (its session or file closes).
2. **The lease**, a row of ``job_leases``: holder (``segsync run
   <pid>@<host>``), since when, until when (``expires_at``) and a fencing
   token that grows by one at every acquisition. A heartbeat thread renews
   it every third of ``sync.lease_seconds``.

The lock alone cannot tell a *stopped* holder (SIGSTOP, a long GC pause, a
frozen VM) from a busy one: a stopped process keeps its session and its
file open. The lease can: a stopped holder renews nothing, so its lease
expires, and then another process takes the job over **without** the lock
(mode ``steal``, token + 1). When the stopped holder resumes, its next
:meth:`Lease.fence` (the runner calls it before every write chunk) finds the
lease expired by its own clock or the token moved on, and raises
:class:`LeaseLost`: the run ends ``aborted`` and writes nothing more.

Who may take a job (the lease row first, then the lock; released the other
way round, lock first):

- the lease is expired (or the job never ran): take the lease (token + 1,
  mode ``pending``, which everyone else reads as busy), then the lock (mode
  ``lock``); when the lock is held, its holder let its lease expire
  while keeping its session or file open (stopped, hung): the job is taken
  over without the lock (mode ``steal``);
- the lease is live and was taken with the lock: busy, unless the lock is
  free, which means its holder is gone (a killed process's lock frees at
  once): taken over at once;
- the lease is live and was taken by ``steal``: busy (that taker runs
  without the lock, which the stopped holder may still have).

Every change is a compare-and-set on the token, so two processes racing for
one expired lease cannot both win. Times are the processes' clocks (UTC):
replicas need synchronized clocks (NTP), and a lease far longer than any
expected skew (the minimum, 10 s, is many times NTP's usual error).

What fencing cannot do: a check passes, then the process stops for longer
than the lease *before* its write request leaves; the write then lands after
the takeover. The CRMs offer no conditional write that could carry a token,
so this window (one chunk, between the check and the request) remains; it is
as small as a check right before the request can make it.

**Stalls.** A heartbeat thread renews the lease whatever the job's thread is
doing, so a run stuck in a call that never returns (a store statement that
hangs, a socket nobody answers) would keep its job forever. So the lease is
renewed only while the job makes progress: the run marks each step
(:meth:`Lease.progress`: a page planned, a chunk written, a batch recorded).
Every answer of the CRM counts too: the run has the lease watch its
adapter's call counter (:meth:`Lease.watch`), and the heartbeat takes a
counter that moved since its last look for a step ("waiting on the CRM"), so
a Salesforce Bulk job polled for an hour is progress while a store call
that hangs with no CRM traffic is not. Progress is counted per thread, the
thread that claimed the job: a contact run's marks keep its accounts' claim
too, an account job's deal pull its account claim. When no step was marked
(nor any CRM answer heard) for ``stall_seconds``, the heartbeat
stops renewing: it logs an error naming the job and its last step, the lease
lapses (another process takes the job over as from a stopped holder), and
:meth:`JobClaims.stalled` lists the stall until the stuck call returns and the
claim ends (the service's ``/healthz`` fails meanwhile, so an orchestrator
restarts the process; no thread is killed). Should the stuck call return,
the run's next fence raises :class:`LeaseLost`: it writes nothing more.
The config refuses a ``stall_seconds`` not above the longest silence of a
healthy run (a store statement's timeout; a CRM call's timeout after a retry's
back-off, a Bulk poll pause or a rate-window wait: ``connector.config.crm_silence``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.errors import Interrupted, StoreError
from connector.store.locks import JobLocks
from connector.store.schema import job_leases

log = logging.getLogger("segsync.locks")


class LeaseLost(Interrupted):
    """The process no longer holds its job: it must write nothing more."""


class Fence(Protocol):
    """What the runner checks before each write chunk, and tells of each step it makes."""

    def fence(self) -> None:
        """Raise :class:`LeaseLost` unless the job is still this process's."""
        ...

    def progress(self, step: str) -> None:
        """Note that the job made a step (``step`` says which): it is not stalled."""
        ...

    def watch(self, calls: Callable[[], int]) -> contextlib.AbstractContextManager[None]:
        """For the block, count each change of ``calls()`` (the CRM's answers) as progress."""
        ...


@dataclass(frozen=True)
class Stall:
    """A job whose run made no progress for longer than the stall limit."""

    job: str
    step: str
    """The last step the run marked (or ``claimed``)."""
    idle_seconds: float
    """How long no step was marked, when the stall was found."""
    since: datetime
    """When the stall was found."""

    def __str__(self) -> str:
        return (
            f"job {self.job} stalled: no progress for {self.idle_seconds:.0f} s since its "
            f"last step ({self.step})"
        )


@dataclass(frozen=True)
class Holder:
    """Who holds a job, as the lease row says."""

    job: str
    name: str
    since: datetime
    expires_at: datetime
    token: int
    mode: str

    def __str__(self) -> str:
        since = self.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.name} since {since}"


@dataclass(frozen=True)
class Busy:
    """A claim that failed: the job runs elsewhere (``holder`` None: not known yet)."""

    job: str
    holder: Holder | None

    def __str__(self) -> str:
        who = f"held by {self.holder}" if self.holder else "its holder is just starting"
        return f"job {self.job} is running in another process ({who})"


def job_key(connection: str, object: str) -> str:
    """The name of a connection × object job: ``<connection>.<object>``."""
    return f"{connection}.{object}"


def claim_order(connection: str, object: str) -> tuple[str, list[str]]:
    """A job's key and the keys claimed (and held) before it: contacts hold their accounts.

    A contact run reads its accounts' segment and tier: while it runs, no
    account run of the connection may change them, on any process.
    """
    after = [job_key(connection, "account")] if object == "contact" else []
    return job_key(connection, object), after


def watching(
    lease: Fence | None, calls: Callable[[], int]
) -> contextlib.AbstractContextManager[None]:
    """``lease.watch(calls)`` (every CRM answer is progress), or nothing without a lease."""
    return contextlib.nullcontext() if lease is None else lease.watch(calls)


def holder_name(purpose: str) -> str:
    """``<purpose> <pid>@<host>``: who a lease row names."""
    return f"{purpose} {os.getpid()}@{socket.gethostname()}"[:255]


def _now() -> datetime:
    return datetime.now(UTC)


class Lease:
    """A held job: its token, renewed by a heartbeat thread until released."""

    def __init__(
        self,
        claims: JobClaims,
        job: str,
        token: int,
        *,
        mode: str,
        parents: Sequence[Lease] = (),
    ) -> None:
        self.job = job
        self.token = token
        self.mode = mode
        self._claims = claims
        self._parents = list(parents)
        self._lost: str | None = None
        # Monotonic: a clock jump does not extend a lease; a stop does end it.
        self._valid_until = time.monotonic() + claims.seconds
        # Progress is the claiming thread's (see "Stalls" in the module docstring).
        self._owner = threading.get_ident()
        claims._pulse(self._owner, f"claimed {job}")
        self._stop = threading.Event()
        self._renewing = threading.Lock()
        self._released = False
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"segsync-lease-{job}", daemon=True
        )
        self._thread.start()

    # -- the heartbeat ------------------------------------------------------
    def _heartbeat(self) -> None:
        every = self._claims.seconds / 3
        # A short stall limit is checked more often than the lease is renewed.
        stall = self._claims.stall_seconds
        check = every if stall is None else min(every, max(0.5, stall / 3))
        due = time.monotonic() + every
        while not self._stop.wait(check):
            if self._lost is not None or self._stalled():
                return
            if time.monotonic() < due - check / 2:
                continue
            try:
                self.renew()
                due = time.monotonic() + every
            except (sa.exc.SQLAlchemyError, StoreError) as exc:  # the store hiccupped: again
                log.warning("renewing the lease of %s failed: %s", self.job, exc)
            except LeaseLost:
                return

    def progress(self, step: str) -> None:
        """Note a step of the job's run: while steps come, the heartbeat renews the lease."""
        self._claims._pulse(self._owner, step)

    @contextlib.contextmanager
    def watch(self, calls: Callable[[], int]) -> Iterator[None]:
        """For the block, each change of ``calls()`` is progress of the claiming thread's run.

        ``calls`` is an adapter's call counter (``lambda: adapter.api_calls``):
        read by the heartbeat at each check, so it must be cheap and safe to
        read from another thread (a plain integer read is). A counter that
        moved since the heartbeat last looked (or since the last step marked)
        is a step, "waiting on the CRM": a Bulk job's status polls keep the
        lease for as long as the job runs.
        """
        key = self._claims._watch(self._owner, calls)
        try:
            yield
        finally:
            self._claims._unwatch(self._owner, key)

    def _stalled(self) -> bool:
        """Whether the run made no progress for the stall limit; if so, give the job up.

        Nothing is released: the lease lapses at its expiry, the job lock
        stays with the stuck session (the taker steals the job), and the
        run's next fence raises LeaseLost with the stall's reason.
        """
        limit = self._claims.stall_seconds
        if limit is None:
            return False
        idle, step = self._claims._idle(self._owner)
        if idle <= limit:
            return False
        stall = Stall(self.job, step, idle, self._claims._clock())
        with self._renewing:
            if self._released:
                return True
            self._lost = (
                f"{stall}; this process stopped renewing its lease so another can take the "
                "job over, and writes nothing more"
            )
            # Under the lock: release() either comes after (and removes it) or was first.
            self._claims._stalled_now(id(self), stall)
        log.error(
            "%s (more than sync.stall_seconds = %g); its lease is no longer renewed and "
            "lapses within %g s, so another process can take the job over; segsync run "
            "reports the stall on /healthz until the stuck call returns (restart it)",
            stall,
            limit,
            self._claims.seconds,
            extra={"job": self.job},
        )
        return True

    def renew(self) -> None:
        """Push the lease's expiry on; :class:`LeaseLost` when the token moved on."""
        # Never after release: a renewal landing after it would leave a live
        # lease behind that nobody renews or releases.
        with self._renewing:
            if self._released:
                return
            started = time.monotonic()
            if started > self._valid_until:
                self._lose(self._expired_text())
            renewed = self._claims._renew(self.job, self.token)
            if not renewed:
                self._lose(self._taken_text())
            self._valid_until = started + self._claims.seconds

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
            log.warning("%s", reason, extra={"job": self.job})
        raise LeaseLost(reason)

    def _expired_text(self) -> str:
        return (
            f"job {self.job}: this process lost its lease (not renewed for more than "
            f"{self._claims.seconds:g} s: the process was stopped or the store unreachable); "
            "it writes nothing more"
        )

    def _taken_text(self) -> str:
        holder = self._claims.holder(self.job)
        by = f" by {holder}" if holder is not None else ""
        return (
            f"job {self.job}: another process took the job over{by}; this run writes nothing more"
        )

    # -- the fence ----------------------------------------------------------
    def fence(self) -> None:
        """Raise :class:`LeaseLost` unless this process still holds the job (and its parents).

        Two checks: the lease is unexpired by this process's monotonic clock
        (a stopped process finds out the moment it resumes, before any call),
        and the store still has this lease's token (one small read).
        """
        for parent in self._parents:
            parent.fence()
        if self._lost is not None:
            raise LeaseLost(self._lost)
        if time.monotonic() > self._valid_until:
            self._lose(self._expired_text())
        if self._claims._token(self.job) != self.token:
            self._lose(self._taken_text())

    def release(self) -> None:
        """Stop the heartbeat and end the lease (if it is still this process's)."""
        self._stop.set()
        with self._renewing:  # waits for a renewal in flight
            self._released = True
        self._thread.join(timeout=5)
        self._claims._stalled_now(id(self), None)  # the stuck call returned
        if self._lost is None:
            try:
                self._claims._release(self.job, self.token)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("releasing the lease of %s failed: %s", self.job, exc)


class JobClaims:
    """Claims jobs for one process: the job locks plus leases in the store's ``job_leases``."""

    def __init__(
        self,
        engine: Engine,
        locks: JobLocks,
        *,
        lease_seconds: float,
        purpose: str,
        stall_seconds: float | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._engine = engine
        self.locks = locks
        self.seconds = float(lease_seconds)
        #: A run idle this long is stalled (None: never; see "Stalls" above).
        self.stall_seconds = None if stall_seconds is None else float(stall_seconds)
        self.name = holder_name(purpose)
        self._clock = clock
        # Thread → (monotonic time, step) of its latest progress mark.
        self._pulses: dict[int, tuple[float, str]] = {}
        # Thread → the step it marked last (a CRM answer heard since is told after it).
        self._steps: dict[int, str] = {}
        # Thread → its runs' call counters, each with the value last seen and at its last step.
        self._watches: dict[int, dict[int, _Watch]] = {}
        self._watch_keys = itertools.count()
        # Marks and counter looks under one lock: a step marked while the
        # heartbeat reads a counter is not relabelled "waiting on the CRM".
        self._pulse_guard = threading.Lock()
        self._stalls: dict[int, Stall] = {}
        self._stalls_guard = threading.Lock()

    # -- progress -------------------------------------------------------------
    def _pulse(self, owner: int, step: str) -> None:
        with self._pulse_guard:
            self._pulses[owner] = (time.monotonic(), step)
            self._steps[owner] = step
            for watch in self._watches.get(owner, {}).values():
                watch.seen = watch.at_step = watch.calls()

    def _watch(self, owner: int, calls: Callable[[], int]) -> int:
        """Count each change of ``calls()`` as progress of ``owner``'s run; a key to unwatch."""
        key = next(self._watch_keys)
        with self._pulse_guard:
            now = calls()
            self._watches.setdefault(owner, {})[key] = _Watch(calls, now, now)
        return key

    def _unwatch(self, owner: int, key: int) -> None:
        with self._pulse_guard:
            watches = self._watches.get(owner, {})
            watches.pop(key, None)
            if not watches:
                self._watches.pop(owner, None)

    def _heard(self, owner: int) -> None:
        """Mark a step for ``owner`` when one of its counters moved since last seen."""
        with self._pulse_guard:
            watches = self._watches.get(owner)
            if not watches:
                return
            moved, since_step = False, 0
            for watch in watches.values():
                now = watch.calls()
                moved = moved or now != watch.seen
                watch.seen = now
                since_step += now - watch.at_step
            if moved:
                last = self._steps.get(owner, "claimed")
                self._pulses[owner] = (
                    time.monotonic(),
                    f"waiting on the CRM ({since_step:,} calls since: {last})",
                )

    def _idle(self, owner: int) -> tuple[float, str]:
        """Seconds since the thread ``owner`` marked a step (or the CRM answered), and that step."""
        self._heard(owner)
        at, step = self._pulses.get(owner, (time.monotonic(), "claimed"))
        return time.monotonic() - at, step

    def _stalled_now(self, lease: int, stall: Stall | None) -> None:
        """Keep (or, None, forget) the stall of a lease."""
        with self._stalls_guard:
            if stall is None:
                self._stalls.pop(lease, None)
            else:
                self._stalls[lease] = stall

    def stalled(self) -> list[Stall]:
        """The stalls of this process's claims whose stuck call has not returned yet."""
        with self._stalls_guard:
            found = list(self._stalls.values())
        return sorted(found, key=lambda s: (s.since, s.job))

    # -- claiming -------------------------------------------------------------
    @contextlib.contextmanager
    def claim(self, job: str, *, after: Sequence[str] = ()) -> Iterator[Lease | Busy]:
        """Claim ``job`` for the block (claiming the jobs ``after`` first, held too).

        Yields the :class:`Lease` (its ``fence`` also checks those of
        ``after``), or :class:`Busy` naming the first job held elsewhere.
        Never waits: see :meth:`wait`.
        """
        with contextlib.ExitStack() as stack:
            parents: list[Lease] = []
            for key in [*after, job]:
                got = stack.enter_context(self._claim_one(key, parents))
                if isinstance(got, Busy):
                    yield got
                    return
                parents.append(got)
            yield parents[-1]

    def wait(
        self,
        job: str,
        *,
        after: Sequence[str] = (),
        seconds: float | None,
        after_forever: bool = False,
        poll: float = 1.0,
        on_wait: Callable[[Busy], None] | None = None,
    ) -> contextlib.AbstractContextManager[Lease | Busy]:
        """Like :meth:`claim`, retrying every ``poll`` s for up to ``seconds`` (None: forever).

        ``after_forever``: while one of ``after`` is what is busy, keep
        waiting past ``seconds`` (the command line's contacts wait for an
        account run however long it takes). ``on_wait`` hears each new holder.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        told: set[tuple[str, int | None]] = set()
        while True:
            context = self.claim(job, after=after)
            got = context.__enter__()
            if isinstance(got, Lease):
                return _Entered(context, got)
            context.__exit__(None, None, None)
            patient = after_forever and got.job != job
            if not patient and deadline is not None and time.monotonic() >= deadline:
                return contextlib.nullcontext(got)
            seen = (got.job, got.holder.token if got.holder else None)
            if on_wait is not None and seen not in told:
                on_wait(got)
                told.add(seen)
            pause = poll
            if not patient and deadline is not None:
                pause = max(0.0, min(poll, deadline - time.monotonic()))
            time.sleep(pause)

    @contextlib.contextmanager
    def _claim_one(self, job: str, parents: Sequence[Lease]) -> Iterator[Lease | Busy]:
        """The lease first, then the lock (see the module docstring); released the other way.

        Every step that changes the row is a compare-and-set on the token, so
        of any number of processes racing for one job exactly one holds its
        current token; the others answer Busy.
        """
        now = self._clock()
        row = self.holder(job)
        with contextlib.ExitStack() as lock:
            if row is not None and row.expires_at > now:
                # A live lease. Its holder is gone only if it held the job
                # lock and the lock is free now (its session or file closed).
                if row.mode != "lock" or not lock.enter_context(self.locks.hold(job)):
                    yield Busy(job, row)
                    return
                token = self._swap(job, row, "lock", now)
                mode = "lock"
                if token is not None:
                    log.info(
                        "job %s: its holder %s is gone (its lock is free); taken over",
                        job,
                        row.name,
                        extra={"job": job},
                    )
            else:
                # "pending" until the lock is tried: nobody mistakes the
                # moment between the two for a dead holder.
                token = self._swap(job, row, "pending", now)
                mode = "lock"
                if token is not None and lock.enter_context(self.locks.hold(job)):
                    if not self._set_mode(job, token, mode):
                        token = None
                elif token is not None and row is None:
                    # The lock is held by a holder that never wrote a lease
                    # (an older segsync): busy, as it always was.
                    self._forget(job, token)
                    yield Busy(job, None)
                    return
                elif token is not None and row is not None:
                    # The lock is held, but its holder let the lease expire:
                    # stopped or hung. Take the job without the lock.
                    mode = "steal"
                    if not self._set_mode(job, token, mode):
                        token = None
                    else:
                        log.warning(
                            "job %s taken over from %s: its lease expired at %s "
                            "(stopped or hung); it still holds the job lock",
                            job,
                            row.name,
                            row.expires_at.isoformat(),
                            extra={"job": job},
                        )
            if token is None:  # another process won the race for it
                yield Busy(job, self.holder(job))
                return
            lease = Lease(self, job, token, mode=mode, parents=parents)
            try:
                yield lease
            finally:
                # The lock first: a successor that finds the lease still live
                # and the lock free takes over at once (as from a dead holder).
                lock.close()
                lease.release()

    # -- the lease rows -------------------------------------------------------
    def holder(self, job: str) -> Holder | None:
        """The lease row of ``job`` (expired or not), None when it never ran."""
        query = sa.select(job_leases).where(job_leases.c.job == job)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Holder(
            job, row.holder, row.acquired_at, row.expires_at, int(row.token), str(row.mode)
        )

    def _swap(
        self, job: str, seen: Holder | None, mode: Literal["lock", "pending"], now: datetime
    ) -> int | None:
        """Take the lease if its token and mode are still ``seen``'s; the new token, else None."""
        values = {
            "holder": self.name,
            "mode": mode,
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=self.seconds),
        }
        try:
            with self._engine.begin() as conn:
                if seen is None:
                    conn.execute(sa.insert(job_leases).values(job=job, token=1, **values))
                    return 1
                done = conn.execute(
                    sa.update(job_leases)
                    .where(
                        job_leases.c.job == job,
                        job_leases.c.token == seen.token,
                        job_leases.c.mode == seen.mode,
                    )
                    .values(token=seen.token + 1, **values)
                )
                return seen.token + 1 if done.rowcount == 1 else None
        except sa.exc.IntegrityError:
            return None

    def _forget(self, job: str, token: int) -> None:
        """Remove the row this process just inserted (back to "never ran")."""
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(job_leases).where(job_leases.c.job == job, job_leases.c.token == token)
            )

    def _set_mode(self, job: str, token: int, mode: str) -> bool:
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(job_leases)
                .where(job_leases.c.job == job, job_leases.c.token == token)
                .values(mode=mode)
            )
        return done.rowcount == 1

    def _renew(self, job: str, token: int) -> bool:
        now = self._clock()
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(job_leases)
                .where(job_leases.c.job == job, job_leases.c.token == token)
                .values(expires_at=now + timedelta(seconds=self.seconds))
            )
        return done.rowcount == 1

    def _token(self, job: str) -> int | None:
        query = sa.select(job_leases.c.token).where(job_leases.c.job == job)
        with self._engine.connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else int(value)

    def _release(self, job: str, token: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(job_leases)
                .where(job_leases.c.job == job, job_leases.c.token == token)
                .values(expires_at=self._clock())
            )

    def close(self) -> None:
        """Release the job locks' resources (leases end with their blocks)."""
        self.locks.close()


@dataclass
class _Watch:
    """A run's call counter, as the heartbeat last read it and as it was at the run's last step."""

    calls: Callable[[], int]
    seen: int
    at_step: int


class _Entered(contextlib.AbstractContextManager[Lease | Busy]):
    """A claim context already entered by :meth:`JobClaims.wait`."""

    def __init__(
        self, context: contextlib.AbstractContextManager[Lease | Busy], got: Lease
    ) -> None:
        self._context = context
        self._got = got

    def __enter__(self) -> Lease | Busy:
        return self._got

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)  # type: ignore[arg-type]
