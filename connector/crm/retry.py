"""The one retry policy, used around every adapter call.

The SDKs' own retries are turned off, so this is the only place a call is
repeated: :class:`~connector.errors.RetriableError` (429, 5xx, HubSpot's 423
and 477, timeouts, UNABLE_TO_LOCK_ROW) is retried with exponential back-off
and full jitter, never sooner than the server's Retry-After when it sends
one. Everything else propagates at once. ``sleep`` is a seam: the service
passes one that its shutdown event cuts short.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from connector.config import SyncSettings
from connector.errors import RetriableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random | None = None

    @classmethod
    def from_settings(
        cls, settings: SyncSettings, sleep: Callable[[float], None] = time.sleep
    ) -> RetryPolicy:
        """The policy configured in ``[sync]``; ``sleep`` is the service's interruptible one."""
        return cls(
            attempts=settings.retry_attempts,
            initial_wait=settings.retry_initial_wait_seconds,
            max_wait=settings.retry_max_wait_seconds,
            sleep=sleep,
        )

    def wait_seconds(self, state: RetryCallState) -> float:
        """Full-jitter exponential back-off, at least the server's Retry-After."""
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (state.attempt_number - 1))
        wait = (self.rng or random).uniform(ceiling / 2, ceiling)
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RetriableError) and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, self.max_wait))
        return wait

    def call(
        self,
        fn: Callable[[], T],
        on_retry: Callable[[RetriableError, float], None] | None = None,
    ) -> T:
        """Run ``fn``, retrying RetriableError; the last failure propagates unchanged."""

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None and state.next_action:
                exc = state.outcome.exception()
                if isinstance(exc, RetriableError):
                    on_retry(exc, state.next_action.sleep)

        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError),
            stop=stop_after_attempt(self.attempts),
            wait=self.wait_seconds,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)
