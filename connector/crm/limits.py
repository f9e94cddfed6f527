"""API limits in one place, and the client-side pacing that keeps segsync inside them.

Figures are the vendors' published defaults (docs/crm-apis.md#salesforce-limits,
#hubspot-limits);
every one of them can be overridden in the connection's settings.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from connector.errors import FatalSyncError

# Salesforce
SF_QUERY_PAGE = 2_000
SF_COLLECTION_BATCH = 200
SF_COMPOSITE_SUBREQUESTS = 25
SF_METADATA_BATCH = 10
SF_CUSTOM_NAME_MAX = 40

# HubSpot
HS_LIST_PAGE = 100
HS_SEARCH_PAGE = 200
HS_SEARCH_MAX_RESULTS = 10_000
HS_BATCH = 100
HS_ASSOC_BATCH = 1_000
HS_HISTORY_BATCH = 50
"""Ids per batch read that asks for ``propertiesWithHistory``: a conservative size, since
each answer carries every value's history and HubSpot serves fewer objects per request
when history is asked for."""
HS_WINDOW_SECONDS = 10.0


class BudgetExhausted(FatalSyncError):
    """The share of the daily API allocation that segsync may use is spent."""


PACING_MARGIN = 0.01
"""Seconds a call's place in a window is held beyond what its round trip proves (the two
halves of a round trip may differ from call to call): HubSpot's pacing."""
REFUSAL_STEP = 0.01
"""Seconds a 429 adds to a limiter's hold (see :meth:`RollingWindowLimiter.refused`)."""
REFUSAL_DECAY_CALLS = 50
"""Answered calls that take one :data:`REFUSAL_STEP` off again."""
ROUND_TRIPS_KEPT = 50
"""Round trips a limiter remembers to know the fastest one (see :class:`RollingWindowLimiter`)."""
_IN_FLIGHT_POLL = 0.01
"""Seconds to wait for an answer when every call in the window is still in flight."""


class Slot:
    """One call booked in a :class:`RollingWindowLimiter`: give it back with :meth:`done`."""

    __slots__ = ("_limiter", "free_at", "start")

    def __init__(self, limiter: RollingWindowLimiter, start: float) -> None:
        self._limiter = limiter
        self.start = start
        self.free_at: float | None = None
        """When the call surely left the server's window (None: still in flight)."""

    def done(self) -> None:
        """The answer (or the failure) is in: the call's time in the window now has an end."""
        self._limiter._done(self)


