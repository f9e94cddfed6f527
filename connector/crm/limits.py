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


@dataclass
class RollingWindowLimiter:
    """Paces calls so that at most ``limit`` start in any rolling ``window`` seconds.

    HubSpot counts requests per token in a rolling ten-second window and
    answers 429 beyond it; pacing below the limit costs less than retrying
    storms of 429s (HubSpot asks that errors stay under 5 % of calls).
    ``margin`` seconds are added to absorb the skew between when we send and
    when the server counts. ``clock`` and ``sleep`` are seams for tests and
    for shutdown (a sleep that an event cuts short).
    """

    limit: int
    window: float = HS_WINDOW_SECONDS
    margin: float = 0.05
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("limit must be at least 1")
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def observe(self, limit: int, remaining: int, window: float) -> None:
        """Follow the limit the server reports: its size, its window, its count of our calls.

        ``limit`` and ``window`` replace the configured figures (the portal
        knows its own tier). When the server has counted more calls in the
        window than were started here (another process on the same token),
        the difference is booked now, so this limiter leaves room for them.
        """
        if limit < 1 or window <= 0:
            return
        with self._lock:
            self.limit, self.window = limit, window
            now = self.clock()
            horizon = self.window + self.margin - 1e-6
            while self._starts and now - self._starts[0] >= horizon:
                self._starts.popleft()
            unseen = (limit - max(0, remaining)) - len(self._starts)
            if unseen > 0:
                self._starts.extend([now] * unseen)  # the newest: the deque stays in order

    def acquire(self) -> float:
        """Block until a call may start; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                # The epsilon keeps float rounding from leaving a call a hair
                # inside the window forever.
                horizon = self.window + self.margin - 1e-6
                while self._starts and now - self._starts[0] >= horizon:
                    self._starts.popleft()
                if len(self._starts) < self.limit:
                    self._starts.append(now)
                    return waited
                pause = max(self._starts[0] + self.window + self.margin - now, 1e-3)
            self.sleep(pause)
            waited += pause


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
