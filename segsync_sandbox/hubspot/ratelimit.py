"""HubSpot's rate limits: a rolling ten-second window per token, a daily count, a search limit.

As HubSpot applies them to private apps: every request counts against the
daily allocation; non-search requests also count against the token's rolling
ten-second window and carry ``X-HubSpot-RateLimit-*`` headers; search
requests have their own per-account limit per second and carry no rate-limit
headers. A refused request does not consume a slot. The clock is injectable
so tests need not sleep for ten seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 10.0
SEARCH_WINDOW_SECONDS = 1.0


@dataclass
class RateLimits:
    """The limits in force (changeable at runtime)."""

    requests_per_10s: int = 190
    daily_limit: int = 1_000_000
    search_per_second: int = 5
    send_retry_after: bool = False


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one request."""

    allowed: bool
    policy: str | None = None
    """``TEN_SECONDLY_ROLLING``, ``DAILY`` or ``SECONDLY`` when refused."""
    retry_after: float = 0.0
    """Seconds until a slot frees up (when refused)."""


class RateLimiter:
    """Counts requests per token and per account; thread-safe."""

    def __init__(
        self,
        limits: RateLimits,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._search: deque[float] = deque()
        self._day: int | None = None
        self._daily = 0

    def _roll_day(self) -> None:
        day = int(self.wall_clock() // 86_400)
        if day != self._day:
            self._day = day
            self._daily = 0

    def _window(self, token: str, now: float) -> deque[float]:
        window = self._windows.setdefault(token, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        return window

    def check(self, token: str, *, search: bool = False) -> Decision:
        """Count one request, or refuse it with the policy it hit."""
        with self._lock:
            now = self.clock()
            self._roll_day()
            if self._daily >= self.limits.daily_limit:
                midnight = (int(self.wall_clock() // 86_400) + 1) * 86_400
                return Decision(False, "DAILY", midnight - self.wall_clock())
            if search:
                while self._search and self._search[0] <= now - SEARCH_WINDOW_SECONDS:
                    self._search.popleft()
                if len(self._search) >= self.limits.search_per_second:
                    wait = self._search[0] + SEARCH_WINDOW_SECONDS - now
                    return Decision(False, "SECONDLY", wait)
                self._search.append(now)
            else:
                window = self._window(token, now)
                if len(window) >= self.limits.requests_per_10s:
                    wait = window[0] + WINDOW_SECONDS - now
                    return Decision(False, "TEN_SECONDLY_ROLLING", wait)
                window.append(now)
            self._daily += 1
            return Decision(True)

    def headers(self, token: str) -> dict[str, str]:
        """The ``X-HubSpot-RateLimit-*`` headers for a non-search response."""
        with self._lock:
            now = self.clock()
            self._roll_day()
            used = len(self._window(token, now))
            return {
                "X-HubSpot-RateLimit-Max": str(self.limits.requests_per_10s),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.limits.requests_per_10s - used)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_SECONDS * 1000)),
                "X-HubSpot-RateLimit-Daily": str(self.limits.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(
                    max(0, self.limits.daily_limit - self._daily)
                ),
            }

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._windows.clear()
            self._search.clear()
            self._daily = 0

    @staticmethod
    def retry_after_header(seconds: float) -> str:
        """Whole seconds for a Retry-After header (at least 1)."""
        return str(max(1, math.ceil(seconds)))