@dataclass
class RollingWindowLimiter:
    """Paces calls so that at most ``limit`` are counted in any rolling ``window`` seconds.

    HubSpot counts requests per token in a rolling ten-second window (search
    per account in one second) and answers 429 beyond it; pacing at the
    limit costs less than retrying storms of 429s (HubSpot asks that errors
    stay under 5 % of calls). The server counts a call at some moment
    between our sending it and our receiving the answer, and that moment
    wanders with the network's jitter, so pacing by send times alone needs
    a margin as wide as the jitter (too wide for search's one-second window:
    at 80-150 ms a call, 5 / 1.07 s).

    :meth:`begin` books a call and :meth:`Slot.done` closes it. A call holds
    its place from its start until ``window`` after its answer, less the
    fastest round trip seen lately (``lead``), plus ``margin``: the server
    counted the old call no later than its answer, and counts a new one no
    sooner than that much after sending it, as long as a round trip's two
    halves do not trade places by more than ``margin``. A call still in
    flight holds its place. So the window is used whole (one lead's width
    is lost per window only to jitter), whatever the latency. Where the two
    halves do vary more (a server that takes longer on some calls after
    counting them), a 429 tells: :meth:`refused` adds 10 ms to the hold, and
    every 50 answers take 10 ms off again, so refusals stay rare without a
    wide margin for good. :meth:`acquire`
    books a call counted when it starts (no answer awaited): its place is
    held ``window + margin`` from then. ``clock`` and ``sleep`` are seams
    for tests and for shutdown (a sleep that an event cuts short).
    """

    limit: int
    window: float = HS_WINDOW_SECONDS
    margin: float = 0.05
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("limit must be at least 1")
        self._slots: list[Slot] = []
        self._round_trips: deque[float] = deque(maxlen=ROUND_TRIPS_KEPT)
        self._lock = threading.Lock()
        self.extra = 0.0
        """Seconds added to every hold after refusals (:meth:`refused`), decaying."""

    @property
    def lead(self) -> float:
        """The fastest recent round trip (0 before the first answer)."""
        return min(self._round_trips, default=0.0)

    def observe(self, limit: int, remaining: int, window: float) -> None:
        """Follow the limit the server reports: its size, its window, its count of our calls.

        ``limit`` and ``window`` replace the configured figures (the portal
        knows its own tier). When the server has counted more calls in the
        window than this limiter holds (another process on the same token),
        the difference is booked now, so this limiter leaves room for them.
        """
        if limit < 1 or window <= 0:
            return
        with self._lock:
            self.limit, self.window = limit, window
            now = self.clock()
            self._prune(now)
            unseen = (limit - max(0, remaining)) - len(self._slots)
            for _ in range(max(0, unseen)):
                # Counted by the server at the latest now.
                slot = Slot(self, now)
                slot.free_at = now + self.window + self.margin
                self._slots.append(slot)

    def refused(self) -> None:
        """The server refused a call for this limit (429): hold places a little longer.

        Capped at a twentieth of the window (0.5 s of ten, 50 ms of search's one).
        """
        with self._lock:
            self.extra = min(self.extra + REFUSAL_STEP, self.window / 20)

    def acquire(self) -> float:
        """Block until a call may start, counted from its start; return the seconds waited."""
        slot, waited = self._book()
        slot.free_at = slot.start + self.window + self.margin
        return waited

    def begin(self) -> Slot:
        """Block until a call may start; its :class:`Slot`, to be closed when it is answered."""
        return self._book()[0]

    def _book(self) -> tuple[Slot, float]:
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                self._prune(now)
                if len(self._slots) < self.limit:
                    slot = Slot(self, now)
                    self._slots.append(slot)
                    return slot, waited
                ends = [s.free_at for s in self._slots if s.free_at is not None]
                pause = max(min(ends) - now, 1e-3) if ends else _IN_FLIGHT_POLL
            self.sleep(pause)
            waited += pause

    def _done(self, slot: Slot) -> None:
        with self._lock:
            if slot.free_at is not None:
                return
            now = self.clock()
            self._round_trips.append(max(0.0, now - slot.start))
            slot.free_at = now + self.window - self.lead + self.margin + self.extra
            self.extra = max(0.0, self.extra - REFUSAL_STEP / REFUSAL_DECAY_CALLS)

    def _prune(self, now: float) -> None:
        # The epsilon keeps float rounding from leaving a call a hair inside the window.
        self._slots = [s for s in self._slots if s.free_at is None or s.free_at > now + 1e-6]


@dataclass
class DailyBudget:
    """The calls segsync may still spend today, from the CRM's own usage figures.

    ``share`` of the allocation is ours; the rest is left to the org's other
    integrations and its users. :meth:`observe` takes the CRM's reading
    (Salesforce ``Sforce-Limit-Info``, HubSpot ``X-HubSpot-RateLimit-Daily*``);
    :meth:`check` raises before a call that would go past our share.
    """

    share: float = 1.0
    used: int | None = None
    total: int | None = None

    def observe(self, used: int, total: int) -> None:
        """Record the latest usage reading."""
        self.used, self.total = used, total

    @property
    def remaining(self) -> int | None:
        """Calls left within our share, or None before the first reading."""
        if self.used is None or self.total is None:
            return None
        return max(0, int(self.total * self.share) - self.used)

    def check(self, calls: int = 1) -> None:
        """Raise BudgetExhausted when ``calls`` more would exceed our share."""
        remaining = self.remaining
        if remaining is not None and calls > remaining:
            raise BudgetExhausted(
                f"API budget spent: {self.used} of {self.total} daily calls used, "
                f"segsync may use {self.share:.0%}; the run stops here and resumes "
                "when the allocation recovers"
            )


HS_READ_STREAMS = 3
"""Reads in flight for one large HubSpot pull: a list cursor and search partitions, or
search sub-windows (:mod:`connector.crm.hubspot.partition`)."""
HS_PARTITION_MIN = 5_000
"""Below this many records a pull stays one cursor: partitioning costs a few search calls."""
