"""What a connection's own calls say about it: when the CRM last answered, and the last refusal.

Every call a session makes updates its :class:`Health` for free, so the
service's ``/readyz`` can answer from it instead of calling the CRM on each
probe (docs/crm-apis.md, "Fixed costs").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class HealthState:
    """One reading of a connection's health."""

    #: When an authenticated call last succeeded (this process, or a cached token's last use).
    ok_at: datetime | None
    #: The last refusal or failure to reach the CRM, and when; None since a success.
    error: str | None
    error_at: datetime | None


class Health:
    """A connection's last success and last access failure (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok_at: datetime | None = None
        self._error: str | None = None
        self._error_at: datetime | None = None

    def ok(self, at: datetime | None = None) -> None:
        """An authenticated call succeeded (now, or ``at``); clears an earlier error."""
        when = at or datetime.now(UTC)
        with self._lock:
            if self._ok_at is None or when > self._ok_at:
                self._ok_at = when
            if self._error_at is not None and when >= self._error_at:
                self._error, self._error_at = None, None

    def failed(self, message: str) -> None:
        """The CRM refused segsync's credentials, or could not be reached."""
        with self._lock:
            self._error, self._error_at = message, datetime.now(UTC)

    def state(self) -> HealthState:
        """The current reading."""
        with self._lock:
            return HealthState(self._ok_at, self._error, self._error_at)
