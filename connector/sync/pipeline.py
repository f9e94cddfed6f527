"""Writing while the pull goes on, once the mass-change guard cannot refuse the run.

The runner plans everything before it writes so that the guard
(:mod:`connector.sync.guard`) sees the whole plan. When the CRM says how
many records the pull holds (HubSpot's search ``total``), the outcome of
the guard is known earlier: after each page, :meth:`WriteAhead.after_page`
takes the worst case, that every record still to read (with a margin for
a count that was low) is rewritten and that none of them adds to the
population, and when even that stays within ``max_change_share`` the
spool is executed on a second thread while planning goes on. Nothing
else changes: the executor is the runner's own (write intents before each
chunk, the re-read before writing, the ownership check at the start of
the run, the outcome recorded per chunk, the watermark advanced after
all), it reads the spool only up to the end of the last whole page, and
the guard is checked on the whole plan at the end as before.

Without a count (a small incremental window walked by one keyset cursor in
stamp order, whose path writes made alongside would cross: each write moves
its record's stamp ahead of the walk; Salesforce), with
children still to read after the pull, or (without ``--force``) while the
share is not yet certain, the run keeps the old order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import IO

from connector.sync.planner import PlanSummary

#: Records beyond the CRM's count the worst case allows for (records created
#: during the pull), as a share of the count and a constant.
COUNT_MARGIN = 0.1
COUNT_SLACK = 100


def certain(
    summary: PlanSummary,
    consumed: int,
    remaining: int,
    previous_count: int | None,
    max_change_share: float,
) -> bool:
    """Whether no rest of the pull can make :func:`~.guard.check_guard` refuse the plan.

    ``consumed``: records read so far (planned, or held for planning);
    ``remaining``: those the CRM says are still to come. Pure.
    """
    counts = summary.counts
    if consumed == 0:
        return False  # an empty full pull may still be refused
    held = max(0, consumed - counts.read)
    worst = counts.rewritten + held + remaining
    population = max(consumed, previous_count or 0)
    return worst <= max_change_share * population


class WriteAhead:
    """Runs ``execute`` on the spool's whole pages while the plan is still being built."""

    def __init__(
        self,
        spool: IO[bytes],
        execute: Callable[[IO[bytes]], None],
        expected: Callable[[], int | None],
        previous_count: int | None,
        max_change_share: float,
        *,
        force: bool = False,
    ) -> None:
        self._spool = spool
        self._execute = execute
        self._expected = expected
        self._previous = previous_count
        self._share = max_change_share
        self._force = force
        self._reader = _Tail(spool)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def started(self) -> bool:
        """Whether writing has begun."""
        return self._thread is not None

    def after_page(self, summary: PlanSummary, consumed: int, pulled: int) -> None:
        """A page is planned (spooled whole): publish it, and start writing if now certain."""
        if self._error is not None:
            raise self._error  # the writer failed (a lost lease, a store error): stop reading
        self._spool.flush()
        self._reader.publish(self._spool.tell())
        if self._thread is not None:
            return
        if pulled == 0:
            return  # records fetched by id come first: the pull (and its count) has not begun
        # A count is also the adapter's word that its walk is one no write disturbs.
        expected = self._expected()
        if expected is None:
            return
        if not self._force:
            remaining = max(0, expected - pulled) + int(expected * COUNT_MARGIN) + COUNT_SLACK
            if not certain(summary, consumed, remaining, self._previous, self._share):
                return
        self._thread = threading.Thread(target=self._run, name="segsync-write-ahead", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """The plan is complete and passed the guard: write the rest, then return."""
        self._spool.flush()
        self._reader.publish(self._spool.tell(), last=True)
        self._join()

    def abort(self) -> None:
        """Stop after the chunk in flight (the plan failed or the guard refused it)."""
        self._reader.stop()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            self._execute(self._reader)  # type: ignore[arg-type]
        except BaseException as exc:
            self._error = exc
            self._reader.stop()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error


#: The most one ``os.pread`` of the spool takes at once.
_BLOCK = 1 << 20


class _Tail:
    """A read-only view of the spool up to its published end; blocks there until more comes.

    Reads with ``os.pread`` so the planner's file position is never moved.
    ``read(n)`` waits until n bytes are published, as a file's would have them.
    At the end of the last publication it answers ``b""`` (EOF); once
    stopped, it answers EOF at once. pickle asks for a few bytes at a
    time; each ``pread`` lets go of the GIL and, with the planner busy, waits
    to get it back. So the published bytes are read a block at a time and
    pickle is served from that block (5 preads a record before: 1.2 s of a
    6,000-record incremental run's profile).
    """

    def __init__(self, spool: IO[bytes]) -> None:
        self._fd = spool.fileno()
        self._pos = 0
        self._end = 0
        self._last = False
        self._stopped = False
        self._cond = threading.Condition()
        self._block = b""
        self._block_at = 0  # the spool offset of self._block's first byte

    def publish(self, end: int, *, last: bool = False) -> None:
        with self._cond:
            self._end = max(self._end, end)
            self._last = self._last or last
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        # A file's read(n) answers n bytes unless at EOF (pickle takes fewer as
        # truncated data): a publication that ends mid-entry is waited past.
        need = 1 if size is None or size < 0 else max(size, 1)
        with self._cond:
            while self._pos + need > self._end and not (self._last or self._stopped):
                self._cond.wait()
            if self._stopped:
                return b""
            available = self._end - self._pos
            if available <= 0:
                return b""
            want = available if size is None or size < 0 else min(size, available)
        start = self._pos - self._block_at
        if start < 0 or start + want > len(self._block):
            # Published bytes never change: read on to the published end (a block at most).
            self._block = os.pread(self._fd, max(want, min(available, _BLOCK)), self._pos)
            self._block_at, start = self._pos, 0
        data = self._block[start : start + want]
        self._pos += len(data)
        return data

    def readline(self) -> bytes:
        # pickle asks for lines only with protocol 0; the spool uses the highest.
        raise NotImplementedError("the spool is read by pickle.load with a binary protocol")
