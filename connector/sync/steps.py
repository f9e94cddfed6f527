"""Store steps tried again while they fail for now, shared by the runner, deal sync and rollback.

A store call that times out (a statement or lock timeout) or loses its
connection raises :class:`~connector.errors.StoreUnavailable`, a
:class:`~connector.errors.RetriableError`. Every store call is one
transaction, rolled back when it fails, so a read, an upsert or a delete
tried again gives the same result: :class:`StoreSteps` tries it again under
the one retry policy (``connector/crm/retry.py``), fencing the job's lease
before each new try, so a run that lost its job meanwhile (stalled past
``sync.stall_seconds``, or stopped) ends instead. A step that writes the store
(:meth:`StoreSteps.write`, and every batch) is fenced before its first try
too: a run that lost its job writes nothing more, not even once, where another
holder may already have recorded newer values (a batch of a run stopped right
after its CRM write would put its last-written values back over the new
holder's, and the next run would read the new holder's write as a person's
edit). The fence is the lease's in-memory checks and one small read of its
token, a few per write chunk or page, each of which costs a CRM call anyway.

Opening the store is a step too (:func:`open_store`): connecting and running
the pending migrations in one transaction, which a lock held past its timeout
(another process migrating the same store, a ``sqlite3`` shell inside a write
transaction) or a lost connection rolls back whole. Opening again starts
afresh; two processes opening one store together serialize on the database's
lock (PostgreSQL's advisory lock, SQLite's write lock): the first migrates,
the other then finds the schema at head. A store that still does not open
when the policy's tries are spent is a :class:`~connector.errors.StoreError`
that names the store, the setting that bounded the wait and the tries.

One kind of step is not plain to try again: a batch whose commit landed but
whose answer was lost (the connection dropped after the commit) would insert
its ledger rows and count its failures a second time.
:meth:`StoreSteps.record_batch` settles that the runner's way: every ledger
entry of the batch belongs to a record with a write intent, which the batch
settles in the same transaction; a try after a failed one first reads whether
those intents are still there, and when none is, the batch was recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from connector.config import StoreSettings
from connector.crm.retry import RetryPolicy
from connector.errors import RetriableError, StoreError, StoreUnavailable
from connector.store.leases import Fence
from connector.store.store import Store

log = logging.getLogger("segsync.sync")
T = TypeVar("T")


@dataclass(frozen=True)
class StoreSteps:
    """Runs store steps under ``retry``, fencing ``lease`` (if any) before each new try."""

    retry: RetryPolicy
    lease: Fence | None = None

    @classmethod
    def once(cls) -> StoreSteps:
        """Steps tried once (a caller without a retry policy: the error propagates)."""
        return cls(RetryPolicy(attempts=1))

    def fenced(self, lease: Fence | None) -> StoreSteps:
        """The same steps, fencing ``lease`` instead (None: not fenced)."""
        return self if lease is self.lease else replace(self, lease=lease)

    def __call__(self, what: str, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one store step (``what`` names it in the log), again while it fails for now."""
        return self._tried(what, step, args, kwargs, first=1)

    def write(self, what: str, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one store step that writes: as a step, the lease fenced before its first try too.

        The fence is inside the try, so a store that fails for now while it
        is read (the lease's token) is tried again like the step.
        """
        return self._tried(what, step, args, kwargs, first=0)

    def _tried(
        self,
        what: str,
        step: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        first: int,
    ) -> T:
        """``step`` under the retry policy, the lease fenced before each try after ``first``."""
        tries = 0
        lease = self.lease

        def attempt() -> T:
            nonlocal tries
            tries += 1
            if tries > first and lease is not None:
                lease.fence()
            return step(*args, **kwargs)

        def told(exc: RetriableError, wait: float) -> None:
            log.warning("store step %s failed: %s; trying again in %.1f s", what, exc, wait)

        return self.retry.call(attempt, on_retry=told)

    def record_batch(self, store: Store, noted: Sequence[str], **batch: Any) -> None:
        """Record a batch (:meth:`Store.record_batch`) once, however often it is tried.

        ``noted``: the records with a write intent the batch settles
        (``settled`` must include them, and ``ledger_by_intent`` must be set):
        every ledger entry of the batch is one of theirs. A try whose commit
        landed unheard left none of those intents, so the next try finds them
        gone and records nothing twice (nor counts a failure's attempt twice:
        it is skipped whole). A batch with none of them is tried again whole:
        upserts and deletes, and the attempts of failures that are not writes
        (the runner's deferred contacts), which a lost answer may count twice.
        """
        if noted and not batch.get("ledger_by_intent"):
            raise ValueError("a batch with write intents records its ledger by them")
        conn, obj = batch["connection"], batch["object"]
        tried = False

        def record() -> None:
            nonlocal tried
            if tried and noted and not store.intents(conn, obj, noted):
                log.info("the batch was recorded by the try whose answer was lost")
                return
            tried = True
            store.record_batch(**batch)

        self.write("record the batch", record)


def open_store(settings: StoreSettings, retry: RetryPolicy, **options: Any) -> Store:
    """:meth:`Store.from_settings`, opened again while it fails for now (see the module docstring).

    Raises:
        StoreError: the store cannot be opened, or still failed for now after
            ``retry``'s tries (the message names the store, the bound and the tries).

    """
    try:
        return StoreSteps(retry)("open the store", Store.from_settings, settings, **options)
    except StoreUnavailable as exc:
        tries = retry.attempts
        raise StoreError(
            f"{exc}; still so after {tries} tr{'y' if tries == 1 else 'ies'} "
            f"(sync.retry_attempts = {tries})"
        ) from exc
